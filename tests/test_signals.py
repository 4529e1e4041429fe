"""catlab.signals: true convolution and its uses, against numpy and hand-computed answers."""

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from catlab import signals as S

floats = st.floats(-10, 10, allow_nan=False, width=64)


def test_convolve_by_hand():
    # (1, 2, 3) * (0, 1, 0.5): 0, 1, 2 + 0.5, 3 + 1, 1.5
    np.testing.assert_allclose(S.convolve([1, 2, 3], [0, 1, 0.5]), [0, 1, 2.5, 4, 1.5])


@given(
    hnp.arrays(np.float64, st.integers(1, 30), elements=floats),
    hnp.arrays(np.float64, st.integers(1, 30), elements=floats),
    st.sampled_from(["full", "same", "valid"]),
)
def test_convolve_and_correlate_match_numpy(a, b, mode):
    if mode != "full" and b.size > a.size:
        with pytest.raises(ValueError, match="longer"):
            S.convolve(a, b, mode)
        return
    np.testing.assert_allclose(S.convolve(a, b, mode), np.convolve(a, b, mode), atol=1e-9)
    np.testing.assert_allclose(S.correlate(a, b, mode), np.correlate(a, b, mode), atol=1e-9)


def test_convolve_is_commutative_correlate_is_not():
    a, b = np.array([1.0, 2.0, 0.0]), np.array([0.0, 1.0, 3.0])
    np.testing.assert_allclose(S.convolve(a, b), S.convolve(b, a))
    assert not np.allclose(S.correlate(a, b, "full"), S.correlate(b, a, "full"))


def test_convolve_keeps_float32_and_does_not_modify_inputs():
    a = np.arange(5, dtype=np.float32)
    b = np.ones(2, dtype=np.float32)
    a0, b0 = a.copy(), b.copy()
    y = S.convolve(a, b)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(b, b0)


def test_moving_average_by_hand_and_constant_series_unchanged():
    np.testing.assert_allclose(S.moving_average([0, 0, 3, 0, 0], [1, 1, 1]), [0, 1, 1, 1, 0])
    np.testing.assert_allclose(S.moving_average([1, 2, 3, 4], [1, 2, 1]), [1.25, 2, 3, 3.75])
    np.testing.assert_allclose(S.moving_average(np.full(10, 7.0), [1, 2, 3, 2]), np.full(10, 7.0))


def test_moving_average_matches_numpy_inside():
    rng = np.random.default_rng(1)
    x = rng.normal(size=40)
    w = np.array([1.0, 2.0, 3.0, 2.0, 1.0])
    ref = np.convolve(x, w[::-1] / w.sum(), mode="valid")  # windows fully inside
    np.testing.assert_allclose(S.moving_average(x, w)[2:-2], ref)


def test_two_dice_against_enumeration():
    counts = np.zeros(13)
    for a, b in itertools.product(range(1, 7), repeat=2):
        counts[a + b] += 1
    np.testing.assert_allclose(S.pmf_of_sum(S.uniform_pmf(6), S.uniform_pmf(6)), counts / 36)
    assert np.isclose(S.pmf_of_sum(S.uniform_pmf(6), S.uniform_pmf(6))[7], 6 / 36)


def test_three_coins_binomial():
    np.testing.assert_allclose(S.pmf_of_sum([0.5, 0.5], [0.5, 0.5], [0.5, 0.5]), [1 / 8, 3 / 8, 3 / 8, 1 / 8])


def test_echo_impulse_response_and_its_effect():
    h = S.echo_impulse_response(delay=3, decay=0.5, n_echoes=2)
    np.testing.assert_array_equal(h, [1, 0, 0, 0.5, 0, 0, 0.25])
    y = S.convolve([2.0, 1.0], h)
    np.testing.assert_allclose(y, [2, 1, 0, 1, 0.5, 0, 0.5, 0.25])
    np.testing.assert_array_equal(S.echo_impulse_response(4, 0.3, 0), [1.0])


def test_lowpass_impulse_response_matches_difference_equation():
    alpha = 0.2
    rng = np.random.default_rng(2)
    x = rng.normal(size=50)
    y = np.zeros_like(x)
    prev = 0.0
    for n, xn in enumerate(x):  # y[n] = (1 - alpha) y[n - 1] + alpha x[n]
        prev = (1 - alpha) * prev + alpha * xn
        y[n] = prev
    h = S.lowpass_impulse_response(alpha, 50)  # long enough: exact for the first 50 samples
    np.testing.assert_allclose(S.convolve(x, h)[:50], y, atol=1e-12)
    np.testing.assert_allclose(S.lowpass_impulse_response(0.5, 3), [0.5, 0.25, 0.125])


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: S.convolve([[1.0]], [1.0]), ValueError, "1-D"),
        (lambda: S.convolve([1.0], []), ValueError, "empty"),
        (lambda: S.convolve([1.0, np.nan], [1.0]), ValueError, "NaN"),
        (lambda: S.convolve([1.0], [1.0], "middle"), ValueError, "mode"),
        (lambda: S.convolve(["a"], [1.0]), TypeError, "dtype"),
        (lambda: S.moving_average([1.0, 2.0], [1.0, -1.0]), ValueError, "non-negative"),
        (lambda: S.moving_average([1.0, 2.0], [0.0, 0.0]), ValueError, "positive sum"),
        (lambda: S.moving_average([1.0], [1.0, 1.0]), ValueError, "more than"),
        (lambda: S.echo_impulse_response(0, 0.5), ValueError, "delay"),
        (lambda: S.echo_impulse_response(2, 1.5), ValueError, "decay"),
        (lambda: S.echo_impulse_response(2, "x"), TypeError, "decay"),
        (lambda: S.lowpass_impulse_response(0.0, 5), ValueError, "alpha"),
        (lambda: S.uniform_pmf(0), ValueError, "sides"),
        (lambda: S.pmf_of_sum(), ValueError, "at least one"),
        (lambda: S.pmf_of_sum([0.5, 0.6]), ValueError, "sum to 1"),
    ],
)
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
