"""Pooling, ReLU, linear and the loss: known answers and reference loops."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference as ref
from catlab import functional as F


def test_max_pool_known_answer_and_routing():
    x = np.array([[[[1.0, 5.0, 2.0, 0.0],
                    [3.0, 4.0, 8.0, 1.0],
                    [0.0, 0.0, 1.0, 1.0],
                    [9.0, 0.0, 1.0, 7.0]]]])
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


def test_relu_known_answers():
    x = np.array([[-3.0, -0.0, 0.0, 2.5]], dtype=np.float32)
    np.testing.assert_array_equal(F.relu(x), [[0.0, 0.0, 0.0, 2.5]])
    np.testing.assert_array_equal(F.relu_backward(np.full_like(x, 7.0), x), [[0.0, 0.0, 0.0, 7.0]])
    assert F.relu(x).dtype == np.float32


def test_relu_matches_numpy_on_views(rng):
    x = rng.normal(size=(3, 4, 5, 6))[:, ::2]
    np.testing.assert_array_equal(F.relu(x), np.maximum(x, 0))
    dy = rng.normal(size=x.shape)
    np.testing.assert_array_equal(F.relu_backward(dy, x), np.where(x > 0, dy, 0.0))


def test_linear_known_answer_and_backward(rng):
    x = np.array([[1.0, 2.0, 3.0]])
    w = np.array([[1.0, 0.0, -1.0], [2.0, 2.0, 2.0]])
    y = F.linear(x, w, np.array([0.5, -1.0]))
    np.testing.assert_array_equal(y, [[-1.5, 11.0]])
    dx, dw, db = F.linear_backward(np.array([[1.0, 1.0]]), x, w)
    np.testing.assert_array_equal(dx, [[3.0, 2.0, 1.0]])
    np.testing.assert_array_equal(dw, [[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(db, [1.0, 1.0])


def test_softmax_cross_entropy_matches_reference_and_is_stable(rng):
    logits = rng.normal(size=(6, 5)) * 3
    labels = rng.integers(0, 5, size=6)
    loss, d = F.softmax_cross_entropy(logits, labels)
    loss_ref, d_ref = ref.softmax_cross_entropy(logits, labels)
    assert abs(loss - loss_ref) < 1e-12
    np.testing.assert_allclose(d, d_ref, atol=1e-14)
    big = np.array([[1000.0, 0.0], [0.0, 1000.0]], dtype=np.float32)
    loss, d = F.softmax_cross_entropy(big, np.array([0, 0]))
    assert np.isfinite(loss) and np.all(np.isfinite(d))
    assert abs(loss - 500.0) < 1e-3  # half the rows are right (loss 0), half wrong by 1000


def test_softmax_cross_entropy_uniform_logits_give_log_k():
    loss, _ = F.softmax_cross_entropy(np.zeros((3, 10)), np.array([0, 5, 9]))
    assert abs(loss - np.log(10)) < 1e-12
