"""Shared argument checks and their error messages.

Every public function validates its arguments here *before* any work starts,
so that a mistake is reported in the caller's terms (the argument's name, what
was expected, what came) rather than as an index error deep in a kernel.
None of these helpers modifies its input.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def shape_str(shape) -> str:
    """Format a shape as ``(2, 3, 4)``."""
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def float_array(x, name: str, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array, checking it first.

    A C-contiguous input is returned as it is (no copy); any other input is
    copied, so the caller's array is never modified.

    Parameters
    ----------
    x : array_like
        The value to check.
    name : str
        The argument's name, used in error messages.
    ndim : int, optional
        The required number of dimensions.
    layout : str, optional
        A description of the dimensions, such as ``"(N, C, H, W)"``.

    Raises
    ------
    TypeError
        If ``x`` is not an array of float32 or float64.
    ValueError
        If ``x`` has the wrong number of dimensions.
    """
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
            x = np.asarray(x)
        else:
            raise TypeError(
                f"{name} must be a NumPy array of float32 or float64, got {type(x).__name__}"
            )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {x.dtype}; "
            f"convert it with {name}.astype(np.float32)"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {layout}".rstrip()
            + f", got {x.ndim}-D array of shape {shape_str(x.shape)}"
        )
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(x.shape)}")
    return np.ascontiguousarray(x)


def same_dtype(reference: np.ndarray, ref_name: str, **others) -> None:
    """Raise ``TypeError`` unless every array in ``others`` has ``reference``'s dtype."""
    for name, arr in others.items():
        if arr is not None and arr.dtype != reference.dtype:
            raise TypeError(
                f"{name} has dtype {arr.dtype} but {ref_name} has dtype {reference.dtype}; "
                f"mixed dtypes are not supported, convert with {name}.astype({ref_name}.dtype)"
            )


def positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= 1."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value}")
    return int(value)


def nonnegative_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is an integer >= 0."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return int(value)


def int_tuple(value, name: str, n: int, minimum: int) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into an ``n``-tuple.

    Raises
    ------
    TypeError
        If an element is not an integer.
    ValueError
        If the sequence has the wrong length or an element is below ``minimum``.
    """
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        values = (int(value),) * n
    elif isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        values = tuple(value)
        for v in values:
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Integral):
                raise TypeError(f"{name} must contain integers, got {value!r}")
        values = tuple(int(v) for v in values)
    else:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    for v in values:
        if v < minimum:
            what = "positive" if minimum == 1 else f">= {minimum}"
            raise ValueError(f"{name} must be {what}, got {value!r}")
    return values


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``x`` contains NaN or infinity."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{name} contains {bad} NaN or infinite value(s); check the data and the learning rate")
