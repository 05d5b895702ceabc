"""Fault-experiment and soak figures: each request over time with the fault window, per-second error rate and degraded share, /health, the before/during/after phase comparison, latency drift over a soak.

Figures are ``matplotlib.figure.Figure`` objects (not pyplot): shown once in a notebook.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from axon_lab import figures

figures.enable_notebook_display()

_PHASE_COLORS = {"before": "#1565c0", "during": "#c62828", "after": "#2e7d32"}


def _fault_window(ax: Any, fault: Mapping[str, float | None], *, label: bool = False) -> None:
    start, end = fault.get("start_s"), fault.get("end_s")
    if start is None:
        return
    ax.axvspan(
        start,
        end if end is not None else ax.get_xlim()[1],
        color="#ffcdd2",
        alpha=0.5,
        label="fault" if label else None,
        lw=0,
    )
    restored = fault.get("restored_s")
    if restored is not None:
        ax.axvline(
            restored, color="#2e7d32", ls=":", lw=1, label="backend restored" if label else None
        )


@figures.captioned(
    "The shaded band is the fault: errors or degraded answers should stay inside it and latency should return to its level after it."
)
def fault_timeline(
    records: pd.DataFrame,
    timeline: pd.DataFrame,
    health: pd.DataFrame,
    fault: Mapping[str, float | None],
    *,
    title: str = "Fault experiment",
) -> Figure:
    """Three panels sharing the time axis (s since the load started).

    1. every request's response time (log scale) by send time — healthy, degraded, failed;
    2. per second: error rate and share of degraded responses (%);
    3. ``/health`` status code samples.
    """
    fig = Figure(figsize=(11, 7.5))
    ax1, ax2, ax3 = fig.subplots(3, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2, 1]})
    if records.empty:
        ax1.text(0.5, 0.5, "no requests", ha="center", transform=ax1.transAxes)
        return fig
    ok = records["outcome"].astype(str).eq("ok") & records["status"].eq(200)
    groups = [
        ("healthy", ok & ~records["degraded"], "#1565c0", "."),
        ("degraded (no cache)", ok & records["degraded"], "#f9a825", "."),
        ("failed (non-200 / no answer)", ~ok, "#c62828", "x"),
    ]
    for name, mask, color, marker in groups:
        g = records[mask & records["response_ms"].notna()]
        if len(g):
            ax1.scatter(
                g["t_s"],
                g["response_ms"],
                s=10,
                color=color,
                marker=marker,
                label=f"{name} ({len(g)})",
            )
    ax1.set_yscale("log")
    ax1.set_ylabel("response ms (log)")
    _fault_window(ax1, fault, label=True)
    ax1.legend(fontsize=7, loc="upper left", ncol=2)
    ax1.set_title(title)
    if not timeline.empty:
        share_deg = 100 * timeline["degraded"] / timeline["requests"]
        ax2.step(
            timeline["t_s"],
            100 * timeline["error_rate"],
            where="post",
            color="#c62828",
            label="errors %",
        )
        ax2.step(timeline["t_s"], share_deg, where="post", color="#f9a825", label="degraded %")
    ax2.axhline(1.0, color="#616161", ls="--", lw=0.8, label="1% error budget")
    ax2.set_ylabel("% of requests / s")
    ax2.set_ylim(-3, 103)
    _fault_window(ax2, fault)
    ax2.legend(fontsize=7, loc="upper left")
    if not health.empty:
        ax3.scatter(
            health["t_s"],
            health["code"],
            s=8,
            c=np.where(health["code"].eq(200), "#2e7d32", "#c62828"),
        )
    ax3.set_yticks([0, 200, 503])
    ax3.set_yticklabels(["no answer", "200", "503"])
    ax3.set_ylim(-60, 580)
    ax3.set_ylabel("/health")
    ax3.set_xlabel("seconds since the load started")
    _fault_window(ax3, fault)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Before, during and after the fault side by side: after should look like before; during shows what users got."
)
def phase_comparison(
    phases: pd.DataFrame, *, title: str = "Before / during / after the fault"
) -> Figure:
    """Per phase: response-time p50/p95/p99 (bars, log) and error rate / degraded share (%)."""
    fig = Figure(figsize=(11, 3.8))
    ax1, ax2 = fig.subplots(1, 2)
    x = np.arange(len(phases))
    width = 0.26
    for i, q in enumerate(("p50_ms", "p95_ms", "p99_ms")):
        vals = pd.to_numeric(phases[q], errors="coerce").to_numpy(dtype=float)
        ax1.bar(
            x + (i - 1) * width,
            np.nan_to_num(vals, nan=0.0),
            width,
            label=q.replace("_ms", ""),
            color=["#90caf9", "#1e88e5", "#0d47a1"][i],
        )
    ax1.set_xticks(x)
    ax1.set_xticklabels(phases["phase"])
    ax1.set_yscale("log")
    ax1.set_ylabel("ms (log)")
    ax1.set_title("Response time")
    ax1.legend(fontsize=7)
    err = 100 * pd.to_numeric(phases["error_rate"], errors="coerce").fillna(0.0)
    deg = 100 * pd.to_numeric(phases["degraded_share"], errors="coerce").fillna(0.0)
    ax2.bar(x - 0.2, err, 0.4, color="#c62828", label="errors %")
    ax2.bar(x + 0.2, deg, 0.4, color="#f9a825", label="degraded %")
    for xi, (e, n) in enumerate(zip(err, phases["requests"], strict=True)):
        ax2.text(xi - 0.2, e + 1, f"{e:.1f}%\nn={n}", ha="center", fontsize=7)
    ax2.set_xticks(x)
    ax2.set_xticklabels(phases["phase"])
    ax2.set_ylim(0, 110)
    ax2.set_title("Errors and degraded responses")
    ax2.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


@figures.captioned(
    "Latency over the run: a line that keeps rising means the service does not recover."
)
def latency_drift(
    windows: pd.DataFrame, drift: Mapping[str, Any], *, title: str = "Latency over the soak"
) -> Figure:
    """Per-window p50/p95/p99 over the run with the fitted p50 trend (should be flat)."""
    fig = Figure(figsize=(9, 3.4))
    ax = fig.subplots()
    if windows.empty:
        ax.text(0.5, 0.5, "no requests", ha="center", transform=ax.transAxes)
        return fig
    minutes = (windows["t_s"] - windows["t_s"].iloc[0]) / 60
    for q, color in (("p50_ms", "#90caf9"), ("p95_ms", "#1e88e5"), ("p99_ms", "#0d47a1")):
        ax.plot(minutes, windows[q], marker=".", color=color, label=q.replace("_ms", ""))
    if drift.get("p50_slope_ms_per_min") is not None:
        xs = np.array([0.0, float(minutes.iloc[-1])])
        ys = drift["p50_intercept_ms"] + drift["p50_slope_ms_per_min"] * xs
        flag = {True: "DRIFT SUSPECTED", False: "no drift", None: "too short to judge"}[
            drift.get("drift_suspected")
        ]
        ax.plot(
            xs,
            ys,
            color="#c62828",
            ls="--",
            label=f"p50 trend {drift['p50_slope_ms_per_min']:+.2f} ms/min ({flag})",
        )
    ax.set_yscale("log")
    ax.set_xlabel("minutes")
    ax.set_ylabel("response ms (log)")
    ax.set_title(title)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
