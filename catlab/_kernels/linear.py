"""Compiled kernel for the weight gradient of a linear layer at batch size 1.

At batch 1 the weight gradient ``dy.T @ x`` is an outer product: no
arithmetic to speak of, but a whole (out, in) matrix to write. The kernel
writes rows i0 <= i < i1 and releases the GIL, so :mod:`catlab._threads`
splits the rows (and the first-touch page faults of a fresh output) among
threads.
"""

from ._jit import njit


@njit(cache=True, nogil=True)
def linear_outer_backward(a, b, i0, i1, out):
    """out[i, j] = a[i] * b[j] for i0 <= i < i1 and every j; ``out`` is (len(a), len(b))."""
    m = b.shape[0]
    for i in range(i0, i1):
        ai = a[i]
        row = out[i]
        for j in range(m):
            row[j] = ai * b[j]
