"""Max pooling with recorded argmax indices (``return_indices=True``) and the backward pass that uses them."""

import numpy as np
import pytest

import reference as ref
from catlab import functional as F
from catlab import nn

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
    x = np.array([[[[1.0, 3.0, 2.0, 2.0],
                    [3.0, 0.0, 2.0, 2.0],
                    [np.nan, 5.0, -np.inf, -np.inf],
                    [9.0, np.nan, -np.inf, -np.inf]]]])
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
    np.testing.assert_allclose(F.max_pool2d_backward(dy, x, 3, 2, 1, indices=idx),
                               ref.max_pool2d_backward(dy, x, (3, 3), (2, 2), (1, 1)), atol=1e-12)


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
        torch.from_numpy(dy), torch.from_numpy(x), kk, ss, pp, [1, 1], False, it)
    np.testing.assert_allclose(F.max_pool2d_backward(dy, x, k, s, p, indices=idx), dxt.numpy(), rtol=1e-6)
    np.testing.assert_allclose(F.max_pool2d_backward(dy, x, k, s, p), dxt.numpy(), rtol=1e-6)


def test_large_batch_uses_threads_and_matches_single_plane(rng):
    x = rng.normal(size=(16, 8, 12, 12)).astype(np.float32)
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    for n in (0, 7, 15):
        y1, i1 = F.max_pool2d(x[n:n + 1], 2, return_indices=True)
        np.testing.assert_array_equal(i1[0], idx[n])
        np.testing.assert_array_equal(y1[0], y[n])


X = np.zeros((2, 3, 8, 8), np.float32)
DY = np.zeros((2, 3, 4, 4), np.float32)
GOOD = np.zeros((2, 3, 4, 4), np.int64)


@pytest.mark.parametrize("indices,exc,match", [
    (GOOD.astype(np.int32), TypeError, r"indices must have dtype int64 .*got int32"),
    (GOOD.astype(np.float64), TypeError, r"indices must have dtype int64 .*got float64"),
    (GOOD.tolist(), TypeError, r"indices must be a NumPy array of int64, got list"),
    (np.zeros((2, 3, 4, 5), np.int64), ValueError, r"indices must have the forward output's shape \(2, 3, 4, 4\), got \(2, 3, 4, 5\)"),
    (GOOD - 1, ValueError, r"indices must lie in \[0, H\*W\) = \[0, 64\), got the range \[-1, -1\]"),
    (GOOD + 64, ValueError, r"indices must lie in \[0, H\*W\) = \[0, 64\), got the range \[64, 64\]"),
])
def test_bad_indices_are_rejected(indices, exc, match):
    with pytest.raises(exc, match=match):
        F.max_pool2d_backward(DY, X, 2, indices=indices)


def test_non_contiguous_indices_are_accepted(rng):
    x = rng.normal(size=(2, 3, 8, 8))
    y, idx = F.max_pool2d(x, 2, return_indices=True)
    dy = rng.normal(size=y.shape)
    idx_f = np.asfortranarray(idx)
    np.testing.assert_array_equal(F.max_pool2d_backward(dy, x, 2, indices=idx_f),
                                  F.max_pool2d_backward(dy, x, 2, indices=idx))


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
