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


@pytest.mark.parametrize(
    "ks, ss, ds",
    [
        ([3, 3, 3], [1, 1, 1], [1, 1, 1]),
        ([3, 5], [2, 1], [1, 1]),
        ([3, 3, 3], [1, 2, 1], [1, 1, 2]),
        ([4, 2], [2, 1], [1, 3]),
    ],
)
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


@pytest.mark.parametrize("k, d", [(3, 1), (3, 2), (3, 4), (5, 3), (2, 7), (1, 5)])
def test_one_dilated_kernel_spans_d_times_k_minus_1_plus_1(k, d):
    # taps at 0, d, 2d, ..., (k-1)d: first to last is d(k-1)+1 pixels
    assert receptive_field([k], dilations=[d]) == d * (k - 1) + 1


def test_dilation_by_hand():
    # Yu and Koltun (2016): 3x3 layers dilated 1, 2, 4 see 3, 7, 15
    assert receptive_fields([3, 3, 3], dilations=[1, 2, 4]) == ([3, 7, 15], [1, 1, 1])
    # each 3x3 layer dilated 2**i adds 2 * 2**i: sum is 2**(L+1) - 1
    for L in range(1, 8):
        assert receptive_field([3] * L, dilations=[2**i for i in range(L)]) == 2 ** (L + 1) - 1
    # a dilation applied after a stride-2 layer counts in input pixels: 3 + 2*2*2 = 11
    assert receptive_field([3, 3], strides=[2, 1], dilations=[1, 2]) == 11
    # an int dilation applies to every layer: 5 + 4 + 4 = 13 for three 3x3 layers, d = 2
    assert receptive_field([3, 3, 3], dilations=2) == 13


@pytest.mark.parametrize(
    "ks, ss, ds, pad",
    [([3, 3, 3], [1, 1, 1], [1, 2, 4], True), ([3, 3], [2, 1], [2, 3], False), ([5, 3, 3], [1, 2, 1], [3, 1, 2], True)],
)
def test_dilated_stack_matches_backward_pass_with_random_weights(ks, ss, ds, pad):
    # positive random weights (no cancellation), padding that keeps the size: the
    # receptive field does not depend on either
    rng = np.random.default_rng(11)
    x = rng.normal(size=(1, 2, 61, 61))
    ws, acts = [], [x]
    for k, s, d in zip(ks, ss, ds):
        ws.append(rng.uniform(0.1, 1.0, size=(2, 2, k, k)))
        p = d * (k - 1) // 2 if pad else 0
        acts.append(F.conv2d(acts[-1], ws[-1], stride=s, padding=p, dilation=d))
    out = acts[-1]
    dy = np.zeros_like(out)
    dy[0, 0, out.shape[2] // 2, out.shape[3] // 2] = 1.0
    for i in reversed(range(len(ks))):
        p = ds[i] * (ks[i] - 1) // 2 if pad else 0
        dy, _, _ = F.conv2d_backward(dy, acts[i], ws[i], stride=ss[i], padding=p, dilation=ds[i])
    touched = np.abs(dy[0]).sum(axis=0) > 0  # (61, 61), either input channel
    rows, cols = np.flatnonzero(touched.any(axis=1)), np.flatnonzero(touched.any(axis=0))
    r = receptive_field(ks, ss, ds)
    assert rows[-1] - rows[0] + 1 == r and cols[-1] - cols[0] + 1 == r
    assert 0 < rows[0] and rows[-1] < 60  # the region lies inside the input, not cut by a border


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
