"""Fault run analysis: records, ``/health`` samples and fault events aligned on the run's clock; per-phase error rate and latency, detection and recovery times, timeline, results and verdict.

Phases are ``before`` / ``during`` / ``after`` the fault; a request in flight at any time during
the fault belongs to ``during``. Percentiles are nearest rank (:func:`axon_lab.stats.percentile`).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import stats
from axon_lab.errors import InputFileError

PHASES: tuple[str, ...] = ("before", "during", "after")


@dataclass
class FaultRun:
    """A fault experiment's data and analysis (:func:`analyze`; also rebuilt by
    :func:`axon_lab.faults.run.read_fault_run`).

    Attributes
    ----------
    plan
        backend, mode, at_s, for_s, latency_ms, rate, duration_s...
    records
        The load run's per-request records plus ``t_s`` (s since the run's start),
        ``phase``, ``degraded`` and ``healthy`` columns.
    health
        ``/health`` samples: t_s, code, down, ms, phase.
    fault
        Actual fault start and end, s since the run's start (``start_s``, ``end_s``).
    summary
        The load run's ``summary.json`` (a stub if the run was killed).
    phases, recovery
        :func:`phase_table` and :func:`recovery` of the above.
    """

    plan: dict[str, Any]
    records: pd.DataFrame
    health: pd.DataFrame
    fault: dict[str, float | None]
    summary: dict[str, Any]
    phases: pd.DataFrame
    recovery: dict[str, Any]
    out_dir: Path | None = None
    error: str | None = None

    def __repr__(self) -> str:
        p = self.plan
        during = (
            self.phases.set_index("phase").get("error_rate", pd.Series(dtype=float)).get("during")
        )
        rec = self.recovery.get("recovery_s")
        return (
            f"<FaultRun {p['backend']} {p['mode']} at {p['at_s']:g}s for {p['for_s']:g}s: "
            f"{len(self.records)} requests, error rate during {_fmt_rate(during)}, "
            f"recovered in {'-' if rec is None else f'{rec:.2f}s'}>"
        )


def _fmt_rate(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.2f}%"


def _started_unix(summary: Mapping[str, Any], events: list[dict[str, Any]]) -> float:
    """The load run's start (wall clock): ``started_utc`` of the summary, else the schedule's t0."""
    started = summary.get("started_utc")
    if started:
        return _dt.datetime.fromisoformat(started).timestamp()
    for e in events:
        if e["event"] == "scheduled":
            return float(e.get("t0_unix", e["unix"]))
    raise InputFileError("fault run", "no start time (neither a summary nor a schedule event)")


def analyze(
    plan: Mapping[str, Any],
    records: pd.DataFrame,
    health: pd.DataFrame,
    events: list[dict[str, Any]],
    summary: Mapping[str, Any],
    *,
    out_dir: Path | None = None,
) -> FaultRun:
    """Align the records, health samples and fault events on the run's clock and analyze them."""
    t0 = _started_unix(summary, events)
    ev = {e["event"]: e["unix"] - t0 for e in events}
    # start/end: when the fault was begun/ended; restored: when the backend was back (a killed
    # Redis answers again) — recovery is timed from there.
    fault = {
        "start_s": ev.get("fault_start"),
        "end_s": ev.get("fault_end"),
        "restored_s": ev.get("fault_cleared", ev.get("fault_end")),
    }
    recs = records.copy()
    sent = (
        recs["sent_ns"].where(recs["sent_ns"] >= 0, recs["intended_ns"])
        if len(recs)
        else recs["sent_ns"]
    )
    recs["t_s"] = sent.astype("float64") / 1e9
    recs["end_s"] = recs["end_ns"].where(recs["end_ns"] >= 0).astype("float64") / 1e9
    cache_cols = [c for c in recs.columns if c.startswith("cache.")]
    if cache_cols:
        recs["degraded"] = np.logical_or.reduce(
            [recs[c].astype("string").fillna("").eq("degraded").to_numpy() for c in cache_cols]
        )
    else:
        recs["degraded"] = False
    recs["healthy"] = (
        recs["outcome"].astype(str).eq("ok") & recs["status"].eq(200) & ~recs["degraded"]
    )
    recs["phase"] = _phase(recs["t_s"], fault, recs["end_s"])
    h = health.copy()
    h["t_s"] = h["unix"] - t0 if len(h) else pd.Series(dtype=float)
    h["phase"] = _phase(h["t_s"], fault)
    phases = phase_table(recs)
    rec = recovery(recs, h, fault)
    return FaultRun(dict(plan), recs, h, fault, dict(summary), phases, rec, out_dir=out_dir)


def _phase(t: pd.Series, fault: Mapping[str, float | None], end: pd.Series | None = None) -> Any:
    """``before`` / ``during`` / ``after`` the fault. With ``end`` (a request's completion), a
    request belongs to ``during`` when it was in flight at any time during the fault — one
    sent just before it and failed by it is the fault's, not the baseline's.
    """
    start, stop = fault.get("start_s"), fault.get("end_s")
    out = pd.Series("before", index=t.index, dtype=object)
    if start is not None:
        hit = t >= start
        if end is not None:
            hit = hit | (end.fillna(np.inf) >= start)
        out[hit] = "during"
        if stop is not None:
            out[t >= stop] = "after"
    return pd.Categorical(out, categories=list(PHASES))


def phase_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per phase: requests, rps, errors and error rate (status ≠ 200 or no answer), 5xx, 503s,
    timeouts, degraded share, and response-time percentiles (nearest rank, ms) of all answers.
    """
    rows = []
    for phase in PHASES:
        g = records[records["phase"] == phase]
        n = len(g)
        ok = g["outcome"].astype(str).eq("ok") & g["status"].eq(200) if n else pd.Series(dtype=bool)
        timed = g[g["outcome"].astype(str).isin(["ok", "http_error", "timeout"])][
            "response_ms"
        ].dropna()
        span = float(g["t_s"].max() - g["t_s"].min()) if n > 1 else 0.0
        row = {
            "phase": phase,
            "requests": n,
            "rps": n / span if span > 0 else None,
            "errors": int(n - ok.sum()) if n else 0,
            "error_rate": float(1 - ok.mean()) if n else None,
            "server_errors": int((g["status"] >= 500).sum()) if n else 0,
            "status_503": int((g["status"] == 503).sum()) if n else 0,
            "timeouts": int(g["outcome"].astype(str).eq("timeout").sum()) if n else 0,
            "degraded": int(g["degraded"].sum()) if n else 0,
            "degraded_share": float(g["degraded"].mean()) if n else None,
        }
        for q in (50, 95, 99):
            row[f"p{q}_ms"] = stats.percentile(timed.to_numpy(), q) if len(timed) else None
        row["max_ms"] = float(timed.max()) if len(timed) else None
        rows.append(row)
    return pd.DataFrame(rows)


def recovery(
    records: pd.DataFrame, health: pd.DataFrame, fault: Mapping[str, float | None]
) -> dict[str, Any]:
    """Detection and recovery times (s) around the fault.

    * ``detection_s``: fault start → the first unhealthy answer (completed after the start);
    * ``recovery_s``: backend restored (``restored_s``: a killed Redis answers again, a store
      wrapper is cleared) → the send time of the first request from which on *every* request
      sent is healthy (200, not degraded), i.e. from when new requests get full service again
      (0 when the first one after the restore already does); ``None`` if never;
    * ``health_recovery_s``: restored → the first ``/health`` 200 from which on all are 200;
    * ``latency_recovery_s``: restored → the send time of the first request (sent after the
      end) answered within the p95 of the healthy answers before the fault;
    * ``max_error_answer_ms``: the slowest answer that was not a success (how long a client
      waited for its 503 or timeout: the bound on a failure).
    """
    start, end = fault.get("start_s"), fault.get("end_s")
    restored = fault.get("restored_s", end)
    out: dict[str, Any] = {
        "fault_start_s": start,
        "fault_end_s": end,
        "restored_s": restored,
        "detection_s": None,
        "recovery_s": None,
        "recovered": False,
        "health_recovery_s": None,
        "latency_recovery_s": None,
        "unhealthy_requests": int((~records["healthy"]).sum()) if len(records) else 0,
        "max_error_answer_ms": None,
    }
    if start is None or not len(records):
        return out
    r = records.sort_values("t_s")
    seen = r["end_s"].fillna(r["t_s"])
    bad = seen[(~r["healthy"]) & (seen >= start)]
    if len(bad):
        out["detection_s"] = float(bad.min() - start)
    failed = r[~r["outcome"].astype(str).eq("ok") | ~r["status"].eq(200)]
    if len(failed) and failed["response_ms"].notna().any():
        out["max_error_answer_ms"] = float(failed["response_ms"].max())
    if end is None or restored is None:
        return out
    after = r[r["t_s"] >= end]
    if len(after):
        healthy = after["healthy"].to_numpy()
        # the first index from which on everything is healthy: after the last unhealthy one
        unhealthy = np.flatnonzero(~healthy)
        first = 0 if not unhealthy.size else int(unhealthy[-1]) + 1
        if first < len(after):
            out["recovery_s"] = max(0.0, float(after["t_s"].iloc[first]) - restored)
            out["recovered"] = True
        # latency back to normal: the first request sent after the end answered within the
        # baseline's p95 (before the fault)
        base = r[(r["phase"] == "before") & r["healthy"]]["response_ms"].dropna()
        fast = (
            after[
                after["healthy"] & (after["response_ms"] <= stats.percentile(base.to_numpy(), 95))
            ]
            if len(base) >= 5
            else after.iloc[0:0]
        )
        if len(fast):
            out["latency_recovery_s"] = max(0.0, float(fast["t_s"].iloc[0]) - restored)
    if len(health):
        h = health[health["t_s"] >= end].sort_values("t_s")
        ok = h["code"].eq(200).to_numpy()
        bad_h = np.flatnonzero(~ok)
        first_h = 0 if not bad_h.size else int(bad_h[-1]) + 1
        if first_h < len(h):
            out["health_recovery_s"] = max(0.0, float(h["t_s"].iloc[first_h] - restored))
    return out


# --- results for sidecars and reports ---------------------------------------------------------
def timeline(run: FaultRun, bucket_s: float = 1.0) -> pd.DataFrame:
    """Per time bucket (by send time): requests, errors, 503s, degraded, p50/p95/max response (ms)."""
    r = run.records
    cols = [
        "t_s",
        "requests",
        "errors",
        "status_503",
        "degraded",
        "error_rate",
        "p50_ms",
        "p95_ms",
        "max_ms",
    ]
    if r.empty:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame(
        {
            "t_s": (r["t_s"] // bucket_s) * bucket_s,
            "bad": ~(r["outcome"].astype(str).eq("ok") & r["status"].eq(200)),
            "s503": r["status"].eq(503),
            "deg": r["degraded"],
            "ms": r["response_ms"],
        }
    )
    g = df.groupby("t_s")
    out = pd.DataFrame(
        {
            "requests": g.size(),
            "errors": g["bad"].sum(),
            "status_503": g["s503"].sum(),
            "degraded": g["deg"].sum(),
            "p50_ms": g["ms"].agg(
                lambda v: stats.percentile(v.dropna(), 50) if v.notna().any() else np.nan
            ),
            "p95_ms": g["ms"].agg(
                lambda v: stats.percentile(v.dropna(), 95) if v.notna().any() else np.nan
            ),
            "max_ms": g["ms"].max(),
        }
    ).reset_index()
    out["error_rate"] = out["errors"] / out["requests"]
    return out[cols]


def results(run: FaultRun) -> dict[str, Any]:
    """JSON-able results: the plan, the fault's actual times, phases, recovery, errors seen."""
    errs = (
        run.records["error"].dropna().astype(str).value_counts().head(5)
        if len(run.records)
        else pd.Series(dtype=int)
    )
    return {
        "plan": run.plan,
        "fault": run.fault,
        "phases": run.phases.to_dict(orient="records"),
        "recovery": run.recovery,
        "requests": int(len(run.records)),
        "incomplete": bool(run.summary.get("incomplete")),
        "top_errors": {str(k): int(v) for k, v in errs.items()},
        "health_samples": int(len(run.health)),
        "error": run.error,
    }


def verdict(run: FaultRun, *, max_error_rate: float | None = None) -> dict[str, Any]:
    """One line: pass when the service degraded as it should and recovered.

    Redis faults must not fail requests (error rate during the fault below ``max_error_rate``,
    default 1%); store faults may fail (503) but every failure must be answered within the
    policy's deadline plus a margin (no hang), and the service must recover after the fault.
    """
    p, ph = run.plan, run.phases.set_index("phase")
    rec = run.recovery
    during = ph.loc["during", "error_rate"] if "during" in ph.index else None
    after_err = ph.loc["after", "server_errors"] if "after" in ph.index else 0
    parts = [f"{p['backend']} {p['mode']}: error rate during {_fmt_rate(during)}"]
    status = "pass"
    if p["backend"] == "redis" and p["mode"] != "latency":
        limit = 0.01 if max_error_rate is None else max_error_rate
        if during is not None and not np.isnan(during) and during >= limit:
            status = "fail"
            parts.append(f"(limit {100 * limit:g}%: Redis must only degrade the service)")
    elif (
        max_error_rate is not None
        and during is not None
        and not np.isnan(during)
        and during >= max_error_rate
    ):
        status = "fail"
    if rec.get("max_error_answer_ms") is not None:
        parts.append(f"slowest failure {rec['max_error_answer_ms']:.0f} ms")
        deadline = ((p.get("policies") or {}).get(p["backend"]) or {}).get("deadline_s")
        if deadline is not None and rec["max_error_answer_ms"] > 1000 * (deadline + 5.0):
            status = "fail"
            parts.append(f"(beyond the {deadline:g}s deadline: a hang)")
    if rec.get("recovered"):
        parts.append(f"recovered {rec['recovery_s']:.2f}s after the fault")
    else:
        status = "fail"
        parts.append("did not recover before the run ended")
    if after_err and rec.get("recovered") is False:
        parts.append(f"{after_err} server errors after the fault")
    if run.error:
        status = "fail"
        parts.append(f"schedule error: {run.error}")
    from axon_lab.report.summary import figure

    redis_limit = 0.01 if max_error_rate is None else max_error_rate
    numbers = [
        figure(
            "error rate during the fault",
            during,
            "%",
            target=f"< {redis_limit:.0%} (Redis must only degrade)"
            if p["backend"] == "redis" and p["mode"] != "latency"
            else "503s allowed, answered in time",
        ),
        figure(
            "recovery after the fault",
            rec.get("recovery_s"),
            "s",
            target="recovers before the run ends",
            status="pass" if rec.get("recovered") else "fail",
        ),
        figure("detection after the fault started", rec.get("detection_s"), "s"),
    ]
    if rec.get("max_error_answer_ms") is not None:
        numbers.append(figure("slowest failed answer", rec["max_error_answer_ms"], "ms"))
    warnings = (
        [f"incomplete load run: {run.summary.get('incomplete_reason')}"]
        if run.summary.get("incomplete")
        else []
    )
    return {
        "status": status,
        "summary": "; ".join(parts),
        "numbers": numbers,
        "warnings": warnings,
    }
