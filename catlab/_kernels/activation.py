"""Compiled element-wise activation kernels on flat (size,) arrays.

Each kernel handles the elements i0 <= i < i1 and releases the GIL, so
:mod:`catlab._threads` runs disjoint ranges on several threads at once.
The loops index views of that range by the loop counter alone, which lets
LLVM vectorise them (an index such as ``i0 + j`` could be negative and would
need a wrap-around check).
"""

from ._jit import njit


@njit(cache=True, nogil=True)
def relu_forward(x, i0, i1, y):
    """y[i] = max(x[i], 0) for i0 <= i < i1; NaN stays NaN."""
    xs = x[i0:i1]
    ys = y[i0:i1]
    for j in range(i1 - i0):
        v = xs[j]
        ys[j] = v if not (v <= 0.0) else 0.0


@njit(cache=True, nogil=True)
def relu_backward(dy, x, i0, i1, dx):
    """dx[i] = 0 if x[i] <= 0 else dy[i] for i0 <= i < i1.

    As PyTorch: the subgradient 0 at x = 0, and at a NaN x the gradient passes.
    """
    dys = dy[i0:i1]
    xs = x[i0:i1]
    dxs = dx[i0:i1]
    for j in range(i1 - i0):
        dxs[j] = 0.0 if xs[j] <= 0.0 else dys[j]
