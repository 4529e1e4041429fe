"""Winograd F(m x m, 3 x 3) convolution for 3x3, stride-1 layers (forward only).

:func:`conv2d_winograd` computes exactly what :func:`catlab.functional.conv2d`
computes for ``stride=1, dilation=1, groups=1`` and a 3x3 kernel, up to
round-off, with fewer multiplications: an m x m block of outputs costs
``(m + 2)**2`` products per channel pair instead of ``9 * m**2`` (2.25x fewer
for m = 2, 4x fewer for m = 4). The price is extra additions in the
transforms and a larger round-off error (measured in ``tests/test_winograd.py``
and reported by ``python -m catlab.bench_winograd``).

:func:`use_winograd` says when it is faster than the im2col + BLAS path on
this kind of machine (see its docstring for the measured table).
"""

from __future__ import annotations

import numpy as np

from . import _threads
from . import _validate as V
from ._kernels import parallel as _par
from ._kernels import winograd as _kw

# Lavin & Gray (2016), "Fast Algorithms for Convolutional Neural Networks", F(2x2, 3x3) and F(4x4, 3x3).
_TRANSFORMS = {
    2: (
        np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64),  # B^T
        np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64),  # G
        np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64),  # A^T
    ),
    4: (
        np.array(
            [
                [4, 0, -5, 0, 1, 0],
                [0, -4, -4, 1, 1, 0],
                [0, 4, -4, -1, 1, 0],
                [0, -2, -1, 2, 1, 0],
                [0, 2, -1, -2, 1, 0],
                [0, 4, 0, -5, 0, 1],
            ],
            dtype=np.float64,
        ),
        np.array(
            [
                [1 / 4, 0, 0],
                [-1 / 6, -1 / 6, -1 / 6],
                [-1 / 6, 1 / 6, -1 / 6],
                [1 / 24, 1 / 12, 1 / 6],
                [1 / 24, -1 / 12, 1 / 6],
                [0, 0, 1],
            ],
            dtype=np.float64,
        ),
        np.array(
            [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]], dtype=np.float64
        ),
    ),
}

# tiles per block: the transformed inputs V and products M of a block, alpha**2 * (C + K) * tiles
# numbers, stay near the 1 MiB L2 cache (measured on VGG 64->64: 256 tiles for m = 4 was 15-20% slower)
# (G kron G)[a*alpha + b, r*3 + s] = G[a, r] G[b, s]: the filter transform as one (alpha**2, 9) matrix
_GG = {m: np.kron(G, G) for m, (_, G, _) in _TRANSFORMS.items()}

_TILE_TARGET = {2: 128, 4: 64}


def transform_weight(weight, m=2):
    """The transformed filters ``U[a*alpha + b, k, c] = (G w[k, c] G^T)[a, b]``, shape (alpha**2, K, C).

    Summed in float64 and rounded once to ``weight``'s dtype (a Numba loop: a
    NumPy matmul or einsum here would start BLAS threads for a tiny product).
    """
    K, C = weight.shape[:2]
    U = np.empty(((m + 2) ** 2, K, C), dtype=weight.dtype)
    _kw.transform_weight(np.ascontiguousarray(weight).reshape(K * C, 9), _GG[m], U.reshape(-1, K * C))
    return U


def _padding(padding):
    if isinstance(padding, str):
        if padding == "valid":
            return 0, 0
        if padding == "same":
            return 1, 1
        raise ValueError(f"padding: expected an int, a pair, 'valid' or 'same', got {padding!r}")
    ph, pw = V.int_tuple(padding, "padding", 2, 0)
    return ph, pw


def conv2d_winograd(x, weight, bias=None, padding=0, m=2, relu=False):
    """3x3, stride-1 convolution by Winograd's minimal filtering F(m x m, 3 x 3).

    ``y[n, k, p, q] = bias[k] + sum over c, r, s of weight[k, c, r, s] * x_pad[n, c, p + r, q + s]``,
    as :func:`catlab.functional.conv2d` with ``stride=1, dilation=1, groups=1``.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
        Input, float32 or float64 (never modified).
    weight : ndarray of shape (K, C, 3, 3)
        Filters, same dtype as ``x``.
    bias : ndarray of shape (K,), optional
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on each side.
    m : {2, 4}, default 2
        Output tile size: F(2x2, 3x3) or F(4x4, 3x3).
    relu : bool, default False
        Apply ReLU to the output (fused into the output transform).

    Returns
    -------
    y : ndarray of shape (N, K, H + 2*ph - 2, W + 2*pw - 2)

    Raises
    ------
    TypeError, ValueError
        As :func:`catlab.functional.conv2d`, and if the kernel is not 3x3 or ``m`` is not 2 or 4.

    Examples
    --------
    >>> x = np.ones((1, 1, 4, 4), dtype=np.float32)
    >>> w = np.ones((1, 1, 3, 3), dtype=np.float32)
    >>> conv2d_winograd(x, w)[0, 0]
    array([[9., 9.],
           [9., 9.]], dtype=float32)
    """
    x = V.float_array(x, "x", 4)
    weight = V.float_array(weight, "weight", 4)
    V.same_dtype(x, "x", weight=weight)
    if m not in _TRANSFORMS:
        raise ValueError(f"m: expected 2 or 4, got {m!r}")
    N, C, H, W = x.shape
    K = weight.shape[0]
    if weight.shape[1:] != (C, 3, 3):
        raise ValueError(f"weight: expected shape (K, {C}, 3, 3), got {V.shape_str(weight.shape)}")
    if bias is None:
        b = np.zeros(K, dtype=x.dtype)
    else:
        b = V.float_array(bias, "bias", 1)
        V.same_dtype(x, "x", bias=b)
        if b.shape != (K,):
            raise ValueError(f"bias: expected shape ({K},), got {V.shape_str(b.shape)}")
    ph, pw = _padding(padding)
    P, Q = H + 2 * ph - 2, W + 2 * pw - 2
    if P < 1 or Q < 1:
        raise ValueError(f"x: the 3x3 kernel is larger than the padded input {H + 2 * ph}x{W + 2 * pw}")
    x = np.ascontiguousarray(x)
    b = np.ascontiguousarray(b)
    U = transform_weight(weight, m)
    y = np.empty((N, K, P, Q), dtype=x.dtype)
    _run(x, U, b, ph, pw, P, Q, m, bool(relu), y)
    return y


def _run(x, U, b, ph, pw, P, Q, m, relu, y, threads=None):
    """Cut the N * TH tile rows into chunks and run them on up to ``threads`` threads."""
    N, C = x.shape[:2]
    E, K, _ = U.shape
    TH = -(-P // m)
    TW = -(-Q // m)
    items = N * TH
    T = _threads.num_threads() if threads is None else threads
    n = _threads.chunks_for(items, E * K * C * TW, T)
    per_chunk = -(-items // n)
    rows_blk = max(1, min(per_chunk, _TILE_TARGET[m] // TW))

    kernel, parallel = (
        (_kw.winograd2_chunk, _par.winograd2_chunk) if m == 2 else (_kw.winograd4_chunk, _par.winograd4_chunk)
    )
    _threads.run_kernel(kernel, parallel, items, n, (x, U, b, ph, pw, P, Q, rows_blk), (relu, y), blas=True)


def use_winograd(N, C, K, H, W, R=3, S=3, stride=1, padding=1, dilation=1, groups=1):
    """The tile size (2 or 4) to pass to :func:`conv2d_winograd`, or 0 where im2col + BLAS is faster.

    A forward pass qualifies only with a 3x3 kernel, stride 1, dilation 1 and
    one group. Measured (``python -m catlab.bench_winograd``, 2026-12-02, 2-core
    AMD EPYC (Zen 5), 2 threads, contenders interleaved with settling calls):
    time of ``F.conv2d`` without Winograd (im2col or wide columns + BLAS) over
    the time of F(2x2, 3x3) and of F(4x4, 3x3), padding 1, C = K; > 1 means
    Winograd is faster::

        ==============  =====  ===========  ===========
        C, H x W        N      m = 2        m = 4
        ==============  =====  ===========  ===========
        64, 32 x 32     64     1.13         1.09
        64, 32 x 32     1      1.14         0.90
        32, 32 x 32     64     1.12         0.97
        16, 32 x 32     64     1.57         1.14
        64, 15-16 wide  64     1.05-1.12    0.98-1.09
        32, 15-16 wide  64     0.97-1.05    0.85-0.89
        16, 15-16 wide  64     0.50-0.54    0.43-0.45
        16-64, 8 x 8    64     0.47-1.04    0.34-0.63
        32-64, 15-32    1      1.29-1.76    0.98-1.28
        16, 15-32       1      1.21-1.41    1.09-1.24
        16-64, 8 x 8    1      0.86-1.39    0.48-1.03
        ==============  =====  ===========  ===========

    So F(2x2, 3x3) is chosen (never F(4x4, 3x3), which also has about 20
    times its round-off error) with at least 16 input and output channels and
    an output of at least 32 x 32, or at least 15 x 15 with 32 channels or a
    batch of one. More channels only grow the share of the work Winograd
    saves, so the rule extends to them.

    Examples
    --------
    >>> use_winograd(64, 64, 64, 32, 32), use_winograd(1, 16, 16, 16, 16), use_winograd(64, 16, 16, 8, 8)
    (2, 2, 0)
    >>> use_winograd(64, 64, 64, 32, 32, R=5, S=5), use_winograd(64, 64, 64, 32, 32, stride=2)
    (0, 0)
    """
    pair = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    if (R, S) != (3, 3) or pair(stride) != (1, 1) or pair(dilation) != (1, 1) or groups != 1:
        return 0
    if isinstance(padding, str):
        ph, pw = (1, 1) if padding == "same" else (0, 0)
    else:
        ph, pw = pair(padding)
    P, Q = H + 2 * ph - 2, W + 2 * pw - 2
    if min(C, K) < 16 or P < 1 or Q < 1:
        return 0
    if P * Q >= 1024 or (P * Q >= 225 and (min(C, K) >= 32 or N == 1)):
        return 2
    return 0
