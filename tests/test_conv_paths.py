"""Every convolution kernel path (direct, wide, im2col) against the reference loops and torch.

catlab._conv_paths picks a kernel per call (see its table): the direct
small-channel kernels, the stride-1 "wide column" kernels, or im2col + BLAS,
whose work is cut into blocks of output rows when there are fewer samples
than threads. These tests pick configurations that select each path, check
the choice, and also call the kernels directly with other thread partitions
so the blocked paths are exercised on any number of cores.
"""

import numpy as np
import pytest
import reference as ref
from torch_compare import assert_matches_torch

from catlab import _conv_paths as paths
from catlab import _threads as TH
from catlab import functional as F
from catlab._kernels import conv as K

# N, C, H, W, K, R, S, stride, padding, dilation, groups
DIRECT = [
    (1, 1, 9, 7, 3, 3, 3, 1, 1, 1, 1),
    (3, 3, 11, 13, 5, 5, 5, 1, 2, 1, 1),
    (2, 2, 8, 9, 4, 2, 3, 1, "same", 1, 1),  # even kernel: asymmetric padding
    (1, 3, 10, 10, 7, 3, 2, 1, (0, 2), (2, 3), 1),
    (5, 1, 6, 5, 2, 1, 1, 1, 0, 1, 1),
]


IM2COL = [
    (1, 4, 9, 7, 3, 3, 3, 1, 1, 1, 1),  # more channels than the direct path takes
    (2, 2, 9, 8, 9, 3, 3, 1, 1, 1, 1),  # more filters than the direct path takes
    (3, 6, 11, 10, 4, 5, 3, 2, 2, 1, 1),  # strided
    (2, 3, 12, 9, 6, 3, 3, 1, 1, 1, 3),  # groups
    (1, 2, 13, 11, 4, 3, 2, (2, 3), (1, 0), (2, 1), 2),
    (4, 5, 7, 8, 8, 3, 3, 1, "same", 2, 1),
]


def _data(cfg, dtype, seed=0):
    N, C, H, W, Kf, R, S, stride, padding, dilation, groups = cfg
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, C, H, W)).astype(dtype)
    w = r.normal(size=(Kf, C // groups, R, S)).astype(dtype)
    b = r.normal(size=Kf).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    return x, w, b, kw


def _ref(cfg, x, w, b, dy):
    N, C, H, W, Kf, R, S, stride, padding, dilation, groups = cfg
    s2 = stride if isinstance(stride, tuple) else (stride, stride)
    d2 = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    pad = ref.pad_edges(padding, (R, S), d2)
    y = ref.conv2d(x, w, b, s2, pad, d2, groups)
    return y, ref.conv2d_backward(dy, x, w, s2, pad, d2, groups)


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


def _selects_direct(cfg):
    C, Kf, stride, groups = cfg[1], cfg[4], cfg[7], cfg[10]
    s = stride if isinstance(stride, tuple) else (stride, stride)
    return paths.use_direct(C, Kf, groups, *s)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", DIRECT + IM2COL)
def test_each_path_matches_reference(cfg, dtype):
    assert _selects_direct(cfg) == (cfg in DIRECT)
    x, w, b, kw = _data(cfg, dtype)
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    assert y.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **_tol(dtype))
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    assert dx.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))
    np.testing.assert_allclose(dw, dw_ref, rtol=_tol(dtype)["rtol"], atol=10 * _tol(dtype)["atol"])
    np.testing.assert_allclose(db, db_ref, rtol=_tol(dtype)["rtol"], atol=10 * _tol(dtype)["atol"])


@pytest.mark.parametrize("cfg", DIRECT[:2] + IM2COL[:3])
def test_each_path_with_non_contiguous_inputs(cfg):
    x, w, b, kw = _data(cfg, np.float64)
    xs = np.asfortranarray(x)[:, :, ::1, :]  # same values, other memory order
    ws = np.asfortranarray(w)
    dy = np.random.default_rng(2).normal(size=F.conv2d(x, w, **kw).shape)
    dys = np.asfortranarray(dy)
    assert not xs.flags.c_contiguous and not ws.flags.c_contiguous
    np.testing.assert_allclose(F.conv2d(xs, ws, b, **kw), F.conv2d(x, w, b, **kw), rtol=1e-12, atol=1e-12)
    for got, want in zip(F.conv2d_backward(dys, xs, ws, **kw), F.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def _geometry(cfg):
    """Arguments the kernels take, computed here from the definitions (not from functional.py)."""
    N, C, H, W, Kf, R, S, stride, padding, dilation, groups = cfg
    sh, sw = stride if isinstance(stride, tuple) else (stride, stride)
    dh, dw = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    (pt, pb), (pl, pr) = ref.pad_edges(padding, (R, S), (dh, dw))
    P = (H + pt + pb - dh * (R - 1) - 1) // sh + 1
    Q = (W + pl + pr - dw * (S - 1) - 1) // sw + 1
    return sh, sw, pt, pl, dh, dw, P, Q


def _ranges(items, chunks):
    return [(t * items // chunks, (t + 1) * items // chunks) for t in range(chunks)]


@pytest.mark.parametrize("nb,chunks", [(1, 1), (1, 3), (2, 2), (3, 4), (4, 7)])
@pytest.mark.parametrize("cfg", [IM2COL[0], IM2COL[2], IM2COL[3]])
def test_im2col_kernels_under_every_partition(cfg, nb, chunks):
    """Row blocks (nb > 1), any number of chunks (some empty), in any order: the reference results."""
    x, w, b, kw = _data(cfg, np.float64)
    N, C, H, W, Kf, R, S, *_, groups = cfg
    sh, sw, ph, pw, dh, dw, P, Q = _geometry(cfg)
    Kg, Cg = Kf // groups, C // groups
    w3 = w.reshape(groups, Kg, Cg * R * S)
    items = N * groups * nb
    y4 = np.empty((N, groups, Kg, P * Q))
    for i0, i1 in reversed(_ranges(items, chunks)):  # chunks are independent of each other
        K.conv2d_im2col_forward(x, w3, b, R, S, sh, sw, ph, pw, dh, dw, P, Q, nb, i0, i1, y4)
    dy = np.random.default_rng(3).normal(size=(N, Kf, P, Q))
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    np.testing.assert_allclose(y4.reshape(N, Kf, P, Q), y_ref, atol=1e-10)
    wT = np.ascontiguousarray(w3.transpose(0, 2, 1))
    dx = np.zeros_like(x)
    dw_part = np.zeros((chunks,) + w3.shape)
    db_part = np.zeros((chunks, Kf))
    dcols_all = np.empty((N if nb > 1 else 0, groups, Cg * R * S, P * Q))
    for t, (i0, i1) in enumerate(_ranges(items, chunks)):
        K.conv2d_im2col_backward(
            x,
            wT,
            dy.reshape(N, groups, Kg, P * Q),
            R,
            S,
            sh,
            sw,
            ph,
            pw,
            dh,
            dw,
            P,
            Q,
            nb,
            i0,
            i1,
            dw_part[t],
            db_part[t],
            dcols_all,
            dx,
        )
    if nb > 1:
        for i0, i1 in _ranges(N * C, chunks):
            K.conv2d_im2col_scatter(dcols_all, R, S, sh, sw, ph, pw, dh, dw, P, Q, i0, i1, dx)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw_part.sum(axis=0).reshape(w.shape), dw_ref, atol=1e-10)
    np.testing.assert_allclose(db_part.sum(axis=0), db_ref, atol=1e-10)


@pytest.mark.parametrize("kb,chunks", [(1, 1), (2, 2), (3, 5), (7, 3)])
@pytest.mark.parametrize("cfg", [DIRECT[1], DIRECT[3]])
def test_direct_kernels_under_every_partition(cfg, kb, chunks):
    """Filter blocks of any size and any number of chunks (some empty) give the reference results."""
    x, w, b, kw = _data(cfg, np.float64)
    N, C, H, W, Kf, R, S = cfg[:7]
    sh, sw, ph, pw, dh, dw, P, Q = _geometry(cfg)
    y = np.empty((N, Kf, P, Q))
    for i0, i1 in reversed(_ranges(N * -(-Kf // kb), chunks)):
        K.conv2d_direct_forward(x, w, b, R, S, ph, pw, dh, dw, P, Q, kb, i0, i1, y)
    dy = np.random.default_rng(4).normal(size=y.shape)
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    np.testing.assert_allclose(y, y_ref, atol=1e-10)
    dx = np.empty_like(x)
    dw_part, db_part = np.zeros((chunks,) + w.shape), np.zeros((chunks, Kf))
    for t, (n0, n1) in enumerate(_ranges(N, chunks)):
        K.conv2d_direct_backward(x, w, dy, R, S, ph, pw, dh, dw, P, Q, n0, n1, dw_part[t], db_part[t], dx)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw_part.sum(axis=0), dw_ref, atol=1e-10)
    np.testing.assert_allclose(db_part.sum(axis=0), db_ref, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize(
    "cfg",
    [
        (1, 8, 64, 64, 16, 3, 3, 1, 1),  # sizes: at least MIN_CHUNK_WORK per chunk for 3 chunks
        (1, 16, 40, 40, 16, 3, 3, 1, 1),
        (3, 16, 40, 40, 32, 3, 3, 2, 1),
        (6, 3, 40, 40, 8, 5, 5, 1, 2),
    ],
)
def test_functional_dispatch_for_any_thread_count(cfg, threads, thread_backend, chunks_used, monkeypatch):
    """The thread count the wrappers plan for (blocks, chunks) never changes the answer.

    The layers are large enough to be split among threads; the expected values
    come from the benchmark's independent NumPy im2col implementation.
    """
    from catlab import _threads as TH
    from catlab.bench import numpy_conv2d, numpy_conv2d_backward

    N, C, H, W, Kf, R, S, stride, pad = cfg
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(paths, "WIDE_ONE_THREAD_WORK", 0)  # one sample: im2col's row blocks, split
    monkeypatch.setattr(paths, "MIN_CHUNK_WORK", 3e5)  # chunks of 3e5 multiply-adds: these layers split 3 ways
    used = chunks_used
    r = np.random.default_rng(8)
    x, w, b = r.normal(size=(N, C, H, W)), r.normal(size=(Kf, C, R, S)), r.normal(size=Kf)
    y = F.conv2d(x, w, b, stride, pad)
    np.testing.assert_allclose(y, numpy_conv2d(x, w, b, stride, pad), atol=1e-10)
    dy = r.normal(size=y.shape)
    for got, want in zip(F.conv2d_backward(dy, x, w, stride, pad), numpy_conv2d_backward(dy, x, w, stride, pad)):
        np.testing.assert_allclose(got, want, atol=1e-10)
    assert max(used) == threads  # the work really was split among that many chunks


@pytest.mark.parametrize("cfg", [DIRECT[1], IM2COL[1], IM2COL[2]])
def test_both_paths_are_deterministic(cfg):
    x, w, b, kw = _data(cfg, np.float32)
    y1, y2 = F.conv2d(x, w, b, **kw), F.conv2d(x, w, b, **kw)
    np.testing.assert_array_equal(y1, y2)
    dy = np.random.default_rng(5).normal(size=y1.shape).astype(np.float32)
    for u, v in zip(F.conv2d_backward(dy, x, w, **kw), F.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [DIRECT[0], DIRECT[1], DIRECT[3], IM2COL[0], IM2COL[1], IM2COL[3]])
def test_each_path_matches_torch(cfg, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, kw = _data(cfg, dtype)
    assert kw["padding"] != "same"  # pick configurations without 'same' here: keeps torch's warning out
    assert_matches_torch(
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda dy, x, w, b: F.conv2d_backward(dy, x, w, **kw),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
        [x, w, b],
        seed=6,
    )


# --- the "wide column" kernels (im2col over the padded plane, split into stride phases) ---------------


# N, C, H, W, K, R, S, stride, padding, dilation, groups (as DIRECT and IM2COL)
WIDE = [
    (2, 4, 9, 7, 5, 3, 3, 1, 1, 1, 1),
    (3, 6, 10, 11, 9, 5, 5, 1, 2, 1, 1),
    (2, 6, 8, 9, 6, 2, 3, 1, "same", 1, 3),  # even kernel: asymmetric padding; groups
    (3, 5, 12, 13, 8, 3, 2, 1, (0, 2), (2, 3), 1),  # dilation, rectangular kernel
    (4, 4, 6, 6, 4, 1, 1, 1, 0, 1, 2),  # 1x1 kernel, groups: no copy, the sample is its own cols
    (2, 16, 16, 16, 20, 5, 5, 1, 2, 1, 1),  # the benchmark's medium-channel shape
    (3, 4, 11, 9, 6, 3, 3, 2, 1, 1, 1),  # stride 2: four phase planes
    (2, 4, 10, 10, 6, 3, 3, 2, 0, 1, 2),  # stride 2, groups; the last input row and column are never read
    (2, 3, 13, 14, 5, 5, 4, (2, 3), (2, 1), (1, 2), 1),  # unequal strides, dilation, rectangular kernel
    (2, 3, 16, 16, 4, 7, 7, 2, 3, 1, 1),  # a ResNet-style 7x7 stride-2 stem
    (2, 8, 9, 9, 6, 2, 2, 2, 0, 1, 1),  # 2x2 patches with stride 2 (no overlap): one tap per phase
    (2, 16, 36, 30, 3, 5, 5, 1, 2, 1, 1),  # a sample's columns exceed COLS_BUDGET: blocks of output rows
    (3, 8, 33, 31, 4, 3, 3, 2, 1, 1, 2),  # the same with stride 2 and groups
]


def _wide_geometry(cfg):
    """Stride, top/left padding, dilation and output size from the definitions (not from functional.py)."""
    return _geometry(cfg)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", WIDE)
def test_wide_path_is_taken_and_matches_reference(cfg, dtype, threads, monkeypatch):
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    monkeypatch.setattr(TH, "numba_parallel", lambda n_chunks: False)  # Numba's threads would bypass the spies
    monkeypatch.setattr(paths, "TILED", False)  # float32 forwards would take the tiled kernels (test_conv_tiled.py)
    taken = []
    for name in ("conv2d_wide_forward", "conv2d_wide_backward"):
        kernel = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _k=kernel, _n=name: (taken.append(_n), _k(*a)))
    x, w, b, kw = _data(cfg, dtype)
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    assert {"conv2d_wide_forward", "conv2d_wide_backward"} <= set(taken)
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    tol = _tol(dtype)
    np.testing.assert_allclose(y, y_ref, **tol)
    np.testing.assert_allclose(dx, dx_ref, **tol)
    np.testing.assert_allclose(dw, dw_ref, rtol=tol["rtol"], atol=10 * tol["atol"])
    np.testing.assert_allclose(db, db_ref, rtol=tol["rtol"], atol=10 * tol["atol"])


# N, C, H, W, K, R, S, stride, padding, dilation, groups: plain 1x1 convolutions within one chunk's work
PLAIN = [
    (1, 6, 5, 7, 4, 1, 1, 1, 0, 1, 1),
    (3, 5, 4, 4, 7, 1, 1, 1, 0, 2, 1),  # dilation changes nothing for a 1x1 kernel
    (1, 64, 16, 16, 32, 1, 1, 1, 0, 1, 1),  # the benchmark's 1x1 layer at batch 1
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", PLAIN)
def test_plain_1x1_products_match_reference(cfg, dtype, monkeypatch):
    """A 1x1 convolution without stride, padding or groups, small enough for one chunk: each sample one
    matrix product on NumPy's BLAS (no kernel runs), against the loops; the batch sum of dweight in order."""
    if not TH.numpy_blas_limitable():
        pytest.skip("threadpoolctl cannot limit NumPy's BLAS here: the kernels take these calls")
    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    calls = []
    monkeypatch.setattr(TH, "run_kernel", lambda *a, **k: calls.append(a[0]))  # none may run
    x, w, b, kw = _data(cfg, dtype)
    x_before = x.copy()
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    assert calls == []
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    assert y.shape == y_ref.shape and dx.shape == x.shape and dw.shape == w.shape
    tol = _tol(dtype)
    for got, want in ((y, y_ref), (dx, dx_ref), (dw, dw_ref), (db, db_ref)):
        np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=10 * tol["atol"])
    np.testing.assert_array_equal(x, x_before)


def test_plain_product_choice():
    geo = paths.Geometry(1, 1, 0, 0, 1, 1, 16, 16)
    assert paths.plain_product(1, 64, 32, 1, 1, 1, geo, 2) is TH.numpy_blas_limitable()
    assert not paths.plain_product(64, 64, 32, 1, 1, 1, geo, 2)  # a chunk per thread: the kernels
    assert not paths.plain_product(1, 64, 32, 2, 1, 1, geo, 2)  # groups
    assert not paths.plain_product(1, 64, 32, 1, 3, 3, paths.Geometry(1, 1, 1, 1, 1, 1, 16, 16), 2)
    assert not paths.plain_product(1, 64, 32, 1, 1, 1, paths.Geometry(2, 2, 0, 0, 1, 1, 8, 8), 2)  # stride
    assert not paths.plain_product(1, 64, 32, 1, 1, 1, paths.Geometry(1, 1, 1, 1, 1, 1, 18, 18), 2)  # padding


@pytest.mark.parametrize("chunks", [1, 2, 5])
@pytest.mark.parametrize("cfg", [WIDE[1], WIDE[2], WIDE[3], WIDE[4], WIDE[7], WIDE[8], WIDE[11], WIDE[12]])
def test_wide_kernels_under_every_partition(cfg, chunks):
    """Any number of chunks (some empty), run in any order, gives the reference results."""
    x, w, b, _ = _data(cfg, np.float64)
    N, C, H, W, Kf, R, S, _, _, _, G = cfg
    sh, sw, ph, pw, dh, dw, P, Q = _wide_geometry(cfg)
    Kg, Cg = Kf // G, C // G
    w3 = w.reshape(G, Kg, Cg * R * S)
    ranges = [(t * N * G // chunks, (t + 1) * N * G // chunks) for t in range(chunks)]
    y4 = np.full((N, G, Kg, P * Q), np.nan)
    for i0, i1 in reversed(ranges):
        K.conv2d_wide_forward(x, w3, b, R, S, sh, sw, ph, pw, dh, dw, P, Q, i0, i1, y4)
    dy = np.random.default_rng(3).normal(size=(N, Kf, P, Q))
    y_ref, (dx_ref, dw_ref, db_ref) = _ref(cfg, x, w, b, dy)
    np.testing.assert_allclose(y4.reshape(N, Kf, P, Q), y_ref, atol=1e-10)
    wT = np.ascontiguousarray(w3.transpose(0, 2, 1))
    dx = np.full_like(x, np.nan)  # every element must be written
    dw_part, db_part = np.zeros((chunks,) + w3.shape), np.zeros((chunks, Kf))
    for t, (i0, i1) in enumerate(ranges):
        K.conv2d_wide_backward(
            x, wT, dy.reshape(N, G, Kg, P * Q), R, S, sh, sw, ph, pw, dh, dw, P, Q, i0, i1, dw_part[t], db_part[t], dx
        )
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw_part.sum(axis=0).reshape(w.shape), dw_ref, atol=1e-10)
    np.testing.assert_allclose(db_part.sum(axis=0), db_ref, atol=1e-10)


def test_wide_path_choice():
    """Samples for every thread, and at most WIDE_MAX_EXTRA extra columns (any stride)."""
    assert paths.use_wide(64, 2, 1, 1, 16, 16, 5, 5, 1, 1)  # 16x16 output, 5x5: (15*20+16)/256 = 1.23
    assert paths.use_wide(64, 2, 2, 2, 16, 16, 5, 5, 1, 1)  # stride 2: phases of width 18, (15*18+16)/256 = 1.12
    assert not paths.use_wide(1, 2, 1, 1, 16, 16, 5, 5, 1, 1)  # fewer samples than threads: row blocks instead
    assert not paths.use_wide(1, 2, 1, 1, 16, 16, 5, 5, 1, 1, work=paths.WIDE_ONE_THREAD_WORK + 1)  # ... if large
    assert paths.use_wide(1, 2, 1, 1, 16, 16, 5, 5, 1, 1, work=paths.WIDE_ONE_THREAD_WORK)  # small: whole samples
    assert not paths.use_wide(64, 2, 1, 1, 2, 2, 5, 5, 1, 1)  # 2x2 output of a 5x5 kernel: (1*6+2)/4 = 2 > 1.5
    assert paths.wide_extra(16, 16, 1, 1, 1, 1, 1, 1) == 1.0  # 1x1, stride 1: no extra columns
    assert not paths.use_wide(64, 2, 2, 2, 8, 8, 1, 1, 1, 1)  # 1x1 with stride 2: three phases nobody reads
    assert not paths.use_wide(64, 2, 1, 2**31 - 1, 8, 1, 3, 3, 1, 1)  # a huge stride would allocate huge planes


def test_wide_choice_is_what_the_tests_exercise():
    """Every WIDE configuration takes the wide path with two threads (else the tests above test nothing new),
    and the forward kernel's three blockings all occur: samples side by side, one sample, rows of one sample."""
    blockings = set()
    for cfg in WIDE:
        N, C, H, W, Kf, R, S, _, _, _, G = cfg
        sh, sw, ph, pw, dh, dw, P, Q = _geometry(cfg)
        Wph = ((Q - 1) * sw + dw * (S - 1) + sw) // sw
        per_sample = C // G * R * S * ((P - 1) * Wph + Q)
        if R * S == 1 and (sh, sw, ph, pw) == (1, 1, 0, 0):
            blockings.add("no copy")
        elif G == 1 and 2 * per_sample <= K.COLS_BUDGET:
            blockings.add("samples")
        elif (C // G) * R * S * Wph * P > K.COLS_BUDGET and P * Wph > K.MIN_GEMM_COLUMNS:
            blockings.add("rows")
        else:
            blockings.add("one sample")
    assert blockings == {"no copy", "samples", "rows", "one sample"}
    for cfg in WIDE:
        N, C, H, W, Kf, R, S, _, _, _, G = cfg
        sh, sw, ph, pw, dh, dw, P, Q = _geometry(cfg)
        geo = paths.Geometry(sh, sw, ph, pw, dh, dw, P, Q)
        assert paths.choose(N, C, Kf, G, R, S, geo, 2) == "wide", cfg


def test_wide_path_is_deterministic_and_leaves_inputs_alone():
    x, w, b, kw = _data(WIDE[1], np.float32)
    x0, w0 = x.copy(), w.copy()
    y1, y2 = F.conv2d(x, w, b, **kw), F.conv2d(x, w, b, **kw)
    np.testing.assert_array_equal(y1, y2)
    dy = np.random.default_rng(5).normal(size=y1.shape).astype(np.float32)
    for u, v in zip(F.conv2d_backward(dy, x, w, **kw), F.conv2d_backward(dy, x, w, **kw)):
        np.testing.assert_array_equal(u, v)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


def test_wide_conv1d_matches_reference():
    r = np.random.default_rng(7)
    x, w, b = r.normal(size=(3, 4, 20)), r.normal(size=(5, 4, 3)), r.normal(size=5)
    y = F.conv1d(x, w, b, padding=1)
    y_ref = ref.conv2d(x[:, :, None], w[:, :, None], b, (1, 1), ((0, 0), (1, 1)), (1, 1), 1)[:, :, 0]
    np.testing.assert_allclose(y, y_ref, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [WIDE[0], WIDE[1], WIDE[3], WIDE[5], WIDE[6], WIDE[8], WIDE[9]])
def test_wide_path_matches_torch(cfg, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, kw = _data(cfg, dtype)
    assert_matches_torch(
        lambda x, w, b: F.conv2d(x, w, b, **kw),
        lambda dy, x, w, b: F.conv2d_backward(dy, x, w, **kw),
        lambda x, w, b: torch.nn.functional.conv2d(x, w, b, **kw),
        [x, w, b],
        seed=6,
    )


# --- inf and NaN propagate as in torch on every path (issue 14, item 3) -----------------------


def test_inf_in_x_by_hand_gives_torch_dweight():
    """The issue's example: catlab's direct path gave dweight [[nan, nan, inf]], torch [[6, 6, inf]]."""
    x = np.ones((1, 1, 2, 5))
    x[0, 0, 0, 4] = np.inf
    w = np.ones((1, 1, 1, 3))
    dx, dweight, db = F.conv2d_backward(np.ones((1, 1, 2, 3)), x, w)
    np.testing.assert_array_equal(dweight[0, 0], [[6.0, 6.0, np.inf]])
    np.testing.assert_array_equal(dx[0, 0], [[1, 2, 3, 2, 1], [1, 2, 3, 2, 1]])


# path, x shape, w shape, padding, dilation (stride 1: the direct and wide paths only take stride 1)
NONFINITE = [
    ("direct", (2, 2, 7, 8), (3, 2, 3, 3), 1, 1),
    ("direct", (1, 1, 6, 9), (2, 1, 2, 3), (0, 2), (2, 2)),
    ("wide", (4, 5, 7, 8), (6, 5, 3, 3), 1, 1),
    ("wide", (4, 4, 8, 9), (9, 4, 3, 2), (1, 0), (1, 2)),
    ("im2col", (1, 5, 7, 8), (6, 5, 3, 3), 1, 1),
]


@pytest.mark.parametrize("where", ["x", "weight", "dy"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("path,xs,ws,padding,dilation", NONFINITE)
def test_inf_and_nan_propagate_as_in_torch(path, xs, ws, padding, dilation, dtype, value, where, monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setattr(TH, "num_threads", lambda: 2)
    monkeypatch.setattr(paths, "WIDE_ONE_THREAD_WORK", 0)  # one sample on two threads: im2col's row blocks
    r = np.random.default_rng(hash((xs, ws)) % 2**32)
    x = r.normal(size=xs).astype(dtype)
    w = r.normal(size=ws).astype(dtype)
    kw = dict(padding=padding, dilation=dilation)
    y = F.conv2d(x, w, **kw)
    dy = r.normal(size=y.shape).astype(dtype)
    arr = {"x": x, "weight": w, "dy": dy}[where]
    flat = arr.reshape(-1)
    flat[r.choice(flat.size, size=2, replace=False)] = value
    d2 = (dilation, dilation) if isinstance(dilation, int) else dilation
    P, Q = y.shape[2:]
    geo = paths.Geometry(1, 1, 0, 0, d2[0], d2[1], P, Q)
    assert paths.choose(xs[0], xs[1], ws[0], 1, ws[2], ws[3], geo, 2) == path
    # torch's float32 CPU convolution (oneDNN) leaves the zero padding out of its products, its float64 one
    # multiplies it (0 * inf = NaN) as catlab does in every dtype and path: compare with torch in float64.
    assert_matches_torch(
        lambda x, w: F.conv2d(x, w, **kw),
        lambda dy, x, w: F.conv2d_backward(dy, x, w, **kw)[:2],
        lambda x, w: torch.nn.functional.conv2d(x, w, **kw),
        [x, w],
        dy=dy,
        names=["x", "weight"],
        torch_dtype=np.float64,
    )


def test_winograd_path_is_taken_where_it_qualifies_and_skipped_for_non_finite_inputs():
    """The forward pass of a VGG-like layer runs on Winograd; an inf or NaN sends it to the other paths."""
    from catlab import _conv_paths as CP

    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 16, 32, 32)).astype(np.float32)
    w = (rng.standard_normal((16, 16, 3, 3)) * 0.1).astype(np.float32)
    geo = CP.Geometry(1, 1, 1, 1, 1, 1, 32, 32)
    assert CP.winograd_tile(x, w, 1, geo) in (2, 4)
    assert CP.winograd_tile(x, w, 1, CP.Geometry(1, 1, 1, 1, 1, 1, 31, 31)) == 0  # padding not the same on both sides
    assert CP.winograd_tile(x[:, :8], w[:8, :8], 1, CP.Geometry(1, 1, 1, 1, 1, 1, 32, 32)) == 0  # few channels
    for bad in (np.inf, -np.inf, np.nan):
        xb = x.copy()
        xb[1, 3, 7, 9] = bad
        assert CP.winograd_tile(xb, w, 1, geo) == 0
        wb = w.copy()
        wb[2, 1, 0, 0] = bad
        assert CP.winograd_tile(x, wb, 1, geo) == 0
    # the Winograd result equals the float64 convolution to float32 round-off
    y = F.conv2d(x, w, padding=1)
    y64 = F.conv2d(x.astype(np.float64), w.astype(np.float64), padding=1)
    assert np.abs(y - y64).max() <= 1e-5 * np.abs(y64).max()
    # and an inf gives exactly the non-finite outputs of the float64 (non-Winograd) convolution
    xb = x.copy()
    xb[1, 3, 7, 9] = np.inf
    np.testing.assert_array_equal(
        ~np.isfinite(F.conv2d(xb, w, padding=1)),
        ~np.isfinite(F.conv2d(xb.astype(np.float64), w.astype(np.float64), padding=1)),
    )
