"""One helper for every comparison with PyTorch: forward and every gradient, with tolerances.

Used as::

    from torch_compare import assert_matches_torch
    assert_matches_torch(lambda x, w: F.conv2d(x, w, padding=1),
                         lambda dy, x, w: F.conv2d_backward(dy, x, w, padding=1)[:2],
                         lambda x, w: torch.nn.functional.conv2d(x, w, padding=1),
                         [x, w])

The test is skipped (with the reason) when torch is not installed. NaN
matches NaN and an infinity matches the same infinity, so the helper also
serves the inf/NaN fuzz.
"""

import numpy as np
import pytest

TOL = {np.dtype(np.float32): dict(rtol=1e-4, atol=1e-4), np.dtype(np.float64): dict(rtol=1e-10, atol=1e-10)}


def tolerance(dtype, scale=1.0):
    """The default (rtol, atol) for ``dtype``, both multiplied by ``scale``."""
    tol = TOL[np.dtype(dtype)]
    return dict(rtol=tol["rtol"] * scale, atol=tol["atol"] * scale)


def assert_close(mine, theirs, name, **tol):
    """``mine`` equals ``theirs`` (an array or tensor) within ``tol``, NaN where NaN, the same infinities."""
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    assert mine.shape == theirs.shape, f"{name}: shape {mine.shape} != torch's {theirs.shape}"
    assert mine.dtype == theirs.dtype, f"{name}: dtype {mine.dtype} != torch's {theirs.dtype}"
    np.testing.assert_array_equal(np.isnan(mine), np.isnan(theirs), err_msg=f"{name}: NaNs in other places")
    np.testing.assert_array_equal(np.isposinf(mine), np.isposinf(theirs), err_msg=f"{name}: +inf in other places")
    np.testing.assert_array_equal(np.isneginf(mine), np.isneginf(theirs), err_msg=f"{name}: -inf in other places")
    finite = np.isfinite(mine)
    np.testing.assert_allclose(mine[finite], theirs[finite], err_msg=name, **tol)


def assert_matches_torch(
    forward, backward, torch_forward, inputs, dy=None, seed=0, names=None, torch_dtype=None, **tol
):
    """Check ``forward`` and every gradient from ``backward`` against torch's autograd.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> y``, the catlab function.
    backward : callable
        ``backward(dy, *inputs) -> grads``: one gradient per input (a single
        array when there is one input).
    torch_forward : callable
        ``torch_forward(*tensors) -> tensor``, the same computation in torch.
    inputs : list of ndarray
        float32 or float64 arrays; each becomes a tensor that requires a gradient.
    dy : ndarray, optional
        The output gradient; standard normal values (seeded) by default.
    names : list of str, optional
        Names for the error messages (default ``input0``, ...).
    torch_dtype : dtype, optional
        Run torch in this dtype (such as float64 for float32 inputs) and round
        its results to the inputs' dtype before comparing.
    **tol
        ``rtol`` and ``atol`` for every comparison; by default 1e-4 in
        float32 and 1e-10 in float64.

    Returns
    -------
    y, grads
        catlab's output and gradients, for further checks.
    """
    torch = pytest.importorskip("torch")
    tol = tol or tolerance(inputs[0].dtype)
    names = names or [f"input{i}" for i in range(len(inputs))]
    tdtype = np.dtype(torch_dtype or inputs[0].dtype)
    tensors = [torch.tensor(np.array(a, dtype=tdtype), requires_grad=True) for a in inputs]
    y_t = torch_forward(*tensors)
    y = forward(*inputs)
    assert_close(y, y_t.detach().numpy().astype(y.dtype), "output", **tol)
    if dy is None:
        dy = np.random.default_rng(seed).standard_normal(y.shape).astype(y.dtype)
    y_t.backward(torch.tensor(np.array(dy, dtype=tdtype)))
    grads = backward(dy, *inputs)
    if not isinstance(grads, tuple):
        grads = (grads,)
    assert len(grads) == len(inputs), f"backward returned {len(grads)} gradients for {len(inputs)} inputs"
    for g, t, a, name in zip(grads, tensors, inputs, names):
        assert_close(g, t.grad.numpy().astype(a.dtype), f"gradient of {name}", **tol)
    return y, grads
