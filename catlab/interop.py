"""PyTorch interop: move weights and whole Sequential models between catlab and torch.

A catlab :class:`~catlab.nn.Sequential` and the equivalent ``torch.nn.Sequential``
have the same ``state_dict`` keys and shapes, so weights move both ways
unchanged. torch is imported only inside the functions that need it, never
when catlab is imported.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from . import nn

if TYPE_CHECKING:  # torch is optional; imported only when a function needs it
    import torch

__all__ = ["to_torch_state_dict", "from_torch_state_dict", "to_torch"]


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("this function needs PyTorch, which catlab does not install; `pip install torch`") from e
    return torch


def to_torch_state_dict(model: nn.Module | Mapping[str, np.ndarray]) -> OrderedDict[str, torch.Tensor]:
    """A torch ``state_dict`` (an OrderedDict of tensors) from a catlab model or state.

    Parameters
    ----------
    model : catlab.nn.Module or mapping of str to ndarray

    Returns
    -------
    OrderedDict of str to torch.Tensor
        Copies, in the arrays' dtypes; load with ``torch_model.load_state_dict(...)``.

    Raises
    ------
    ImportError
        If torch is not installed.
    TypeError
        If ``model`` is neither a Module nor a mapping.

    Examples
    --------
    Needs torch, so shown rather than run here (tests/test_interop.py runs it)::

        tnet = torch.nn.Sequential(torch.nn.Linear(3, 2))
        tnet.load_state_dict(to_torch_state_dict(nn.Sequential(nn.Linear(3, 2, rng=0))))
    """
    state = model.state_dict() if isinstance(model, nn.Module) else model
    if not hasattr(state, "items"):
        raise TypeError(f"model must be a catlab.nn.Module or a mapping of arrays, got {type(model).__name__}")
    torch = _torch()
    return OrderedDict((k, torch.from_numpy(np.array(v, copy=True))) for k, v in state.items())


def from_torch_state_dict(state: Mapping[str, Any]) -> OrderedDict[str, np.ndarray]:
    """A catlab state (an OrderedDict of NumPy arrays) from a torch ``state_dict``.

    Parameters
    ----------
    state : mapping of str to torch.Tensor (or anything with ``.detach().cpu().numpy()``, or arrays)

    Returns
    -------
    OrderedDict of str to ndarray
        Copies; load with ``model.load_state_dict(...)``, which names any mismatched key.

    Raises
    ------
    TypeError
        If ``state`` is not a mapping.

    Examples
    --------
    Arrays pass through (tensors are detached and copied the same way):

    >>> import numpy as np
    >>> from_torch_state_dict({"weight": np.ones((2, 3))})["weight"].shape
    (2, 3)
    """
    if not hasattr(state, "items"):
        raise TypeError(f"state must be a mapping (a torch state_dict), got {type(state).__name__}")
    out = OrderedDict()
    for k, v in state.items():
        if hasattr(v, "detach"):
            v = v.detach().cpu().numpy()
        out[k] = np.array(v, copy=True)
    return out


_RESIDUAL = None


def _torch_residual():
    """The torch module class for :class:`catlab.nn.Residual`, defined on first use (torch imported lazily)."""
    global _RESIDUAL
    if _RESIDUAL is None:
        tnn = _torch().nn

        class Residual(tnn.Module):
            """``body(x) + shortcut(x)``; the shortcut is the identity when None (catlab.nn.Residual)."""

            def __init__(self, body, shortcut=None):
                super().__init__()
                self.body = body
                self.shortcut = tnn.Identity() if shortcut is None else shortcut

            def forward(self, x):
                return self.body(x) + self.shortcut(x)

        _RESIDUAL = Residual
    return _RESIDUAL


def to_torch(model: nn.Module) -> torch.nn.Module:
    """Build the equivalent ``torch.nn`` module, with the same weights, from a catlab model.

    Supports :class:`~catlab.nn.Sequential` of ``Conv1d``, ``Conv2d``, ``ReLU``,
    ``MaxPool2d``, ``AvgPool2d``, ``Linear``, ``Flatten``, ``BatchNorm2d``,
    ``Dropout``, ``AdaptiveAvgPool2d`` and ``Residual`` (and each of those alone).
    A ``Residual`` becomes a small torch module (``body(x) + shortcut(x)``)
    whose ``state_dict`` keys match catlab's. The torch model is in training
    or evaluation mode as the catlab model is (``Dropout`` draws its own masks).

    Parameters
    ----------
    model : catlab.nn.Module

    Returns
    -------
    torch.nn.Module
        In float64 if the catlab model is, float32 otherwise; its ``state_dict``
        (buffers included) equals ``model.state_dict()``.

    Raises
    ------
    ImportError
        If torch is not installed.
    TypeError
        For a layer with no torch equivalent here, naming it.

    Examples
    --------
    Needs torch, so shown rather than run here (tests/test_interop.py runs it)::

        tnet = to_torch(nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU()))
        # Sequential((0): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1), padding=(2, 2)), (1): ReLU())
    """
    torch = _torch()
    tnn = torch.nn

    def convert(m, where):
        if isinstance(m, nn.Sequential):
            return tnn.Sequential(*[convert(layer, f"{where}[{i}]") for i, layer in enumerate(m.layers)])
        if isinstance(m, (nn.Conv1d, nn.Conv2d)):
            cls = tnn.Conv1d if isinstance(m, nn.Conv1d) else tnn.Conv2d
            return cls(
                m.in_channels,
                m.out_channels,
                m.kernel_size,
                stride=m.stride,
                padding=m.padding,
                dilation=m.dilation,
                groups=m.groups,
                bias=m.bias is not None,
            )
        if isinstance(m, nn.Linear):
            return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        if isinstance(m, nn.ReLU):
            return tnn.ReLU()
        if isinstance(m, nn.MaxPool2d):
            return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, m.dilation, ceil_mode=m.ceil_mode)
        if isinstance(m, nn.AvgPool2d):
            return tnn.AvgPool2d(
                m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad, m.divisor_override
            )
        if isinstance(m, nn.Flatten):
            return tnn.Flatten(m.start_dim, m.end_dim)
        if isinstance(m, nn.BatchNorm2d):
            return tnn.BatchNorm2d(
                m.num_features,
                eps=m.eps,
                momentum=m.momentum,
                affine=m.affine,
                track_running_stats=m.track_running_stats,
            )
        if isinstance(m, nn.Dropout):
            return tnn.Dropout(m.p)
        if isinstance(m, nn.AdaptiveAvgPool2d):
            return tnn.AdaptiveAvgPool2d(m.output_size)
        if isinstance(m, nn.Residual):
            short = None if m.shortcut is None else convert(m.shortcut, f"{where}.shortcut")
            return _torch_residual()(convert(m.body, f"{where}.body"), short)
        raise TypeError(f"model{where}: no torch equivalent for {type(m).__name__}")

    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a catlab.nn.Module, got {type(model).__name__}")
    tmodel = convert(model, "")
    floats = [p.data for p in model.parameters()] + [
        b.data for _, b in model.named_buffers() if np.issubdtype(b.data.dtype, np.floating)
    ]
    if floats and floats[0].dtype == np.float64:
        tmodel = tmodel.double()
    tmodel.load_state_dict(to_torch_state_dict(model))
    return tmodel.train(model.training)
