"""HNSW sweep figures: recall vs latency and QPS with the Pareto frontier, recall vs hnsw_ef, filtered search."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, ScalarFormatter

from axon_lab import figures
from axon_lab.vector.recommendation import pareto_frontier
from axon_lab.vector.sweeps import metric

figures.enable_notebook_display()


def _label(name: str) -> str:
    m = metric(name)
    return f"{m.label} ({m.unit})" if m.unit else m.label


def _ef_axis(ax: Any, values: Any) -> None:
    """Log-2 ``hnsw_ef`` axis ticked at the measured values, written as plain numbers."""
    ax.set_xscale("log", base=2)
    ticks = sorted({float(v) for v in values if pd.notna(v)})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(ScalarFormatter())


def _ann(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[~frame["exact"].astype(bool)]


def _exact(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[frame["exact"].astype(bool)]


def recall_tradeoff(
    frame: pd.DataFrame,
    x: str = "p95_ms",
    *,
    y: str = "recall",
    recommendation: Mapping[str, Any] | None = None,
    target_recall: float | None = None,
    budget_ms: float | None = None,
    log_x: bool = True,
) -> Figure:
    """Recall against ``x`` (``p95_ms``, ``qps_1``, ``qps_n``...) for every config, with the Pareto frontier.

    Points are coloured by ``m`` (marker size grows with ``ef_construct``); exact search is a
    black star; the recommendation, if given, is circled; ``target_recall`` and
    ``budget_ms`` (latency metrics only) are drawn as guide lines.
    """
    fig = Figure(figsize=(7.5, 4.8), layout="constrained")
    ax = fig.add_subplot()
    ann = _ann(frame)
    ms = sorted(int(v) for v in ann["m"].dropna().unique()) if "m" in ann else []
    for i, m in enumerate(ms):
        d = ann[ann["m"] == m]
        sizes = 12 + 30 * np.log2(d["ef_construct"].astype(float).to_numpy() / 32)
        ax.scatter(d[x], d[y], s=sizes, alpha=0.75, color=f"C{i}", label=f"m={m}")
    ex = _exact(frame)
    if not ex.empty:
        ax.scatter(ex[x], ex[y], marker="*", s=160, color="black", label="exact search", zorder=5)
    front = pareto_frontier(frame, x=x, y=y)
    if not front.empty:
        ax.step(
            front[x],
            front[y],
            where="post",
            color="grey",
            linestyle="--",
            linewidth=1,
            label="Pareto frontier",
        )
    if (
        recommendation
        and recommendation.get("status") == "ok"
        and recommendation.get(x) is not None
    ):
        ax.scatter(
            [recommendation[x]],
            [recommendation[y]],
            s=320,
            facecolors="none",
            edgecolors="red",
            linewidths=2,
            label="recommended",
            zorder=6,
        )
    if target_recall is not None:
        ax.axhline(
            target_recall,
            color="red",
            linewidth=0.8,
            linestyle=":",
            label=f"target recall {target_recall}",
        )
    if budget_ms is not None and metric(x).unit == "ms":
        ax.axvline(
            budget_ms,
            color="orange",
            linewidth=0.8,
            linestyle=":",
            label=f"budget {budget_ms:g} ms",
        )
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(_label(x) + (" →better" if metric(x).better == "higher" else " ←better"))
    ax.set_ylabel(_label(y))
    ax.set_title(f"{_label(y)} vs {metric(x).label}")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


@figures.captioned(
    "Configurations up and to the left are better: the recommended one is the cheapest that reaches the target recall within the latency budget."
)
def recall_latency(frame: pd.DataFrame, **kw: Any) -> Figure:
    """Recall vs p95 latency with the Pareto frontier (see :func:`recall_tradeoff`)."""
    return recall_tradeoff(frame, "p95_ms", **kw)


@figures.captioned(
    "Configurations up and to the right are better: more queries per second at the recall you need."
)
def recall_qps(frame: pd.DataFrame, qps: str = "qps_1", **kw: Any) -> Figure:
    """Recall vs QPS (``qps_1`` or ``qps_n``) with the Pareto frontier (see :func:`recall_tradeoff`)."""
    kw.pop("budget_ms", None)
    return recall_tradeoff(frame, qps, **kw)


@figures.captioned(
    "Recall rises with hnsw_ef and flattens: the knee is where more search effort stops paying."
)
def recall_vs_ef(
    frame: pd.DataFrame, *, y: str = "recall", target_recall: float | None = None
) -> Figure:
    """Recall (or any metric ``y``) against ``hnsw_ef``: one line per (m, ef_construct), colour by m."""
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    ann = _ann(frame)
    if "oversampling" in ann.columns:  # one line per build: the best search option per ef
        ann = ann.sort_values(y, ascending=metric(y).better == "lower").drop_duplicates(
            ["config", "hnsw_ef"]
        )
    ms = sorted(int(v) for v in ann["m"].dropna().unique())
    styles = ["-", "--", ":", "-."]
    efcs = sorted(int(v) for v in ann["ef_construct"].dropna().unique())
    for i, m in enumerate(ms):
        for j, efc in enumerate(efcs):
            for q, dq in ann[(ann["m"] == m) & (ann["ef_construct"] == efc)].groupby(
                "quantization"
            ):
                d = dq.sort_values("hnsw_ef")
                ax.plot(
                    d["hnsw_ef"].astype(float),
                    d[y],
                    marker="o" if q == "none" else "s",
                    linestyle=styles[j % len(styles)],
                    color=f"C{i}",
                    label=f"m={m}, ef_construct={efc}" + ("" if q == "none" else f", {q}"),
                )
    ex = _exact(frame)
    if not ex.empty and y == "recall":
        ax.axhline(float(ex[y].max()), color="black", linewidth=0.8, label="exact search")
    if target_recall is not None:
        ax.axhline(
            target_recall,
            color="red",
            linewidth=0.8,
            linestyle=":",
            label=f"target {target_recall}",
        )
    _ef_axis(ax, ann["hnsw_ef"])
    ax.set_xlabel("hnsw_ef (search-time candidate list)")
    ax.set_ylabel(_label(y))
    ax.set_title(f"{_label(y)} vs hnsw_ef")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    return fig


@figures.captioned(
    "Recall and latency by filter selectivity: a drop at low selectivity means the filter defeats the HNSW graph (a payload index helps)."
)
def filtered_search(frame: pd.DataFrame) -> Figure:
    """Filtered vs unfiltered: recall and p95 against ``hnsw_ef`` per workspace (selectivity).

    Solid lines: payload index created before the HNSW build; dashed: none; dotted: after.
    Subsets under the full-scan threshold are labelled "(full scan)": Qdrant searches them
    exactly when it can estimate their size.
    """
    fig = Figure(figsize=(11, 4.5), layout="constrained")
    axes = fig.subplots(1, 2)
    ann = _ann(frame)
    styles = {"before": "-", "none": "--", "after": ":"}
    groups = list(ann.groupby(["selectivity", "workspace"], sort=True))[::-1]
    for i, ((sel, ws), d0) in enumerate(groups):
        for mode, d in d0.groupby("payload_index"):
            d = d.sort_values("hnsw_ef")
            tag = " (full scan)" if bool(d["below_full_scan"].iloc[0]) else ""
            label = f"{ws} {sel:.1%}{tag}, index {mode}"
            for ax, y in zip(axes, ("recall", "p95_ms"), strict=True):
                ax.plot(
                    d["hnsw_ef"].astype(float),
                    d[y],
                    marker="o",
                    linestyle=styles.get(mode, "-"),
                    color=f"C{i}",
                    label=label,
                )
    for ax, y in zip(axes, ("recall", "p95_ms"), strict=True):
        _ef_axis(ax, ann["hnsw_ef"])
        ax.set_xlabel("hnsw_ef")
        ax.set_ylabel(_label(y))
        ax.grid(True, alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].set_title("recall@k, filtered by workspaceId")
    axes[1].set_title("p95 latency, filtered by workspaceId")
    axes[0].legend(fontsize=7)
    return fig


@figures.captioned(
    "Batch vs one-at-a-time upserts: the batch should take a fraction of the time per context."
)
def upsert_times(frame: pd.DataFrame) -> Figure:
    """Batch vs single upsert: time per repeat for each mode (box plot plus points)."""
    fig = Figure(figsize=(6, 4), layout="constrained")
    ax = fig.add_subplot()
    modes = [m for m in ("single", "batch") if m in set(frame["mode"])]
    data = [frame[frame["mode"] == m]["ms"].to_numpy() for m in modes]
    ax.boxplot(data, tick_labels=modes)
    for i, d in enumerate(data, 1):
        ax.scatter(np.full(len(d), i) + np.linspace(-0.1, 0.1, len(d)), d, s=10, alpha=0.6)
    n = int(frame["n"].iloc[0]) if len(frame) else 0
    ax.set_ylabel(f"time to upsert {n} points (ms)")
    ax.set_title("one call per point vs one batch call")
    ax.grid(True, alpha=0.3)
    return fig
