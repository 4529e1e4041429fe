"""Compiled convolution kernels (2-D; 1-D runs through them with H = 1).

No validation happens here: the callers in :mod:`catlab.functional` check
every argument and allocate every output. Layouts (all C-contiguous):

- ``x``  : (N, C, H, W)           input
- ``w3`` : (G, Kg, Cg*R*S)        weights, grouped and flattened per filter
- ``y4`` : (N, G, Kg, P*Q)        output, grouped and flattened per map

with ``G`` groups, ``Cg = C / G`` input channels and ``Kg = K / G`` filters
per group, an R x S kernel and a P x Q output. Padding is given for the top
and left edges only; the bottom and right padding are implied by P and Q,
which allows the asymmetric padding of ``padding='same'`` with even kernels.

The method is im2col + GEMM, one sample at a time: the receptive fields of
one sample are unrolled into the columns of a (Cg*R*S, P*Q) workspace and a
single matrix product with the (Kg, Cg*R*S) filters gives all Kg maps. The
workspace is sized per sample, never per batch.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def im2col(x_n, c0, R, S, sh, sw, ph, pw, dh, dw, P, Q, cols):
    """Unroll receptive fields: cols[(c*R + r)*S + s, p*Q + q] = x_n[c0 + c, p*sh - ph + r*dh, q*sw - pw + s*dw].

    Positions outside the input (zero padding) give 0. ``x_n`` is (C, H, W),
    ``cols`` is (Cg*R*S, P*Q) and is overwritten.
    """
    H = x_n.shape[1]
    W = x_n.shape[2]
    Cg = cols.shape[0] // (R * S)
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                for p in range(P):
                    ih = p * sh - ph + r * dh
                    base = p * Q
                    if ih < 0 or ih >= H:
                        for q in range(Q):
                            cols[row, base + q] = 0.0
                    else:
                        for q in range(Q):
                            iw = q * sw - pw + s * dw
                            if iw >= 0 and iw < W:
                                cols[row, base + q] = x_n[c0 + c, ih, iw]
                            else:
                                cols[row, base + q] = 0.0


@njit(cache=True)
def col2im_add(cols, c0, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx_n):
    """Scatter-add columns back into an image: the adjoint of :func:`im2col`.

    dx_n[c0 + c, ih, iw] += cols[(c*R + r)*S + s, p*Q + q] for every in-bounds
    (ih, iw) = (p*sh - ph + r*dh, q*sw - pw + s*dw). ``dx_n`` is (C, H, W).
    """
    H = dx_n.shape[1]
    W = dx_n.shape[2]
    Cg = cols.shape[0] // (R * S)
    for c in range(Cg):
        for r in range(R):
            for s in range(S):
                row = (c * R + r) * S + s
                for p in range(P):
                    ih = p * sh - ph + r * dh
                    if ih < 0 or ih >= H:
                        continue
                    base = p * Q
                    for q in range(Q):
                        iw = q * sw - pw + s * dw
                        if iw >= 0 and iw < W:
                            dx_n[c0 + c, ih, iw] += cols[row, base + q]


@njit(cache=True)
def conv2d_forward(x, w3, b, R, S, sh, sw, ph, pw, dh, dw, P, Q, y4):
    """y4[n, g] = w3[g] @ im2col(x[n], group g) + b[g*Kg:(g+1)*Kg, None].

    ``b`` is (K,) (zeros for no bias); ``y4`` is (N, G, Kg, P*Q), overwritten.
    """
    N = x.shape[0]
    G, Kg, CRS = w3.shape
    Cg = CRS // (R * S)
    cols = np.empty((CRS, P * Q), dtype=x.dtype)  # (Cg*R*S, P*Q) workspace, one sample
    for n in range(N):
        for g in range(G):
            im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, P, Q, cols)
            out = y4[n, g]  # (Kg, P*Q)
            np.dot(w3[g], cols, out)
            for k in range(Kg):
                bk = b[g * Kg + k]
                for j in range(P * Q):
                    out[k, j] += bk


@njit(cache=True)
def conv2d_backward(x, w3, dy4, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx, dw3, db):
    """Gradients of :func:`conv2d_forward`.

    For each sample n and group g, with cols = im2col(x[n]):
    dw3[g] += dy4[n, g] @ cols.T, dx[n] += col2im(w3[g].T @ dy4[n, g]) and
    db[k] = sum over n, p, q of dy. ``dx``, ``dw3`` and ``db`` must be zeroed
    by the caller. Samples are visited in order, so the sums are deterministic.
    """
    N = x.shape[0]
    G, Kg, CRS = w3.shape
    Cg = CRS // (R * S)
    PQ = P * Q
    cols = np.empty((CRS, PQ), dtype=x.dtype)  # (Cg*R*S, P*Q)
    dcols = np.empty((CRS, PQ), dtype=x.dtype)  # (Cg*R*S, P*Q)
    dw_n = np.empty((Kg, CRS), dtype=x.dtype)  # (Kg, Cg*R*S)
    for g in range(G):
        wT = np.ascontiguousarray(w3[g].T)  # (Cg*R*S, Kg)
        for n in range(N):
            dyg = dy4[n, g]  # (Kg, P*Q)
            for k in range(Kg):
                acc = 0.0
                for j in range(PQ):
                    acc += dyg[k, j]
                db[g * Kg + k] += acc
            im2col(x[n], g * Cg, R, S, sh, sw, ph, pw, dh, dw, P, Q, cols)
            np.dot(dyg, cols.T, dw_n)
            dw3[g] += dw_n
            np.dot(wT, dyg, dcols)
            col2im_add(dcols, g * Cg, R, S, sh, sw, ph, pw, dh, dw, P, Q, dx[n])
