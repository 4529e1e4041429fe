"""Interactive figures that also respond on the static, rendered page.

A live ``ipywidgets.interact`` needs a running kernel: on the rendered book
its slider moves but nothing is recomputed. :func:`frame_slider` precomputes
one picture per slider position and links the slider to a
:class:`ipywidgets.Stack` of those pictures *in the browser* (``jslink``), so
moving it changes the picture with no kernel and no internet.

Chapters use both: ``interact(draw, ...)`` for readers running the notebook,
and ``frame_slider(draw, values)`` so the same figure responds online.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ._optional import require

if TYPE_CHECKING:  # imported when used, so that `import catlab` stays light
    import ipywidgets
    from matplotlib.figure import Figure

__all__ = ["figure_to_png", "png_html", "frame_slider"]


def figure_to_png(fig: Figure, dpi: int = 80) -> bytes:
    """Render a Matplotlib figure to PNG bytes (on a white background) and close it.

    Parameters
    ----------
    fig : matplotlib.figure.Figure
    dpi : int, default 80

    Returns
    -------
    bytes
        The PNG file's contents.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> fig, ax = plt.subplots(figsize=(1, 1))
    >>> figure_to_png(fig)[:4]
    b'\\x89PNG'
    """
    plt = require("matplotlib.pyplot", "matplotlib", None, "catlab.widgets")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white", bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def png_html(png: bytes, alt: str) -> str:
    """An ``<img>`` tag embedding PNG bytes, with alt text.

    Examples
    --------
    >>> png_html(b"abc", "a cat")
    '<img alt="a cat" src="data:image/png;base64,YWJj" style="max-width:100%"/>'
    """
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt, quote=True)}" src="data:image/png;base64,{data}" style="max-width:100%"/>'


def frame_slider(
    draw: Callable[[Any], Figure], values: Sequence[Any], description: str = "", alt: str = "", dpi: int = 80
) -> ipywidgets.VBox:
    """A slider over precomputed figures that works without a kernel.

    Parameters
    ----------
    draw : callable
        ``draw(value) -> matplotlib.figure.Figure``; called once per value.
    values : sequence
        The slider's positions, in order.
    description : str
        The slider's label.
    alt : str
        Alt text for every frame; ``{value}`` is replaced by the frame's value.
    dpi : int, default 80

    Returns
    -------
    ipywidgets.VBox
        The slider above a :class:`ipywidgets.Stack` of images, linked in the browser.
        ``.children[0]`` is the slider, ``.children[1]`` the stack.

    Raises
    ------
    ValueError
        If ``values`` is empty.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import matplotlib.pyplot as plt
    >>> def draw(k):
    ...     fig, ax = plt.subplots(figsize=(2, 1))
    ...     ax.plot([0, 1], [0, k])
    ...     return fig
    >>> box = frame_slider(draw, [1, 2, 3], "slope", alt="a line of slope {value}")
    >>> len(box.children[1].children), box.children[0].options
    (3, ('1', '2', '3'))
    """
    widgets = require("ipywidgets", "ipywidgets", None, "catlab.widgets.frame_slider")

    values = list(values)
    if not values:
        raise ValueError("values must hold at least one slider position, got an empty sequence")
    frames = [
        widgets.HTML(png_html(figure_to_png(draw(v), dpi=dpi), alt.format(value=v) if alt else f"{description} = {v}"))
        for v in values
    ]
    stack = widgets.Stack(frames, selected_index=0)
    slider = widgets.SelectionSlider(
        options=[str(v) for v in values],
        index=0,
        description=description,
        continuous_update=True,
        style={"description_width": "initial"},
        layout=widgets.Layout(width="420px"),
    )
    widgets.jslink((slider, "index"), (stack, "selected_index"))
    return widgets.VBox([slider, stack])
