"""catlab.gradcheck itself: it catches a wrong backward and leaves its inputs alone.

The gradient checks of each layer family live beside that family's other tests.
"""

import numpy as np

from catlab.gradcheck import gradcheck, numerical_gradient, relative_error

TOL = 1e-6


def test_gradcheck_catches_a_wrong_backward(rng):
    x = rng.normal(size=(2, 5))
    wrong = gradcheck(lambda x: x**2, lambda dy, x: dy * x, [x])  # missing the factor 2
    right = gradcheck(lambda x: x**2, lambda dy, x: 2 * dy * x, [x])
    assert wrong["input0"] > 0.1 and right["input0"] < 1e-8


def test_numerical_gradient_does_not_modify_input():
    x = np.array([1.0, 2.0])
    numerical_gradient(lambda v: float(v.sum()), x)
    np.testing.assert_array_equal(x, [1.0, 2.0])
    assert relative_error([1.0], [1.0]) == 0.0
