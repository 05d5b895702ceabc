"""Figures for MongoDB analysis: the plan tree, before/after plans, the query-shape table, pools.

Functions take summaries or frames and return ``matplotlib.figure.Figure`` objects (not
pyplot), so a notebook shows each once; nothing here touches files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.transforms import Bbox

from axon_lab import figures
from axon_lab.mongo.explain import (
    COLLSCAN_STAGES,
    FETCH_STAGES,
    INDEX_STAGES,
    MERGE_STAGES,
    SORT_STAGES,
    ExplainSummary,
    PlanNode,
)

figures.enable_notebook_display()

#: Stage colours: what a reader should notice first is red (scan) and orange (blocking sort).
COLORS = {
    "collscan": "#c62828",
    "sort": "#ef6c00",
    "index": "#2e7d32",
    "fetch": "#1565c0",
    "merge": "#6a1b9a",
    "pipeline": "#546e7a",
    "other": "#90a4ae",
    "unknown": "#f9a825",
}
_LEGEND = [
    ("collscan", "collection scan"),
    ("sort", "blocking sort"),
    ("index", "index scan"),
    ("fetch", "reads documents"),
    ("merge", "shard merge"),
    ("pipeline", "pipeline stage"),
    ("other", "other"),
    ("unknown", "unknown stage"),
]


def stage_kind(node: PlanNode) -> str:
    """Colour key of a stage (see :data:`COLORS`)."""
    s = node.stage
    if not node.known:
        return "unknown"
    if s in COLLSCAN_STAGES:
        return "collscan"
    if s in SORT_STAGES or node.details.get("sbe_sort"):
        return "sort"
    if s in INDEX_STAGES:
        return "index"
    if s in FETCH_STAGES:
        return "fetch"
    if s in MERGE_STAGES or s == "shards":
        return "merge"
    if s.startswith("$"):
        return "pipeline"
    return "other"


def _fmt(n: Any) -> str:
    if n is None:
        return "–"
    n = float(n)
    for unit, div in (("M", 1e6), ("k", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3g}{unit}"
    return f"{n:.0f}" if n.is_integer() else f"{n:.3g}"


def _layout(root: PlanNode) -> tuple[dict[int, tuple[float, int]], int, int]:
    """X (leaf slots, parents centred over children) and depth of every node."""
    pos: dict[int, tuple[float, int]] = {}
    next_x = [0.0]
    max_depth = [0]

    def place(n: PlanNode, depth: int) -> float:
        max_depth[0] = max(max_depth[0], depth)
        if not n.children:
            x = next_x[0]
            next_x[0] += 1.0
        else:
            xs = [place(c, depth + 1) for c in n.children]
            x = (xs[0] + xs[-1]) / 2
        pos[id(n)] = (x, depth)
        return x

    place(root, 0)
    return pos, int(next_x[0]), max_depth[0]


@figures.captioned(
    "Read the plan bottom-up: red boxes are collection scans or in-memory sorts; the fewer "
    "documents examined per document returned on the way up, the better the index fits."
)
def plan_tree_figure(plan: ExplainSummary | PlanNode | None, *, title: str | None = None) -> Figure:
    """The winning plan drawn as a tree (root on top, data flowing upwards).

    Each box shows the stage (with its index key), the shard, and the returned / documents /
    keys counts when the explain reported them; colours mark collection scans, blocking sorts,
    index scans and document fetches.

    Parameters
    ----------
    plan
        An :class:`ExplainSummary` (its ``tree``) or a :class:`PlanNode`; ``None`` gives an
        empty figure saying there is no plan.
    title
        Overrides the default title (source, plan summary, engine, server version).
    """
    if plan is None:
        fig = Figure(figsize=(6, 1.5))
        ax = fig.subplots()
        ax.axis("off")
        ax.text(0.5, 0.5, "no plan to draw", ha="center", va="center")
        return fig
    root = plan.tree if isinstance(plan, ExplainSummary) else plan
    if title is None and isinstance(plan, ExplainSummary):
        src = Path(str(plan.source)).stem if plan.source else "plan"
        title = (
            f"{src}\n{plan.plan_summary} · {plan.engine} engine · MongoDB "
            f"{plan.server_version or '?'}"
        )
    pos, leaves, depth = _layout(root)
    width = min(30.0, max(6.0, 2.3 * leaves))
    height = max(3.0, 0.8 * (depth + 1) + 1.4)
    fig = Figure(figsize=(width, height))
    ax = fig.subplots()
    nodes = list(root.walk())
    for n in nodes:
        x, d = pos[id(n)]
        for c in n.children:
            cx, cd = pos[id(c)]
            ax.plot([x, cx], [-d, -cd], color="#9e9e9e", lw=1, zorder=1)
    for n in nodes:
        x, d = pos[id(n)]
        kind = stage_kind(n)
        stats = [
            f"{k} {_fmt(v)}"
            for k, v in (
                ("ret", n.n_returned),
                ("docs", n.docs_examined),
                ("keys", n.keys_examined),
            )
            if v is not None
        ]
        lines = [n.label if len(n.label) <= 34 else n.label[:33] + "…"]
        if n.shard and (
            n is root or not any(n in p.children and p.shard == n.shard for p in nodes)
        ):
            lines.append(f"[{n.shard}]")
        if stats:
            lines.append(" · ".join(stats))
        ax.text(
            x,
            -d,
            "\n".join(lines),
            ha="center",
            va="center",
            fontsize=8,
            zorder=2,
            color="white" if kind not in ("unknown", "other") else "black",
            bbox={
                "boxstyle": "round,pad=0.35",
                "fc": COLORS[kind],
                "ec": "black" if not n.known else COLORS[kind],
                "ls": "--" if not n.known else "-",
            },
        )
    ax.set_xlim(-0.7, max(leaves - 1, 0) + 0.7)
    ax.set_ylim(-depth - 0.6, 0.6)
    ax.axis("off")
    used = {stage_kind(n) for n in nodes}
    ax.legend(
        handles=[Patch(color=COLORS[k], label=lab) for k, lab in _LEGEND if k in used],
        loc="lower left",
        bbox_to_anchor=(0, -0.02),
        fontsize=7,
        frameon=False,
        ncol=min(4, len(used)),
    )
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Compare each plan's documents examined, keys examined and time (log scale): after an index "
    "change the collection scan and in-memory sort bars should be gone and every bar lower."
)
def before_after_figure(frame: Any) -> Figure:
    """Documents examined, keys examined and time per plan (``plans_table`` frame), log scale.

    One bar per row (``phase``: before/after, or recorded file names), bars coloured by whether
    the plan scanned the collection or sorted in memory.
    """
    metrics = [
        ("docs_examined", "documents examined"),
        ("keys_examined", "keys examined"),
        ("execution_time_ms", "execution time (ms)"),
    ]
    fig = Figure(figsize=(11, 3.2 + 0.15 * max(0, len(frame) - 2)))
    axes = fig.subplots(1, 3)
    if frame is None or not len(frame):
        for ax in axes:
            ax.axis("off")
        axes[1].text(0.5, 0.5, "no plans to compare", ha="center", va="center")
        return fig
    labels = [str(p) if len(str(p)) <= 28 else str(p)[:27] + "…" for p in frame["phase"]]
    colors = [
        COLORS["collscan"] if c else COLORS["sort"] if s else COLORS["index"]
        for c, s in zip(frame["collscan"], frame["in_memory_sort"], strict=False)
    ]
    y = np.arange(len(frame))
    for ax, (col, name) in zip(axes, metrics, strict=False):
        vals = np.array([np.nan if v is None else float(v) for v in frame[col]], dtype=float)
        ax.barh(y, np.nan_to_num(vals, nan=0.0), color=colors)
        for yi, v in zip(y, vals, strict=False):
            ax.text(
                v if np.isfinite(v) and v > 0 else 0,
                yi,
                f" {_fmt(None if np.isnan(v) else v)}",
                va="center",
                fontsize=8,
            )
        pos = vals[np.isfinite(vals) & (vals > 0)]
        if pos.size and pos.max() / pos.min() > 50:  # orders of magnitude apart: log scale
            ax.set_xscale("symlog", linthresh=1)
        ax.set_yticks(y, labels if ax is axes[0] else [""] * len(y), fontsize=8)
        ax.invert_yaxis()
        ax.set_title(name, fontsize=9)
        ax.margins(x=0.25)
    fig.legend(
        handles=[
            Patch(color=COLORS["collscan"], label="COLLSCAN"),
            Patch(color=COLORS["sort"], label="in-memory sort"),
            Patch(color=COLORS["index"], label="index scan"),
        ],
        loc="lower center",
        ncol=3,
        fontsize=8,
        frameon=False,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


@figures.captioned(
    "The query shapes that cost the most time come first: shaded total-time cells show each "
    "shape's share, tinted plan cells a collection scan or a blocking sort worth an index."
)
def query_shape_table_figure(frame: Any, *, top: int = 12) -> Figure:
    """The query-shape digest as a table, most expensive shape (total time) first.

    Cells of ``total ms`` are shaded by their share of the total; shapes with a COLLSCAN or a
    blocking sort have their plan cell tinted.
    """
    cols = [
        ("source", "src", 8),
        ("namespace", "namespace", 26),
        ("operation", "op", 10),
        ("pattern", "pattern", 34),
        ("sort", "sort", 18),
        ("count", "n", 5),
        ("mean_ms", "mean ms", 8),
        ("p95_ms", "p95 ms", 8),
        ("total_ms", "total ms", 9),
        ("docs_examined", "docs exam.", 9),
        ("n_returned", "returned", 8),
        ("plan_summary", "plan", 28),
        ("advised_index", "advised index", 28),
    ]
    import pandas as pd

    rows = (
        pd.DataFrame(columns=[c for c, _, _ in cols])
        if frame is None
        else frame.sort_values("total_ms", ascending=False).head(top)
    )
    fig = Figure(figsize=(18, 0.3 * (len(rows) + 1) + 0.7))
    ax = fig.subplots()
    ax.axis("off")
    if not len(rows):
        ax.text(0.5, 0.5, "no slow operations", ha="center", va="center")
        return fig

    def cell(v: Any, width: int) -> str:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return ""
        s = (
            _fmt(v)
            if isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool)
            else str(v)
        )
        return s if len(s) <= width else s[: width - 1] + "…"

    text = [[cell(r[c], w) for c, _, w in cols] for _, r in rows.iterrows()]
    table = ax.table(
        cellText=text,
        colLabels=[h for _, h, _ in cols],
        loc="upper center",
        cellLoc="left",
        colLoc="left",
        bbox=Bbox.from_bounds(0, 0, 1, 1),
        colWidths=[w / sum(w for *_, w in cols) for *_, w in cols],
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    total = float(np.nansum(rows["total_ms"].astype(float))) or 1.0
    ti = [c for c, _, _ in cols].index("total_ms")
    pi = [c for c, _, _ in cols].index("plan_summary")
    for i, (_, r) in enumerate(rows.iterrows(), start=1):
        share = float(r["total_ms"]) / total
        table[i, ti].set_facecolor((0.78, 0.16, 0.16, 0.15 + 0.6 * share))
        if r.get("collscan") or r.get("in_memory_sort"):
            table[i, pi].set_facecolor((0.94, 0.42, 0.0, 0.35))
    for j in range(len(cols)):
        table[0, j].set_facecolor("#eceff1")
        table[0, j].set_text_props(weight="bold")
    ax.set_title(f"Query shapes by total time (top {len(rows)})", fontsize=10, loc="left")
    return fig


@figures.captioned(
    "Look for the smallest pool whose p95 latency and throughput match the larger ones: "
    "beyond that point more connections only cost memory on the server."
)
def pool_figure(frame: Any) -> Figure:
    """Pool settings compared: p50/p95 latency and throughput per ``maxPoolSize/minPoolSize``."""
    fig = Figure(figsize=(9, 3.2))
    a1, a2 = fig.subplots(1, 2)
    if frame is None or not len(frame):
        for ax in (a1, a2):
            ax.axis("off")
        a1.text(
            0.5, 0.5, "no pool comparison (live mode with a URI only)", ha="center", va="center"
        )
        return fig
    labels = [f"max {r.max_pool_size}\nmin {r.min_pool_size}" for r in frame.itertuples()]
    x = np.arange(len(frame))
    a1.bar(x - 0.2, frame["p50_ms"].astype(float), 0.4, label="p50", color="#1565c0")
    a1.bar(x + 0.2, frame["p95_ms"].astype(float), 0.4, label="p95", color="#ef6c00")
    a1.set_xticks(x, labels)
    a1.set_ylabel("ms per query (client side)")
    a1.legend(fontsize=8)
    a2.bar(x, frame["qps"].astype(float), color="#2e7d32")
    a2.set_xticks(x, labels)
    a2.set_ylabel("queries / s")
    threads = int(frame["threads"].iloc[0])
    fig.suptitle(f"Connection pool settings under {threads} concurrent threads", fontsize=10)
    fig.tight_layout()
    return fig
