"""Figures for the cache experiments: hit rates per level, level latency, TTL, eviction, serialization, round trips, batching, token error.

Each function takes the frames returned by :mod:`axon_lab.cache.experiments` and returns a
``matplotlib.figure.Figure`` (never pyplot, never a file).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from axon_lab import figures
from axon_lab.cache.experiments import CONFIG_ORDER, LEVEL_TARGET_MS

figures.enable_notebook_display()

COLORS = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "info": "#607d8b",
    "unknown": "#9e9e9e",
}
LEVEL_COLORS = {"L1": "#1565c0", "L2": "#6a1b9a", "L3": "#bdbdbd"}


def _target_lines(ax, *, horizontal: bool = True) -> None:
    line = ax.axhline if horizontal else ax.axvline
    line(0.80, color=COLORS["pass"], ls="--", lw=1, label="target > 80%")
    line(0.60, color=COLORS["fail"], ls=":", lw=1, label="minimum > 60%")


@figures.captioned(
    "Compare each configuration's hit rate with the 80% target line; the gap to the predicted rate shows what the cache loses to eviction or expiry."
)
def hit_rates(levels: pd.DataFrame) -> Figure:
    """Stacked share of requests served by L1, L2 and the stores (L3) per configuration."""
    df = levels.set_index("config").reindex([c for c in CONFIG_ORDER if c in set(levels.config)])
    fig = Figure(figsize=(7, 3.8))
    ax = fig.subplots()
    x = np.arange(len(df))
    n = df.requests.to_numpy(dtype=float)
    bottom = np.zeros(len(df))
    for col, level in (("l1_hits", "L1"), ("l2_hits", "L2"), ("misses", "L3")):
        share = df[col].to_numpy(dtype=float) / n
        ax.bar(x, share, bottom=bottom, color=LEVEL_COLORS[level], label=f"served by {level}")
        bottom += share
    for i, r in enumerate(df.itertuples()):
        if r.hit_rate is not None and not pd.isna(r.hit_rate):
            ax.text(
                i,
                min(r.hit_rate, 0.97),
                f"{r.hit_rate:.0%}",
                ha="center",
                va="bottom",
                fontsize=9,
                color=COLORS.get(str(r.status), "black"),
                fontweight="bold",
            )
    _target_lines(ax)
    ax.set_xticks(x)
    ax.set_xticklabels(df.index)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of requests")
    ax.set_title("Context cache: who served each request")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Each level should stay under its target (L1 < 1 ms, L2 < 10 ms, L3 < 500 ms); the distance between levels is what a hit saves."
)
def level_latency(requests: pd.DataFrame) -> Figure:
    """Retrieval-stage latency by serving level (log scale) with the guide's per-level expectation."""
    df = requests.dropna(subset=["level"])
    groups = [
        (c, lv)
        for c in CONFIG_ORDER
        for lv in ("L1", "L2", "L3")
        if ((df.config == c) & (df.level == lv)).any()
    ]
    fig = Figure(figsize=(9, 0.4 * len(groups) + 1.6))
    ax = fig.subplots()
    data = [
        np.clip(
            df[(df.config == c) & (df.level == lv)].retrieval_ms.to_numpy(dtype=float), 1e-3, None
        )
        for c, lv in groups
    ]
    bp = ax.boxplot(
        data,
        vert=False,
        tick_labels=[f"{c} · {lv}" for c, lv in groups],
        whis=(5, 95),
        patch_artist=True,
        flierprops={"markersize": 2, "alpha": 0.4},
    )
    for patch, (_, lv) in zip(bp["boxes"], groups, strict=True):
        patch.set_facecolor(LEVEL_COLORS[lv])
        patch.set_alpha(0.6)
    for i, (_, lv) in enumerate(groups, start=1):
        t = LEVEL_TARGET_MS[lv]
        ax.plot([t, t], [i - 0.4, i + 0.4], color=COLORS["fail"], lw=2)
    ax.set_xscale("log")
    ax.invert_yaxis()
    ax.set_xlabel(
        "retrieval stage, ms (log; whiskers p5–p95; red = guide: L1 < 1, L2 < 10, L3 < 500)"
    )
    ax.set_title("Latency per cache level")
    fig.tight_layout()
    return fig


@figures.captioned(
    "Hit rate over time for each TTL: a longer TTL should keep more hits once the working set is warm."
)
def ttl(requests: pd.DataFrame) -> Figure:
    """Cumulative hit rate over simulated time for each TTL (and its prediction, dashed)."""
    fig = Figure(figsize=(8, 3.6))
    ax = fig.subplots()
    for i, (t, g) in enumerate(requests.groupby("ttl_s", sort=False)):
        g = g.sort_values("t_s")
        k = np.arange(1, len(g) + 1)
        color = f"C{i}"
        ax.plot(g.t_s / 60, (g.context == "l2-hit").cumsum() / k, color=color, label=f"TTL {t} s")
        ax.plot(
            g.t_s / 60,
            g.expected_hit.cumsum() / k,
            color=color,
            ls="--",
            lw=1,
            alpha=0.7,
            label=f"TTL {t} s predicted",
        )
    _target_lines(ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("simulated minutes")
    ax.set_ylabel("cumulative hit rate")
    ax.set_title("Context cache TTL (time-scaled run on the real redis-server)")
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Under the memory cap, compare hit rates and evictions per policy: the better policy keeps the hot prompts."
)
def eviction(summary: pd.DataFrame) -> Figure:
    """Per eviction policy: context and keyspace hit rates, and keys evicted."""
    fig = Figure(figsize=(9, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(summary))
    ax1.bar(x - 0.2, summary.context_hit_rate, 0.4, label="context hit rate", color="#1565c0")
    ax1.bar(
        x + 0.2,
        summary.keyspace_hit_rate.astype(float),
        0.4,
        label="Redis keyspace hit rate",
        color="#6a1b9a",
    )
    _target_lines(ax1)
    ax1.set_xticks(x)
    ax1.set_xticklabels(summary.policy)
    ax1.set_ylim(0, 1.05)
    ax1.legend(fontsize=7)
    ax1.set_title("Hit rate under a maxmemory cap")
    ax2.bar(x, summary.evicted_keys, color="#c62828")
    ax2.set_xticks(x)
    ax2.set_xticklabels(summary.policy)
    ax2.set_title("Keys evicted")
    fig.tight_layout()
    return fig


@figures.captioned(
    "Bytes per stored embedding per format: the guide claims MessagePack is about 30% smaller than JSON."
)
def serialization(frame: pd.DataFrame) -> Figure:
    """Bytes per entry (payload and in Redis), encode and decode time per embedding format."""
    fig = Figure(figsize=(11, 3.2))
    axes = fig.subplots(1, 3)
    x = np.arange(len(frame))
    axes[0].bar(x - 0.2, frame.bytes_per_entry, 0.4, label="payload")
    if frame.redis_bytes_per_entry.notna().any():
        axes[0].bar(
            x + 0.2, frame.redis_bytes_per_entry.astype(float), 0.4, label="in Redis (used_memory)"
        )
    for i, r in enumerate(frame.itertuples()):
        axes[0].text(
            i, r.bytes_per_entry, f"{r.size_vs_json:.0%}", ha="center", va="bottom", fontsize=8
        )
    axes[0].set_title("bytes per 384-d entry (% of JSON)")
    axes[0].legend(fontsize=7)
    axes[1].bar(x, frame.encode_us, color="#2e7d32")
    axes[1].set_title("encode µs / entry")
    axes[2].bar(x, frame.decode_us, color="#ef6c00")
    axes[2].set_title("decode µs / entry")
    for ax in axes:
        ax.set_xticks(x)
        ax.set_xticklabels(frame.format, fontsize=8)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Time per call by method and key count (log axis): a pipeline or MGET should stay flat as keys grow while sequential GETs climb."
)
def round_trips(summary: pd.DataFrame) -> Figure:
    """p50 latency of fetching N keys per method, with the reduction vs sequential GETs."""
    ns = sorted(summary["keys"].unique())
    methods = list(dict.fromkeys(summary.method))
    fig = Figure(figsize=(8, 3.4))
    ax = fig.subplots()
    w = 0.8 / len(methods)
    for j, m in enumerate(methods):
        s = summary[summary.method == m].set_index("keys").reindex(ns)
        xs = np.arange(len(ns)) + (j - (len(methods) - 1) / 2) * w
        ax.bar(xs, s.p50_us, w, label=m)
        if m != "sequential":
            for x, r in zip(xs, s.itertuples(), strict=True):
                ax.text(
                    x,
                    r.p50_us,
                    f"-{r.reduction_vs_sequential:.0%}",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    ax.set_xticks(np.arange(len(ns)))
    ax.set_xticklabels([f"{n} keys" for n in ns])
    ax.set_yscale("log")
    ax.set_ylabel("p50 µs (log)")
    ax.set_title("Redis round trips: sequential GETs vs pipeline vs MGET (loopback)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Sequential vs parallel analysis steps: the speed-up appears only when steps wait on I/O."
)
def parallelism(summary: pd.DataFrame) -> Figure:
    """Sequential vs parallel analysis steps (p50 wall time) per variant, with the speedup."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    x = np.arange(len(summary))
    ax.bar(x - 0.2, summary.sequential_p50_ms, 0.4, label="sequential")
    ax.bar(x + 0.2, summary.parallel_p50_ms, 0.4, label="parallel (gather)")
    for i, r in enumerate(summary.itertuples()):
        ax.text(
            i,
            max(r.sequential_p50_ms, r.parallel_p50_ms),
            f"{r.speedup:.2f}x",
            ha="center",
            va="bottom",
        )
    ax.set_xticks(x)
    ax.set_xticklabels(summary.variant)
    ax.set_ylabel("steps wall time p50, ms")
    ax.set_title("Analysis steps: sequential vs parallel (guide: 3x)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Time per text by batch size: the curve should fall and then flatten where batching stops paying."
)
def embedding_batching(frame: pd.DataFrame) -> Figure:
    """Milliseconds per text and speedup by batch size (1 = one call per text)."""
    g = frame.groupby("batch_size").agg(
        ms_per_text=("ms_per_text", "median"), speedup=("speedup", "median")
    )
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    x = np.arange(len(g))
    ax.bar(x, g.ms_per_text, color="#1565c0")
    for i, (ms, sp) in enumerate(zip(g.ms_per_text, g.speedup, strict=True)):
        ax.text(i, ms, f"{sp:.1f}x", ha="center", va="bottom")
    ax.set_xticks(x)
    ax.set_xticklabels([str(b) for b in g.index])
    ax.set_xlabel("batch size")
    ax.set_ylabel("ms per text (median)")
    ax.set_title("Embedding: one at a time vs batches")
    fig.tight_layout()
    return fig


@figures.captioned(
    "Error of the chars/4 estimate against tiktoken: a wide or shifted distribution means the estimate misjudges context budgets."
)
def token_error(frame: pd.DataFrame) -> Figure:
    """Distribution of chars/4's relative error against tiktoken, and error vs text length."""
    fig = Figure(figsize=(10, 3.4))
    ax1, ax2 = fig.subplots(1, 2)
    e = frame.rel_error.dropna() * 100
    ax1.hist(e, bins=40, color="#607d8b")
    ax1.axvline(0, color="black", lw=1)
    ax1.axvline(
        float(e.median()), color=COLORS["fail"], ls="--", label=f"median {e.median():+.1f}%"
    )
    ax1.set_xlabel("(chars/4 − tiktoken) / tiktoken, %")
    ax1.set_ylabel("texts")
    ax1.legend(fontsize=8)
    ax1.set_title("chars/4 error on the corpus")
    ax2.scatter(frame.chars, frame.rel_error * 100, s=4, alpha=0.4)
    ax2.axhline(0, color="black", lw=1)
    ax2.set_xlabel("characters")
    ax2.set_ylabel("relative error, %")
    ax2.set_title("error vs length")
    fig.tight_layout()
    return fig
