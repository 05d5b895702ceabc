"""Load-engine figures from a records frame: response vs service time, schedule lag, concurrency.

Complements :mod:`axon_lab.plots.latency` (distributions, throughput) with the open-loop views:
where response time (from the intended start) and service time (from the actual send) part
ways, coordinated omission is on the page. Functions take frames and return
``matplotlib.figure.Figure`` objects; they never touch files.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

_TIMED = ("ok", "http_error", "timeout")


def _timed(records: pd.DataFrame) -> pd.DataFrame:
    if "outcome" in records.columns:
        return records[records["outcome"].astype(str).isin(_TIMED)]
    return records


def response_vs_service(records: pd.DataFrame, *, title: str = "Response vs service time") -> Figure:
    """Each request's response and service time (log ms) against its intended start (s).

    A server stall shows as a ramp of response times — requests queued behind it — while the
    service times stay flat except for the few requests that were on the wire when it began.
    Late and queued requests are counted in the legend.
    """
    fig = Figure(figsize=(11, 4))
    ax = fig.subplots()
    df = _timed(records)
    if df.empty:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
        return fig
    t = df["intended_ns"].to_numpy() / 1e9
    ax.scatter(t, df["response_ms"], s=4, alpha=0.5, color="#c62828",
               label="response time (from intended start)")
    ax.scatter(t, df["service_ms"], s=4, alpha=0.5, color="#1565c0",
               label="service time (from actual send)")
    late = int(records["late"].sum()) if "late" in records else 0
    queued = int(records["queued"].sum()) if "queued" in records else 0
    ax.set_yscale("log")
    ax.set_xlabel("intended start (s)")
    ax.set_ylabel("ms (log)")
    ax.set_title(f"{title} — {late:,} late, {queued:,} queued for a connection")
    ax.legend(fontsize=8, loc="upper right", markerscale=3)
    fig.tight_layout()
    return fig


def schedule_lag(runs: Mapping[str, pd.DataFrame] | pd.DataFrame, *, limit_ms: float = 5.0) -> Figure:
    """CDF of schedule lag (actual send − intended start, ms, log) per run, with a limit line.

    Requests that waited for a free connection (``queued``) are drawn separately: their lag is
    the server's doing; the others' is the generator's own timing error.
    """
    if isinstance(runs, pd.DataFrame):
        runs = {"run": runs}
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots()
    drawn = False
    for name, rec in runs.items():
        rec = rec[rec["lag_ms"].notna()]
        for part, mask, ls in (("", ~rec["queued"], "-"), (" (queued)", rec["queued"], ":")):
            v = np.sort(np.clip(rec.loc[mask, "lag_ms"].to_numpy(dtype=float), 1e-3, None))
            if v.size:
                ax.step(v, np.arange(1, v.size + 1) / v.size, where="post", ls=ls,
                        label=f"{name}{part} (n={v.size:,})")
                drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
        return fig
    ax.axvline(limit_ms, color="#c62828", ls="--", lw=1, label=f"{limit_ms:g} ms")
    ax.axhline(0.99, color="#9e9e9e", lw=0.6)
    ax.set_xscale("log")
    ax.set_xlabel("schedule lag, ms (log)")
    ax.set_ylabel("fraction ≤ x")
    ax.set_title("Schedule lag")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def concurrency(records: pd.DataFrame, *, bucket_s: float = 0.1) -> Figure:
    """Requests in flight (sent, not yet answered) over time, and requests waiting to be sent."""
    fig = Figure(figsize=(11, 3.5))
    ax = fig.subplots()
    sent = records["sent_ns"].to_numpy()
    end = records["end_ns"].to_numpy()
    intended = records["intended_ns"].to_numpy()
    ok = (sent >= 0) & (end >= 0)
    if not ok.any():
        ax.text(0.5, 0.5, "no samples", ha="center", transform=ax.transAxes)
        return fig
    horizon = end[ok].max() / 1e9
    grid = np.arange(0.0, horizon + bucket_s, bucket_s)
    gn = grid * 1e9
    s_sorted, e_sorted = np.sort(sent[ok]), np.sort(end[ok])
    in_flight = np.searchsorted(s_sorted, gn, "right") - np.searchsorted(e_sorted, gn, "right")
    waiting_mask = sent >= 0
    i_sorted, w_sorted = np.sort(intended[waiting_mask]), np.sort(sent[waiting_mask])
    waiting = np.searchsorted(i_sorted, gn, "right") - np.searchsorted(w_sorted, gn, "right")
    ax.plot(grid, in_flight, color="#1565c0", label="in flight")
    ax.plot(grid, waiting, color="#c62828", label="due, not yet sent")
    ax.set_xlabel("time since start (s)")
    ax.set_ylabel("requests")
    ax.set_title("Concurrency")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
