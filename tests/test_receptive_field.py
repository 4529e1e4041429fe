"""catlab.receptive_field: formula against hand answers and against a backward pass."""

import numpy as np
import pytest

from catlab import functional as F
from catlab.receptive_field import receptive_field, receptive_fields


def test_numpy_integers_are_accepted():
    # layer 1: 3 wide, outputs 2 apart; layer 2 spans 3 of them: 0..6 in input pixels
    assert receptive_field(np.array([3, 3]), strides=np.int64(2)) == 7


def test_by_hand():
    assert receptive_fields([3, 3, 3]) == ([3, 5, 7], [1, 1, 1])
    assert receptive_field([5]) == 5
    assert receptive_field([2, 2], strides=2) == 4  # two 2x2 stride-2 pools see 4x4
    assert receptive_field([3, 3], dilations=[1, 2]) == 7
    assert receptive_fields([11, 3, 5], strides=[4, 2, 1]) == ([11, 19, 51], [4, 8, 8])


@pytest.mark.parametrize("ks, ss, ds", [([3, 3, 3], [1, 1, 1], [1, 1, 1]), ([3, 5], [2, 1], [1, 1]),
                                        ([3, 3, 3], [1, 2, 1], [1, 1, 2]), ([4, 2], [2, 1], [1, 3])])
def test_formula_matches_nonzero_pattern_of_backward_pass(ks, ss, ds):
    size = 64
    x = np.ones((1, 1, size, size))
    acts = [x]
    for k, s, d in zip(ks, ss, ds):  # all-ones weights: no cancellation in the gradient
        acts.append(F.conv2d(acts[-1], np.ones((1, 1, k, k)), stride=s, dilation=d))
    out = acts[-1]
    dy = np.zeros_like(out)
    dy[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0
    for (k, s, d), a in zip(reversed(list(zip(ks, ss, ds))), reversed(acts[:-1])):
        dy, _, _ = F.conv2d_backward(dy, a, np.ones((1, 1, k, k)), stride=s, dilation=d)
    rows = np.flatnonzero(dy[0, 0].any(axis=1))
    # the receptive field is the span from the first to the last input row touched
    assert rows[-1] - rows[0] + 1 == receptive_field(ks, ss, ds)


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: receptive_fields([]), ValueError, "at least one"),
        (lambda: receptive_fields(3), TypeError, "sequence"),
        (lambda: receptive_fields([3, 0]), ValueError, "kernel_sizes"),
        (lambda: receptive_fields([3, 3], strides=[1]), ValueError, "strides"),
        (lambda: receptive_fields([3], dilations=[1.5]), TypeError, "dilations"),
        (lambda: receptive_fields([3], strides=2.0), TypeError, "strides"),
        (lambda: receptive_fields("33"), TypeError, "sequence"),
    ],
)
def test_bad_arguments_are_named(call, exc, words):
    with pytest.raises(exc, match=words):
        call()
