"""Compiled kernels for the matrix products of a linear layer.

``matmul_rows`` computes rows i0 <= i < i1 of ``a @ b`` and ``matvec_rows``
entries i0 <= i < i1 of ``a @ v``; ``np.dot`` inside calls the kernels' BLAS,
which runs single-threaded there (the caller arranges that), while
:mod:`catlab._threads` splits the rows among catlab's threads. So large
products never wake NumPy's own BLAS threads, which busy-wait after each
product and then slowed catlab's next layers (a LeNet training step by 2.4x).

At batch 1 the weight gradient ``dy.T @ x`` is an outer product: no
arithmetic to speak of, but a whole (out, in) matrix to write.
``linear_outer_backward`` writes rows i0 <= i < i1 (and takes the first-touch
page faults of a fresh output on several threads).
"""

import numpy as np

from ._jit import njit
from .conv_tiled import FTILE_6, _ftile6, _ftile16
from .simd import LANES, vfma, vload, vsplat, vstore, vtranspose16_at


@njit(cache=True, nogil=True)
def linear_outer_backward(a, b, i0, i1, out):
    """out[i, j] = a[i] * b[j] for i0 <= i < i1 and every j; ``out`` is (len(a), len(b))."""
    m = b.shape[0]
    for i in range(i0, i1):
        ai = a[i]
        row = out[i]
        for j in range(m):
            row[j] = ai * b[j]


@njit(cache=True, nogil=True)
def matmul_rows(a, b, i0, i1, out):
    """out[i0:i1] = a[i0:i1] @ b; ``a`` (M, K) and ``out`` (M, N) C-contiguous, ``b`` (K, N) C or F."""
    if i1 > i0:
        np.dot(a[i0:i1], b, out[i0:i1])


@njit(cache=True, nogil=True)
def matvec_rows(a, v, i0, i1, out):
    """out[i0:i1] = a[i0:i1] @ v; ``a`` (M, K) C-contiguous, ``v`` (K,), ``out`` (M,)."""
    if i1 > i0:
        np.dot(a[i0:i1], v, out[i0:i1])


# --- register tiles: the convolution's tiles across filters (conv_tiled._ftile16) on a matrix ----------------
#
# The tile computes yt[i, 0:16] = sum over taps t of w[t, col:col+16] * xs[bs[i] + toff[t]]: sixteen running
# sums in registers per row i (16 rows with AVX-512, 6 without), one vector of w and one broadcast number per
# tap and row. A matrix product is that tile with taps along the inner dimension:
#
#   forward  y = x @ w.T   rows i samples, taps the inputs (x's row at bs[i] = n*K), w packed as (K, 16);
#   input    dx = dy @ w   rows i samples, taps the outputs (dy's row at n*M), w's rows read as they are;
#   weight   dw = dy.T @ x rows i outputs, taps the samples (dy's column at f, step M), x's rows as they are.
#
# Only the forward product packs (16 rows of w transposed to (K, 16), 16-by-16 blocks in registers).


@njit(cache=True)
def _row_tile(xs, toff, w, col, bs, PT, yt):
    if PT == FTILE_6:
        _ftile6(xs, toff, w, col, bs, yt)
    else:
        _ftile16(xs, toff, w, col, bs, yt)


@njit(cache=True)
def _row_bases(n, PT, step):
    """bs[j] = min(j, n - 1) * step for j below n rounded up to PT (a last tile repeats the last row)."""
    nt = -(-n // PT)
    bs = np.empty(nt * PT, dtype=np.intp)
    for j in range(nt * PT):
        bs[j] = min(j, n - 1) * step
    return bs


@njit(cache=True)
def pack_rows16(w, f0, wv):
    """wv[t, k] = w[f0 + k, t] for k < 16 and t < K, zero where f0 + k >= M: 16 rows of ``w`` (M, K) as (K, 16)."""
    M, K = w.shape
    kn = min(LANES, M - f0)
    if kn < LANES:  # the last rows: element by element, zero-padded
        for t in range(K):
            for k in range(kn):
                wv[t, k] = w[f0 + k, t]
            for k in range(kn, LANES):
                wv[t, k] = 0.0
        return
    rows = w[f0 : f0 + LANES]  # (16, K)
    c = 0
    while c + LANES <= K:
        vtranspose16_at(rows, c, wv[c : c + LANES])  # wv[c:c+16, :] = rows[:, c:c+16].T
        c += LANES
    for t in range(c, K):
        for k in range(LANES):
            wv[t, k] = rows[k, t]


@njit(cache=True)
def _columns16(a, c0, out):
    """out[r, 0:16] = a[r, c0 : c0 + 16] for every row r, zero past a's last column.

    The tiles read one row of 16 per tap: consecutive in ``out``, while ``a``'s rows 4 KiB apart (1024
    columns) would all fall in one set of the first-level cache (64 x 1024 -> 1024 backward: 32 against 80
    GFLOP/s). One vector per row, about 1.5% of the arithmetic at 64 samples.
    """
    cn = a.shape[1] - c0
    for r in range(a.shape[0]):
        if cn >= LANES:
            vstore(out[r], 0, vload(a[r], c0))
        else:
            for c in range(LANES):
                out[r, c] = a[r, c0 + c] if c < cn else 0.0


#: Taps per pass over a block's rows: 128 taps of 16 weights (8 KiB) and of up to 16 rows (8 KiB) stay in the
#: first-level cache while every tile of rows reads them; a longer inner dimension is summed in such passes
#: (without them 64 x 1024 -> 512 ran at half of BLAS's speed: 64 KiB of each per tile).
TAPS_PER_PASS = 128


@njit(cache=True)
def _store_rows(yt, rows, out, r0, c0, bias, add):
    """out[r0 + i, c0 : c0 + 16] = yt[i] + bias (``add``: out[...] += yt[i]) for i < rows, cut at out's end."""
    cn = min(LANES, out.shape[1] - c0)
    one = vsplat(np.float32(1.0))
    for i in range(rows):
        row = out[r0 + i]
        if cn == LANES:
            s = vload(row, c0) if add else bias
            vstore(row, c0, vfma(vload(yt[i], 0), one, s))  # (rounded once)
        elif add:
            for c in range(cn):
                row[c0 + c] += yt[i, c]
        else:
            vstore(yt[i], 0, vfma(vload(yt[i], 0), one, bias))
            for c in range(cn):
                row[c0 + c] = yt[i, c]


@njit(cache=True)
def _tiles(xs, toff, src, col, bs, r0, r1, PT, yt, out, c0, bias):
    """out[r, c0 : c0 + 16] = bias + sum over taps t of src[t, col : col + 16] * xs[bs[r] + toff[t]] for rows
    r0 <= r < r1 (r0 a multiple of PT), in passes of TAPS_PER_PASS taps."""
    T = toff.shape[0]
    for t0 in range(0, T, TAPS_PER_PASS):
        t1 = min(T, t0 + TAPS_PER_PASS)
        for j0 in range(r0, r1, PT):
            _row_tile(xs, toff[t0:t1], src[t0:t1], col, bs[j0 : j0 + PT], PT, yt)
            _store_rows(yt, min(PT, r1 - j0), out, j0, c0, bias, t0 > 0)


@njit(cache=True, nogil=True)
def linear_tiled_forward(x, w, b, PT, parts, i0, i1, y):
    """y = x @ w.T + b for items i0 <= it < i1: outputs 16v to 16v + 15 (v = it // parts) of the samples in
    part ``it % parts`` of the tiles of rows.

    ``x`` (N, K or more), ``w`` (M, K), ``b`` (M,) and ``y`` (N, M) C-contiguous float32, N >= 1; ``PT``
    samples per tile (16, or 6 on CPUs without AVX-512). Rows of ``x`` 4 KiB apart would share the first-level
    cache's sets (16 rows read together in 8 ways): the caller pads them (:func:`catlab.functional.linear`).
    Each item packs its 16 rows of ``w`` (once for consecutive items of the same block), then runs over its
    samples PT at a time.
    """
    N, ldx = x.shape  # (x's rows may be longer than w's: only their first K numbers are read)
    M, K = w.shape
    xs = x.reshape(N * ldx)
    toff = np.arange(K)  # tap t: input t of the sample's row
    bs = _row_bases(N, PT, ldx)
    nt = -(-N // PT)
    wv = np.empty((K, LANES), dtype=np.float32)  # (K, 16): 16 rows of w, transposed
    yt = np.empty((PT, LANES), dtype=np.float32)
    bv = np.zeros(LANES, dtype=np.float32)
    packed = -1
    for it in range(i0, i1):
        v = it // parts
        part = it % parts
        f0 = v * LANES
        if v != packed:
            pack_rows16(w, f0, wv)
            packed = v
        for k in range(min(LANES, M - f0)):
            bv[k] = b[f0 + k]
        r0 = part * nt // parts * PT
        r1 = min(N, (part + 1) * nt // parts * PT)
        _tiles(xs, toff, wv, 0, bs, r0, r1, PT, yt, y, f0, vload(bv, 0))


@njit(cache=True, nogil=True)
def linear_tiled_backward(dy, x, w, PT, i0, i1, dx, dw):
    """Blocks i0 <= it < i1 of both gradients: it < nb are dx[:, 16u : 16u + 16] = dy @ w[:, 16u : 16u + 16]
    (u = it), the others dw[:, 16u : 16u + 16] = dy.T @ x[:, 16u : 16u + 16] (u = it - nb), nb = ceil(K / 16).

    ``dy`` (N, M or more: rows padded as ``x``'s in the forward), ``x`` (N, K), ``w`` (M, K), ``dx`` (N, K),
    ``dw`` (M, K) C-contiguous float32. Nothing is
    packed but the 16 columns a block reads, copied out (:func:`_columns16`); the broadcast numbers are ``dy``'s:
    its rows for dx, its columns for dw.
    """
    N, ldd = dy.shape  # (dy's rows may be longer than w's columns: only their first M numbers are read)
    M, K = w.shape
    nb = -(-K // LANES)
    ds = dy.reshape(N * ldd)
    toff_dx = np.arange(M)  # tap f: output f of the sample's row of dy
    toff_dw = np.arange(N) * ldd  # tap n: sample n's row of dy
    bs_dx = _row_bases(N, PT, ldd)  # tile rows: samples
    bs_dw = _row_bases(M, PT, 1)  # tile rows: outputs
    yt = np.empty((PT, LANES), dtype=np.float32)
    zero = vsplat(np.float32(0.0))
    wcols = np.empty((M, LANES), dtype=np.float32)  # 16 columns of w, one block at a time
    xcols = np.empty((N, LANES), dtype=np.float32)
    for it in range(i0, i1):
        if it < nb:
            _columns16(w, it * LANES, wcols)
            _tiles(ds, toff_dx, wcols, 0, bs_dx, 0, N, PT, yt, dx, it * LANES, zero)
        else:
            c0 = (it - nb) * LANES
            _columns16(x, c0, xcols)
            _tiles(ds, toff_dw, xcols, 0, bs_dw, 0, M, PT, yt, dw, c0, zero)
