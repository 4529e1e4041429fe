"""Compiled kernels for the matrix products of a linear layer.

``matmul_rows`` computes rows i0 <= i < i1 of ``a @ b`` and ``matvec_rows``
entries i0 <= i < i1 of ``a @ v``; ``np.dot`` inside calls the kernels' BLAS,
which runs single-threaded there (the caller arranges that), while
:mod:`catlab._threads` splits the rows among catlab's threads. So large
products never wake NumPy's own BLAS threads, which busy-wait after each
product and then slowed catlab's next layers (a LeNet training step by 2.4x).

At batch 1 the weight gradient ``dy.T @ x`` is an outer product: no
arithmetic to speak of, but a whole (out, in) matrix to write.
``linear_outer_backward`` writes rows i0 <= i < i1 (and takes the first-touch
page faults of a fresh output on several threads).
"""

import numpy as np

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


@njit(cache=True, nogil=True)
def matmul_rows(a, b, i0, i1, out):
    """out[i0:i1] = a[i0:i1] @ b; ``a`` (M, K) and ``out`` (M, N) C-contiguous, ``b`` (K, N) C or F."""
    if i1 > i0:
        np.dot(a[i0:i1], b, out[i0:i1])


@njit(cache=True, nogil=True)
def matvec_rows(a, v, i0, i1, out):
    """out[i0:i1] = a[i0:i1] @ v; ``a`` (M, K) C-contiguous, ``v`` (K,), ``out`` (M,)."""
    if i1 > i0:
        np.dot(a[i0:i1], v, out[i0:i1])
