"""Latency figures for load runs: histogram + CDF on a log axis with the guide's target and
critical lines, throughput and error rate over time, before/after distributions.

Figures are ``matplotlib.figure.Figure`` objects (not pyplot): shown once in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from axon_lab import targets


def _lines(ax, target_ms: float | None, critical_ms: float | None) -> None:
    if target_ms:
        ax.axvline(target_ms, color="#f9a825", ls="--", lw=1.5, label=f"target {target_ms:g} ms")
    if critical_ms:
        ax.axvline(critical_ms, color="#c62828", ls="--", lw=1.5, label=f"critical {critical_ms:g} ms")


def latency_distribution(samples: Mapping[str, np.ndarray], *, target_ms: float | None = None,
                         critical_ms: float | None = None, title: str = "Response time") -> Figure:
    """Histogram (log-spaced bins) and empirical CDF (log x axis), one series per run."""
    fig = Figure(figsize=(11, 4))
    ax1, ax2 = fig.subplots(1, 2)
    allv = np.concatenate([np.asarray(v, float) for v in samples.values() if len(v)]) if samples else np.array([])
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
    """Requests/s and error rate per second, one line per scenario (``timeseries`` frames)."""
    fig = Figure(figsize=(11, 4.5))
    ax1, ax2 = fig.subplots(2, 1, sharex=True)
    groups = ts.groupby("scenario") if "scenario" in ts else [("run", ts)]
    for name, g in groups:
        t = g["t_s"] - g["t_s"].min()
        ax1.plot(t, g["rps"], marker=".", label=str(name))
        ax2.plot(t, g["error_rate"] * 100, marker=".", label=str(name))
    tp = targets.get("throughput")
    ax1.axhline(tp.target, color="#f9a825", ls="--", lw=1, label=f"target {tp.target:g} req/s")
    ax1.axhline(tp.critical, color="#c62828", ls="--", lw=1, label=f"minimum {tp.critical:g} req/s")
    ax2.axhline(1.0, color="#c62828", ls="--", lw=1, label="1% error budget")
    ax1.set_ylabel("req/s")
    ax2.set_ylabel("errors %")
    ax2.set_xlabel("seconds since start")
    ax1.legend(fontsize=7, ncol=4)
    ax2.legend(fontsize=7)
    ax1.set_title("Throughput and error rate over time")
    fig.tight_layout()
    return fig


def before_after(table: pd.DataFrame) -> Figure:
    """Relative change per metric with its 95% CI (green improved, red regressed, grey noise)."""
    fig = Figure(figsize=(9, 3.2))
    ax = fig.subplots()
    colors = {"improved": "#2e7d32", "regressed": "#c62828", "noise": "#9e9e9e", "unknown": "#bdbdbd"}
    for i, r in enumerate(table.itertuples()):
        base = r.before if r.before not in (None, 0) and not pd.isna(r.before) else None
        if base is None or pd.isna(r.difference):
            continue
        rel, lo, hi = r.difference / base, r.ci_low / base, r.ci_high / base
        ax.errorbar(rel * 100, i, xerr=[[max(rel - lo, 0) * 100], [max(hi - rel, 0) * 100]], fmt="o",
                    color=colors.get(r.verdict, "black"), capsize=4)
    ax.axvline(0, color="black", lw=0.8)
    ax.set_yticks(range(len(table)))
    ax.set_yticklabels(table["metric"])
    ax.invert_yaxis()
    ax.set_xlabel("change after vs before (%), 95% CI")
    ax.set_title("Before / after")
    fig.tight_layout()
    return fig


