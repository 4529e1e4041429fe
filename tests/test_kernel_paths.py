"""Every convolution kernel path against the reference loops (and torch when installed).

catlab.functional picks a kernel per call: the direct small-channel kernels
(stride 1, one group, at most ``DIRECT_MAX_CHANNELS`` input channels and
``DIRECT_MAX_FILTERS`` filters) or
im2col + BLAS, whose work is cut into blocks of output rows when there are
fewer samples than threads (the stride-1 "wide column" variant has its own
tests in test_conv_wide.py). These tests pick configurations that select each
path, check the choice, and also call the kernels directly with other thread
partitions so the blocked paths are exercised on any number of cores.
"""

import numpy as np
import pytest

import reference as ref
from catlab import _threads
from catlab import _conv_paths as paths
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
        K.conv2d_im2col_backward(x, wT, dy.reshape(N, groups, Kg, P * Q), R, S, sh, sw, ph, pw, dh, dw, P, Q, nb, i0, i1,
                    dw_part[t], db_part[t], dcols_all, dx)
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
        K.conv2d_direct_backward(x, w, dy, R, S, ph, pw, dh, dw, P, Q, n0, n1, dx, dw_part[t], db_part[t])
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw_part.sum(axis=0), dw_ref, atol=1e-10)
    np.testing.assert_allclose(db_part.sum(axis=0), db_ref, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("cfg", [(1, 2, 64, 64, 16, 3, 3, 1, 1), (1, 8, 40, 40, 16, 3, 3, 1, 1),
                                 (3, 8, 40, 40, 16, 3, 3, 2, 1), (5, 3, 30, 30, 8, 5, 5, 1, 2)])
def test_functional_dispatch_for_any_thread_count(cfg, threads, monkeypatch):
    """The thread count the wrappers plan for (blocks, chunks) never changes the answer.

    The layers are large enough to be split among threads; the expected values
    come from the benchmark's independent NumPy im2col implementation.
    """
    from catlab import _threads as TH
    from catlab.bench import numpy_conv2d, numpy_conv2d_backward

    N, C, H, W, Kf, R, S, stride, pad = cfg
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = []
    run = TH.run_chunks
    monkeypatch.setattr(TH, "run_chunks", lambda work, n: (used.append(n), run(work, n)))
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


def test_single_threaded_blas_restores_the_thread_counts():
    libs = _threads._kernel_blas()
    before = [lib.num_threads for lib in libs]
    with _threads.kernel_blas_single_threaded():
        assert all(lib.num_threads == 1 for lib in libs)
    assert [lib.num_threads for lib in libs] == before


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [DIRECT[0], DIRECT[1], DIRECT[3], IM2COL[0], IM2COL[1], IM2COL[3]])
def test_each_path_matches_torch(cfg, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, kw = _data(cfg, dtype)
    if kw["padding"] == "same":
        pytest.fail("pick configurations without 'same' here")  # keeps torch's warning out
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    y = F.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    dy = np.random.default_rng(6).normal(size=y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    for mine, theirs in zip(F.conv2d_backward(dy, x, w, **kw), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), **_tol(dtype))


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_pool_and_relu_split_among_threads(threads, monkeypatch):
    """Large enough to be split into chunks; expected values from NumPy reshapes (2x2 windows, no ties)."""
    from catlab import _threads as TH

    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = []
    run = TH.run_chunks
    monkeypatch.setattr(TH, "run_chunks", lambda work, n: (used.append(n), run(work, n)))
    r = np.random.default_rng(9)
    x = r.normal(size=(8, 16, 96, 94))
    win = x.reshape(8, 16, 48, 2, 47, 2)
    dy = r.normal(size=(8, 16, 48, 47))
    up = np.repeat(np.repeat(dy, 2, axis=2), 2, axis=3)  # each window's gradient on its four cells

    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y, win.max(axis=(3, 5)))
    winner = x == np.repeat(np.repeat(y, 2, axis=2), 2, axis=3)
    np.testing.assert_array_equal(F.max_pool2d_backward(dy, x, 2), np.where(winner, up, 0.0))
    np.testing.assert_allclose(F.avg_pool2d(x, 2), win.mean(axis=(3, 5)), atol=1e-14)
    np.testing.assert_allclose(F.avg_pool2d_backward(dy, x, 2), up / 4, atol=1e-14)
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0.0))
    np.testing.assert_array_equal(F.relu_backward(up, x), np.where(x > 0, up, 0.0))
    assert used == [threads] * 6  # every one of the six calls was split


def test_linear_backward_batch_one_matches_batch_two():
    """N = 1 takes the outer-product path; it must agree with the matrix-product path row by row."""
    r = np.random.default_rng(10)
    x, w, dy = r.normal(size=(2, 7)), r.normal(size=(3, 7)), r.normal(size=(2, 3))
    dx1, dw1, db1 = F.linear_backward(dy[:1], x[:1], w)
    np.testing.assert_allclose(dw1, np.outer(dy[0], x[0]), atol=1e-14)
    dx2, dw2, db2 = F.linear_backward(dy, x, w)
    dxb, dwb, dbb = F.linear_backward(dy[1:], x[1:], w)
    np.testing.assert_allclose(dw1 + dwb, dw2, atol=1e-12)
    np.testing.assert_allclose(np.vstack([dx1, dxb]), dx2, atol=1e-12)
    np.testing.assert_allclose(db1 + dbb, db2, atol=1e-12)


def test_thread_pool_works_in_a_forked_child():
    """A child made by fork has none of the parent's worker threads; the pool must be made again there."""
    import multiprocessing as mp

    if "fork" not in mp.get_all_start_methods():
        pytest.skip("no fork on this platform")
    from catlab import _threads as TH

    TH.run_chunks(lambda t: None, 2)  # the parent's pool exists now
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        out = pool.apply_async(_split_in_child).get(timeout=60)
    assert out == [0, 1, 4]


def _split_in_child():
    from catlab import _threads as TH

    out = [None] * 3

    def work(t):
        out[t] = t * t

    TH.run_chunks(work, 3)
    return out


def test_max_pool_nan_and_minus_infinity_by_hand():
    """A NaN anywhere in a window wins, even followed by larger numbers; a window of -inf gives -inf."""
    x = np.array([[[[np.nan, 5.0, 1.0, 2.0],
                    [9.0, 1.0, 3.0, np.nan],
                    [-np.inf, -np.inf, 0.0, 1.0],
                    [-np.inf, -np.inf, 7.0, 1.0]]]])
    y = F.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 0, 1])
    assert y[0, 0, 1, 0] == -np.inf and y[0, 0, 1, 1] == 7.0
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2)
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[1, 3] = expected[2, 0] = expected[3, 2] = 1.0  # NaNs, first -inf, the 7
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_linear_backward_batch_one_split_among_threads(threads, dtype, monkeypatch):
    """The batch-1 weight gradient is written in row ranges by several threads: every row, exactly once."""
    from catlab import _threads as TH
    from catlab._kernels import linear as KL

    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    used = []
    run = TH.run_chunks
    monkeypatch.setattr(TH, "run_chunks", lambda work, n: (used.append(n), run(work, n)))
    r = np.random.default_rng(11)
    x, w, dy = (r.normal(size=s).astype(dtype) for s in ((1, 1000), (701, 1000), (1, 701)))
    dx, dw, db = F.linear_backward(dy, x, w)
    assert max(used) == threads
    np.testing.assert_array_equal(dw, np.outer(dy[0], x[0]))  # one product per element: exact
    np.testing.assert_allclose(dx, dy @ w, rtol=1e-5)
    np.testing.assert_array_equal(db, dy[0])
    out = np.full((3, 2), np.nan, dtype)
    KL.linear_outer_backward(np.array([1.0, 2.0, 3.0], dtype), np.array([4.0, 5.0], dtype), 1, 3, out)
    np.testing.assert_array_equal(out, [[np.nan, np.nan], [8.0, 10.0], [12.0, 15.0]])  # only rows 1 and 2
