"""The one load-run summary schema (``summary.json``), built from the raw records.

Schema ``axon_lab.load.summary/1`` (times in ms, rates per second, percentiles nearest-rank —
see :data:`axon_lab.stats.PERCENTILE_DEFINITION`, repeated in the file)::

    schema, name, incomplete (bool), incomplete_reason (str|null), passed (bool: every threshold ok)
    target:     {url, method, scenario, engine, profile}    profile: the target profile's name
    loop:       "open" | "closed";  shape: {executor, stages, start, arrival, think_time_s, duration_s}
    started_utc, elapsed_s (start → last response), window_s (the shape's duration)
    percentile_definition
    # headline = http_req_duration (response time from the intended start) of successful
    # responses and timeouts (at the timeout); error responses are counted apart:
    count, min, max, mean, stddev, p50, p90, p95, p99, p999, rps, rps_basis, errors, error_rate
    ci:         {p95: [low, high], p99: [low, high]}   95%, order statistics; null bound = too few samples
    warnings:   [str]                                  too few samples, closed-loop caveat, client-bound...
    requests:   {scheduled, sent, answered, ok, failed, timeouts, connect_errors, io_errors,
                 protocol_errors, dropped, interrupted, late, queued, bytes_received,
                 status_counts: {"200": n, ...}, outcomes: {ok: n, ...}, errors: {message: n} (top 10)}
    rate:       {target_rps, achieved_rps, achieved_rate_ratio, scheduled_in_window}   (open loop)
    throughput: {per_second: {count, min, p1, p2_5, p50, p97_5, mean, stddev}}        (autocannon Req/Sec)
    metrics:    {http_req_duration: stats, http_req_service_duration: stats, http_req_waiting: stats,
                 http_req_connecting: stats, schedule_lag: stats, "stage.<name>": stats,
                 "sse.<name>": stats (streaming: sse.ttft, sse.itl, ...), ...}
                 stats = {count, min, max, mean, stddev, p50, p90, p95, p99, p999, ci, warnings}
    cache:      {<name>: {hit, miss, other, hit_rate}}
    checks:     {rate, passes, fails, by_name: {<check>: {passes, fails, rate}}}
    rejected:   {count, rate, cause}        responses the target refused (4xx, 429); cause: one line
    rate_limit: {policy, limit, remaining, limited, answered_before_first_429, reset_s} | null
    thresholds: [{expr, metric, agg, op, limit, source, value, ok, reason}]
    client:     {loop_lag_ms, engine_thread_cpu_pct, process_cpu_pct, machine_cpu_pct,
                 dispatch_lag_ms, client_bound, reasons}
    engine:     {name, uvloop, peak_vus, connections_opened}
    drift:      {p95_first_ms, p95_last_ms, ratio}   http_req_duration p95, first vs last tenth of the run
    files:      {records, histograms, hgrm}          names inside the output directory
    provenance: axon_lab.provenance.collect(parameters): machine, commit, versions, parameters, UTC time

``count`` counts requests that were answered (any status) or timed out; ``errors`` counts
``http_req_failed`` (status ≥ 400 or no response). ``rps`` (also ``http_reqs:rate``): when the run
ended because its shape ran out (``rps_basis: "window"``), the requests completed by the end of
the load window divided by the window — autocannon's convention, so the drain of in-flight
requests in the grace period does not dilute it; runs ended by ``max_requests`` or a stop
(``rps_basis: "elapsed"``) use ``count / elapsed_s``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from axon_lab import provenance
from axon_lab.errors import InputFileError
from axon_lab.jsonutil import read_json
from axon_lab.load.servertiming import cache_outcome_kind
from axon_lab.load.thresholds import METRICS, RunMetrics, ThresholdResult
from axon_lab.stats import PERCENTILE_DEFINITION, STAT_FIELDS, describe, percentile

SCHEMA = "axon_lab.load.summary/1"
SUMMARY_NAME = "summary.json"
HISTOGRAMS_NAME = "histograms.json"
HGRM_NAME = "response_time.hgrm"
HEADLINE = "http_req_duration"
CLOSED_LOOP_NOTE = (
    "closed loop: each connection waits for its previous response, so a server "
    "stall delays the requests that would have been sent during it and they are "
    "never measured (coordinated omission); use an arrival rate (--rate) to see "
    "what users would see"
)


def _trend_stats(metrics: RunMetrics, name: str) -> dict[str, Any]:
    return describe(metrics.trend(name))


def _per_second(frame, elapsed_s: float) -> dict[str, Any]:
    """Requests completed in each whole second of the run (autocannon's Req/Sec row)."""
    if not len(frame):
        return {"count": 0}
    end = frame["end_ns"].to_numpy()
    timed = frame["outcome"].isin(["ok", "http_error", "timeout"]).to_numpy() & (end >= 0)
    full = int(elapsed_s)  # only whole seconds: a partial last second would read low
    if full < 1:
        return {"count": 0}
    secs = (end[timed] // 1_000_000_000).astype(np.int64)
    counts = np.bincount(secs[secs < full], minlength=full)[:full].astype(float)
    return {
        "count": int(counts.size),
        "min": float(counts.min()),
        "p1": percentile(counts, 1),
        "p2_5": percentile(counts, 2.5),
        "p50": percentile(counts, 50),
        "p97_5": percentile(counts, 97.5),
        "mean": float(counts.mean()),
        "stddev": float(counts.std(ddof=1)) if counts.size > 1 else 0.0,
    }


def _drift(frame, window_s: float) -> dict[str, Any]:
    """p95 of the first vs the last tenth of the run (by intended start): latency drift."""
    if not len(frame) or window_s <= 0:
        return {"p95_first_ms": None, "p95_last_ms": None, "ratio": None}
    t = frame["intended_ns"].to_numpy() / 1e9
    rt = frame["response_ms"].to_numpy()
    tenth = window_s / 10
    first = percentile(rt[t < tenth], 95)
    last = percentile(rt[t >= window_s - tenth], 95)
    ok = np.isfinite(first) and np.isfinite(last) and first > 0
    return {
        "p95_first_ms": first if np.isfinite(first) else None,
        "p95_last_ms": last if np.isfinite(last) else None,
        "ratio": last / first if ok else None,
    }


def _caches(frame) -> dict[str, Any]:
    out = {}
    for col in frame.columns:
        if not col.startswith("cache."):
            continue
        counts = {"hit": 0, "miss": 0, "other": 0}
        for value, n in frame[col].dropna().astype(str).value_counts().items():
            counts[cache_outcome_kind(value)] += int(n)
        den = counts["hit"] + counts["miss"]
        out[col.split(".", 1)[1]] = {**counts, "hit_rate": counts["hit"] / den if den else None}
    return out


def _rejected(metrics: RunMetrics) -> dict[str, Any]:
    """Responses the target refused (4xx incl. 429) and, when there are any, the cause."""
    refused, answered = metrics.rate("http_req_rejected")
    return {
        "count": refused,
        "rate": refused / answered if answered else None,
        "cause": metrics.rejection_cause(),
    }


def build_summary(
    frame,
    *,
    metrics: RunMetrics,
    thresholds: list[ThresholdResult],
    target: Mapping[str, Any],
    shape: Mapping[str, Any],
    started_utc: str,
    elapsed_s: float,
    window_s: float,
    scheduled: int,
    target_rps: float | None,
    checks: Mapping[str, Mapping[str, int]],
    client: Mapping[str, Any],
    incomplete_reason: str | None,
    parameters: Mapping[str, Any],
    name: str | None = None,
    files: Mapping[str, str] | None = None,
    engine: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble the summary (see the module docstring for the schema)."""
    outcome = frame["outcome"].astype(str) if len(frame) else frame["outcome"]
    oc = {k: int(v) for k, v in outcome.value_counts().items()} if len(frame) else {}
    status = (
        frame.loc[frame["status"] > 0, "status"].value_counts().sort_index() if len(frame) else {}
    )
    err_text = frame["error"].dropna().value_counts().head(10) if len(frame) else {}
    failed, attempted = metrics.rate("http_req_failed")
    open_loop = bool(shape.get("open_loop"))
    headline = _trend_stats(metrics, HEADLINE)
    answered = oc.get("ok", 0) + oc.get("http_error", 0)
    warnings = list(headline.get("warnings", []))
    if not open_loop:
        warnings.append(CLOSED_LOOP_NOTE)
    if client.get("client_bound"):
        warnings.append("client-bound run: " + "; ".join(client.get("reasons", [])))
    ratio = metrics.gauge("achieved_rate_ratio") if open_loop else None
    tm = {"http_req_duration": headline}
    for m in METRICS.names():
        if METRICS.get(m).kind == "trend" and "<" not in m and m != HEADLINE:
            tm[m] = _trend_stats(metrics, m)
    for col in sorted(c for c in frame.columns if c.startswith(("stage.", "sse."))):
        tm[col] = _trend_stats(metrics, col)
    passes = sum(v["passes"] for v in checks.values())
    fails = sum(v["fails"] for v in checks.values())
    summary: dict[str, Any] = {
        "schema": SCHEMA,
        "name": name,
        "incomplete": incomplete_reason is not None,
        "incomplete_reason": incomplete_reason,
        "passed": all(t.ok for t in thresholds),
        "target": dict(target),
        "loop": "open" if open_loop else "closed",
        "shape": dict(shape),
        "started_utc": started_utc,
        "elapsed_s": elapsed_s,
        "window_s": window_s,
        "percentile_definition": PERCENTILE_DEFINITION,
        **{k: headline.get(k) for k in STAT_FIELDS},
        # requests answered (any status) or timed out; the latency stats above count only
        # successful responses and timeouts (metrics.http_req_duration.count)
        "count": int(metrics.counter("http_reqs")),
        "rps": metrics.per_second("http_reqs")[0],
        "rps_basis": metrics.rate_basis,
        "errors": failed,
        "error_rate": failed / attempted if attempted else None,
        "ci": headline.get("ci", {}),
        "warnings": warnings,
        "requests": {
            "scheduled": scheduled,
            "sent": int((frame["sent_ns"] >= 0).sum()) if len(frame) else 0,
            "answered": answered,
            "ok": oc.get("ok", 0),
            "failed": failed,
            "timeouts": oc.get("timeout", 0),
            "connect_errors": oc.get("connect_error", 0),
            "io_errors": oc.get("io_error", 0),
            "protocol_errors": oc.get("protocol_error", 0),
            "dropped": oc.get("dropped", 0),
            "interrupted": oc.get("interrupted", 0),
            "late": int(frame["late"].sum()) if len(frame) else 0,
            "queued": int(frame["queued"].sum()) if len(frame) else 0,
            "bytes_received": int(frame["bytes"].clip(lower=0).sum()) if len(frame) else 0,
            "status_counts": {str(int(k)): int(v) for k, v in dict(status).items()},
            "outcomes": oc,
            "errors": {str(k): int(v) for k, v in dict(err_text).items()},
        },
        "rate": {
            "target_rps": target_rps,
            "achieved_rps": (ratio * target_rps) if (ratio is not None and target_rps) else None,
            "achieved_rate_ratio": ratio,
            "scheduled_in_window": metrics.scheduled_in_window,
        },
        "throughput": {"per_second": _per_second(frame, elapsed_s)},
        "metrics": tm,
        "cache": _caches(frame),
        "checks": {
            "rate": passes / (passes + fails) if passes + fails else None,
            "passes": passes,
            "fails": fails,
            "by_name": {
                k: {
                    **v,
                    "rate": v["passes"] / (v["passes"] + v["fails"])
                    if v["passes"] + v["fails"]
                    else None,
                }
                for k, v in checks.items()
            },
        },
        "rejected": _rejected(metrics),
        "rate_limit": metrics.rate_limit(),
        "thresholds": [t.to_dict() for t in thresholds],
        "client": dict(client),
        "engine": dict(engine or {}),
        "drift": _drift(frame, window_s),
        "files": dict(files or {}),
        "provenance": provenance.collect(parameters),
    }
    return summary


def stub_summary(
    *,
    target: Mapping[str, Any],
    shape: Mapping[str, Any],
    parameters: Mapping[str, Any],
    name: str | None = None,
) -> dict[str, Any]:
    """The summary written when a run starts: marked incomplete until the run finishes.

    If the process is killed outright, this is what remains next to the partial records.
    """
    return {
        "schema": SCHEMA,
        "name": name,
        "incomplete": True,
        "incomplete_reason": "run did not finish (still running, or the process was killed); "
        "records.parquet holds every flushed record",
        "passed": False,
        "target": dict(target),
        "shape": dict(shape),
        "loop": "open" if shape.get("open_loop") else "closed",
        "percentile_definition": PERCENTILE_DEFINITION,
        "files": {"records": "records.parquet"},
        "provenance": provenance.collect(parameters),
    }


def read_summary(path: Path | str) -> dict[str, Any]:
    """Read ``summary.json`` (``path``: the file or its run directory), checking the schema."""
    p = Path(path)
    if p.is_dir():
        p = p / SUMMARY_NAME
    doc = read_json(p)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise InputFileError(p, f"not a load summary (schema != {SCHEMA!r})")
    return doc
