"""Notebook display of figures, shared by every experiment's ``plots`` module.

Plot functions (``axon_lab.<experiment>.plots``) take frames and return plain
``matplotlib.figure.Figure`` objects (no pyplot state), never touch files. Each plots module
calls :func:`enable_notebook_display` on import: inside IPython it registers formatters for
figures, so a figure returned by a notebook cell is shown exactly once (and embedded in HTML
exports), without ``%matplotlib inline``.

Every figure is shown with alternative text (for screen readers and nbconvert's accessibility
check) and, when its plot function gave one, a caption saying what to look for:
:func:`describe` attaches both; without it the alt text is made from the figure's titles and
axis labels (:func:`alt_text`). Before a figure is drawn for display, :func:`tidy` gives log
axes plain, non-overlapping tick labels (``200``, ``1k``, ``5k`` instead of ``2×10²``,
``3×10³4×10³``).
"""

from __future__ import annotations

import base64
import functools
import html
from collections.abc import Callable
from typing import Any, TypeVar

from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogFormatterSciNotation, LogLocator, NullFormatter

F = TypeVar("F", bound=Callable[..., Any])
_ALT = "_axon_alt"
_CAPTION = "_axon_caption"


def describe(fig: Figure, *, alt: str | None = None, caption: str | None = None) -> Figure:
    """Attach alt text (what the figure shows) and a caption (what to look for) to ``fig``."""
    if alt:
        setattr(fig, _ALT, alt)
    if caption:
        setattr(fig, _CAPTION, caption)
    return fig


def captioned(caption: str, *, alt: str | None = None) -> Callable[[F], F]:
    """Decorate a plot function: the figure it returns gets ``caption`` (what to look for) and
    ``alt`` (what it shows), unless the function described it itself.
    """

    def deco(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            fig = fn(*args, **kwargs)
            if isinstance(fig, Figure):
                describe(
                    fig,
                    alt=None if getattr(fig, _ALT, None) else alt,
                    caption=None if caption_of(fig) else caption,
                )
            return fig

        return wrapper  # type: ignore[return-value]

    return deco


def caption_of(fig: Figure) -> str:
    """The caption given with :func:`describe` (empty if none)."""
    return str(getattr(fig, _CAPTION, "") or "")


def alt_text(fig: Figure) -> str:
    """The figure's alt text: the one given to :func:`describe`, else made from its titles and
    axis labels (``"Response time: histogram (x: ms, y: requests); ..."``). Never empty.
    """
    given = getattr(fig, _ALT, None)
    if given:
        return str(given)
    parts = []
    sup = getattr(fig, "_suptitle", None)
    if sup is not None and sup.get_text():
        parts.append(sup.get_text())
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        title = ax.get_title() or ax.get_title(loc="left") or ax.get_title(loc="right")
        axes = ", ".join(
            f"{k}: {v}" for k, v in (("x", ax.get_xlabel()), ("y", ax.get_ylabel())) if v
        )
        if title or axes:
            parts.append(f"{title} ({axes})" if title and axes else title or axes)
    return "; ".join(parts) or "figure"


def _plain(value: float, _pos: Any = None) -> str:
    """A tick value as plain text: 0.5, 20, 300, 2k, 1.5M."""
    if value == 0:
        return "0"
    v = abs(value)
    if v >= 1e6:
        text = f"{value / 1e6:g}M"
    elif v >= 1e4:
        text = f"{value / 1e3:g}k"
    elif v >= 1:
        text = f"{value:,.0f}" if float(value).is_integer() else f"{value:g}"
    else:
        text = f"{value:g}"
    return text


def tidy(fig: Figure) -> Figure:
    """Readable tick labels on base-10 log axes that still use matplotlib's default labels:
    plain numbers (``500``, ``1,000``, ``2k``) at every step of a short axis (under a decade for
    y, a factor of 2 for x), at 1, 2, 3, 5 under a decade, at 1, 2, 5 up to three decades, else at
    each decade; no labels on minor ticks (they overlapped: ``3×10³4×10³``).
    """
    for ax in fig.axes:
        for axis, scale in ((ax.xaxis, ax.get_xscale()), (ax.yaxis, ax.get_yscale())):
            if scale != "log":
                continue
            fmt = axis.get_major_formatter()
            if not isinstance(fmt, LogFormatterSciNotation) or getattr(fmt, "_base", 10) != 10:
                continue
            lo, hi = sorted(axis.get_view_interval())
            span = (hi / lo) if lo > 0 else 1e9  # max / min of the axis
            dense = 10 if axis is ax.yaxis else 2  # stacked y labels have room for 1..9
            if span < dense:
                subs: tuple[float, ...] = tuple(float(i) for i in range(1, 10))
            elif span < 10:
                subs = (1.0, 2.0, 3.0, 5.0)
            elif span <= 1e3:
                subs = (1.0, 2.0, 5.0)
            else:
                subs = (1.0,)
            axis.set_major_locator(LogLocator(base=10, subs=subs))
            axis.set_major_formatter(FuncFormatter(_plain))
            axis.set_minor_formatter(NullFormatter())
    return fig


def _png(fig: Figure) -> bytes:
    from IPython.core.pylabtools import print_figure  # draws to bytes; no file involved

    if not fig.axes:  # IPython draws nothing for a figure without axes
        fig.add_subplot().axis("off")
    tidy(fig)
    return bytes(print_figure(fig, fmt="png", bbox_inches="tight", dpi=100))


def _png_with_alt(fig: Figure) -> tuple[bytes, dict[str, str]]:
    return _png(fig), {"alt": alt_text(fig)}


def figure_html(fig: Figure) -> str:
    """``<figure>`` with the PNG (alt text) and the caption, as shown in notebooks and reports."""
    data = base64.b64encode(_png(fig)).decode("ascii")
    cap = caption_of(fig)
    caption = (
        f"<figcaption style='color:#444;font-size:.9em;max-width:60em'>{html.escape(cap)}"
        "</figcaption>"
        if cap
        else ""
    )
    return (
        "<figure style='margin:.5em 0'>"
        f"<img src='data:image/png;base64,{data}' alt='{html.escape(alt_text(fig), quote=True)}' "
        "style='max-width:100%;height:auto'>"
        f"{caption}</figure>"
    )


def enable_notebook_display() -> None:
    """Register the figure formatters when running inside IPython (idempotent): HTML (image with
    alt text and caption) and PNG (with ``alt`` metadata) for other front ends.
    """
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return
    shell = get_ipython()
    if shell is None:
        return
    formatters = shell.display_formatter.formatters
    formatters["image/png"].for_type(Figure, _png_with_alt)
    formatters["text/html"].for_type(Figure, figure_html)
