"""Resources and event-loop lag of the profiled server: per-phase RSS and CPU%, the guide's memory and CPU targets, lag per phase, the RSS slope under load.

Conventions: CPU% is per core, as ``docker stats`` and ``top`` report it (100% = one core
busy), and the guide's CPU targets (< 50% normal, < 80% peak) are judged on that figure;
"normal" is the mean over the load phase, "peak" the 95th percentile of the samples.
Memory is the RSS of the server's process tree (profiler included when there is one), as
:class:`axon_lab.samplers.ProcessResourceSampler` samples it. Percentiles are numpy's linear
interpolation (type 7).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import goals

#: The guide's "High Event Loop Delay (> 10ms)" (clinic doctor) in "Identify Bottlenecks".
LAG_LIMIT_MS = 10.0
#: Soak: RSS growth (MB per minute over the load phase) above which a leak is suspected, when
#: the slope's 95% CI excludes zero as well.
LEAK_SLOPE_MB_PER_MIN = 1.0
PHASES: tuple[str, ...] = ("startup", "idle", "load", "drain")


def resource_summary(resources: pd.DataFrame) -> pd.DataFrame:
    """Per phase: samples, RSS mean/max (MB) and CPU% mean/p95/max (per core)."""
    rows = []
    for phase in [p for p in PHASES if p in set(resources.phase)]:
        g = resources[resources.phase == phase]
        rows.append(
            {
                "phase": phase,
                "samples": len(g),
                "seconds": float(g.t_s.max() - g.t_s.min()) if len(g) else 0.0,
                "rss_mean_mb": float(g.rss_mb.mean()),
                "rss_max_mb": float(g.rss_mb.max()),
                "cpu_mean_pct": float(g.cpu_pct.mean()),
                "cpu_p95_pct": float(np.percentile(g.cpu_pct, 95)),
                "cpu_max_pct": float(g.cpu_pct.max()),
            }
        )
    return pd.DataFrame(rows)


def resource_verdicts(resources: pd.DataFrame) -> pd.DataFrame:
    """The guide's memory and CPU targets judged on the samples.

    * memory idle: max RSS while idle, target < 2 GB (warn up to the 4 GB critical);
    * memory under load: max RSS during load, critical < 4 GB (pass below, fail above);
    * CPU normal: mean CPU% during load, target < 50% (warn up to 80%);
    * CPU peak: p95 of CPU% samples during load, critical < 80% (pass below, fail above).
    """
    s = resource_summary(resources).set_index("phase")
    mem, cpu = goals.get("memory_usage"), goals.get("cpu_usage")

    def val(phase: str, col: str) -> float | None:
        return float(s.loc[phase, col]) if phase in s.index else None

    def critical(v: float | None, limit: float) -> str:
        return "unknown" if v is None else ("pass" if v < limit else "fail")

    rows = [
        {
            "metric": "memory idle (max RSS)",
            "value": val("idle", "rss_max_mb"),
            "unit": "MB",
            "target": mem.target,
            "critical": mem.critical,
            "status": mem.judge(val("idle", "rss_max_mb")),
        },
        {
            "metric": "memory under load (max RSS)",
            "value": val("load", "rss_max_mb"),
            "unit": "MB",
            "target": mem.critical,
            "critical": mem.critical,
            "status": critical(val("load", "rss_max_mb"), mem.critical),
        },
        {
            "metric": "CPU normal (mean under load)",
            "value": val("load", "cpu_mean_pct"),
            "unit": "% of a core",
            "target": cpu.target,
            "critical": cpu.critical,
            "status": cpu.judge(val("load", "cpu_mean_pct")),
        },
        {
            "metric": "CPU peak (p95 under load)",
            "value": val("load", "cpu_p95_pct"),
            "unit": "% of a core",
            "target": cpu.critical,
            "critical": cpu.critical,
            "status": critical(val("load", "cpu_p95_pct"), cpu.critical),
        },
    ]
    return pd.DataFrame(rows)


def read_lag(path: str | Path) -> pd.DataFrame:
    """The lag file the profiled server writes: ``unix_time,lag_ms`` per line → frame (time, lag_ms)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=["time", "lag_ms"])
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(",")
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                rows.append({"time": float(parts[0]), "lag_ms": float(parts[1])})
    return pd.DataFrame(rows, columns=["time", "lag_ms"])


def label_phases(
    frame: pd.DataFrame, marks: Mapping[str, float], *, time_col: str = "time"
) -> pd.DataFrame:
    """Add a ``phase`` column from phase start times (unix seconds) ``{"idle": t, "load": t, ...}``."""
    out = frame.copy()
    order = sorted(marks.items(), key=lambda kv: kv[1])
    out["phase"] = "startup"
    for name, t in order:
        out.loc[out[time_col] >= t, "phase"] = name
    return out


def lag_summary(lag: pd.DataFrame) -> pd.DataFrame:
    """Event-loop lag per phase: p50, p99, max (ms) and the share of samples over 10 ms."""
    rows = []
    phases = [p for p in PHASES if "phase" in lag and p in set(lag.phase)] if len(lag) else []
    for phase in phases:
        v = lag.loc[lag.phase == phase, "lag_ms"].to_numpy(dtype=float)
        p99 = float(np.percentile(v, 99))
        rows.append(
            {
                "phase": phase,
                "samples": int(v.size),
                "p50_ms": float(np.percentile(v, 50)),
                "p99_ms": p99,
                "max_ms": float(v.max()),
                "share_over_10ms": float((v > LAG_LIMIT_MS).mean()),
                "status": "pass"
                if p99 <= LAG_LIMIT_MS
                else ("warn" if p99 <= 5 * LAG_LIMIT_MS else "fail"),
            }
        )
    return pd.DataFrame(rows)


def memory_slope(
    resources: pd.DataFrame,
    *,
    phase: str = "load",
    skip_fraction: float = 0.1,
    leak_mb_per_min: float = LEAK_SLOPE_MB_PER_MIN,
    min_minutes: float = 2.0,
) -> dict[str, Any]:
    """Least-squares RSS slope over a phase (MB per minute) with a 95% CI; flags a suspected leak.

    The first ``skip_fraction`` of the phase is left out (caches and pools fill up first). A
    leak is suspected when the slope is above ``leak_mb_per_min`` and its CI excludes zero;
    phases shorter than ``min_minutes`` are fitted but not judged (``leak_suspected`` None):
    a few seconds of warm-up growth extrapolate to an alarming, meaningless slope.
    """
    from scipy import stats

    g = resources[resources.phase == phase].sort_values("t_s")
    g = g.iloc[int(len(g) * skip_fraction) :]
    out: dict[str, Any] = {
        "phase": phase,
        "samples": len(g),
        "slope_mb_per_min": None,
        "ci95": None,
        "r2": None,
        "minutes": None,
        "growth_mb": None,
        "leak_suspected": None,
        "threshold_mb_per_min": leak_mb_per_min,
        "min_minutes": min_minutes,
    }
    if len(g) < 5 or float(g.t_s.max() - g.t_s.min()) <= 0:
        return out
    minutes = (g.t_s - g.t_s.iloc[0]).to_numpy(dtype=float) / 60
    fit = stats.linregress(minutes, g.rss_mb.to_numpy(dtype=float))
    tcrit = float(stats.t.ppf(0.975, len(g) - 2))
    lo, hi = fit.slope - tcrit * fit.stderr, fit.slope + tcrit * fit.stderr
    out.update(
        {
            "slope_mb_per_min": float(fit.slope),
            "ci95": [float(lo), float(hi)],
            "r2": float(fit.rvalue**2),
            "minutes": float(minutes[-1]),
            "growth_mb": float(g.rss_mb.iloc[-1] - g.rss_mb.iloc[0]),
            "intercept_mb": float(fit.intercept),
        }
    )
    if minutes[-1] >= min_minutes:
        out["leak_suspected"] = bool(fit.slope > leak_mb_per_min and lo > 0)
    return out
