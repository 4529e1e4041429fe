"""Linear layers by register tiles (catlab._kernels.linear): the convolution's tile across filters on a matrix.

Checked against NumPy's float64 products (each kernel directly, on shapes with every kind of ragged edge:
outputs, inputs and samples not multiples of 16, fewer samples than a tile, rows padded against cache
aliasing), known answers, the same results on any number of threads, the routing rule, and torch.
"""

import numpy as np
import pytest

from catlab import _conv_paths as paths
from catlab import _threads as TH
from catlab import functional as F
from catlab._kernels import linear as KL
from catlab._kernels import simd

pytestmark = pytest.mark.skipif(not paths.TILED, reason="the register tiles need AVX2 and FMA, or AVX-512")

TILE_ROWS = [6, 16] if paths.WIDE_REGISTERS else [6]  # (the 16-row tile needs AVX-512's 32 registers)
SHAPES = [(1, 1, 1), (5, 17, 3), (16, 16, 16), (17, 33, 47), (33, 130, 16), (40, 300, 5), (64, 120, 84)]


def _f64(*arrays):
    return [a.astype(np.float64) for a in arrays]


def _operands(N, K, M, seed=0):
    r = np.random.default_rng(seed)
    return [r.normal(size=s).astype(np.float32) for s in ((N, K), (M, K), (M,), (N, M))]


def test_transpose_of_a_block_of_columns():
    """vtranspose16_at(a, c, out): out[j, :16] = a[:16, c + j], compiled and in Python; nothing else written;
    a block past a's last column is an IndexError in Python (and under NUMBA_BOUNDSCHECK)."""
    import numba

    @numba.njit(cache=False)
    def transpose_at(a, c, out):
        simd.vtranspose16_at(a, c, out)

    a = np.random.default_rng(1).normal(size=(17, 40)).astype(np.float32)
    for fn in (transpose_at, simd.vtranspose16_at):
        for c in (0, 5, 24):
            out = np.full((18, 16), 7.0, dtype=np.float32)
            fn(a, c, out)
            np.testing.assert_array_equal(out[:16], a[:16, c : c + 16].T)
            np.testing.assert_array_equal(out[16:], 7.0)
    with pytest.raises(IndexError, match="16 rows"):
        simd.vtranspose16_at(a, 25, np.empty((16, 16), np.float32))


@pytest.mark.parametrize("M, K", [(16, 16), (16, 40), (20, 33), (7, 5), (48, 100)])
def test_pack_rows16_transposes_sixteen_rows(M, K):
    """wv[t, k] = w[f0 + k, t], zero past the last row; every t < K written."""
    w = np.random.default_rng(M * K).normal(size=(M, K)).astype(np.float32)
    for f0 in range(0, M, 16):
        wv = np.full((K, 16), np.nan, dtype=np.float32)
        KL.pack_rows16(w, f0, wv)
        want = np.zeros((K, 16), dtype=np.float32)
        want[:, : min(16, M - f0)] = w[f0 : f0 + 16].T
        np.testing.assert_array_equal(wv, want)


def test_tiled_kernels_known_answer():
    """Hand-computable: x holds 1 to 20 in each of 20 rows, w is two rows of ones and one unit row; so
    y[n] = (210, 210, x[n, 3]) + b, dx = dy @ w and dw = dy.T @ x by hand for dy all ones."""
    N, K = 20, 20
    x = np.tile(np.arange(1, K + 1, dtype=np.float32), (N, 1))
    x[:, 3] = np.arange(N)  # column 3: the sample's number
    w = np.zeros((3, K), dtype=np.float32)
    w[0], w[1], w[2, 3] = 1.0, 1.0, 1.0
    b = np.array([0.5, -1.0, 100.0], dtype=np.float32)
    for PT in TILE_ROWS:
        y = np.full((N, 3), np.nan, dtype=np.float32)
        KL.linear_tiled_forward(x, w, b, PT, 1, 0, 1, y)
        s = 210.0 - 4.0 + np.arange(N)  # 1 + ... + 20 with 4 replaced by the sample's number
        np.testing.assert_array_equal(y, np.stack([s + 0.5, s - 1.0, np.arange(N) + 100.0], axis=1))
        dy = np.ones((N, 3), dtype=np.float32)
        dx, dw = np.full((N, K), np.nan, np.float32), np.full((3, K), np.nan, np.float32)
        KL.linear_tiled_backward(dy, x, w, PT, 0, 4, dx, dw)
        want_dx = np.full(K, 2.0, dtype=np.float32)
        want_dx[3] = 3.0
        np.testing.assert_array_equal(dx, np.tile(want_dx, (N, 1)))
        col_sums = np.arange(1, K + 1, dtype=np.float32) * N
        col_sums[3] = N * (N - 1) / 2
        np.testing.assert_array_equal(dw, np.tile(col_sums, (3, 1)))


@pytest.mark.parametrize("PT", TILE_ROWS)
@pytest.mark.parametrize("N, K, M", SHAPES)
@pytest.mark.parametrize("parts", [1, 2, 3])
def test_tiled_forward_matches_float64(N, K, M, PT, parts):
    """Every item alone writes its block of outputs for its part of the samples and nothing else; all items
    together give x @ w.T + b to float32 round-off, with x's rows read from a longer (padded) row too."""
    x, w, b, _ = _operands(N, K, M)
    x64, w64, b64 = _f64(x, w, b)
    want = x64 @ w64.T + b64
    blocks = -(-M // 16)
    y = np.full((N, M), np.nan, dtype=np.float32)
    for it in range(blocks * parts):
        before = y.copy()
        KL.linear_tiled_forward(x, w, b, PT, parts, it, it + 1, y)
        changed = ~((y == before) | (np.isnan(y) & np.isnan(before)))
        v, part = divmod(it, parts)
        nt = -(-N // PT)
        rows = slice(part * nt // parts * PT, min(N, (part + 1) * nt // parts * PT))
        mask = np.zeros((N, M), dtype=bool)
        mask[rows, v * 16 : v * 16 + 16] = True
        assert np.array_equal(changed, mask), f"item {it} wrote outside its block"
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5 * np.sqrt(K))
    xp = np.full((N, K + 16), np.nan, dtype=np.float32)  # rows padded (by NaN: never read)
    xp[:, :K] = x
    y2 = np.empty((N, M), dtype=np.float32)
    KL.linear_tiled_forward(xp, w, b, PT, parts, 0, blocks * parts, y2)
    np.testing.assert_array_equal(y2, y)


@pytest.mark.parametrize("PT", TILE_ROWS)
@pytest.mark.parametrize("N, K, M", SHAPES)
def test_tiled_backward_matches_float64(N, K, M, PT):
    """Items below ceil(K / 16) write dx's blocks of 16 columns, the others dw's; with dy's rows padded too."""
    x, w, _, dy = _operands(N, K, M, seed=1)
    x64, w64, dy64 = _f64(x, w, dy)
    nb = -(-K // 16)
    dx, dw = np.full((N, K), np.nan, np.float32), np.full((M, K), np.nan, np.float32)
    for it in range(2 * nb):
        KL.linear_tiled_backward(dy, x, w, PT, it, it + 1, dx, dw)
        c = slice((it % nb) * 16, (it % nb) * 16 + 16)
        done = dx if it < nb else dw
        assert not np.isnan(done[:, c]).any() and np.isnan(done[:, c.stop :]).all()
    np.testing.assert_allclose(dx, dy64 @ w64, rtol=1e-5, atol=1e-5 * np.sqrt(M))
    np.testing.assert_allclose(dw, dy64.T @ x64, rtol=1e-5, atol=1e-5 * np.sqrt(N))
    dyp = np.full((N, M + 16), np.nan, dtype=np.float32)
    dyp[:, :M] = dy
    dx2, dw2 = np.empty_like(dx), np.empty_like(dw)
    KL.linear_tiled_backward(dyp, x, w, PT, 0, 2 * nb, dx2, dw2)
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_array_equal(dw2, dw)


def test_tiled_kernels_propagate_inf_and_nan_as_blas():
    """An infinity or NaN reaches exactly the outputs whose sums contain it (padding lanes never leak)."""
    x, w, b, dy = _operands(20, 19, 18, seed=2)
    x[3, 5], w[17, 2], dy[19, 17] = np.inf, np.nan, -np.inf
    x64, w64, b64, dy64 = _f64(x, w, b, dy)
    with np.errstate(invalid="ignore"):  # (NumPy's float64 products meet inf * 0 too)
        _check_specials(x, w, b, dy, x64, w64, b64, dy64)


def _check_specials(x, w, b, dy, x64, w64, b64, dy64):
    y = np.empty((20, 18), np.float32)
    KL.linear_tiled_forward(x, w, b, TILE_ROWS[-1], 1, 0, 2, y)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(x64 @ w64.T + b64))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(x64 @ w64.T + b64))
    dx, dw = np.empty_like(x), np.empty_like(w)
    KL.linear_tiled_backward(dy, x, w, TILE_ROWS[-1], 0, 4, dx, dw)
    np.testing.assert_array_equal(np.isnan(dx), np.isnan(dy64 @ w64))
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(dy64.T @ x64))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(dy64.T @ x64))


@pytest.mark.parametrize("N, K, M", [(16, 400, 120), (64, 120, 84), (40, 1024, 20), (300, 33, 10)])
def test_linear_takes_the_tiles_and_agrees_on_any_thread_count(N, K, M, thread_backend, monkeypatch):
    """float32 batches of 16 or more with at most LINEAR_TILED_MAX_WEIGHTS weights take the tiles; the results
    are bit for bit the same on 1, 2 and 3 threads (each output summed by one tile, in one order), match
    float64 to round-off, and leave the inputs as they were (also from non-contiguous views)."""
    taken = []
    for name in ("_linear_tiled_forward", "_linear_tiled_backward"):  # (never the kernels: Numba compiles them)
        real = getattr(F, name)
        monkeypatch.setattr(F, name, lambda *a, _real=real, _name=name: (taken.append(_name), _real(*a))[1])
    x, w, b, dy = _operands(N, K, M, seed=3)
    x = np.asfortranarray(x)  # (a view the layer must copy, not modify)
    saved = [a.copy() for a in (x, w, b, dy)]
    results = []
    for threads in (1, 2, 3):
        monkeypatch.setattr(TH, "num_threads", lambda threads=threads: threads)
        results.append((F.linear(x, w, b), *F.linear_backward(dy, x, w)))
    assert taken.count("_linear_tiled_forward") == 3 and taken.count("_linear_tiled_backward") == 3
    for got in results[1:]:
        for a, b_ in zip(got, results[0]):
            np.testing.assert_array_equal(a, b_)
    for a, s in zip((x, w, b, dy), saved):
        np.testing.assert_array_equal(a, s)
    x64, w64, b64, dy64 = _f64(x, w, b, dy)
    y, dx, dw, db = results[0]
    assert y.dtype == dx.dtype == dw.dtype == np.float32 and y.flags.c_contiguous
    tol = dict(rtol=1e-5, atol=1e-5 * np.sqrt(max(N, K, M)))
    np.testing.assert_allclose(y, x64 @ w64.T + b64, **tol)
    np.testing.assert_allclose(dx, dy64 @ w64, **tol)
    np.testing.assert_allclose(dw, dy64.T @ x64, **tol)
    np.testing.assert_allclose(db, dy64.sum(axis=0), **tol)


def test_tiles_routing_rule():
    """Tiles for float32 with enough samples and not too many weights; float64, small batches and large
    weights keep BLAS (measured in catlab.functional's notes)."""
    f32, f64 = np.float32, np.float64
    assert F._linear_tiled(np.empty((64, 400), f32), np.empty((120, 400), f32))
    assert not F._linear_tiled(np.empty((64, 400), f64), np.empty((120, 400), f64))
    assert not F._linear_tiled(np.empty((F.LINEAR_TILED_MIN_ROWS - 1, 400), f32), np.empty((120, 400), f32))
    assert not F._linear_tiled(np.empty((64, 4096), f32), np.empty((1024, 4096), f32))
    assert F._unaliased_rows(np.empty((4, 1024), f32)).shape == (4, 1040)  # rows 4 KiB apart: padded
    a = np.empty((4, 1000), f32)
    assert F._unaliased_rows(a) is a


def test_tiled_linear_matches_torch():
    torch = pytest.importorskip("torch")
    x, w, b, dy = _operands(48, 200, 70, seed=4)
    xt, wt, bt = (torch.from_numpy(a).requires_grad_() for a in (x, w, b))
    yt = torch.nn.functional.linear(xt, wt, bt)
    yt.backward(torch.from_numpy(dy))
    dx, dw, db = F.linear_backward(dy, x, w)
    for got, want in ((F.linear(x, w, b), yt), (dx, xt.grad), (dw, wt.grad), (db, bt.grad)):
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-5, atol=1e-4)
