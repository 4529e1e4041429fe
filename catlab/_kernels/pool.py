"""Compiled pooling kernels.

No validation happens here; :mod:`catlab.functional` checks arguments and
allocates outputs. Arrays are C-contiguous with the batch and channel axes
merged into one plane axis, so the loops run over independent planes:

- ``x3``  : (N*C, H, W)   input
- ``y3``  : (N*C, P, Q)   output

Each kernel handles the planes i0 <= i < i1 and releases the GIL, so
:mod:`catlab._threads` runs disjoint ranges of planes on several threads at
once; a plane is written by one call only, so they never race. Padding is ``ph`` rows on top and bottom and ``pw``
columns left and right; padded positions never win a max and count as zeros
in an average (PyTorch's ``count_include_pad=True``).
"""

import numpy as np

from ._jit import njit
from .conv import _qrange


@njit(cache=True)
def _clamp(o, k, n):
    """Window offsets r in [lo, hi) with 0 <= o + r < n, for a window of k starting at o."""
    lo = -o if o < 0 else 0
    hi = n - o if n - o < k else k
    return lo, hi


@njit(cache=True, nogil=True)
def max_pool2d_forward(x3, kh, kw, sh, sw, ph, pw, i0, i1, y3):
    """y3[i, p, q] = max over the window of x3[i] at (p*sh - ph, q*sw - pw), for planes i0 <= i < i1; NaN propagates.

    One output row at a time: for each window offset (r, s), a select over the
    whole row of windows, which LLVM vectorises.
    """
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    for i in range(i0, i1):
        xi = x3[i]
        yi = y3[i]
        for p in range(P):
            h0 = p * sh - ph
            r0, r1 = _clamp(h0, kh, H)
            m = yi[p]
            for q in range(Q):
                m[q] = -np.inf
            for r in range(r0, r1):
                row = xi[h0 + r]
                for s in range(kw):
                    lo, hi = _qrange(s, sw, pw, 1, W, Q)
                    if hi <= lo:
                        continue
                    src = row[lo * sw - pw + s:]
                    ms = m[lo:hi]
                    for j in range(hi - lo):
                        v = src[j * sw]
                        mj = ms[j]
                        ms[j] = v if (v > mj) | (v != v) else mj  # a NaN, once in, stays


@njit(cache=True, nogil=True)
def max_pool2d_backward(x3, dy3, kh, kw, sh, sw, ph, pw, i0, i1, dx3):
    """dx3[argmax of each window] += dy3[window], recomputing each argmax from ``x3``.

    As in PyTorch, the first maximum in row-major order wins, and in a window
    holding NaNs the last NaN wins.

    Planes i0 <= i < i1 of ``dx3`` are overwritten.
    """
    NC, H, W = x3.shape
    P = dy3.shape[1]
    Q = dy3.shape[2]
    for i in range(i0, i1):
        for h in range(H):
            for v in range(W):
                dx3[i, h, v] = 0.0
        for p in range(P):
            h0 = p * sh - ph
            for q in range(Q):
                w0 = q * sw - pw
                m = -np.inf
                am = -1
                an = -1
                for r in range(kh):
                    ih = h0 + r
                    if ih < 0 or ih >= H:
                        continue
                    for s in range(kw):
                        iw = w0 + s
                        if iw < 0 or iw >= W:
                            continue
                        v = x3[i, ih, iw]
                        if am < 0 or v > m or np.isnan(v):  # as PyTorch: the last NaN wins
                            m = v
                            am = ih
                            an = iw
                if am >= 0:
                    dx3[i, am, an] += dy3[i, p, q]


@njit(cache=True, nogil=True)
def max_pool2d_forward_indices(x3, kh, kw, sh, sw, ph, pw, i0, i1, y3, ind3):
    """As :func:`max_pool2d_forward`, also writing each window's argmax to ``ind3`` (N*C, P, Q), int64.

    ``ind3[i, p, q]`` is the flat index ``h*W + w`` of the maximum in plane i,
    PyTorch's convention: the first strict maximum in row-major order wins, the
    last NaN wins over any number, and a window of -inf points at its first
    position inside the input.
    """
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    if kh == 2 and kw == 2 and sh == 2 and sw == 2 and ph == 0 and pw == 0:  # the common case, unrolled
        for i in range(i0, i1):
            xi = x3[i]
            for p in range(P):
                a = xi[2 * p]
                b = xi[2 * p + 1]
                ym = y3[i, p]
                yi = ind3[i, p]
                base = 2 * p * W
                for q in range(Q):
                    m = a[2 * q]
                    am = base + 2 * q
                    v = a[2 * q + 1]
                    take = (v > m) | (v != v)
                    am = base + 2 * q + 1 if take else am
                    m = v if take else m
                    v = b[2 * q]
                    take = (v > m) | (v != v)
                    am = base + W + 2 * q if take else am
                    m = v if take else m
                    v = b[2 * q + 1]
                    take = (v > m) | (v != v)
                    am = base + W + 2 * q + 1 if take else am
                    m = v if take else m
                    ym[q] = m
                    yi[q] = am
        return
    for i in range(i0, i1):
        xi = x3[i]
        yi = y3[i]
        ii = ind3[i]
        for p in range(P):
            h0 = p * sh - ph
            r0, r1 = _clamp(h0, kh, H)
            for q in range(Q):
                w0 = q * sw - pw
                c0, c1 = _clamp(w0, kw, W)
                m = -np.inf
                am = (h0 + r0) * W + w0 + c0
                for r in range(r0, r1):
                    row = xi[h0 + r]
                    base = (h0 + r) * W + w0
                    for s in range(c0, c1):
                        v = row[w0 + s]
                        take = (v > m) | (v != v)
                        am = base + s if take else am
                        m = v if take else m
                yi[p, q] = m
                ii[p, q] = am


@njit(cache=True, nogil=True)
def max_pool2d_backward_indices(dy2, ind2, i0, i1, dx2):
    """dx2[i, ind2[i, k]] += dy2[i, k]: scatter (N*C, P*Q) gradients to (N*C, H*W) planes by stored argmax.

    Planes i0 <= i < i1 of ``dx2`` are overwritten; every index must lie in [0, H*W).
    """
    HW = dx2.shape[1]
    PQ = dy2.shape[1]
    for i in range(i0, i1):
        d = dx2[i]
        for h in range(HW):
            d[h] = 0.0
        g = dy2[i]
        k = ind2[i]
        for j in range(PQ):
            d[k[j]] += g[j]


@njit(cache=True, nogil=True)
def avg_pool2d_forward(x3, kh, kw, sh, sw, ph, pw, i0, i1, y3):
    """y3[i, p, q] = sum of x3[i] over the window / (kh*kw), padded zeros included, for planes i0 <= i < i1."""
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    inv = 1.0 / (kh * kw)
    for i in range(i0, i1):
        for p in range(P):
            h0 = p * sh - ph
            for q in range(Q):
                w0 = q * sw - pw
                acc = 0.0
                for r in range(kh):
                    ih = h0 + r
                    if ih < 0 or ih >= H:
                        continue
                    for s in range(kw):
                        iw = w0 + s
                        if iw >= 0 and iw < W:
                            acc += x3[i, ih, iw]
                y3[i, p, q] = acc * inv


@njit(cache=True, nogil=True)
def avg_pool2d_backward(dy3, kh, kw, sh, sw, ph, pw, i0, i1, dx3):
    """dx3[window] += dy3[window] / (kh*kw) for every window; planes i0 <= i < i1 of ``dx3`` are overwritten."""
    NC, H, W = dx3.shape
    P = dy3.shape[1]
    Q = dy3.shape[2]
    inv = 1.0 / (kh * kw)
    for i in range(i0, i1):
        for h in range(H):
            for v in range(W):
                dx3[i, h, v] = 0.0
        for p in range(P):
            h0 = p * sh - ph
            for q in range(Q):
                w0 = q * sw - pw
                g = dy3[i, p, q] * inv
                for r in range(kh):
                    ih = h0 + r
                    if ih < 0 or ih >= H:
                        continue
                    for s in range(kw):
                        iw = w0 + s
                        if iw >= 0 and iw < W:
                            dx3[i, ih, iw] += g
