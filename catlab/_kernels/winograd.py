"""Winograd F(m x m, 3 x 3) convolution kernel (stride 1, dilation 1, groups 1).

No validation happens here: :mod:`catlab._winograd` checks the arguments,
transforms the filters and allocates the output. Layouts (all C-contiguous):

- ``x``  : (N, C, H, W)      input
- ``U``  : (E, K, C)         transformed filters, ``E = alpha**2``, ``alpha = m + 2``;
  ``U[a*alpha + b, k, c] = (G w[k, c] G^T)[a, b]``
- ``BT`` : (alpha, alpha)    input transform B^T
- ``AT`` : (m, alpha)        output transform A^T
- ``y``  : (N, K, P, Q)      output

The output is cut into m x m tiles, ``TH = ceil(P / m)`` tile rows and
``TW = ceil(Q / m)`` tile columns; tile (i, j) reads the alpha x alpha patch of
the zero-padded input whose top-left corner is (i*m - ph, j*m - pw) (zeros
past the bottom/right edge, so odd sizes work; the outputs past P, Q are
computed but never stored). Per tile and channel the patch d becomes
``V = B^T d B``; per tile the alpha**2 elementwise products summed over
channels are alpha**2 matrix products ``M[e] = U[e] @ V[e]`` (K x C times
C x tiles, BLAS through ``np.dot``), and ``y_tile = A^T M A`` (+ bias).

Work items are tile rows of one sample, ``it = n*TH + i``. A chunk does the
items ``i0 <= it < i1`` in blocks of ``rows_blk`` items with its own
workspaces (sized per block, never per batch) and releases the GIL, so
:mod:`catlab._threads` runs chunks at the same time; every chunk writes only
its own outputs, so results do not depend on the number of threads. The BLAS
called inside must run single-threaded (the caller arranges that).

The transforms loop over whole padded rows (vertical transform) and over the
tiles of a row (horizontal transform), so the innermost loops are long and
LLVM vectorises them.
"""

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def winograd_chunk(x, U, b, BT, AT, ph, pw, P, Q, rows_blk, i0, i1, relu, y):
    """Items i0 <= it < i1 (tile rows ``it = n*TH + i``) of the Winograd convolution, into ``y``."""
    N, C, H, W = x.shape
    E, K, _ = U.shape
    alpha = BT.shape[0]
    m = AT.shape[0]
    TH = (P + m - 1) // m
    TW = (Q + m - 1) // m
    Wp = TW * m + alpha - m  # padded width covered by one tile row
    dt = x.dtype
    Vflat = np.empty(E * C * rows_blk * TW, dt)
    Mflat = np.empty(E * K * rows_blk * TW, dt)
    buf = np.empty((alpha, Wp), dt)
    tmp = np.empty((alpha, Wp), dt)
    s = np.empty((alpha, m, TW), dt)
    o = np.empty(TW, dt)
    # copy ranges of an input row into the padded row: columns [lo, hi) of buf hold x[.., lo - pw : hi - pw]
    lo = min(pw, Wp)
    hi = min(Wp, W + pw)
    for blk0 in range(i0, i1, rows_blk):
        blk1 = min(i1, blk0 + rows_blk)
        nt = (blk1 - blk0) * TW
        V = Vflat[:E * C * nt].reshape((E, C, nt))
        M = Mflat[:E * K * nt].reshape((E, K, nt))
        # input transform: V[a*alpha + bb, c, t] = (B^T d B)[a, bb]
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for c in range(C):
                for a in range(alpha):
                    ih = i * m - ph + a
                    row = buf[a]
                    if ih < 0 or ih >= H:
                        for j in range(Wp):
                            row[j] = 0.0
                        continue
                    for j in range(lo):
                        row[j] = 0.0
                    src = x[n, c, ih, lo - pw:hi - pw]
                    dst = row[lo:hi]
                    for j in range(hi - lo):
                        dst[j] = src[j]
                    for j in range(hi, Wp):
                        row[j] = 0.0
                for a in range(alpha):
                    tr = tmp[a]
                    for j in range(Wp):
                        tr[j] = 0.0
                    for r in range(alpha):
                        coef = BT[a, r]
                        if coef != 0.0:
                            br = buf[r]
                            for j in range(Wp):
                                tr[j] += coef * br[j]
                for a in range(alpha):
                    tr = tmp[a]
                    for bb in range(alpha):
                        dst = V[a * alpha + bb, c, t0:t0 + TW]
                        for j in range(TW):
                            dst[j] = 0.0
                        for r in range(alpha):
                            coef = BT[bb, r]
                            if coef != 0.0:
                                for j in range(TW):
                                    dst[j] += coef * tr[j * m + r]
        # alpha**2 products over the channels
        for e in range(E):
            np.dot(U[e], V[e], M[e])
        # output transform: y_tile = A^T M A + bias
        for it in range(blk0, blk1):
            n = it // TH
            i = it % TH
            t0 = (it - blk0) * TW
            for k in range(K):
                for a in range(alpha):
                    for ob in range(m):
                        sr = s[a, ob]
                        for j in range(TW):
                            sr[j] = 0.0
                        for bb in range(alpha):
                            coef = AT[ob, bb]
                            if coef != 0.0:
                                mr = M[a * alpha + bb, k, t0:t0 + TW]
                                for j in range(TW):
                                    sr[j] += coef * mr[j]
                for oa in range(m):
                    p = i * m + oa
                    if p >= P:
                        break
                    for ob in range(m):
                        for j in range(TW):
                            o[j] = b[k]
                        for a in range(alpha):
                            coef = AT[oa, a]
                            if coef != 0.0:
                                sr = s[a, ob]
                                for j in range(TW):
                                    o[j] += coef * sr[j]
                        if relu:
                            for j in range(TW):
                                if o[j] < 0.0:
                                    o[j] = 0.0
                        nj = (Q - ob + m - 1) // m  # tiles whose column j*m + ob < Q
                        yr = y[n, k, p]
                        for j in range(nj):
                            yr[j * m + ob] = o[j]
