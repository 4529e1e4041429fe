"""Bad input gets a clear error naming the argument, before any work starts."""

import numpy as np
import pytest

from catlab import functional as F
from catlab import nn

X = np.zeros((2, 3, 8, 8), dtype=np.float32)
W = np.zeros((4, 3, 3, 3), dtype=np.float32)


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (lambda: F.conv2d(X[0], W), ValueError, r"x must be 4-D \(N, C, H, W\), got 3-D array of shape \(3, 8, 8\)"),
        (lambda: F.conv2d(X, W[0]), ValueError, r"weight must be 4-D"),
        (
            lambda: F.conv2d(X, np.zeros((4, 2, 3, 3), np.float32)),
            ValueError,
            r"weight must have shape \(C_out, 3, \.\.\.\)",
        ),
        (lambda: F.conv2d(X, W, groups=2), ValueError, r"groups must divide the input channels C=3, got groups=2"),
        (lambda: F.conv2d(X, np.zeros((3, 1, 3, 3), np.float32), groups=3), None, None),
        (
            lambda: F.conv2d(X, np.zeros((4, 1, 3, 3), np.float32), groups=3),
            ValueError,
            r"groups must divide the output channels C_out=4",
        ),
        (
            lambda: F.conv2d(X, np.zeros((4, 3, 9, 3), np.float32)),
            ValueError,
            r"weight must fit in the padded input, got kernel size 9 .*H=8 \+ padding 0 = 8",
        ),
        (lambda: F.conv2d(X, W, dilation=5), ValueError, r"dilated span 11"),
        (lambda: F.conv2d(X, W, stride=0), ValueError, r"stride must be positive, got 0"),
        (lambda: F.conv2d(X, W, stride=(1, -2)), ValueError, r"stride must be positive"),
        (lambda: F.conv2d(X, W, dilation=0), ValueError, r"dilation must be positive"),
        (lambda: F.conv2d(X, W, padding=-1), ValueError, r"padding must be >= 0"),
        (
            lambda: F.conv2d(X, W, padding="full"),
            ValueError,
            r"padding must be an int, a tuple, 'valid' or 'same', got 'full'",
        ),
        (lambda: F.conv2d(X, W, padding="same", stride=2), ValueError, r"padding='same' is not supported for strided"),
        (lambda: F.conv2d(X, W, stride=1.5), TypeError, r"stride must be an int"),
        (lambda: F.conv2d(X, W, stride=(1, 2, 3)), ValueError, r"stride must be an int or a sequence of 2 ints"),
        (lambda: F.conv2d(X.astype(np.int32), W), TypeError, r"x must have dtype float32 or float64, got int32"),
        (
            lambda: F.conv2d(X, W.astype(np.float64)),
            TypeError,
            r"weight must have the dtype of x \(float32\), got float64",
        ),
        (lambda: F.conv2d(X, W, np.zeros(5, np.float32)), ValueError, r"bias must have shape \(4,\)"),
        (
            lambda: F.conv2d(X, W, np.zeros(4, np.float64)),
            TypeError,
            r"bias must have the dtype of x \(float32\), got float64",
        ),
        (lambda: F.conv2d("image", W), TypeError, r"x must be a NumPy array"),
        (lambda: F.conv2d(np.zeros((0, 3, 8, 8), np.float32), W), ValueError, r"x must not be empty"),
        (
            lambda: F.conv2d_backward(np.zeros((2, 4, 5, 5), np.float32), X, W),
            ValueError,
            r"dy must have the forward output's shape \(2, 4, 6, 6\), got \(2, 4, 5, 5\)",
        ),
        (lambda: F.conv1d(X, W), ValueError, r"x must be 3-D \(N, C, L\)"),
        (lambda: F.max_pool2d(X, 0), ValueError, r"kernel_size must be positive"),
        (lambda: F.max_pool2d(X, 2, padding=2), ValueError, r"padding must be at most half the kernel size"),
        (lambda: F.max_pool2d(X, 9), ValueError, r"kernel_size must fit in the padded input \(8, 8\), got \(9, 9\)"),
        (lambda: F.avg_pool2d(X, 2, stride=0), ValueError, r"stride must be positive"),
        (
            lambda: F.max_pool2d_backward(np.zeros((2, 3, 3, 3), np.float32), X, 2),
            ValueError,
            r"dy must have the forward output.s shape \(2, 3, 4, 4\)",
        ),
        (lambda: F.relu(np.arange(3)), TypeError, r"x must have dtype float32 or float64, got int"),
        (
            lambda: F.relu_backward(np.zeros(3), np.zeros(4)),
            ValueError,
            r"dy must have the shape of x \(4,\), got \(3,\)",
        ),
        (
            lambda: F.linear(np.zeros((2, 5)), np.zeros((3, 4))),
            ValueError,
            r"weight must have shape \(out_features, 5\)",
        ),
        (
            lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3])),
            ValueError,
            r"labels must lie in \[0, 3\).*got 3",
        ),
        (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, -1])), ValueError, r"got -1"),
        (lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0])), TypeError, r"labels must be integer"),
        (
            lambda: F.softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 1, 2])),
            ValueError,
            r"labels must have shape \(2,\)",
        ),
        (
            lambda: F.softmax_cross_entropy(np.array([[0.0, np.nan]]), np.array([0])),
            ValueError,
            r"logits must be finite, got 1 NaN",
        ),
        (lambda: nn.Conv2d(3, 6, 0), ValueError, r"kernel_size must be positive"),
        (
            lambda: nn.Conv2d(3, 6, 5, groups=2),
            ValueError,
            r"groups must divide in_channels=3 and out_channels=6, got groups=2",
        ),
        (lambda: nn.Conv2d(3.0, 6, 5), TypeError, r"in_channels must be an integer"),
        (lambda: nn.Linear(4, 2, dtype=np.int64), TypeError, r"dtype must be float32 or float64"),
        (lambda: nn.Linear(4, 2, rng="seed"), TypeError, r"rng must be None, an int seed or a numpy.random.Generator"),
        (lambda: nn.MaxPool2d(2, padding=3), ValueError, r"padding must be at most half"),
        (lambda: nn.ReLU().backward(np.zeros(3)), RuntimeError, r"without a forward pass"),
    ],
)
def test_bad_input_is_reported(call, exc, pattern):
    if exc is None:
        call()  # a valid depthwise call, for contrast
        return
    with pytest.raises(exc, match=pattern):
        call()


def test_errors_come_before_any_work_and_inputs_stay_untouched():
    x = np.random.default_rng(0).normal(size=(1, 2, 4, 4))
    before = x.copy()
    with pytest.raises(ValueError):
        F.conv2d(x, np.zeros((1, 3, 2, 2)))
    np.testing.assert_array_equal(x, before)


# --- absurd arguments (issue 14, item 6): a clear error naming the argument, before any work ----

X2 = np.zeros((1, 1, 6, 6), np.float32)
W2 = np.zeros((1, 1, 3, 3), np.float32)


@pytest.mark.parametrize(
    "call,exc,pattern",
    [
        (
            lambda: F.conv2d(X2, W2, stride=2**64),
            ValueError,
            r"stride must be at most 2147483647, got 18446744073709551616",
        ),
        (lambda: F.conv2d(X2, W2, stride=2**63), ValueError, r"stride must be at most"),
        (lambda: F.conv2d(X2, W2, stride=(1, 2**63)), ValueError, r"stride must be at most"),
        (lambda: F.conv2d(X2, W2, dilation=2**40), ValueError, r"dilation must be at most"),
        (lambda: F.conv2d(X2, W2, padding=2**40), ValueError, r"padding must be at most"),
        (lambda: F.conv2d(X2, W2, padding=2**20), ValueError, r"padding must leave an output of a size that fits"),
        (lambda: F.conv2d(X2, W2, groups=2**70), ValueError, r"groups must be at most"),
        (
            lambda: F.conv2d_backward(np.zeros((1, 1, 4, 4), np.float32), X2, W2, stride=2**64),
            ValueError,
            r"stride must be at most",
        ),
        (lambda: F.conv1d(X2[:, :, 0], W2[:, :, 0], stride=True), TypeError, r"stride must be an int"),
        (lambda: F.max_pool2d(X2, 2, stride=2**64), ValueError, r"stride must be at most"),
        (lambda: F.avg_pool2d(X2, 2, stride=2**64), ValueError, r"stride must be at most"),
        (lambda: F.max_pool2d(X2, 2**64), ValueError, r"kernel_size must be at most"),
        (lambda: F.max_pool2d(X2, 2, padding=2**64), ValueError, r"padding must be at most"),
        (
            lambda: F.max_pool2d(X2, 2, return_indices="no"),
            TypeError,
            r"return_indices must be True or False, got 'no'",
        ),
        (lambda: F.max_pool2d(X2, 2, return_indices=1), TypeError, r"return_indices must be True or False"),
        (lambda: F.max_pool2d(X2, 2.0), TypeError, r"kernel_size must be an int"),
        (lambda: F.conv_output_size(2**64, 3), ValueError, r"size must be at most"),
        (lambda: F.conv_output_size(8, 3, stride=0), ValueError, r"stride must be a positive integer, got 0"),
        (lambda: F.conv_output_size(8, 3, padding=-1), ValueError, r"padding must be non-negative, got -1"),
        (lambda: F.conv_output_size(8.0, 3), TypeError, r"size must be an integer, got 8.0"),
        (lambda: F.conv_output_size(8, 3, dilation=None), TypeError, r"dilation must be an integer"),
        (lambda: nn.Flatten()(np.float32(3.0)), ValueError, r"start_dim must lie in \[0, 0\) for a 0-D input"),
        (lambda: nn.Flatten()(np.zeros(3)), ValueError, r"start_dim must lie in \[-1, 1\) for a 1-D input"),
        (lambda: nn.Flatten(start_dim=1.5), TypeError, r"start_dim must be an integer"),
        (lambda: nn.Flatten(end_dim=2**70), ValueError, r"end_dim must be at most 63"),
        (lambda: nn.Flatten(start_dim=2, end_dim=1)(np.zeros((2, 3, 4))), ValueError, r"start_dim must not come after"),
        (lambda: nn.Conv2d(1, 2, 3, stride=2**64), ValueError, r"stride must be at most"),
        (lambda: nn.Conv2d(1, 2, 3, bias="yes"), TypeError, r"bias must be True or False"),
        (lambda: nn.Conv2d(2**40, 2, 3), ValueError, r"in_channels must be at most"),
        (lambda: nn.MaxPool2d(2, stride=2**64), ValueError, r"stride must be at most"),
        (lambda: nn.AvgPool2d(2**64), ValueError, r"kernel_size must be at most"),
        (lambda: nn.Linear(4, 2**64), ValueError, r"out_features must be at most"),
    ],
)
def test_absurd_arguments_are_reported(call, exc, pattern):
    with pytest.raises(exc, match=pattern):
        call()


def test_flatten_backward_with_a_wrong_size_dy_names_dy():
    f = nn.Flatten()
    y = f(np.zeros((2, 3, 4)))
    assert y.shape == (2, 12)
    with pytest.raises(
        ValueError,
        match=r"dy must have as many elements as the forward output \(24, from the "
        r"input of shape \(2, 3, 4\)\), got shape \(2, 11\)",
    ):
        f.backward(np.zeros((2, 11)))
    assert f.backward(np.ones((2, 12))).shape == (2, 3, 4)


def test_relu_keeps_a_0d_shape_like_torch():
    x = np.array(-2.5)
    assert F.relu(x).shape == () and F.relu(np.array(3.0)) == 3.0
    assert F.relu_backward(np.array(1.0), np.array(3.0)).shape == ()
    assert nn.Flatten(start_dim=0)(np.float64(4.0).reshape(1)).shape == (1,)


@pytest.mark.skipif(
    __import__("numba").config.DISABLE_JIT, reason="NUMBA_DISABLE_JIT (coverage run): nothing is compiled"
)
def test_integer_arguments_never_change_the_compiled_types():
    """NumPy integers, Python ints and large (but allowed) values all reach the kernels as int64:
    no new Numba specialisation is compiled (before the fix, stride=2**63 compiled a uint64 one)."""
    from catlab._kernels import conv as K
    from catlab._kernels import pool as KP

    # float64: float32 takes the register tiles (AVX2/AVX-512), and the kernels below would run only if an
    # earlier test had called them (the test passed in the whole suite and failed alone)
    x = np.random.default_rng(0).normal(size=(2, 2, 9, 9))
    w = np.ones((3, 2, 3, 3))
    F.conv2d(x, w, stride=2)  # the wide path
    F.conv2d(x, w, stride=4)  # a stride longer than the kernel: im2col
    F.max_pool2d(x, 2)
    kernels = (K.conv2d_wide_forward, K.conv2d_im2col_forward, KP.max_pool2d_forward)
    before = {k: len(k.signatures) for k in kernels}
    assert all(before.values())
    F.conv2d(x, w, stride=np.int32(2), padding=np.uint8(1), dilation=np.int64(1))
    F.conv2d(x, w, stride=(2, 2**31 - 1))
    F.max_pool2d(x, np.int16(2), stride=np.uint64(2), padding=np.int8(1))
    after = {k: len(k.signatures) for k in before}
    assert after == before
