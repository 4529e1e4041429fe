"""Compiled element-wise activation kernels on flat (size,) arrays.

Each element is read and written by one iteration only, so the parallel
loops never race.
"""

from numba import njit, prange


@njit(cache=True, parallel=True)
def relu_forward(x, y):
    """y[i] = max(x[i], 0); NaN stays NaN."""
    for i in prange(x.shape[0]):
        v = x[i]
        y[i] = v if not (v <= 0.0) else 0.0


@njit(cache=True, parallel=True)
def relu_backward(dy, x, dx):
    """dx[i] = dy[i] if x[i] > 0 else 0 (the subgradient 0 at x = 0, as in PyTorch)."""
    for i in prange(x.shape[0]):
        dx[i] = dy[i] if x[i] > 0.0 else 0.0
