"""Compiled pooling kernels.

No validation happens here; :mod:`catlab.functional` checks arguments and
allocates outputs. Arrays are C-contiguous with the batch and channel axes
merged into one plane axis, so the loops run over independent planes:

- ``x3``  : (N*C, H, W)   input
- ``y3``  : (N*C, P, Q)   output

Each kernel handles the planes i0 <= i < i1 and releases the GIL, so
:mod:`catlab._threads` runs disjoint ranges of planes on several threads at
once; a plane is written by one call only, so they never race.

Window (p, q) starts at row ``p*sh - ph`` and column ``q*sw - pw`` and takes
every ``dil_h``-th row and ``dil_w``-th column (max pooling's dilation); only
its cells inside the input count. Padded positions never win a max; in an
average, the divisor is ``divisor`` if it is positive, otherwise the window's
size clipped to the padded input (``include_pad``) or the number of its cells
inside the input, PyTorch's rules (``ceil_mode`` windows may reach past the
padding, and that part is never counted). The caller guarantees every window
holds at least one input cell.
"""

import numpy as np

from ._jit import njit
from .conv import _qrange


@njit(cache=True)
def _clamp(o, k, d, n):
    """Window taps r in [lo, hi) with 0 <= o + r*d < n, for a window of k taps d apart starting at o."""
    lo = (-o + d - 1) // d if o < 0 else 0
    hi = (n - o + d - 1) // d
    if hi > k:
        hi = k
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True, nogil=True)
def max_pool2d_forward(x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, i0, i1, y3):
    """y3[i, p, q] = max over window (p, q) of plane x3[i], for planes i0 <= i < i1; NaN propagates.

    Separably, one output row at a time: the maximum over the window's rows,
    element by element along whole input rows (contiguous, which LLVM
    vectorises), then over the window's columns of that row of maxima (a
    select per tap over the whole row of windows). The maximum is associative,
    NaN included, so this equals the maximum over each window.
    """
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    colmax = np.empty(W, dtype=x3.dtype)  # maximum over the window's rows, per input column
    for i in range(i0, i1):
        xi = x3[i]
        yi = y3[i]
        for p in range(P):
            h0 = p * sh - ph
            r0, r1 = _clamp(h0, kh, dil_h, H)
            for v in range(W):
                colmax[v] = -np.inf
            for r in range(r0, r1):
                row = xi[h0 + r * dil_h]
                for v in range(W):
                    a = row[v]
                    c = colmax[v]
                    colmax[v] = a if (a > c) | (a != a) else c  # a NaN, once in, stays
            m = yi[p]
            for q in range(Q):
                m[q] = -np.inf
            for s in range(kw):
                lo, hi = _qrange(s, sw, pw, dil_w, W, Q)
                if hi <= lo:
                    continue
                src = colmax[lo * sw - pw + s * dil_w :]
                ms = m[lo:hi]
                for j in range(hi - lo):
                    v = src[j * sw]
                    mj = ms[j]
                    ms[j] = v if (v > mj) | (v != v) else mj


@njit(cache=True, nogil=True)
def max_pool2d_backward(x3, dy3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, i0, i1, dx3):
    """dx3[argmax of each window] += dy3[window], recomputing each argmax from ``x3``.

    As in PyTorch, the first maximum in row-major order wins, and in a window
    holding NaNs the last NaN wins (:func:`_argmax_row`, one output row at a
    time). Planes i0 <= i < i1 of ``dx3`` are overwritten.
    """
    NC, H, W = x3.shape
    P = dy3.shape[1]
    Q = dy3.shape[2]
    colmax = np.empty(W, dtype=x3.dtype)
    colarg = np.empty(W, dtype=np.int32)
    m = np.empty(Q, dtype=x3.dtype)  # one output row's maxima (not needed: the argmax is)
    am = np.empty(Q, dtype=np.int64)  # ... and their flat indices
    for i in range(i0, i1):
        d = dx3[i].reshape(H * W)
        for h in range(H * W):
            d[h] = 0.0
        g = dy3[i]
        for p in range(P):
            _argmax_row(x3[i], p, kh, kw, sh, sw, ph, pw, dil_h, dil_w, colmax, colarg, m, am)
            gp = g[p]
            for q in range(Q):
                if am[q] < H * W:
                    d[am[q]] += gp[q]


@njit(cache=True, inline="always")
def _argmax_row(xi, p, kh, kw, sh, sw, ph, pw, dil_h, dil_w, colmax, colarg, m, am):
    """m[q], am[q] = the maximum of window (p, q) of plane xi (H, W) and its flat index, for every q.

    Separably, as :func:`max_pool2d_forward`: first down the window's rows for every input column
    (``colmax``, ``colarg``: the first strict maximum, the last NaN), then across the window's columns.
    Among equal maxima the smallest flat index wins (it is the first in row-major order: an earlier
    row, or the same row and an earlier column), and among NaNs the largest (the last), so the result
    is PyTorch's rule for the whole window; a window of -inf points at its first cell inside the input.
    """
    H, W = xi.shape
    Q = m.shape[0]
    h0 = p * sh - ph
    r0, r1 = _clamp(h0, kh, dil_h, H)
    row = xi[h0 + r0 * dil_h]
    first = (h0 + r0 * dil_h) * W
    for v in range(W):  # the window's first row inside the input
        colmax[v] = row[v]
        colarg[v] = first + v
    for r in range(r0 + 1, r1):
        ih = h0 + r * dil_h
        row = xi[ih]
        base = ih * W
        for v in range(W):
            a = row[v]
            c = colmax[v]
            take = (a > c) | (a != a)
            colmax[v] = a if take else c
            colarg[v] = base + v if take else colarg[v]
    for q in range(Q):
        w0 = q * sw - pw
        c0, c1 = _clamp(w0, kw, dil_w, W)
        mq = colmax[w0 + c0 * dil_w]
        aq = colarg[w0 + c0 * dil_w]
        for c in range(c0 + 1, c1):
            v = colmax[w0 + c * dil_w]
            a = colarg[w0 + c * dil_w]
            if v > mq or (v == mq and a < aq) or (v != v and (mq == mq or a > aq)):
                mq = v
                aq = a
        m[q] = mq
        am[q] = aq


@njit(cache=True, nogil=True)
def max_pool2d_indices_forward(x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w, i0, i1, y3, ind3):
    """As :func:`max_pool2d_forward`, also writing each window's argmax to ``ind3`` (N*C, P, Q), int64.

    ``ind3[i, p, q]`` is the flat index ``h*W + w`` of the maximum in plane i,
    PyTorch's convention: the first strict maximum in row-major order wins, the
    last NaN wins over any number, and a window of -inf points at its first
    position inside the input.
    """
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    if (
        kh == 2
        and kw == 2
        and sh == 2
        and sw == 2
        and ph == 0
        and pw == 0
        and dil_h == 1
        and dil_w == 1
        and 2 * P <= H
        and 2 * Q <= W
    ):  # the common case, unrolled
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
    colmax = np.empty(W, dtype=x3.dtype)  # per input column: the maximum over the window's rows
    colarg = np.empty(W, dtype=np.int32)  # ... and where it is
    for i in range(i0, i1):
        for p in range(P):
            _argmax_row(x3[i], p, kh, kw, sh, sw, ph, pw, dil_h, dil_w, colmax, colarg, y3[i, p], ind3[i, p])


@njit(cache=True)
def indices_in_range(ind, plane):
    """Whether every entry of ``ind`` (int64, any shape) lies in [0, plane): one pass, stopping at the first
    one outside (NumPy's ``min()`` and ``max()`` took two passes and about 3 us on a tiny array)."""
    for v in ind.reshape(-1):
        if v < 0 or v >= plane:
            return False
    return True


@njit(cache=True, nogil=True)
def max_pool2d_indices_backward(dy2, ind2, i0, i1, dx2):
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


@njit(cache=True)
def _avg_windows(P, Q, kh, kw, sh, sw, ph, pw, H, W, include_pad, divisor):
    """The windows of every output row and column and their divisors, PyTorch's rules (module docstring).

    Returns ``t`` (4, max(P, Q)) int64: output row p's window takes input rows ``t[0, p]`` to
    ``t[1, p] - 1``, output column q's columns ``t[2, q]`` to ``t[3, q] - 1``; and ``div`` (P, Q) float64.
    Two allocations (a call on a tiny input is mostly its allocations) and one compiled function.
    """
    t = np.empty((4, max(P, Q)), dtype=np.int64)
    div = np.empty((P, Q), dtype=np.float64)
    for axis in range(2):
        n_out, k, st, pd, n = (P, kh, sh, ph, H) if axis == 0 else (Q, kw, sw, pw, W)
        for o in range(n_out):
            a = o * st - pd
            b = min(a + k, n + pd)  # the part past the padding (ceil_mode) never counts
            t[2 * axis, o] = max(a, 0)
            t[2 * axis + 1, o] = min(b, n)
    for p in range(P):
        alen = min(p * sh - ph + kh, H + ph) - (p * sh - ph)  # the window's padded length
        for q in range(Q):
            if divisor > 0:
                div[p, q] = divisor
            elif include_pad:
                div[p, q] = alen * (min(q * sw - pw + kw, W + pw) - (q * sw - pw))
            else:
                div[p, q] = (t[1, p] - t[0, p]) * (t[3, q] - t[2, q])
    return t, div


@njit(cache=True, nogil=True)
def avg_pool2d_forward(x3, kh, kw, sh, sw, ph, pw, include_pad, divisor, i0, i1, y3):
    """y3[i, p, q] = sum of x3[i] over window (p, q) / its divisor (see the module docstring), planes i0 <= i < i1.

    Separable: for each output row, the window's input rows are summed along whole rows (contiguous, so
    the loop vectorises), then each window's columns of that sum; in float64.
    """
    NC, H, W = x3.shape
    P = y3.shape[1]
    Q = y3.shape[2]
    t, div = _avg_windows(P, Q, kh, kw, sh, sw, ph, pw, H, W, include_pad, divisor)  # (4, max(P, Q)), (P, Q)
    a0, a1, b0, b1 = t[0], t[1], t[2], t[3]
    rs = np.empty(W, dtype=np.float64)  # the window rows' sum, column by column
    for i in range(i0, i1):
        for p in range(P):
            rs[:] = 0.0
            for ih in range(a0[p], a1[p]):
                for w in range(W):
                    rs[w] += x3[i, ih, w]
            for q in range(Q):
                acc = 0.0
                for iw in range(b0[q], b1[q]):
                    acc += rs[iw]
                y3[i, p, q] = acc / div[p, q]


@njit(cache=True, nogil=True)
def avg_pool2d_backward(dy3, kh, kw, sh, sw, ph, pw, include_pad, divisor, i0, i1, dx3):
    """dx3[window] += dy3[window] / its divisor for every window; planes i0 <= i < i1 of ``dx3`` are overwritten.

    Separable: for each output row, its windows' shares are added up column by column (in float64), then
    added to each of the window's input rows along whole rows.
    """
    NC, H, W = dx3.shape
    P = dy3.shape[1]
    Q = dy3.shape[2]
    t, div = _avg_windows(P, Q, kh, kw, sh, sw, ph, pw, H, W, include_pad, divisor)  # (4, max(P, Q)), (P, Q)
    a0, a1, b0, b1 = t[0], t[1], t[2], t[3]
    cs = np.empty(W, dtype=np.float64)  # one output row's gradient spread over the input columns
    for i in range(i0, i1):
        for h in range(H):
            for v in range(W):
                dx3[i, h, v] = 0.0
        for p in range(P):
            cs[:] = 0.0
            for q in range(Q):
                g = dy3[i, p, q] / div[p, q]
                for iw in range(b0[q], b1[q]):
                    cs[iw] += g
            for ih in range(a0[p], a1[p]):
                for w in range(W):
                    dx3[i, ih, w] += cs[w]
