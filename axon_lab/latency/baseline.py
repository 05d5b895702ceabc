"""Load-baseline analysis: verdicts per percentile, throughput/errors over time, the guide's
"Common Issues" table applied to a run (symptom detected → likely cause → what to try).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import goals, stats

#: Percentiles shown in the baseline table, with the target each is judged against.
PERCENTILE_TARGETS: dict[str, str | None] = {
    "p50": None,
    "p90": None,
    "p95": "full_orchestration",
    "p99": "full_orchestration_p99",
    "p999": None,
}


def _ok_times(records: pd.DataFrame, column: str = "response_ms") -> np.ndarray:
    from axon_lab.load.records import LATENCY_OUTCOMES

    df = records
    if "outcome" in df.columns:
        oc = df["outcome"]
        if not pd.api.types.is_numeric_dtype(oc):
            df = df[oc.isin(LATENCY_OUTCOMES)]
    return df[column].dropna().to_numpy(dtype=float)


def percentile_table(
    records: pd.DataFrame, *, scenario: str | None = None, column: str = "response_ms"
) -> pd.DataFrame:
    """Each percentile with its 95% CI and a ✅/⚠️/❌ verdict judged on the CI's upper bound.

    p95 is judged against the scenario's expectation (``goals.SCENARIO_EXPECTATIONS``) when
    given, else the guide's full-orchestration target (3 s / critical 5 s); p99 against the
    autocannon interpretation (5 s acceptable / 10 s critical).
    """
    values = _ok_times(records, column)
    rows = []
    exp = goals.SCENARIO_EXPECTATIONS.get(scenario or "")
    for name, q in stats.QUANTILES.items():
        ci = stats.percentile_ci(values, q)
        tname = PERCENTILE_TARGETS.get(name)
        target = goals.get(tname) if tname else None
        if name == "p95" and exp is not None and exp.p95_ms is not None and target is not None:
            target = goals.goal(
                f"{scenario}_p95",
                f"{scenario} p95",
                exp.p95_ms,
                max(exp.p95_ms, target.critical),
                "ms",
            )
        bounds = (ci.low, ci.high) if ci.low is not None and ci.high is not None else None
        status = target.judge(ci.estimate, bounds) if target else "info"
        if target and ci.high is None and status == "pass":
            status = "warn"  # too few samples to bound the tail: not a pass
        rows.append(
            {
                "percentile": name,
                "ms": ci.estimate,
                "ci_low": ci.low,
                "ci_high": ci.high,
                "target_ms": target.target if target else None,
                "critical_ms": target.critical if target else None,
                "verdict": goals.SYMBOLS[status],
                "status": status,
                "warning": ci.warning,
            }
        )
    return pd.DataFrame(rows)


def timeseries(records: pd.DataFrame, bucket_s: float = 1.0) -> pd.DataFrame:
    """Per time bucket (by completion time): requests, rps, errors, error rate, p50/p95 response."""
    from axon_lab.load.records import FAILED_OUTCOMES

    if records.empty:
        return pd.DataFrame(
            columns=["t_s", "requests", "rps", "errors", "error_rate", "p50_ms", "p95_ms"]
        )
    end = records["end_ns"].where(records["end_ns"] >= 0, records.get("intended_ns"))
    t = (end.astype("int64") / 1e9 // bucket_s) * bucket_s
    failed = (
        records["outcome"].isin(FAILED_OUTCOMES)
        if "outcome" in records
        else pd.Series(False, index=records.index)
    )
    df = pd.DataFrame({"t_s": t, "failed": failed, "ms": records.get("response_ms")})
    g = df.groupby("t_s")
    out = pd.DataFrame(
        {
            "requests": g.size(),
            "errors": g["failed"].sum(),
            "p50_ms": g["ms"].agg(
                lambda v: stats.percentile(v.dropna(), 50) if v.notna().any() else np.nan
            ),
            "p95_ms": g["ms"].agg(
                lambda v: stats.percentile(v.dropna(), 95) if v.notna().any() else np.nan
            ),
        }
    ).reset_index()
    out["rps"] = out["requests"] / bucket_s
    out["error_rate"] = out["errors"] / out["requests"]
    return out[["t_s", "requests", "rps", "errors", "error_rate", "p50_ms", "p95_ms"]]


def diagnose(
    *,
    p95_ms: float | None,
    p99_ms: float | None,
    p50_ms: float | None = None,
    rps: float | None,
    error_rate: float | None,
    scenario: str | None = None,
    stage_table: pd.DataFrame | None = None,
    memory_slope_mb_per_min: float | None = None,
    client_bound: bool = False,
) -> pd.DataFrame:
    """Apply the guide's "Common Issues" table to a run's figures.

    Each symptom is checked against the scenario's expectations (or the MVP targets) and
    reported with the evidence, the guide's cause and solution, and, when the stage table is
    given, the stages over budget that point at the cause.
    """
    exp = goals.SCENARIO_EXPECTATIONS.get(scenario or "")
    p95_limit = exp.p95_ms if exp and exp.p95_ms else goals.get("full_orchestration").target
    rps_min = exp.min_rps if exp and exp.min_rps else None
    err_max = exp.max_error_rate if exp else 0.01
    over = []
    if stage_table is not None and not stage_table.empty:
        over = [
            f"{r.stage} p95 {r.p95_ms:.0f} ms > budget {r.budget_ms:.0f} ms"
            for r in stage_table.itertuples()
            if r.status in ("warn", "fail") and r.stage != "total"
        ]
    checks = {
        "High p95 latency": (
            p95_ms is not None and p95_ms > p95_limit,
            f"p95 {p95_ms:.0f} ms vs {p95_limit:.0f} ms" if p95_ms is not None else "no samples",
        ),
        "High p99 latency": (
            p99_ms is not None
            and (
                p99_ms > goals.get("full_orchestration_p99").target
                or (p50_ms is not None and p50_ms > 0 and p99_ms > 5 * p50_ms)
            ),
            f"p99 {p99_ms:.0f} ms" + (f" = {p99_ms / p50_ms:.1f}x p50" if p50_ms else "")
            if p99_ms is not None
            else "no samples",
        ),
        "Low throughput": (
            rps is not None and rps_min is not None and rps < rps_min,
            f"{rps:.1f} req/s vs {rps_min} req/s expected"
            if rps is not None and rps_min
            else "no throughput expectation",
        ),
        "Memory growth": (
            memory_slope_mb_per_min is not None and memory_slope_mb_per_min > 1.0,
            f"RSS slope {memory_slope_mb_per_min:.2f} MB/min"
            if memory_slope_mb_per_min is not None
            else "not measured",
        ),
        "High error rate": (
            error_rate is not None and error_rate > err_max,
            f"{error_rate:.2%} vs {err_max:.0%} allowed"
            if error_rate is not None
            else "no samples",
        ),
    }
    rows = []
    for symptom, (detected, evidence) in checks.items():
        cause, solution = goals.COMMON_ISSUES[symptom]
        if detected and symptom in ("High p95 latency", "Low throughput") and over:
            evidence += "; " + "; ".join(over)
        if detected and symptom == "Low throughput" and client_bound:
            cause, solution = (
                "Load generator saturated (client-bound run)",
                "Use more generator processes or machines",
            )
        rows.append(
            {
                "symptom": symptom,
                "detected": bool(detected),
                "evidence": evidence,
                "likely cause": cause,
                "what to try": solution,
            }
        )
    return pd.DataFrame(rows)


def overview(runs: Mapping[str, Any]) -> pd.DataFrame:
    """One row per scenario run: requests, rps, error rate, p50/p95/p99 (+CI) and the verdict of
    each against the scenario's expectations (thresholds) — ✅/⚠️/❌.
    """
    rows = []
    for name, run in runs.items():
        s = run.summary
        ci = s.get("ci", {}).get("p95") or [None, None]
        failed = [t["expr"] for t in s.get("thresholds", []) if not t.get("ok")]
        status = (
            "fail"
            if failed
            else ("warn" if s.get("incomplete") or s.get("warnings") and ci[1] is None else "pass")
        )
        rows.append(
            {
                "scenario": name,
                "loop": s.get("loop"),
                "requests": s.get("count"),
                "rps": s.get("rps"),
                "error_rate": s.get("error_rate"),
                "p50_ms": s.get("p50"),
                "p95_ms": s.get("p95"),
                "p95_ci_high": ci[1],
                "p99_ms": s.get("p99"),
                "verdict": goals.SYMBOLS[status],
                "status": status,
                "failed_thresholds": "; ".join(failed),
                "incomplete": s.get("incomplete"),
            }
        )
    return pd.DataFrame(rows)


def all_percentiles(runs: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`percentile_table` of every run, one block per scenario."""
    frames = [percentile_table(r.records, scenario=n).assign(scenario=n) for n, r in runs.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def all_timeseries(runs: Mapping[str, Any], bucket_s: float = 1.0) -> pd.DataFrame:
    """:func:`timeseries` of every run, with a ``scenario`` column."""
    frames = [timeseries(r.records, bucket_s).assign(scenario=n) for n, r in runs.items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def common_issues(runs: Mapping[str, Any]) -> pd.DataFrame:
    """The guide's Common Issues table applied to every run (one block per scenario)."""
    from axon_lab.latency.breakdown import stage_table

    frames = []
    for name, run in runs.items():
        s = run.summary
        frames.append(
            diagnose(
                p50_ms=s.get("p50"),
                p95_ms=s.get("p95"),
                p99_ms=s.get("p99"),
                rps=s.get("rps"),
                error_rate=s.get("error_rate"),
                scenario=name,
                stage_table=stage_table(run.records),
                client_bound=bool(s.get("client", {}).get("client_bound")),
            ).assign(scenario=name)
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def verdict(table: pd.DataFrame, issues: pd.DataFrame) -> dict[str, str]:
    """One-line verdict for the report index."""
    worst = "pass"
    for st in table["status"]:
        if st == "fail" or (st == "warn" and worst == "pass"):
            worst = st
    found = sorted(set(issues.loc[issues.detected, "symptom"])) if not issues.empty else []
    parts = [
        f"{r.scenario}: p95 {r.p95_ms:.0f} ms, {r.rps:.1f} req/s, errors {r.error_rate:.1%} {r.verdict}"
        for r in table.itertuples()
        if r.p95_ms is not None and r.rps is not None and r.error_rate is not None
    ]
    if found:
        parts.append("issues: " + ", ".join(found))
    return {"status": worst, "summary": "; ".join(parts) or "no samples"}


def response_samples(runs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Response times (ms) of answered/timed-out requests, per run."""
    return {name: _ok_times(run.records) for name, run in runs.items()}


def distribution_lines(runs: Mapping[str, Any]) -> dict[str, float]:
    """Target and critical lines for the distribution plot: health check when only the health
    scenario ran, else full orchestration (guide MVP targets).
    """
    t = goals.get("health_check" if set(runs) == {"health"} else "full_orchestration")
    return {"target_ms": t.target, "critical_ms": t.critical}


def text_report(runs: Mapping[str, Any]) -> str:
    """The autocannon/k6-like tables of every run."""
    return "\n\n".join(f"== {name} ==\n{run.table()}" for name, run in runs.items())


def results(
    runs: Mapping[str, Any], table: pd.DataFrame, issues: pd.DataFrame, target: Any = None
) -> dict[str, Any]:
    """JSON-able results for the sidecar: per scenario the headline figures, thresholds, issues."""
    prof = getattr(target, "profile", None)
    out: dict[str, Any] = {
        "target": getattr(target, "label", None),
        "profile": getattr(prof, "name", None),
        "scenarios": {},
    }
    for name, run in runs.items():
        s = run.summary
        out["scenarios"][name] = {
            k: s.get(k)
            for k in (
                "loop",
                "count",
                "rps",
                "errors",
                "error_rate",
                "p50",
                "p90",
                "p95",
                "p99",
                "p999",
                "max",
                "ci",
                "incomplete",
                "passed",
            )
        } | {
            "thresholds": s.get("thresholds"),
            "warnings": s.get("warnings"),
            "out_dir": str(getattr(run, "out_dir", "") or ""),
        }
    out["issues_detected"] = (
        issues.loc[issues.detected, ["scenario", "symptom", "evidence"]].to_dict("records")
        if not issues.empty
        else []
    )
    out["overview"] = table.to_dict("records")
    return out
