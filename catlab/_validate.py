"""Shared argument checks and their error messages.

Every public function validates its arguments here *before* any work starts,
so that a mistake is reported in the caller's terms rather than as an index
error deep in a kernel. Messages have one style::

    <name> must <what was expected>, got <what came>; <how to fix it>

None of these helpers modifies its input. Integers that pass are returned as
Python ints no larger than :data:`MAX_INT`, so that they always reach the
compiled kernels as int64 and never change the types Numba compiles for.
"""

from __future__ import annotations

import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: The largest size, stride, padding, dilation or count any argument may have.
#: Far beyond anything that fits in memory; it keeps every integer a kernel
#: sees (and their products with other sizes) inside int64.
MAX_INT = 2**31 - 1


def shape_str(shape) -> str:
    """Format a shape as ``(2, 3, 4)`` (``(5,)`` for one dimension, ``()`` for none)."""
    if len(shape) == 1:
        return f"({int(shape[0])},)"
    return "(" + ", ".join(str(int(s)) for s in shape) + ")"


def _fix(fix: str) -> str:
    return f"; {fix}" if fix else ""


def float_array(x, name: str, ndim: int | None = None, layout: str = "") -> np.ndarray:
    """Return ``x`` as a C-contiguous float32/float64 array, checking it first.

    A C-contiguous input is returned as it is (no copy); any other input is
    copied, so the caller's array is never modified. A 0-d input keeps its
    shape ``()``.

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
        If ``x`` has the wrong number of dimensions or no elements.
    """
    if (  # the common case first: a C-contiguous float array of the right rank (a few 100 ns)
        type(x) is np.ndarray
        and x.dtype.char in "fd"
        and x.flags.c_contiguous
        and (ndim is None or x.ndim == ndim)
        and x.size
    ):
        return x
    if not isinstance(x, np.ndarray):
        if isinstance(x, (list, tuple)) or (np.isscalar(x) and not isinstance(x, (str, bytes))):
            x = np.asarray(x)
        else:
            raise TypeError(
                f"{name} must be a NumPy array of float32 or float64, got {type(x).__name__}; "
                f"convert it with np.asarray({name}, dtype=np.float32)"
            )
    if x.dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{name} must have dtype float32 or float64, got {x.dtype}; convert it with {name}.astype(np.float32)"
        )
    if ndim is not None and x.ndim != ndim:
        raise ValueError(
            f"{name} must be {ndim}-D {layout}".rstrip() + f", got {x.ndim}-D array of shape {shape_str(x.shape)}"
        )
    if x.size == 0:
        raise ValueError(f"{name} must not be empty, got shape {shape_str(x.shape)}")
    if x.ndim == 0:
        return x if x.flags.c_contiguous else x.copy()
    return np.ascontiguousarray(x)


def same_dtype(reference: np.ndarray, ref_name: str, **others) -> None:
    """Raise ``TypeError`` unless every array in ``others`` has ``reference``'s dtype."""
    for name, arr in others.items():
        if arr is not None and arr.dtype != reference.dtype:
            raise TypeError(
                f"{name} must have the dtype of {ref_name} ({reference.dtype}), got {arr.dtype}; "
                f"mixed dtypes are not supported, convert with {name}.astype({ref_name}.dtype)"
            )


def same_shape(arr: np.ndarray, name: str, expected, what: str) -> None:
    """Raise ``ValueError`` unless ``arr.shape == expected``; ``what`` names the expected shape."""
    if arr.shape != tuple(expected):
        raise ValueError(f"{name} must have {what} {shape_str(expected)}, got {shape_str(arr.shape)}")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def int_in_range(value, name: str, minimum: int | None = None, maximum: int | None = MAX_INT, fix: str = "") -> int:
    """Return ``value`` as a Python int, raising unless it is an integer in [minimum, maximum]."""
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer, got {value!r}{_fix(fix)}")
    value = int(value)
    if minimum is not None and value < minimum:
        what = {0: "non-negative", 1: "a positive integer"}.get(minimum, f">= {minimum}")
        raise ValueError(f"{name} must be {what}, got {value}{_fix(fix)}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value}{_fix(fix)}")
    return value


def positive_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is an integer in [1, MAX_INT]."""
    return int_in_range(value, name, 1)


def nonnegative_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is an integer in [0, MAX_INT]."""
    return int_in_range(value, name, 0)


def odd_int(value, name: str) -> int:
    """Return ``value`` as an int, raising unless it is a positive odd integer (a kernel with a centre)."""
    value = positive_int(value, name)
    if value % 2 == 0:
        raise ValueError(f"{name} must be odd so that the kernel has a centre, got {value}; use {value + 1}")
    return value


def int_tuple(value, name: str, n: int, minimum: int, maximum: int = MAX_INT) -> tuple[int, ...]:
    """Expand an int or a length-``n`` sequence of ints into an ``n``-tuple of Python ints.

    Raises
    ------
    TypeError
        If an element is not an integer (bools are not integers here).
    ValueError
        If the sequence has the wrong length or an element lies outside [minimum, maximum].
    """
    if type(value) is int and minimum <= value <= maximum:  # the common case, checked first (a few 100 ns)
        return (value,) * n
    if type(value) is tuple and len(value) == n and all(type(v) is int and minimum <= v <= maximum for v in value):
        return value
    if _is_int(value):
        values = (value,) * n
    elif isinstance(value, (tuple, list)):
        if len(value) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
        values = tuple(value)
        if not all(_is_int(v) for v in values):
            raise TypeError(f"{name} must contain integers, got {value!r}")
    else:
        raise TypeError(f"{name} must be an int or a sequence of {n} ints, got {value!r}")
    for v in values:
        if v < minimum:
            what = "positive" if minimum == 1 else f">= {minimum}"
            raise ValueError(f"{name} must be {what}, got {value!r}")
        if v > maximum:
            raise ValueError(f"{name} must be at most {maximum}, got {value!r}")
    return tuple(int(v) for v in values)


def real_number(
    value,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
    fix: str = "",
) -> float:
    """Return ``value`` as a float, raising unless it is a finite real number in the given range.

    Examples
    --------
    >>> real_number(0.5, "alpha", 0, 1, low_inclusive=False)
    0.5
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}{_fix(fix)}")
    value = float(value)
    ok = np.isfinite(value)
    if low is not None:
        ok = ok and (value >= low if low_inclusive else value > low)
    if high is not None:
        ok = ok and (value <= high if high_inclusive else value < high)
    if not ok:
        bounds = []
        if low is not None:
            bounds.append(f"{'>=' if low_inclusive else '>'} {low:g}")
        if high is not None:
            bounds.append(f"{'<=' if high_inclusive else '<'} {high:g}")
        what = " ".join(["a finite number"] + [" and ".join(bounds)] * bool(bounds))
        raise ValueError(f"{name} must be {what}, got {value!r}{_fix(fix)}")
    return value


def boolean(value, name: str) -> bool:
    """Return ``value`` as a bool, raising ``TypeError`` unless it is ``True`` or ``False``."""
    if value is True or value is False:
        return value
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_finite(x: np.ndarray, name: str) -> None:
    """Raise ``ValueError`` if ``x`` contains NaN or infinity."""
    if not np.isfinite(x).all():
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(
            f"{name} must be finite, got {bad} NaN or infinite value(s); check the data and the learning rate"
        )


def check_size(shape, name: str, what: str, limit: int = 2**34) -> None:
    """Raise ``ValueError`` naming ``name`` if an array of ``shape`` would have more than ``limit`` elements."""
    total = 1
    for s in shape:
        total *= int(s)
    if total > limit:
        raise ValueError(
            f"{name} must leave {what} of a size that fits in memory, got shape {shape_str(shape)} "
            f"({total:.3g} elements); use smaller values"
        )
