"""Soak runs: a steady load for a long time, with the server's memory slope (MB/min, fitted) and latency drift, flagging leaks.

``run_soak(url, duration_s=600)`` drives an axon_lab server at a constant arrival rate (open
loop: a server that slows down cannot throttle its own load, so drift shows) while the
server's RSS is polled from its ``/metrics/process`` (cheap; not ``/metrics``, whose per-stage
summary is expensive). Memory: least-squares RSS slope over the run
after a warm-up share, with a 95% CI (:func:`axon_lab.profiling.memory_slope`); a leak
is suspected when the slope is above 1 MB/min and its CI excludes zero, judged only on runs of
at least two minutes. Latency: per-window p50/p95 of the response time over the run, the p50
slope (ms/min, 95% CI) and the ratio of the last tenth's p95 to the first tenth's, for the
client's response time and for the server's own time (``Server-Timing`` total); drift is
suspected when that ratio is above 1.5 and the slope's CI excludes zero (same two-minute rule),
judged on the server's time when there is one — on a shared machine the client's time also
moves with whatever else runs there.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import stats, workload
from axon_lab.errors import ConfigError
from axon_lab.profiling.resources import memory_slope
from axon_lab.samplers import ServerResourceSampler

#: Latency drift: last-tenth p95 over first-tenth p95 above this (and a rising p50 trend).
DRIFT_RATIO = 1.5
#: Runs shorter than this are fitted but not judged (warm-up growth extrapolates badly).
MIN_MINUTES = 2.0
#: The server's own time per request (``Server-Timing: total``), recorded by the load engine.
SERVER_COLUMN = "stage.total"
PROCESS_PATH = "/api/v1/prompts/process"


@dataclass
class SoakRun:
    """A soak run: records, RSS samples, the memory fit and the latency drift.

    Attributes
    ----------
    records
        Per-request records of the load (``axon_lab.load`` columns).
    resources
        RSS samples of the server: t_s, rss_mb, cpu_percent, phase (``load``).
    windows
        :func:`latency_windows` of the records.
    memory, latency
        :func:`memory_fit` and :func:`latency_drift`.
    summary
        The load run's summary.
    """

    records: pd.DataFrame
    resources: pd.DataFrame
    windows: pd.DataFrame
    memory: dict[str, Any]
    latency: dict[str, Any]
    summary: dict[str, Any]
    params: dict[str, Any]
    out_dir: Path | None = None

    def __repr__(self) -> str:
        m, lat = self.memory, self.latency
        slope = m.get("slope_mb_per_min")
        return (
            f"<SoakRun {self.params.get('duration_s', 0):g}s, {len(self.records)} requests, "
            f"RSS slope {'-' if slope is None else f'{slope:+.2f} MB/min'}, "
            f"p95 drift x{_f(lat.get('ratio'))}, errors {self.summary.get('errors')}>"
        )


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.2f}"


def memory_fit(
    resources: pd.DataFrame,
    *,
    skip_fraction: float = 0.1,
    leak_mb_per_min: float = 1.0,
    min_minutes: float = MIN_MINUTES,
) -> dict[str, Any]:
    """RSS slope over the run (MB/min, 95% CI, leak flag); see :func:`axon_lab.profiling.memory_slope`."""
    frame = resources if "phase" in resources else resources.assign(phase="load")
    out = memory_slope(
        frame,
        phase="load",
        skip_fraction=skip_fraction,
        leak_mb_per_min=leak_mb_per_min,
        min_minutes=min_minutes,
    )
    # The second half alone: growth that levels off (allocator, caches filling) shows a much
    # smaller slope there than over the whole run; a leak keeps its slope.
    late = (
        frame[frame["t_s"] >= frame["t_s"].min() + (frame["t_s"].max() - frame["t_s"].min()) / 2]
        if len(frame)
        else frame
    )
    half = memory_slope(
        late,
        phase="load",
        skip_fraction=0.0,
        leak_mb_per_min=leak_mb_per_min,
        min_minutes=min_minutes / 2,
    )
    out["second_half"] = {k: half[k] for k in ("slope_mb_per_min", "ci95", "minutes", "samples")}
    if len(frame):
        out["rss_start_mb"] = float(frame["rss_mb"].iloc[0])
        out["rss_end_mb"] = float(frame["rss_mb"].iloc[-1])
        out["rss_max_mb"] = float(frame["rss_mb"].max())
    return out


def latency_windows(
    records: pd.DataFrame,
    *,
    window_s: float | None = None,
    n_windows: int = 20,
    column: str = "response_ms",
) -> pd.DataFrame:
    """Per window (by send time): requests, errors, p50/p95/p99 of ``column`` (ms, nearest rank)
    over the successful requests.

    ``window_s`` defaults to the run's length over ``n_windows`` (at least 1 s); ``column`` is
    the client's ``response_ms`` or a server-side ``stage.*`` column (``stage.total``).
    """
    cols = ["t_s", "requests", "errors", "p50_ms", "p95_ms", "p99_ms"]
    if records.empty:
        return pd.DataFrame(columns=cols)
    t = (
        records["sent_ns"].where(records["sent_ns"] >= 0, records["intended_ns"]).astype("float64")
        / 1e9
    )
    span = float(t.max() - t.min()) if len(t) > 1 else 1.0
    w = window_s or max(1.0, span / n_windows)
    ok = records["outcome"].astype(str).eq("ok") & records["status"].eq(200)
    df = pd.DataFrame({"t_s": (t // w) * w, "ok": ok, "ms": records[column].where(ok)})
    g = df.groupby("t_s")
    out = pd.DataFrame(
        {
            "requests": g.size(),
            "errors": g["ok"].agg(lambda v: int((~v).sum())),
            **{
                f"p{q}_ms": g["ms"].agg(
                    lambda v, q=q: stats.percentile(v.dropna(), q) if v.notna().any() else np.nan
                )
                for q in (50, 95, 99)
            },
        }
    ).reset_index()
    return out[cols]


def latency_drift(
    records: pd.DataFrame,
    windows: pd.DataFrame,
    *,
    ratio_limit: float = DRIFT_RATIO,
    min_minutes: float = MIN_MINUTES,
    column: str = "response_ms",
) -> dict[str, Any]:
    """Latency drift of ``column`` over the run: first vs last tenth p95 and the per-window p50 slope
    (``windows`` from :func:`latency_windows` of the same column).

    Returns ``p95_first_ms``, ``p95_last_ms``, ``ratio``, ``p50_slope_ms_per_min`` with
    ``ci95``, ``minutes`` and ``drift_suspected`` (None when shorter than ``min_minutes``).
    """
    from scipy import stats as sps

    out: dict[str, Any] = {
        "p95_first_ms": None,
        "p95_last_ms": None,
        "ratio": None,
        "p50_slope_ms_per_min": None,
        "ci95": None,
        "minutes": None,
        "drift_suspected": None,
        "ratio_limit": ratio_limit,
        "min_minutes": min_minutes,
        "column": column,
    }
    if records.empty or column not in records.columns:
        return out
    ok = records["outcome"].astype(str).eq("ok") & records["status"].eq(200)
    t = (
        records["sent_ns"].where(records["sent_ns"] >= 0, records["intended_ns"]).astype("float64")
        / 1e9
    )
    keep = ok & records[column].notna()
    t, ms = t[keep].to_numpy(), records.loc[keep, column].to_numpy(dtype=float)
    if t.size < 10:
        return out
    t0, t1 = float(t.min()), float(t.max())
    tenth = (t1 - t0) / 10
    first = stats.percentile(ms[t < t0 + tenth], 95)
    last = stats.percentile(ms[t >= t1 - tenth], 95)
    out["minutes"] = (t1 - t0) / 60
    if np.isfinite(first) and np.isfinite(last) and first > 0:
        out.update(
            {"p95_first_ms": float(first), "p95_last_ms": float(last), "ratio": float(last / first)}
        )
    w = windows.dropna(subset=["p50_ms"])
    if len(w) >= 5:
        minutes = (w["t_s"].to_numpy(dtype=float) - float(w["t_s"].iloc[0])) / 60
        fit = sps.linregress(minutes, w["p50_ms"].to_numpy(dtype=float))
        tcrit = float(sps.t.ppf(0.975, len(w) - 2))
        lo, hi = fit.slope - tcrit * fit.stderr, fit.slope + tcrit * fit.stderr
        out.update(
            {
                "p50_slope_ms_per_min": float(fit.slope),
                "ci95": [float(lo), float(hi)],
                "p50_intercept_ms": float(fit.intercept),
            }
        )
        if out["minutes"] >= min_minutes and out["ratio"] is not None:
            out["drift_suspected"] = bool(out["ratio"] > ratio_limit and lo > 0)
    return out


def run_soak(
    url: str,
    *,
    duration_s: float = 600.0,
    rate: float = 5.0,
    prompts: str = "distinct",
    workspace: str = "test",
    connections: int = 64,
    timeout_s: float = 30.0,
    sample_interval_s: float = 2.0,
    out_dir: Path | str | None = None,
    progress: bool = False,
    smoke: bool = False,
) -> SoakRun:
    """Drive ``url`` (an axon_lab server) at ``rate`` requests/s for ``duration_s`` and analyze.

    Parameters
    ----------
    url
        Base URL of the server (its ``/metrics`` gives the RSS samples).
    duration_s
        Soak length (the guide's sustained scenario is 30 min; at least 10 min for a verdict
        worth noting; under :data:`MIN_MINUTES` nothing is judged).
    rate
        Requests per second (open loop, constant arrival).
    prompts
        ``distinct`` (every request new: embeddings, cache writes, store reads — the paths a
        leak would live on) or ``mix`` (Zipf-like repetition).
    sample_interval_s
        RSS sampling period.
    out_dir
        Where records, ``resources.parquet`` and the summary go (default ``reports/soak/runs/soak``).
    smoke
        CI: 8 s through the same code path.
    """
    from axon_lab.lab import run_dir
    from axon_lab.load import LoadRunner

    if smoke:
        duration_s, sample_interval_s = min(duration_s, 8.0), min(sample_interval_s, 0.5)
    if not duration_s > 0 or not rate > 0:
        raise ConfigError(f"duration_s and rate must be > 0, got {duration_s} and {rate}")
    n = max(100, math.ceil(rate * duration_s * 1.1) + 10)
    if prompts == "distinct":
        texts = workload.distinct_prompts(n)
    elif prompts == "mix":
        texts = workload.zipf_workload(n)
    else:
        raise ConfigError(f"prompts must be distinct or mix, got {prompts!r}")
    out = Path(out_dir) if out_dir is not None else run_dir("soak", "soak")
    base = url.rstrip("/")
    params = {
        "url": base,
        "duration_s": float(duration_s),
        "rate": float(rate),
        "prompts": prompts,
        "sample_interval_s": float(sample_interval_s),
        "smoke": smoke,
    }
    # servers without the cheap /metrics/process are polled on /metrics (it also computes stage summaries)
    sampler = ServerResourceSampler(
        base, interval_s=sample_interval_s, timeout_s=5.0, fallback_path="/metrics"
    ).start()
    try:
        result = LoadRunner(
            url=f"{base}{PROCESS_PATH}",
            method="POST",
            bodies=workload.prompt_bodies(texts, workspace),
            rate=rate,
            duration_s=duration_s,
            connections=connections,
            timeout_s=timeout_s,
            out_dir=out,
            name="soak",
            checks=["status==200"],
            progress=progress,
            max_duration_s=max(4 * 3600.0, duration_s),
            parameters={"soak": params},
        ).run()
    finally:
        resources = sampler.stop().assign(phase="load")
    resources.to_parquet(out / "resources.parquet", index=False)
    return analyze(result.records, resources, result.summary, params, out_dir=out)


def analyze(
    records: pd.DataFrame,
    resources: pd.DataFrame,
    summary: Mapping[str, Any],
    params: Mapping[str, Any],
    *,
    out_dir: Path | None = None,
) -> SoakRun:
    """Fit memory and latency of a soak's records and RSS samples."""
    windows = latency_windows(records)
    latency = latency_drift(records, windows)
    if SERVER_COLUMN in records.columns and records[SERVER_COLUMN].notna().any():
        sw = latency_windows(records, column=SERVER_COLUMN)
        latency["server"] = latency_drift(records, sw, column=SERVER_COLUMN)
        windows = windows.merge(
            sw[["t_s", "p50_ms", "p95_ms"]].rename(
                columns={"p50_ms": "server_p50_ms", "p95_ms": "server_p95_ms"}
            ),
            on="t_s",
            how="left",
        )
    return SoakRun(
        records,
        resources,
        windows,
        memory_fit(resources),
        latency,
        dict(summary),
        dict(params),
        out_dir,
    )


def _drift_flag(lat: Mapping[str, Any]) -> bool | None:
    """Drift is judged on the server's own time when it reports one (``Server-Timing`` total):
    on a shared machine the client-side time also moves with everything else that runs there.
    """
    server = lat.get("server")
    return server["drift_suspected"] if server is not None else lat.get("drift_suspected")


def results(run: SoakRun) -> dict[str, Any]:
    """JSON-able results: parameters, memory fit, latency drift, load counts."""
    s = run.summary
    return {
        "params": run.params,
        "memory": run.memory,
        "latency": run.latency,
        "load": {
            k: s.get(k)
            for k in ("count", "errors", "error_rate", "rps", "p50", "p95", "p99", "max")
        },
        "rss_samples": int(len(run.resources)),
        "windows": int(len(run.windows)),
    }


def verdict(run: SoakRun) -> dict[str, str]:
    """One line: fail on a suspected leak, drift or server errors; info when too short to judge."""
    m, lat, s = run.memory, run.latency, run.summary
    parts = []
    slope = m.get("slope_mb_per_min")
    if slope is not None:
        lo, hi = m["ci95"]
        parts.append(
            f"RSS {slope:+.2f} MB/min (95% CI {lo:+.2f}..{hi:+.2f}) over {m['minutes']:.1f} min"
        )
    if lat.get("ratio") is not None:
        parts.append(
            f"p95 first/last tenth {lat['p95_first_ms']:.0f}/{lat['p95_last_ms']:.0f} ms (x{lat['ratio']:.2f})"
        )
    server = lat.get("server")
    if server is not None and server.get("ratio") is not None:
        parts.append(f"server-side x{server['ratio']:.2f}")
    errors = int(s.get("errors") or 0)
    parts.append(f"{errors} errors")
    drift = _drift_flag(lat)
    if m.get("leak_suspected") or drift or errors:
        status = "fail"
        if m.get("leak_suspected"):
            parts.insert(0, "LEAK SUSPECTED")
        if drift:
            parts.insert(0, "LATENCY DRIFT")
    elif m.get("leak_suspected") is None or drift is None:
        status = "info"
        parts.append(f"shorter than {MIN_MINUTES:g} min: not judged")
    else:
        status = "pass"
    return {"status": status, "summary": "; ".join(parts)}
