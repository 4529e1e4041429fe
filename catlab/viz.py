"""Plotting helpers for the book: feature maps, filters, a filter sliding over an input, training results.

Every function checks its input, draws with Matplotlib and returns the
:class:`~matplotlib.figure.Figure` (and never calls ``plt.show()``), so the
same call works in a notebook, in :func:`catlab.widgets.frame_slider` and in
tests. Arrays follow catlab's layout: feature maps ``(C, H, W)``, filters
``(C_out, C_in, kH, kW)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import _validate as V
from ._optional import require
from ._typing import ArrayLike, NDArray

if TYPE_CHECKING:  # matplotlib is imported when a figure is drawn
    from matplotlib.figure import Figure

__all__ = [
    "mosaic",
    "conv_geometry",
    "dot_product",
    "feature_maps",
    "filters",
    "image_grid",
    "confusion_matrix",
    "plot_confusion_matrix",
    "plot_history",
]


def _array(x, name, ndims, layout):
    x = np.asarray(x)
    if x.ndim not in ndims:
        want = " or ".join(str(n) for n in ndims)
        raise ValueError(f"{name}: expected a {want}-D array {layout}, got shape {x.shape}")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise TypeError(f"{name}: expected a numeric array, got dtype {x.dtype}")
    return x


def _positive(v, name, minimum=1):
    return V.int_in_range(v, name, minimum)


def _grid(n, ncols, size, title):
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.viz")

    ncols = max(1, min(ncols, n))
    nrows = math.ceil(n / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows + (0.4 if title else 0)), squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes.flat[n:]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return fig, axes.flat[:n]


def mosaic(maps: ArrayLike, ncols: int = 8, pad: int = 1, normalize: bool = True) -> NDArray[np.float64]:
    """Tile a stack of 2-D maps into one image, separated by NaN gaps.

    One ``imshow`` of a mosaic is much faster to draw than one axes per map,
    which matters for figures precomputed for :func:`catlab.widgets.frame_slider`.

    Parameters
    ----------
    maps : ndarray of shape (C, H, W)
    ncols : int, default 8
        Maps per row.
    pad : int, default 1
        Width of the gap between maps (NaN, drawn as the background).
    normalize : bool, default True
        Scale each map to [0, 1] on its own (a constant map becomes 0).

    Returns
    -------
    ndarray of shape (rows * (H + pad) - pad, ncols' * (W + pad) - pad), float64
        ``ncols' = min(ncols, C)`` and ``rows = ceil(C / ncols')``; unused cells are NaN.

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D, or ``ncols`` < 1 or ``pad`` < 0.

    Examples
    --------
    >>> import numpy as np
    >>> m = mosaic(np.arange(8.).reshape(2, 2, 2), ncols=2, normalize=False)
    >>> m.shape
    (2, 5)
    >>> m[0]
    array([ 0.,  1., nan,  4.,  5.])
    """
    maps = _array(maps, "maps", (3,), "(C, H, W)").astype(np.float64)
    ncols = _positive(ncols, "ncols")
    pad = _positive(pad, "pad", 0)
    C, H, W = maps.shape
    ncols = min(ncols, C)
    rows = math.ceil(C / ncols)
    out = np.full((rows * (H + pad) - pad, ncols * (W + pad) - pad), np.nan)
    for i in range(C):
        m = _unit(maps[i]) if normalize else maps[i]
        r, c = divmod(i, ncols)
        out[r * (H + pad) : r * (H + pad) + H, c * (W + pad) : c * (W + pad) + W] = m
    return out


def conv_geometry(
    size: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    position: tuple[int, int] = (0, 0),
) -> Figure:
    """Draw a filter on a padded input grid and the output cell it produces.

    The left panel shows the ``size x size`` input (white), its zero padding
    (grey) and the filter's taps at output ``position`` (orange, dilation leaves
    gaps); the right panel shows the output grid with that cell marked.

    Parameters
    ----------
    size : int
        Input width and height W.
    kernel_size, stride, padding, dilation : int
        F, S, P (per side) and the dilation, as in :func:`catlab.functional.conv2d`.
    position : (int, int)
        The output cell ``(row, column)`` to draw.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[0]`` the padded input (an RGB image: grey padding, white input,
        orange taps), ``fig.axes[1]`` the output grid; ``fig.out_size`` is the output
        width and ``fig.taps`` the ``(row, column)`` of each tap in padded coordinates.

    Raises
    ------
    ValueError
        If an argument is not a positive int (padding: non-negative), the dilated
        filter does not fit in the padded input, or ``position`` is outside the output.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig = conv_geometry(7, 3, stride=2)
    >>> fig.out_size, fig.axes[1].get_title()
    (3, 'output 3x3')
    """
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.viz")
    from matplotlib.colors import to_rgb

    W = _positive(size, "size")
    F = _positive(kernel_size, "kernel_size")
    S = _positive(stride, "stride")
    P = _positive(padding, "padding", 0)
    D = _positive(dilation, "dilation")
    span = D * (F - 1) + 1
    if span > W + 2 * P:
        raise ValueError(f"kernel_size: the filter spans {span} cells but the padded input is {W + 2 * P} wide")
    out = (W + 2 * P - span) // S + 1
    r, c = position
    if not (0 <= r < out and 0 <= c < out):
        raise ValueError(f"position must lie in the {out}x{out} output, got {position}")
    Wp = W + 2 * P
    orange = np.array(to_rgb("tab:orange"))
    canvas = np.full((Wp, Wp, 3), 0.85)  # (Wp, Wp, RGB): padding grey
    canvas[P : P + W, P : P + W] = 1.0  # the input, white
    taps = [(r * S + a * D, c * S + b * D) for a in range(F) for b in range(F)]
    for i, j in taps:
        canvas[i, j] = orange
    grid = np.ones((out, out, 3))
    grid[r, c] = orange
    fig, (ax_in, ax_out) = plt.subplots(1, 2, figsize=(8, 4), gridspec_kw={"width_ratios": [Wp, max(out, 3)]})
    for ax, img, n in ((ax_in, canvas, Wp), (ax_out, grid, out)):
        ax.imshow(img, extent=(-0.5, n - 0.5, n - 0.5, -0.5), interpolation="nearest")
        lines = np.arange(n + 1) - 0.5
        ax.vlines(lines, -0.5, n - 0.5, color="0.5", lw=0.5)
        ax.hlines(lines, -0.5, n - 0.5, color="0.5", lw=0.5)
        ticks = np.arange(0, n, max(1, n // 8))
        ax.set_xticks(ticks)
        ax.set_yticks(ticks)
        ax.set_xlabel("column")
        ax.set_ylabel("row")
    ax_out.set_xlim(-0.5, max(out, 3) - 0.5)
    ax_out.set_ylim(max(out, 3) - 0.5, -0.5)
    ax_in.set_title(f"input {W}x{W}, padding {P}" + (f", dilation {D}" if D > 1 else ""))
    ax_out.set_title(f"output {out}x{out}")
    if D == 1:
        formula = f"(W - F + 2P) / S + 1 = ({W} - {F} + 2*{P}) / {S} + 1 -> {out}"
    else:  # a dilated filter spans D(F - 1) + 1 inputs
        formula = f"(W - D(F-1) - 1 + 2P) / S + 1 = ({W} - {span} + 2*{P}) / {S} + 1 -> {out}"
    fig.suptitle(f"{formula}  (filter {F}x{F}, stride {S})", y=1.02)
    fig.taps = taps
    fig.out_size = out
    return fig


def dot_product(patch: ArrayLike, weight: ArrayLike, bias: float = 0.0) -> Figure:
    """Show the input patch, the filter and their element-wise product, channel by channel.

    Parameters
    ----------
    patch : ndarray of shape (C, F, F)
        The part of the input under the filter.
    weight : ndarray of shape (C, F, F)
        One filter.
    bias : float
        The filter's bias, added to the sum.

    Returns
    -------
    matplotlib.figure.Figure
        Three rows (patch, weights, product) by C columns; ``fig.value`` holds
        ``sum(patch * weight) + bias``, the output value, also in the title.

    Raises
    ------
    ValueError
        If the shapes are not equal 3-D arrays.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> fig = dot_product(np.ones((3, 5, 5)), np.full((3, 5, 5), 2.0), bias=1.0)
    >>> fig.value, len(fig.axes)
    (151.0, 9)
    """
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.viz")

    patch = _array(patch, "patch", (3,), "(C, F, F)").astype(np.float64)
    weight = _array(weight, "weight", (3,), "(C, F, F)").astype(np.float64)
    if patch.shape != weight.shape:
        raise ValueError(f"weight: expected the patch's shape {patch.shape}, got {weight.shape}")
    C = patch.shape[0]
    prod = patch * weight
    value = float(prod.sum() + bias)
    fig, axes = plt.subplots(3, C, figsize=(2.2 * C, 6.4), squeeze=False)
    lim = float(np.abs(weight).max()) or 1.0
    plim = float(np.abs(prod).max()) or 1.0
    for ch in range(C):
        axes[0, ch].imshow(patch[ch], cmap="gray")
        axes[1, ch].imshow(weight[ch], cmap="RdBu_r", vmin=-lim, vmax=lim)
        axes[2, ch].imshow(prod[ch], cmap="RdBu_r", vmin=-plim, vmax=plim)
        axes[0, ch].set_title(f"channel {ch}")
        axes[2, ch].set_xlabel(f"sum {prod[ch].sum():+.3f}")
    for row, name in enumerate(["input patch", "weights", "product"]):
        axes[row, 0].set_ylabel(name)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(f"{weight.size} weights: sum of products {prod.sum():+.4f} + bias {bias:+.4f} = {value:+.4f}")
    fig.value = value
    return fig


def feature_maps(
    maps: ArrayLike, ncols: int = 8, title: str | None = None, cmap: str = "viridis", size: float = 1.3
) -> Figure:
    """Draw the channels of one feature-map stack side by side.

    Parameters
    ----------
    maps : ndarray of shape (C, H, W)
        One image's activations at one layer.
    ncols : int, default 8
    title : str, optional
    cmap : str, default "viridis"
        Each map is scaled to its own range.
    size : float, default 1.3
        Inches per map.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[i]`` shows channel ``i`` (extra, hidden axes come last).

    Raises
    ------
    ValueError
        If ``maps`` is not 3-D.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> fig = feature_maps(np.arange(24.).reshape(6, 2, 2), ncols=4, title="conv1")
    >>> len(fig.axes), fig.axes[5].get_title()
    (8, '5')
    """
    maps = _array(maps, "maps", (3,), "(C, H, W)")
    fig, axes = _grid(maps.shape[0], _positive(ncols, "ncols"), size, title)
    for i, ax in enumerate(axes):
        ax.imshow(maps[i], cmap=cmap)
        ax.set_title(str(i), fontsize=8)
    return fig


def _unit(a):
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def filters(weight: ArrayLike, ncols: int = 8, title: str | None = None, size: float = 1.0) -> Figure:
    """Draw convolution filters.

    Filters with 3 input channels are drawn as colour images, with 1 as grey
    images (each scaled to its own range); filters with other depths are drawn
    one row per filter and one column per input channel.

    Parameters
    ----------
    weight : ndarray of shape (C_out, C_in, kH, kW)
    ncols : int, default 8
        Columns when ``C_in`` is 1 or 3.
    title : str, optional
    size : float, default 1.0
        Inches per filter.

    Returns
    -------
    matplotlib.figure.Figure
        ``fig.axes[i]`` shows filter ``i`` (or filter ``i // C_in``, channel ``i % C_in``).

    Raises
    ------
    ValueError
        If ``weight`` is not 4-D.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> w = np.random.default_rng(0).normal(size=(6, 3, 5, 5))
    >>> fig = filters(w, ncols=3)
    >>> len(fig.axes), fig.axes[0].get_images()[0].get_array().shape
    (6, (5, 5, 3))
    """
    w = _array(weight, "weight", (4,), "(C_out, C_in, kH, kW)").astype(np.float64)
    K, C = w.shape[:2]
    if C in (1, 3):
        fig, axes = _grid(K, _positive(ncols, "ncols"), size, title)
        for k, ax in enumerate(axes):
            if C == 3:
                ax.imshow(_unit(w[k]).transpose(1, 2, 0))
            else:
                ax.imshow(w[k, 0], cmap="gray")
            ax.set_title(str(k), fontsize=8)
        return fig
    fig, axes = _grid(K * C, C, size * 0.8, title)
    for i, ax in enumerate(axes):
        ax.imshow(w[i // C, i % C], cmap="gray")
        if i < C:
            ax.set_title(f"in {i}", fontsize=7)
        if i % C == 0:
            ax.set_ylabel(f"filter {i // C}", fontsize=7)
    return fig


def image_grid(
    images: ArrayLike,
    titles: Sequence[str] | None = None,
    ncols: int = 8,
    title: str | None = None,
    cmap: str = "gray",
    size: float = 1.2,
) -> Figure:
    """Draw a row-major grid of images with optional per-image titles.

    Parameters
    ----------
    images : ndarray of shape (N, H, W) or (N, H, W, 3)
    titles : sequence of str, optional
        One per image.
    ncols : int, default 8
    title : str, optional
    cmap : str, default "gray"
        For grey images.
    size : float, default 1.2

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``images`` has the wrong number of dimensions or ``titles`` the wrong length.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> fig = image_grid(np.zeros((3, 8, 8)), titles=["a", "b", "c"])
    >>> [ax.get_title() for ax in fig.axes]
    ['a', 'b', 'c']
    """
    images = _array(images, "images", (3, 4), "(N, H, W) or (N, H, W, 3)")
    n = images.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles: expected {n} titles, one per image, got {len(titles)}")
    fig, axes = _grid(n, _positive(ncols, "ncols"), size, title)
    for i, ax in enumerate(axes):
        ax.imshow(images[i], cmap=cmap if images.ndim == 3 else None)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    return fig


def confusion_matrix(y_true: ArrayLike, y_pred: ArrayLike, num_classes: int | None = None) -> NDArray[np.int64]:
    """Count how often each true class was predicted as each class.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (N,)
        Integer class labels in ``[0, num_classes)``.
    num_classes : int, optional
        Defaults to ``max(y_true.max(), y_pred.max()) + 1``.

    Returns
    -------
    cm : ndarray of shape (num_classes, num_classes), int64
        ``cm[i, j]`` is the number of examples of class ``i`` predicted as ``j``.

    Raises
    ------
    TypeError
        If the labels are not integers.
    ValueError
        If the shapes differ or a label is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> confusion_matrix(np.array([0, 1, 1, 2]), np.array([0, 2, 1, 2]))
    array([[1, 0, 0],
           [0, 1, 1],
           [0, 0, 1]])
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if not np.issubdtype(y.dtype, np.integer):
            raise TypeError(f"{name} must hold integer class labels, got dtype {y.dtype}")
        if y.ndim != 1:
            raise ValueError(f"{name}: expected a 1-D array of labels, got shape {y.shape}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_pred: expected shape {y_true.shape} to match y_true, got {y_pred.shape}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    num_classes = _positive(num_classes, "num_classes")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name}: labels must lie in [0, {num_classes}), got {y.min()}..{y.max()}")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (y_true, y_pred), 1)
    return cm


def plot_confusion_matrix(
    cm: ArrayLike, class_names: Sequence[str] | None = None, title: str = "confusion matrix"
) -> Figure:
    """Draw a confusion matrix with its counts written in the cells.

    Parameters
    ----------
    cm : ndarray of shape (K, K)
        As returned by :func:`confusion_matrix`.
    class_names : sequence of str, optional
    title : str

    Returns
    -------
    matplotlib.figure.Figure
        One axes, true class on the y axis, predicted class on the x axis.

    Raises
    ------
    ValueError
        If ``cm`` is not square or ``class_names`` has the wrong length.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> fig = plot_confusion_matrix(np.array([[3, 1], [0, 4]]))
    >>> [t.get_text() for t in fig.axes[0].texts]
    ['3', '1', '0', '4']
    """
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.viz")

    cm = _array(cm, "cm", (2,), "(K, K)")
    K = cm.shape[0]
    if cm.shape != (K, K):
        raise ValueError(f"cm: expected a square matrix, got shape {cm.shape}")
    names = [str(i) for i in range(K)] if class_names is None else [str(n) for n in class_names]
    if len(names) != K:
        raise ValueError(f"class_names: expected {K} names, got {len(names)}")
    fig, ax = plt.subplots(figsize=(0.5 * K + 2, 0.5 * K + 1.5))
    ax.imshow(cm, cmap="Blues")
    half = cm.max() / 2 if cm.size else 0
    for i in range(K):
        for j in range(K):
            ax.text(
                j, i, str(cm[i, j]), ha="center", va="center", fontsize=8, color="white" if cm[i, j] > half else "black"
            )
    ax.set_xticks(range(K), names)
    ax.set_yticks(range(K), names)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    return fig


def plot_history(history: Mapping[str, Sequence[float]], title: str | None = None) -> Figure:
    """Plot training curves: every series whose name contains "loss" on the left, the rest on the right.

    Parameters
    ----------
    history : mapping of str to sequence of float
        For example ``{"train_loss": [...], "train_acc": [...], "test_acc": [...]}``,
        one value per epoch.
    title : str, optional

    Returns
    -------
    matplotlib.figure.Figure
        Two axes (loss, other metrics), or one if only losses are given.

    Raises
    ------
    ValueError
        If ``history`` is empty.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> fig = plot_history({"loss": [2.0, 1.0], "accuracy": [0.5, 0.9]})
    >>> [ax.get_ylabel() for ax in fig.axes]
    ['loss', 'accuracy']
    """
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.viz")
    from matplotlib.ticker import MaxNLocator

    items = [(k, np.asarray(v, dtype=np.float64)) for k, v in dict(history).items()]
    if not items:
        raise ValueError("history must hold at least one series, got an empty mapping")
    losses = [(k, v) for k, v in items if "loss" in k]
    others = [(k, v) for k, v in items if "loss" not in k]
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.2), squeeze=False)
    for ax, panel, label in zip(axes[0], panels, ["loss" if losses else "accuracy", "accuracy"]):
        for k, v in panel:
            ax.plot(np.arange(1, len(v) + 1), v, marker="o", ms=3, label=k)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    return fig
