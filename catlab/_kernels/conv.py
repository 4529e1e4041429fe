"""Compiled convolution kernels (2-D; 1-D runs through them with H = 1).

No validation happens here: :mod:`catlab.functional` checks every argument
and allocates every output, and :mod:`catlab._conv_paths` picks one of the
three kernel pairs below and schedules it. Layouts (all C-contiguous):

- ``x``  : (N, C, H, W)           input
- ``w3`` : (G, Kg, Cg*R*S)        weights, grouped and flattened per filter
- ``wT`` : (G, Cg*R*S, Kg)        the same, transposed per group (backward)
- ``y4`` : (N, G, Kg, P*Q)        output, grouped and flattened per map

with ``G`` groups, ``Cg = C / G`` input channels and ``Kg = K / G`` filters
per group, an R x S kernel and a P x Q output. Padding is given for the top
and left edges only; the bottom and right padding are implied by P and Q,
which allows the asymmetric padding of ``padding='same'`` with even kernels.

The method is im2col + GEMM: the receptive fields of one sample (or of a
block of its output rows) are unrolled into the columns of a
(Cg*R*S, rows*Q) workspace and one matrix product with the (Kg, Cg*R*S)
filters gives all Kg maps. ``np.dot`` on contiguous arrays calls BLAS.
With a sample per thread, the ``conv2d_wide_*`` kernels (at the end of this
module) unroll the zero-padded sample, split into its stride phases, at the
padded width, which makes every row of the workspace one contiguous copy.

Parallelism: the work is cut into items (a sample and group, or a block of
``nb`` output rows of one when there are fewer samples than threads). The
kernels each do one fixed contiguous range of items with their
own workspace (sized per item, never per batch) and release the GIL, so
:mod:`catlab._threads` runs the chunks on several threads at once. Each chunk
writes only its own outputs; sums over the batch (weight and bias gradients)
go into per-chunk buffers that the caller adds up in chunk order, so results
are deterministic for a given number of chunks. The BLAS called inside must
run single-threaded (the caller arranges that).
"""

import numpy as np

from ._jit import njit
from .simd import copy_row, split_pairs


@njit(cache=True)
def _qrange(s, sw, pw, dil_w, W, Q):
    """Output columns q whose input column q*sw - pw + s*dil_w lies in [0, W): returns (lo, hi)."""
    a = pw - s * dil_w
    lo = -((-a) // sw)  # ceil(a / sw)
    if lo < 0:
        lo = 0
    hi = (W - 1 + a) // sw + 1
    if hi > Q:
        hi = Q
    if hi < lo:
        hi = lo
    return lo, hi


@njit(cache=True)
def im2col(x_n, c0, R, S, sh, sw, ph, pw, dil_h, dil_w, p0, p1, Q, cols):
    """Unroll the receptive fields of output rows p0 <= p < p1.

    cols[(c*R + r)*S + s, (p - p0)*Q + q] = x_n[c0 + c, p*sh - ph + r*dil_h, q*sw - pw + s*dil_w],
    0 where that lies in the padding. ``x_n`` is (C, H, W); ``cols`` is
    (Cg*R*S, (p1 - p0)*Q) and is overwritten.
    """
    H = x_n.shape[1]
    W = x_n.shape[2]
    Cg = cols.shape[0] // (R * S)
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                lo, hi = _qrange(s, sw, pw, dil_w, W, Q)
                off = s * dil_w - pw
                for p in range(p0, p1):
                    ih = p * sh - ph + r * dil_h
                    base = (p - p0) * Q
                    if ih < 0 or ih >= H:
                        for q in range(Q):
                            cols[row, base + q] = 0.0
                        continue
                    for q in range(lo):
                        cols[row, base + q] = 0.0
                    # views indexed by the loop counter alone let LLVM vectorise the copy
                    dst = cols[row, base + lo : base + hi]
                    if sw == 1:
                        src = x_n[c0 + c, ih, lo + off : hi + off]
                        for q in range(hi - lo):
                            dst[q] = src[q]
                    else:
                        src2 = x_n[c0 + c, ih, lo * sw + off :]
                        for q in range(hi - lo):
                            dst[q] = src2[q * sw]
                    for q in range(hi, Q):
                        cols[row, base + q] = 0.0


@njit(cache=True)
def col2im_channel(cols, cl, c, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, dx_n):
    """Scatter-add the rows of local channel ``cl`` of ``cols`` into ``dx_n[c]`` (adjoint of :func:`im2col`).

    dx_n[c, ih, iw] += cols[(cl*R + r)*S + s, p*Q + q] for every in-bounds
    (ih, iw) = (p*sh - ph + r*dil_h, q*sw - pw + s*dil_w). ``cols`` is (Cg*R*S, P*Q).
    """
    H = dx_n.shape[1]
    W = dx_n.shape[2]
    for r in range(R):
        for s in range(S):
            row = (cl * R + r) * S + s
            lo, hi = _qrange(s, sw, pw, dil_w, W, Q)
            off = s * dil_w - pw
            for p in range(P):
                ih = p * sh - ph + r * dil_h
                if ih < 0 or ih >= H:
                    continue
                base = p * Q
                src = cols[row, base + lo : base + hi]
                if sw == 1:
                    dst = dx_n[c, ih, lo + off : hi + off]
                    for q in range(hi - lo):
                        dst[q] += src[q]
                else:
                    dst2 = dx_n[c, ih, lo * sw + off :]
                    for q in range(hi - lo):
                        dst2[q * sw] += src[q]


@njit(cache=True)
def _row_block(it, G, nb, P):
    """Work item ``it`` of the row-block split: sample n, group g and output rows p0 <= p < p1.

    Items run over (sample, group, block) with ``nb`` blocks of ceil(P / nb) rows each.
    """
    PB = (P + nb - 1) // nb  # output rows per block
    n = it // (G * nb)
    g = (it // nb) % G
    p0 = (it % nb) * PB
    return n, g, p0, min(P, p0 + PB)


@njit(cache=True, nogil=True)
def conv2d_im2col_forward(x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb, i0, i1, y4):
    """im2col forward of items i0 <= it < i1 (sample, group[, row block]) into ``y4``, with its own workspace."""
    G, Kg, CRS = w3.shape
    Cg = CRS // (R * S)
    PQ = P * Q
    if nb == 1:
        cols = np.empty((CRS, PQ), dtype=x.dtype)  # workspace (Cg*R*S, P*Q), one per chunk
        for it in range(i0, i1):
            n = it // G
            g = it % G
            yg = y4[n, g]  # (Kg, P*Q)
            im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dil_h, dil_w, 0, P, Q, cols)
            np.dot(w3[g], cols, yg)
            for k in range(Kg):
                bk = b[g * Kg + k]
                for j in range(PQ):
                    yg[k, j] += bk
        return
    for it in range(i0, i1):
        n, g, p0, p1 = _row_block(it, G, nb, P)
        if p1 <= p0:
            continue
        L = (p1 - p0) * Q
        cb = np.empty((CRS, L), dtype=x.dtype)  # (Cg*R*S, rows*Q); few items, as N < threads
        ob = np.empty((Kg, L), dtype=x.dtype)  # (Kg, rows*Q)
        im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dil_h, dil_w, p0, p1, Q, cb)
        np.dot(w3[g], cb, ob)
        yg = y4[n, g]
        j0 = p0 * Q
        for k in range(Kg):
            bk = b[g * Kg + k]
            for j in range(L):
                yg[k, j0 + j] = ob[k, j] + bk


@njit(cache=True, nogil=True)
def conv2d_im2col_backward(
    x, wT, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, nb, i0, i1, dweight_t, db_t, dcols_all, dx
):
    """im2col backward of items i0 <= it < i1; batch sums go to this chunk's dweight_t, db_t.

    With row blocks (nb > 1) the column gradients go to ``dcols_all`` and
    :func:`conv2d_im2col_scatter` adds them into ``dx`` afterwards; otherwise
    they are scattered into ``dx`` (zeros on entry) directly.
    """
    G, CRS, Kg = wT.shape
    Cg = CRS // (R * S)
    PQ = P * Q
    dweight_nT = np.empty((CRS, Kg), dtype=x.dtype)  # one item's weight gradient, transposed
    if nb == 1:
        cols = np.empty((CRS, PQ), dtype=x.dtype)  # workspaces, one per chunk
        dcols = np.empty((CRS, PQ), dtype=x.dtype)
        for it in range(i0, i1):
            n = it // G
            g = it % G
            dyg = dy4[n, g]  # (Kg, P*Q)
            for k in range(Kg):
                acc = 0.0
                for j in range(PQ):
                    acc += dyg[k, j]
                db_t[g * Kg + k] += acc
            im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dil_h, dil_w, 0, P, Q, cols)
            np.dot(cols, dyg.T, dweight_nT)  # faster in BLAS than dyg @ cols.T for these shapes
            dweight_g = dweight_t[g]
            for j in range(CRS):
                for k in range(Kg):
                    dweight_g[k, j] += dweight_nT[j, k]
            np.dot(wT[g], dyg, dcols)
            for cl in range(Cg):
                col2im_channel(dcols, cl, g * Cg + cl, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, dx[n])
        return
    for it in range(i0, i1):
        n, g, p0, p1 = _row_block(it, G, nb, P)
        if p1 <= p0:
            continue
        L = (p1 - p0) * Q
        j0 = p0 * Q
        cb = np.empty((CRS, L), dtype=x.dtype)
        dyb = np.empty((Kg, L), dtype=x.dtype)  # contiguous copy of this block of dy
        dcb = np.empty((CRS, L), dtype=x.dtype)
        dyg = dy4[n, g]
        for k in range(Kg):
            acc = 0.0
            for j in range(L):
                v = dyg[k, j0 + j]
                dyb[k, j] = v
                acc += v
            db_t[g * Kg + k] += acc
        im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dil_h, dil_w, p0, p1, Q, cb)
        np.dot(cb, dyb.T, dweight_nT)
        dweight_g = dweight_t[g]
        for j in range(CRS):
            for k in range(Kg):
                dweight_g[k, j] += dweight_nT[j, k]
        np.dot(wT[g], dyb, dcb)
        dst = dcols_all[n, g]
        for i in range(CRS):
            for j in range(L):
                dst[i, j0 + j] = dcb[i, j]


@njit(cache=True, nogil=True)
def conv2d_im2col_scatter(dcols_all, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, i0, i1, dx):
    """Scatter column gradients into planes i0 <= i < i1 of dx viewed as (N*C, H, W).

    ``dcols_all`` is (N, G, Cg*R*S, P*Q); plane i is sample i // C, channel i % C.
    """
    C = dx.shape[1]
    Cg = dcols_all.shape[2] // (R * S)
    for i in range(i0, i1):
        n = i // C
        c = i % C
        col2im_channel(dcols_all[n, c // Cg], c % Cg, c, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, dx[n])


@njit(cache=True, nogil=True, fastmath={"contract"})
def conv2d_direct_forward(x, w, b, R, S, ph, pw, dil_h, dil_w, P, Q, kb, i0, i1, y):
    """Direct (no im2col) forward of items i0 <= it < i1 (sample, block of ``kb`` filters) into ``y``."""
    N, C, H, W = x.shape
    K = w.shape[0]
    Hp = P + dil_h * (R - 1)
    Wp = Q + dil_w * (S - 1)
    plane = Hp * Wp
    RB = max(1, 1024 // Wp)  # output rows per tile: the accumulators stay in L1
    nkb = (K + kb - 1) // kb
    xp = np.zeros(C * plane + Wp, dtype=x.dtype)  # padded sample, flattened (+ slack row)
    acc = np.empty((kb, RB * Wp), dtype=x.dtype)
    last = -1
    for it in range(i0, i1):
        n = it // nkb
        k0 = (it % nkb) * kb
        k1 = min(K, k0 + kb)
        if n != last:  # the border stays zero; copy the interior
            for c in range(C):
                for h in range(H):
                    copy_row(x[n, c, h], W, xp[c * plane + (h + ph) * Wp + pw :])  # (see _pad_row)
            last = n
        for p0 in range(0, P, RB):
            p1 = min(P, p0 + RB)
            jl = (p1 - p0 - 1) * Wp + Q
            for kk in range(k1 - k0):
                for j in range(jl):
                    acc[kk, j] = 0.0
            for c in range(C):
                for r in range(R):
                    for s in range(S):
                        off = c * plane + (p0 + r * dil_h) * Wp + s * dil_w
                        xs = xp[off : off + jl]  # views indexed by the loop counter vectorise
                        for kk in range(k1 - k0):
                            wv = w[k0 + kk, c, r, s]
                            a = acc[kk]
                            for j in range(jl):
                                a[j] += wv * xs[j]
            for kk in range(k1 - k0):
                bk = b[k0 + kk]
                for p in range(p0, p1):
                    for q in range(Q):
                        y[n, k0 + kk, p, q] = acc[kk, (p - p0) * Wp + q] + bk


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def conv2d_direct_backward(x, w, dy, R, S, ph, pw, dil_h, dil_w, P, Q, n0, n1, dweight_t, db_t, dx):
    """Direct (no im2col) backward of samples n0 <= n < n1; batch sums go to this chunk's dweight_t, db_t."""
    N, C, H, W = x.shape
    K = w.shape[0]
    Hp = P + dil_h * (R - 1)
    Wp = Q + dil_w * (S - 1)
    plane = Hp * Wp
    L = (P - 1) * Wp + Q
    xp = np.zeros(C * plane + Wp, dtype=x.dtype)  # padded sample, flattened
    dxp = np.empty(C * plane + Wp, dtype=x.dtype)  # its gradient
    dyw = np.zeros((K, L), dtype=x.dtype)  # dy at width Wp; the gaps stay zero
    zero = np.zeros(1, dtype=x.dtype)[0]
    # The gaps (columns Q .. Wp-1 of each row at width Wp) are not outputs. With
    # finite values they add 0 * x or w * 0; an inf or NaN there would add NaN,
    # so non-finite samples or weights take loops that skip the gaps.
    # (explicit np.isfinite tests: an accumulated `v * 0` flag was compiled differently by Numba 0.59)
    w_finite = True
    for k in range(K):
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    if not np.isfinite(w[k, c, r, s]):
                        w_finite = False
    for n in range(n0, n1):
        x_finite = True
        for c in range(C):
            for h in range(H):
                base = c * plane + (h + ph) * Wp + pw
                for v in range(W):
                    xv = x[n, c, h, v]
                    xp[base + v] = xv
                    if not np.isfinite(xv):
                        x_finite = False
        for k in range(K):
            acc = zero
            for p in range(P):
                for q in range(Q):
                    g = dy[n, k, p, q]
                    dyw[k, p * Wp + q] = g
                    acc += g
            db_t[k] += acc
        for k in range(K):
            for c in range(C):
                for r in range(R):
                    for s in range(S):
                        off = c * plane + r * dil_h * Wp + s * dil_w
                        xs = xp[off : off + L]
                        dk = dyw[k]
                        acc = zero
                        if x_finite:
                            for j in range(L):
                                acc += dk[j] * xs[j]
                        else:
                            for p in range(P):
                                xr = xs[p * Wp : p * Wp + Q]
                                dr = dk[p * Wp : p * Wp + Q]
                                for q in range(Q):
                                    acc += dr[q] * xr[q]
                        dweight_t[k, c, r, s] += acc
        for i in range(C * plane + Wp):
            dxp[i] = 0.0
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    off = c * plane + r * dil_h * Wp + s * dil_w
                    ds = dxp[off : off + L]
                    for k in range(K):
                        wv = w[k, c, r, s]
                        dk = dyw[k]
                        if w_finite:
                            for j in range(L):
                                ds[j] += wv * dk[j]
                        else:
                            for p in range(P):
                                dr = dk[p * Wp : p * Wp + Q]
                                dsr = ds[p * Wp : p * Wp + Q]
                                for q in range(Q):
                                    dsr[q] += wv * dr[q]
        for c in range(C):
            for h in range(H):
                base = c * plane + (h + ph) * Wp + pw
                for v in range(W):
                    dx[n, c, h, v] = dxp[base + v]


# ----------------------------------------------------------------------------
# Im2col over the padded plane, split into stride phases ("wide" columns)
# ----------------------------------------------------------------------------
#
# Copy a sample's Cg channels once into a zero-bordered buffer xp and, for a
# stride (sh, sw), split each padded channel into its sh*sw phases: phase
# (a, b) holds the padded pixels (i*sh + a, j*sw + b), an Hph x Wph plane with
# Hph = ceil(((P-1)*sh + dil_h*(R-1) + 1) / sh) and Wph likewise (with stride 1
# there is one phase, the padded plane itself, Hph = P + dil_h*(R-1)). Planes
# are flattened; plane (c, a, b) starts at ((c*sh + a)*sw + b)*Hph*Wph.
# The output pixel (p, q) reads the padded pixel (p*sh + r*dil_h, q*sw + s*dil_w),
# which is pixel (p + r', q + s') of phase (a, b), where r*dil_h = r'*sh + a and
# s*dil_w = s'*sw + b. So if the output is computed at width Wph instead of Q
# (columns j = p*Wph + q, L = (P-1)*Wph + Q of them, the Wph - Q extra columns
# per row being discarded), each im2col row (c, r, s) is ONE contiguous slice of
# xp of length L:
#
#     cols[(c*R + r)*S + s, j] = xp[((c*sh + a)*sw + b)*Hph*Wph + r'*Wph + s' + j]
#
# a plain vectorised copy instead of P short copies with padding checks, and
# col2im is the same slice added back. The matrix products grow by L / (P*Q)
# (the caller uses this layout only when that is small); the backward pass
# puts zeros in dy's extra columns and in the extra columns of the unrolled
# input and of its gradient, so they contribute nothing, not even the NaN of
# 0 * inf when the input or the weights hold infinities. A 1x1 kernel with
# stride 1 and no padding needs no copy at all: the sample is its own cols.


#: Numbers in one block of wide columns (the forward pass's matrix product operand): 256 KiB
#: of float32, so that it and the product stay in a 1 MiB L2 cache.
COLS_BUDGET = 65536
#: ... but never fewer than this many columns per product (fewer make BLAS slow).
MIN_GEMM_COLUMNS = 256


@njit(cache=True)
def _phase_dims(P, Q, R, S, sh, sw, dil_h, dil_w):
    """(Hph, Wph): the size of one stride phase of the padded plane (see the section comment)."""
    Hph = ((P - 1) * sh + dil_h * (R - 1) + sh) // sh
    Wph = ((Q - 1) * sw + dil_w * (S - 1) + sw) // sw
    return Hph, Wph


@njit(cache=True, inline="always")
def _pad_row(x_n, c, h, v0, sw, n, xp, d):
    """xp[d : d + n] = x_n[c, h, v0 :: sw][:n] (one phase's share of an input row).

    With stride 1 by :func:`catlab._kernels.simd.copy_row` on views of the row and of xp from ``d``
    (indexed as ``xp[d + t] = x_n[c, h, t]``, every index was checked for wrapping around: 0.55-0.7 ns a
    number on AMD Zen 4; a loop on the views vectorises, 0.15-0.3, but runs a row shorter than its vectors
    as its scalar remainder: 16 channels of 15x15 took 1.56 us a sample, 0.87 by ``copy_row``)."""
    if sw == 1:
        copy_row(x_n[c, h], n, xp[d:])
    else:
        for t in range(n):
            xp[d + t] = x_n[c, h, v0 + t * sw]


@njit(cache=True, inline="always")
def _split_row(src, W, pw, xp, d, HW, Wph):
    """An input row ``src`` (W,) into its two column phases at stride 2: column w to phase (w + pw) % 2,
    position (w + pw) // 2 of the row that starts at ``xp[d]`` (phase 0) and ``xp[d + HW]`` (phase 1);
    columns past the phases' ``Wph`` positions are skipped. By :func:`catlab._kernels.simd.split_pairs`:
    vector loads, shuffles and (masked) stores, where indexed stores cost about 1.3 ns a number."""
    be = pw % 2  # the phase of the even columns; it starts at position pw // 2 (the odd ones' at (pw + 1) // 2)
    je = pw // 2
    jo = (pw + 1) // 2
    ne = max(0, min((W + 1) // 2, Wph - je))
    no = max(0, min(W // 2, Wph - jo))
    split_pairs(src, W, xp[d + be * HW + je :], ne, xp[d + (1 - be) * HW + jo :], no)


@njit(cache=True)
def _pad_phases(x_n, c0, ph, pw, sh, sw, Hph, Wph, xp):
    """Copy channels c0 .. c0 + Cg - 1 of x_n (C, H, W) into their places in xp's Cg*sh*sw phase planes.

    Input pixels no output reads (past Hph*sh - ph rows or Wph*sw - pw columns) are skipped;
    the zero border is left as is. Planes under 4 KiB are copied with the channels innermost
    (:func:`_pad_row`; small planes have many short rows: divisions by the stride per row cost more than
    the copy), larger ones channel by channel with a view per row (channels 4 KiB apart or more would
    compete for the same L1 sets, and long rows copy fastest from views).
    """
    H = x_n.shape[1]
    W = x_n.shape[2]
    HW = Hph * Wph
    Cg = xp.shape[0] // (sh * sw * HW)
    if H * W >= 1024:
        for c in range(Cg):
            for h in range(H):
                ih = h + ph
                if ih >= Hph * sh:
                    break
                a = ih % sh
                i = ih // sh
                src = x_n[c0 + c, h]  # a view per long row: its copy loop vectorises best
                if sw == 2:
                    _split_row(src, W, pw, xp, ((c * sh + a) * 2) * HW + i * Wph, HW, Wph)
                    continue
                for b in range(sw):
                    v0 = (b - pw) % sw  # first input column in phase b
                    j0 = (v0 + pw) // sw
                    n = min((W - v0 + sw - 1) // sw, Wph - j0)
                    dst = xp[((c * sh + a) * sw + b) * HW + i * Wph + j0 :]
                    if sw == 1:
                        copy_row(src, n, dst)
                    else:
                        for t in range(n):
                            dst[t] = src[v0 + t * sw]
        return
    cstep = sh * sw * HW  # from one channel's phase planes to the next's
    if sw == 2:  # both column phases in one pass along the row: column w goes to phase (w + pw) % 2
        for h in range(min(H, Hph * sh - ph)):
            ih = h + ph
            d0 = (ih % sh) * 2 * HW + (ih // sh) * Wph  # phase (ih % sh, 0) of channel 0, row ih // sh
            for c in range(Cg):
                _split_row(x_n[c0 + c, h], W, pw, xp, d0 + c * cstep, HW, Wph)
        return
    for h in range(min(H, Hph * sh - ph)):
        ih = h + ph
        for b in range(sw):
            v0 = (b - pw) % sw
            j0 = (v0 + pw) // sw
            n = min((W - v0 + sw - 1) // sw, Wph - j0)
            d0 = ((ih % sh) * sw + b) * HW + (ih // sh) * Wph + j0  # channel 0's row
            for c in range(Cg):
                _pad_row(x_n, c0 + c, h, v0, sw, n, xp, d0 + c * cstep)


@njit(cache=True)
def _tap_offset(c, r, s, sh, sw, dil_h, dil_w, Hph, Wph):
    """Where im2col row (c, r, s) starts in the flattened phase planes."""
    a = (r * dil_h) % sh
    b = (s * dil_w) % sw
    return ((c * sh + a) * sw + b) * Hph * Wph + ((r * dil_h) // sh) * Wph + (s * dil_w) // sw


@njit(cache=True)
def _wide_cols(xp, m, R, S, sh, sw, dil_h, dil_w, Hph, Wph, p0, lb, cols):
    """Wide columns of output rows from p0 for the ``m`` samples in ``xp`` (m, plane), side by side.

    cols[(c*R + r)*S + s, j*lb + t] = xp[j, tap offset of (c, r, s) + p0*Wph + t] for t < lb
    (see the section comment); ``cols`` is (Cg*R*S, m*lb).
    """
    Cg = cols.shape[0] // (R * S)
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                off = _tap_offset(c, r, s, sh, sw, dil_h, dil_w, Hph, Wph) + p0 * Wph
                row = cols[(c * R + r) * S + s]
                for j in range(m):
                    src = xp[j, off : off + lb]
                    dst = row[j * lb : (j + 1) * lb]
                    for t in range(lb):
                        dst[t] = src[t]


@njit(cache=True)
def _zero_gaps_blocks(cols, m, L, P, Q, Wp):
    """Zero the discarded columns p*Wp + q (q >= Q, p < P - 1) of each of ``m`` samples side by side.

    ``cols`` is (rows, m*L); sample j's columns are j*L .. (j+1)*L - 1 (see the section comment)."""
    if Wp == Q:
        return
    for i in range(cols.shape[0]):
        for j in range(m):
            row = cols[i, j * L : (j + 1) * L]
            for p in range(P - 1):
                gap = row[p * Wp + Q : (p + 1) * Wp]
                for t in range(Wp - Q):
                    gap[t] = 0.0


@njit(cache=True)
def _pointwise(x, R, S, sh, sw, ph, pw, P, Q):
    """Whether the convolution is a plain matrix product per sample (1x1, stride 1, no padding, full input)."""
    return R == 1 and S == 1 and sh == 1 and sw == 1 and ph == 0 and pw == 0 and P == x.shape[2] and Q == x.shape[3]


@njit(cache=True, nogil=True)
def conv2d_wide_forward(x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, i0, i1, y4):
    """Forward of items (sample n, group g) = divmod(it, G), i0 <= it < i1, via wide columns."""
    G, Kg, CRS = w3.shape
    Cg = CRS // (R * S)
    Hph, Wph = _phase_dims(P, Q, R, S, sh, sw, dil_h, dil_w)
    L = (P - 1) * Wph + Q
    if _pointwise(x, R, S, sh, sw, ph, pw, P, Q):
        for it in range(i0, i1):
            n = it // G
            g = it % G
            yg = y4[n, g]  # (Kg, P*Q)
            np.dot(w3[g], x[n].reshape(x.shape[1], P * Q)[g * Cg : (g + 1) * Cg], yg)
            for k in range(Kg):
                bk = b[g * Kg + k]
                row = yg[k]
                for j in range(P * Q):
                    row[j] += bk
        return
    # One matrix product per block of columns of about COLS_BUDGET numbers (they stay in the L2 cache):
    # several samples side by side when a sample's columns are few, else blocks of output rows.
    per_sample = CRS * L
    if G == 1 and 2 * per_sample <= COLS_BUDGET:
        nbs = max(1, min(COLS_BUDGET // per_sample, i1 - i0))  # samples per block
        pb = P  # output rows per block
    else:
        nbs = 1
        pb = max(1, min(P, max(COLS_BUDGET // (CRS * Wph), -(-MIN_GEMM_COLUMNS // Wph))))
    Lb = (pb - 1) * Wph + Q  # columns of one sample's full row block
    plane = Cg * sh * sw * Hph * Wph
    xp = np.zeros((nbs, plane), dtype=x.dtype)  # phase planes of one group per sample; the border stays zero
    cols = np.empty((CRS, nbs * Lb), dtype=x.dtype)  # workspace (Cg*R*S, samples * columns), one per chunk
    yw = np.empty((Kg, nbs * Lb), dtype=x.dtype)  # output at width Wph
    it = i0
    while it < i1:
        m = min(nbs, i1 - it)  # samples in this block
        g = it % G
        for j in range(m):
            _pad_phases(x[(it + j) // G], g * Cg, ph, pw, sh, sw, Hph, Wph, xp[j])
        for p0 in range(0, P, pb):
            p1 = min(P, p0 + pb)
            lb = (p1 - p0 - 1) * Wph + Q
            cb, ob = cols, yw
            if m != nbs or lb != Lb:  # the last, smaller block: workspaces of its exact size
                cb = np.empty((CRS, m * lb), dtype=x.dtype)
                ob = np.empty((Kg, m * lb), dtype=x.dtype)
            _wide_cols(xp, m, R, S, sh, sw, dil_h, dil_w, Hph, Wph, p0, lb, cb)
            np.dot(w3[g], cb, ob)
            for j in range(m):
                yg = y4[(it + j) // G, g]
                for k in range(Kg):
                    bk = b[g * Kg + k]
                    for p in range(p0, p1):
                        src = ob[k, j * lb + (p - p0) * Wph :]
                        dst = yg[k, p * Q :]
                        for q in range(Q):
                            dst[q] = src[q] + bk
        it += m


@njit(cache=True, nogil=True)
def conv2d_wide_backward(x, wT, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, i0, i1, dweight_t, db_t, dx):
    """Backward of items i0 <= it < i1 via wide columns; sums go to this chunk's dweight_t, db_t.

    Writes the channels of group g of ``dx[n]`` for each item (n, g).
    """
    G, CRS, Kg = wT.shape
    Cg = CRS // (R * S)
    H = x.shape[2]
    W = x.shape[3]
    Hph, Wph = _phase_dims(P, Q, R, S, sh, sw, dil_h, dil_w)
    L = (P - 1) * Wph + Q
    dweight_nT = np.empty((CRS, Kg), dtype=x.dtype)  # this sample's weight gradient, transposed
    if _pointwise(x, R, S, sh, sw, ph, pw, P, Q):
        for it in range(i0, i1):
            n = it // G
            g = it % G
            dyg = dy4[n, g]  # (Kg, P*Q)
            for k in range(Kg):
                acc = 0.0
                row = dyg[k]
                for j in range(P * Q):
                    acc += row[j]
                db_t[g * Kg + k] += acc
            xg = x[n].reshape(x.shape[1], P * Q)[g * Cg : (g + 1) * Cg]  # (Cg, P*Q), the cols
            np.dot(xg, dyg.T, dweight_nT)
            dweight_g = dweight_t[g]
            for j in range(CRS):
                for k in range(Kg):
                    dweight_g[k, j] += dweight_nT[j, k]
            np.dot(wT[g], dyg, dx[n].reshape(x.shape[1], P * Q)[g * Cg : (g + 1) * Cg])
        return
    HW = Hph * Wph
    plane = Cg * sh * sw * HW
    # several small samples side by side in one block of columns, as in the forward pass
    per_sample = CRS * L
    nbs = 1
    if G == 1 and 2 * per_sample <= COLS_BUDGET:
        nbs = max(1, min(COLS_BUDGET // per_sample, i1 - i0))
    xp = np.zeros((nbs, plane), dtype=x.dtype)
    dxp = np.empty(plane, dtype=x.dtype)
    cols = np.empty((CRS, nbs * L), dtype=x.dtype)
    dcols = np.empty((CRS, nbs * L), dtype=x.dtype)
    dyw = np.zeros((Kg, nbs * L), dtype=x.dtype)  # dy at width Wph; the extra columns stay zero
    it = i0
    while it < i1:
        m = min(nbs, i1 - it)  # samples in this block
        g = it % G
        cb, dcb, dyb = cols, dcols, dyw
        if m != nbs:  # the last, smaller block: workspaces of its exact size
            cb = np.empty((CRS, m * L), dtype=x.dtype)
            dcb = np.empty((CRS, m * L), dtype=x.dtype)
            dyb = np.zeros((Kg, m * L), dtype=x.dtype)
        for j in range(m):
            n = (it + j) // G
            dyg = dy4[n, g]  # (Kg, P*Q)
            for k in range(Kg):
                acc = 0.0
                for p in range(P):
                    src = dyg[k, p * Q :]
                    dst = dyb[k, j * L + p * Wph :]
                    for q in range(Q):
                        v = src[q]
                        dst[q] = v
                        acc += v
                db_t[g * Kg + k] += acc
            _pad_phases(x[n], g * Cg, ph, pw, sh, sw, Hph, Wph, xp[j])
        _wide_cols(xp, m, R, S, sh, sw, dil_h, dil_w, Hph, Wph, 0, L, cb)
        _zero_gaps_blocks(cb, m, L, P, Q, Wph)  # an inf or NaN of x there would give 0 * inf = NaN
        # cols @ dyw.T runs about twice as fast in BLAS as dyw @ cols.T for these shapes (few filters)
        np.dot(cb, dyb.T, dweight_nT)
        dweight_g = dweight_t[g]
        for jj in range(CRS):
            for k in range(Kg):
                dweight_g[k, jj] += dweight_nT[jj, k]
        np.dot(wT[g], dyb, dcb)
        _zero_gaps_blocks(dcb, m, L, P, Q, Wph)  # w * 0 there is NaN for an infinite weight
        for j in range(m):
            n = (it + j) // G
            for i in range(plane):
                dxp[i] = 0.0
            for c in range(Cg):
                for r in range(R):
                    for s in range(S):
                        dst = dxp[_tap_offset(c, r, s, sh, sw, dil_h, dil_w, Hph, Wph) :]
                        src = dcb[(c * R + r) * S + s, j * L : (j + 1) * L]
                        for t in range(L):
                            dst[t] += src[t]
            # gather back: input pixel (h, v) sits at padded (h + ph, v + pw); pixels no output reads get 0
            for c in range(Cg):
                for h in range(H):
                    ih = h + ph
                    dst = dx[n, g * Cg + c, h]
                    if ih >= Hph * sh:
                        for v in range(W):
                            dst[v] = 0.0
                        continue
                    a = ih % sh
                    i = ih // sh
                    for v in range(W):
                        iw = v + pw
                        if iw >= Wph * sw:
                            dst[v] = 0.0
                        else:
                            dst[v] = dxp[((c * sh + a) * sw + iw % sw) * HW + i * Wph + iw // sw]
        it += m
