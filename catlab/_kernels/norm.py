"""Compiled batch-normalization, adaptive-average-pooling and dropout kernels.

No validation happens here; :mod:`catlab.functional` checks arguments and
allocates outputs. Batch-norm arrays are viewed as ``x3`` (N, C, L) with
L = H*W, and each kernel handles the channels c0 <= c < c1 (pooling: the
planes i0 <= i < i1), releasing the GIL, so :mod:`catlab._threads` runs
disjoint ranges on several threads; no two calls write the same channel.

Per-channel sums are accumulated in float64 around a per-channel ``shift``
(the first value, or the known mean), which keeps the one-pass variance
``E[(x-k)^2] - E[x-k]^2`` accurate in float32. ``reassoc`` lets LLVM
vectorise the sums (it may add in a different order than the loop says).
"""

import numpy as np

from ._jit import njit  # falls back to a private cache or none in read-only installs

_FM = {"reassoc", "contract"}


@njit(cache=True, nogil=True, fastmath=_FM)
def sums(x3, shift, c0, c1, sx, sxx):
    """sx[c] = sum (x - shift[c]), sxx[c] = sum (x - shift[c])^2 over n and l, for c0 <= c < c1 (float64)."""
    N, _, L = x3.shape
    for c in range(c0, c1):
        k = shift[c]
        s = 0.0
        ss = 0.0
        for n in range(N):
            row = x3[n, c]
            for j in range(L):
                d = np.float64(row[j]) - k
                s += d
                ss += d * d
        sx[c] = s
        sxx[c] = ss


@njit(cache=True, nogil=True, fastmath=_FM)
def sums_backward(x3, dy3, shift, c0, c1, sx, sxx, sdy, sdyx):
    """As :func:`sums`, plus sdy[c] = sum dy and sdyx[c] = sum dy * (x - shift[c]), in one pass."""
    N, _, L = x3.shape
    for c in range(c0, c1):
        k = shift[c]
        s = 0.0
        ss = 0.0
        g = 0.0
        gx = 0.0
        for n in range(N):
            row = x3[n, c]
            drow = dy3[n, c]
            for j in range(L):
                d = np.float64(row[j]) - k
                e = np.float64(drow[j])
                s += d
                ss += d * d
                g += e
                gx += e * d
        sx[c] = s
        sxx[c] = ss
        sdy[c] = g
        sdyx[c] = gx


@njit(cache=True, nogil=True)
def scale_shift(x3, a, b, c0, c1, y3):
    """y3[n, c, l] = x3[n, c, l] * a[c] + b[c] for c0 <= c < c1."""
    N, _, L = x3.shape
    for c in range(c0, c1):
        ac = a[c]
        bc = b[c]
        for n in range(N):
            row = x3[n, c]
            out = y3[n, c]
            for j in range(L):
                out[j] = row[j] * ac + bc


@njit(cache=True, nogil=True)
def scale_shift2(dy3, x3, a, k, b, c0, c1, dx3):
    """dx3[n, c, l] = dy3[n, c, l] * a[c] + x3[n, c, l] * k[c] + b[c] for c0 <= c < c1."""
    N, _, L = x3.shape
    for c in range(c0, c1):
        ac = a[c]
        kc = k[c]
        bc = b[c]
        for n in range(N):
            row = x3[n, c]
            drow = dy3[n, c]
            out = dx3[n, c]
            for j in range(L):
                out[j] = drow[j] * ac + row[j] * kc + bc


@njit(cache=True, nogil=True)
def forward_coefficients(training, shift, sx, sxx, M, rm, rv, weight, bias, momentum, eps, a, b, new_rm, new_rv):
    """Per channel c, the forward's ``y = x * a[c] + b[c]`` and the updated running statistics (float64 math).

    In training the mean and biased variance come from the sums of :func:`sums` around ``shift`` over M
    values, and, where ``rm`` and ``rv`` are given (length C, else length 0), ``new_rm = (1 - momentum) *
    rm + momentum * mean`` and ``new_rv`` likewise with the unbiased variance; in evaluation the mean and
    variance are ``rm`` and ``rv``. ``weight`` and ``bias`` of length 0 stand for 1 and 0. One compiled
    call instead of some twenty NumPy operations on (C,) vectors, each of which costs about a
    microsecond: at batch 1 those were as long as the two passes over the data.
    """
    for c in range(a.shape[0]):
        if training:
            m = sx[c] / M
            mean = shift[c] + m
            var = max(sxx[c] / M - m * m, 0.0)
        else:
            mean = np.float64(rm[c])
            var = np.float64(rv[c])
        ac = 1.0 / np.sqrt(var + eps)
        if weight.shape[0]:
            ac *= np.float64(weight[c])
        bc = -mean * ac
        if bias.shape[0]:
            bc += np.float64(bias[c])
        a[c] = ac
        b[c] = bc
        if training and rm.shape[0]:
            new_rm[c] = (1.0 - momentum) * np.float64(rm[c]) + momentum * mean
            new_rv[c] = (1.0 - momentum) * np.float64(rv[c]) + momentum * var * (M / (M - 1.0))


@njit(cache=True, nogil=True)
def backward_coefficients(training, shift, sx, sxx, sdy, sdyx, M, rv, weight, eps, a, k, b, dweight, dbias):
    """Per channel c, the backward's ``dx = dy * a[c] + x * k[c] + b[c]``, ``dweight`` and ``dbias``.

    From the sums of :func:`sums_backward`: in training ``dx = weight * invstd * (dy - mean(dy) - xhat *
    mean(dy * xhat))``, in evaluation ``weight * invstd * dy`` (``invstd`` from ``rv``); ``weight`` of
    length 0 stands for 1. Float64 math, as :func:`forward_coefficients`.
    """
    for c in range(a.shape[0]):
        w = np.float64(weight[c]) if weight.shape[0] else 1.0
        if training:
            m = sx[c] / M
            mean = shift[c] + m
            invstd = 1.0 / np.sqrt(max(sxx[c] / M - m * m, 0.0) + eps)
            dw = invstd * (sdyx[c] - m * sdy[c])  # sum of dy * xhat
            ac = w * invstd
            kc = -ac * invstd * dw / M
            bc = -ac * sdy[c] / M - kc * mean
        else:
            invstd = 1.0 / np.sqrt(np.float64(rv[c]) + eps)
            dw = invstd * sdyx[c]
            ac = w * invstd
            kc = 0.0
            bc = 0.0
        a[c] = ac
        k[c] = kc
        b[c] = bc
        dweight[c] = dw
        dbias[c] = sdy[c]


@njit(cache=True, nogil=True)
def _start(i, n, out):
    return (i * n) // out


@njit(cache=True, nogil=True)
def _end(i, n, out):
    return -((-(i + 1) * n) // out)


@njit(cache=True, nogil=True, fastmath=_FM)
def global_avg_pool_forward(x2, i0, i1, y1):
    """y1[i] = mean of x2[i] (N*C, H*W), for rows i0 <= i < i1: global average pooling."""
    L = x2.shape[1]
    for i in range(i0, i1):
        row = x2[i]
        s = 0.0
        for j in range(L):
            s += np.float64(row[j])
        y1[i] = s / L


@njit(cache=True, nogil=True, fastmath=_FM)
def adaptive_avg_pool2d_forward(x3, i0, i1, y3):
    """y3[i, p, q] = mean of x3[i] over rows [floor(p*H/P), ceil((p+1)*H/P)) and likewise columns."""
    _, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    for i in range(i0, i1):
        xi = x3[i]
        for p in range(P):
            h0 = _start(p, H, P)
            h1 = _end(p, H, P)
            for q in range(Q):
                w0 = _start(q, W, Q)
                w1 = _end(q, W, Q)
                s = 0.0
                for h in range(h0, h1):
                    row = xi[h]
                    for v in range(w0, w1):
                        s += row[v]
                y3[i, p, q] = s / ((h1 - h0) * (w1 - w0))


@njit(cache=True, nogil=True)
def adaptive_avg_pool2d_backward(dy3, i0, i1, dx3):
    """Planes i0 <= i < i1 of dx3 (N*C, H, W) overwritten: each window's dy spread evenly over it (overlaps add)."""
    _, H, W = dx3.shape
    P = dy3.shape[1]
    Q = dy3.shape[2]
    for i in range(i0, i1):
        dxi = dx3[i]
        if P == 1 and Q == 1:  # global average pooling: one value for the whole plane
            g = dy3[i, 0, 0] / (H * W)
            for h in range(H):
                row = dxi[h]
                for v in range(W):
                    row[v] = g
            continue
        for h in range(H):
            for v in range(W):
                dxi[h, v] = 0.0
        for p in range(P):
            h0 = _start(p, H, P)
            h1 = _end(p, H, P)
            for q in range(Q):
                w0 = _start(q, W, Q)
                w1 = _end(q, W, Q)
                g = dy3[i, p, q] / ((h1 - h0) * (w1 - w0))
                for h in range(h0, h1):
                    row = dxi[h]
                    for v in range(w0, w1):
                        row[v] += g


@njit(cache=True, nogil=True)
def masked_scale(x, mask, scale, i0, i1, y):
    """y[i] = x[i] * scale where mask[i], else 0, for i0 <= i < i1 (flat arrays; dropout's forward and backward)."""
    xs = x[i0:i1]
    ms = mask[i0:i1]
    ys = y[i0:i1]
    for j in range(i1 - i0):
        ys[j] = xs[j] * scale if ms[j] else 0.0
