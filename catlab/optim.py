"""Optimizers: :class:`SGD` and :class:`Adam`, with :mod:`torch.optim`'s names, defaults and rules.

An optimizer holds a list of :class:`catlab.nn.Parameter` objects. After a
``backward`` pass has filled every ``param.grad``, ``step()`` updates each
``param.data`` in place; ``zero_grad()`` forgets the gradients. Parameters
whose ``grad`` is ``None`` are skipped, as in PyTorch. The per-parameter state
(momentum buffers, Adam's moments) has the parameter's dtype.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _validate as V
from .nn import Module, Parameter

__all__ = ["Optimizer", "SGD", "Adam"]


def _number(value, name: str, low: float = 0.0, *, low_inclusive: bool = True, high: float | None = None) -> float:
    """Return ``value`` as a float, raising unless ``low <= value`` (or ``<``) and ``value < high``."""
    return V.real_number(value, name, low, high, low_inclusive=low_inclusive, high_inclusive=False)


class Optimizer:
    """Base class: holds the parameters and implements :meth:`zero_grad`.

    Parameters
    ----------
    params : iterable of Parameter
        Usually ``model.parameters()``.

    Raises
    ------
    TypeError
        If ``params`` is a Module (pass ``model.parameters()``) or holds something other than Parameters.
    ValueError
        If ``params`` is empty or holds the same Parameter twice.
    """

    def __init__(self, params: Iterable[Parameter]) -> None:
        if isinstance(params, Module):
            raise TypeError("params must be an iterable of Parameters; pass model.parameters(), not the model")
        if isinstance(params, Parameter):
            raise TypeError("params must be an iterable of Parameters, got a single Parameter; wrap it in a list")
        params = list(params)
        if not params:
            raise ValueError("params is an empty list: the optimizer has nothing to update")
        for i, p in enumerate(params):
            if not isinstance(p, Parameter):
                raise TypeError(f"params[{i}] must be a catlab.nn.Parameter, got {type(p).__name__}")
        if len({id(p) for p in params}) != len(params):
            raise ValueError("params holds the same Parameter more than once")
        self.params = params
        self.state: dict[int, dict[str, Any]] = {}  # id(param) -> dict of arrays
        self.steps = 0

    def zero_grad(self) -> None:
        """Set every parameter's ``grad`` to ``None`` (``set_to_none=True`` in PyTorch)."""
        for p in self.params:
            p.grad = None

    def _grads(self):
        """Yield ``(param, grad)`` for parameters with a gradient, checking shapes first."""
        pairs = [(p, p.grad) for p in self.params if p.grad is not None]
        for p, g in pairs:
            if np.shape(g) != p.data.shape:
                raise ValueError(f"a gradient has shape {np.shape(g)} but its parameter has shape {p.data.shape}")
        return pairs

    def step(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with momentum, as :class:`torch.optim.SGD`.

    For each parameter ``p`` with gradient ``g``:

    ``g = g + weight_decay * p``; with momentum, ``b = g`` on the first step and
    ``b = momentum * b + (1 - dampening) * g`` afterwards, then ``g = g + momentum * b``
    (Nesterov) or ``g = b``; finally ``p = p - lr * g``.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
        Learning rate, > 0.
    momentum : float, default 0
    dampening : float, default 0
    weight_decay : float, default 0
        L2 penalty coefficient.
    nesterov : bool, default False
        Nesterov momentum; needs ``momentum > 0`` and ``dampening == 0``.

    Raises
    ------
    TypeError, ValueError
        Naming the argument: ``lr`` not positive, a negative ``momentum``,
        ``dampening`` or ``weight_decay``, ``nesterov`` without momentum, bad ``params``.

    Examples
    --------
    One step on ``f(p) = p**2 / 2`` (gradient ``p``) from ``p = 2``:

    >>> import numpy as np
    >>> from catlab.nn import Parameter
    >>> p = Parameter(np.array([2.0]))
    >>> opt = SGD([p], lr=0.5)
    >>> p.grad = p.data.copy(); opt.step(); p.data
    array([1.])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        self.lr = _number(lr, "lr", 0.0, low_inclusive=False)
        self.momentum = _number(momentum, "momentum")
        self.dampening = _number(dampening, "dampening")
        self.weight_decay = _number(weight_decay, "weight_decay")
        V.boolean(nesterov, "nesterov")
        if nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(
                f"nesterov=True requires momentum > 0 and dampening == 0, got momentum={self.momentum}, "
                f"dampening={self.dampening}"
            )
        self.nesterov = bool(nesterov)
        super().__init__(params)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        for p, g in self._grads():
            g = np.asarray(g, dtype=p.data.dtype)
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            if self.momentum:
                state = self.state.setdefault(id(p), {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = np.array(g, dtype=p.data.dtype, copy=True)
                else:
                    buf *= self.momentum
                    buf += (1.0 - self.dampening) * g
                g = g + self.momentum * buf if self.nesterov else buf
            p.data -= self.lr * g
        self.steps += 1

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr}, momentum={self.momentum}, dampening={self.dampening}, "
            f"weight_decay={self.weight_decay}, nesterov={self.nesterov})"
        )


class Adam(Optimizer):
    """Adam (Kingma and Ba, ICLR 2015), as :class:`torch.optim.Adam`.

    At step ``t`` for each parameter ``p`` with gradient ``g`` (after
    ``g = g + weight_decay * p``):

    ``m = beta1 * m + (1 - beta1) * g``, ``v = beta2 * v + (1 - beta2) * g**2``,
    ``p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)``;
    with ``amsgrad`` the running maximum of ``v`` replaces ``v`` in the denominator.

    Parameters
    ----------
    params : iterable of Parameter
    lr : float, default 1e-3
        Learning rate, > 0.
    betas : (float, float), default (0.9, 0.999)
        Decay rates of the first and second moments, each in [0, 1).
    eps : float, default 1e-8
        Added to the denominator, >= 0.
    weight_decay : float, default 0
        L2 penalty coefficient (added to the gradient, not decoupled).
    amsgrad : bool, default False

    Raises
    ------
    TypeError, ValueError
        Naming the argument: ``lr`` not positive, ``betas`` not a pair in [0, 1),
        a negative ``eps`` or ``weight_decay``, bad ``params``.

    Examples
    --------
    The first step moves every parameter by about ``lr`` against its gradient's sign:

    >>> import numpy as np
    >>> from catlab.nn import Parameter
    >>> p = Parameter(np.array([1.0, 1.0]))
    >>> p.grad = np.array([3.0, -0.5])
    >>> Adam([p], lr=0.1).step()
    >>> np.round(p.data, 6)
    array([0.9, 1.1])
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ) -> None:
        self.lr = _number(lr, "lr", 0.0, low_inclusive=False)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {betas!r}")
        self.betas = (_number(betas[0], "betas[0]", 0.0, high=1.0), _number(betas[1], "betas[1]", 0.0, high=1.0))
        self.eps = _number(eps, "eps")
        self.weight_decay = _number(weight_decay, "weight_decay")
        V.boolean(amsgrad, "amsgrad")
        self.amsgrad = bool(amsgrad)
        super().__init__(params)

    def step(self) -> None:
        """Update every parameter that has a gradient, in place."""
        beta1, beta2 = self.betas
        for p, g in self._grads():
            g = np.asarray(g, dtype=p.data.dtype)
            if self.weight_decay:
                g = g + self.weight_decay * p.data
            state = self.state.setdefault(id(p), {})
            if not state:
                state["step"] = 0
                state["exp_avg"] = np.zeros_like(p.data)
                state["exp_avg_sq"] = np.zeros_like(p.data)
                if self.amsgrad:
                    state["max_exp_avg_sq"] = np.zeros_like(p.data)
            state["step"] += 1
            t = state["step"]
            m, v = state["exp_avg"], state["exp_avg_sq"]
            m *= beta1
            m += (1.0 - beta1) * g
            v *= beta2
            v += (1.0 - beta2) * g * g
            if self.amsgrad:
                np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
                v = state["max_exp_avg_sq"]
            denom = np.sqrt(v) / np.sqrt(1.0 - beta2**t) + self.eps
            p.data -= (self.lr / (1.0 - beta1**t)) * (m / denom)
        self.steps += 1

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.lr}, betas={self.betas}, eps={self.eps}, weight_decay={self.weight_decay}, "
            f"amsgrad={self.amsgrad})"
        )
