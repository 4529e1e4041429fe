"""How much of the input one output of a stack of convolutions can see.

For layers ``l = 1..L`` with kernel size ``k_l``, stride ``s_l`` and dilation
``d_l``, the receptive field ``r`` and the jump ``j`` (the distance in input
pixels between neighbouring outputs) grow as

``r_l = r_{l-1} + d_l (k_l - 1) j_{l-1}``,  ``j_l = j_{l-1} s_l``,  with ``r_0 = j_0 = 1``.

Pooling layers count as layers with their window as kernel. For stride 1
and no dilation this is ``r_L = 1 + sum_l (k_l - 1)``: three 3x3 layers see 7x7.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

from . import _validate as V

__all__ = ["receptive_field", "receptive_fields"]


def _per_layer(values, name, n, default):
    if values is None:
        return [default] * n
    if isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values] * n
    if not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be an int or a sequence of ints, one per layer, got {values!r}")
    values = list(values)
    if len(values) != n:
        raise ValueError(f"{name} must have one entry per layer ({n}), got {len(values)}")
    return [V.positive_int(v, f"{name}[{i}]") for i, v in enumerate(values)]


def receptive_fields(
    kernel_sizes: Sequence[int],
    strides: int | Sequence[int] | None = None,
    dilations: int | Sequence[int] | None = None,
) -> tuple[list[int], list[int]]:
    """Receptive field and jump after each layer of a stack.

    Parameters
    ----------
    kernel_sizes : sequence of int
        ``k_l`` for each layer, in order from the input.
    strides : int or sequence of int, optional
        ``s_l``; default 1 for every layer.
    dilations : int or sequence of int, optional
        ``d_l``; default 1 for every layer.

    Returns
    -------
    sizes : list of int
        ``[r_1, ..., r_L]``: the receptive field (along one axis) of one output of layer ``l``.
    jumps : list of int
        ``[j_1, ..., j_L]``: input-pixel distance between neighbouring outputs of layer ``l``.

    Raises
    ------
    TypeError
        If an entry is not an integer.
    ValueError
        If there are no layers, an entry is not positive, or the lengths differ.

    Examples
    --------
    >>> receptive_fields([3, 3, 3])
    ([3, 5, 7], [1, 1, 1])
    >>> receptive_fields([11, 3, 5], strides=[4, 2, 1])   # AlexNet: conv1, pool1, conv2
    ([11, 19, 51], [4, 8, 8])
    """
    if not hasattr(kernel_sizes, "__len__") or isinstance(kernel_sizes, str):
        raise TypeError(f"kernel_sizes must be a sequence of ints, one per layer, got {kernel_sizes!r}")
    n = len(kernel_sizes)
    if n == 0:
        raise ValueError("kernel_sizes must name at least one layer")
    ks = [V.positive_int(k, f"kernel_sizes[{i}]") for i, k in enumerate(kernel_sizes)]
    ss = _per_layer(strides, "strides", n, 1)
    ds = _per_layer(dilations, "dilations", n, 1)
    r, j = 1, 1
    sizes, jumps = [], []
    for k, s, d in zip(ks, ss, ds):
        r = r + d * (k - 1) * j
        j = j * s
        sizes.append(r)
        jumps.append(j)
    return sizes, jumps


def receptive_field(
    kernel_sizes: Sequence[int],
    strides: int | Sequence[int] | None = None,
    dilations: int | Sequence[int] | None = None,
) -> int:
    """Receptive field (along one axis) of one output of the last layer of a stack.

    Parameters
    ----------
    kernel_sizes, strides, dilations
        As :func:`receptive_fields`.

    Returns
    -------
    int

    Raises
    ------
    TypeError, ValueError
        As :func:`receptive_fields`.

    Examples
    --------
    >>> receptive_field([3, 3, 3])
    7
    >>> receptive_field([3, 3], dilations=[1, 2])
    7
    """
    return receptive_fields(kernel_sizes, strides, dilations)[0][-1]
