"""Register-tiled direct convolution, forward, float32: no im2col, no BLAS.

The im2col and wide-column kernels (:mod:`catlab._kernels.conv`) copy every
receptive field into a workspace and hand it to BLAS. For the thin products
of small layers (few filters, or few channels) that copy and BLAS's packing
cost more than the arithmetic. This kernel reads the padded input where it
is and keeps a tile of outputs in registers (:mod:`catlab._kernels.simd`):

- the sample (one group of its channels) is zero-padded into a flat buffer
  ``xp``, split into its stride phases as for the wide kernels, so output
  (p, q) lies at position j = p*Wph + q of a "wide" output row and the tap
  (c, r, s) reads ``xp[toff[c, r, s] + j]``: for every tap, a run of outputs
  reads a contiguous run of inputs (columns q >= Q are computed and dropped);
- a tile is KB = 8 filters by 32 consecutive positions j (or 4 by 64): sixteen
  vectors of sixteen running sums (without AVX-512, 6 filters by 16 positions,
  and a group's last 1-4 filters 4 by 16 or 2 by 32: see ``_tile_run``). For each tap the kernel loads the tile's
  inputs (two or four vectors, unaligned) and adds them, times the tap's
  weight for each of the KB filters, into the sums: 16 fused multiply-adds
  per 2-4 loads, all operands in registers;
- a tile reads its KB filters' weights at each tap from the (Kg, Cg*R*S)
  filter matrix as it is (KB rows, one number each per tap, broadcast to all
  lanes; a row past the group's last filter is read as the last, and dropped).

Per item the positions are done in blocks of ``BLOCK`` (the inputs a block
reads stay in the L2 cache across the filter blocks), and each finished block
is copied, plus the bias, to its place in ``y4``. Sums run over the taps in
one fixed order, so the result does not depend on the chunking.

Layouts: ``x`` (N, C, H, W); ``w3`` (G, Kg, Cg*R*S); ``y4`` (N, G, Kg, P*Q); the
tiles across filters (below) take ``wpk`` (G, nkv, Cg*R*S, KV), filters packed
tap by tap.
Items: (sample n, group g, part) with ``parts`` parts per (n, g) (parts > 1
only for fewer samples than threads). The work of one (n, g) is a sequence of
units, one tile of positions for one block of filters, ordered by block of
positions, then block of filters, then tile; each part does a contiguous range
of it: an equal share of the work wherever the cuts fall, each unit weighed by
the filters its tile computes (a group's last tile of 2 or 4 filters on AVX2
costs a third or two thirds of one of 6). Splitting only the tiles, 5 of them
on an 8x8 image, gave one of two threads 3; splitting only the blocks of
filters, 16 filters on AVX2 were 6 + 10.
"""

import numpy as np

from ._jit import njit
from .conv import _pad_phases, _phase_dims, _tap_offset
from .simd import copy_row, vbcast, vfma, vload, vpairsum, vsplat, vstore, vtranspose16, vtranspose16_at, vzero

#: Positions per tile for each filter-block size KB (16 vectors of sums either way).
TILE_8 = 32
TILE_4 = 64
TILE_6 = 16
#: Positions per block (a multiple of both tiles).
BLOCK = 512


@njit(cache=True)
def tile_size(KB):
    """Positions per tile of the tiles across positions with KB filters (8, 6 or 4)."""
    return TILE_8 if KB == 8 else (TILE_6 if KB == 6 else TILE_4)


@njit(cache=True)
def tile_layout(P, Q, R, S, sh, sw, dil_h, dil_w, Cg, tile):
    """(Hph, Wph, L, Lpad, size): phase size, wide positions L = (P-1)*Wph + Q, L rounded up to whole tiles of
    ``tile`` positions, and the length of the padded buffer (every tap's reads of the Lpad positions stay inside)."""
    Hph, Wph = _phase_dims(P, Q, R, S, sh, sw, dil_h, dil_w)
    L = (P - 1) * Wph + Q
    Lpad = -(-L // tile) * tile
    last = 0  # the largest tap offset (with stride phases, not always the last tap's)
    for r in range(R):
        for s in range(S):
            last = max(last, _tap_offset(Cg - 1, r, s, sh, sw, dil_h, dil_w, Hph, Wph))
    return Hph, Wph, L, Lpad, max(last + Lpad, Cg * sh * sw * Hph * Wph)


@njit(cache=True)
def _tap_offsets(Cg, R, S, sh, sw, dil_h, dil_w, Hph, Wph):
    """toff[(c*R + r)*S + s]: where tap (c, r, s) starts in the flattened phase planes."""
    toff = np.empty(Cg * R * S, dtype=np.intp)
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                toff[(c * R + r) * S + s] = _tap_offset(c, r, s, sh, sw, dil_h, dil_w, Hph, Wph)
    return toff


@njit(cache=True)
def _tile8(xp, toff, wg, k0, j0, yw, c0):
    """yw[k, c0 : c0+32] = sum over taps t of wg[k0 + k, t] * xp[toff[t] + j0 + (0 .. 31)], k < 8.

    ``wg`` (Kg, T) holds the group's filters; rows past the last are read as the last (and dropped)."""
    last = wg.shape[0] - 1
    w0 = wg[min(k0, last)]
    w1 = wg[min(k0 + 1, last)]
    w2 = wg[min(k0 + 2, last)]
    w3 = wg[min(k0 + 3, last)]
    w4 = wg[min(k0 + 4, last)]
    w5 = wg[min(k0 + 5, last)]
    w6 = wg[min(k0 + 6, last)]
    w7 = wg[min(k0 + 7, last)]
    a00 = vzero()
    a01 = vzero()
    a10 = vzero()
    a11 = vzero()
    a20 = vzero()
    a21 = vzero()
    a30 = vzero()
    a31 = vzero()
    a40 = vzero()
    a41 = vzero()
    a50 = vzero()
    a51 = vzero()
    a60 = vzero()
    a61 = vzero()
    a70 = vzero()
    a71 = vzero()
    for t in range(toff.shape[0]):
        i = toff[t] + j0
        x0 = vload(xp, i)
        x1 = vload(xp, i + 16)
        w = vbcast(w0, t)
        a00 = vfma(w, x0, a00)
        a01 = vfma(w, x1, a01)
        w = vbcast(w1, t)
        a10 = vfma(w, x0, a10)
        a11 = vfma(w, x1, a11)
        w = vbcast(w2, t)
        a20 = vfma(w, x0, a20)
        a21 = vfma(w, x1, a21)
        w = vbcast(w3, t)
        a30 = vfma(w, x0, a30)
        a31 = vfma(w, x1, a31)
        w = vbcast(w4, t)
        a40 = vfma(w, x0, a40)
        a41 = vfma(w, x1, a41)
        w = vbcast(w5, t)
        a50 = vfma(w, x0, a50)
        a51 = vfma(w, x1, a51)
        w = vbcast(w6, t)
        a60 = vfma(w, x0, a60)
        a61 = vfma(w, x1, a61)
        w = vbcast(w7, t)
        a70 = vfma(w, x0, a70)
        a71 = vfma(w, x1, a71)
    vstore(yw[0], c0, a00)
    vstore(yw[0], c0 + 16, a01)
    vstore(yw[1], c0, a10)
    vstore(yw[1], c0 + 16, a11)
    vstore(yw[2], c0, a20)
    vstore(yw[2], c0 + 16, a21)
    vstore(yw[3], c0, a30)
    vstore(yw[3], c0 + 16, a31)
    vstore(yw[4], c0, a40)
    vstore(yw[4], c0 + 16, a41)
    vstore(yw[5], c0, a50)
    vstore(yw[5], c0 + 16, a51)
    vstore(yw[6], c0, a60)
    vstore(yw[6], c0 + 16, a61)
    vstore(yw[7], c0, a70)
    vstore(yw[7], c0 + 16, a71)


@njit(cache=True)
def _tile4(xp, toff, wg, k0, j0, yw, c0):
    """yw[k, c0 : c0+64] = sum over taps t of wg[k0 + k, t] * xp[toff[t] + j0 + (0 .. 63)], k < 4 (as _tile8)."""
    last = wg.shape[0] - 1
    w0 = wg[min(k0, last)]
    w1 = wg[min(k0 + 1, last)]
    w2 = wg[min(k0 + 2, last)]
    w3 = wg[min(k0 + 3, last)]
    a00 = vzero()
    a01 = vzero()
    a02 = vzero()
    a03 = vzero()
    a10 = vzero()
    a11 = vzero()
    a12 = vzero()
    a13 = vzero()
    a20 = vzero()
    a21 = vzero()
    a22 = vzero()
    a23 = vzero()
    a30 = vzero()
    a31 = vzero()
    a32 = vzero()
    a33 = vzero()
    for t in range(toff.shape[0]):
        i = toff[t] + j0
        x0 = vload(xp, i)
        x1 = vload(xp, i + 16)
        x2 = vload(xp, i + 32)
        x3 = vload(xp, i + 48)
        w = vbcast(w0, t)
        a00 = vfma(w, x0, a00)
        a01 = vfma(w, x1, a01)
        a02 = vfma(w, x2, a02)
        a03 = vfma(w, x3, a03)
        w = vbcast(w1, t)
        a10 = vfma(w, x0, a10)
        a11 = vfma(w, x1, a11)
        a12 = vfma(w, x2, a12)
        a13 = vfma(w, x3, a13)
        w = vbcast(w2, t)
        a20 = vfma(w, x0, a20)
        a21 = vfma(w, x1, a21)
        a22 = vfma(w, x2, a22)
        a23 = vfma(w, x3, a23)
        w = vbcast(w3, t)
        a30 = vfma(w, x0, a30)
        a31 = vfma(w, x1, a31)
        a32 = vfma(w, x2, a32)
        a33 = vfma(w, x3, a33)
    vstore(yw[0], c0, a00)
    vstore(yw[0], c0 + 16, a01)
    vstore(yw[0], c0 + 32, a02)
    vstore(yw[0], c0 + 48, a03)
    vstore(yw[1], c0, a10)
    vstore(yw[1], c0 + 16, a11)
    vstore(yw[1], c0 + 32, a12)
    vstore(yw[1], c0 + 48, a13)
    vstore(yw[2], c0, a20)
    vstore(yw[2], c0 + 16, a21)
    vstore(yw[2], c0 + 32, a22)
    vstore(yw[2], c0 + 48, a23)
    vstore(yw[3], c0, a30)
    vstore(yw[3], c0 + 16, a31)
    vstore(yw[3], c0 + 32, a32)
    vstore(yw[3], c0 + 48, a33)


@njit(cache=True)
def _tile6(xp, toff, wg, k0, j0, yw, c0):
    """yw[k, c0 : c0+16] = sum over taps t of wg[k0 + k, t] * xp[toff[t] + j0 + (0 .. 15)], k < 6 (as _tile8).

    For CPUs without AVX-512: a 16-float vector is two 8-float registers there, so this tile's six sums
    and one input vector take 14 of the 16 registers (the tiles above would take 32 and spill)."""
    last = wg.shape[0] - 1
    w0 = wg[min(k0, last)]
    w1 = wg[min(k0 + 1, last)]
    w2 = wg[min(k0 + 2, last)]
    w3 = wg[min(k0 + 3, last)]
    w4 = wg[min(k0 + 4, last)]
    w5 = wg[min(k0 + 5, last)]
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    for t in range(toff.shape[0]):
        x0 = vload(xp, toff[t] + j0)
        a0 = vfma(vbcast(w0, t), x0, a0)
        a1 = vfma(vbcast(w1, t), x0, a1)
        a2 = vfma(vbcast(w2, t), x0, a2)
        a3 = vfma(vbcast(w3, t), x0, a3)
        a4 = vfma(vbcast(w4, t), x0, a4)
        a5 = vfma(vbcast(w5, t), x0, a5)
    vstore(yw[0], c0, a0)
    vstore(yw[1], c0, a1)
    vstore(yw[2], c0, a2)
    vstore(yw[3], c0, a3)
    vstore(yw[4], c0, a4)
    vstore(yw[5], c0, a5)


@njit(cache=True)
def _tile6of4(xp, toff, wg, k0, j0, yw, c0):
    """As :func:`_tile6` for the last 3 or 4 filters of a group (k < 4): no sums for filters that do not exist."""
    last = wg.shape[0] - 1
    w0 = wg[min(k0, last)]
    w1 = wg[min(k0 + 1, last)]
    w2 = wg[min(k0 + 2, last)]
    w3 = wg[min(k0 + 3, last)]
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    for t in range(toff.shape[0]):
        x0 = vload(xp, toff[t] + j0)
        a0 = vfma(vbcast(w0, t), x0, a0)
        a1 = vfma(vbcast(w1, t), x0, a1)
        a2 = vfma(vbcast(w2, t), x0, a2)
        a3 = vfma(vbcast(w3, t), x0, a3)
    vstore(yw[0], c0, a0)
    vstore(yw[1], c0, a1)
    vstore(yw[2], c0, a2)
    vstore(yw[3], c0, a3)


@njit(cache=True)
def _tile6of2(xp, toff, wg, k0, j0, yw, c0):
    """As :func:`_tile6` for the last 1 or 2 filters of a group (k < 2), over 32 positions ``j0 .. j0+31``:
    four vectors of sums (eight AVX2 registers), enough to keep both fused multiply-add units busy while
    each waits on its last result (two vectors, with 16 positions, ran at half the speed)."""
    last = wg.shape[0] - 1
    w0 = wg[min(k0, last)]
    w1 = wg[min(k0 + 1, last)]
    a0 = vzero()
    a1 = vzero()
    b0 = vzero()
    b1 = vzero()
    for t in range(toff.shape[0]):
        x0 = vload(xp, toff[t] + j0)
        x1 = vload(xp, toff[t] + j0 + 16)
        u0 = vbcast(w0, t)
        u1 = vbcast(w1, t)
        a0 = vfma(u0, x0, a0)
        a1 = vfma(u0, x1, a1)
        b0 = vfma(u1, x0, b0)
        b1 = vfma(u1, x1, b1)
    vstore(yw[0], c0, a0)
    vstore(yw[0], c0 + 16, a1)
    vstore(yw[1], c0, b0)
    vstore(yw[1], c0 + 16, b1)


@njit(cache=True)
def _tile_run(xp, toff, wg, k0, KB, jb, je, tile, yw):
    """The tiles of KB filters from ``k0`` (fewer past the group's last) for the positions ``jb <= j0 < je``
    of one block, into ``yw[:, j0 - jb]``. With KB = 6 the last block of filters takes a tile of 4 or 2
    filters where that is enough (20 filters: 6, 6, 6, 2 instead of 24 computed): a narrower tile runs at
    about the same speed per multiply-add on AVX2, since each tap still waits on its fused multiply-adds."""
    kn = wg.shape[0] - k0
    if KB == 6 and kn <= 2:  # 32 positions a tile; a last 16 (je - jb is a multiple of 16) by the tile of 4
        for j0 in range(jb, je, 32):
            if j0 + 32 <= je:
                _tile6of2(xp, toff, wg, k0, j0, yw, j0 - jb)
            else:
                _tile6of4(xp, toff, wg, k0, j0, yw, j0 - jb)
        return
    for j0 in range(jb, je, tile):
        if KB == 8:
            _tile8(xp, toff, wg, k0, j0, yw, j0 - jb)
        elif KB == 6:
            if kn > 4:
                _tile6(xp, toff, wg, k0, j0, yw, j0 - jb)
            else:
                _tile6of4(xp, toff, wg, k0, j0, yw, j0 - jb)
        else:
            _tile4(xp, toff, wg, k0, j0, yw, j0 - jb)


@njit(cache=True)
def _tile_filters(kn, KB):
    """Filters the tile for a group's ``kn`` last filters computes (:func:`_tile_run`): KB, or with KB = 6
    the tile of 2, 4 or 6 that holds them."""
    if KB != 6 or kn > 4:
        return KB
    return 2 if kn <= 2 else 4


@njit(cache=True)
def _scatter(yw, jb, je, Wph, Q, k0, Kg, b, bias0, yg):
    """yg[k0 + k, p*Q + q] = yw[k, j - jb] + b[bias0 + k0 + k] for the block's positions j = p*Wph + q < je, q < Q."""
    KB = yw.shape[0]
    kn = min(KB, Kg - k0)
    p = jb // Wph
    while p * Wph < je:
        j0 = max(jb, p * Wph)
        j1 = min(je, p * Wph + Q)
        if j1 > j0:
            q0 = j0 - p * Wph
            for k in range(kn):
                bk = b[bias0 + k0 + k]
                src = yw[k, j0 - jb : j1 - jb]
                dst = yg[k0 + k, p * Q + q0 :]
                for t in range(j1 - j0):
                    dst[t] = src[t] + bk
        p += 1


@njit(cache=True, nogil=True)
def conv2d_tiled_forward(x, w3, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, KB, parts, i0, i1, y4):
    """Forward of items (n, g, part), i0 <= it < i1 (see the module docstring); ``w3`` (G, Kg, Cg*R*S)."""
    G, Kg, T = w3.shape
    Cg = T // (R * S)
    nkb = -(-Kg // KB)
    tile = tile_size(KB)
    Hph, Wph, L, Lpad, size = tile_layout(P, Q, R, S, sh, sw, dil_h, dil_w, Cg, tile)
    ntiles = Lpad // tile
    tpb = BLOCK // tile  # tiles per block
    per_tile = (nkb - 1) * KB + _tile_filters(Kg - (nkb - 1) * KB, KB)  # filters computed per tile of positions
    units = ntiles * per_tile  # the work of one (sample, group), in filter-tiles
    toff = _tap_offsets(Cg, R, S, sh, sw, dil_h, dil_w, Hph, Wph)
    xp = np.zeros(size, dtype=np.float32)  # the padded phases of one (sample, group); border and tail stay zero
    yw = np.empty((KB, BLOCK), dtype=np.float32)  # one block of KB filters' wide outputs
    padded = -1
    for it in range(i0, i1):
        ng = it // parts
        part = it % parts
        n = ng // G
        g = ng % G
        if ng != padded:
            _pad_phases(x[n], g * Cg, ph, pw, sh, sw, Hph, Wph, xp[: Cg * sh * sw * Hph * Wph])
            padded = ng
        # this part's units (block, filter block, tile), in that order, by their filters' share of the work
        u0 = part * units // parts
        u1 = (part + 1) * units // parts
        yg = y4[n, g]  # (Kg, P*Q)
        for bi in range(-(-ntiles // tpb)):
            nt = min(tpb, ntiles - bi * tpb)  # tiles in this block
            first = bi * tpb * per_tile  # the work before this block
            if first >= u1:
                break
            for kb in range(nkb):
                wk = _tile_filters(Kg - kb * KB, KB)
                start = first + nt * kb * KB  # the work before this filter block's tiles (all but the last full)
                # tile tt belongs to the part whose range holds the work before it, start + tt * wk
                lo = min(nt, max(0, -(-(u0 - start) // wk)))
                hi = min(nt, max(0, -(-(u1 - start) // wk)))
                if hi > lo:
                    jb = (bi * tpb + lo) * tile
                    je = (bi * tpb + hi) * tile
                    _tile_run(xp, toff, w3[g], kb * KB, KB, jb, je, tile, yw)
                    _scatter(yw, jb, min(je, L), Wph, Q, kb * KB, Kg, b, g * Kg, yg)


@njit(cache=True, nogil=True)
def conv2d_tiled_backward_pair(
    x, dy4, R, S, ph, pw, dil_h, dil_w, P, Q, FB, dweight, db, finite, src, w3, b, top, left, H, W, KB, i0, i1, dx4
):
    """Items i0 <= it < i1 of one sample's stride-1 backward pass, two whole kernels: item 0 the weight and
    bias gradients of every group (:func:`conv2d_tiled_weight_grad` into ``dweight`` (G, Kg, Cg*R*S),
    ``db`` and ``finite``, zeroed by the caller), item 1 the input gradient: the tiled forward pass of
    ``src`` (dy, cropped where need be, padded by ``top`` and ``left``) with the flipped filters ``w3``
    (G, Cg, Kg*R*S) into ``dx4`` (1, G, Cg, H*W). On two threads they run at the same time."""
    G = w3.shape[0]
    for it in range(i0, i1):
        if it == 0:
            conv2d_tiled_weight_grad(x, dy4, R, S, 1, 1, ph, pw, dil_h, dil_w, P, Q, FB, 1, 0, G, dweight, db, finite)
        else:
            conv2d_tiled_forward(src, w3, b, R, S, 1, 1, top, left, dil_h, dil_w, H, W, KB, 1, 0, G, dx4)


@njit(cache=True, nogil=True)
def conv2d_tiled_backward_pair_strided(
    x, dy4, R, S, sh, sw, ph, pw, P, Q, FB, dweight, db, finite, G, wf, across, Tmax, toffs, phases, Hd, Wd,
    T0, L0, KB, i0, i1, dx,
):  # fmt: skip
    """As :func:`conv2d_tiled_backward_pair` for a stride > 1 (dilation 1): item 0 the weight and bias
    gradients, item 1 the input gradient of every stride phase into ``dx`` (1, C, H, W), its arguments from
    ``_conv_paths._input_grad_layout``: where ``across``, :func:`conv2d_ftiled_input_grad` with ``KB``
    positions a tile, else :func:`conv2d_tiled_input_grad` with ``KB`` channels. Item 1 first packs the
    phases' filters from ``wf`` (the weight flattened), about a nanosecond a weight, while item 0 runs:
    before the pair, that packing was 21 of the 161 us of a batch-1 backward pass (32x16x16 -> 64 3x3,
    stride 2), with the two kernels' 68 and 45 us."""
    K = dweight.shape[0] * dweight.shape[1]
    Cg = dx.shape[1] // G
    for it in range(i0, i1):
        if it == 0:
            conv2d_tiled_weight_grad(x, dy4, R, S, sh, sw, ph, pw, 1, 1, P, Q, FB, 1, 0, G, dweight, db, finite)
        elif across:
            wpv = input_grad_filter_vectors(wf, K, Cg, R, S, G, sh, sw, phases, Tmax)  # (G, F, ncv, Tmax, 16)
            conv2d_ftiled_input_grad(dy4, wpv, toffs, phases, Hd, Wd, T0, L0, sh, sw, KB, 1, 0, G, dx)
        else:
            wph = input_grad_filters(wf, K, Cg, R, S, G, sh, sw, phases, Tmax)  # (G, F, Cg, Tmax)
            conv2d_tiled_input_grad(dy4, wph, toffs, phases, Hd, Wd, T0, L0, sh, sw, KB, 1, 0, G, dx)


# --- the backward pass's checks and the stride-1 input gradient's filters ----------------------------


@njit(cache=True)
def all_finite(f):
    """Whether the flat array ``f`` holds no inf or NaN (3 us for 36,864 numbers: no sum whose each step
    waits for the last, as in ``np.isfinite(np.sum(f))``, 11.7 us).

    Examples
    --------
    >>> import numpy as np
    >>> all_finite(np.array([1.0, -2.0], np.float32)), all_finite(np.array([1.0, np.inf], np.float32))
    (True, False)
    """
    bad = False
    for i in range(f.size):
        v = f[i]
        bad |= v - v != 0.0  # NaN for an inf or NaN
    return not bad


@njit(cache=True)
def flipped_filters_3x3(w4, G):
    """``wt`` (C, Kg, 3, 3), wt[g*Cg + c, k, r, s] = w4[g*Kg + k, c, 2-r, 2-s], for 3x3 filters
    (``_conv_paths.flipped_filters``): each filter's nine weights reversed, written in wt's order by nine
    statements (loops over the nine took 44 us for 64 filters of 64x3x3, NumPy's copy 27-41, these 15).
    """
    K, Cg = w4.shape[0], w4.shape[1]
    Kg = K // G
    wf = w4.reshape(K * Cg * 9)
    wt = np.empty((G * Cg, Kg, 3, 3), dtype=np.float32)
    out = wt.reshape(K * Cg * 9)
    o = 0
    for g in range(G):
        for c in range(Cg):
            for k in range(Kg):
                i = ((g * Kg + k) * Cg + c) * 9
                out[o] = wf[i + 8]
                out[o + 1] = wf[i + 7]
                out[o + 2] = wf[i + 6]
                out[o + 3] = wf[i + 5]
                out[o + 4] = wf[i + 4]
                out[o + 5] = wf[i + 3]
                out[o + 6] = wf[i + 2]
                out[o + 7] = wf[i + 1]
                out[o + 8] = wf[i]
                o += 9
    return wt


# --- input gradient for a stride > 1: every stride phase from one padded copy of dy -------------------


@njit(cache=True)
def input_grad_taps(Kg, R, S, sh, sw, phases, Hd, Wd, T0, L0, Tmax):
    """``toffs`` (F, Tmax) for ``_conv_paths._input_grad_layout``: where tap (k, r', s') of phase f, at
    (k*Ra + r')*Sb + s', reads the padded dy (Kg, Hd, Wd); zero past the phase's taps."""
    F = phases.shape[0]
    toffs = np.zeros((F, Tmax), dtype=np.intp)
    for f in range(F):
        a, b, top, left = phases[f, 5], phases[f, 6], phases[f, 7], phases[f, 8]
        Ra = (R - a + sh - 1) // sh
        Sb = (S - b + sw - 1) // sw
        for k in range(Kg):
            for r in range(Ra):
                for s in range(Sb):
                    toffs[f, (k * Ra + r) * Sb + s] = k * Hd * Wd + (r - top + T0) * Wd + (s - left + L0)
    return toffs


@njit(cache=True)
def input_grad_filters(wf, K, Cg, R, S, G, sh, sw, phases, Tmax):
    """``wph`` (G, F, Cg, Tmax) for the phases of ``_conv_paths._input_grad_layout``, from ``wf`` (K*Cg*R*S,).

    wph[g, f, c, (k*Ra + r')*Sb + s'] = w[g*Kg + k, c, a + (Ra-1-r')*sh, b + (Sb-1-s')*sw] (the phase's
    sub-kernel, flipped and transposed per group), zero past the phase's taps. Written in wph's order,
    reading each filter's R*S block whole (reading the weights in their own order and scattering the
    writes took twice as long).
    """
    Kg = K // G
    F = phases.shape[0]
    wph = np.empty((G, F, Cg, Tmax), dtype=np.float32)
    for f in range(F):
        taps, a, b = phases[f, 4], phases[f, 5], phases[f, 6]
        Ra = (R - a + sh - 1) // sh
        Sb = (S - b + sw - 1) // sw
        for g in range(G):
            for c in range(Cg):
                row = wph[g, f, c]
                for t in range(taps, Tmax):
                    row[t] = 0.0
                for r in range(Ra):  # the long loop over the filters innermost (short loops mispredict)
                    for s in range(Sb):
                        src = (g * Kg * Cg + c) * R * S + (a + (Ra - 1 - r) * sh) * S + b + (Sb - 1 - s) * sw
                        for k in range(Kg):
                            row[(k * Ra + r) * Sb + s] = wf[src + k * Cg * R * S]
    return wph


@njit(cache=True)
def _copy_dy(dy4, n, k0, Kg, Hd, Wd, T0, L0, xp):
    """xp[(k*Hd + T0 + p)*Wd + L0 + q] = dy4[n, k0 + k, p, q] for k < Kg: one sample's dy of a group, padded
    (the zeros around are never written)."""
    P = dy4.shape[2]
    Q = dy4.shape[3]
    for k in range(Kg):
        for p in range(P):
            copy_row(dy4[n, k0 + k, p], Q, xp[(k * Hd + T0 + p) * Wd + L0 :])  # (see conv._pad_row)


@njit(cache=True)
def _zero_phase(dx, n, c0, c1, h0, w0, rows, cols, sh, sw):
    """dx[n, c, h0 + i*sh, w0 + j*sw] = 0 for c0 <= c < c1, i < rows, j < cols: a stride phase no tap reaches."""
    for c in range(c0, c1):
        for i in range(rows):
            for j in range(cols):
                dx[n, c, h0 + i * sh, w0 + j * sw] = 0.0


@njit(cache=True, nogil=True)
def conv2d_tiled_input_grad(dy4, wph, toffs, phases, Hd, Wd, T0, L0, sh, sw, KB, parts, i0, i1, dx):
    """dx of items (n, g, part), i0 <= it < i1, for a stride > 1 (see ``_conv_paths.input_grad_tiled``).

    The rows h of dx with (h + ph) % sh == a and columns with (w + pw) % sw == b (one stride phase f) are a
    stride-1 convolution of dy with that phase's sub-kernel, flipped. Each (sample, group)'s dy is copied
    once into ``xp`` (Kg, Hd, Wd), dy[k, p, q] at row T0 + p, column L0 + q, zero around, and every phase's
    taps read it at their own offsets, so no phase needs its own padded copy or output array.

    ``wph`` (G, F, Cg, Tmax): phase f's filter matrix, the dx channels of the group by its Kg*Ra*Sb taps;
    ``toffs`` (F, Tmax): where each of those taps starts in ``xp``; ``phases`` (F, 5): the phase's first row
    h0 and column w0 in dx, its rows and columns, and its taps (0: the phase of dx is zero); all from
    ``_conv_paths._input_grad_layout``. Output (i, j) of phase f lies at wide
    position i*Wd + j and goes to dx[n, g*Cg + c, h0 + i*sh, w0 + j*sw]. Items as the forward kernels;
    parts split the dx channels' blocks.
    """
    N, K, P, Q = dy4.shape
    G, F, Cg, Tmax = wph.shape
    Kg = K // G
    nkb = -(-Cg // KB)
    tile = tile_size(KB)
    size = Kg * Hd * Wd
    for f in range(F):
        L = (phases[f, 2] - 1) * Wd + phases[f, 3]
        last = 0
        for t in range(phases[f, 4]):
            last = max(last, toffs[f, t])
        size = max(size, last + -(-L // tile) * tile)
    xp = np.zeros(size, dtype=np.float32)  # dy of one (sample, group), padded; the zeros around stay zero
    yw = np.empty((KB, BLOCK), dtype=np.float32)  # one block of KB dx channels' wide outputs
    copied = -1
    for it in range(i0, i1):
        ng = it // parts
        part = it % parts
        n = ng // G
        g = ng % G
        if ng != copied:
            _copy_dy(dy4, n, g * Kg, Kg, Hd, Wd, T0, L0, xp)
            copied = ng
        kb0 = part * nkb // parts
        kb1 = (part + 1) * nkb // parts
        for f in range(F):
            h0 = phases[f, 0]
            w0 = phases[f, 1]
            rows = phases[f, 2]
            cols = phases[f, 3]
            if phases[f, 4] == 0:  # no tap reaches this phase
                if part == 0:
                    _zero_phase(dx, n, g * Cg, (g + 1) * Cg, h0, w0, rows, cols, sh, sw)
                continue
            toff = toffs[f, : phases[f, 4]]
            wg = wph[g, f]  # (Cg, Tmax)
            L = (rows - 1) * Wd + cols
            Lpad = -(-L // tile) * tile
            for jb in range(0, Lpad, BLOCK):
                je = min(jb + BLOCK, Lpad)
                for kb in range(kb0, kb1):
                    _tile_run(xp, toff, wg, kb * KB, KB, jb, je, tile, yw)
                    kn = min(KB, Cg - kb * KB)
                    i = jb // Wd
                    while i * Wd < min(je, L):  # the block's rows: kept columns to their places in dx
                        ja = max(jb, i * Wd)
                        jz = min(min(je, L), i * Wd + cols)
                        for k in range(kn):
                            c = g * Cg + kb * KB + k
                            for jw in range(ja, jz):
                                dx[n, c, h0 + i * sh, w0 + (jw - i * Wd) * sw] = yw[k, jw - jb]
                        i += 1


# --- vectors across filters: for small images -----------------------------------------------------
#
# On small images the wide rows waste much of each tile (an 8x8 output with padding 1 has rows of 10,
# and the last tile of 32 is partly past the end: 96 positions computed for 64 kept). These kernels turn
# the tile around: a vector holds 16 filters of one position, and a tile is 16 positions (any 16 of the
# P*Q, none wasted) by 16 filters, or 8 positions by 32 filters. Per tap: the filters' weights at that
# tap (1 or 2 vector loads, from ``wv[t]``) times each position's input (one number each, broadcast to
# all lanes): 16 fused multiply-adds. The finished tile is transposed into y on the way out (a full tile
# of 16 by 16 in registers, ``vtranspose16``, and stored as 16 vectors: 0.94-0.99 of the forward time
# on AMD Zen 4 against 256 numbers copied one by one).

#: Positions per tile for 16 and 32 filters per tile, and for 16 filters on CPUs without AVX-512.
FTILE_16 = 16
FTILE_32 = 8
FTILE_6 = 6


@njit(cache=True)
def pack_filter_vectors(wf, G, Kg, T, KV):
    """``wpk`` (G, nkv, T, KV): wpk[g, v, t, k] = wf[((g*Kg + v*KV + k) * T + t], zero past the group's last filter.

    ``wf`` is the weight (G*Kg, Cg, R, S) flattened, T = Cg*R*S taps. A compiled loop, each filter's taps read
    in order: 40 us for 64 filters of 64x3x3 on AVX2 (NumPy's zero-fill, transpose and copy: 51 us); still
    about a nanosecond per weight, which is why small batches skip these tiles (``_conv_paths.tiled_kind``).
    """
    nkv = -(-Kg // KV)
    wpk = np.empty((G, nkv, T, KV), dtype=np.float32)
    for g in range(G):
        for v in range(nkv):
            kn = min(KV, Kg - v * KV)
            dst = wpk[g, v].reshape(T * KV)  # (T, KV) flat
            src = (g * Kg + v * KV) * T
            for k in range(kn):  # each filter's taps read in order
                row = wf[src + k * T : src + (k + 1) * T]
                for t in range(T):
                    dst[t * KV + k] = row[t]
            for k in range(kn, KV):
                for t in range(T):
                    dst[t * KV + k] = 0.0
    return wpk


@njit(cache=True)
def _ftile16(xp, toff, wv, col, bs, yt):
    """yt[i, 0:16] = sum over taps t of wv[t, col:col+16] * xp[toff[t] + bs[i]], i < 16."""
    b0 = bs[0]
    b1 = bs[1]
    b2 = bs[2]
    b3 = bs[3]
    b4 = bs[4]
    b5 = bs[5]
    b6 = bs[6]
    b7 = bs[7]
    b8 = bs[8]
    b9 = bs[9]
    b10 = bs[10]
    b11 = bs[11]
    b12 = bs[12]
    b13 = bs[13]
    b14 = bs[14]
    b15 = bs[15]
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    a6 = vzero()
    a7 = vzero()
    a8 = vzero()
    a9 = vzero()
    a10 = vzero()
    a11 = vzero()
    a12 = vzero()
    a13 = vzero()
    a14 = vzero()
    a15 = vzero()
    for t in range(toff.shape[0]):
        o = toff[t]
        w = vload(wv[t], col)
        a0 = vfma(w, vbcast(xp, o + b0), a0)
        a1 = vfma(w, vbcast(xp, o + b1), a1)
        a2 = vfma(w, vbcast(xp, o + b2), a2)
        a3 = vfma(w, vbcast(xp, o + b3), a3)
        a4 = vfma(w, vbcast(xp, o + b4), a4)
        a5 = vfma(w, vbcast(xp, o + b5), a5)
        a6 = vfma(w, vbcast(xp, o + b6), a6)
        a7 = vfma(w, vbcast(xp, o + b7), a7)
        a8 = vfma(w, vbcast(xp, o + b8), a8)
        a9 = vfma(w, vbcast(xp, o + b9), a9)
        a10 = vfma(w, vbcast(xp, o + b10), a10)
        a11 = vfma(w, vbcast(xp, o + b11), a11)
        a12 = vfma(w, vbcast(xp, o + b12), a12)
        a13 = vfma(w, vbcast(xp, o + b13), a13)
        a14 = vfma(w, vbcast(xp, o + b14), a14)
        a15 = vfma(w, vbcast(xp, o + b15), a15)
    vstore(yt[0], 0, a0)
    vstore(yt[1], 0, a1)
    vstore(yt[2], 0, a2)
    vstore(yt[3], 0, a3)
    vstore(yt[4], 0, a4)
    vstore(yt[5], 0, a5)
    vstore(yt[6], 0, a6)
    vstore(yt[7], 0, a7)
    vstore(yt[8], 0, a8)
    vstore(yt[9], 0, a9)
    vstore(yt[10], 0, a10)
    vstore(yt[11], 0, a11)
    vstore(yt[12], 0, a12)
    vstore(yt[13], 0, a13)
    vstore(yt[14], 0, a14)
    vstore(yt[15], 0, a15)


@njit(cache=True)
def _ftile16_run(xp, toff, wv, col, b0, yt):
    """As :func:`_ftile16` for 16 positions side by side in one row (stride 1): bs[i] = b0 + i.

    The 16 broadcasts of a tap then share one address register (displacements 0 to 60 bytes); with 16
    bases LLVM kept 7 of them on the stack and reloaded them every tap. Measured alone on Zen 4: 111-116
    GFLOP/s against 96-109 (144-784 taps).
    """
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    a6 = vzero()
    a7 = vzero()
    a8 = vzero()
    a9 = vzero()
    a10 = vzero()
    a11 = vzero()
    a12 = vzero()
    a13 = vzero()
    a14 = vzero()
    a15 = vzero()
    for t in range(toff.shape[0]):
        o = toff[t] + b0
        w = vload(wv[t], col)
        a0 = vfma(w, vbcast(xp, o), a0)
        a1 = vfma(w, vbcast(xp, o + 1), a1)
        a2 = vfma(w, vbcast(xp, o + 2), a2)
        a3 = vfma(w, vbcast(xp, o + 3), a3)
        a4 = vfma(w, vbcast(xp, o + 4), a4)
        a5 = vfma(w, vbcast(xp, o + 5), a5)
        a6 = vfma(w, vbcast(xp, o + 6), a6)
        a7 = vfma(w, vbcast(xp, o + 7), a7)
        a8 = vfma(w, vbcast(xp, o + 8), a8)
        a9 = vfma(w, vbcast(xp, o + 9), a9)
        a10 = vfma(w, vbcast(xp, o + 10), a10)
        a11 = vfma(w, vbcast(xp, o + 11), a11)
        a12 = vfma(w, vbcast(xp, o + 12), a12)
        a13 = vfma(w, vbcast(xp, o + 13), a13)
        a14 = vfma(w, vbcast(xp, o + 14), a14)
        a15 = vfma(w, vbcast(xp, o + 15), a15)
    vstore(yt[0], 0, a0)
    vstore(yt[1], 0, a1)
    vstore(yt[2], 0, a2)
    vstore(yt[3], 0, a3)
    vstore(yt[4], 0, a4)
    vstore(yt[5], 0, a5)
    vstore(yt[6], 0, a6)
    vstore(yt[7], 0, a7)
    vstore(yt[8], 0, a8)
    vstore(yt[9], 0, a9)
    vstore(yt[10], 0, a10)
    vstore(yt[11], 0, a11)
    vstore(yt[12], 0, a12)
    vstore(yt[13], 0, a13)
    vstore(yt[14], 0, a14)
    vstore(yt[15], 0, a15)


@njit(cache=True)
def _ftile32(xp, toff, wv, bs, yt):
    """yt[i, 0:32] = sum over taps t of wv[t, 0:32] * xp[toff[t] + bs[i]], i < 8."""
    b0 = bs[0]
    b1 = bs[1]
    b2 = bs[2]
    b3 = bs[3]
    b4 = bs[4]
    b5 = bs[5]
    b6 = bs[6]
    b7 = bs[7]
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    a6 = vzero()
    a7 = vzero()
    c0 = vzero()
    c1 = vzero()
    c2 = vzero()
    c3 = vzero()
    c4 = vzero()
    c5 = vzero()
    c6 = vzero()
    c7 = vzero()
    for t in range(toff.shape[0]):
        o = toff[t]
        wt = wv[t]
        w = vload(wt, 0)
        u = vload(wt, 16)
        v = vbcast(xp, o + b0)
        a0 = vfma(w, v, a0)
        c0 = vfma(u, v, c0)
        v = vbcast(xp, o + b1)
        a1 = vfma(w, v, a1)
        c1 = vfma(u, v, c1)
        v = vbcast(xp, o + b2)
        a2 = vfma(w, v, a2)
        c2 = vfma(u, v, c2)
        v = vbcast(xp, o + b3)
        a3 = vfma(w, v, a3)
        c3 = vfma(u, v, c3)
        v = vbcast(xp, o + b4)
        a4 = vfma(w, v, a4)
        c4 = vfma(u, v, c4)
        v = vbcast(xp, o + b5)
        a5 = vfma(w, v, a5)
        c5 = vfma(u, v, c5)
        v = vbcast(xp, o + b6)
        a6 = vfma(w, v, a6)
        c6 = vfma(u, v, c6)
        v = vbcast(xp, o + b7)
        a7 = vfma(w, v, a7)
        c7 = vfma(u, v, c7)
    vstore(yt[0], 0, a0)
    vstore(yt[0], 16, c0)
    vstore(yt[1], 0, a1)
    vstore(yt[1], 16, c1)
    vstore(yt[2], 0, a2)
    vstore(yt[2], 16, c2)
    vstore(yt[3], 0, a3)
    vstore(yt[3], 16, c3)
    vstore(yt[4], 0, a4)
    vstore(yt[4], 16, c4)
    vstore(yt[5], 0, a5)
    vstore(yt[5], 16, c5)
    vstore(yt[6], 0, a6)
    vstore(yt[6], 16, c6)
    vstore(yt[7], 0, a7)
    vstore(yt[7], 16, c7)


@njit(cache=True)
def _ftile32_run(xp, toff, wv, b0, yt):
    """As :func:`_ftile32` for 8 positions side by side in one row (stride 1): bs[i] = b0 + i (see
    :func:`_ftile16_run`)."""
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    a6 = vzero()
    a7 = vzero()
    c0 = vzero()
    c1 = vzero()
    c2 = vzero()
    c3 = vzero()
    c4 = vzero()
    c5 = vzero()
    c6 = vzero()
    c7 = vzero()
    for t in range(toff.shape[0]):
        o = toff[t] + b0
        wt = wv[t]
        w = vload(wt, 0)
        u = vload(wt, 16)
        v = vbcast(xp, o)
        a0 = vfma(w, v, a0)
        c0 = vfma(u, v, c0)
        v = vbcast(xp, o + 1)
        a1 = vfma(w, v, a1)
        c1 = vfma(u, v, c1)
        v = vbcast(xp, o + 2)
        a2 = vfma(w, v, a2)
        c2 = vfma(u, v, c2)
        v = vbcast(xp, o + 3)
        a3 = vfma(w, v, a3)
        c3 = vfma(u, v, c3)
        v = vbcast(xp, o + 4)
        a4 = vfma(w, v, a4)
        c4 = vfma(u, v, c4)
        v = vbcast(xp, o + 5)
        a5 = vfma(w, v, a5)
        c5 = vfma(u, v, c5)
        v = vbcast(xp, o + 6)
        a6 = vfma(w, v, a6)
        c6 = vfma(u, v, c6)
        v = vbcast(xp, o + 7)
        a7 = vfma(w, v, a7)
        c7 = vfma(u, v, c7)
    vstore(yt[0], 0, a0)
    vstore(yt[0], 16, c0)
    vstore(yt[1], 0, a1)
    vstore(yt[1], 16, c1)
    vstore(yt[2], 0, a2)
    vstore(yt[2], 16, c2)
    vstore(yt[3], 0, a3)
    vstore(yt[3], 16, c3)
    vstore(yt[4], 0, a4)
    vstore(yt[4], 16, c4)
    vstore(yt[5], 0, a5)
    vstore(yt[5], 16, c5)
    vstore(yt[6], 0, a6)
    vstore(yt[6], 16, c6)
    vstore(yt[7], 0, a7)
    vstore(yt[7], 16, c7)


@njit(cache=True)
def _ftile6(xp, toff, wv, col, bs, yt):
    """yt[i, 0:16] = sum over taps t of wv[t, col:col+16] * xp[toff[t] + bs[i]], i < 6: for CPUs without AVX-512
    (6 vectors of sums in 12 of the 16 AVX2 registers; the 16-position tile would need 32)."""
    b0 = bs[0]
    b1 = bs[1]
    b2 = bs[2]
    b3 = bs[3]
    b4 = bs[4]
    b5 = bs[5]
    a0 = vzero()
    a1 = vzero()
    a2 = vzero()
    a3 = vzero()
    a4 = vzero()
    a5 = vzero()
    for t in range(toff.shape[0]):
        o = toff[t]
        w = vload(wv[t], col)
        a0 = vfma(w, vbcast(xp, o + b0), a0)
        a1 = vfma(w, vbcast(xp, o + b1), a1)
        a2 = vfma(w, vbcast(xp, o + b2), a2)
        a3 = vfma(w, vbcast(xp, o + b3), a3)
        a4 = vfma(w, vbcast(xp, o + b4), a4)
        a5 = vfma(w, vbcast(xp, o + b5), a5)
    vstore(yt[0], 0, a0)
    vstore(yt[1], 0, a1)
    vstore(yt[2], 0, a2)
    vstore(yt[3], 0, a3)
    vstore(yt[4], 0, a4)
    vstore(yt[5], 0, a5)


@njit(cache=True, nogil=True)
def conv2d_ftiled_forward(x, wpk, b, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, PT, parts, i0, i1, y4):
    """As :func:`conv2d_tiled_forward` with vectors across filters: ``wpk`` (G, nkv, Cg*R*S, KV), KV 16 or 32.

    Tiles of ``PT`` positions by KV filters: 16 by 16 or 6 by 16 (CPUs without AVX-512) for KV = 16, 8 by 32
    for KV = 32; the positions (p, q) taken in row-major order without gaps (the last tile repeats the last
    position); same items as there.

    Each position reads its own inputs (one number per tap, broadcast), so the sample is only zero-padded,
    not split into stride phases: position (p, q) starts at ``p*sh*Wp + q*sw`` of the padded plane. The phase
    split, a strided copy, cost about 1 ns a number (8.5 us a sample of 32x16x16 at stride 2, against 28 us
    of arithmetic); the plain padding copies rows through views (:func:`catlab._kernels.conv._pad_row`).
    A tile whose positions lie side by side in one row (stride 1) runs as :func:`_ftile16_run` or
    :func:`_ftile32_run`: one address register for all its broadcasts.
    """
    G, nkv, T, KV = wpk.shape
    Cg = T // (R * S)
    Kg = y4.shape[2]
    Hp = (P - 1) * sh + dil_h * (R - 1) + 1  # the padded plane's rows and columns that some tap reads
    Wp = (Q - 1) * sw + dil_w * (S - 1) + 1
    toff = _tap_offsets(Cg, R, S, 1, 1, dil_h, dil_w, Hp, Wp)
    npos = P * Q
    nt = -(-npos // PT)
    bases = np.empty(nt * PT, dtype=np.intp)  # where position j's window starts in a channel's plane
    for j in range(nt * PT):
        jj = min(j, npos - 1)
        bases[j] = (jj // Q) * sh * Wp + (jj % Q) * sw
    xp = np.zeros(Cg * Hp * Wp, dtype=np.float32)  # every tap's reads stay inside: base + toff < Cg*Hp*Wp
    yt = np.empty((PT, KV), dtype=np.float32)  # one tile, positions by filters
    ytt = np.empty((16, 16), dtype=np.float32)  # a tile of 16 by 16 transposed: filters by positions
    one = vsplat(np.float32(1.0))
    padded = -1
    for it in range(i0, i1):
        ng = it // parts
        part = it % parts
        n = ng // G
        g = ng % G
        if ng != padded:
            _pad_phases(x[n], g * Cg, ph, pw, 1, 1, Hp, Wp, xp)
            padded = ng
        yg = y4[n, g]  # (Kg, P*Q)
        for kv in range(nkv):
            wv = wpk[g, kv]  # (T, KV)
            k0 = kv * KV
            kn = min(KV, Kg - k0)
            for tt in range(part * nt // parts, (part + 1) * nt // parts):  # this part's tiles of positions
                j0 = tt * PT
                if PT == FTILE_6:
                    _ftile6(xp, toff, wv, 0, bases[j0 : j0 + PT], yt)
                elif KV == 16 and sw == 1 and j0 % Q + 16 <= Q:  # 16 positions side by side in one row
                    _ftile16_run(xp, toff, wv, 0, bases[j0], yt)
                elif KV == 16:
                    _ftile16(xp, toff, wv, 0, bases[j0 : j0 + PT], yt)
                elif sw == 1 and j0 % Q + 8 <= Q:
                    _ftile32_run(xp, toff, wv, bases[j0], yt)
                else:
                    _ftile32(xp, toff, wv, bases[j0 : j0 + PT], yt)
                jn = min(PT, npos - j0)
                if KV == 16 and PT == 16 and jn == 16:  # transposed in registers, stored as vectors
                    vtranspose16(yt, ytt)  # (16 filters, 16 positions)
                    for k in range(kn):
                        bias = vsplat(b[g * Kg + k0 + k])
                        vstore(yg[k0 + k], j0, vfma(vload(ytt[k], 0), one, bias))  # y + b, rounded once
                    continue
                for k in range(kn):
                    bk = b[g * Kg + k0 + k]
                    row = yg[k0 + k, j0 : j0 + jn]
                    for i in range(jn):
                        row[i] = yt[i, k] + bk


@njit(cache=True)
def input_grad_filter_vectors(wf, K, Cg, R, S, G, sh, sw, phases, Tmax):
    """``wpv`` (G, F, ncv, Tmax, 16): the filters of :func:`input_grad_filters` with vectors across dx channels.

    wpv[g, f, v, t, l] = wph[g, f, 16*v + l, t], zero past the group's last dx channel and past the phase's
    taps: tap t of phase f holds one weight for each of 16 dx channels, for :func:`conv2d_ftiled_input_grad`.
    """
    Kg = K // G
    F = phases.shape[0]
    ncv = -(-Cg // 16)
    wpv = np.zeros((G, F, ncv, Tmax, 16), dtype=np.float32)
    for f in range(F):
        a, b = phases[f, 5], phases[f, 6]
        Ra = (R - a + sh - 1) // sh
        Sb = (S - b + sw - 1) // sw
        for g in range(G):
            for c in range(Cg):
                dst = wpv[g, f, c // 16]  # (Tmax, 16)
                lane = c % 16
                for r in range(Ra):
                    for s in range(Sb):
                        src = (g * Kg * Cg + c) * R * S + (a + (Ra - 1 - r) * sh) * S + b + (Sb - 1 - s) * sw
                        for k in range(Kg):
                            dst[(k * Ra + r) * Sb + s, lane] = wf[src + k * Cg * R * S]
    return wpv


@njit(cache=True, nogil=True)
def conv2d_ftiled_input_grad(dy4, wpv, toffs, phases, Hd, Wd, T0, L0, sh, sw, PT, parts, i0, i1, dx):
    """As :func:`conv2d_tiled_input_grad` with vectors across dx channels: ``wpv`` (G, F, ncv, Tmax, 16).

    Tiles of ``PT`` positions of a phase (16, or 6 on CPUs without AVX-512; row-major, no wide columns,
    the last tile repeating the last position) by 16 dx channels; parts split the channels' vectors.
    Where the phases are small (an 8x8 phase has rows of 9 or 10 wide positions and 80 computed for 64
    kept) and the group has 16 or more channels, they compute less than the tiles across positions.
    """
    N, K, P, Q = dy4.shape
    G, F, ncv, Tmax, KV = wpv.shape
    Kg = K // G
    Cg = dx.shape[1] // G
    size = Kg * Hd * Wd
    most = 1
    for f in range(F):
        L = (phases[f, 2] - 1) * Wd + phases[f, 3]
        last = 0
        for t in range(phases[f, 4]):
            last = max(last, toffs[f, t])
        size = max(size, last + L)
        most = max(most, phases[f, 2] * phases[f, 3])
    xp = np.zeros(size, dtype=np.float32)  # dy of one (sample, group), padded; the zeros around stay zero
    yt = np.empty((PT, KV), dtype=np.float32)  # one tile, positions by dx channels
    bases = np.empty(-(-most // PT) * PT, dtype=np.intp)  # where each position of a phase reads xp
    copied = -1
    for it in range(i0, i1):
        ng = it // parts
        part = it % parts
        n = ng // G
        g = ng % G
        if ng != copied:
            _copy_dy(dy4, n, g * Kg, Kg, Hd, Wd, T0, L0, xp)
            copied = ng
        cv0 = part * ncv // parts
        cv1 = (part + 1) * ncv // parts
        for f in range(F):
            h0 = phases[f, 0]
            w0 = phases[f, 1]
            rows = phases[f, 2]
            cols = phases[f, 3]
            if phases[f, 4] == 0:  # no tap reaches this phase
                c1 = g * Cg + min(Cg, cv1 * KV)
                _zero_phase(dx, n, g * Cg + cv0 * KV, c1, h0, w0, rows, cols, sh, sw)
                continue
            toff = toffs[f, : phases[f, 4]]
            npos = rows * cols
            nt = -(-npos // PT)
            for j in range(nt * PT):
                jj = min(j, npos - 1)
                bases[j] = (jj // cols) * Wd + jj % cols
            for v in range(cv0, cv1):
                wv = wpv[g, f, v, : phases[f, 4]]  # (taps, 16)
                c0 = g * Cg + v * KV
                cn = min(KV, Cg - v * KV)
                for tt in range(nt):
                    j0 = tt * PT
                    if PT == FTILE_6:
                        _ftile6(xp, toff, wv, 0, bases[j0 : j0 + PT], yt)
                    else:
                        _ftile16(xp, toff, wv, 0, bases[j0 : j0 + PT], yt)
                    for i in range(min(PT, npos - j0)):
                        h = h0 + ((j0 + i) // cols) * sh
                        w = w0 + ((j0 + i) % cols) * sw
                        for c in range(cn):
                            dx[n, c0 + c, h, w] = yt[i, c]


# --- weight gradient ------------------------------------------------------------------------------


#: Samples whose padded inputs and wide gradients the weight gradient keeps at once: up to about this
#: many numbers (in the L2 cache), so that small planes make long sums before the 16 lanes are added up.
GRAD_BLOCK_NUMBERS = 98304


@njit(cache=True)
def _lane_sum(a, o, n, s, lanes):
    """The sum of a[o : o + n] * s, in 16 lanes of float32 sums, then across them (``lanes``: (16,) scratch).

    ``s = 0`` gives 0, or NaN if a[o : o + n] holds an inf or NaN: a finiteness check at the speed of a copy (a
    single running scalar sum would wait for every add in turn, 4 cycles each, and cost more than the
    weight gradient's arithmetic on small layers).
    """
    acc0 = vzero()
    acc1 = vzero()
    sv = vsplat(s)
    e = o + n - n % 32
    for j in range(o, e, 32):
        acc0 = vfma(vload(a, j), sv, acc0)
        acc1 = vfma(vload(a, j + 16), sv, acc1)
    vstore(lanes, 0, vfma(acc1, vsplat(np.float32(1.0)), acc0))
    total = np.float32(0.0)
    for i in range(16):
        total += lanes[i]
    for j in range(e, o + n):
        total += a[j] * s
    return total


@njit(cache=True)
def _grad_tile(dyf, nk, k0, xpf, size, toff, t0, Lpad, m, gacc, go):
    """gacc[go + 4*a + b] += the sum of dyb[i, k0 + a, j] * xpb[i, toff[t0 + b] + j] over j < Lpad and i < m.

    ``dyf`` and ``xpf`` are ``dyb`` (m, nk, Lpad) and ``xpb`` (m, size) flattened: no array views are made
    per sample (small planes have a few vectors per sample).
    """
    o0 = toff[t0]
    o1 = toff[t0 + 1]
    o2 = toff[t0 + 2]
    o3 = toff[t0 + 3]
    a00 = vzero()
    a01 = vzero()
    a02 = vzero()
    a03 = vzero()
    a10 = vzero()
    a11 = vzero()
    a12 = vzero()
    a13 = vzero()
    a20 = vzero()
    a21 = vzero()
    a22 = vzero()
    a23 = vzero()
    a30 = vzero()
    a31 = vzero()
    a32 = vzero()
    a33 = vzero()
    for i in range(m):
        xi = i * size
        d0 = (i * nk + k0) * Lpad
        d1 = d0 + Lpad
        d2 = d1 + Lpad
        d3 = d2 + Lpad
        for j in range(0, Lpad, 16):
            x0 = vload(xpf, xi + o0 + j)
            x1 = vload(xpf, xi + o1 + j)
            x2 = vload(xpf, xi + o2 + j)
            x3 = vload(xpf, xi + o3 + j)
            y = vload(dyf, d0 + j)
            a00 = vfma(y, x0, a00)
            a01 = vfma(y, x1, a01)
            a02 = vfma(y, x2, a02)
            a03 = vfma(y, x3, a03)
            y = vload(dyf, d1 + j)
            a10 = vfma(y, x0, a10)
            a11 = vfma(y, x1, a11)
            a12 = vfma(y, x2, a12)
            a13 = vfma(y, x3, a13)
            y = vload(dyf, d2 + j)
            a20 = vfma(y, x0, a20)
            a21 = vfma(y, x1, a21)
            a22 = vfma(y, x2, a22)
            a23 = vfma(y, x3, a23)
            y = vload(dyf, d3 + j)
            a30 = vfma(y, x0, a30)
            a31 = vfma(y, x1, a31)
            a32 = vfma(y, x2, a32)
            a33 = vfma(y, x3, a33)
    # the 16 lanes of each sum added up in registers, four rounds of neighbouring pairs: lane 4*a + b of the
    # result is the total of a<a><b>
    p0 = vpairsum(a00, a01)
    p1 = vpairsum(a02, a03)
    p2 = vpairsum(a10, a11)
    p3 = vpairsum(a12, a13)
    p4 = vpairsum(a20, a21)
    p5 = vpairsum(a22, a23)
    p6 = vpairsum(a30, a31)
    p7 = vpairsum(a32, a33)
    q0 = vpairsum(p0, p1)
    q1 = vpairsum(p2, p3)
    q2 = vpairsum(p4, p5)
    q3 = vpairsum(p6, p7)
    totals = vpairsum(vpairsum(q0, q1), vpairsum(q2, q3))
    vstore(gacc, go, vfma(totals, vsplat(np.float32(1.0)), vload(gacc, go)))


@njit(cache=True)
def _grad_tile23(dyf, nk, k0, xpf, size, toff, t0, Lpad, m, gacc, go):
    """gacc[go + 3*a + b] += the sum of dyb[i, k0 + a, j] * xpb[i, toff[t0 + b] + j], a < 2, b < 3 (as _grad_tile).

    For CPUs without AVX-512 (a vector is two 8-float registers, 16 of them): 6 sums take 12 registers, where
    the 4-by-4 tile's 16 would need 32 and spill (measured 1.5-2x slower there)."""
    o0 = toff[t0]
    o1 = toff[t0 + 1]
    o2 = toff[t0 + 2]
    a00 = vzero()
    a01 = vzero()
    a02 = vzero()
    a10 = vzero()
    a11 = vzero()
    a12 = vzero()
    for i in range(m):
        xi = i * size
        d0 = (i * nk + k0) * Lpad
        d1 = d0 + Lpad
        for j in range(0, Lpad, 16):
            y0 = vload(dyf, d0 + j)
            y1 = vload(dyf, d1 + j)
            x = vload(xpf, xi + o0 + j)
            a00 = vfma(y0, x, a00)
            a10 = vfma(y1, x, a10)
            x = vload(xpf, xi + o1 + j)
            a01 = vfma(y0, x, a01)
            a11 = vfma(y1, x, a11)
            x = vload(xpf, xi + o2 + j)
            a02 = vfma(y0, x, a02)
            a12 = vfma(y1, x, a12)
    # four rounds of neighbouring pairs (as _grad_tile, padded with zeros): lane 3*a + b is the total of a<a><b>
    z = vzero()
    q0 = vpairsum(vpairsum(a00, a01), vpairsum(a02, a10))
    q1 = vpairsum(vpairsum(a11, a12), z)
    totals = vpairsum(vpairsum(q0, q1), z)
    vstore(gacc, go, vfma(totals, vsplat(np.float32(1.0)), vload(gacc, go)))


@njit(cache=True, nogil=True)
def conv2d_tiled_weight_grad(
    x, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, FB, parts, i0, i1, dweight_t, db_t, finite_t
):
    """Add the weight and bias gradients of items i0 <= it < i1 to this chunk's sums.

    Item ``it`` is sample ``it % N`` of (group, part) ``divmod(it // N, parts)``: samples vary fastest, so a
    chunk's items come in runs of samples sharing their filters. ``dweight_t`` (G, Kg, Cg*R*S) and ``db_t``
    (K,) are the chunk's partial sums (zeroed by the caller); ``finite_t`` (1,) gets the sum of 0 * x over
    the samples read, NaN if any is inf or NaN (the caller then takes other kernels: here the dropped
    columns would multiply such inputs by zero). dweight[g, k, t] = sum over samples and
    positions j of dy_wide[k, j] * xp[toff[t] + j], with ``dy_wide`` dy at the wide width (zero in the
    dropped columns), in tiles of FB filters by TB taps (4 by 4, or 2 by 3 for ``FB = 2``: CPUs without
    AVX-512) whose sums are vectors of 16 lanes, added up across a block of samples before the lanes are;
    part ``part`` does a range of the FB-filter blocks. ``FB = 16``: vectors across filters instead
    (:func:`conv2d_ftiled_weight_grad`, the same items and sums).
    """
    if FB == 16:
        conv2d_ftiled_weight_grad(
            x, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, parts, i0, i1, dweight_t, db_t, finite_t
        )
        return
    TB = 4 if FB == 4 else 3
    N = x.shape[0]
    G, Kg, T = dweight_t.shape
    Cg = T // (R * S)
    Hph, Wph, L, Lpad, size = tile_layout(P, Q, R, S, sh, sw, dil_h, dil_w, Cg, 16)
    toff = _tap_offsets(Cg, R, S, sh, sw, dil_h, dil_w, Hph, Wph)
    nkb = -(-Kg // FB)
    ntb = -(-T // TB)
    toff4 = np.empty(ntb * TB, dtype=np.intp)  # taps in whole blocks of TB; the extra ones re-read tap 0
    toff4[:] = toff[0]
    toff4[:T] = toff
    mb = max(1, min(N, GRAD_BLOCK_NUMBERS // (size + nkb * FB * Lpad)))  # samples per block
    xpb = np.zeros((mb, size), dtype=np.float32)  # padded phases of a block of samples (one group)
    dyb = np.zeros((mb, nkb * FB, Lpad), dtype=np.float32)  # their dy at the wide width
    xpf = xpb.reshape(mb * size)
    dyf = dyb.reshape(mb * nkb * FB * Lpad)
    gacc = np.zeros(nkb * ntb * 16, dtype=np.float32)  # the sums of tile (kb, tb) at (kb*ntb + tb)*16 + TB*a + b
    lanes = np.empty(16, dtype=np.float32)
    plane = Cg * sh * sw * Hph * Wph
    it = i0
    while it < i1:
        n0 = it % N
        g = (it // N) // parts
        part = (it // N) % parts
        m = min(mb, N - n0, i1 - it)  # samples in this block
        kb0 = part * nkb // parts
        kb1 = (part + 1) * nkb // parts
        run = it // N
        for i in range(m):
            _pad_phases(x[n0 + i], g * Cg, ph, pw, sh, sw, Hph, Wph, xpb[i, :plane])
            finite_t[0] += _lane_sum(xpf, i * size, plane, np.float32(0.0), lanes)
            for k in range(kb0 * FB, min(kb1 * FB, Kg)):
                d = (i * nkb * FB + k) * Lpad
                for p in range(P):
                    copy_row(dy4[n0 + i, g * Kg + k, p], Q, dyf[d + p * Wph :])  # (see conv._pad_row)
                db_t[g * Kg + k] += _lane_sum(dyf, d, Lpad, np.float32(1.0), lanes)  # 0 in the dropped columns
        for kb in range(kb0, kb1):
            for tb in range(ntb):
                if FB == 4:
                    _grad_tile(dyf, nkb * 4, kb * 4, xpf, size, toff4, tb * 4, Lpad, m, gacc, (kb * ntb + tb) * 16)
                else:
                    _grad_tile23(dyf, nkb * 2, kb * 2, xpf, size, toff4, tb * 3, Lpad, m, gacc, (kb * ntb + tb) * 16)
        it += m
        if it == i1 or it // N != run:  # the end of this (group, part)'s samples in the chunk
            for kb in range(kb0, kb1):
                for a in range(min(FB, Kg - kb * FB)):
                    for t in range(T):
                        o = (kb * ntb + t // TB) * 16 + TB * a + t % TB
                        dweight_t[g, kb * FB + a, t] += gacc[o]
                        gacc[o] = 0.0


# --- weight gradient with vectors across filters (CPUs without AVX-512) ------------------------------
#
# The tiles above hold sums over positions in the lanes of a vector, whose 16 lanes must be added up at
# the end of every tile (4 rounds of vpairsum for 16 sums); with short sums (batch 1, small planes) that
# step costs as much as the multiplications. Here a vector holds 16 filters of one tap instead:
# dweight[k0 : k0+16, t] = sum over samples and positions j of dy[k0 : k0+16, j] * xp[toff[t] + j], the
# filters' dy at j (one vector load from dy transposed, positions by filters) times the input at j for
# each tap (one number, broadcast). A tile is 16 filters by 6 taps: 6 vectors of sums, 12 AVX2
# registers; nothing to add up across lanes, and the dropped columns (q >= Q) are skipped, not computed.

#: Taps per tile of the weight gradient with vectors across filters.
WTILE_TAPS = 6


@njit(cache=True)
def _dy_by_filters(dy2, k0, kn, KV, kc, dyf, o, tb):
    """dyf[o + j*KV + kc + a] = dy2[k0 + a, j] for a < kn (at most 16) and every position j < dy2.shape[1].

    Transposes one sample's dy (filters by positions) into positions by filters, rows ``KV`` apart, for
    :func:`_wtile`: 16 filters by 16 positions at a time in registers (``tb``: (16, 16) scratch), the rest
    number by number. Against the copy element by element (stores ``KV`` numbers apart), measured on Zen 4
    (one thread, bit-identical): 0.84-0.87 of the weight gradient's time for LeNet's second layer, 0.92-0.94
    for 16x15x15 -> 32 3x3 (few taps: little arithmetic per number of dy), 0.96-1.0 for larger layers.
    """
    PQ = dy2.shape[1]
    j0 = 0
    if kn == 16:
        rows = dy2[k0 : k0 + 16]  # (16, PQ)
        while j0 + 16 <= PQ:
            vtranspose16_at(rows, j0, tb)  # tb[r, a] = dy2[k0 + a, j0 + r]
            for r in range(16):
                vstore(dyf, o + (j0 + r) * KV + kc, vload(tb[r], 0))
            j0 += 16
    for a in range(kn):
        src = dy2[k0 + a]
        for j in range(j0, PQ):
            dyf[o + j * KV + kc + a] = src[j]


@njit(cache=True)
def _wtile(dyf, KV, kv, xpf, size, toff, t0, P, Q, sh, sw, Wp, m, acc, ao):
    """acc[ao + 16*b : ao + 16*(b+1)] += sum over samples i < m and positions (p, q) of
    dyt[i, p*Q + q, 16*kv : 16*kv + 16] * xpf[i*size + toff[t0 + b] + p*sh*Wp + q*sw], b < 6.

    ``dyf``: ``dyt`` (m, P*Q, KV) flattened, the block's dy transposed, filters innermost (KV a multiple of
    16, zero past the group's last filter); ``xpf`` the block's padded inputs (rows of ``Wp``, no stride
    phases: one number is read per position and tap), ``size`` apart; ``acc`` the tiles' running sums.
    """
    o0 = toff[t0]
    o1 = toff[t0 + 1]
    o2 = toff[t0 + 2]
    o3 = toff[t0 + 3]
    o4 = toff[t0 + 4]
    o5 = toff[t0 + 5]
    a0 = vload(acc, ao)
    a1 = vload(acc, ao + 16)
    a2 = vload(acc, ao + 32)
    a3 = vload(acc, ao + 48)
    a4 = vload(acc, ao + 64)
    a5 = vload(acc, ao + 80)
    for i in range(m):
        for p in range(P):
            xi = i * size + p * sh * Wp
            di = (i * P + p) * Q * KV + kv * 16
            for q in range(Q):
                y = vload(dyf, di + q * KV)
                j = xi + q * sw
                a0 = vfma(vbcast(xpf, o0 + j), y, a0)
                a1 = vfma(vbcast(xpf, o1 + j), y, a1)
                a2 = vfma(vbcast(xpf, o2 + j), y, a2)
                a3 = vfma(vbcast(xpf, o3 + j), y, a3)
                a4 = vfma(vbcast(xpf, o4 + j), y, a4)
                a5 = vfma(vbcast(xpf, o5 + j), y, a5)
    vstore(acc, ao, a0)
    vstore(acc, ao + 16, a1)
    vstore(acc, ao + 32, a2)
    vstore(acc, ao + 48, a3)
    vstore(acc, ao + 64, a4)
    vstore(acc, ao + 80, a5)


@njit(cache=True, nogil=True)
def conv2d_ftiled_weight_grad(
    x, dy4, R, S, sh, sw, ph, pw, dil_h, dil_w, P, Q, parts, i0, i1, dweight_t, db_t, finite_t
):
    """As :func:`conv2d_tiled_weight_grad` (same items, sums and finiteness check) with vectors across filters.

    Part ``part`` of a (group, part) does a range of the group's 16-filter vectors; the tiles' sums are kept
    in ``acc`` (tap-major, 16 filters per vector) across the chunk's run of samples of one (group, part)
    and added into ``dweight_t`` at its end. Each sum runs over the samples in order, then the positions.
    The samples are zero-padded without a split into stride phases (as :func:`conv2d_ftiled_forward`).
    """
    N = x.shape[0]
    G, Kg, T = dweight_t.shape
    Cg = T // (R * S)
    Hp = (P - 1) * sh + dil_h * (R - 1) + 1  # the padded plane's rows and columns that some tap reads
    Wp = (Q - 1) * sw + dil_w * (S - 1) + 1
    size = Cg * Hp * Wp
    toff = _tap_offsets(Cg, R, S, 1, 1, dil_h, dil_w, Hp, Wp)
    nkv = -(-Kg // 16)
    KV = nkv * 16
    ntb = -(-T // WTILE_TAPS)
    toff6 = np.empty(ntb * WTILE_TAPS, dtype=np.intp)  # taps in whole tiles; the extra ones re-read tap 0
    toff6[:] = toff[0]
    toff6[:T] = toff
    mb = max(1, min(N, GRAD_BLOCK_NUMBERS // (size + P * Q * KV)))  # samples per block
    xpb = np.zeros((mb, size), dtype=np.float32)  # padded phases of a block of samples (one group)
    dyt = np.zeros((mb, P * Q, KV), dtype=np.float32)  # their dy, positions by filters
    xpf = xpb.reshape(mb * size)
    dyf = dyt.reshape(mb * P * Q * KV)
    one = vsplat(np.float32(1.0))
    acc = np.zeros(nkv * ntb * WTILE_TAPS * 16, dtype=np.float32)  # tile (kv, tb), tap b: 16 filters' sums
    lanes = np.empty(16, dtype=np.float32)
    tr16 = np.empty((16, 16), dtype=np.float32)  # 16 positions by 16 filters of dy, transposed in registers
    it = i0
    while it < i1:
        n0 = it % N
        g = (it // N) // parts
        part = (it // N) % parts
        m = min(mb, N - n0, i1 - it)  # samples in this block
        kv0 = part * nkv // parts
        kv1 = (part + 1) * nkv // parts
        run = it // N
        for i in range(m):
            _pad_phases(x[n0 + i], g * Cg, ph, pw, 1, 1, Hp, Wp, xpb[i])
            finite_t[0] += _lane_sum(xpf, i * size, size, np.float32(0.0), lanes)
            dy2 = dy4[n0 + i].reshape(dy4.shape[1], P * Q)  # (K, P*Q)
            for kv in range(kv0, kv1):
                kc = kv * 16
                _dy_by_filters(dy2, g * Kg + kc, min(16, Kg - kc), KV, kc, dyf, i * P * Q * KV, tr16)
            for kv in range(kv0, kv1):  # the bias gradient: 16 filters' sums per vector add
                s = vzero()
                for j in range(P * Q):
                    s = vfma(vload(dyf, (i * P * Q + j) * KV + kv * 16), one, s)
                vstore(lanes, 0, s)
                for a in range(min(16, Kg - kv * 16)):
                    db_t[g * Kg + kv * 16 + a] += lanes[a]
        for kv in range(kv0, kv1):
            for tb in range(ntb):
                ao = (kv * ntb + tb) * WTILE_TAPS * 16
                _wtile(dyf, KV, kv, xpf, size, toff6, tb * WTILE_TAPS, P, Q, sh, sw, Wp, m, acc, ao)
        it += m
        if it == i1 or it // N != run:  # the end of this (group, part)'s samples in the chunk
            for kv in range(kv0, kv1):  # each filter's row in order (by taps: 1.2x the time at batch 1)
                ak = kv * ntb * WTILE_TAPS * 16  # tile (kv, 0): tap t's 16 sums at ak + 16*t
                for a in range(min(16, Kg - kv * 16)):
                    row = dweight_t[g, kv * 16 + a]  # (T,)
                    for t in range(T):
                        row[t] += acc[ak + t * 16 + a]
                acc[ak : ak + ntb * WTILE_TAPS * 16] = 0.0
