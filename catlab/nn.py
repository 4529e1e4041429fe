"""Layer objects: they own parameters and gradients and call :mod:`catlab.functional`.

Every layer has ``forward(x)``, which keeps what ``backward`` needs, and
``backward(dy)``, which returns ``dx`` and stores each parameter's gradient in
``param.grad``. Constructor arguments, defaults, initialisation and
``state_dict`` keys follow :mod:`torch.nn`, so weights move between a catlab
:class:`Sequential` and the equivalent ``torch.nn.Sequential`` unchanged.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Self, overload

import numpy as np
from numpy.typing import DTypeLike

from . import _validate as V
from . import functional as F
from ._typing import Array, ArrayLike, IntArray, Seed, Size, Size2
from .functional import Padding1, Padding2

__all__ = [
    "Parameter",
    "Module",
    "Conv1d",
    "Conv2d",
    "ReLU",
    "MaxPool2d",
    "AvgPool2d",
    "Linear",
    "Flatten",
    "Sequential",
    "Buffer",
    "BatchNorm2d",
    "Dropout",
    "AdaptiveAvgPool2d",
    "Residual",
]


def _as_rng(rng: Seed) -> np.random.Generator:
    """Turn ``None``, an int seed or a Generator into a Generator."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


def _as_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype not in V.FLOAT_DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype}")
    return dtype


class Parameter:
    """A learnable array and its gradient.

    Parameters
    ----------
    data : ndarray
        The values; float32 or float64.

    Attributes
    ----------
    data : ndarray
        The values, updated in place by optimizers.
    grad : ndarray or None
        The gradient from the last ``backward``, same shape as ``data``.

    Examples
    --------
    >>> import numpy as np
    >>> p = Parameter(np.zeros(3))
    >>> p.shape, p.grad is None
    ((3,), True)
    """

    def __init__(self, data: ArrayLike) -> None:
        self.data = np.ascontiguousarray(data)
        self.grad: Array | None = None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class Module:
    """Base class of every layer.

    Subclasses set parameters and sub-modules as attributes; they are found in
    the order they were assigned, which gives ``state_dict`` keys such as
    ``"0.weight"`` for the first layer of a :class:`Sequential`, as in PyTorch.

    Examples
    --------
    >>> m = Sequential(Linear(4, 3, rng=0), ReLU())
    >>> list(m.state_dict())
    ['0.weight', '0.bias']
    """

    training: bool = True

    def __call__(self, x: Array) -> Array:
        return self.forward(x)

    def forward(self, x: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    def backward(self, dy: Array) -> Array:  # pragma: no cover - abstract
        raise NotImplementedError

    # -- traversal -----------------------------------------------------------
    def _children(self):
        return [(k, v) for k, v in vars(self).items() if isinstance(v, Module)]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        """Yield ``(name, Parameter)`` pairs, with dotted names as in PyTorch."""
        for k, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + k, v
        for k, child in self._children():
            yield from child.named_parameters(prefix + k + ".")

    def parameters(self) -> list[Parameter]:
        """Return the list of :class:`Parameter` objects (weights before biases, layer by layer)."""
        return [p for _, p in self.named_parameters()]

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Buffer]]:
        """Yield ``(name, Buffer)`` pairs: state that is saved but not learned (running statistics)."""
        for k, v in vars(self).items():
            if isinstance(v, Buffer):
                yield prefix + k, v
        for k, child in self._children():
            yield from child.named_buffers(prefix + k + ".")

    def _named_state(self, prefix: str = ""):
        """Parameters then buffers of this module, then each child's: torch's ``state_dict`` order."""
        for k, v in vars(self).items():
            if isinstance(v, Parameter):
                yield prefix + k, v
        for k, v in vars(self).items():
            if isinstance(v, Buffer):
                yield prefix + k, v
        for k, child in self._children():
            yield from child._named_state(prefix + k + ".")

    def zero_grad(self) -> None:
        """Forget every parameter's gradient (set ``grad`` to ``None``)."""
        for p in self.parameters():
            p.grad = None

    # -- modes ---------------------------------------------------------------
    def train(self, mode: bool = True) -> Self:
        """Switch this module and its children to training mode (or evaluation with ``mode=False``)."""
        self.training = bool(mode)
        for _, child in self._children():
            child.train(mode)
        return self

    def eval(self) -> Self:
        """Switch to evaluation mode: ``forward`` keeps nothing for ``backward``."""
        return self.train(False)

    def astype(self, dtype: DTypeLike) -> Self:
        """Convert every parameter to ``dtype`` (float32 or float64) in place and return ``self``."""
        dtype = _as_dtype(dtype)
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        for _, b in self.named_buffers():
            if np.issubdtype(b.data.dtype, np.floating):
                b.data = b.data.astype(dtype)
        return self

    # -- state ---------------------------------------------------------------
    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Return an ordered mapping from parameter (and buffer) name to a copy of its array."""
        return OrderedDict((k, p.data.copy()) for k, p in self._named_state())

    def load_state_dict(self, state: Mapping[str, ArrayLike], strict: bool = True) -> None:
        """Copy arrays from ``state`` into the parameters.

        Parameters
        ----------
        state : mapping of str to array_like
            As returned by :meth:`state_dict`, or ``{k: v.numpy()}`` of a torch ``state_dict``.
        strict : bool, default True
            Require exactly the same keys.

        Raises
        ------
        KeyError
            If keys are missing or unexpected (with ``strict``).
        ValueError
            Naming the first key whose shape differs, with both shapes. Nothing
            is changed unless every array fits.
        """
        own = OrderedDict(self._named_state())
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"state_dict does not match the model: missing keys {missing}, unexpected keys {unexpected}")
        new = {}
        for k, p in own.items():
            if k not in state:
                continue
            arr = np.asarray(state[k])
            if arr.shape != p.data.shape:
                raise ValueError(
                    f"state_dict[{k!r}] has shape {V.shape_str(arr.shape)} but the model's parameter "
                    f"{k!r} has shape {V.shape_str(p.data.shape)}"
                )
            kind = np.floating if np.issubdtype(p.data.dtype, np.floating) else np.integer
            if not np.issubdtype(arr.dtype, kind):
                raise TypeError(
                    f"state_dict[{k!r}] must hold {'floats' if kind is np.floating else 'integers'}, "
                    f"got dtype {arr.dtype}"
                )
            new[k] = arr
        for k, arr in new.items():
            own[k].data = np.array(arr, dtype=own[k].data.dtype, copy=True, order="C")
            if isinstance(own[k], Parameter):
                own[k].grad = None

    def _keep(self, **arrays):
        """Remember forward inputs for backward (only in training mode)."""
        self._cache = arrays if self.training else None

    def _cached(self, name):
        cache = getattr(self, "_cache", None)
        if cache is None:
            raise RuntimeError(
                f"{type(self).__name__}.backward called without a forward pass in training mode; "
                "call model.train() and forward(x) first"
            )
        return cache[name]


class _ConvNd(Module):
    _nd = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Size2 | Size,
        stride: Size2 | Size = 1,
        padding: Padding2 | Padding1 = 0,
        dilation: Size2 | Size = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        dtype: DTypeLike = np.float32,
        rng: Seed = None,
    ) -> None:
        nd = self._nd
        self.in_channels = V.positive_int(in_channels, "in_channels")
        self.out_channels = V.positive_int(out_channels, "out_channels")
        self.groups = V.positive_int(groups, "groups")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"groups must divide in_channels={in_channels} and out_channels={out_channels}, got groups={groups}"
            )
        self.kernel_size = V.int_tuple(kernel_size, "kernel_size", nd, 1)
        self.stride, self.padding, self.dilation = F._conv_params(stride, padding, dilation, nd)
        bias = V.boolean(bias, "bias")
        dtype = _as_dtype(dtype)
        rng = _as_rng(rng)
        # PyTorch's default: kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        fan_in = (in_channels // groups) * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        self.weight = Parameter(rng.uniform(-bound, bound, shape).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_channels).astype(dtype)) if bias else None

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def forward(self, x: Array) -> Array:
        self._keep(x=x)
        fwd = F.conv1d if self._nd == 1 else F.conv2d
        b = None if self.bias is None else self.bias.data
        return fwd(x, self.weight.data, b, **self._args())

    def backward(self, dy: Array) -> Array:
        bwd = F.conv1d_backward if self._nd == 1 else F.conv2d_backward
        dx, dweight, db = bwd(dy, self._cached("x"), self.weight.data, **self._args())
        self.weight.grad = dweight
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding})"
        )


class Conv2d(_ConvNd):
    """2-D convolution layer, as :class:`torch.nn.Conv2d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int or (int, int)
    stride, dilation : int or (int, int), default 1
    padding : int, (int, int), 'valid' or 'same', default 0
    groups : int, default 1
    bias : bool, default True
    dtype : float32 or float64, default float32
        The parameters' dtype; inputs must match it.
    rng : None, int or numpy.random.Generator
        Source of the initial weights, drawn from U(-1/sqrt(fan_in), 1/sqrt(fan_in))
        as in PyTorch (fan_in = in_channels / groups * kH * kW). An int seeds it.

    Attributes
    ----------
    weight : Parameter of shape (out_channels, in_channels / groups, kH, kW)
    bias : Parameter of shape (out_channels,) or None

    Raises
    ------
    TypeError, ValueError
        For non-integer or non-positive sizes, or ``groups`` not dividing the channels.

    Examples
    --------
    >>> import numpy as np
    >>> conv = Conv2d(3, 6, 5, rng=0)
    >>> y = conv(np.zeros((1, 3, 32, 32), dtype=np.float32))
    >>> y.shape, conv.weight.shape
    ((1, 6, 28, 28), (6, 3, 5, 5))
    >>> conv.backward(np.ones_like(y)).shape
    (1, 3, 32, 32)
    """

    _nd = 2


class Conv1d(_ConvNd):
    """1-D convolution layer, as :class:`torch.nn.Conv1d`.

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_size : int
    stride, dilation : int, default 1
    padding : int, 'valid' or 'same', default 0
    groups : int, default 1
    bias : bool, default True
    dtype : float32 or float64, default float32
    rng : None, int or numpy.random.Generator

    Attributes
    ----------
    weight : Parameter of shape (out_channels, in_channels / groups, kL)
    bias : Parameter of shape (out_channels,) or None

    Raises
    ------
    TypeError, ValueError
        As :class:`Conv2d`.

    Examples
    --------
    >>> import numpy as np
    >>> Conv1d(2, 4, 3, padding='same', rng=0)(np.zeros((5, 2, 10), dtype=np.float32)).shape
    (5, 4, 10)
    """

    _nd = 1


class ReLU(Module):
    """Rectified linear unit layer, ``max(x, 0)``.

    Examples
    --------
    >>> import numpy as np
    >>> r = ReLU()
    >>> r(np.array([-1., 2.])), r.backward(np.array([1., 1.]))
    (array([0., 2.]), array([0., 1.]))
    """

    def forward(self, x: Array) -> Array:
        self._keep(x=x)
        return F.relu(x)

    def backward(self, dy: Array) -> Array:
        return F.relu_backward(dy, self._cached("x"))

    def __repr__(self) -> str:
        return "ReLU()"


class MaxPool2d(Module):
    """2-D max pooling layer, as :class:`torch.nn.MaxPool2d`.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int), default 0
    dilation : int or (int, int), default 1
    return_indices : bool, default False
        Make ``forward`` return ``(y, indices)``, as PyTorch does.
    ceil_mode : bool, default False
        See :func:`catlab.functional.max_pool2d`.

    Raises
    ------
    TypeError, ValueError
        For non-positive sizes, padding above half the kernel, or non-bool flags.

    Examples
    --------
    >>> import numpy as np
    >>> MaxPool2d(2)(np.zeros((1, 6, 28, 28), dtype=np.float32)).shape
    (1, 6, 14, 14)
    >>> MaxPool2d(3, stride=2, ceil_mode=True)(np.zeros((1, 1, 6, 6))).shape
    (1, 1, 3, 3)

    In training mode the forward pass records each window's argmax, as
    PyTorch does, so that :meth:`backward` scatters the gradient to it without
    searching the windows again; in evaluation mode nothing is stored.
    """

    def __init__(
        self,
        kernel_size: Size2,
        stride: Size2 | None = None,
        padding: Size2 = 0,
        dilation: Size2 = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode) = F._pool_params(
            kernel_size, stride, padding, dilation, ceil_mode
        )
        self.return_indices = V.boolean(return_indices, "return_indices")

    def _args(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, ceil_mode=self.ceil_mode)

    def forward(self, x: Array) -> Array | tuple[Array, IntArray]:  # type: ignore[override]
        if not (self.training or self.return_indices):
            self._keep(x=x)
            return F.max_pool2d(x, self.kernel_size, **self._args())
        y, indices = F.max_pool2d(x, self.kernel_size, **self._args(), return_indices=True)
        self._keep(x=x, indices=indices)
        return (y, indices) if self.return_indices else y

    def backward(self, dy: Array) -> Array:
        x = self._cached("x")
        return F.max_pool2d_backward(dy, x, self.kernel_size, **self._args(), indices=self._cache["indices"])

    def __repr__(self) -> str:
        return (
            f"MaxPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode})"
        )


class AvgPool2d(Module):
    """2-D average pooling layer, as :class:`torch.nn.AvgPool2d`.

    Parameters
    ----------
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int), default 0
    ceil_mode : bool, default False
    count_include_pad : bool, default True
    divisor_override : int, optional
        See :func:`catlab.functional.avg_pool2d`.

    Raises
    ------
    TypeError, ValueError
        As :class:`MaxPool2d`, or for a ``divisor_override`` that is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> AvgPool2d(2)(np.ones((1, 1, 4, 4))).tolist()
    [[[[1.0, 1.0], [1.0, 1.0]]]]
    """

    def __init__(
        self,
        kernel_size: Size2,
        stride: Size2 | None = None,
        padding: Size2 = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        self.kernel_size, self.stride, self.padding, _, self.ceil_mode = F._pool_params(
            kernel_size, stride, padding, 1, ceil_mode
        )
        self.count_include_pad, divisor = F._avg_args(count_include_pad, divisor_override)
        self.divisor_override = divisor or None

    def _args(self):
        return dict(
            stride=self.stride,
            padding=self.padding,
            ceil_mode=self.ceil_mode,
            count_include_pad=self.count_include_pad,
            divisor_override=self.divisor_override,
        )

    def forward(self, x: Array) -> Array:
        self._keep(x=x)
        return F.avg_pool2d(x, self.kernel_size, **self._args())

    def backward(self, dy: Array) -> Array:
        return F.avg_pool2d_backward(dy, self._cached("x"), self.kernel_size, **self._args())

    def __repr__(self) -> str:
        return (
            f"AvgPool2d(kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad})"
        )


class Linear(Module):
    """Fully connected layer, ``y = x @ weight.T + bias``, as :class:`torch.nn.Linear`.

    Parameters
    ----------
    in_features, out_features : int
    bias : bool, default True
    dtype : float32 or float64, default float32
    rng : None, int or numpy.random.Generator
        Weights and bias from U(-1/sqrt(in_features), 1/sqrt(in_features)), as in PyTorch.

    Attributes
    ----------
    weight : Parameter of shape (out_features, in_features)
    bias : Parameter of shape (out_features,) or None

    Raises
    ------
    TypeError, ValueError
        For non-integer or non-positive sizes.

    Examples
    --------
    >>> import numpy as np
    >>> fc = Linear(400, 120, rng=0)
    >>> fc(np.zeros((8, 400), dtype=np.float32)).shape
    (8, 120)
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, *, dtype: DTypeLike = np.float32, rng: Seed = None
    ) -> None:
        self.in_features = V.positive_int(in_features, "in_features")
        self.out_features = V.positive_int(out_features, "out_features")
        bias = V.boolean(bias, "bias")
        dtype = _as_dtype(dtype)
        rng = _as_rng(rng)
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)).astype(dtype))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features).astype(dtype)) if bias else None

    def forward(self, x: Array) -> Array:
        self._keep(x=x)
        return F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)

    def backward(self, dy: Array) -> Array:
        dx, dweight, db = F.linear_backward(dy, self._cached("x"), self.weight.data)
        self.weight.grad = dweight
        if self.bias is not None:
            self.bias.grad = db
        return dx

    def __repr__(self) -> str:
        return f"Linear(in_features={self.in_features}, out_features={self.out_features})"


class Flatten(Module):
    """Flatten dimensions ``start_dim`` to ``end_dim`` into one, as :class:`torch.nn.Flatten`.

    Parameters
    ----------
    start_dim : int, default 1
    end_dim : int, default -1

    Examples
    --------
    >>> import numpy as np
    >>> f = Flatten()
    >>> y = f(np.zeros((2, 16, 5, 5)))
    >>> y.shape, f.backward(y).shape
    ((2, 400), (2, 16, 5, 5))
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim = V.int_in_range(start_dim, "start_dim", -64, 63)
        self.end_dim = V.int_in_range(end_dim, "end_dim", -64, 63)
        self._shape: tuple[int, ...] | None = None

    def forward(self, x: Array) -> Array:
        x = np.asarray(x)
        nd = x.ndim
        for name, d in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -nd <= d < nd:
                raise ValueError(
                    f"{name} must lie in [{-nd}, {nd}) for a {nd}-D input of shape "
                    f"{V.shape_str(x.shape)}, got {d}; Flatten needs an input with that axis"
                )
        s = self.start_dim % nd
        e = self.end_dim % nd
        if s > e:
            raise ValueError(
                f"start_dim must not come after end_dim, got start_dim={self.start_dim} and "
                f"end_dim={self.end_dim} for a {nd}-D input"
            )
        self._shape = x.shape
        return x.reshape(x.shape[:s] + (math.prod(x.shape[s : e + 1]),) + x.shape[e + 1 :])

    def backward(self, dy: Array) -> Array:
        if self._shape is None:
            raise RuntimeError("Flatten.backward called before forward; call forward(x) first")
        dy = np.asarray(dy)
        if dy.size != math.prod(self._shape):
            raise ValueError(
                f"dy must have as many elements as the forward output ({math.prod(self._shape)}, "
                f"from the input of shape {V.shape_str(self._shape)}), got shape {V.shape_str(dy.shape)}"
            )
        return dy.reshape(self._shape)

    def __repr__(self) -> str:
        return f"Flatten(start_dim={self.start_dim}, end_dim={self.end_dim})"


class Sequential(Module):
    """A chain of layers, applied in order; ``backward`` runs them in reverse.

    Parameters
    ----------
    *layers : Module

    Raises
    ------
    TypeError
        If an argument is not a :class:`Module`.

    Examples
    --------
    A LeNet-5-style network on 28x28 digits:

    >>> import numpy as np
    >>> net = Sequential(
    ...     Conv2d(1, 6, 5, padding=2, rng=0), ReLU(), MaxPool2d(2),
    ...     Conv2d(6, 16, 5, rng=1), ReLU(), MaxPool2d(2), Flatten(),
    ...     Linear(400, 120, rng=2), ReLU(), Linear(120, 84, rng=3), ReLU(), Linear(84, 10, rng=4))
    >>> net(np.zeros((2, 1, 28, 28), dtype=np.float32)).shape
    (2, 10)
    >>> [k for k in net.state_dict()][:3]
    ['0.weight', '0.bias', '3.weight']
    """

    def __init__(self, *layers: Module) -> None:
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"layer {i} must be a catlab.nn.Module, got {type(layer).__name__}")
            setattr(self, str(i), layer)
        self._n = len(layers)

    @property
    def layers(self) -> list[Module]:
        return [getattr(self, str(i)) for i in range(self._n)]

    @overload
    def __getitem__(self, i: int) -> Module: ...
    @overload
    def __getitem__(self, i: slice) -> list[Module]: ...
    def __getitem__(self, i: int | slice) -> Module | list[Module]:
        return self.layers[i]

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def forward(self, x: Array) -> Array:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, dy: Array) -> Array:
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        return dy

    def __repr__(self) -> str:
        inner = "\n".join(f"  ({i}): {layer!r}" for i, layer in enumerate(self.layers))
        return f"Sequential(\n{inner}\n)"


class Buffer:
    """State a layer keeps and saves but does not learn, such as a running mean.

    Buffers appear in ``state_dict`` (after the module's parameters, as in
    PyTorch) but not in :meth:`Module.parameters`, so optimizers never touch them.

    Parameters
    ----------
    data : ndarray
        The values (float, or int64 for counters such as ``num_batches_tracked``).

    Examples
    --------
    >>> import numpy as np
    >>> Buffer(np.zeros(3)).shape
    (3,)
    """

    def __init__(self, data: ArrayLike) -> None:
        self.data = np.asarray(data, order="C")  # keeps 0-d arrays 0-d

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __repr__(self) -> str:
        return f"Buffer(shape={self.data.shape}, dtype={self.data.dtype})"


def _number(value, name, lo, hi=None):
    """A float in [lo, hi] (hi None: no upper bound), else a ValueError naming the argument."""
    if (
        isinstance(value, (bool, np.bool_))
        or not isinstance(value, (int, float, np.integer, np.floating))
        or not (value >= lo and (hi is None or value <= hi))
    ):
        want = f"in [{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be a number {want}, got {value!r}")
    return float(value)


class BatchNorm2d(Module):
    """Batch normalization over (N, H, W) per channel, as :class:`torch.nn.BatchNorm2d`.

    In training, each channel is normalised with the batch's mean and biased
    variance, and the running statistics are updated with the batch mean and
    the *unbiased* variance: ``running = (1 - momentum) * running + momentum * batch``
    (with ``momentum=None``, a cumulative average over the ``num_batches_tracked``
    batches seen). In evaluation the running statistics are used, so the output
    of a sample no longer depends on the rest of its batch.

    Parameters
    ----------
    num_features : int
        The number of channels C.
    eps : float, default 1e-5
    momentum : float in [0, 1] or None, default 0.1
    affine : bool, default True
        Learn a per-channel scale ``weight`` (initially 1) and shift ``bias`` (initially 0).
    track_running_stats : bool, default True
        Keep running statistics; without them, batch statistics are used in evaluation too.
    dtype : float32 or float64, default float32

    Attributes
    ----------
    weight, bias : Parameter of shape (C,) or None
    running_mean, running_var : Buffer of shape (C,) or None
        Initially 0 and 1. Buffers: saved in ``state_dict``, never seen by optimizers.
    num_batches_tracked : Buffer of shape () and dtype int64, or None

    Raises
    ------
    TypeError, ValueError
        For a non-positive ``num_features``, a negative ``eps`` or ``momentum``
        outside [0, 1]; in ``forward``, for an input that is not (N, C, H, W).

    Examples
    --------
    >>> import numpy as np
    >>> bn = BatchNorm2d(3)
    >>> list(bn.state_dict())
    ['weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked']
    >>> x = np.random.default_rng(0).normal(5.0, 2.0, (8, 3, 4, 4)).astype(np.float32)
    >>> y = bn(x)
    >>> bool(abs(y.mean()) < 1e-5), int(bn.num_batches_tracked.data)
    (True, 1)
    >>> bn.backward(np.ones_like(y)).shape
    (8, 3, 4, 4)
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        dtype: DTypeLike = np.float32,
    ) -> None:
        self.num_features = V.positive_int(num_features, "num_features")
        self.eps = _number(eps, "eps", 0)
        self.momentum = None if momentum is None else _number(momentum, "momentum", 0, 1)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        dtype = _as_dtype(dtype)
        C = self.num_features
        self.weight = Parameter(np.ones(C, dtype=dtype)) if affine else None
        self.bias = Parameter(np.zeros(C, dtype=dtype)) if affine else None
        if track_running_stats:
            self.running_mean: Buffer | None = Buffer(np.zeros(C, dtype=dtype))
            self.running_var: Buffer | None = Buffer(np.ones(C, dtype=dtype))
            self.num_batches_tracked: Buffer | None = Buffer(np.array(0, dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _check(self, x):
        x = np.asarray(x)
        if x.ndim != 4 or x.shape[1] != self.num_features:
            raise ValueError(
                f"x: expected shape (N, {self.num_features}, H, W) for {self!r}, got "
                f"{x.ndim}-D array of shape {V.shape_str(x.shape)}"
            )

    def forward(self, x: Array) -> Array:
        self._check(x)
        w = None if self.weight is None else self.weight.data
        b = None if self.bias is None else self.bias.data
        use_batch = self.training or self.running_mean is None
        if not use_batch:
            self._keep(x=x, use_batch=False)
            return F.batch_norm(x, self.running_mean.data, self.running_var.data, w, b, False, 0.0, self.eps)
        track = self.training and self.running_mean is not None
        if track:
            n = int(self.num_batches_tracked.data) + 1
            factor = 1.0 / n if self.momentum is None else self.momentum
            y, rm, rv = F.batch_norm(x, self.running_mean.data, self.running_var.data, w, b, True, factor, self.eps)
            self.running_mean.data, self.running_var.data = rm, rv
            self.num_batches_tracked.data = np.array(n, dtype=np.int64)
        else:
            y, _, _ = F.batch_norm(x, None, None, w, b, True, 0.0, self.eps)
        self._keep(x=x, use_batch=True)
        return y

    def backward(self, dy: Array) -> Array:
        x = self._cached("x")
        w = None if self.weight is None else self.weight.data
        if self._cache["use_batch"]:
            dx, dw, db = F.batch_norm_backward(dy, x, None, None, w, True, self.eps)
        else:  # training mode cannot get here (it always uses batch statistics); kept for completeness
            dx, dw, db = F.batch_norm_backward(dy, x, self.running_mean.data, self.running_var.data, w, False, self.eps)
        if self.weight is not None:
            self.weight.grad = dw
            self.bias.grad = db
        return dx

    def __repr__(self) -> str:
        return (
            f"BatchNorm2d({self.num_features}, eps={self.eps:g}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats})"
        )


class Dropout(Module):
    """Inverted dropout, as :class:`torch.nn.Dropout`: identity in evaluation.

    In training, each element is zeroed with probability ``p`` and the rest are
    scaled by ``1 / (1 - p)``; a new mask is drawn at every forward pass from
    the layer's own generator, so a seed makes a whole training run repeatable.

    Parameters
    ----------
    p : float in [0, 1], default 0.5
    rng : None, int or numpy.random.Generator
        Source of the masks; an int seeds it.

    Raises
    ------
    ValueError, TypeError
        For ``p`` outside [0, 1] or a bad ``rng``.

    Examples
    --------
    >>> import numpy as np
    >>> d = Dropout(0.5, rng=0)
    >>> y = d(np.ones((2, 4)))
    >>> sorted(set(y.ravel().tolist()))
    [0.0, 2.0]
    >>> d.eval()(np.ones(3))
    array([1., 1., 1.])
    """

    def __init__(self, p: float = 0.5, *, rng: Seed = None) -> None:
        self.p = _number(p, "p", 0, 1)
        self._rng = _as_rng(rng)

    def forward(self, x: Array) -> Array:
        if not self.training:
            self._keep()
            return F.dropout(x, self.p, training=False)
        y, mask = F.dropout(x, self.p, training=True, rng=self._rng, return_mask=True)
        self._keep(mask=mask)
        return y

    def backward(self, dy: Array) -> Array:
        return F.dropout_backward(dy, self._cached("mask"), self.p)

    def __repr__(self) -> str:
        return f"Dropout(p={self.p})"


class AdaptiveAvgPool2d(Module):
    """Adaptive 2-D average pooling to a fixed output size, as :class:`torch.nn.AdaptiveAvgPool2d`.

    ``AdaptiveAvgPool2d(1)`` is global average pooling, which Network in
    Network and ResNet use instead of large fully connected layers.

    Parameters
    ----------
    output_size : int or (int or None, int or None)
        (P, Q); None keeps the input's size along that axis.

    Raises
    ------
    TypeError, ValueError
        For a non-positive size.

    Examples
    --------
    >>> import numpy as np
    >>> gap = AdaptiveAvgPool2d(1)
    >>> gap(np.ones((2, 8, 7, 7), dtype=np.float32)).shape
    (2, 8, 1, 1)
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        F._adaptive_size(output_size, 1, 1)  # validates
        self.output_size = output_size

    def forward(self, x: Array) -> Array:
        self._keep(x=x)
        return F.adaptive_avg_pool2d(x, self.output_size)

    def backward(self, dy: Array) -> Array:
        return F.adaptive_avg_pool2d_backward(dy, self._cached("x"), self.output_size)

    def __repr__(self) -> str:
        return f"AdaptiveAvgPool2d(output_size={self.output_size})"


class Residual(Module):
    """A residual block: ``forward(x) = body(x) + shortcut(x)``, as in ResNet (He et al., 2016).

    The backward pass splits the gradient: ``dy`` flows back through ``body``
    and through ``shortcut`` (unchanged when the shortcut is the identity), and
    the two input gradients are added. Put a :class:`ReLU` after the block as
    ResNet does.

    Parameters
    ----------
    body : Module
        The residual branch, e.g. conv-BN-ReLU-conv-BN.
    shortcut : Module, optional
        Default: the identity. When ``body`` changes the shape (stride or
        channels), a projection such as a 1x1 :class:`Conv2d` with that stride.

    Attributes
    ----------
    body, shortcut : Module (shortcut may be None)
        ``state_dict`` keys are ``"body.<...>"`` and ``"shortcut.<...>"``.

    Raises
    ------
    TypeError
        If ``body`` or ``shortcut`` is not a Module.
    ValueError
        In ``forward``, if the two branches give different shapes.

    Examples
    --------
    >>> import numpy as np
    >>> block = Residual(Sequential(Conv2d(4, 4, 3, padding=1, rng=0), ReLU(), Conv2d(4, 4, 3, padding=1, rng=1)))
    >>> x = np.zeros((2, 4, 6, 6), dtype=np.float32)
    >>> block(x).shape, block.backward(np.ones((2, 4, 6, 6), dtype=np.float32)).shape
    ((2, 4, 6, 6), (2, 4, 6, 6))
    """

    def __init__(self, body: Module, shortcut: Module | None = None) -> None:
        if not isinstance(body, Module):
            raise TypeError(f"body must be a catlab.nn.Module, got {type(body).__name__}")
        if shortcut is not None and not isinstance(shortcut, Module):
            raise TypeError(f"shortcut must be a catlab.nn.Module or None, got {type(shortcut).__name__}")
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: Array) -> Array:
        yb = self.body.forward(x)
        ys = np.asarray(x) if self.shortcut is None else self.shortcut.forward(x)
        if yb.shape != ys.shape:
            raise ValueError(
                f"Residual: body output has shape {V.shape_str(yb.shape)} but the shortcut gives "
                f"{V.shape_str(ys.shape)}; give a shortcut that matches, e.g. a 1x1 Conv2d with the body's "
                "stride and output channels"
            )
        return yb + ys

    def backward(self, dy: Array) -> Array:
        dx = self.body.backward(dy)
        return dx + (dy if self.shortcut is None else self.shortcut.backward(dy))

    def __repr__(self) -> str:
        body = "\n".join("  " + line for line in repr(self.body).splitlines())
        short = "identity" if self.shortcut is None else repr(self.shortcut)
        return f"Residual(\n  body={body.strip()},\n  shortcut={short}\n)"
