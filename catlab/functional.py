"""The functional API: validate, allocate, call a kernel.

Semantics follow :mod:`torch.nn.functional`: NCHW (NCL for 1-D) layouts,
weights of shape ``(C_out, C_in / groups, kH, kW)``, and ``stride``,
``padding``, ``dilation`` and ``groups`` with PyTorch's meanings. Arrays may
be float32 or float64; every output has the input's dtype, and every array
argument must share that dtype. Each ``*_backward`` function takes the
gradient of the loss with respect to the forward output (``dy``) and the
forward inputs, and returns the gradients with respect to those inputs.

No function modifies its inputs.
"""

from __future__ import annotations

from typing import Literal, overload

import numpy as np

from . import _conv_paths as _paths
from . import _threads
from . import _validate as V
from ._kernels import activation as _act
from ._kernels import linear as _linear
from ._kernels import norm as _norm
from ._kernels import parallel as _par
from ._kernels import pool as _pool
from ._typing import Array, ArrayLike, IntArray, NDArray, Seed, Size, Size2

#: ``padding`` of a convolution: numbers, or ``'valid'`` (none) / ``'same'`` (keep the size).
Padding2 = Size2 | Literal["valid", "same"]
Padding1 = Size | Literal["valid", "same"]

__all__ = [
    "conv_output_size",
    "conv1d",
    "conv1d_backward",
    "conv2d",
    "conv2d_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "avg_pool2d",
    "avg_pool2d_backward",
    "relu",
    "relu_backward",
    "linear",
    "linear_backward",
    "softmax",
    "softmax_cross_entropy",
    "batch_norm",
    "batch_norm_backward",
    "dropout",
    "dropout_backward",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
]


# ----------------------------------------------------------------------------
# Output sizes
# ----------------------------------------------------------------------------


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0, dilation: int = 1) -> int:
    """Output length of a convolution or pooling along one axis.

    ``floor((size + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1``,
    which for ``dilation=1`` is the familiar ``(W - F + 2P) / S + 1`` rounded down.

    Parameters
    ----------
    size, kernel_size, stride, padding, dilation : int
        Input length W, kernel length F, stride S, padding P per side and dilation.

    Returns
    -------
    int
        The output length.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If ``size``, ``kernel_size``, ``stride`` or ``dilation`` is below 1,
        ``padding`` is negative, or the dilated kernel is larger than the
        padded input.

    Examples
    --------
    >>> conv_output_size(32, 5)
    28
    >>> conv_output_size(7, 3, stride=2)
    3
    """
    size = V.positive_int(size, "size")
    kernel_size = V.positive_int(kernel_size, "kernel_size")
    stride = V.positive_int(stride, "stride")
    padding = V.nonnegative_int(padding, "padding")
    dilation = V.positive_int(dilation, "dilation")
    span = dilation * (kernel_size - 1) + 1
    if span > size + 2 * padding:
        raise ValueError(
            f"kernel_size must fit in the padded input: the kernel spans {span} but the padded input is only "
            f"{size + 2 * padding} long (size {size} + 2 * padding {padding}); "
            "use a smaller kernel or more padding"
        )
    return (size + 2 * padding - span) // stride + 1


# ----------------------------------------------------------------------------
# Convolution
# ----------------------------------------------------------------------------


def _conv_params(stride, padding, dilation, nd):
    """Validate a convolution's stride, padding and dilation for ``nd`` spatial axes.

    Returns ``stride`` and ``dilation`` as ``nd``-tuples, and ``padding`` as an
    ``nd``-tuple or the string ``'valid'`` or ``'same'``. Shared with the
    layers of :mod:`catlab.nn`, which check their arguments when built.
    """
    stride = V.int_tuple(stride, "stride", nd, 1)
    dilation = V.int_tuple(dilation, "dilation", nd, 1)
    if isinstance(padding, str):
        if padding not in ("valid", "same"):
            raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
        if padding == "same" and any(s != 1 for s in stride):
            raise ValueError(
                "padding='same' is not supported for strided convolutions (stride > 1); give the padding as numbers"
            )
    else:
        padding = V.int_tuple(padding, "padding", nd, 0)
    return stride, padding, dilation


def _conv_setup(x, weight, bias, stride, padding, dilation, groups, nd):
    """Validate conv arguments; return ``x4, w4, bias, groups, geometry``.

    ``nd`` is 1 or 2; 1-D inputs are viewed as images of height 1, so
    ``x4`` is (N, C, H, W), ``w4`` is (K, C / groups, R, S) and the
    :class:`~catlab._conv_paths.Geometry` is that of the 2-D view.
    """
    layout = "(N, C, L)" if nd == 1 else "(N, C, H, W)"
    wlayout = "(C_out, C_in / groups, kL)" if nd == 1 else "(C_out, C_in / groups, kH, kW)"
    x = V.float_array(x, "x", nd + 2, layout)
    weight = V.float_array(weight, "weight", nd + 2, wlayout)
    V.same_dtype(x, "x", weight=weight)
    if bias is not None:
        bias = V.float_array(bias, "bias", 1, "(C_out,)")
        V.same_dtype(x, "x", bias=bias)
    if not (type(groups) is int and 1 <= groups <= V.MAX_INT):
        groups = V.positive_int(groups, "groups")
    C = x.shape[1]
    K = weight.shape[0]
    if C % groups:
        raise ValueError(f"groups must divide the input channels C={C}, got groups={groups}")
    if K % groups:
        raise ValueError(f"groups must divide the output channels C_out={K}, got groups={groups}")
    if weight.shape[1] * groups != C:
        raise ValueError(
            f"weight must have shape (C_out, {C // groups}, ...) for x with {C} channels and "
            f"groups={groups}, got {V.shape_str(weight.shape)}; weight.shape[1] must equal C_in / groups"
        )
    if bias is not None and bias.shape[0] != K:
        raise ValueError(f"bias must have shape ({K},) to match weight, got {V.shape_str(bias.shape)}")
    key = None
    if _plain(stride) and _plain(padding) and _plain(dilation):  # the geometry of an earlier call, if any
        key = (x.shape, weight.shape, stride, padding, dilation, groups, nd)
        geo = _geometry_cache.get(key)
        if geo is not None:
            return (*_as_2d(x, weight, nd), bias, groups, geo)
    geo = _conv_geometry(x, weight, stride, padding, dilation, nd)
    if key is not None:
        if len(_geometry_cache) >= 256:
            _geometry_cache.clear()
        _geometry_cache[key] = geo
    return (*_as_2d(x, weight, nd), bias, groups, geo)


#: (x.shape, weight.shape, stride, padding, dilation, groups, nd) -> Geometry, for arguments that passed
#: the checks before (plain ints, tuples of ints and strings only: ``True == 1`` must not hit ``1``'s entry).
_geometry_cache: dict = {}


def _plain(v) -> bool:
    t = type(v)
    return t is int or t is str or (t is tuple and all(type(e) is int for e in v))


def _as_2d(x, weight, nd):
    """(x4, w4): 1-D inputs as images of height 1."""
    if nd == 1:
        return x.reshape(x.shape[0], x.shape[1], 1, x.shape[2]), weight.reshape(*weight.shape[:2], 1, weight.shape[2])
    return x, weight


def _conv_geometry(x, weight, stride, padding, dilation, nd):
    """Check stride, padding and dilation against the shapes; the :class:`~catlab._conv_paths.Geometry`."""
    C = x.shape[1]
    K = weight.shape[0]
    stride, padding, dilation = _conv_params(stride, padding, dilation, nd)
    ksize = weight.shape[2:]
    insize = x.shape[2:]
    if padding == "valid":
        pad_before = pad_total = (0,) * nd
    elif padding == "same":
        pad_total = tuple(d * (k - 1) for d, k in zip(dilation, ksize))
        pad_before = tuple(t // 2 for t in pad_total)
    else:
        pad_before = padding
        pad_total = tuple(2 * p for p in pad_before)

    out = []
    padded = 1
    for axis in range(nd):
        n, k, s, pt, d = insize[axis], ksize[axis], stride[axis], pad_total[axis], dilation[axis]
        span = d * (k - 1) + 1
        if span > n + pt:
            dim = "L" if nd == 1 else "HW"[axis]
            raise ValueError(
                f"weight must fit in the padded input, got kernel size {k} (dilated span {span}) for "
                f"{dim}={n} + padding {pt} = {n + pt}; use a smaller kernel, more padding or a larger input"
            )
        out.append((n + pt - span) // s + 1)
        padded *= n + pt
    if x.shape[0] * C * padded > 2**30 or x.shape[0] * K * out[0] * out[-1] > 2**30:  # else surely small enough
        V.check_size((x.shape[0], K) + tuple(out), "padding" if any(pad_before) else "x", "an output")
        V.check_size(
            tuple(x.shape[:2]) + tuple(n + pt for n, pt in zip(insize, pad_total)), "padding", "a padded input"
        )

    if nd == 1:
        stride, pad_before, dilation, out = (1,) + stride, (0,) + pad_before, (1,) + dilation, [1] + out
    return _paths.Geometry(stride[0], stride[1], pad_before[0], pad_before[1], dilation[0], dilation[1], out[0], out[1])


def _conv_forward(x, weight, bias, stride, padding, dilation, groups, nd):
    x4, w4, b, groups, geo = _conv_setup(x, weight, bias, stride, padding, dilation, groups, nd)
    N, K = x4.shape[0], w4.shape[0]
    if b is None:
        b = np.zeros(K, dtype=x4.dtype)
    y = _paths.forward(x4, w4, b, groups, geo)  # (N, K, P, Q)
    return y.reshape((N, K, geo.Q) if nd == 1 else (N, K, geo.P, geo.Q))


def _conv_backward(dy, x, weight, stride, padding, dilation, groups, nd):
    x4, w4, _, groups, geo = _conv_setup(x, weight, None, stride, padding, dilation, groups, nd)
    N, K = x4.shape[0], w4.shape[0]
    expected = (N, K, geo.Q) if nd == 1 else (N, K, geo.P, geo.Q)
    dy = V.float_array(dy, "dy", nd + 2)
    V.same_dtype(x4, "x", dy=dy)
    V.same_shape(dy, "dy", expected, "the forward output's shape")
    dx, dweight, db = _paths.backward(dy.reshape(N, K, geo.P, geo.Q), x4, w4, groups, geo)
    return dx.reshape(np.shape(x)), dweight.reshape(np.shape(weight)), db


def conv2d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Size2 = 1,
    padding: Padding2 = 0,
    dilation: Size2 = 1,
    groups: int = 1,
) -> Array:
    """2-D convolution (cross-correlation, as in every deep-learning library).

    ``y[n, k, p, q] = bias[k] + sum over c, r, s of
    weight[k, c, r, s] * x_pad[n, g*Cg + c, p*sh + r*dil_h, q*sw + s*dil_w]``
    where ``g = k // (C_out / groups)`` and ``x_pad`` is ``x`` zero-padded.

    Parameters
    ----------
    x : ndarray of shape (N, C_in, H, W)
        Input, float32 or float64.
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
        Filters, same dtype as ``x``.
    bias : ndarray of shape (C_out,), optional
        One bias per filter.
    stride : int or (int, int), default 1
    padding : int, (int, int), 'valid' or 'same', default 0
        Zeros added on each side. ``'same'`` keeps H and W (stride 1 only);
        with an even kernel the extra row/column goes at the bottom/right, as in PyTorch.
    dilation : int or (int, int), default 1
        Spacing between kernel taps.
    groups : int, default 1
        Split the channels into ``groups`` independent convolutions.

    Returns
    -------
    y : ndarray of shape (N, C_out, P, Q)
        ``P = floor((H + 2*pad - dilation*(kH - 1) - 1) / stride) + 1``, likewise Q.

    Raises
    ------
    TypeError
        If an array is not float32/float64, dtypes are mixed, or an int argument is not an int.
    ValueError
        If a shape does not match (dimensions, channels, groups, bias), stride or
        dilation is not positive, padding is negative, or the kernel is larger
        than the padded input.

    Notes
    -----
    Infinities and NaNs propagate as IEEE arithmetic says, identically in
    every kernel path and dtype: the zero padding takes part in the products,
    so an infinite weight next to it gives ``0 * inf = NaN``. This is what
    PyTorch computes in float64; its float32 CPU convolution (oneDNN) leaves
    the padding out of the products, so there an inf or NaN next to the
    padding can spread less.

    Examples
    --------
    One 5x5x3 filter over a 32x32x3 image gives one 28x28 map:

    >>> import numpy as np
    >>> x = np.ones((1, 3, 32, 32), dtype=np.float32)
    >>> w = np.ones((1, 3, 5, 5), dtype=np.float32)
    >>> y = conv2d(x, w)
    >>> y.shape, float(y[0, 0, 0, 0])
    ((1, 1, 28, 28), 75.0)
    """
    return _conv_forward(x, weight, bias, stride, padding, dilation, groups, 2)


def conv2d_backward(
    dy: Array, x: Array, weight: Array, stride: Size2 = 1, padding: Padding2 = 0, dilation: Size2 = 1, groups: int = 1
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`conv2d` with respect to its input, weight and bias.

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, P, Q)
        Gradient of the loss with respect to the output of ``conv2d``.
    x : ndarray of shape (N, C_in, H, W)
        The forward input.
    weight : ndarray of shape (C_out, C_in / groups, kH, kW)
        The forward weights.
    stride, padding, dilation, groups
        As given to :func:`conv2d`.

    Returns
    -------
    dx : ndarray of shape (N, C_in, H, W)
        A "full" convolution of ``dy`` with the flipped filters.
    dweight : ndarray of shape (C_out, C_in / groups, kH, kW)
        The correlation of the input with ``dy``, summed over the batch.
    dbias : ndarray of shape (C_out,)
        ``dy`` summed over the batch and both spatial axes.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`, and if ``dy`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((1, 1, 3, 3)); w = np.ones((1, 1, 2, 2))
    >>> dx, dweight, db = conv2d_backward(np.ones((1, 1, 2, 2)), x, w)
    >>> dx[0, 0]
    array([[1., 2., 1.],
           [2., 4., 2.],
           [1., 2., 1.]])
    >>> dweight[0, 0], db
    (array([[4., 4.],
           [4., 4.]]), array([4.]))
    """
    return _conv_backward(dy, x, weight, stride, padding, dilation, groups, 2)


def conv1d(
    x: Array,
    weight: Array,
    bias: Array | None = None,
    stride: Size = 1,
    padding: Padding1 = 0,
    dilation: Size = 1,
    groups: int = 1,
) -> Array:
    """1-D convolution (cross-correlation), as :func:`torch.nn.functional.conv1d`.

    ``y[n, k, t] = bias[k] + sum over c, s of weight[k, c, s] * x_pad[n, g*Cg + c, t*stride + s*dilation]``

    Parameters
    ----------
    x : ndarray of shape (N, C_in, L)
    weight : ndarray of shape (C_out, C_in / groups, kL)
    bias : ndarray of shape (C_out,), optional
    stride : int or (int,), default 1
    padding : int, (int,), 'valid' or 'same', default 0
    dilation : int or (int,), default 1
    groups : int, default 1

    Returns
    -------
    y : ndarray of shape (N, C_out, L_out)
        ``L_out = floor((L + 2*pad - dilation*(kL - 1) - 1) / stride) + 1``.

    Raises
    ------
    TypeError, ValueError
        As :func:`conv2d`.

    Examples
    --------
    A three-point moving average:

    >>> import numpy as np
    >>> x = np.array([[[0., 3., 6., 3., 0.]]])
    >>> conv1d(x, np.full((1, 1, 3), 1 / 3))
    array([[[3., 4., 3.]]])
    """
    return _conv_forward(x, weight, bias, stride, padding, dilation, groups, 1)


def conv1d_backward(
    dy: Array, x: Array, weight: Array, stride: Size = 1, padding: Padding1 = 0, dilation: Size = 1, groups: int = 1
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`conv1d`: ``(dx, dweight, dbias)``.

    Parameters
    ----------
    dy : ndarray of shape (N, C_out, L_out)
    x : ndarray of shape (N, C_in, L)
    weight : ndarray of shape (C_out, C_in / groups, kL)
    stride, padding, dilation, groups
        As given to :func:`conv1d`.

    Returns
    -------
    dx : ndarray of shape (N, C_in, L)
    dweight : ndarray of shape (C_out, C_in / groups, kL)
    dbias : ndarray of shape (C_out,)

    Raises
    ------
    TypeError, ValueError
        As :func:`conv1d`, and if ``dy`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> dx, dweight, db = conv1d_backward(np.ones((1, 1, 2)), np.arange(3.).reshape(1, 1, 3), np.ones((1, 1, 2)))
    >>> dx, dweight, db
    (array([[[1., 2., 1.]]]), array([[[1., 3.]]]), array([2.]))
    """
    return _conv_backward(dy, x, weight, stride, padding, dilation, groups, 1)


# ----------------------------------------------------------------------------
# Pooling
# ----------------------------------------------------------------------------


def _planes(items, work_per_item, kernel, parallel, before, after):
    """Call ``kernel(*before, i0, i1, *after)`` over contiguous ranges covering ``range(items)``, on up to all threads.

    ``parallel`` is the kernel's wrapper in :mod:`catlab._kernels.parallel` (see :func:`catlab._threads.run_kernel`).
    """
    if items * work_per_item < _threads.MIN_WORK:  # one chunk in any case: call the kernel straight away
        kernel(*before, 0, items, *after)
        return
    n = _threads.chunks_for(items, work_per_item, _threads.num_threads())
    _threads.run_kernel(kernel, parallel, items, n, before, after)


def _pool_params(kernel_size, stride, padding, dilation=1, ceil_mode=False):
    """Validate pooling's kernel_size, stride (None: the kernel size), padding, dilation and ceil_mode.

    Returns four pairs and a bool. Shared with the layers of :mod:`catlab.nn`,
    which check their arguments when built.
    """
    if (  # the common case first: plain ints in range (what the checks below would return)
        type(kernel_size) is int
        and (stride is None or type(stride) is int)
        and type(padding) is int
        and type(dilation) is int
        and dilation == 1
        and (ceil_mode is False or ceil_mode is True)
        and 1 <= kernel_size <= V.MAX_INT
        and 0 <= padding <= V.MAX_INT
        and (stride is None or 1 <= stride <= V.MAX_INT)
        and 2 * padding <= kernel_size
    ):
        s = kernel_size if stride is None else stride
        return (kernel_size, kernel_size), (s, s), (padding, padding), (1, 1), ceil_mode
    kh, kw = V.int_tuple(kernel_size, "kernel_size", 2, 1)
    sh, sw = V.int_tuple(kernel_size if stride is None else stride, "stride", 2, 1)
    ph, pw = V.int_tuple(padding, "padding", 2, 0)
    dil = V.int_tuple(dilation, "dilation", 2, 1)
    ceil_mode = V.boolean(ceil_mode, "ceil_mode")
    if 2 * ph > kh or 2 * pw > kw:
        raise ValueError(
            f"padding must be at most half the kernel size ({kh}, {kw}), got ({ph}, {pw}); "
            "use a larger window or less padding"
        )
    return (kh, kw), (sh, sw), (ph, pw), dil, ceil_mode


def _pool_out(n, k, s, p, d, ceil_mode):
    """PyTorch's pooling output length: floor (or ceil) division, and with ceil_mode
    the last window must start inside the input or its left padding."""
    out = (n + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _pool_setup(x, kernel_size, stride, padding, dilation=1, ceil_mode=False):
    x = V.float_array(x, "x", 4, "(N, C, H, W)")
    (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w), ceil_mode = _pool_params(
        kernel_size, stride, padding, dilation, ceil_mode
    )
    N, C, H, W = x.shape
    span_h, span_w = dil_h * (kh - 1) + 1, dil_w * (kw - 1) + 1
    if span_h > H + 2 * ph or span_w > W + 2 * pw:
        raise ValueError(
            f"kernel_size must fit in the padded input ({H + 2 * ph}, {W + 2 * pw}), got ({kh}, {kw})"
            + (f" spanning ({span_h}, {span_w}) with dilation ({dil_h}, {dil_w})" if (dil_h, dil_w) != (1, 1) else "")
            + "; use a smaller window or a larger input"
        )
    if not ceil_mode and dil_h == 1 and dil_w == 1:  # the common case: plain floor division (_pool_out)
        return x, (kh, kw), (sh, sw), (ph, pw), (1, 1), ((H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1)
    P = _pool_out(H, kh, sh, ph, dil_h, ceil_mode)
    Q = _pool_out(W, kw, sw, pw, dil_w, ceil_mode)
    for axis, n, k, st, pd, d, out in ("H", H, kh, sh, ph, dil_h, P), ("W", W, kw, sw, pw, dil_w, Q):
        if d > 1:  # a dilated window can fall entirely into the padding; PyTorch then returns -inf
            starts = np.arange(out) * st - pd
            r_lo = np.where(starts < 0, (-starts + d - 1) // d, 0)
            if np.any(r_lo >= np.minimum(k, (n - starts + d - 1) // d)):
                raise ValueError(
                    f"dilation must leave an input cell in every window, got dilation {d} with kernel_size {k} "
                    f"and padding {pd} on an input of {axis}={n}; use less padding or a smaller dilation"
                )
    return x, (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w), (P, Q)


def _pool_dy(dy, x, P, Q):
    N, C = x.shape[:2]
    dy = V.float_array(dy, "dy", 4, "(N, C, P, Q)")
    V.same_dtype(x, "x", dy=dy)
    V.same_shape(dy, "dy", (N, C, P, Q), "the forward output's shape")
    return dy


def _pool_indices(indices, shape, plane):
    """Check max-pooling ``indices``: int64, the forward output's ``shape``, values in [0, plane)."""
    if not isinstance(indices, np.ndarray):
        raise TypeError(
            f"indices must be a NumPy array of int64, got {type(indices).__name__}; "
            "pass the indices max_pool2d returned"
        )
    if indices.dtype != np.int64:
        raise TypeError(f"indices must have dtype int64 (as returned by max_pool2d), got {indices.dtype}")
    V.same_shape(indices, "indices", shape, "the forward output's shape")
    indices = np.ascontiguousarray(indices)
    if indices.size and not _pool.indices_in_range(indices, plane):
        raise ValueError(
            f"indices must lie in [0, H*W) = [0, {plane}), got the range "
            f"[{indices.min()}, {indices.max()}]; pass the indices max_pool2d returned for this x"
        )
    return indices


@overload
def max_pool2d(
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    dilation: Size2 = 1,
    ceil_mode: bool = False,
    return_indices: Literal[False] = False,
) -> Array: ...
@overload
def max_pool2d(
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    dilation: Size2 = 1,
    ceil_mode: bool = False,
    *,
    return_indices: Literal[True],
) -> tuple[Array, IntArray]: ...
@overload
def max_pool2d(
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    dilation: Size2 = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Array | tuple[Array, IntArray]: ...
def max_pool2d(
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    dilation: Size2 = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> Array | tuple[Array, IntArray]:
    """2-D max pooling, as :func:`torch.nn.functional.max_pool2d`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size`` (non-overlapping windows).
    padding : int or (int, int), default 0
        Implicit -inf padding on each side; at most half the kernel size.
    dilation : int or (int, int), default 1
        Spacing between the cells of a window.
    ceil_mode : bool, default False
        Round the output size up instead of down, so that a last, partial
        window covers the rest of the input; as in PyTorch, a window that
        would start in the right padding is dropped.
    return_indices : bool, default False
        Also return where each maximum came from, as PyTorch's
        ``return_indices=True``; pass them to :func:`max_pool2d_backward` to
        skip searching the windows again.

    Returns
    -------
    y : ndarray of shape (N, C, P, Q)
        ``P = floor((H + 2*padding - dilation*(kernel_size - 1) - 1) / stride) + 1``
        (``ceil`` with ``ceil_mode``), likewise Q.
    indices : ndarray of int64, shape (N, C, P, Q)
        Only with ``return_indices=True``: the flat index ``h*W + w`` of each
        window's maximum in its (H, W) input plane. The first maximum in
        row-major order wins; in a window holding NaNs, the last NaN wins.

    Raises
    ------
    TypeError, ValueError
        For a non-float or wrongly shaped ``x``, a non-positive kernel size,
        stride or dilation, padding larger than half the kernel, a window
        larger than the padded input, a dilated window lying entirely in the
        padding (where PyTorch returns -inf and an index outside the input),
        or a non-bool ``ceil_mode`` or ``return_indices``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.arange(16.).reshape(1, 1, 4, 4)
    >>> max_pool2d(x, 2)
    array([[[[ 5.,  7.],
             [13., 15.]]]])
    >>> y, idx = max_pool2d(x, 2, return_indices=True)
    >>> idx
    array([[[[ 5,  7],
             [13, 15]]]])
    >>> max_pool2d(x, 3, stride=2, ceil_mode=True)[0, 0]
    array([[10., 11.],
           [14., 15.]])
    """
    return_indices = V.boolean(return_indices, "return_indices")
    x, (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w), (P, Q) = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    N, C, H, W = x.shape
    y = np.empty((N * C, P, Q), dtype=x.dtype)  # (N*C, P, Q)
    x3 = x.reshape(N * C, H, W)
    if not return_indices:
        _planes(
            N * C,
            kh * kw * P * Q,
            _pool.max_pool2d_forward,
            _par.max_pool2d_forward,
            (x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w),
            (y,),
        )
        return y.reshape(N, C, P, Q)
    ind = np.empty((N * C, P, Q), dtype=np.int64)  # (N*C, P, Q), flat indices into each H*W plane
    _planes(
        N * C,
        3 * kh * kw * P * Q,  # tracking the argmax costs about three times the maximum alone (measured)
        _pool.max_pool2d_indices_forward,
        _par.max_pool2d_indices_forward,
        (x3, kh, kw, sh, sw, ph, pw, dil_h, dil_w),
        (y, ind),
    )
    return y.reshape(N, C, P, Q), ind.reshape(N, C, P, Q)


def max_pool2d_backward(
    dy: Array,
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    dilation: Size2 = 1,
    ceil_mode: bool = False,
    indices: IntArray | None = None,
) -> Array:
    """Gradient of :func:`max_pool2d`: each window's gradient goes to its maximum.

    Where a window has several equal maxima, the first in row-major order wins,
    and in a window holding NaNs the last NaN wins, as in PyTorch. Overlapping
    windows add their gradients.

    Parameters
    ----------
    dy : ndarray of shape (N, C, P, Q)
    x : ndarray of shape (N, C, H, W)
        The forward input.
    kernel_size, stride, padding, dilation, ceil_mode
        As given to :func:`max_pool2d`.
    indices : ndarray of int64, shape (N, C, P, Q), optional
        The indices returned by ``max_pool2d(..., return_indices=True)`` for
        this ``x``. When given, ``dy`` is scattered to them directly and ``x``
        is only used for its shape and dtype; otherwise every window's maximum
        is searched again.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool2d`, if ``dy`` does not have the forward output's
        shape, or if ``indices`` is not an int64 array of that shape with
        values in ``[0, H*W)``.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([[[[1., 2.], [4., 3.]]]])
    >>> max_pool2d_backward(np.array([[[[10.]]]]), x, 2)
    array([[[[ 0.,  0.],
             [10.,  0.]]]])
    >>> y, idx = max_pool2d(x, 2, return_indices=True)
    >>> max_pool2d_backward(np.array([[[[10.]]]]), x, 2, indices=idx)
    array([[[[ 0.,  0.],
             [10.,  0.]]]])
    """
    x, (kh, kw), (sh, sw), (ph, pw), (dil_h, dil_w), (P, Q) = _pool_setup(
        x, kernel_size, stride, padding, dilation, ceil_mode
    )
    dy = _pool_dy(dy, x, P, Q)
    N, C, H, W = x.shape
    if indices is not None:
        ind = _pool_indices(indices, (N, C, P, Q), H * W)
        dx = np.empty((N * C, H * W), dtype=x.dtype)  # (N*C, H*W), every plane overwritten
        dy2, ind2 = dy.reshape(N * C, P * Q), ind.reshape(N * C, P * Q)
        _planes(
            N * C,
            P * Q + H * W,
            _pool.max_pool2d_indices_backward,
            _par.max_pool2d_indices_backward,
            (dy2, ind2),
            (dx,),
        )
        return dx.reshape(N, C, H, W)
    dx = np.empty((N * C, H, W), dtype=x.dtype)  # (N*C, H, W), every plane overwritten
    x3, dy3 = x.reshape(N * C, H, W), dy.reshape(N * C, P, Q)
    _planes(
        N * C,
        kh * kw * P * Q + H * W,
        _pool.max_pool2d_backward,
        _par.max_pool2d_backward,
        (x3, dy3, kh, kw, sh, sw, ph, pw, dil_h, dil_w),
        (dx,),
    )
    return dx.reshape(N, C, H, W)


def _avg_args(count_include_pad, divisor_override):
    include_pad = V.boolean(count_include_pad, "count_include_pad")
    if divisor_override is None:
        return include_pad, 0
    return include_pad, V.int_in_range(
        divisor_override, "divisor_override", 1, fix="pass None to divide by the window size"
    )


def avg_pool2d(
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Array:
    """2-D average pooling, as :func:`torch.nn.functional.avg_pool2d`.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int), default 0
        Zero padding on each side; at most half the kernel size.
    ceil_mode : bool, default False
        Round the output size up, as in :func:`max_pool2d`.
    count_include_pad : bool, default True
        Divide by the window's size including the padding (but never the part
        of a ``ceil_mode`` window beyond the padding); with False, by the
        number of the window's cells inside the input.
    divisor_override : int, optional
        Divide every window's sum by this instead.

    Returns
    -------
    y : ndarray of shape (N, C, P, Q)

    Raises
    ------
    TypeError, ValueError
        As :func:`max_pool2d`, or for a non-bool ``count_include_pad`` or a
        ``divisor_override`` that is not a positive integer.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d(np.arange(16.).reshape(1, 1, 4, 4), 2)
    array([[[[ 2.5,  4.5],
             [10.5, 12.5]]]])
    >>> avg_pool2d(np.ones((1, 1, 2, 2)), 2, stride=1, padding=1, count_include_pad=False)[0, 0]
    array([[1., 1., 1.],
           [1., 1., 1.],
           [1., 1., 1.]])
    """
    include_pad, divisor = _avg_args(count_include_pad, divisor_override)
    x, (kh, kw), (sh, sw), (ph, pw), _, (P, Q) = _pool_setup(x, kernel_size, stride, padding, 1, ceil_mode)
    N, C, H, W = x.shape
    y = np.empty((N * C, P, Q), dtype=x.dtype)  # (N*C, P, Q)
    x3 = x.reshape(N * C, H, W)
    _planes(
        N * C,
        kh * kw * P * Q,
        _pool.avg_pool2d_forward,
        _par.avg_pool2d_forward,
        (x3, kh, kw, sh, sw, ph, pw, include_pad, divisor),
        (y,),
    )
    return y.reshape(N, C, P, Q)


def avg_pool2d_backward(
    dy: Array,
    x: Array,
    kernel_size: Size2,
    stride: Size2 | None = None,
    padding: Size2 = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Array:
    """Gradient of :func:`avg_pool2d`: each window spreads its gradient over its cells, divided as in the forward pass.

    Parameters
    ----------
    dy : ndarray of shape (N, C, P, Q)
    x : ndarray of shape (N, C, H, W)
        The forward input (only its shape and dtype are used).
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As given to :func:`avg_pool2d`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    TypeError, ValueError
        As :func:`avg_pool2d`, and if ``dy`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> avg_pool2d_backward(np.array([[[[4.]]]]), np.zeros((1, 1, 2, 2)), 2)
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    include_pad, divisor = _avg_args(count_include_pad, divisor_override)
    x, (kh, kw), (sh, sw), (ph, pw), _, (P, Q) = _pool_setup(x, kernel_size, stride, padding, 1, ceil_mode)
    dy = _pool_dy(dy, x, P, Q)
    N, C, H, W = x.shape
    dx = np.empty((N * C, H, W), dtype=x.dtype)  # (N*C, H, W), every plane overwritten
    dy3 = dy.reshape(N * C, P, Q)
    _planes(
        N * C,
        kh * kw * P * Q + H * W,
        _pool.avg_pool2d_backward,
        _par.avg_pool2d_backward,
        (dy3, kh, kw, sh, sw, ph, pw, include_pad, divisor),
        (dx,),
    )
    return dx.reshape(N, C, H, W)


# ----------------------------------------------------------------------------
# ReLU
# ----------------------------------------------------------------------------


def relu(x: Array) -> Array:
    """Rectified linear unit, ``max(x, 0)`` element-wise.

    Parameters
    ----------
    x : ndarray of any shape
        float32 or float64.

    Returns
    -------
    y : ndarray of the same shape and dtype

    Raises
    ------
    TypeError
        If ``x`` is not a float32/float64 array.

    Examples
    --------
    >>> import numpy as np
    >>> relu(np.array([-2., 0., 3.]))
    array([0., 0., 3.])
    """
    x = V.float_array(x, "x")
    n = x.size
    yf = np.empty(n, dtype=x.dtype)  # (x.size,)
    if 2 * n < _threads.MIN_WORK:  # (as _planes, without its call: a small call is mostly fixed costs)
        _act.relu_forward(x.reshape(-1), 0, n, yf)
    else:
        _planes(n, 2, _act.relu_forward, _par.relu_forward, (x.reshape(-1),), (yf,))
    return yf.reshape(x.shape)


def relu_backward(dy: Array, x: Array) -> Array:
    """Gradient of :func:`relu`: 0 where ``x <= 0``, else ``dy``.

    As in PyTorch, the gradient at ``x = 0`` is 0, and where ``x`` is NaN the
    gradient ``dy`` passes through unchanged (NaN is not ``<= 0``).

    Parameters
    ----------
    dy : ndarray, same shape as ``x``
    x : ndarray
        The forward input.

    Returns
    -------
    dx : ndarray of the same shape as ``x``

    Raises
    ------
    TypeError, ValueError
        If the arrays are not float32/float64 of one dtype, or shapes differ.

    Examples
    --------
    >>> import numpy as np
    >>> relu_backward(np.array([5., 5., 5.]), np.array([-1., 0., 2.]))
    array([0., 0., 5.])
    """
    x = V.float_array(x, "x")
    dy = V.float_array(dy, "dy")
    V.same_dtype(x, "x", dy=dy)
    V.same_shape(dy, "dy", x.shape, "the shape of x")
    n = x.size
    dxf = np.empty(n, dtype=x.dtype)  # (x.size,)
    if 2 * n < _threads.MIN_WORK:  # (as _planes, without its call)
        _act.relu_backward(dy.reshape(-1), x.reshape(-1), 0, n, dxf)
    else:
        _planes(n, 2, _act.relu_backward, _par.relu_backward, (dy.reshape(-1), x.reshape(-1)), (dxf,))
    return dxf.reshape(x.shape)


# ----------------------------------------------------------------------------
# Linear
# ----------------------------------------------------------------------------


def _linear_setup(x, weight, bias=None):
    x = V.float_array(x, "x", 2, "(N, in_features)")
    weight = V.float_array(weight, "weight", 2, "(out_features, in_features)")
    V.same_dtype(x, "x", weight=weight)
    if weight.shape[1] != x.shape[1]:
        raise ValueError(
            f"weight must have shape (out_features, {x.shape[1]}) to match x's {x.shape[1]} features, "
            f"got {V.shape_str(weight.shape)}; flatten x first if it is an image batch"
        )
    if bias is not None:
        bias = V.float_array(bias, "bias", 1, "(out_features,)")
        V.same_dtype(x, "x", bias=bias)
        if bias.shape[0] != weight.shape[0]:
            raise ValueError(
                f"bias must have shape ({weight.shape[0]},) to match weight, got {V.shape_str(bias.shape)}"
            )
    return x, weight, bias


def linear(x: Array, weight: Array, bias: Array | None = None) -> Array:
    """Fully connected layer, ``y = x @ weight.T + bias``.

    Parameters
    ----------
    x : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)
    bias : ndarray of shape (out_features,), optional

    Returns
    -------
    y : ndarray of shape (N, out_features)

    Raises
    ------
    TypeError, ValueError
        For non-float or mixed dtypes, or shapes that do not match.

    Examples
    --------
    >>> import numpy as np
    >>> linear(np.array([[1., 2.]]), np.array([[1., 1.], [0., 1.]]), np.array([0., 10.]))
    array([[ 3., 12.]])
    """
    x, weight, bias = _linear_setup(x, weight, bias)
    N = x.shape[0]
    if _linear_tiled(x, weight):
        return _linear_tiled_forward(x, weight, bias)
    if N == 1 and x.size * weight.shape[0] > _SMALL_PRODUCT:  # a matrix-vector product: split the weight's rows
        y = np.empty((1, weight.shape[0]), dtype=x.dtype)  # (1, out)
        _matmul(_linear.matvec_rows, _par.matvec_rows, weight.shape[0], x.shape[1], (weight, x[0]), (y[0],))
    else:
        y = _product_nt(x, weight)  # (N, out)
    if bias is not None:
        y += bias
    return y


#: The register tiles (:mod:`catlab._kernels.linear`) take float32 layers with at least this many samples
#: and at most ``LINEAR_TILED_MAX_WEIGHTS`` weights; others go to BLAS. Measured on AMD Zen 4 (2 threads,
#: interleaved, forward / backward against NumPy's BLAS as catlab called it): 64 x 400 -> 120 0.55-0.72 /
#: 0.63, 64 x 120 -> 84 0.52-0.60 / 0.62-0.70, 64 x 784 -> 256 0.71 / 0.73, 64 x 1024 -> 512 0.92 (rows
#: padded) / 0.89, 16 x 400 -> 120 0.93 / 0.76; at 2-8 samples 1.3-1.7x (a tile of 16 rows computes 16)
#: and for 4096 -> 1024 1.6-1.8x (16 MiB of weights: BLAS's blocking for the caches wins).
LINEAR_TILED_MIN_ROWS = 16
LINEAR_TILED_MAX_WEIGHTS = 1 << 19

#: The tiles are split among catlab's threads in chunks of at least this many multiply-adds. Measured on
#: AMD Zen 4, one chunk against two (interleaved): 64 x 120 -> 84 (6.5e5) forward 29.5 / 25.3 us, backward
#: 51.7 / 38.8; 32 x 120 -> 84 (3.2e5) 15.9 / 15.2, 27.8 / 22.5; 64 x 84 -> 10 (5.4e4) 13.8 / 15.0, 21.1 /
#: 24.8.
LINEAR_TILED_CHUNK_WORK = 1.5e5


def _linear_tiled(x, weight):
    """Whether :func:`linear` and :func:`linear_backward` take the register tiles (see above)."""
    return (
        _paths.TILED
        and x.dtype == np.float32
        and x.shape[0] >= LINEAR_TILED_MIN_ROWS
        and weight.size <= LINEAR_TILED_MAX_WEIGHTS
    )


def _unaliased_rows(a):
    """``a`` (C-contiguous), or a copy whose rows are 16 numbers longer when they are a multiple of 2 KiB long.

    The tiles read 16 rows at a time; rows 4 KiB apart all fall in the same set of the first-level cache
    (8 ways), so each read missed it: 64 x 1024 -> 128 forward ran at 41 GFLOP/s on one thread, 76 with
    the rows padded (Zen 4).
    """
    a = np.ascontiguousarray(a)
    if a.shape[1] % 512:
        return a
    out = np.empty((a.shape[0], a.shape[1] + 16), dtype=a.dtype)  # (the padding is never read)
    out[:, : a.shape[1]] = a
    return out


def _linear_tiled_forward(x, weight, bias):
    """``x @ weight.T + bias`` by register tiles: items are blocks of 16 outputs, cut by samples if too few."""
    N = x.shape[0]
    M = weight.shape[0]
    PT = _paths.filter_tile_positions(16)  # rows per tile: 16 with AVX-512, else 6
    blocks = -(-M // 16)
    parts = min(-(-N // PT), -(-2 * _threads.num_threads() // blocks))  # (a thread per block and part)
    work = 16 * N * x.shape[1] / parts  # multiply-adds per item
    n = _threads.chunks_for(blocks * parts, work, _threads.num_threads(), LINEAR_TILED_CHUNK_WORK)
    y = np.empty((N, M), dtype=x.dtype)  # (N, out)
    b = np.zeros(M, dtype=x.dtype) if bias is None else np.ascontiguousarray(bias)
    before = (_unaliased_rows(x), np.ascontiguousarray(weight), b, PT, parts)
    _threads.run_kernel(_linear.linear_tiled_forward, _par.linear_tiled_forward, blocks * parts, n, before, (y,))
    return y


def _linear_tiled_backward(dy, x, weight):
    """(dx, dweight) by register tiles: items are blocks of 16 columns of dx, then of dweight."""
    N, K = x.shape
    blocks = 2 * -(-K // 16)
    n = _threads.chunks_for(blocks, 16 * N * weight.shape[0], _threads.num_threads(), LINEAR_TILED_CHUNK_WORK)
    dx = np.empty(x.shape, dtype=x.dtype)  # (N, in)
    dweight = np.empty(weight.shape, dtype=x.dtype)  # (out, in)
    PT = _paths.filter_tile_positions(16)  # rows per tile
    before = (_unaliased_rows(dy), np.ascontiguousarray(x), np.ascontiguousarray(weight), PT)
    _threads.run_kernel(_linear.linear_tiled_backward, _par.linear_tiled_backward, blocks, n, before, (dx, dweight))
    return dx, dweight


#: Products of at most this many multiply-adds go to NumPy's matmul, which runs them on the calling
#: thread (OpenBLAS wakes its own threads only for larger ones); larger ones to catlab's kernels.
_SMALL_PRODUCT = 65536

#: A matrix product is split among catlab's threads only in chunks of at least this many multiply-adds;
#: below, NumPy's BLAS on the calling thread. Measured on AMD Zen 4 (2 threads), LeNet's first linear
#: layer at batch 64, backward (dy @ weight and dy.T @ x, 3.1e6 each): 136 us in two chunks of the
#: kernels' BLAS against 163 us in one (torch 132). It was 2e6 after a measurement on AMD Zen 3 (busy),
#: where 64 x 400 x 120 took 79 us on one thread and 106 us in two chunks by rows.
_PRODUCT_CHUNK_WORK = 1e6


#: The forward product ``x @ weight.T`` is split among catlab's threads from chunks of this many
#: multiply-adds, by the weight's rows (:func:`_product_nt`). Measured on AMD Zen 4 (2 threads), 64 x 400
#: x 120: 69-77 us in two chunks by the weight's rows, 87-117 us for NumPy's product on one thread (its
#: OpenBLAS ran at 61 GFLOP/s there), 99 us in two chunks by x's rows; 32 x 400 x 120: 37 us against
#: 70 us on one thread, 16 x 400 x 120: 21.5 against 52; 64 x 120 x 84 (6.5e5): 26 against 27.
_FORWARD_CHUNK_WORK = 3e5


def _product_nt(x, weight):
    """``x @ weight.T`` for ``x`` (N, in) and ``weight`` (out, in): split by the weight's rows beyond a chunk.

    Each chunk is a kernel whose ``np.dot`` computes rows of ``y.T = weight @ x.T``, the output's columns,
    so each thread packs only its share of the weight; split by the rows of x, every thread packed the
    whole weight (4096 -> 1024 at batch 64 on Zen 4, 2 threads: 8.5 ms, against 4.2 ms by the weight's
    rows and 8.5 ms for NumPy on one thread). One chunk's work or less, or at least as many samples as
    outputs: :func:`_product` (256 x 400 -> 120: 215 us by x's rows, 279 by the weight's).
    """
    N, K = x.shape
    M = weight.shape[0]  # out_features
    if N >= M or N * K * M <= _SMALL_PRODUCT:  # (as many samples as outputs: by x's rows)
        return _product(x, weight.T)
    n = _threads.chunks_for(M, K * N, _threads.num_threads(), _FORWARD_CHUNK_WORK)
    if n == 1:
        return _product(x, weight.T)
    yt = np.empty((M, N), dtype=x.dtype)  # (out, N): y.T
    before = (np.ascontiguousarray(weight), np.ascontiguousarray(x).T)  # (out, in) rows, (in, N) F-contiguous
    _threads.run_kernel(_linear.matmul_rows, _par.matmul_rows, M, n, before, (yt,), blas=True)
    return np.ascontiguousarray(yt.T)  # (N, out)


def _matmul(kernel, parallel, items, work_per_item, before, after):
    """Run a matrix-product kernel of :mod:`catlab._kernels.linear` over ``items`` rows on catlab's threads."""
    n = _threads.chunks_for(items, work_per_item, _threads.num_threads(), _PRODUCT_CHUNK_WORK)
    _threads.run_kernel(kernel, parallel, items, n, before, after, blas=True)


def _product(a, b):
    """``a @ b`` for 2-D ``a`` and ``b``: NumPy's BLAS on this thread up to one chunk's work, else catlab's threads.

    Beyond one chunk's work the rows are cut into chunks, each a kernel whose ``np.dot`` calls
    SciPy's BLAS on one thread. NumPy's BLAS never runs on more than one thread: its threads
    busy-wait after each product and slow whatever runs next (a LeNet training step took 2.4
    times as long).
    """
    M, K = a.shape
    Ncol = b.shape[1]
    if M * K * Ncol <= _SMALL_PRODUCT:
        return a @ b
    n = _threads.chunks_for(M, K * Ncol, _threads.num_threads(), _PRODUCT_CHUNK_WORK)
    if n == 1 and _threads.numpy_blas_limitable():
        # one chunk: NumPy's BLAS, faster than the kernel's np.dot (SciPy's OpenBLAS): LeNet's linear
        # layers at batch 64 (400 -> 120, 120 -> 84) took 0.82-0.86 of the time on an AVX2 CPU
        with _threads.numpy_blas_single_threaded():
            return a @ b
    out = np.empty((M, Ncol), dtype=a.dtype)
    a = np.ascontiguousarray(a)  # (the kernel's rows)
    _threads.run_kernel(_linear.matmul_rows, _par.matmul_rows, M, n, (a, b), (out,), blas=True)
    return out


def linear_backward(dy: Array, x: Array, weight: Array) -> tuple[Array, Array, Array]:
    """Gradients of :func:`linear`: ``(dx, dweight, dbias)``.

    Parameters
    ----------
    dy : ndarray of shape (N, out_features)
    x : ndarray of shape (N, in_features)
    weight : ndarray of shape (out_features, in_features)

    Returns
    -------
    dx : ndarray of shape (N, in_features)
        ``dy @ weight``
    dweight : ndarray of shape (out_features, in_features)
        ``dy.T @ x``
    dbias : ndarray of shape (out_features,)
        ``dy`` summed over the batch.

    Raises
    ------
    TypeError, ValueError
        As :func:`linear`, and if ``dy`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> dx, dweight, db = linear_backward(np.array([[1., 0.]]), np.array([[3., 4.]]), np.eye(2))
    >>> dx, dweight, db
    (array([[1., 0.]]), array([[3., 4.],
           [0., 0.]]), array([1., 0.]))
    """
    x, weight, _ = _linear_setup(x, weight)
    dy = V.float_array(dy, "dy", 2, "(N, out_features)")
    V.same_dtype(x, "x", dy=dy)
    V.same_shape(dy, "dy", (x.shape[0], weight.shape[0]), "the forward output's shape")
    if _linear_tiled(x, weight):
        dx, dweight = _linear_tiled_backward(dy, x, weight)
        return dx, dweight, dy.sum(axis=0)
    dx = _product(dy, weight)  # first, while the weight may still be in cache: writing dweight evicts it
    if x.shape[0] == 1:  # an outer product: much faster than a matrix product with inner size 1
        dweight = np.empty(weight.shape, dtype=x.dtype)  # (out_features, in_features)
        a, b = dy[0], x[0]
        _planes(
            weight.shape[0],
            weight.shape[1],
            _linear.linear_outer_backward,
            _par.linear_outer_backward,
            (a, b),
            (dweight,),
        )
    else:
        dweight = _product(dy.T, x)  # (out, N) @ (N, in)
    return dx, dweight, dy.sum(axis=0)


# ----------------------------------------------------------------------------
# Softmax and the loss
# ----------------------------------------------------------------------------


def softmax(logits: Array) -> Array:
    """Row-wise softmax, computed stably by subtracting each row's maximum.

    Parameters
    ----------
    logits : ndarray of shape (N, num_classes)

    Returns
    -------
    p : ndarray of shape (N, num_classes)
        Each row sums to 1.

    Raises
    ------
    TypeError, ValueError
        For non-float input or a wrong number of dimensions.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(np.array([[0., 0.], [1000., 0.]]))
    array([[0.5, 0.5],
           [1. , 0. ]])
    """
    logits = V.float_array(logits, "logits", 2, "(N, num_classes)")
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(logits: Array, labels: ArrayLike) -> tuple[float, Array]:
    """Mean softmax cross-entropy loss and its gradient.

    ``loss = mean over n of (logsumexp(logits[n]) - logits[n, labels[n]])``,
    as :func:`torch.nn.functional.cross_entropy` with its default mean reduction.

    Parameters
    ----------
    logits : ndarray of shape (N, num_classes)
        Unnormalised scores, float32 or float64; stable for large values.
    labels : ndarray of shape (N,)
        Integer class indices in ``[0, num_classes)``.

    Returns
    -------
    loss : float
        The mean loss.
    dlogits : ndarray of shape (N, num_classes)
        ``(softmax(logits) - onehot(labels)) / N``, the gradient of ``loss``.

    Raises
    ------
    TypeError
        If ``logits`` is not float or ``labels`` is not integer.
    ValueError
        If shapes do not match, a label is out of range, or ``logits`` holds NaN or infinity.

    Examples
    --------
    >>> import numpy as np
    >>> loss, d = softmax_cross_entropy(np.zeros((2, 4)), np.array([0, 3]))
    >>> round(loss, 6) == round(float(np.log(4)), 6)
    True
    >>> d[0]
    array([-0.375,  0.125,  0.125,  0.125])
    """
    logits = V.float_array(logits, "logits", 2, "(N, num_classes)")
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    N, num_classes = logits.shape
    if labels.shape != (N,):
        raise ValueError(f"labels must have shape ({N},) to match logits, got {V.shape_str(labels.shape)}")
    if labels.min() < 0 or labels.max() >= num_classes:
        bad = labels[(labels < 0) | (labels >= num_classes)][0]
        raise ValueError(f"labels must lie in [0, {num_classes}) for {num_classes} classes, got {bad}")
    V.check_finite(logits, "logits")
    z = logits - logits.max(axis=1, keepdims=True)  # (N, num_classes), max is 0
    e = np.exp(z)
    s = e.sum(axis=1, keepdims=True)  # (N, 1)
    rows = np.arange(N)
    loss = float(np.mean(np.log(s[:, 0]) - z[rows, labels]))
    dlogits = e / s
    dlogits[rows, labels] -= 1.0
    dlogits /= N
    return loss, dlogits


# ----------------------------------------------------------------------------
# Batch normalization
# ----------------------------------------------------------------------------


def _channel_vector(v, name, C, dtype):
    """Check an optional per-channel vector of shape (C,) and x's dtype."""
    if v is None:
        return None
    v = V.float_array(v, name, 1, "(C,)")
    if v.shape[0] != C:
        raise ValueError(f"{name}: expected shape ({C},) for x with {C} channels, got {V.shape_str(v.shape)}")
    if v.dtype != dtype:
        raise TypeError(f"{name} has dtype {v.dtype} but x has dtype {dtype}; convert with {name}.astype(x.dtype)")
    return v


#: The batch sums that evaluation does not compute (a float64 vector of length 0).
_NO_VALUES = np.empty(0)


def _or_absent(v, dtype):
    """``v``, or for None a vector of length 0: how the compiled batch-norm coefficients take an absent one."""
    return np.empty(0, dtype=dtype) if v is None else v


def _bn_setup(x, running_mean, running_var, weight, bias, training, eps):
    x = V.float_array(x, "x", None)
    if x.ndim < 2:
        raise ValueError(f"x must be at least 2-D (N, C, ...), got {x.ndim}-D array of shape {V.shape_str(x.shape)}")
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    if isinstance(eps, (bool, np.bool_)) or not isinstance(eps, (int, float, np.floating, np.integer)) or not eps >= 0:
        raise ValueError(f"eps must be a non-negative number, got {eps!r}")
    N, C = x.shape[:2]
    if (running_mean is None) != (running_var is None):
        raise ValueError("running_mean and running_var must be given together (or both None)")
    running_mean = _channel_vector(running_mean, "running_mean", C, x.dtype)
    running_var = _channel_vector(running_var, "running_var", C, x.dtype)
    weight = _channel_vector(weight, "weight", C, x.dtype)
    bias = _channel_vector(bias, "bias", C, x.dtype)
    x3 = x.reshape(N, C, -1)  # (N, C, L)
    M = N * x3.shape[2]
    if training and M < 2:
        raise ValueError(
            f"x: batch statistics need more than 1 value per channel in training, got shape "
            f"{V.shape_str(x.shape)}; use a larger batch or training=False"
        )
    if not training:
        if running_mean is None:
            raise ValueError(
                "running_mean and running_var are needed when training=False (evaluation normalises with them)"
            )
        if (running_var < 0).any():
            raise ValueError("running_var must be non-negative")
    return x, x3, running_mean, running_var, weight, bias, M


def _bn_channels(C, work, kernel, parallel, before, after):
    _planes(C, work, kernel, parallel, before, after)


@overload
def batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    training: Literal[False] = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array: ...
@overload
def batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    *,
    training: Literal[True],
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> tuple[Array, Array | None, Array | None]: ...
@overload
def batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array | tuple[Array, Array | None, Array | None]: ...
def batch_norm(
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    bias: Array | None = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Array | tuple[Array, Array | None, Array | None]:
    """Batch normalization (Ioffe and Szegedy, 2015), as :func:`torch.nn.functional.batch_norm`.

    Each channel c is normalised, ``xhat = (x - mean_c) / sqrt(var_c + eps)``, then
    scaled and shifted, ``y = weight_c * xhat + bias_c``. In training the mean and
    the *biased* variance come from the batch (over N and the spatial axes); in
    evaluation they are ``running_mean`` and ``running_var``.

    Unlike torch, which updates the running statistics in place, this function
    never modifies its inputs: in training it returns the updated statistics,
    ``(1 - momentum) * running + momentum * batch``, where the batch variance
    is the *unbiased* one (divided by ``N*H*W - 1``), as torch does.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W) (or (N, C) or (N, C, L))
    running_mean, running_var : ndarray of shape (C,), optional
        Required when ``training`` is False; may both be None in training.
    weight, bias : ndarray of shape (C,), optional
        The affine scale (default 1) and shift (default 0).
    training : bool, default False
    momentum : float in [0, 1], default 0.1
        Weight of the batch statistics in the running update.
    eps : float, default 1e-5
        Added to the variance before the square root.

    Returns
    -------
    y : ndarray of x's shape
        In evaluation (``training=False``), only ``y``.
    running_mean, running_var : ndarray of shape (C,) or None
        In training, ``(y, running_mean, running_var)``: the updated statistics
        as new arrays (None if none were given).

    Raises
    ------
    TypeError, ValueError
        For non-float or mixed dtypes, vectors not of shape (C,), a negative
        ``momentum`` or one above 1, a negative ``eps``, one value per
        channel in training, or missing running statistics in evaluation.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1., 3.]).reshape(2, 1, 1, 1)
    >>> y, rm, rv = batch_norm(x, np.zeros(1), np.ones(1), training=True, eps=0.0)
    >>> y.ravel(), rm, rv
    (array([-1.,  1.]), array([0.2]), array([1.1]))
    >>> batch_norm(x, np.array([1.]), np.array([4.]), eps=0.0).ravel()
    array([0., 1.])
    """
    x, x3, rm, rv, weight, bias, M = _bn_setup(x, running_mean, running_var, weight, bias, training, eps)
    if (
        isinstance(momentum, (bool, np.bool_))
        or not isinstance(momentum, (int, float, np.floating, np.integer))
        or not 0 <= momentum <= 1
    ):
        raise ValueError(f"momentum must be a number in [0, 1], got {momentum!r}")
    N, C, L = x3.shape
    dt = x.dtype
    shift = sx = sxx = _NO_VALUES
    if training:
        shift = x3[0, :, 0].astype(np.float64)  # (C,)
        sx, sxx = np.empty(C), np.empty(C)
        _bn_channels(C, N * L, _norm.sums, _par.sums, (x3, shift), (sx, sxx))
    a, b = np.empty(C, dtype=dt), np.empty(C, dtype=dt)  # y = x * a + b, per channel
    given = training and rm is not None
    new_rm = np.empty(C if given else 0, dtype=dt)
    new_rv = np.empty(C if given else 0, dtype=dt)
    _norm.forward_coefficients(
        training, shift, sx, sxx, M, _or_absent(rm, dt), _or_absent(rv, dt), _or_absent(weight, dt),
        _or_absent(bias, dt), float(momentum), float(eps), a, b, new_rm, new_rv,
    )  # fmt: skip
    y = np.empty_like(x)
    _bn_channels(C, N * L, _norm.scale_shift, _par.scale_shift, (x3, a, b), (y.reshape(N, C, L),))
    if not training:
        return y
    if rm is None:
        return y, None, None
    return y, new_rm, new_rv


def batch_norm_backward(
    dy: Array,
    x: Array,
    running_mean: Array | None = None,
    running_var: Array | None = None,
    weight: Array | None = None,
    training: bool = False,
    eps: float = 1e-5,
) -> tuple[Array, Array, Array]:
    """Gradients of :func:`batch_norm`: ``(dx, dweight, dbias)``.

    In training the batch statistics depend on ``x`` too, which gives
    ``dx = weight * invstd * (dy - mean(dy) - xhat * mean(dy * xhat))``
    (means per channel); in evaluation ``dx = weight * invstd * dy``.

    Parameters
    ----------
    dy : ndarray of x's shape
    x : ndarray of shape (N, C, H, W) (or (N, C) or (N, C, L))
        The forward input.
    running_mean, running_var, weight, training, eps
        As given to :func:`batch_norm` (the running statistics before its update;
        they are only used in evaluation).

    Returns
    -------
    dx : ndarray of x's shape
    dweight, dbias : ndarray of shape (C,)
        ``sum(dy * xhat)`` and ``sum(dy)`` per channel, computed even when
        ``weight`` is None.

    Raises
    ------
    TypeError, ValueError
        As :func:`batch_norm`, and if ``dy`` does not have x's shape.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.array([1., 3.]).reshape(2, 1, 1, 1)
    >>> dx, dw, db = batch_norm_backward(np.array([1., 1.]).reshape(2, 1, 1, 1), x, training=True)
    >>> dx.ravel(), db
    (array([0., 0.]), array([2.]))
    """
    x, x3, rm, rv, weight, _, M = _bn_setup(x, running_mean, running_var, weight, None, training, eps)
    dy = V.float_array(dy, "dy", x.ndim)
    V.same_dtype(x, "x", dy=dy)
    if dy.shape != x.shape:
        raise ValueError(f"dy: expected x's shape {V.shape_str(x.shape)}, got {V.shape_str(dy.shape)}")
    N, C, L = x3.shape
    dy3 = dy.reshape(N, C, L)
    shift = x3[0, :, 0].astype(np.float64) if training else rm.astype(np.float64)  # (C,)
    sx, sxx, sdy, sdyx = np.empty(C), np.empty(C), np.empty(C), np.empty(C)
    _bn_channels(C, 2 * N * L, _norm.sums_backward, _par.sums_backward, (x3, dy3, shift), (sx, sxx, sdy, sdyx))
    dt = x.dtype
    a, k, b = np.empty(C, dtype=dt), np.empty(C, dtype=dt), np.empty(C, dtype=dt)  # dx = dy * a + x * k + b
    dweight, dbias = np.empty(C, dtype=dt), np.empty(C, dtype=dt)
    _norm.backward_coefficients(
        training, shift, sx, sxx, sdy, sdyx, M, _or_absent(rv, dt), _or_absent(weight, dt),
        float(eps), a, k, b, dweight, dbias,
    )  # fmt: skip
    dx = np.empty_like(x)
    _bn_channels(C, N * L, _norm.scale_shift2, _par.scale_shift2, (dy3, x3, a, k, b), (dx.reshape(N, C, L),))
    return dx, dweight, dbias


# ----------------------------------------------------------------------------
# Dropout
# ----------------------------------------------------------------------------


def _dropout_p(p):
    if isinstance(p, (bool, np.bool_)) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _rng(rng):
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or (isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_))):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be None, an int seed or a numpy.random.Generator, got {type(rng).__name__}")


@overload
def dropout(
    x: Array, p: float = 0.5, training: bool = True, rng: Seed = None, return_mask: Literal[False] = False
) -> Array: ...
@overload
def dropout(
    x: Array, p: float = 0.5, training: bool = True, rng: Seed = None, *, return_mask: Literal[True]
) -> tuple[Array, NDArray[np.bool_]]: ...
@overload
def dropout(
    x: Array, p: float = 0.5, training: bool = True, rng: Seed = None, return_mask: bool = False
) -> Array | tuple[Array, NDArray[np.bool_]]: ...
def dropout(
    x: Array, p: float = 0.5, training: bool = True, rng: Seed = None, return_mask: bool = False
) -> Array | tuple[Array, NDArray[np.bool_]]:
    """Inverted dropout (Srivastava et al., 2014), as :func:`torch.nn.functional.dropout`.

    In training each element is zeroed with probability ``p`` and the survivors
    are scaled by ``1 / (1 - p)``, so the expected output equals the input and
    evaluation needs no rescaling; in evaluation the output is a copy of ``x``.

    Parameters
    ----------
    x : ndarray of any shape
    p : float in [0, 1], default 0.5
        Probability of dropping an element.
    training : bool, default True
    rng : None, int or numpy.random.Generator
        Source of the mask; an int seeds it (the same seed gives the same mask).
    return_mask : bool, default False
        Also return the mask of kept elements, for :func:`dropout_backward`.

    Returns
    -------
    y : ndarray of x's shape and dtype
    mask : ndarray of bool, x's shape
        Only with ``return_mask``: True where the element was kept.

    Raises
    ------
    TypeError, ValueError
        For a non-float ``x``, ``p`` outside [0, 1] or a bad ``rng``.

    Examples
    --------
    >>> import numpy as np
    >>> y = dropout(np.ones(8), 0.5, rng=0)
    >>> sorted(set(y.tolist()))
    [0.0, 2.0]
    >>> dropout(np.ones(3), 0.5, training=False)
    array([1., 1., 1.])
    """
    x = V.float_array(x, "x")
    p = _dropout_p(p)
    if not isinstance(training, (bool, np.bool_)):
        raise TypeError(f"training must be True or False, got {training!r}")
    rng = _rng(rng)
    if not training or p == 0.0:
        y = x.copy()
        return (y, np.ones(x.shape, dtype=bool)) if return_mask else y
    mask = rng.random(x.shape, dtype=np.float32) >= p  # P(keep) = 1 - p
    y = np.empty_like(x)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    xf, mf, yf = x.reshape(-1), mask.reshape(-1), y.reshape(-1)
    _planes(xf.shape[0], 2, _norm.masked_scale, _par.masked_scale, (xf, mf, scale), (yf,))
    return (y, mask) if return_mask else y


def dropout_backward(dy: Array, mask: NDArray[np.bool_], p: float) -> Array:
    """Gradient of :func:`dropout`: ``dy / (1 - p)`` where the element was kept, else 0.

    Parameters
    ----------
    dy : ndarray
    mask : ndarray of bool, dy's shape
        As returned by ``dropout(..., return_mask=True)``.
    p : float in [0, 1]
        As given to :func:`dropout`.

    Returns
    -------
    dx : ndarray of dy's shape

    Raises
    ------
    TypeError, ValueError
        For a non-float ``dy``, a non-boolean ``mask`` or a shape mismatch, ``p`` outside [0, 1].

    Examples
    --------
    >>> import numpy as np
    >>> dropout_backward(np.ones(3), np.array([True, False, True]), 0.5)
    array([2., 0., 2.])
    """
    dy = V.float_array(dy, "dy")
    p = _dropout_p(p)
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"mask must be a boolean array (from dropout(..., return_mask=True)), got dtype {mask.dtype}")
    if mask.shape != dy.shape:
        raise ValueError(f"mask: expected dy's shape {V.shape_str(dy.shape)}, got {V.shape_str(mask.shape)}")
    mask = np.ascontiguousarray(mask)
    dx = np.empty_like(dy)
    scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
    df, mf, xf = dy.reshape(-1), mask.reshape(-1), dx.reshape(-1)
    _planes(df.shape[0], 2, _norm.masked_scale, _par.masked_scale, (df, mf, scale), (xf,))
    return dx


# ----------------------------------------------------------------------------
# Adaptive average pooling
# ----------------------------------------------------------------------------


def _adaptive_size(output_size, H, W):
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"output_size must be an int or a pair (int or None), got {output_size!r}")
        sizes = [H if s is None else s for s in output_size]
        sizes = [V.positive_int(s, "output_size") for s in sizes]
    else:
        sizes = [V.positive_int(output_size, "output_size")] * 2
    return tuple(sizes)


def adaptive_avg_pool2d(x: Array, output_size: int | tuple[int | None, int | None]) -> Array:
    """Adaptive 2-D average pooling, as :func:`torch.nn.functional.adaptive_avg_pool2d`.

    Output row p averages input rows ``floor(p*H/P)`` to ``ceil((p+1)*H/P) - 1``
    (likewise columns), so any input size gives a (P, Q) output; windows may
    differ in size and overlap. ``output_size=1`` is global average pooling.

    Parameters
    ----------
    x : ndarray of shape (N, C, H, W)
    output_size : int or (int or None, int or None)
        (P, Q); None keeps the input's size along that axis.

    Returns
    -------
    y : ndarray of shape (N, C, P, Q)

    Raises
    ------
    TypeError, ValueError
        For a non-float or non-4-D ``x`` or a non-positive size.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d(np.arange(6.).reshape(1, 1, 2, 3), 1).ravel()
    array([2.5])
    >>> adaptive_avg_pool2d(np.arange(5.).reshape(1, 1, 1, 5), (1, 2)).ravel()
    array([1., 3.])
    """
    x = V.float_array(x, "x", 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    P, Q = _adaptive_size(output_size, H, W)
    y = np.empty((N * C, P, Q), dtype=x.dtype)  # (N*C, P, Q)
    if P == 1 and Q == 1:  # global average pooling: one contiguous sum per plane
        x2, y1 = x.reshape(N * C, H * W), y.reshape(N * C)
        _planes(N * C, H * W, _norm.global_avg_pool_forward, _par.global_avg_pool_forward, (x2,), (y1,))
        return y.reshape(N, C, 1, 1)
    x3 = x.reshape(N * C, H, W)
    _planes(N * C, H * W + P * Q, _norm.adaptive_avg_pool2d_forward, _par.adaptive_avg_pool2d_forward, (x3,), (y,))
    return y.reshape(N, C, P, Q)


def adaptive_avg_pool2d_backward(dy: Array, x: Array, output_size: int | tuple[int | None, int | None]) -> Array:
    """Gradient of :func:`adaptive_avg_pool2d`: each window spreads its gradient evenly over its inputs.

    Parameters
    ----------
    dy : ndarray of shape (N, C, P, Q)
    x : ndarray of shape (N, C, H, W)
        The forward input (only its shape and dtype are used).
    output_size
        As given to :func:`adaptive_avg_pool2d`.

    Returns
    -------
    dx : ndarray of shape (N, C, H, W)

    Raises
    ------
    TypeError, ValueError
        As :func:`adaptive_avg_pool2d`, and if ``dy`` does not have the forward output's shape.

    Examples
    --------
    >>> import numpy as np
    >>> adaptive_avg_pool2d_backward(np.array([[[[4.]]]]), np.zeros((1, 1, 2, 2)), 1)
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    x = V.float_array(x, "x", 4, "(N, C, H, W)")
    N, C, H, W = x.shape
    P, Q = _adaptive_size(output_size, H, W)
    dy = V.float_array(dy, "dy", 4, "(N, C, P, Q)")
    V.same_dtype(x, "x", dy=dy)
    if dy.shape != (N, C, P, Q):
        raise ValueError(
            f"dy: expected the forward output's shape {V.shape_str((N, C, P, Q))}, got {V.shape_str(dy.shape)}"
        )
    dx = np.empty((N * C, H, W), dtype=x.dtype)  # (N*C, H, W), every plane overwritten
    dy3 = dy.reshape(N * C, P, Q)
    _planes(N * C, H * W + P * Q, _norm.adaptive_avg_pool2d_backward, _par.adaptive_avg_pool2d_backward, (dy3,), (dx,))
    return dx.reshape(N, C, H, W)
