"""Latency figures: distributions against the guide's targets, throughput, before/after, stage breakdown.

Load runs: histogram + CDF on a log axis with the guide's target and critical lines, throughput
and error rate over time, before/after distributions. Stage breakdown: stage distributions vs
budget, waterfalls, a span timeline.

Figures are ``matplotlib.figure.Figure`` objects (not pyplot): shown once in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from axon_lab import figures, goals
from axon_lab.latency.breakdown import ORDER

figures.enable_notebook_display()


def _lines(ax, target_ms: float | None, critical_ms: float | None) -> None:
    if target_ms:
        ax.axvline(target_ms, color="#f9a825", ls="--", lw=1.5, label=f"target {target_ms:g} ms")
    if critical_ms:
        ax.axvline(
            critical_ms, color="#c62828", ls="--", lw=1.5, label=f"critical {critical_ms:g} ms"
        )


@figures.captioned(
    "Look at where the bulk and the tail sit against the target (orange) and critical (red) lines; a long right tail or a second hump means some requests take a different, slower path."
)
def latency_distribution(
    samples: Mapping[str, np.ndarray],
    *,
    target_ms: float | None = None,
    critical_ms: float | None = None,
    title: str = "Response time",
) -> Figure:
    """Histogram (log-spaced bins) and empirical CDF (log x axis), one series per run."""
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    allv = (
        np.concatenate([np.asarray(v, float) for v in samples.values() if len(v)])
        if samples
        else np.array([])
    )
    if allv.size == 0:
        ax1.text(0.5, 0.5, "no samples", ha="center", transform=ax1.transAxes)
        return fig
    lo, hi = max(allv.min(), 1e-3), max(allv.max(), (critical_ms or 0) * 1.1, 1e-2)
    bins = np.logspace(np.log10(lo), np.log10(hi), 60)
    for name, v in samples.items():
        v = np.sort(np.asarray(v, float))
        if not v.size:
            continue
        ax1.hist(v, bins=bins, alpha=0.55, label=f"{name} (n={v.size})")
        ax2.step(v, np.arange(1, v.size + 1) / v.size, where="post", label=name)
    for ax in (ax1, ax2):
        ax.set_xscale("log")
        _lines(ax, target_ms, critical_ms)
        ax.set_xlabel("ms (log)")
    for q in (0.5, 0.95, 0.99):
        ax2.axhline(q, color="#9e9e9e", lw=0.6)
        ax2.text(lo, q, f" p{q * 100:g}", va="bottom", fontsize=7, color="#616161")
    ax1.set_ylabel("requests")
    ax2.set_ylabel("fraction ≤ x")
    ax1.set_title(f"{title}: histogram")
    ax2.set_title(f"{title}: CDF")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def throughput_errors(ts: pd.DataFrame) -> Figure:
    """Requests/s and error rate per second, one line per scenario (``timeseries`` frames).

    Buckets after the load window (``phase == "drain"``: in-flight requests finishing once the
    load stopped) are left out of the lines and counted in the caption, so the drain does not
    read as a throughput collapse.
    """
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    drained = 0
    if "phase" in ts:
        drained = int(ts.loc[ts["phase"] == "drain", "requests"].sum())
        ts = ts[ts["phase"] != "drain"]
    groups = ts.groupby("scenario") if "scenario" in ts else [("run", ts)]
    for name, g in groups:
        ax1.plot(g["t_s"], g["rps"], marker=".", label=str(name))
        ax2.plot(g["t_s"], g["error_rate"] * 100, marker=".", label=str(name))
    tp = goals.get("throughput")
    ax1.axhline(tp.target, color="#f9a825", ls="--", lw=1, label=f"target {tp.target:g} req/s")
    ax1.axhline(tp.critical, color="#c62828", ls="--", lw=1, label=f"minimum {tp.critical:g} req/s")
    ax2.axhline(1.0, color="#c62828", ls="--", lw=1, label="1% error budget")
    ax1.set_ylabel("req/s")
    ax1.set_ylim(bottom=0)
    ax1.set_xlim(left=0)
    ax2.set_ylabel("errors %")
    ax2.set_xlabel("seconds since start (load window only)")
    ax1.legend(fontsize=7, ncol=4)
    ax2.legend(fontsize=7)
    ax1.set_title("Throughput and error rate over time")
    fig.tight_layout()
    drain = (
        f" {drained:,} requests that finished after the load window (the drain) are not drawn."
        if drained
        else ""
    )
    return figures.describe(
        fig,
        alt="Two line charts over the seconds of the load window: requests per second against "
        f"the {tp.target:g} req/s target, and the error rate against the 1% budget.",
        caption="Look for a steady line above the target and errors at zero; dips that line up "
        "with error spikes point at the server, a slow decline at saturation." + drain,
    )


@figures.captioned(
    "Each dot is the relative change after vs before with its 95% CI; a bar that crosses zero is noise, green left of zero for latency (right for rates) is an improvement."
)
def before_after(table: pd.DataFrame) -> Figure:
    """Relative change per metric with its 95% CI (green improved, red regressed, grey noise)."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    colors = {
        "improved": "#2e7d32",
        "regressed": "#c62828",
        "noise": "#9e9e9e",
        "unknown": "#bdbdbd",
    }
    for i, r in enumerate(table.itertuples()):
        base = r.before if r.before not in (None, 0) and not pd.isna(r.before) else None
        if base is None or pd.isna(r.difference):
            continue
        rel, lo, hi = r.difference / base, r.ci_low / base, r.ci_high / base
        ax.errorbar(
            rel * 100,
            i,
            xerr=[[max(rel - lo, 0) * 100], [max(hi - rel, 0) * 100]],
            fmt="o",
            color=colors.get(r.verdict, "black"),
            capsize=4,
        )
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(table)))
    ax.set_yticklabels(table["metric"])
    ax.invert_yaxis()
    ax.set_xlabel("change after vs before (%), 95% CI")
    ax.set_title("Before / after")
    fig.tight_layout()
    return fig


# --- stage breakdown ---------------------------------------------------------------------------
COLORS = {
    "pass": "#2e7d32",
    "warn": "#f9a825",
    "fail": "#c62828",
    "info": "#607d8b",
    "unknown": "#9e9e9e",
}


def _nothing(title: str, message: str) -> Figure:
    """A small figure saying what is missing (a plot never crashes on an empty frame)."""
    fig = Figure(figsize=(10, 1.2))
    ax = fig.subplots()
    ax.axis("off")
    ax.text(0.0, 0.5, message, va="center", ha="left", fontsize=10, wrap=True)
    ax.set_title(title, loc="left")
    return fig


@figures.captioned(
    "Compare each stage's spread with its budget marker: the stage whose p95 sits right of its budget is where the time goes."
)
def stage_distributions(long: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Box plot per stage on a log axis, with the guide's budget per stage as a red tick."""
    stages = [s for s in ORDER if s in set(long.stage)] + sorted(set(long.stage) - set(ORDER))
    if not stages:
        return _nothing("Per-stage latency", "no stage timings in this run: nothing to draw")
    fig = Figure(figsize=(10, 0.45 * len(stages) + 1.5))
    ax = fig.subplots()
    data = [np.clip(long.loc[long.stage == s, "ms"].to_numpy(), 1e-3, None) for s in stages]
    ax.boxplot(
        data,
        vert=False,
        tick_labels=stages,
        showfliers=True,
        whis=(5, 95),
        flierprops={"markersize": 2, "alpha": 0.4},
    )
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


@figures.captioned(
    "Read left to right: long bars are the slow stages of a typical and a p95 request; gaps are time outside any stage."
)
def waterfalls(frames: dict[str, pd.DataFrame]) -> Figure:
    """One horizontal waterfall per picked request (e.g. typical and p95)."""
    frames = {k: v for k, v in frames.items() if len(v)}
    if not frames:
        return _nothing("Waterfalls", "no stage timings in this run: nothing to draw")
    fig = Figure(figsize=(10, 2.2 * len(frames) + 0.5))
    axes = fig.subplots(len(frames), 1, squeeze=False)
    cmap = matplotlib.colormaps.get_cmap("tab10")
    for ax, (label, wf) in zip(axes[:, 0], frames.items(), strict=True):
        for i, r in enumerate(wf.itertuples()):
            ax.barh(
                0,
                r.duration_ms,
                left=r.start_ms,
                color=cmap(i % 10),
                edgecolor="white",
                label=f"{r.stage} {r.duration_ms:.1f} ms",
            )
        ax.set_yticks([])
        ax.set_title(f"{label} request: {wf.duration_ms.sum():.1f} ms", loc="left", fontsize=10)
        ax.legend(
            loc="upper center", bbox_to_anchor=(0.5, -0.35), ncol=4, fontsize=8, frameon=False
        )
        ax.set_xlabel("ms since request start")
    fig.tight_layout()
    return fig


@figures.captioned(
    "Overlapping bars ran concurrently; a bar that starts only when another ends is a sequential step that could run in parallel."
)
def span_timeline(tl: pd.DataFrame, title: str = "One request's spans") -> Figure:
    """Gantt chart of a request's spans; overlapping bars are concurrent work (parallel analysis)."""
    if not len(tl):
        return _nothing(title, "the traced request returned no spans or stage timings")
    fig = Figure(figsize=(10, 0.32 * max(len(tl), 4) + 1.2))
    ax = fig.subplots()
    for i, r in enumerate(tl.itertuples()):
        ax.barh(
            i,
            max(r.end_ms - r.start_ms, 0.01),
            left=r.start_ms,
            color=matplotlib.colormaps.get_cmap("tab20")(int(r.depth) % 20),
            edgecolor="black",
            lw=0.3,
        )
        ax.text(r.end_ms, i, f" {r.duration_ms:.2f} ms", va="center", fontsize=7)
    ax.set_yticks(range(len(tl)))
    ax.set_yticklabels(
        ["  " * int(d) + n for n, d in zip(tl["name"], tl["depth"], strict=True)], fontsize=8
    )
    ax.invert_yaxis()
    ax.set_xlabel("ms since request start")
    ax.set_title(title)
    fig.tight_layout()
    return fig
