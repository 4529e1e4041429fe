"""Compiled convolution kernels (2-D; 1-D runs through them with H = 1).

No validation happens here: the callers in :mod:`catlab.functional` check
every argument and allocate every output. Layouts (all C-contiguous):

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

Parallelism: the work is cut into ``nb`` blocks of output rows per sample
and group; the ``T = n_chunks`` threads each take a fixed contiguous range of
those items, with their own workspace (sized per block, never per batch).
Each thread writes only its own outputs; sums over the batch (weight and
bias gradients) go into per-chunk buffers that are added up afterwards in
chunk order, so results are deterministic for a given ``n_chunks``. The
BLAS called inside must run single-threaded (the caller arranges that).
"""

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _qrange(s, sw, pw, dw, W, Q):
    """Output columns q whose input column q*sw - pw + s*dw lies in [0, W): returns (lo, hi)."""
    a = pw - s * dw
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
def im2col(x_n, c0, R, S, sh, sw, ph, pw, dh, dw, p0, p1, Q, cols):
    """Unroll the receptive fields of output rows p0 <= p < p1.

    cols[(c*R + r)*S + s, (p - p0)*Q + q] = x_n[c0 + c, p*sh - ph + r*dh, q*sw - pw + s*dw],
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
                lo, hi = _qrange(s, sw, pw, dw, W, Q)
                off = s * dw - pw
                for p in range(p0, p1):
                    ih = p * sh - ph + r * dh
                    base = (p - p0) * Q
                    if ih < 0 or ih >= H:
                        for q in range(Q):
                            cols[row, base + q] = 0.0
                        continue
                    for q in range(lo):
                        cols[row, base + q] = 0.0
                    if sw == 1:
                        for q in range(lo, hi):
                            cols[row, base + q] = x_n[c0 + c, ih, q + off]
                    else:
                        for q in range(lo, hi):
                            cols[row, base + q] = x_n[c0 + c, ih, q * sw + off]
                    for q in range(hi, Q):
                        cols[row, base + q] = 0.0


@njit(cache=True)
def col2im_channel(cols, cl, c, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx_n):
    """Scatter-add the rows of local channel ``cl`` of ``cols`` into ``dx_n[c]`` (adjoint of :func:`im2col`).

    dx_n[c, ih, iw] += cols[(cl*R + r)*S + s, p*Q + q] for every in-bounds
    (ih, iw) = (p*sh - ph + r*dh, q*sw - pw + s*dw). ``cols`` is (Cg*R*S, P*Q).
    """
    H = dx_n.shape[1]
    W = dx_n.shape[2]
    for r in range(R):
        for s in range(S):
            row = (cl * R + r) * S + s
            lo, hi = _qrange(s, sw, pw, dw, W, Q)
            off = s * dw - pw
            for p in range(P):
                ih = p * sh - ph + r * dh
                if ih < 0 or ih >= H:
                    continue
                base = p * Q
                if sw == 1:
                    for q in range(lo, hi):
                        dx_n[c, ih, q + off] += cols[row, base + q]
                else:
                    for q in range(lo, hi):
                        dx_n[c, ih, q * sw + off] += cols[row, base + q]


@njit(cache=True, parallel=True)
def conv2d_forward(x, w3, b, R, S, sh, sw, ph, pw, dh, dw, P, Q, nb, n_chunks, y4):
    """y4[n, g] = w3[g] @ im2col(x[n], group g) + b[g*Kg:(g+1)*Kg, None].

    ``b`` is (K,) (zeros for no bias); ``y4`` is (N, G, Kg, P*Q), overwritten.
    Each (sample, group) is cut into ``nb`` blocks of output rows; the items
    are shared among ``n_chunks`` threads in fixed contiguous ranges.
    """
    N = x.shape[0]
    G, Kg, CRS = w3.shape
    Cg = CRS // (R * S)
    PQ = P * Q
    PB = (P + nb - 1) // nb  # output rows per block
    items = N * G * nb
    for t in prange(n_chunks):
        i0 = t * items // n_chunks
        i1 = (t + 1) * items // n_chunks
        if nb == 1:
            if i1 <= i0:
                continue
            cols = np.empty((CRS, PQ), dtype=x.dtype)  # per-thread workspace (Cg*R*S, P*Q)
            for it in range(i0, i1):
                n = it // G
                g = it % G
                yg = y4[n, g]  # (Kg, P*Q)
                im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, 0, P, Q, cols)
                np.dot(w3[g], cols, yg)
                for k in range(Kg):
                    bk = b[g * Kg + k]
                    for j in range(PQ):
                        yg[k, j] += bk
        else:
            for it in range(i0, i1):
                n = it // (G * nb)
                g = (it // nb) % G
                p0 = (it % nb) * PB
                p1 = min(P, p0 + PB)
                if p1 <= p0:
                    continue
                L = (p1 - p0) * Q
                cb = np.empty((CRS, L), dtype=x.dtype)  # (Cg*R*S, rows*Q), few items: N < threads
                ob = np.empty((Kg, L), dtype=x.dtype)  # (Kg, rows*Q)
                im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, p0, p1, Q, cb)
                np.dot(w3[g], cb, ob)
                yg = y4[n, g]
                j0 = p0 * Q
                for k in range(Kg):
                    bk = b[g * Kg + k]
                    for j in range(L):
                        yg[k, j0 + j] = ob[k, j] + bk


@njit(cache=True, parallel=True)
def conv2d_backward(x, wT, dy4, R, S, sh, sw, ph, pw, dh, dw, P, Q, nb, n_chunks, dx, dw3, db):
    """Gradients of :func:`conv2d_forward`.

    For each sample n and group g, with cols = im2col(x[n]):
    dw3[g] = sum_n dy4[n, g] @ cols.T, dx[n] = col2im(wT[g] @ dy4[n, g]) and
    db[k] = sum over n, p, q of dy. ``dx``, ``dw3`` and ``db`` are overwritten.
    Per-chunk partial sums are added in chunk order (deterministic).
    """
    N = x.shape[0]
    C = x.shape[1]
    G, CRS, Kg = wT.shape
    Cg = CRS // (R * S)
    PQ = P * Q
    PB = (P + nb - 1) // nb
    items = N * G * nb
    dw_part = np.zeros((n_chunks, G, Kg, CRS), dtype=x.dtype)  # per-chunk weight gradients
    db_part = np.zeros((n_chunks, G * Kg), dtype=x.dtype)  # per-chunk bias gradients
    # nb > 1 (fewer samples than threads): the column gradients of all N samples, scattered afterwards
    dcols_all = np.empty((N if nb > 1 else 0, G, CRS, PQ), dtype=x.dtype)
    for t in prange(n_chunks):
        i0 = t * items // n_chunks
        i1 = (t + 1) * items // n_chunks
        if i1 <= i0:
            continue
        if nb == 1:
            cols = np.empty((CRS, PQ), dtype=x.dtype)  # per-thread workspaces
            dcols = np.empty((CRS, PQ), dtype=x.dtype)
            dwn = np.empty((Kg, CRS), dtype=x.dtype)
            for it in range(i0, i1):
                n = it // G
                g = it % G
                dyg = dy4[n, g]  # (Kg, P*Q)
                for k in range(Kg):
                    acc = 0.0
                    for j in range(PQ):
                        acc += dyg[k, j]
                    db_part[t, g * Kg + k] += acc
                im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, 0, P, Q, cols)
                np.dot(dyg, cols.T, dwn)
                dwp = dw_part[t, g]
                for k in range(Kg):
                    for j in range(CRS):
                        dwp[k, j] += dwn[k, j]
                np.dot(wT[g], dyg, dcols)
                for cl in range(Cg):
                    col2im_channel(dcols, cl, g * Cg + cl, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx[n])
        else:
            dwn = np.empty((Kg, CRS), dtype=x.dtype)
            for it in range(i0, i1):
                n = it // (G * nb)
                g = (it // nb) % G
                p0 = (it % nb) * PB
                p1 = min(P, p0 + PB)
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
                    db_part[t, g * Kg + k] += acc
                im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, p0, p1, Q, cb)
                np.dot(dyb, cb.T, dwn)
                dwp = dw_part[t, g]
                for k in range(Kg):
                    for j in range(CRS):
                        dwp[k, j] += dwn[k, j]
                np.dot(wT[g], dyb, dcb)
                dst = dcols_all[n, g]
                for i in range(CRS):
                    for j in range(L):
                        dst[i, j0 + j] = dcb[i, j]
    if nb > 1:
        # scatter the column gradients, one input channel per iteration (no two write the same plane)
        for i in prange(N * C):
            n = i // C
            c = i % C
            col2im_channel(dcols_all[n, c // Cg], c % Cg, c, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx[n])
    # fixed-order reduction of the per-chunk partial sums
    for g in range(G):
        for k in range(Kg):
            for j in range(CRS):
                acc = 0.0
                for t in range(n_chunks):
                    acc += dw_part[t, g, k, j]
                dw3[g, k, j] = acc
            acc = 0.0
            for t in range(n_chunks):
                acc += db_part[t, g * Kg + k]
            db[g * Kg + k] = acc


@njit(cache=True, parallel=True, fastmath={"contract"})
def conv2d_forward_direct(x, w, b, R, S, ph, pw, dh, dw, P, Q, kb, n_chunks, y):
    """Direct stride-1, one-group convolution for few input channels, without im2col.

    y[n, k, p, q] = b[k] + sum_{c,r,s} w[k, c, r, s] * xp[n, c, p + r*dh, q + s*dw]
    with ``xp`` the zero-padded input. Each sample is copied once into a
    per-thread padded buffer of width Wp = Q + dw*(S-1); on that buffer flattened, output
    (p, q) sits at j = p*Wp + q and the tap (c, r, s) at j + c*Hp*Wp + r*dh*Wp + s*dw,
    so every tap is one long contiguous (vectorisable) multiply-add over a block
    of output rows. Work items are (sample, block of ``kb`` filters), shared among
    ``n_chunks`` threads in fixed ranges. ``x`` (N, C, H, W), ``w`` (K, C, R, S),
    ``b`` (K,), ``y`` (N, K, P, Q), overwritten.
    """
    N, C, H, W = x.shape
    K = w.shape[0]
    Hp = P + dh * (R - 1)
    Wp = Q + dw * (S - 1)
    plane = Hp * Wp
    RB = max(1, 1024 // Wp)  # output rows per tile: the accumulators stay in L1
    nkb = (K + kb - 1) // kb
    items = N * nkb
    for t in prange(n_chunks):
        i0 = t * items // n_chunks
        i1 = (t + 1) * items // n_chunks
        if i1 <= i0:
            continue
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
                        base = c * plane + (h + ph) * Wp + pw
                        for v in range(W):
                            xp[base + v] = x[n, c, h, v]
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
                            off = c * plane + (p0 + r * dh) * Wp + s * dw
                            for kk in range(k1 - k0):
                                wv = w[k0 + kk, c, r, s]
                                for j in range(jl):
                                    acc[kk, j] += wv * xp[off + j]
                for kk in range(k1 - k0):
                    bk = b[k0 + kk]
                    for p in range(p0, p1):
                        for q in range(Q):
                            y[n, k0 + kk, p, q] = acc[kk, (p - p0) * Wp + q] + bk


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def conv2d_backward_direct(x, w, dy, R, S, ph, pw, dh, dw, P, Q, n_chunks, dx, dwt, db):
    """Gradients of :func:`conv2d_forward_direct` (stride 1, one group), without im2col.

    On the flattened padded planes of :func:`conv2d_forward_direct` (width
    Wp = Q + dw*(S-1)), with dy laid out at the same width (zeros between rows):
    dwt[k, c, r, s] = sum_n sum_j dyw[k, j] * xp[c, j + r*dh*Wp + s*dw] (a long dot
    product) and dxp[c, j + r*dh*Wp + s*dw] += w[k, c, r, s] * dyw[k, j] (a long
    multiply-add), dx being the interior of dxp. Samples are shared among
    ``n_chunks`` threads in fixed ranges; the weight and bias gradients are
    summed per chunk and then over chunks in order (deterministic). ``dx``
    (N, C, H, W), ``dwt`` (K, C, R, S) and ``db`` (K,) are overwritten.
    """
    N, C, H, W = x.shape
    K = w.shape[0]
    Hp = P + dh * (R - 1)
    Wp = Q + dw * (S - 1)
    plane = Hp * Wp
    L = (P - 1) * Wp + Q
    dw_part = np.zeros((n_chunks, K, C, R, S), dtype=x.dtype)
    db_part = np.zeros((n_chunks, K), dtype=x.dtype)
    for t in prange(n_chunks):
        n0 = t * N // n_chunks
        n1 = (t + 1) * N // n_chunks
        if n1 <= n0:
            continue
        xp = np.zeros(C * plane + Wp, dtype=x.dtype)  # padded sample, flattened
        dxp = np.empty(C * plane + Wp, dtype=x.dtype)  # its gradient
        dyw = np.zeros((K, L), dtype=x.dtype)  # dy at width Wp; the gaps stay zero
        zero = np.zeros(1, dtype=x.dtype)[0]
        for n in range(n0, n1):
            for c in range(C):
                for h in range(H):
                    base = c * plane + (h + ph) * Wp + pw
                    for v in range(W):
                        xp[base + v] = x[n, c, h, v]
            for k in range(K):
                acc = zero
                for p in range(P):
                    for q in range(Q):
                        g = dy[n, k, p, q]
                        dyw[k, p * Wp + q] = g
                        acc += g
                db_part[t, k] += acc
            for k in range(K):
                for c in range(C):
                    for r in range(R):
                        for s in range(S):
                            off = c * plane + r * dh * Wp + s * dw
                            acc = zero
                            for j in range(L):
                                acc += dyw[k, j] * xp[off + j]
                            dw_part[t, k, c, r, s] += acc
            for i in range(C * plane + Wp):
                dxp[i] = 0.0
            for c in range(C):
                for r in range(R):
                    for s in range(S):
                        off = c * plane + r * dh * Wp + s * dw
                        for k in range(K):
                            wv = w[k, c, r, s]
                            for j in range(L):
                                dxp[off + j] += wv * dyw[k, j]
            for c in range(C):
                for h in range(H):
                    base = c * plane + (h + ph) * Wp + pw
                    for v in range(W):
                        dx[n, c, h, v] = dxp[base + v]
    for k in range(K):
        for c in range(C):
            for r in range(R):
                for s in range(S):
                    acc = 0.0
                    for t in range(n_chunks):
                        acc += dw_part[t, k, c, r, s]
                    dwt[k, c, r, s] = acc
        acc = 0.0
        for t in range(n_chunks):
            acc += db_part[t, k]
        db[k] = acc
