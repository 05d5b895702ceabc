"""Figures for profiling: a flame graph (icicle) from scalene stacks, top functions, RSS/CPU% and event-loop lag over time, the soak memory fit.

Functions take frames from :mod:`axon_lab.profiling` and return a
``matplotlib.figure.Figure`` (never pyplot, never a file).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from axon_lab import figures, goals
from axon_lab.profiling import LAG_LIMIT_MS, PHASES

figures.enable_notebook_display()

PHASE_COLORS = {"startup": "#9e9e9e", "idle": "#2e7d32", "load": "#c62828", "drain": "#1565c0"}


@figures.captioned(
    "Wider boxes take more CPU; look for a wide box in axon_lab code near the top, the function to optimise."
)
def flame(
    layout: pd.DataFrame, *, title: str = "CPU flame graph (scalene stacks, axon_lab frames)"
) -> Figure:
    """Icicle flame graph: x = share of sampled CPU time, y = call depth (outermost at the top).

    Wide boxes are where the time goes; a box's children sit below it.
    """
    depth = int(layout.depth.max()) + 1 if len(layout) else 1
    fig = Figure(figsize=(12, 0.42 * depth + 1.2))
    ax = fig.subplots()
    cmap = matplotlib.colormaps.get_cmap("YlOrRd")
    for r in layout.itertuples():
        # Colour by file, stably across runs (str hash() is salted per process).
        color = cmap(0.25 + 0.6 * (zlib.crc32(r.label.split(" ")[0].encode()) % 100) / 100)
        ax.add_patch(
            Rectangle((r.x0, r.depth), r.width, 0.95, facecolor=color, edgecolor="white", lw=0.5)
        )
        if r.width > 0.04:
            chars = int(r.width * 160)
            text = r.label if len(r.label) <= chars else r.label[: max(chars - 1, 1)] + "…"
            ax.text(r.x0 + 0.003, r.depth + 0.47, text, va="center", fontsize=7, clip_on=True)
    ax.set_xlim(0, 1)
    ax.set_ylim(depth, 0)
    ax.set_yticks([])
    ax.set_xlabel("share of sampled CPU time")
    ax.set_title(title)
    fig.tight_layout()
    return fig


@figures.captioned("The longest bars are where the time or memory goes; start with the top one.")
def top_functions(table: pd.DataFrame, *, by: str = "cpu", title: str | None = None) -> Figure:
    """Horizontal bars of a top-functions/lines table: CPU split python/native/system, or MB."""
    n = len(table)
    fig = Figure(figsize=(10, 0.35 * max(n, 3) + 1.2))
    ax = fig.subplots()
    label_col = "name" if "name" in table else "source"
    labels = [
        f"{str(f).split('/')[-1]} {str(x)[:50]}"
        for f, x in zip(table.file, table[label_col], strict=True)
    ]
    y = np.arange(n)
    if by == "cpu":
        left = np.zeros(n)
        for col, name, color in (
            ("cpu_python_pct", "Python", "#1565c0"),
            ("cpu_native_pct", "native", "#ef6c00"),
            ("cpu_system_pct", "system", "#9e9e9e"),
        ):
            ax.barh(y, table[col], left=left, color=color, label=name)
            left += table[col].to_numpy(dtype=float)
        ax.set_xlabel("% of CPU time")
        ax.legend(fontsize=8)
    else:
        col = {"memory": "malloc_mb", "growth": "growth_mb", "peak": "peak_mb"}.get(by, "malloc_mb")
        ax.barh(y, table[col], color="#6a1b9a")
        ax.set_xlabel(f"{col.replace('_', ' ')} (MB)")
    ax.set_yticks(y)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_title(title or f"Top by {by}")
    fig.tight_layout()
    return fig


def _shade_phases(ax, frame: pd.DataFrame, x: str) -> None:
    for phase in PHASES:
        g = frame[frame.phase == phase]
        if len(g):
            ax.axvspan(g[x].min(), g[x].max(), color=PHASE_COLORS[phase], alpha=0.08, lw=0)
            ax.text(
                g[x].min(),
                1.0,
                f" {phase}",
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                va="top",
                color=PHASE_COLORS[phase],
            )


@figures.captioned(
    "RSS and CPU% over time against the guide's targets (dashed): look for memory that keeps climbing and CPU held at the limit."
)
def resources(frame: pd.DataFrame) -> Figure:
    """RSS (MB) and CPU% (per core) over time, phases shaded, with the guide's targets."""
    mem, cpu = goals.get("memory_usage"), goals.get("cpu_usage")
    fig = Figure(figsize=(11, 5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    for phase in PHASES:
        g = frame[frame.phase == phase]
        if len(g):
            ax1.plot(g.t_s, g.rss_mb, color=PHASE_COLORS[phase], lw=1.4)
            ax2.plot(g.t_s, g.cpu_pct, color=PHASE_COLORS[phase], lw=1.0)
    top = float(frame.rss_mb.max()) if len(frame) else 0.0
    for v, style, label in (
        (mem.target, "--", "idle target < 2 GB"),
        (mem.critical, ":", "under load < 4 GB"),
    ):
        if v <= 1.5 * top:
            ax1.axhline(v, color="#c62828", ls=style, lw=1, label=label)
    ax1.set_ylabel("RSS, MB")
    ax1.set_ylim(0, max(top * 1.15, 1))
    if ax1.get_legend_handles_labels()[0]:
        ax1.legend(fontsize=8, loc="lower right")
    ax2.axhline(cpu.target, color="#f9a825", ls="--", lw=1, label="normal < 50%")
    ax2.axhline(cpu.critical, color="#c62828", ls=":", lw=1, label="peak < 80%")
    ax2.set_ylabel("CPU % (100 = one core)")
    ax2.set_xlabel("seconds since the server started")
    ax2.legend(fontsize=8, loc="upper right")
    _shade_phases(ax1, frame, "t_s")
    _shade_phases(ax2, frame, "t_s")
    ax1.set_title("Server process tree: memory and CPU")
    fig.tight_layout()
    return fig


@figures.captioned(
    "How late the event loop woke up (log axis): values above 10 ms mean blocking work on the loop."
)
def event_loop_lag(lag: pd.DataFrame) -> Figure:
    """Event-loop lag over time (log scale) with the guide's 10 ms "high delay" line."""
    fig = Figure(figsize=(11, 3.2))
    ax = fig.subplots()
    if len(lag):
        t = lag.t_s if "t_s" in lag else lag.time - lag.time.min()
        frame = lag.assign(t=t)
        for phase in PHASES:
            g = frame[frame.phase == phase] if "phase" in frame else frame
            if len(g):
                ax.plot(
                    g.t,
                    np.clip(g.lag_ms, 0.01, None),
                    ".",
                    ms=2,
                    color=PHASE_COLORS.get(phase, "black"),
                )
        if "phase" in frame:
            _shade_phases(ax, frame, "t")
    ax.axhline(LAG_LIMIT_MS, color="#c62828", ls="--", lw=1, label="guide: high delay > 10 ms")
    ax.set_yscale("log")
    ax.set_ylabel("lag, ms (log)")
    ax.set_xlabel("seconds since the server started")
    ax.set_title("Event-loop lag inside the server")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@figures.captioned(
    "The fitted slope of RSS under load: a flat line is healthy, a steady climb suggests a leak."
)
def memory_fit(frame: pd.DataFrame, slope: Mapping[str, Any]) -> Figure:
    """RSS during the load phase with the fitted slope (the soak test's leak check)."""
    fig = Figure(figsize=(8, 3.2))
    ax = fig.subplots()
    g = frame[frame.phase == slope.get("phase", "load")].sort_values("t_s")
    if len(g):
        minutes = (g.t_s - g.t_s.iloc[0]) / 60
        ax.plot(minutes, g.rss_mb, ".", ms=3, color="#607d8b", label="RSS samples")
        if slope.get("slope_mb_per_min") is not None:
            start = float(minutes.iloc[int(len(g) * 0.1)])
            xs = np.array([start, float(minutes.iloc[-1])])
            ys = slope["intercept_mb"] + slope["slope_mb_per_min"] * (xs - start)
            flag = {True: "LEAK SUSPECTED", False: "no leak", None: "too short to judge"}[
                slope.get("leak_suspected")
            ]
            ax.plot(
                xs, ys, color="#c62828", label=f"{slope['slope_mb_per_min']:+.2f} MB/min ({flag})"
            )
    ax.set_xlabel("minutes of load")
    ax.set_ylabel("RSS, MB")
    ax.set_title("Memory growth under load (should be flat)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
