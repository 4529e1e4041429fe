"""max_pool2d and avg_pool2d, forward and backward: known answers, reference loops, indices, torch, gradients."""

import numpy as np
import pytest
import reference as ref
from hypothesis import given
from hypothesis import strategies as st
from torch_compare import assert_matches_torch

from catlab import functional as F
from catlab import nn
from catlab.gradcheck import gradcheck

TOL = 1e-6  # gradient checks, float64


def test_max_pool_known_answer_and_routing():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0], [3.0, 4.0, 8.0, 1.0], [0.0, 0.0, 1.0, 1.0], [9.0, 0.0, 1.0, 7.0]]]])
    y = F.max_pool2d(x, 2)
    np.testing.assert_array_equal(y[0, 0], [[5.0, 8.0], [9.0, 7.0]])
    dx = F.max_pool2d_backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]), x, 2)
    expected = np.zeros((4, 4))
    expected[0, 1], expected[1, 2], expected[3, 0], expected[3, 3] = 1.0, 2.0, 3.0, 4.0
    np.testing.assert_array_equal(dx[0, 0], expected)


def test_max_pool_discards_three_quarters():
    x = np.random.default_rng(0).normal(size=(1, 1, 8, 8))
    assert F.max_pool2d(x, 2).size / x.size == 0.25


def test_max_pool_ties_go_to_first_in_row_major_order():
    x = np.ones((1, 1, 2, 2))
    dx = F.max_pool2d_backward(np.ones((1, 1, 1, 1)), x, 2)
    np.testing.assert_array_equal(dx[0, 0], [[1.0, 0.0], [0.0, 0.0]])


def test_overlapping_max_windows_add_gradients():
    x = np.array([[[[0.0, 9.0, 0.0]]]])
    dx = F.max_pool2d_backward(np.ones((1, 1, 1, 2)), x, (1, 2), stride=1)
    np.testing.assert_array_equal(dx[0, 0, 0], [0.0, 2.0, 0.0])


def test_avg_pool_counts_padding_like_torch():
    x = np.ones((1, 1, 2, 2))
    y = F.avg_pool2d(x, 2, stride=2, padding=1)
    # each 2x2 window holds one real 1 and three padded zeros
    np.testing.assert_array_equal(y[0, 0], np.full((2, 2), 0.25))


POOLS = [  # H, W, kernel, stride, padding
    (4, 4, 2, None, 0),
    (7, 5, 3, 2, 1),
    (6, 9, (2, 3), (1, 2), (1, 1)),
    (5, 5, 5, 1, 2),
    (8, 3, (4, 1), (3, 1), (2, 0)),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", POOLS)
def test_pools_match_reference(cfg, dtype, rng):
    H, W, k, s, p = cfg
    k2 = k if isinstance(k, tuple) else (k, k)
    s2 = k2 if s is None else (s if isinstance(s, tuple) else (s, s))
    p2 = p if isinstance(p, tuple) else (p, p)
    x = rng.normal(size=(2, 3, H, W)).astype(dtype)
    before = x.copy()
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for fwd, bwd, rf, rb in [
        (F.max_pool2d, F.max_pool2d_backward, ref.max_pool2d, ref.max_pool2d_backward),
        (F.avg_pool2d, F.avg_pool2d_backward, ref.avg_pool2d, ref.avg_pool2d_backward),
    ]:
        y = fwd(x, k, s, p)
        assert y.dtype == dtype
        np.testing.assert_allclose(y, rf(x, k2, s2, p2), rtol=tol, atol=tol)
        dy = rng.normal(size=y.shape).astype(dtype)
        dx = bwd(dy, x, k, s, p)
        assert dx.dtype == dtype
        np.testing.assert_allclose(dx, rb(dy, x, k2, s2, p2), rtol=tol, atol=tol)
    np.testing.assert_array_equal(x, before)


@given(st.integers(1, 9), st.integers(1, 9), st.integers(1, 4), st.integers(1, 3), st.integers(0, 2))
def test_pool_output_size_property(H, W, k, s, p):
    if 2 * p > k or k > min(H, W) + 2 * p:
        return
    x = np.random.default_rng(H * 100 + W).normal(size=(1, 2, H, W))
    y = F.max_pool2d(x, k, s, p)
    assert y.shape == (1, 2, (H + 2 * p - k) // s + 1, (W + 2 * p - k) // s + 1)
    np.testing.assert_allclose(y, ref.max_pool2d(x, (k, k), (s, s), (p, p)))


CASES = [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (3, 1, 1), ((2, 3), (2, 1), (1, 1))]


def _awkward(rng, shape, dtype):
    """Random values with ties, NaNs (several in one window) and -inf windows."""
    x = rng.normal(size=shape)
    x[0, 0] = np.round(x[0, 0])  # many ties
    x[0, 1, :3, :3] = -np.inf
    x[1, 0, 1:3, 1:3] = np.nan
    x[1, 1, 0, ::2] = np.nan
    return x.astype(dtype)


def test_indices_by_hand():
    x = np.array(
        [
            [
                [
                    [1.0, 3.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 2.0],
                    [np.nan, 5.0, -np.inf, -np.inf],
                    [9.0, np.nan, -np.inf, -np.inf],
                ]
            ]
        ]
    )
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    assert idx.dtype == np.int64 and idx.shape == (1, 1, 2, 2)
    # first of the tied 3s (1), first of the tied 2s (2), last NaN (13), first cell of the -inf window (10)
    np.testing.assert_array_equal(idx[0, 0], [[1, 2], [13, 10]])
    np.testing.assert_array_equal(y, F.max_pool2d(x, 2))


def test_indices_with_padding_by_hand():
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    _, idx = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[4, 5], [7, 8]])
    _, idx = F.max_pool2d(np.full((1, 1, 3, 3), -np.inf), 3, stride=2, padding=1, return_indices=True)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])  # first cell inside the input


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p", CASES)
def test_indices_and_backward_match_reference(k, s, p, dtype, rng):
    x = _awkward(rng, (2, 3, 9, 8), dtype)
    kk, ss, pp = (np.broadcast_to(v, 2) for v in (k, k if s is None else s, p))
    x_before = x.copy()
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    np.testing.assert_array_equal(y, F.max_pool2d(x, k, s, p))
    np.testing.assert_array_equal(idx, ref.max_pool2d_indices(x, tuple(kk), tuple(ss), tuple(pp)))
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = F.max_pool2d_backward(dy, x, k, s, p, indices=idx)
    assert dx.dtype == dtype
    np.testing.assert_array_equal(dx, F.max_pool2d_backward(dy, x, k, s, p))
    expected = np.zeros(x.shape)
    np.add.at(expected.reshape(6, -1), (np.arange(6)[:, None], idx.reshape(6, -1)), dy.reshape(6, -1))
    np.testing.assert_allclose(dx, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(x, x_before)


def test_backward_without_nans_matches_reference(rng):
    x = rng.normal(size=(2, 3, 7, 7))
    y, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = rng.normal(size=y.shape)
    np.testing.assert_allclose(
        F.max_pool2d_backward(dy, x, 3, 2, 1, indices=idx),
        ref.max_pool2d_backward(dy, x, (3, 3), (2, 2), (1, 1)),
        atol=1e-12,
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p", CASES)
def test_indices_match_torch(k, s, p, dtype, rng):
    torch = pytest.importorskip("torch")
    x = _awkward(rng, (2, 3, 9, 8), dtype)
    y, idx = F.max_pool2d(x, k, s, p, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, s, p, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    dy = rng.normal(size=y.shape).astype(dtype)
    kk, ss, pp = ([int(v) for v in np.broadcast_to(a, 2)] for a in (k, k if s is None else s, p))
    dxt = torch.ops.aten.max_pool2d_with_indices_backward(
        torch.from_numpy(dy), torch.from_numpy(x), kk, ss, pp, [1, 1], False, it
    )
    np.testing.assert_allclose(F.max_pool2d_backward(dy, x, k, s, p, indices=idx), dxt.numpy(), rtol=1e-6)
    np.testing.assert_allclose(F.max_pool2d_backward(dy, x, k, s, p), dxt.numpy(), rtol=1e-6)


def test_large_batch_uses_threads_and_matches_single_plane(rng):
    x = rng.normal(size=(16, 8, 12, 12)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    for n in (0, 7, 15):
        y1, i1 = F.max_pool2d(x[n : n + 1], 2, return_indices=True)
        np.testing.assert_array_equal(i1[0], idx[n])
        np.testing.assert_array_equal(y1[0], y[n])


X = np.zeros((2, 3, 8, 8), np.float32)


DY = np.zeros((2, 3, 4, 4), np.float32)


GOOD = np.zeros((2, 3, 4, 4), np.int64)


@pytest.mark.parametrize(
    "indices,exc,match",
    [
        (GOOD.astype(np.int32), TypeError, r"indices must have dtype int64 .*got int32"),
        (GOOD.astype(np.float64), TypeError, r"indices must have dtype int64 .*got float64"),
        (GOOD.tolist(), TypeError, r"indices must be a NumPy array of int64, got list"),
        (
            np.zeros((2, 3, 4, 5), np.int64),
            ValueError,
            r"indices must have the forward output's shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)",
        ),
        (GOOD - 1, ValueError, r"indices must lie in \[0, H\*W\) = \[0, 64\), got the range \[-1, -1\]"),
        (GOOD + 64, ValueError, r"indices must lie in \[0, H\*W\) = \[0, 64\), got the range \[64, 64\]"),
    ],
)
def test_bad_indices_are_rejected(indices, exc, match):
    with pytest.raises(exc, match=match):
        F.max_pool2d_backward(DY, X, 2, indices=indices)


def test_one_index_out_of_range_is_found_anywhere():
    """The compiled range check (one pass) catches a single bad index at the first, a middle or the last
    place, at both ends of the range; the boundaries 0 and H*W - 1 pass."""
    from catlab._kernels import pool as KP

    good = np.zeros((2, 3, 4, 4), np.int64)
    good[1, 2, 3, 3] = 63
    assert KP.indices_in_range(good, 64)
    for where in ((0, 0, 0, 0), (1, 1, 2, 1), (1, 2, 3, 3)):
        for bad in (-1, 64, 2**40):
            ind = good.copy()
            ind[where] = bad
            assert not KP.indices_in_range(ind, 64)
            with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
                F.max_pool2d_backward(DY, X, 2, indices=ind)


def test_non_contiguous_indices_are_accepted(rng):
    x = rng.normal(size=(2, 3, 8, 8))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    dy = rng.normal(size=y.shape)
    idx_f = np.asfortranarray(idx)
    np.testing.assert_array_equal(
        F.max_pool2d_backward(dy, x, 2, indices=idx_f), F.max_pool2d_backward(dy, x, 2, indices=idx)
    )


def test_maxpool_layer_stores_indices_only_in_training(rng):
    x = rng.normal(size=(2, 3, 8, 8)).astype(np.float32)
    layer = nn.MaxPool2d(3, stride=2, padding=1)
    y = layer(x)
    _, idx = F.max_pool2d(x, 3, 2, 1, return_indices=True)
    np.testing.assert_array_equal(y, F.max_pool2d(x, 3, 2, 1))
    np.testing.assert_array_equal(layer._cache["indices"], idx)
    dy = rng.normal(size=y.shape).astype(np.float32)
    np.testing.assert_array_equal(layer.backward(dy), F.max_pool2d_backward(dy, x, 3, 2, 1))
    layer.eval()
    np.testing.assert_array_equal(layer(x), y)
    assert layer._cache is None
    with pytest.raises(RuntimeError, match="training mode"):
        layer.backward(dy)


def test_max_pool_nan_and_minus_infinity_by_hand():
    """A NaN anywhere in a window wins, even followed by larger numbers; a window of -inf gives -inf."""
    x = np.array(
        [
            [
                [
                    [np.nan, 5.0, 1.0, 2.0],
                    [9.0, 1.0, 3.0, np.nan],
                    [-np.inf, -np.inf, 0.0, 1.0],
                    [-np.inf, -np.inf, 7.0, 1.0],
                ]
            ]
        ]
    )
    y = F.max_pool2d(x, 2)
    assert np.isnan(y[0, 0, 0, 0]) and np.isnan(y[0, 0, 0, 1])
    assert y[0, 0, 1, 0] == -np.inf and y[0, 0, 1, 1] == 7.0
    dx = F.max_pool2d_backward(np.ones((1, 1, 2, 2)), x, 2)
    expected = np.zeros((4, 4))
    expected[0, 0] = expected[1, 3] = expected[2, 0] = expected[3, 2] = 1.0  # NaNs, first -inf, the 7
    np.testing.assert_array_equal(dx[0, 0], expected)


@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((3, 2), (1, 2), (1, 0)), (3, 1, 1)])
def test_pools_match_torch(k, s, p, rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 3, 9, 8))
    for fwd, bwd, tf in [
        (F.max_pool2d, F.max_pool2d_backward, torch.nn.functional.max_pool2d),
        (F.avg_pool2d, F.avg_pool2d_backward, torch.nn.functional.avg_pool2d),
    ]:
        assert_matches_torch(
            lambda x, f=fwd: f(x, k, s, p),
            lambda dy, x, b=bwd: b(dy, x, k, s, p),
            lambda x, t=tf: t(x, k, s, p),
            [x],
            rtol=1e-12,
            atol=1e-12,
        )


def test_max_pool_ties_match_torch():
    torch = pytest.importorskip("torch")
    x = np.ones((1, 1, 4, 4))
    assert_matches_torch(
        lambda x: F.max_pool2d(x, 3, 1, 1),
        lambda dy, x: F.max_pool2d_backward(dy, x, 3, 1, 1),
        lambda x: torch.nn.functional.max_pool2d(x, 3, 1, 1),
        [x],
        dy=np.ones((1, 1, 4, 4)),
        rtol=0,
        atol=0,
    )


@pytest.mark.parametrize("fwd,bwd", [(F.max_pool2d, F.max_pool2d_backward), (F.avg_pool2d, F.avg_pool2d_backward)])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 1))])
def test_pool_gradients(fwd, bwd, k, s, p, rng):
    x = rng.normal(size=(2, 2, 6, 7))
    err = gradcheck(lambda x: fwd(x, k, s, p), lambda dy, x: bwd(dy, x, k, s, p), [x])
    assert err["input0"] < TOL, err


# --- PyTorch's full pooling arguments: dilation, ceil_mode, count_include_pad, divisor_override --

# H, W, kernel, stride, padding, dilation, ceil_mode
MAX_FULL = [
    (9, 8, 3, 2, 1, 1, True),
    (7, 7, 2, 2, 0, 1, True),  # a last, partial window in each direction
    (5, 5, 2, 2, 1, 1, True),  # the window that would start in the right padding is dropped
    (10, 9, 3, 1, 1, 2, False),
    (11, 10, (3, 2), (2, 3), (1, 1), (2, 3), True),
    (6, 7, 2, 3, 1, (3, 1), True),
]
# H, W, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override
AVG_FULL = [
    (9, 8, 3, 2, 1, True, True, None),
    (9, 8, 3, 2, 1, True, False, None),
    (7, 7, 2, 2, 0, True, True, None),
    (5, 5, 2, 2, 1, True, False, None),
    (8, 7, (3, 2), (2, 1), (1, 1), False, False, None),
    (6, 6, 3, 2, 1, False, True, 5),
    (7, 6, 3, 2, 1, True, True, 2),
]


def _pair(v):
    return tuple(v) if isinstance(v, tuple) else (v, v)


def test_ceil_mode_and_count_include_pad_by_hand():
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    # ceil_mode: windows at rows/columns 0-1, 2-3 and the partial 4; floor mode stops at 2 windows
    assert F.max_pool2d(x, 2).shape == (1, 1, 2, 2)
    np.testing.assert_array_equal(F.max_pool2d(x, 2, ceil_mode=True)[0, 0], [[6, 8, 9], [16, 18, 19], [21, 23, 24]])
    # the partial corner window holds one cell (24); counted with padding it would still be 1 cell: no padding here
    np.testing.assert_array_equal(F.avg_pool2d(x, 2, ceil_mode=True)[0, 0, 2], [20.5, 22.5, 24.0])
    ones = np.ones((1, 1, 3, 3))
    # padding 1: the corner window holds 1 input cell and 3 padding cells
    assert F.avg_pool2d(ones, 2, padding=1)[0, 0, 0, 0] == 0.25
    assert F.avg_pool2d(ones, 2, padding=1, count_include_pad=False)[0, 0, 0, 0] == 1.0
    assert F.avg_pool2d(ones, 2, padding=1, divisor_override=3)[0, 0, 0, 0] == 1 / 3
    # dilation 2: window (0, 0) of a 3x3 kernel takes rows and columns 0, 2, 4
    assert F.max_pool2d(x, 3, stride=1, dilation=2)[0, 0, 0, 0] == 24.0
    assert F.max_pool2d(-x, 3, stride=1, dilation=2)[0, 0, 0, 0] == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", MAX_FULL)
def test_max_pool_full_arguments_match_reference(cfg, dtype, rng):
    H, W, k, s, p, d, ceil = cfg
    x = _awkward(rng, (2, 3, H, W), dtype)
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil)
    args = (_pair(k), _pair(s), _pair(p), _pair(d), ceil)
    y, idx = F.max_pool2d(x, k, **kw, return_indices=True)
    idx_ref = ref.max_pool2d_indices(x, *args)
    np.testing.assert_array_equal(idx, idx_ref)
    N, C, P, Q = y.shape  # the values at the reference's argmax (Python's max() does not propagate NaN)
    np.testing.assert_array_equal(
        y, np.take_along_axis(x.reshape(N, C, -1), idx_ref.reshape(N, C, -1), 2).reshape(y.shape)
    )
    np.testing.assert_array_equal(F.max_pool2d(x, k, **kw), y)
    dy = rng.normal(size=y.shape).astype(dtype)
    xf = rng.normal(size=x.shape).astype(dtype)  # no NaNs or ties for the argmax-based reference backward
    np.testing.assert_array_equal(F.max_pool2d(xf, k, **kw), ref.max_pool2d(xf, *args).astype(dtype))
    want = ref.max_pool2d_backward(dy, xf, *args)
    np.testing.assert_allclose(F.max_pool2d_backward(dy, xf, k, **kw), want, rtol=1e-6)
    _, idxf = F.max_pool2d(xf, k, **kw, return_indices=True)
    np.testing.assert_allclose(F.max_pool2d_backward(dy, xf, k, **kw, indices=idxf), want, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", AVG_FULL)
def test_avg_pool_full_arguments_match_reference(cfg, dtype, rng):
    H, W, k, s, p, ceil, include, divisor = cfg
    x = rng.normal(size=(2, 3, H, W)).astype(dtype)
    kw = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
    args = (_pair(k), _pair(s), _pair(p), ceil, include, divisor)
    y = F.avg_pool2d(x, k, **kw)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(y, ref.avg_pool2d(x, *args), **tol)
    dy = rng.normal(size=y.shape).astype(dtype)
    np.testing.assert_allclose(F.avg_pool2d_backward(dy, x, k, **kw), ref.avg_pool2d_backward(dy, x, *args), **tol)


@pytest.mark.parametrize("cfg", MAX_FULL[:4])
def test_max_pool_full_arguments_gradcheck(cfg, rng):
    H, W, k, s, p, d, ceil = cfg
    x = rng.normal(size=(1, 2, H, W))
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil)
    err = gradcheck(lambda x: F.max_pool2d(x, k, **kw), lambda dy, x: F.max_pool2d_backward(dy, x, k, **kw), [x])
    assert err["input0"] < TOL, err


@pytest.mark.parametrize("cfg", AVG_FULL)
def test_avg_pool_full_arguments_gradcheck(cfg, rng):
    H, W, k, s, p, ceil, include, divisor = cfg
    x = rng.normal(size=(1, 2, H, W))
    kw = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
    err = gradcheck(lambda x: F.avg_pool2d(x, k, **kw), lambda dy, x: F.avg_pool2d_backward(dy, x, k, **kw), [x])
    assert err["input0"] < TOL, err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", MAX_FULL)
def test_max_pool_full_arguments_match_torch(cfg, dtype, rng):
    torch = pytest.importorskip("torch")
    H, W, k, s, p, d, ceil = cfg
    x = _awkward(rng, (2, 3, H, W), dtype)
    kw = dict(stride=s, padding=p, dilation=d, ceil_mode=ceil)
    y, idx = F.max_pool2d(x, k, **kw, return_indices=True)
    yt, it = torch.nn.functional.max_pool2d(torch.from_numpy(x), k, **kw, return_indices=True)
    np.testing.assert_array_equal(y, yt.numpy())
    np.testing.assert_array_equal(idx, it.numpy())
    xf = rng.normal(size=x.shape).astype(dtype)
    assert_matches_torch(
        lambda x: F.max_pool2d(x, k, **kw),
        lambda dy, x: F.max_pool2d_backward(dy, x, k, **kw),
        lambda x: torch.nn.functional.max_pool2d(x, k, **kw),
        [xf],
    )


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", AVG_FULL)
def test_avg_pool_full_arguments_match_torch(cfg, dtype, rng):
    torch = pytest.importorskip("torch")
    H, W, k, s, p, ceil, include, divisor = cfg
    x = rng.normal(size=(2, 3, H, W)).astype(dtype)
    kw = dict(stride=s, padding=p, ceil_mode=ceil, count_include_pad=include, divisor_override=divisor)
    assert_matches_torch(
        lambda x: F.avg_pool2d(x, k, **kw),
        lambda dy, x: F.avg_pool2d_backward(dy, x, k, **kw),
        lambda x: torch.nn.functional.avg_pool2d(x, k, **kw),
        [x],
    )


def test_pool_layers_take_the_full_arguments_and_match_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.normal(size=(2, 3, 9, 8))
    pairs = [
        (
            nn.MaxPool2d(3, 2, 1, dilation=(1, 2), ceil_mode=True),
            torch.nn.MaxPool2d(3, 2, 1, dilation=(1, 2), ceil_mode=True),
        ),
        (
            nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
            torch.nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        ),
        (nn.AvgPool2d(2, 1, 1, divisor_override=3), torch.nn.AvgPool2d(2, 1, 1, divisor_override=3)),
    ]
    for mine, theirs in pairs:
        assert_matches_torch(mine.forward, lambda dy, x, m=mine: m.backward(dy), theirs, [x], rtol=1e-12, atol=1e-12)
    layer = nn.MaxPool2d(2, return_indices=True)
    y, idx = layer(x)
    np.testing.assert_array_equal(idx, F.max_pool2d(x, 2, return_indices=True)[1])
    assert layer.backward(np.ones_like(y)).sum() == y.size


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (lambda x: F.max_pool2d(x, 2, ceil_mode="yes"), TypeError, r"ceil_mode must be True or False"),
        (lambda x: F.avg_pool2d(x, 2, count_include_pad=0), TypeError, r"count_include_pad must be True or False"),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=0), ValueError, r"divisor_override must be a positive integer"),
        (lambda x: F.avg_pool2d(x, 2, divisor_override=1.5), TypeError, r"divisor_override must be an integer"),
        (lambda x: F.max_pool2d(x, 2, dilation=0), ValueError, r"dilation must be positive"),
        (lambda x: F.max_pool2d(x, 3, dilation=5), ValueError, r"kernel_size must fit in the padded input"),
        (
            lambda x: F.max_pool2d(x[:, :, :2, :2], 2, padding=1, dilation=3),
            ValueError,
            r"dilation must leave an input cell in every window",
        ),
        (lambda x: nn.AvgPool2d(2, divisor_override=-1), ValueError, r"divisor_override must be a positive integer"),
        (lambda x: nn.MaxPool2d(2, return_indices="no"), TypeError, r"return_indices must be True or False"),
    ],
)
def test_bad_full_pool_arguments_are_named(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call(np.zeros((1, 1, 8, 8)))
