"""Classic hand-made filters and the stimuli used to probe them.

Every kernel is returned as a 2-D float64 array of shape ``(kH, kW)``; to use
it with :func:`catlab.functional.conv2d`, add the two channel axes:
``weight = kernel[None, None]``. Because ``conv2d`` computes a
cross-correlation, a kernel is applied *as written* (no flip): the Sobel
kernel :func:`sobel_x` gives a positive response where the image gets
brighter from left to right.

Functions
---------
box_kernel
    Uniform ``k x k`` average.
gaussian_kernel
    Normalised Gaussian blur.
sobel_x, sobel_y
    Sobel derivative kernels (horizontal and vertical change).
gabor_kernel
    An oriented Gabor filter, the textbook model of a V1 simple cell.
bar_stimulus
    An image holding one bright oriented bar, like Hubel and Wiesel's slides.
paint_bar
    A copy of a gray image with such a bar painted over it.
to_gray
    RGB image (uint8 or float) to a float64 gray image in [0, 1].
disk_kernel
    A uniform disk (pillbox), the point-spread function of a defocused lens.
"""

from __future__ import annotations

import numpy as np

from . import _validate as V
from ._typing import Array, NDArray

__all__ = [
    "box_kernel",
    "gaussian_kernel",
    "sobel_x",
    "sobel_y",
    "gabor_kernel",
    "bar_stimulus",
    "paint_bar",
    "to_gray",
    "disk_kernel",
]


def _positive_float(value, name: str) -> float:
    return V.real_number(value, name, 0, low_inclusive=False)


def _real(value, name: str) -> float:
    return V.real_number(value, name)


def _odd_size(size, name: str = "size") -> int:
    return V.odd_int(size, name)


def box_kernel(size: int) -> Array:
    """A ``size x size`` box (uniform average) kernel whose weights sum to 1.

    Parameters
    ----------
    size : int
        Side length, at least 1.

    Returns
    -------
    kernel : ndarray of shape (size, size)
        Every entry ``1 / size**2``.

    Raises
    ------
    TypeError
        If ``size`` is not an integer.
    ValueError
        If ``size`` < 1.

    Examples
    --------
    >>> box_kernel(2)
    array([[0.25, 0.25],
           [0.25, 0.25]])
    """
    size = V.positive_int(size, "size")
    return np.full((size, size), 1.0 / size**2)


def gaussian_kernel(size: int, sigma: float) -> Array:
    """A normalised 2-D Gaussian kernel, ``exp(-(u^2 + v^2) / (2 sigma^2))`` over its sum.

    Parameters
    ----------
    size : int
        Odd side length; the centre tap is at ``(size // 2, size // 2)``.
    sigma : float
        Standard deviation in pixels, positive.

    Returns
    -------
    kernel : ndarray of shape (size, size)
        Non-negative, symmetric, summing to 1.

    Raises
    ------
    TypeError
        If ``size`` is not an integer or ``sigma`` not a real number.
    ValueError
        If ``size`` is not a positive odd number or ``sigma`` is not positive.

    Examples
    --------
    >>> k = gaussian_kernel(3, 1.0)
    >>> k.shape, round(float(k.sum()), 12), bool(k[1, 1] == k.max())
    ((3, 3), 1.0, True)
    """
    size = _odd_size(size)
    sigma = _positive_float(sigma, "sigma")
    u = np.arange(size) - size // 2
    g = np.exp(-(u**2) / (2 * sigma**2))
    k = np.outer(g, g)
    return k / k.sum()


def sobel_x() -> Array:
    """The 3x3 Sobel kernel for horizontal change (d/dx, left to right).

    Applied by cross-correlation (as :func:`catlab.functional.conv2d` does),
    it responds positively where brightness increases to the right.

    Returns
    -------
    kernel : ndarray of shape (3, 3)

    Examples
    --------
    >>> sobel_x()
    array([[-1.,  0.,  1.],
           [-2.,  0.,  2.],
           [-1.,  0.,  1.]])
    """
    return np.array([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_y() -> Array:
    """The 3x3 Sobel kernel for vertical change (d/dy, top to bottom).

    Returns
    -------
    kernel : ndarray of shape (3, 3)
        The transpose of :func:`sobel_x`.

    Examples
    --------
    >>> sobel_y()
    array([[-1., -2., -1.],
           [ 0.,  0.,  0.],
           [ 1.,  2.,  1.]])
    """
    return sobel_x().T.copy()


def gabor_kernel(
    size: int, theta: float, wavelength: float, sigma: float | None = None, phase: float = 0.0, aspect: float = 0.5
) -> Array:
    """An oriented Gabor filter with zero mean: a model of a V1 simple cell.

    ``g(u, v) = exp(-(a^2 + aspect^2 b^2) / (2 sigma^2)) * cos(2 pi a / wavelength + phase)``
    with ``a = u cos(theta) - v sin(theta)`` (across the stripes) and
    ``b = u sin(theta) + v cos(theta)`` (along them), where ``u`` is the column
    offset (rightwards) and ``v`` the row offset (downwards) from the centre.
    Because rows go *down* the screen, the direction ``(u, v) = (cos theta,
    -sin theta)`` across the stripes is turned **anticlockwise on screen** by
    ``theta`` from the rightward direction. The mean is then subtracted, so a
    uniform image gives exactly zero; finally the kernel is scaled to unit norm.

    With ``theta = 0`` the filter varies from left to right only (its
    stripes are vertical) and prefers a **vertical** bar; a bar is preferred
    when its own angle (measured from the vertical, anticlockwise on screen as
    in :func:`bar_stimulus`) equals ``theta``. Adding ``pi / 2`` to ``theta``
    turns the kernel by 90 degrees anticlockwise:
    ``gabor_kernel(k, theta + pi / 2, ...) == np.rot90(gabor_kernel(k, theta, ...))``.

    Parameters
    ----------
    size : int
        Odd side length of the kernel.
    theta : float
        Preferred orientation in radians (0: vertical bar).
    wavelength : float
        Period of the cosine in pixels, positive.
    sigma : float, optional
        Width of the Gaussian envelope in pixels; defaults to ``0.5 * wavelength``.
    phase : float, default 0
        0 gives an even ("bar detector") filter, ``pi / 2`` an odd ("edge detector") one.
    aspect : float, default 0.5
        Envelope's length along the stripes relative to across them is ``1 / aspect``;
        smaller values give a longer, more orientation-selective filter.

    Returns
    -------
    kernel : ndarray of shape (size, size)
        Zero mean, unit L2 norm.

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``size`` is not a positive odd integer or a scale is not positive.

    Examples
    --------
    >>> import numpy as np
    >>> g = gabor_kernel(9, theta=0.0, wavelength=6.0)
    >>> g.shape, abs(float(g.sum())) < 1e-12, round(float((g**2).sum()), 12)
    ((9, 9), True, 1.0)
    >>> bool(np.allclose(g, g.T))   # theta=0: varies along columns, not symmetric under transpose
    False
    >>> bool(np.allclose(gabor_kernel(9, np.pi / 2, 6.0), g.T))
    True
    >>> g60 = gabor_kernel(9, np.pi / 3, 6.0, phase=0.5)
    >>> bool(np.allclose(gabor_kernel(9, np.pi / 3 + np.pi / 2, 6.0, phase=0.5),
    ...                  np.rot90(g60)))
    True
    """
    size = _odd_size(size)
    theta = _real(theta, "theta")
    wavelength = _positive_float(wavelength, "wavelength")
    sigma = 0.5 * wavelength if sigma is None else _positive_float(sigma, "sigma")
    phase = _real(phase, "phase")
    aspect = _positive_float(aspect, "aspect")
    r = np.arange(size) - size // 2
    v, u = np.meshgrid(r, r, indexing="ij")  # v: rows (down), u: columns (right)
    # on screen (y down), anticlockwise by theta means the direction (cos t, -sin t) in (u, v)
    a = u * np.cos(theta) - v * np.sin(theta)
    b = u * np.sin(theta) + v * np.cos(theta)
    g = np.exp(-(a**2 + (aspect * b) ** 2) / (2 * sigma**2)) * np.cos(2 * np.pi * a / wavelength + phase)
    g = g - g.mean()
    norm = np.sqrt((g**2).sum())
    if norm == 0:  # a 1x1 kernel minus its mean is all zeros
        raise ValueError(f"size={size} is too small to hold a Gabor filter; use size >= 3")
    return g / norm


def bar_stimulus(
    shape: tuple[int, int], theta: float, length: float, width: float, center: tuple[float, float] | None = None
) -> Array:
    """An image that is 1 on one oriented bar and 0 elsewhere (anti-aliased edges).

    The bar's angle ``theta`` is measured from the vertical, anticlockwise
    as seen on screen (rows going down): ``theta = 0`` is a vertical bar,
    ``theta = pi / 2`` a horizontal one, matching :func:`gabor_kernel`.

    Parameters
    ----------
    shape : (int, int)
        ``(H, W)`` of the image.
    theta : float
        Orientation in radians.
    length, width : float
        The bar's size in pixels, positive.
    center : (float, float), optional
        ``(row, column)`` of the bar's centre; defaults to the image centre
        ``((H - 1) / 2, (W - 1) / 2)``.

    Returns
    -------
    image : ndarray of shape (H, W)
        float64 values in [0, 1]: the fraction of each pixel covered by the bar
        (edges are smoothed over one pixel).

    Raises
    ------
    TypeError
        If an argument has the wrong type.
    ValueError
        If ``shape`` is not two positive integers or a size is not positive.

    Examples
    --------
    >>> bar_stimulus((5, 5), theta=0.0, length=5, width=1)
    array([[0., 0., 1., 0., 0.],
           [0., 0., 1., 0., 0.],
           [0., 0., 1., 0., 0.],
           [0., 0., 1., 0., 0.],
           [0., 0., 1., 0., 0.]])
    """
    H, W = V.int_tuple(shape, "shape", 2, 1)
    theta = _real(theta, "theta")
    length = _positive_float(length, "length")
    width = _positive_float(width, "width")
    if center is None:
        cr, cc = (H - 1) / 2, (W - 1) / 2
    else:
        if not isinstance(center, (tuple, list, np.ndarray)) or len(center) != 2:
            raise ValueError(f"center must be a (row, column) pair, got {center!r}")
        cr, cc = _real(center[0], "center[0]"), _real(center[1], "center[1]")
    rows, cols = np.meshgrid(np.arange(H) - cr, np.arange(W) - cc, indexing="ij")
    # unit vector along the bar on screen: (col, row) = (-sin t, -cos t) up to sign
    along = -cols * np.sin(theta) - rows * np.cos(theta)
    across = cols * np.cos(theta) - rows * np.sin(theta)
    inside_across = np.clip(width / 2 + 0.5 - np.abs(across), 0.0, 1.0)
    inside_along = np.clip(length / 2 + 0.5 - np.abs(along), 0.0, 1.0)
    return inside_across * inside_along


def paint_bar(
    image: Array,
    theta: float,
    length: float,
    width: float,
    center: tuple[float, float] | None = None,
    value: float = 1.0,
) -> Array:
    """A copy of a gray image with an oriented bar painted over it.

    Each pixel becomes ``(1 - c) * image + c * value`` where ``c`` is the bar's
    coverage from :func:`bar_stimulus`.

    Parameters
    ----------
    image : ndarray of shape (H, W)
        Gray image (float); not modified.
    theta, length, width, center
        As :func:`bar_stimulus`.
    value : float, default 1.0
        The bar's brightness (1.0: white on a [0, 1] image).

    Returns
    -------
    painted : ndarray of shape (H, W)
        float64.

    Raises
    ------
    TypeError
        If ``image`` is not a float array or an argument has the wrong type.
    ValueError
        If ``image`` is not 2-D or holds NaN, or as :func:`bar_stimulus`.

    Examples
    --------
    >>> import numpy as np
    >>> paint_bar(np.zeros((3, 3)), theta=0.0, length=3, width=1, value=0.5)
    array([[0. , 0.5, 0. ],
           [0. , 0.5, 0. ],
           [0. , 0.5, 0. ]])
    """
    image = V.float_array(image, "image", 2, "(H, W)")
    V.check_finite(image, "image")
    value = _real(value, "value")
    cover = bar_stimulus(image.shape, theta, length, width, center)
    return (1.0 - cover) * image + cover * value


def to_gray(image: NDArray[np.integer | np.floating]) -> Array:
    """An RGB (or gray) image as a float64 gray image in [0, 1].

    Uses the ITU-R BT.601 luma weights ``0.299 R + 0.587 G + 0.114 B``.

    Parameters
    ----------
    image : ndarray of shape (H, W, 3) or (H, W)
        uint8 (0..255) or float (0..1) values.

    Returns
    -------
    gray : ndarray of shape (H, W)
        float64. The input is not modified.

    Raises
    ------
    TypeError
        If ``image`` is not a NumPy array of integers or floats.
    ValueError
        If ``image`` is not 2-D or 3-D with 3 channels.

    Examples
    --------
    >>> import numpy as np
    >>> to_gray(np.array([[[255, 255, 255], [0, 0, 0]]], dtype=np.uint8))
    array([[1., 0.]])
    """
    if not isinstance(image, np.ndarray) or not (
        np.issubdtype(image.dtype, np.integer) or np.issubdtype(image.dtype, np.floating)
    ):
        raise TypeError(
            f"image must be a NumPy array of integers or floats, got {type(image).__name__}"
            + (f" of dtype {image.dtype}" if isinstance(image, np.ndarray) else "")
        )
    if image.ndim == 3 and image.shape[2] == 3:
        img = image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    elif image.ndim == 2:
        img = image.astype(np.float64)
    else:
        raise ValueError(f"image must have shape (H, W, 3) or (H, W), got {V.shape_str(image.shape)}")
    if np.issubdtype(image.dtype, np.integer):
        img = img / 255.0
    return img


def disk_kernel(radius: float, oversample: int = 8) -> Array:
    """A uniform disk ("pillbox") kernel summing to 1: a defocused lens's point-spread function.

    In geometric optics a point of light seen through a defocused lens with a
    circular aperture spreads into a uniformly lit disk, the circle of
    confusion. Each pixel's weight is the fraction of it covered by the disk
    of the given radius centred on the middle pixel (estimated on an
    ``oversample x oversample`` grid of sub-pixels), then normalised.

    Parameters
    ----------
    radius : float
        Radius of the disk in pixels, positive.
    oversample : int, default 8
        Sub-pixels per pixel side used to estimate the covered fraction.

    Returns
    -------
    kernel : ndarray of shape (2 * ceil(radius) + 1, 2 * ceil(radius) + 1)
        Non-negative, summing to 1, unchanged by ``np.rot90`` and by flips.

    Raises
    ------
    TypeError
        If ``radius`` is not a real number or ``oversample`` not an integer.
    ValueError
        If ``radius`` is not positive and finite or ``oversample`` < 1.

    Examples
    --------
    >>> k = disk_kernel(1.0, oversample=2)
    >>> k.shape, round(float(k.sum()), 12)
    ((3, 3), 1.0)
    >>> bool(k[1, 1] == k.max()) and bool((k[0, 0] == 0.0))
    True
    """
    radius = V.real_number(radius, "radius", 0, low_inclusive=False)
    oversample = V.positive_int(oversample, "oversample")
    half = int(np.ceil(radius))
    # sub-pixel centres, symmetric about each pixel's centre
    sub = (np.arange(oversample) + 0.5) / oversample - 0.5
    offsets = (np.arange(-half, half + 1)[:, None] + sub[None, :]).ravel()
    rows, cols = np.meshgrid(offsets, offsets, indexing="ij")
    inside = (rows**2 + cols**2 <= float(radius) ** 2).astype(np.float64)
    n = 2 * half + 1
    cover = inside.reshape(n, oversample, n, oversample).mean(axis=(1, 3))
    return cover / cover.sum()
