"""Figures for the latency breakdown: stage distributions vs budget, waterfalls, a span timeline.

Figures are built with ``matplotlib.figure.Figure`` (not pyplot), so a notebook shows each
exactly once (as the cell's value) and nothing accumulates in pyplot's figure registry.
"""

from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from axon_lab.analysis.breakdown import ORDER

COLORS = {"pass": "#2e7d32", "warn": "#f9a825", "fail": "#c62828", "info": "#607d8b", "unknown": "#9e9e9e"}


def stage_distributions(long: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Box plot per stage on a log axis, with the guide's budget per stage as a red tick."""
    stages = [s for s in ORDER if s in set(long.stage)]
    fig = Figure(figsize=(10, 0.45 * len(stages) + 1.5))
    ax = fig.subplots()
    data = [np.clip(long.loc[long.stage == s, "ms"].to_numpy(), 1e-3, None) for s in stages]
    ax.boxplot(data, vert=False, tick_labels=stages, showfliers=True, whis=(5, 95),
               flierprops={"markersize": 2, "alpha": 0.4})
    t = table.set_index("stage")
    for i, s in enumerate(stages, start=1):
        b = t.loc[s, "budget_ms"] if s in t.index else None
        if b is not None and not pd.isna(b):
            ax.plot([b, b], [i - 0.4, i + 0.4], color="#c62828", lw=2)
        st = t.loc[s, "status"] if s in t.index else "info"
        ax.get_yticklabels()[i - 1].set_color(COLORS.get(st, "black"))
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel("ms (log; whiskers p5–p95; red tick = guide budget)")
    ax.set_title("Per-stage latency against the guide's budget")
    fig.tight_layout()
    return fig


def waterfalls(frames: dict[str, pd.DataFrame]) -> Figure:
    """One horizontal waterfall per picked request (e.g. typical and p95)."""
    fig = Figure(figsize=(10, 2.2 * len(frames) + 0.5))
    axes = fig.subplots(len(frames), 1, squeeze=False)
    cmap = matplotlib.colormaps.get_cmap("tab10")
    for ax, (label, wf) in zip(axes[:, 0], frames.items(), strict=True):
        for i, r in enumerate(wf.itertuples()):
            ax.barh(0, r.duration_ms, left=r.start_ms, color=cmap(i % 10), edgecolor="white",
                    label=f"{r.stage} {r.duration_ms:.1f} ms")
        ax.set_yticks([])
        ax.set_title(f"{label} request: {wf.duration_ms.sum():.1f} ms", loc="left", fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize=8, frameon=False)
        ax.set_xlabel("ms since request start")
    fig.tight_layout()
    return fig


def span_timeline(tl: pd.DataFrame, title: str = "One request's spans") -> Figure:
    """Gantt chart of a request's spans; overlapping bars are concurrent work (parallel analysis)."""
    fig = Figure(figsize=(10, 0.32 * max(len(tl), 4) + 1.2))
    ax = fig.subplots()
    for i, r in enumerate(tl.itertuples()):
        ax.barh(i, max(r.end_ms - r.start_ms, 0.01), left=r.start_ms,
                color=matplotlib.colormaps.get_cmap("tab20")(int(r.depth) % 20), edgecolor="black", lw=0.3)
        ax.text(r.end_ms, i, f" {r.duration_ms:.2f} ms", va="center", fontsize=7)
    ax.set_yticks(range(len(tl)))
    ax.set_yticklabels(["  " * int(d) + n for n, d in zip(tl["name"], tl["depth"], strict=True)], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms since request start")
    ax.set_title(title)
    fig.tight_layout()
    return fig
