"""The stride-1 "wide column" convolution kernels (im2col over the padded plane) against the reference loops and torch."""

import numpy as np
import pytest

import reference as ref
from catlab import _threads as TH
from catlab import _conv_paths as paths
from catlab import functional as F
from catlab._kernels import conv as K

# N, C, H, W, K, R, S, padding, dilation, groups (stride 1: the only stride these kernels take)
WIDE = [
    (2, 4, 9, 7, 5, 3, 3, 1, 1, 1),
    (3, 6, 10, 11, 9, 5, 5, 2, 1, 1),
    (2, 6, 8, 9, 6, 2, 3, "same", 1, 3),  # even kernel: asymmetric padding; groups
    (3, 5, 12, 13, 8, 3, 2, (0, 2), (2, 3), 1),  # dilation, rectangular kernel
    (4, 4, 6, 6, 4, 1, 1, 0, 1, 2),  # 1x1 kernel, groups
    (2, 16, 16, 16, 20, 5, 5, 2, 1, 1),  # the benchmark's medium-channel shape
]


def _data(cfg, dtype, seed=0):
    N, C, H, W, Kf, R, S, padding, dilation, groups = cfg
    r = np.random.default_rng(seed)
    x = r.normal(size=(N, C, H, W)).astype(dtype)
    w = r.normal(size=(Kf, C // groups, R, S)).astype(dtype)
    b = r.normal(size=Kf).astype(dtype)
    return x, w, b, dict(padding=padding, dilation=dilation, groups=groups)


def _geometry(cfg):
    """Top/left padding and output size from the definitions (not from functional.py)."""
    N, C, H, W, Kf, R, S, padding, dilation, groups = cfg
    dh, dw = dilation if isinstance(dilation, tuple) else (dilation, dilation)
    (pt, pb), (pl, pr) = ref.pad_edges(padding, (R, S), (dh, dw))
    return pt, pl, dh, dw, H + pt + pb - dh * (R - 1), W + pl + pr - dw * (S - 1)


def _reference(cfg, x, w, b, dy):
    dh, dw = _geometry(cfg)[2:4]
    pad = ref.pad_edges(cfg[7], cfg[5:7], (dh, dw))
    y = ref.conv2d(x, w, b, (1, 1), pad, (dh, dw), cfg[9])
    return y, ref.conv2d_backward(dy, x, w, (1, 1), pad, (dh, dw), cfg[9])


def _tol(dtype):
    return dict(rtol=1e-4, atol=1e-4) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", WIDE)
def test_wide_path_is_taken_and_matches_reference(cfg, dtype, threads, monkeypatch):
    monkeypatch.setattr(TH, "num_threads", lambda: threads)
    taken = []
    for name in ("conv2d_wide_forward", "conv2d_wide_backward"):
        kernel = getattr(K, name)
        monkeypatch.setattr(K, name, lambda *a, _k=kernel, _n=name: (taken.append(_n), _k(*a)))
    x, w, b, kw = _data(cfg, dtype)
    y = F.conv2d(x, w, b, **kw)
    dy = np.random.default_rng(1).normal(size=y.shape).astype(dtype)
    dx, dw, db = F.conv2d_backward(dy, x, w, **kw)
    assert {"conv2d_wide_forward", "conv2d_wide_backward"} <= set(taken)
    y_ref, (dx_ref, dw_ref, db_ref) = _reference(cfg, x, w, b, dy)
    assert y.dtype == dx.dtype == dw.dtype == db.dtype == dtype
    np.testing.assert_allclose(y, y_ref, **_tol(dtype))
    np.testing.assert_allclose(dx, dx_ref, **_tol(dtype))
    tol = _tol(dtype)
    np.testing.assert_allclose(dw, dw_ref, rtol=tol["rtol"], atol=10 * tol["atol"])
    np.testing.assert_allclose(db, db_ref, rtol=tol["rtol"], atol=10 * tol["atol"])


@pytest.mark.parametrize("chunks", [1, 2, 5])
@pytest.mark.parametrize("cfg", [WIDE[1], WIDE[2], WIDE[3]])
def test_wide_kernels_under_every_partition(cfg, chunks):
    """Any number of chunks (some empty), run in any order, gives the reference results."""
    x, w, b, _ = _data(cfg, np.float64)
    N, C, H, W, Kf, R, S, _, _, G = cfg
    ph, pw, dh, dw, P, Q = _geometry(cfg)
    Kg, Cg = Kf // G, C // G
    w3 = w.reshape(G, Kg, Cg * R * S)
    ranges = [(t * N * G // chunks, (t + 1) * N * G // chunks) for t in range(chunks)]
    y4 = np.full((N, G, Kg, P * Q), np.nan)
    for i0, i1 in reversed(ranges):
        K.conv2d_wide_forward(x, w3, b, R, S, ph, pw, dh, dw, P, Q, i0, i1, y4)
    dy = np.random.default_rng(3).normal(size=(N, Kf, P, Q))
    y_ref, (dx_ref, dw_ref, db_ref) = _reference(cfg, x, w, b, dy)
    np.testing.assert_allclose(y4.reshape(N, Kf, P, Q), y_ref, atol=1e-10)
    wT = np.ascontiguousarray(w3.transpose(0, 2, 1))
    dx = np.full_like(x, np.nan)  # every element must be written
    dw_part, db_part = np.zeros((chunks,) + w3.shape), np.zeros((chunks, Kf))
    for t, (i0, i1) in enumerate(ranges):
        K.conv2d_wide_backward(x, wT, dy.reshape(N, G, Kg, P * Q), R, S, ph, pw, dh, dw, P, Q, i0, i1,
                         dw_part[t], db_part[t], dx)
    np.testing.assert_allclose(dx, dx_ref, atol=1e-10)
    np.testing.assert_allclose(dw_part.sum(axis=0).reshape(w.shape), dw_ref, atol=1e-10)
    np.testing.assert_allclose(db_part.sum(axis=0), db_ref, atol=1e-10)


def test_wide_path_choice():
    """Stride 1, samples for every thread, and at most WIDE_MAX_EXTRA extra columns."""
    assert paths.use_wide(64, 2, 1, 1, 16, 16, 5, 1)  # 16x16 output, 5x5: (15*20+16)/256 = 1.23
    assert not paths.use_wide(64, 2, 2, 2, 16, 16, 5, 1)  # strided
    assert not paths.use_wide(1, 2, 1, 1, 16, 16, 5, 1)  # fewer samples than threads: row blocks instead
    assert not paths.use_wide(64, 2, 1, 1, 2, 2, 5, 1)  # 2x2 output of a 5x5 kernel: (1*6+2)/4 = 2 > 1.5


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
@pytest.mark.parametrize("cfg", [WIDE[0], WIDE[1], WIDE[3], WIDE[5]])
def test_wide_path_matches_torch(cfg, dtype):
    torch = pytest.importorskip("torch")
    x, w, b, kw = _data(cfg, dtype)
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    yt = torch.nn.functional.conv2d(xt, wt, bt, **kw)
    y = F.conv2d(x, w, b, **kw)
    np.testing.assert_allclose(y, yt.detach().numpy(), **_tol(dtype))
    dy = np.random.default_rng(6).normal(size=y.shape).astype(dtype)
    yt.backward(torch.tensor(dy))
    for mine, theirs in zip(F.conv2d_backward(dy, x, w, **kw), (xt.grad, wt.grad, bt.grad)):
        np.testing.assert_allclose(mine, theirs.numpy(), **_tol(dtype))
