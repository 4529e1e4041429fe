"""Numerical gradient checks by centred differences in float64.

A backward pass is checked against the definition of the derivative: for a
random fixed "upstream gradient" ``g`` of the output's shape, the scalar
``L(inputs) = sum(forward(*inputs) * g)`` has gradient
``backward(g, *inputs)``, and each of its entries is approximated by
``(L(x + h e_i) - L(x - h e_i)) / (2 h)``.

The error reported is ``||analytic - numeric|| / max(||analytic|| + ||numeric||, tiny)``:
above about 1e-2 the backward pass is wrong; around 1e-7 or below it is right
(a little higher is normal next to kinks, such as ReLU at 0).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ._typing import ArrayLike, NDArray, Seed

if TYPE_CHECKING:
    from .nn import Module

__all__ = ["numerical_gradient", "relative_error", "gradcheck", "gradcheck_layer"]


def relative_error(a: ArrayLike, b: ArrayLike) -> float:
    """``||a - b|| / max(||a|| + ||b||, 1e-300)`` in float64.

    Examples
    --------
    >>> import numpy as np
    >>> relative_error(np.array([1.0, 2.0]), np.array([1.0, 2.0]))
    0.0
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} and {b.shape}")
    denom = max(np.linalg.norm(a) + np.linalg.norm(b), 1e-300)
    return float(np.linalg.norm(a - b) / denom)


def numerical_gradient(
    f: Callable[[NDArray[np.float64]], float], x: ArrayLike, eps: float = 1e-6
) -> NDArray[np.float64]:
    """Centred-difference gradient of a scalar function ``f`` at ``x``.

    Parameters
    ----------
    f : callable
        ``f(x) -> float``.
    x : ndarray
        The point; a float64 copy is perturbed, ``x`` itself is not modified.
    eps : float, default 1e-6
        The step h.

    Returns
    -------
    grad : ndarray of x's shape, float64

    Examples
    --------
    >>> import numpy as np
    >>> g = numerical_gradient(lambda v: float((v ** 2).sum()), np.array([1.0, -3.0]))
    >>> np.allclose(g, [2.0, -6.0])
    True
    """
    x = np.array(x, dtype=np.float64, copy=True)
    grad = np.empty_like(x)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f(x)
        flat[i] = old - eps
        fm = f(x)
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def _as_tuple(grads):
    return grads if isinstance(grads, tuple) else (grads,)


def gradcheck(
    forward: Callable[..., Any],
    backward: Callable[..., Any],
    inputs: Sequence[ArrayLike],
    names: Sequence[str] | None = None,
    eps: float = 1e-6,
    rng: Seed = 0,
) -> dict[str, float]:
    """Compare an op's backward pass with centred differences of its forward pass.

    Parameters
    ----------
    forward : callable
        ``forward(*inputs) -> ndarray or float``.
    backward : callable
        ``backward(dy, *inputs)`` returning the gradient of ``sum(forward(*inputs) * dy)``
        with respect to each input: a tuple aligned with ``inputs`` (``None``
        for an input not checked) or, for one input, a single array.
    inputs : sequence of ndarray
        Converted to float64 copies; the originals are not modified.
    names : sequence of str, optional
        Names for the result; default ``"input0"``, ``"input1"``, ...
    eps : float, default 1e-6
    rng : int or numpy.random.Generator, default 0
        Source of the random upstream gradient.

    Returns
    -------
    errors : dict of str to float
        The relative error for each checked input.

    Raises
    ------
    ValueError
        If ``backward`` returns a gradient of the wrong shape or the wrong count.

    Examples
    --------
    >>> import numpy as np
    >>> from catlab import functional as F
    >>> rng = np.random.default_rng(0)
    >>> x, w, b = rng.normal(size=(2, 3, 6, 6)), rng.normal(size=(4, 3, 3, 3)), rng.normal(size=4)
    >>> err = gradcheck(lambda x, w, b: F.conv2d(x, w, b, stride=2, padding=1),
    ...                 lambda dy, x, w, b: F.conv2d_backward(dy, x, w, stride=2, padding=1),
    ...                 [x, w, b], names=["x", "weight", "bias"])
    >>> all(e < 1e-6 for e in err.values())
    True
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    inputs = [np.array(a, dtype=np.float64, copy=True) for a in inputs]
    names = list(names) if names is not None else [f"input{i}" for i in range(len(inputs))]
    y = np.asarray(forward(*inputs), dtype=np.float64)
    dy = rng.standard_normal(y.shape) if y.ndim else np.float64(rng.standard_normal())
    grads = _as_tuple(backward(dy, *[a.copy() for a in inputs]))
    if len(grads) != len(inputs):
        raise ValueError(f"backward returned {len(grads)} gradients for {len(inputs)} inputs")
    errors = {}
    for i, (name, g) in enumerate(zip(names, grads)):
        if g is None:
            continue
        g = np.asarray(g)
        if g.shape != inputs[i].shape:
            raise ValueError(f"gradient for {name} has shape {g.shape}, expected {inputs[i].shape}")

        def loss(xi, i=i):
            args = list(inputs)
            args[i] = xi
            return float(np.sum(np.asarray(forward(*args), dtype=np.float64) * dy))

        errors[name] = relative_error(g, numerical_gradient(loss, inputs[i], eps))
    return errors


def gradcheck_layer(layer: Module, x: ArrayLike, eps: float = 1e-6, rng: Seed = 0) -> dict[str, float]:
    """Check a layer's ``backward`` (input and parameter gradients) numerically.

    The layer's parameters are converted to float64 for the check (the layer
    is left in float64) and restored exactly after each perturbation.

    Parameters
    ----------
    layer : catlab.nn.Module
    x : ndarray
        A float64 copy is used as the input.
    eps : float, default 1e-6
    rng : int or numpy.random.Generator, default 0

    Returns
    -------
    errors : dict of str to float
        ``"input"`` and one entry per parameter name (``"weight"``, ``"0.bias"``, ...).

    Examples
    --------
    >>> import numpy as np
    >>> from catlab import nn
    >>> layer = nn.Conv2d(2, 3, 3, padding=1, rng=0)
    >>> err = gradcheck_layer(layer, np.random.default_rng(1).normal(size=(2, 2, 5, 5)))
    >>> sorted(err), max(err.values()) < 1e-6
    (['bias', 'input', 'weight'], True)
    """
    rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    layer.astype(np.float64).train()
    x = np.array(x, dtype=np.float64, copy=True)
    y = layer.forward(x)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    params = list(layer.named_parameters())
    analytic = {name: p.grad.copy() for name, p in params}

    def loss_x(xi):
        return float(np.sum(layer.forward(xi) * dy))

    errors = {"input": relative_error(dx, numerical_gradient(loss_x, x, eps))}
    for name, p in params:
        original = p.data

        def loss_p(v, p=p):
            p.data = v
            return float(np.sum(layer.forward(x) * dy))

        num = numerical_gradient(loss_p, original, eps)
        p.data = original
        errors[name] = relative_error(analytic[name], num)
    return errors
