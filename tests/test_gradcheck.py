"""Numerical gradient checks (centred differences, float64) on every op and layer."""

import numpy as np
import pytest

from catlab import functional as F
from catlab import nn
from catlab.gradcheck import gradcheck, gradcheck_layer, numerical_gradient, relative_error

TOL = 1e-6


def test_gradcheck_catches_a_wrong_backward(rng):
    x = rng.normal(size=(2, 5))
    wrong = gradcheck(lambda x: x ** 2, lambda dy, x: dy * x, [x])  # missing the factor 2
    right = gradcheck(lambda x: x ** 2, lambda dy, x: 2 * dy * x, [x])
    assert wrong["input0"] > 0.1 and right["input0"] < 1e-8


def test_numerical_gradient_does_not_modify_input():
    x = np.array([1.0, 2.0])
    numerical_gradient(lambda v: float(v.sum()), x)
    np.testing.assert_array_equal(x, [1.0, 2.0])
    assert relative_error([1.0], [1.0]) == 0.0


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(stride=(1, 2), padding=(2, 0), dilation=(2, 1)),
    dict(padding="same", dilation=2),
    dict(groups=2, stride=3, padding=3),
])
def test_conv2d_gradients(kw, rng):
    groups = kw.get("groups", 1)
    x = rng.normal(size=(2, 4, 7, 8))
    w = rng.normal(size=(4, 4 // groups, 3, 2))
    b = rng.normal(size=4)
    err = gradcheck(lambda x, w, b: F.conv2d(x, w, b, **kw),
                    lambda dy, x, w, b: F.conv2d_backward(dy, x, w, **kw), [x, w, b], ["x", "w", "b"])
    assert max(err.values()) < TOL, err


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=2, dilation=2), dict(padding="same", groups=3)])
def test_conv1d_gradients(kw, rng):
    x = rng.normal(size=(2, 3, 11))
    w = rng.normal(size=(3, 3 // kw.get("groups", 1), 4))
    b = rng.normal(size=3)
    err = gradcheck(lambda x, w, b: F.conv1d(x, w, b, **kw),
                    lambda dy, x, w, b: F.conv1d_backward(dy, x, w, **kw), [x, w, b])
    assert max(err.values()) < TOL, err


@pytest.mark.parametrize("fwd,bwd", [(F.max_pool2d, F.max_pool2d_backward), (F.avg_pool2d, F.avg_pool2d_backward)])
@pytest.mark.parametrize("k,s,p", [(2, None, 0), (3, 2, 1), ((2, 3), 1, (1, 1))])
def test_pool_gradients(fwd, bwd, k, s, p, rng):
    x = rng.normal(size=(2, 2, 6, 7))
    err = gradcheck(lambda x: fwd(x, k, s, p), lambda dy, x: bwd(dy, x, k, s, p), [x])
    assert err["input0"] < TOL, err


def test_relu_linear_and_loss_gradients(rng):
    x = rng.normal(size=(4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # stay away from the kink at 0
    assert gradcheck(F.relu, lambda dy, x: F.relu_backward(dy, x), [x])["input0"] < TOL
    w, b = rng.normal(size=(3, 6)), rng.normal(size=3)
    err = gradcheck(F.linear, lambda dy, x, w, b: F.linear_backward(dy, x, w), [x, w, b])
    assert max(err.values()) < TOL, err
    labels = rng.integers(0, 6, size=4)
    err = gradcheck(lambda z: F.softmax_cross_entropy(z, labels)[0],
                    lambda dy, z: dy * F.softmax_cross_entropy(z, labels)[1], [x])
    assert err["input0"] < TOL, err


@pytest.mark.parametrize("make,shape", [
    (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, rng=0), (2, 3, 7, 7)),
    (lambda: nn.Conv2d(4, 4, (2, 3), groups=2, dilation=(1, 2), bias=False, rng=0), (2, 4, 6, 8)),
    (lambda: nn.Conv1d(2, 3, 3, padding="same", rng=0), (3, 2, 9)),
    (lambda: nn.MaxPool2d(2), (2, 3, 6, 6)),
    (lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 3, 7, 6)),
    (lambda: nn.ReLU(), (3, 5)),
    (lambda: nn.Linear(5, 4, rng=0), (3, 5)),
    (lambda: nn.Flatten(), (2, 3, 2, 2)),
    (lambda: nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, rng=0), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                           nn.Linear(12, 5, rng=1)), (2, 1, 4, 4)),
])
def test_layer_gradients(make, shape, rng):
    x = rng.normal(size=shape)
    x[np.abs(x) < 1e-3] = 0.5
    err = gradcheck_layer(make(), x)
    assert max(err.values()) < TOL, err
    assert "input" in err
