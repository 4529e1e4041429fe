"""Winograd F(2x2, 3x3) and F(4x4, 3x3): known answers, reference loops, torch, errors, bounds checks."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import reference as ref

from catlab import functional as F
from catlab._winograd import (
    _TRANSFORMS,
    conv2d_winograd,
    transform_weight,
    use_winograd,
)

# max |y - y_float64| / max |y_float64|: measured about 3e-7 (m=2) and 8e-6 (m=4) in float32 with
# 64 channels and inputs of magnitude ~1 (see test_float32_error_is_small); the bounds leave room
# for other sizes but would catch a wrong transform (errors of order 1).
TOL = {(np.float32, 2): 1e-5, (np.float32, 4): 1e-4, (np.float64, 2): 1e-12, (np.float64, 4): 1e-11}


def _rel_err(y, want):
    return float(np.abs(y.astype(np.float64) - want).max() / max(np.abs(want).max(), 1e-300))


# --- known answers -----------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 4])
def test_ones_give_nine_inside_and_fewer_at_the_padded_border(m):
    x = np.ones((1, 1, 5, 5), dtype=np.float64)
    w = np.ones((1, 1, 3, 3), dtype=np.float64)
    y = conv2d_winograd(x, w, np.array([0.5]), padding=1, m=m)
    # a window covers 9 ones inside, 6 on an edge, 4 at a corner; plus the bias 0.5
    want = np.array([[4, 6, 6, 6, 4], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [6, 9, 9, 9, 6], [4, 6, 6, 6, 4]]) + 0.5
    np.testing.assert_allclose(y[0, 0], want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_impulse_returns_the_kernel_rotated(m):
    x = np.zeros((1, 1, 3, 3))
    x[0, 0, 1, 1] = 1.0
    w = np.arange(1.0, 10.0).reshape(1, 1, 3, 3)
    y = conv2d_winograd(x, w, padding=1, m=m)
    np.testing.assert_allclose(y[0, 0], w[0, 0, ::-1, ::-1], rtol=0, atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_two_channels_add_and_relu_clips(m):
    x = np.stack([np.full((4, 4), 1.0), np.full((4, 4), -2.0)])[None]  # (1, 2, 4, 4)
    w = np.ones((2, 2, 3, 3))
    w[1] *= -1.0
    y = conv2d_winograd(x, w, padding=0, m=m)  # 9*1 + 9*(-2) = -9, and +9 for the negated filter
    np.testing.assert_allclose(y[0], np.stack([np.full((2, 2), -9.0), np.full((2, 2), 9.0)]), atol=1e-12)
    yr = conv2d_winograd(x, w, padding=0, m=m, relu=True)
    np.testing.assert_allclose(yr[0], np.stack([np.zeros((2, 2)), np.full((2, 2), 9.0)]), atol=1e-12)


@pytest.mark.parametrize("m", [2, 4])
def test_transforms_are_exact_for_one_tile(m):
    """A^T [(G g G^T) * (B^T d B)] A equals the direct correlation of one tile (the F(m, 3) identity)."""
    BT, G, AT = _TRANSFORMS[m]
    rng = np.random.default_rng(0)
    d = rng.standard_normal((m + 2, m + 2))
    g = rng.standard_normal((3, 3))
    got = AT @ ((G @ g @ G.T) * (BT @ d @ BT.T)) @ AT.T
    want = np.array([[np.sum(d[i : i + 3, j : j + 3] * g) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_transform_weight_layout():
    w = np.zeros((2, 3, 3, 3), dtype=np.float32)
    w[1, 2] = 1.0  # only filter 1, channel 2 is non-zero: all ones
    U = transform_weight(w, 2)
    assert U.shape == (16, 2, 3) and U.dtype == np.float32
    _, G, _ = _TRANSFORMS[2]
    np.testing.assert_allclose(U[:, 1, 2], (G @ np.ones((3, 3)) @ G.T).ravel())
    assert np.count_nonzero(U[:, 0, :]) == 0 and np.count_nonzero(U[:, 1, :2]) == 0


# --- against the reference loops ----------------------------------------------------------

CASES = [  # N, C, K, H, W, padding
    (1, 1, 1, 3, 3, 0),
    (1, 1, 1, 3, 3, 1),
    (2, 1, 3, 4, 4, 0),
    (1, 2, 2, 5, 7, 1),
    (3, 3, 5, 7, 9, 1),
    (2, 4, 3, 9, 6, 0),
    (1, 5, 2, 11, 13, 1),
    (2, 16, 8, 8, 8, 1),
    (1, 8, 16, 15, 15, 1),
    (1, 3, 4, 1, 6, 1),
    (2, 7, 6, 6, 1, 1),
    (1, 2, 3, 10, 10, (0, 1)),
    (1, 2, 2, 4, 4, 2),
]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES)
def test_matches_reference_loops(case, dtype, m):
    N, C, K, H, W, pad = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C, 3, 3)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    want = ref.conv2d(x, w, b, (1, 1), ref.pad_edges(pad, (3, 3), (1, 1)), (1, 1), 1)
    y = conv2d_winograd(x, w, b, pad, m=m)
    assert y.shape == want.shape and y.dtype == dtype
    assert _rel_err(y, want) < TOL[dtype, m]


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 64, 64, 16, 16), (3, 32, 16, 15, 17), (1, 1, 64, 9, 9)])
def test_matches_catlab_conv2d_many_channels(shape, dtype, m):
    N, C, K, H, W = shape
    rng = np.random.default_rng(7)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = (rng.standard_normal((K, C, 3, 3)) / np.sqrt(9 * C)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    want = F.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), 1, 1)
    y = conv2d_winograd(x, w, b, 1, m=m)
    assert _rel_err(y, want) < TOL[dtype, m]
    np.testing.assert_allclose(conv2d_winograd(x, w, b, 1, m=m, relu=True), np.maximum(y, 0), rtol=0, atol=0)


@pytest.mark.parametrize("m", [2, 4])
def test_float32_error_is_small(m):
    """float32, 64 channels, inputs ~1: error vs float64 within a few times that of catlab's own conv2d."""
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (2, 64, 32, 32)).astype(np.float32)
    w = rng.uniform(-1, 1, (64, 64, 3, 3)).astype(np.float32)
    want = F.conv2d(x.astype(np.float64), w.astype(np.float64), None, 1, 1)
    err_w = _rel_err(conv2d_winograd(x, w, None, 1, m=m), want)
    err_f = _rel_err(F.conv2d(x, w, None, 1, 1), want)
    assert err_w < TOL[np.float32, m]
    assert err_w < (5 if m == 2 else 200) * max(err_f, 1e-8)


def test_results_do_not_depend_on_the_thread_count():
    from catlab import _winograd as W

    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 8, 10, 11)).astype(np.float32)
    w = rng.standard_normal((4, 8, 3, 3)).astype(np.float32)
    b = np.zeros(4, np.float32)
    outs = []
    for threads in (1, 2, 3):
        y = np.empty((3, 4, 10, 11), np.float32)
        W._run(x, transform_weight(w, 2), b, 1, 1, 10, 11, 2, False, y, threads=threads)
        outs.append(y)
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_inputs_are_not_modified_and_non_contiguous_inputs_work():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    y = conv2d_winograd(x, w, b, 1)
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
    xt = np.asfortranarray(x)
    np.testing.assert_allclose(conv2d_winograd(xt, w, b, 1), y, rtol=0, atol=1e-6)


# --- against torch ---------------------------------------------------------------------------


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("shape", [(2, 16, 32, 15, 15, 1), (1, 64, 64, 8, 8, 1), (3, 3, 5, 12, 7, 0)])
def test_matches_torch(shape, m):
    torch = pytest.importorskip("torch")
    N, C, K, H, W, pad = shape
    rng = np.random.default_rng(11)
    x = rng.standard_normal((N, C, H, W))
    w = rng.standard_normal((K, C, 3, 3))
    b = rng.standard_normal(K)
    want = torch.nn.functional.conv2d(*(torch.from_numpy(a) for a in (x, w, b)), 1, pad).numpy()
    assert _rel_err(conv2d_winograd(x, w, b, pad, m=m), want) < TOL[np.float64, m]
    y32 = conv2d_winograd(*(a.astype(np.float32) for a in (x, w, b)), pad, m=m)
    assert _rel_err(y32, want) < TOL[np.float32, m]


# --- bad input -------------------------------------------------------------------------------


def test_bad_input_raises_clear_errors():
    x = np.zeros((1, 2, 5, 5), np.float32)
    w = np.zeros((3, 2, 3, 3), np.float32)
    with pytest.raises(ValueError, match="weight"):
        conv2d_winograd(x, np.zeros((3, 2, 5, 5), np.float32))
    with pytest.raises(ValueError, match="weight"):
        conv2d_winograd(x, np.zeros((3, 1, 3, 3), np.float32))
    with pytest.raises(TypeError, match="weight"):
        conv2d_winograd(x, w.astype(np.float64))
    with pytest.raises(TypeError, match="x"):
        conv2d_winograd(x.astype(np.int32), w)
    with pytest.raises(ValueError, match="bias"):
        conv2d_winograd(x, w, np.zeros(2, np.float32))
    with pytest.raises(ValueError, match="m"):
        conv2d_winograd(x, w, m=3)
    with pytest.raises(ValueError, match="padding"):
        conv2d_winograd(x, w, padding=-1)
    with pytest.raises(ValueError, match="x"):
        conv2d_winograd(np.zeros((1, 2, 2, 2), np.float32), w)


def test_use_winograd_only_for_3x3_stride_1():
    assert use_winograd(64, 64, 64, 32, 32) == 2  # VGG at batch 64: F(2x2, 3x3) (measured faster than F(4x4))
    assert use_winograd(1, 64, 64, 32, 32) == 2  # batch 1
    assert use_winograd(64, 64, 64, 15, 15) == 2 and use_winograd(1, 64, 64, 15, 15, padding="same") == 2
    assert use_winograd(64, 16, 16, 8, 8) == 0 and use_winograd(64, 32, 32, 16, 16) == 2
    assert use_winograd(64, 16, 16, 16, 16) == 0 and use_winograd(1, 16, 16, 16, 16) == 2  # few channels
    assert use_winograd(64, 16, 16, 32, 32) == 2 and use_winograd(64, 64, 64, 8, 8) == 0
    assert use_winograd(64, 64, 64, 32, 32, padding=(1, 1)) == 2
    assert use_winograd(64, 64, 64, 3, 3, padding=0) == 0  # a 1x1 output
    assert not use_winograd(64, 64, 64, 32, 32, R=5, S=5)
    assert not use_winograd(64, 64, 64, 32, 32, stride=2)
    assert not use_winograd(64, 64, 64, 32, 32, dilation=2)
    assert not use_winograd(64, 64, 64, 32, 32, groups=2)
    assert not use_winograd(64, 1, 64, 32, 32)


# --- under NUMBA_BOUNDSCHECK=1 -------------------------------------------------------------

_BOUNDS_SCRIPT = r"""
import numpy as np
import reference as ref
from catlab._winograd import conv2d_winograd
rng = np.random.default_rng(0)
for m in (2, 4):
    for N, C, K, H, W, p in [(1, 2, 3, 3, 3, 0), (2, 3, 2, 7, 5, 1), (1, 2, 2, 6, 9, 2), (1, 1, 1, 1, 1, 1)]:
        x = rng.standard_normal((N, C, H, W)); w = rng.standard_normal((K, C, 3, 3)); b = rng.standard_normal(K)
        want = ref.conv2d(x, w, b, (1, 1), ((p, p), (p, p)), (1, 1), 1)
        got = conv2d_winograd(x, w, b, p, m=m)
        assert np.abs(got - want).max() < 1e-10, (m, N, C, K, H, W, p)
        got = conv2d_winograd(x.astype(np.float32), w.astype(np.float32), b.astype(np.float32), p, m=m)
        assert np.abs(got - want).max() < 1e-4 * max(1.0, np.abs(want).max()), (m, N, C, K, H, W, p)
print("ok")
"""


def test_under_numba_boundscheck():
    here = os.path.dirname(__file__)
    root = os.path.dirname(here)
    with tempfile.TemporaryDirectory() as cache:
        env = dict(
            os.environ,
            NUMBA_BOUNDSCHECK="1",
            NUMBA_CACHE_DIR=cache,
            PYTHONPATH=os.pathsep.join([root, here, os.environ.get("PYTHONPATH", "")]),
        )
        res = subprocess.run(
            [sys.executable, "-c", _BOUNDS_SCRIPT], check=False, env=env, capture_output=True, text=True, timeout=600
        )
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip().endswith("ok")


# --- the benchmark module cannot rot ---------------------------------------------------------


def test_bench_winograd_check_and_run_on_tiny_workload(tmp_path, monkeypatch):
    from catlab import bench_winograd as B

    x, w, b = B.make_data(2, 3, 4, 5, 7)
    errs = B.check(x, w, b)
    assert set(errs) == {"catlab", "wino2", "wino4"} and max(errs.values()) < 1e-4
    monkeypatch.setattr(B, "WORKLOADS", [("tiny", 1, 2, 3, 6, 6)])
    monkeypatch.setattr(B, "matmul_peak", lambda threads: 1.0)
    out = tmp_path / "w.json"
    import numba

    saved = numba.get_num_threads()
    try:
        res = B.main(["--repeats", "1", "--no-torch", "--threads", "1", "--json", str(out)])
    finally:
        numba.set_num_threads(saved)
    assert out.exists() and len(res["workloads"]) == 1
    assert res["workloads"][0]["ms"]["wino2"] > 0
