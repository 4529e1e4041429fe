"""One-dimensional convolution in the textbook sense, and the signals it acts on.

:func:`catlab.functional.conv1d` computes what deep-learning libraries call a
convolution: a cross-correlation, the kernel slid *without* flipping.
:func:`convolve` flips the kernel first and pads, which gives the convolution
of mathematics, statistics and signal processing,
``(a * b)[n] = sum_k a[k] b[n - k]``, identical to :func:`numpy.convolve`.

Functions
---------
convolve
    True 1-D convolution (``'full'``, ``'same'`` or ``'valid'``) built on ``conv1d``.
correlate
    1-D cross-correlation (no flip) with the same modes.
moving_average
    Weighted moving average of a series (``'same'`` length output).
echo_impulse_response
    The impulse response of a repeating echo.
lowpass_impulse_response
    The impulse response of the one-pole (RC) low-pass filter.
uniform_pmf
    Probability mass function of a fair die.
pmf_of_sum
    Distribution of the sum of independent integer variables (repeated convolution).
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from . import _validate as V
from ._typing import Array, ArrayLike
from .functional import conv1d

__all__ = [
    "convolve",
    "correlate",
    "moving_average",
    "echo_impulse_response",
    "lowpass_impulse_response",
    "uniform_pmf",
    "pmf_of_sum",
]

_MODES = ("full", "same", "valid")


def _signal(x, name):
    """``x`` as a 1-D float64 (or float32) array without NaN, never modified."""
    if isinstance(x, (list, tuple)):
        x = np.asarray(x)
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer):
        x = x.astype(np.float64)
    x = V.float_array(x, name, 1, "(L,)")
    V.check_finite(x, name)
    return x


def _correlate(a, b, mode, name_a, name_b):
    a = _signal(a, name_a)
    b = _signal(b, name_b)
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    dtype = np.result_type(a.dtype, b.dtype)
    a, b = a.astype(dtype, copy=False), b.astype(dtype, copy=False)
    n, m = a.size, b.size
    if mode != "full" and m > n:
        raise ValueError(
            f"mode={mode!r}: {name_b} (length {m}) must not be longer "
            f"than {name_a} (length {n}); swap the arguments or use mode='full'"
        )
    if mode == "full":
        left = right = m - 1
    elif mode == "same":
        # NumPy's 'same' is the centre of the full output:
        # it starts at index (m - 1) // 2
        left, right = m - 1 - (m - 1) // 2, (m - 1) // 2
    else:
        left = right = 0
    x = np.concatenate([np.zeros(left, dtype), a, np.zeros(right, dtype)])
    w = np.ascontiguousarray(b)
    return conv1d(x[None, None, :], w[None, None, :])[0, 0]  # (N, C, L) views


def convolve(a: ArrayLike, b: ArrayLike, mode: Literal["full", "same", "valid"] = "full") -> Array:
    """Discrete convolution ``(a * b)[n] = sum_k a[k] b[n - k]``, as :func:`numpy.convolve`.

    The kernel ``b`` is flipped and slid over ``a`` with
    :func:`catlab.functional.conv1d` (which itself does not flip).

    Parameters
    ----------
    a : array_like of shape (n,)
        The signal (ints are converted to float64).
    b : array_like of shape (m,)
        The kernel.
    mode : {'full', 'same', 'valid'}, default 'full'
        ``'full'``: every overlap, length ``n + m - 1``; ``'same'``: length ``n``,
        centred as in NumPy; ``'valid'``: only full overlaps, length ``n - m + 1``.

    Returns
    -------
    y : ndarray
        float64 unless both inputs are float32.

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If an input is not 1-D, is empty or holds NaN/inf, ``mode`` is unknown,
        or ``mode`` is ``'same'`` or ``'valid'`` with ``b`` longer than ``a``.

    Examples
    --------
    >>> convolve([1, 2, 3], [0, 1, 0.5])
    array([0. , 1. , 2.5, 4. , 1.5])
    >>> convolve([1, 2, 3], [0, 1, 0.5], mode="same")
    array([1. , 2.5, 4. ])
    """
    b = _signal(b, "b")
    return _correlate(a, b[::-1].copy(), mode, "a", "b")


def correlate(a: ArrayLike, v: ArrayLike, mode: Literal["full", "same", "valid"] = "valid") -> Array:
    """Cross-correlation ``c[n] = sum_k a[n + k] v[k]``, as :func:`numpy.correlate`.

    This is what :func:`catlab.functional.conv1d` and every deep-learning
    "convolution" compute: the kernel is *not* flipped.

    Parameters
    ----------
    a : array_like of shape (n,)
    v : array_like of shape (m,)
    mode : {'valid', 'same', 'full'}, default 'valid'

    Returns
    -------
    c : ndarray

    Raises
    ------
    TypeError, ValueError
        As :func:`convolve`.

    Examples
    --------
    >>> correlate([1, 2, 3], [0, 1, 0.5])
    array([3.5])
    >>> convolve([1, 2, 3], [0.5, 1, 0], mode="valid")   # flipping the kernel gives the same
    array([3.5])
    """
    return _correlate(a, v, mode, "a", "v")


def moving_average(x: ArrayLike, weights: int | ArrayLike) -> Array:
    """Weighted moving average of a series, normalised so the weights sum to 1.

    ``y[n] = sum_k w[k] x[n + k - c] / sum_k w[k]`` with ``c = (m - 1) // 2`` the
    centre tap; the series is padded by repeating its end values, so the
    output has the input's length and no dip at the ends.

    Parameters
    ----------
    x : array_like of shape (n,)
        The series.
    weights : array_like of shape (m,)
        Non-negative weights with a positive sum, ``m`` at most ``n``.

    Returns
    -------
    y : ndarray of shape (n,)

    Raises
    ------
    TypeError
        If an input is not numeric.
    ValueError
        If a weight is negative, they sum to zero, or there are more weights than samples.

    Examples
    --------
    >>> moving_average([0, 0, 3, 0, 0], [1, 1, 1])
    array([0., 1., 1., 1., 0.])
    >>> moving_average([1, 2, 3, 4], [1, 2, 1])   # ends repeated: (1+2+2)/4, ...
    array([1.25, 2.  , 3.  , 3.75])
    """
    x = _signal(x, "x")
    w = _signal(weights, "weights")
    if np.any(w < 0):
        raise ValueError("weights must be non-negative for a moving average")
    total = w.sum()
    if total <= 0:
        raise ValueError("weights must have a positive sum")
    m = w.size
    if m > x.size:
        raise ValueError(f"weights: {m} weights is more than the {x.size} samples of x")
    c = (m - 1) // 2
    xp = np.concatenate([np.full(c, x[0]), x, np.full(m - 1 - c, x[-1])])
    return correlate(xp, w / total, mode="valid")


def echo_impulse_response(delay: int, decay: float, n_echoes: int = 1) -> Array:
    """Impulse response of a repeating echo: ``h[0] = 1``, ``h[j * delay] = decay**j``.

    Convolving a sound with it adds ``n_echoes`` copies, each ``delay`` samples
    after the last and ``decay`` times as loud.

    Parameters
    ----------
    delay : int
        Samples between echoes, at least 1.
    decay : float
        Loudness of each echo relative to the previous one, in [0, 1].
    n_echoes : int, default 1
        Number of echoes after the direct sound, at least 0.

    Returns
    -------
    h : ndarray of shape (n_echoes * delay + 1,)

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``delay`` < 1, ``n_echoes`` < 0 or ``decay`` is outside [0, 1].

    Examples
    --------
    >>> echo_impulse_response(delay=2, decay=0.5, n_echoes=2)
    array([1.  , 0.  , 0.5 , 0.  , 0.25])
    """
    delay = V.positive_int(delay, "delay")
    n_echoes = V.nonnegative_int(n_echoes, "n_echoes")
    decay = V.real_number(decay, "decay", 0, 1)
    h = np.zeros(n_echoes * delay + 1)
    h[::delay] = float(decay) ** np.arange(n_echoes + 1)
    return h


def lowpass_impulse_response(alpha: float, length: int) -> Array:
    """Impulse response of the one-pole (RC) low-pass filter, truncated.

    The filter ``y[n] = (1 - alpha) y[n - 1] + alpha x[n]`` (a discretised RC
    circuit with ``alpha = dt / (RC + dt)``) answers a unit impulse with
    ``h[k] = alpha (1 - alpha)**k``.

    Parameters
    ----------
    alpha : float
        Smoothing factor in (0, 1].
    length : int
        Number of taps kept, at least 1.

    Returns
    -------
    h : ndarray of shape (length,)

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``alpha`` is outside (0, 1] or ``length`` < 1.

    Examples
    --------
    >>> lowpass_impulse_response(0.5, 4)
    array([0.5   , 0.25  , 0.125 , 0.0625])
    """
    alpha = V.real_number(alpha, "alpha", 0, 1, low_inclusive=False)
    length = V.positive_int(length, "length")
    return float(alpha) * (1.0 - float(alpha)) ** np.arange(length)


def uniform_pmf(sides: int = 6) -> Array:
    """Probability mass function of a fair die, indexed by the face value.

    Parameters
    ----------
    sides : int, default 6

    Returns
    -------
    p : ndarray of shape (sides + 1,)
        ``p[0] = 0`` and ``p[k] = 1 / sides`` for ``k = 1..sides``, so that
        ``p[k]`` is the probability of rolling ``k``.

    Raises
    ------
    TypeError, ValueError
        If ``sides`` is not a positive integer.

    Examples
    --------
    >>> uniform_pmf(2)
    array([0. , 0.5, 0.5])
    """
    sides = V.positive_int(sides, "sides")
    p = np.full(sides + 1, 1.0 / sides)
    p[0] = 0.0
    return p


def pmf_of_sum(*pmfs: ArrayLike) -> Array:
    """Distribution of the sum of independent integer variables: their pmfs convolved.

    If ``p[i] = P(X = i)`` and ``q[j] = P(Y = j)`` for independent ``X`` and ``Y``,
    then ``P(X + Y = n) = sum_k p[k] q[n - k]``, which is ``convolve(p, q)``.

    Parameters
    ----------
    *pmfs : array_like of shape (m_i,)
        One or more pmfs indexed from 0, each non-negative and summing to 1
        (within 1e-9).

    Returns
    -------
    p : ndarray of shape (sum(m_i) - len(pmfs) + 1,)
        ``p[n] = P(sum = n)``.

    Raises
    ------
    TypeError
        If a pmf is not numeric.
    ValueError
        If no pmf is given or one is negative or does not sum to 1.

    Examples
    --------
    >>> coin = [0.5, 0.5]            # 0 or 1
    >>> pmf_of_sum(coin, coin)
    array([0.25, 0.5 , 0.25])
    """
    if not pmfs:
        raise ValueError("pmf_of_sum needs at least one pmf")
    checked = []
    for i, p in enumerate(pmfs):
        p = _signal(p, f"pmfs[{i}]")
        if np.any(p < 0) or abs(p.sum() - 1) > 1e-9:
            raise ValueError(f"pmfs[{i}] must be non-negative and sum to 1, got sum {p.sum()!r}")
        checked.append(p)
    out = checked[0]
    for p in checked[1:]:
        out = convolve(out, p)
    return out
