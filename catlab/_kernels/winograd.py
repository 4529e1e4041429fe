"""Winograd F(m x m, 3 x 3) convolution kernels (stride 1, dilation 1, groups 1), m = 2 and 4.

No validation happens here: :mod:`catlab._winograd` checks the arguments,
transforms the filters and allocates the output. Layouts (all C-contiguous):

- ``x``  : (N, C, H, W)      input
- ``U``  : (E, K, C)         transformed filters, ``E = alpha**2``, ``alpha = m + 2``;
  ``U[a*alpha + b, k, c] = (G w[k, c] G^T)[a, b]``
- ``b``  : (K,)              bias
- ``y``  : (N, K, P, Q)      output

The output is cut into m x m tiles, ``TH = ceil(P / m)`` tile rows and
``TW = ceil(Q / m)`` tile columns; tile (i, j) reads the alpha x alpha patch d
of the zero-padded input whose top-left corner is (i*m - ph, j*m - pw) (zeros
also past the bottom/right edge, so odd sizes work; outputs past P, Q are
computed but never stored). Per tile and channel the patch becomes
``V = B^T d B``; the alpha**2 elementwise products summed over channels are
alpha**2 matrix products ``M[e] = U[e] @ V[e]`` (K x C times C x tiles, BLAS
through ``np.dot``), and each output tile is ``A^T M A + bias`` (then ReLU if
asked). B^T, G and A^T are those of Lavin & Gray (2016), written out as the
1-D transforms ``_bt*`` and ``_at*`` below.

Work items are tile rows of one sample, ``it = n*TH + i``. A chunk does the
items ``i0 <= it < i1`` in blocks of ``rows_blk`` items with its own
workspaces (sized per block, never per batch) and releases the GIL, so
:mod:`catlab._threads` runs chunks at the same time; every chunk writes only
its own outputs, so results do not depend on the number of threads. The BLAS
called inside must run single-threaded (the caller arranges that).

Every transform loop runs over whole padded rows or over the tiles of a row,
with the 1-D transform inlined in its body, so LLVM vectorises it.
"""

import numpy as np

from ._jit import njit  # falls back to a private cache or none in read-only installs


@njit(cache=True, inline="always")
def _bt4(d0, d1, d2, d3):
    """B^T d for F(2, 3): the 4 input-transform outputs of a length-4 segment."""
    return d0 - d2, d1 + d2, d2 - d1, d1 - d3


@njit(cache=True, inline="always")
def _at4(m0, m1, m2, m3):
    """A^T m for F(2, 3): the 2 outputs of a length-4 transformed segment."""
    return m0 + m1 + m2, m1 - m2 - m3


@njit(cache=True, inline="always")
def _bt6(d0, d1, d2, d3, d4, d5):
    """B^T d for F(4, 3): the 6 input-transform outputs of a length-6 segment."""
    # scaling by 2 and 4 as additions keeps float32 in float32 (and is exact)
    e = d0 - d2
    f = d1 + d2
    g = d1 - d2
    h = d1 - d3
    k = d4 - d2
    e2 = e + e
    f2 = f + f
    g2 = g + g
    h2 = h + h
    h4 = h2 + h2
    return e2 + e2 - d2 + d4, d3 + d4 - (f2 + f2), g2 + g2 + d4 - d3, k - h2, k + h2, h4 - d3 + d5


@njit(cache=True, inline="always")
def _at6(m0, m1, m2, m3, m4, m5):
    """A^T m for F(4, 3): the 4 outputs of a length-6 transformed segment."""
    a = m1 + m2
    s = m1 - m2
    c = m3 + m4
    d = m3 - m4
    d2 = d + d
    d4 = d2 + d2
    c2 = c + c
    return m0 + a + c, s + d2, a + c2 + c2, s + d4 + d4 + m5


@njit(cache=True)
def _pad_row(x, n, c, ih, pw, row):
    """row[j] = x[n, c, ih, j - pw], 0 outside the input (ih too)."""
    H = x.shape[2]
    W = x.shape[3]
    Wp = row.shape[0]
    if ih < 0 or ih >= H:
        for j in range(Wp):
            row[j] = 0.0
        return
    hi = min(Wp, W + pw)
    for j in range(pw):
        row[j] = 0.0
    src = x[n, c, ih, 0 : hi - pw]
    dst = row[pw:hi]
    for j in range(hi - pw):
        dst[j] = src[j]
    for j in range(hi, Wp):
        row[j] = 0.0


@njit(cache=True, nogil=True)
def winograd2_chunk(x, U, b, ph, pw, P, Q, rows_blk, i0, i1, relu, y):
    """Items i0 <= it < i1 (tile rows ``it = n*TH + i``) of the F(2x2, 3x3) convolution, into ``y``."""
    C = x.shape[1]
    E, K, _ = U.shape
    TH = (P + 1) // 2
    TW = (Q + 1) // 2
    Wp = (TW + 1) * 2  # padded width of one tile row (the tiles read the first TW*2 + 2 columns)
    dt = x.dtype
    Vflat = np.empty(E * C * rows_blk * TW, dt)
    Mflat = np.empty(E * K * rows_blk * TW, dt)
    buf = np.empty((4, Wp), dt)
    tmp = np.empty((2, 4, TW + 1), dt)
    full = Q // 2  # tiles with all 2 columns inside the output
    s = np.empty((4, 2, TW), dt)
    o = np.empty((2, 2, TW), dt)
    for blk0 in range(i0, i1, rows_blk):
        blk1 = min(i1, blk0 + rows_blk)
        nt = (blk1 - blk0) * TW
        V = Vflat[: E * C * nt].reshape((E, C, nt))
        M = Mflat[: E * K * nt].reshape((E, K, nt))
        # input transform: V[a*4 + e, c, t] = (B^T d B)[a, e]
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for c in range(C):
                for a in range(4):
                    _pad_row(x, n, c, i * 2 - ph + a, pw, buf[a])
                b0 = buf[0]
                b1 = buf[1]
                b2 = buf[2]
                b3 = buf[3]
                for k in range(TW + 1):
                    q = k * 2 + 0
                    v0, v1, v2, v3 = _bt4(b0[q], b1[q], b2[q], b3[q])
                    tmp[0, 0, k] = v0
                    tmp[0, 1, k] = v1
                    tmp[0, 2, k] = v2
                    tmp[0, 3, k] = v3
                    q = k * 2 + 1
                    v0, v1, v2, v3 = _bt4(b0[q], b1[q], b2[q], b3[q])
                    tmp[1, 0, k] = v0
                    tmp[1, 1, k] = v1
                    tmp[1, 2, k] = v2
                    tmp[1, 3, k] = v3
                for a in range(4):
                    h0 = tmp[0, a]
                    h1 = tmp[1, a]
                    h2 = tmp[0, a, 1:]
                    h3 = tmp[1, a, 1:]
                    w0 = V[a * 4 + 0, c, t0 : t0 + TW]
                    w1 = V[a * 4 + 1, c, t0 : t0 + TW]
                    w2 = V[a * 4 + 2, c, t0 : t0 + TW]
                    w3 = V[a * 4 + 3, c, t0 : t0 + TW]
                    for j in range(TW):
                        v0, v1, v2, v3 = _bt4(h0[j], h1[j], h2[j], h3[j])
                        w0[j] = v0
                        w1[j] = v1
                        w2[j] = v2
                        w3[j] = v3
        # 16 products over the channels
        for e in range(E):
            np.dot(U[e], V[e], M[e])
        # output transform: y_tile = A^T M A + bias
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for k in range(K):
                bk = b[k]
                for a in range(4):
                    u0 = M[a * 4 + 0, k, t0 : t0 + TW]
                    u1 = M[a * 4 + 1, k, t0 : t0 + TW]
                    u2 = M[a * 4 + 2, k, t0 : t0 + TW]
                    u3 = M[a * 4 + 3, k, t0 : t0 + TW]
                    s0 = s[a, 0]
                    s1 = s[a, 1]
                    for j in range(TW):
                        v0, v1 = _at4(u0[j], u1[j], u2[j], u3[j])
                        s0[j] = v0
                        s1[j] = v1
                for e in range(2):
                    u0 = s[0, e]
                    u1 = s[1, e]
                    u2 = s[2, e]
                    u3 = s[3, e]
                    o0 = o[0, e]
                    o1 = o[1, e]
                    for j in range(TW):
                        v0, v1 = _at4(u0[j], u1[j], u2[j], u3[j])
                        o0[j] = v0 + bk
                        o1[j] = v1 + bk
                    if relu:
                        for r in range(2):
                            orow = o[r, e]
                            for j in range(TW):
                                if orow[j] < 0.0:  # noqa: PLR1730  (keeps NaN, as relu does)
                                    orow[j] = 0.0
                for r in range(2):
                    p = i * 2 + r
                    if p >= P:
                        break
                    yr = y[n, k, p]
                    o0 = o[r, 0]
                    o1 = o[r, 1]
                    for j in range(full):  # whole tiles: one interleaved store per tile
                        q = j * 2
                        yr[q + 0] = o0[j]
                        yr[q + 1] = o1[j]
                    for e in range(Q - full * 2):  # the last, partial tile
                        yr[full * 2 + e] = o[r, e, full]


@njit(cache=True, nogil=True)
def winograd4_chunk(x, U, b, ph, pw, P, Q, rows_blk, i0, i1, relu, y):
    """Items i0 <= it < i1 (tile rows ``it = n*TH + i``) of the F(4x4, 3x3) convolution, into ``y``."""
    C = x.shape[1]
    E, K, _ = U.shape
    TH = (P + 3) // 4
    TW = (Q + 3) // 4
    Wp = (TW + 1) * 4  # padded width of one tile row (the tiles read the first TW*4 + 2 columns)
    dt = x.dtype
    Vflat = np.empty(E * C * rows_blk * TW, dt)
    Mflat = np.empty(E * K * rows_blk * TW, dt)
    buf = np.empty((6, Wp), dt)
    tmp = np.empty((4, 6, TW + 1), dt)
    full = Q // 4  # tiles with all 4 columns inside the output
    s = np.empty((6, 4, TW), dt)
    o = np.empty((4, 4, TW), dt)
    for blk0 in range(i0, i1, rows_blk):
        blk1 = min(i1, blk0 + rows_blk)
        nt = (blk1 - blk0) * TW
        V = Vflat[: E * C * nt].reshape((E, C, nt))
        M = Mflat[: E * K * nt].reshape((E, K, nt))
        # input transform: V[a*6 + e, c, t] = (B^T d B)[a, e]
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for c in range(C):
                for a in range(6):
                    _pad_row(x, n, c, i * 4 - ph + a, pw, buf[a])
                b0 = buf[0]
                b1 = buf[1]
                b2 = buf[2]
                b3 = buf[3]
                b4 = buf[4]
                b5 = buf[5]
                for k in range(TW + 1):
                    q = k * 4 + 0
                    v0, v1, v2, v3, v4, v5 = _bt6(b0[q], b1[q], b2[q], b3[q], b4[q], b5[q])
                    tmp[0, 0, k] = v0
                    tmp[0, 1, k] = v1
                    tmp[0, 2, k] = v2
                    tmp[0, 3, k] = v3
                    tmp[0, 4, k] = v4
                    tmp[0, 5, k] = v5
                    q = k * 4 + 1
                    v0, v1, v2, v3, v4, v5 = _bt6(b0[q], b1[q], b2[q], b3[q], b4[q], b5[q])
                    tmp[1, 0, k] = v0
                    tmp[1, 1, k] = v1
                    tmp[1, 2, k] = v2
                    tmp[1, 3, k] = v3
                    tmp[1, 4, k] = v4
                    tmp[1, 5, k] = v5
                    q = k * 4 + 2
                    v0, v1, v2, v3, v4, v5 = _bt6(b0[q], b1[q], b2[q], b3[q], b4[q], b5[q])
                    tmp[2, 0, k] = v0
                    tmp[2, 1, k] = v1
                    tmp[2, 2, k] = v2
                    tmp[2, 3, k] = v3
                    tmp[2, 4, k] = v4
                    tmp[2, 5, k] = v5
                    q = k * 4 + 3
                    v0, v1, v2, v3, v4, v5 = _bt6(b0[q], b1[q], b2[q], b3[q], b4[q], b5[q])
                    tmp[3, 0, k] = v0
                    tmp[3, 1, k] = v1
                    tmp[3, 2, k] = v2
                    tmp[3, 3, k] = v3
                    tmp[3, 4, k] = v4
                    tmp[3, 5, k] = v5
                for a in range(6):
                    h0 = tmp[0, a]
                    h1 = tmp[1, a]
                    h2 = tmp[2, a]
                    h3 = tmp[3, a]
                    h4 = tmp[0, a, 1:]
                    h5 = tmp[1, a, 1:]
                    w0 = V[a * 6 + 0, c, t0 : t0 + TW]
                    w1 = V[a * 6 + 1, c, t0 : t0 + TW]
                    w2 = V[a * 6 + 2, c, t0 : t0 + TW]
                    w3 = V[a * 6 + 3, c, t0 : t0 + TW]
                    w4 = V[a * 6 + 4, c, t0 : t0 + TW]
                    w5 = V[a * 6 + 5, c, t0 : t0 + TW]
                    for j in range(TW):
                        v0, v1, v2, v3, v4, v5 = _bt6(h0[j], h1[j], h2[j], h3[j], h4[j], h5[j])
                        w0[j] = v0
                        w1[j] = v1
                        w2[j] = v2
                        w3[j] = v3
                        w4[j] = v4
                        w5[j] = v5
        # 36 products over the channels
        for e in range(E):
            np.dot(U[e], V[e], M[e])
        # output transform: y_tile = A^T M A + bias
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for k in range(K):
                bk = b[k]
                for a in range(6):
                    u0 = M[a * 6 + 0, k, t0 : t0 + TW]
                    u1 = M[a * 6 + 1, k, t0 : t0 + TW]
                    u2 = M[a * 6 + 2, k, t0 : t0 + TW]
                    u3 = M[a * 6 + 3, k, t0 : t0 + TW]
                    u4 = M[a * 6 + 4, k, t0 : t0 + TW]
                    u5 = M[a * 6 + 5, k, t0 : t0 + TW]
                    s0 = s[a, 0]
                    s1 = s[a, 1]
                    s2 = s[a, 2]
                    s3 = s[a, 3]
                    for j in range(TW):
                        v0, v1, v2, v3 = _at6(u0[j], u1[j], u2[j], u3[j], u4[j], u5[j])
                        s0[j] = v0
                        s1[j] = v1
                        s2[j] = v2
                        s3[j] = v3
                for e in range(4):
                    u0 = s[0, e]
                    u1 = s[1, e]
                    u2 = s[2, e]
                    u3 = s[3, e]
                    u4 = s[4, e]
                    u5 = s[5, e]
                    o0 = o[0, e]
                    o1 = o[1, e]
                    o2 = o[2, e]
                    o3 = o[3, e]
                    for j in range(TW):
                        v0, v1, v2, v3 = _at6(u0[j], u1[j], u2[j], u3[j], u4[j], u5[j])
                        o0[j] = v0 + bk
                        o1[j] = v1 + bk
                        o2[j] = v2 + bk
                        o3[j] = v3 + bk
                    if relu:
                        for r in range(4):
                            orow = o[r, e]
                            for j in range(TW):
                                if orow[j] < 0.0:  # noqa: PLR1730  (keeps NaN, as relu does)
                                    orow[j] = 0.0
                for r in range(4):
                    p = i * 4 + r
                    if p >= P:
                        break
                    yr = y[n, k, p]
                    o0 = o[r, 0]
                    o1 = o[r, 1]
                    o2 = o[r, 2]
                    o3 = o[r, 3]
                    for j in range(full):  # whole tiles: one interleaved store per tile
                        q = j * 4
                        yr[q + 0] = o0[j]
                        yr[q + 1] = o1[j]
                        yr[q + 2] = o2[j]
                        yr[q + 3] = o3[j]
                    for e in range(Q - full * 4):  # the last, partial tile
                        yr[full * 4 + e] = o[r, e, full]


@njit(cache=True, nogil=True)
def transform_weight(w9, GG, U):
    """U[e, k, c] = sum_t GG[e, t] w9[k*C + c, t]: the filters (G w G^T) flattened, summed in float64.

    ``w9`` is (K*C, 9) (the filters flattened), ``GG`` (alpha**2, 9) float64,
    the Kronecker product of G with itself, ``U`` (alpha**2, K*C), overwritten.
    The loop over filters is innermost, so it is vectorised.
    """
    KC = w9.shape[0]
    E = GG.shape[0]
    wT = np.empty((9, KC))
    for kc in range(KC):
        for t in range(9):
            wT[t, kc] = w9[kc, t]
    acc = np.empty(KC)
    for e in range(E):
        for kc in range(KC):
            acc[kc] = 0.0
        for t in range(9):
            coef = GG[e, t]
            if coef != 0.0:
                row = wT[t]
                for kc in range(KC):
                    acc[kc] += coef * row[kc]
        out = U[e]
        for kc in range(KC):
            out[kc] = acc[kc]
