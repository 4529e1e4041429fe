"""Compiled element-wise activation kernels on flat (size,) arrays.

Each kernel handles the elements i0 <= i < i1 and releases the GIL, so
:mod:`catlab._threads` runs disjoint ranges on several threads at once.
"""

from numba import njit


@njit(cache=True, nogil=True)
def relu_forward(x, i0, i1, y):
    """y[i] = max(x[i], 0); NaN stays NaN."""
    for i in range(i0, i1):
        v = x[i]
        y[i] = v if not (v <= 0.0) else 0.0


@njit(cache=True, nogil=True)
def relu_backward(dy, x, i0, i1, dx):
    """dx[i] = dy[i] if x[i] > 0 else 0 (the subgradient 0 at x = 0, as in PyTorch)."""
    for i in range(i0, i1):
        dx[i] = dy[i] if x[i] > 0.0 else 0.0
