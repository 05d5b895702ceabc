"""History figures: one metric's runs over time with its level shifts, many such panels, a sparkline.

A *series* is one metric of one scenario or notebook on one machine, its runs in time order
(:data:`axon_lab.history.check.SERIES_KEY`). The x axis is the run order (runs are not evenly
spaced in time), labelled with the runs' UTC dates; segment means between change points are
horizontal lines and each change point is a dashed vertical line labelled with its relative
change and kind ("+12% regression").

Figures are ``matplotlib.figure.Figure`` objects (not pyplot): shown once in a notebook, saved
by the caller (:func:`axon_lab.history.site.build_site`); nothing here reads or writes files.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from axon_lab import figures
from axon_lab.history.changepoints import ChangePoint, segments
from axon_lab.history.check import SERIES_KEY

figures.enable_notebook_display()

__all__ = ["COLORS", "change_label", "machine_label", "sparkline", "trend", "trends"]

#: Colours of the values, segment means and the two kinds of change point.
COLORS = {
    "values": "#607d8b",
    "mean": "#1565c0",
    "regression": "#c62828",
    "improvement": "#2e7d32",
}

#: Change points as :class:`ChangePoint` objects, or their rows of ``site.changes``.
Points: TypeAlias = Sequence[ChangePoint] | pd.DataFrame


def machine_label(machine: Any) -> str:
    """The short name of a machine id (``node|cpu|cores|memory`` → ``node``)."""
    text = (
        ""
        if machine is None or (isinstance(machine, float) and math.isnan(machine))
        else str(machine)
    )
    return text.split("|", 1)[0] or "?"


def _points(points: Points) -> list[tuple[int, float, str]]:
    """``(index, change, kind)`` of change points given as objects or as a changes frame."""
    if isinstance(points, pd.DataFrame):
        if not len(points):
            return []
        return [
            (int(i), float(c), str(k))
            for i, c, k in zip(points["index"], points["change"], points["kind"], strict=True)
        ]
    return [(p.index, p.change, p.kind) for p in points]


def change_label(change: float, kind: str) -> str:
    """``+12% regression`` (the kind alone when the change is not a number)."""
    if change is None or not math.isfinite(change):
        return kind
    return f"{change:+.0%} {kind}" if abs(change) >= 0.01 else f"{change:+.1%} {kind}"


def _date_labels(times: pd.Series) -> list[str]:
    t = pd.to_datetime(times, utc=True)
    if not len(t):
        return []
    span = t.max() - t.min()
    fmt = "%Y-%m-%d" if span >= pd.Timedelta(days=2) else "%m-%d %H:%M"
    return [x.strftime(fmt) if not pd.isna(x) else "" for x in t]


def _draw(ax: Axes, series_frame: pd.DataFrame, points: Points, *, compact: bool) -> None:
    """Values over run order, segment means, change points; dates as x tick labels."""
    values = series_frame["value"].to_numpy(dtype=float)
    n = values.size
    if n == 0:
        ax.text(0.5, 0.5, "no runs", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    x = np.arange(n)
    marker = "." if n <= 200 else None
    ax.plot(x, values, color=COLORS["values"], lw=0.8, marker=marker, ms=3, label="run")
    pts = [p for p in _points(points) if 0 < p[0] < n]
    for k, (start, end, mean) in enumerate(segments(values, [p[0] for p in pts])):
        if math.isfinite(mean):
            label = "segment mean" if k == 0 else "_nolegend_"
            ax.hlines(mean, start - 0.5, end - 0.5, color=COLORS["mean"], lw=2, label=label)
    seen: set[str] = set()
    for k, (i, change, kind) in enumerate(pts):
        color = COLORS.get(kind, "#000000")
        ax.axvline(
            i - 0.5, color=color, ls="--", lw=1.2, label="_nolegend_" if kind in seen else kind
        )
        seen.add(kind)
        # stagger the labels of neighbouring points so they do not overlap
        ax.text(
            i - 0.5,
            0.97 - 0.11 * (k % 3),
            " " + change_label(change, kind),
            transform=ax.get_xaxis_transform(),
            color=color,
            va="top",
            ha="left",
            fontsize=7 if compact else 8,
            bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.8, "pad": 1},
        )
    labels = _date_labels(series_frame["created_utc"]) if "created_utc" in series_frame else []

    def _fmt(v: float, _pos: int) -> str:
        i = int(round(v))
        return labels[i] if 0 <= i < len(labels) and abs(v - i) < 1e-6 else ""

    ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if compact else 7, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(_fmt))
    ax.set_xlim(-0.5 - 0.01 * n, n - 0.5 + 0.01 * n)
    metric = str(series_frame["metric"].iloc[0]) if "metric" in series_frame else "value"
    unit = str(series_frame["unit"].iloc[0] or "") if "unit" in series_frame else ""
    ax.set_ylabel(f"{metric} ({unit})" if unit else metric, fontsize=7 if compact else 9)
    if not compact:
        ax.set_xlabel(f"run (1 to {n}, oldest first), labelled with its UTC date", fontsize=8)
    ax.tick_params(labelsize=7 if compact else 8)
    ax.grid(alpha=0.3, lw=0.5)


@figures.captioned(
    "One metric over runs; a vertical marker is a change point: a step in the bad direction is a regression."
)
def trend(series_frame: pd.DataFrame, points: Points, *, title: str) -> Figure:
    """One series over its runs, with segment means and change points.

    Parameters
    ----------
    series_frame : pandas.DataFrame
        The rows of one series in time order (tidy history rows: ``value`` and ``created_utc``;
        ``metric`` and ``unit`` label the y axis).
    points : sequence of ChangePoint, or pandas.DataFrame
        Its change points (:func:`~axon_lab.history.changepoints.detect`), or their rows of
        :func:`axon_lab.history.site.changes` (columns ``index``, ``change``, ``kind``); an
        ``index`` is the position in ``series_frame`` of the first run after the shift.
    title : str
        The figure's title; write it as a sentence that could serve as alt text (what, where,
        how many runs).

    Returns
    -------
    matplotlib.figure.Figure
        x = run order labelled with dates, y = the value in its unit; horizontal lines are the
        means of the segments between change points; dashed vertical lines the change points,
        labelled ``+12% regression`` / ``-8% improvement``.
    """
    fig = Figure(figsize=(9, 3.6))
    # fixed margins, not tight_layout: the same layout for every series, and a site of 50
    # series builds in half the time (tight_layout draws the figure once more to measure it)
    fig.subplots_adjust(left=0.09, right=0.985, top=0.86, bottom=0.16)
    ax = fig.subplots()
    _draw(ax, series_frame, points, compact=False)
    fig.suptitle(title, fontsize=9, x=0.09, y=0.975, ha="left")
    if len(series_frame):
        fig.legend(
            fontsize=7, loc="upper right", ncols=4, frameon=False, bbox_to_anchor=(0.985, 0.93)
        )
    return fig


@figures.captioned(
    "Each panel is one metric over runs; vertical markers are change points: a step in the bad direction is a regression to look into."
)
def trends(
    frame: pd.DataFrame,
    changes: pd.DataFrame | None = None,
    *,
    columns: int = 2,
    max_series: int = 12,
) -> Figure:
    """Many series side by side: one small :func:`trend` panel per series.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy history rows (:func:`axon_lab.history.site.select`); one panel per
        (metric, name, machine), runs in time order.
    changes : pandas.DataFrame, optional
        Change points per series (:func:`axon_lab.history.site.changes`).
    columns : int
        Panels per row.
    max_series : int
        Draw at most this many series: those whose last change point is a regression first,
        then improvements, then the rest, each in (metric, name, machine) order; the title says
        how many were left out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    key = list(SERIES_KEY)
    groups: list[tuple[Any, pd.DataFrame]] = []
    if len(frame):
        ordered = frame.sort_values("created_utc", kind="stable")
        groups = list(ordered.groupby(key, sort=True, dropna=False))
    if changes is not None and len(changes):
        # series whose last shift is a regression first, then improvements, then the rest
        last = changes.sort_values("index", kind="stable").groupby(key, dropna=False)["kind"].last()
        rank = {"regression": 0, "improvement": 1}
        kinds = {tuple(map(str, k)): rank.get(v, 2) for k, v in last.items()}
        groups.sort(key=lambda g: kinds.get(tuple(map(str, g[0])), 2))
    shown = groups[:max_series]
    if not shown:
        fig = Figure(figsize=(6, 1.5))
        ax = fig.subplots()
        ax.text(0.5, 0.5, "no runs in the history", ha="center", va="center")
        ax.set_axis_off()
        return fig
    cols = max(1, min(columns, len(shown)))
    rows = math.ceil(len(shown) / cols)
    fig = Figure(figsize=(5.5 * cols, 2.6 * rows))
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, (k, rows_k) in zip(axes, shown, strict=False):
        rows_k = rows_k.reset_index(drop=True)
        pts: Points = []
        if changes is not None and len(changes):
            mine = [
                tuple(map(str, c)) == tuple(map(str, k))
                for c in changes[key].itertuples(index=False)
            ]
            pts = changes[mine]
        _draw(ax, rows_k, pts, compact=True)
        title = f"{k[0]} · {k[1]} @ {machine_label(k[2])} ({len(rows_k)} runs)"
        ax.set_title(title, fontsize=8, loc="left")
    for ax in axes[len(shown) :]:
        ax.set_axis_off()
    top = 1.0
    if len(groups) > len(shown):
        top = 1 - 0.35 / fig.get_figheight()  # room for the suptitle
        fig.suptitle(f"{len(shown)} of {len(groups)} series (choose metrics to see others)")
    fig.tight_layout(rect=(0, 0, 1, top))
    return fig


def sparkline(values: Sequence[float] | np.ndarray) -> Figure:
    """A tiny line of ``values`` (no axes), the last value marked with a dot.

    Parameters
    ----------
    values : sequence of float
        The series, oldest first (NaNs leave gaps).

    Returns
    -------
    matplotlib.figure.Figure
        1.6 × 0.4 inches.
    """
    v = np.asarray(values, dtype=float).reshape(-1)
    fig = Figure(figsize=(1.6, 0.4))
    ax = fig.add_axes((0.02, 0.1, 0.96, 0.8))
    ax.set_axis_off()
    if v.size:
        ax.plot(np.arange(v.size), v, color=COLORS["values"], lw=0.8)
        ax.plot([v.size - 1], [v[-1]], "o", color=COLORS["mean"], ms=2.5)
    return fig
