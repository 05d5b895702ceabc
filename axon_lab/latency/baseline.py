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
    given, by the same rule as the run's threshold (``fail`` when the estimate misses it;
    ``warn`` when it meets it but the CI's upper bound does not), else the guide's
    full-orchestration target (3 s / critical 5 s); p99 against the autocannon interpretation
    (5 s acceptable / 10 s critical).
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
        rule = expectation_rules(scenario).get("p95_ms") if name == "p95" and exp else None
        if rule is not None and target is not None:
            # the scenario's p95 is also a threshold of the run: the same rule decides fail
            # (the estimate misses it); the CI only tells a sure pass from a likely one
            met = rule.ok(ci.estimate)
            if met is False:
                status = "fail"
            elif met:
                status = "pass" if ci.high is not None and rule.ok(ci.high) else "warn"
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
    out = pd.DataFrame(rows)
    out.attrs["units"] = {"ms": "ms", "ci_low": "ms", "ci_high": "ms"}
    return out


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


def expectation_rules(scenario: str | None) -> dict[str, goals.Rule]:
    """The limit rules a run of ``scenario`` is judged by (its thresholds, its common issues).

    A scenario without an expectation is judged against the MVP targets: p95 under the full
    orchestration target, error rate under 1%.
    """
    exp = goals.SCENARIO_EXPECTATIONS.get(scenario or "")
    if exp is None:
        exp = goals.ScenarioExpectation(
            p95_ms=goals.get("full_orchestration").target, min_rps=None, max_error_rate=0.01
        )
    return exp.rules()


def _fmt_rate(v: float) -> str:
    """A rate with enough digits that a value beside a limit never reads as equal to it."""
    s = f"{v:.1f}"
    if float(s) != v and float(s).is_integer():  # 9.97 would read "10.0" beside a limit of 10
        s = f"{v:.3f}"
    return s


def _fmt_limit(rule: goals.Rule) -> str:
    if rule.key == "error_rate":
        return f"{rule.limit:.0%}"
    return f"{rule.limit:,g} {rule.unit}"


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
    rules = expectation_rules(scenario)
    over = []
    if stage_table is not None and not stage_table.empty:
        over = [
            f"{r.stage} p95 {r.p95_ms:.0f} ms > budget {r.budget_ms:.0f} ms"
            for r in stage_table.itertuples()
            if r.status in ("warn", "fail") and r.stage != "total"
        ]

    def judged(key: str, value: float | None, shown: str) -> tuple[bool, str]:
        """Detected when the scenario's rule fails: the same rule as the run's threshold."""
        rule = rules.get(key)
        if rule is None:
            return False, "no expectation for this scenario"
        ok = rule.ok(value)
        if ok is None:
            return False, "no samples"
        want = f"{rule.op} {_fmt_limit(rule)}"
        return not ok, f"{shown}, expected {want} ({'met' if ok else 'missed'})"

    checks = {
        "High p95 latency": judged(
            "p95_ms", p95_ms, f"p95 {p95_ms:,.0f} ms" if p95_ms is not None else ""
        ),
        "High p99 latency": (
            p99_ms is not None
            and (
                p99_ms > goals.get("full_orchestration_p99").target
                or (p50_ms is not None and p50_ms > 0 and p99_ms > 5 * p50_ms)
            ),
            f"p99 {p99_ms:,.0f} ms" + (f" = {p99_ms / p50_ms:.1f}x p50" if p50_ms else "")
            if p99_ms is not None
            else "no samples",
        ),
        "Low throughput": judged("rps", rps, f"{_fmt_rate(rps)} req/s" if rps is not None else ""),
        "Memory growth": (
            memory_slope_mb_per_min is not None and memory_slope_mb_per_min > 1.0,
            f"RSS slope {memory_slope_mb_per_min:.2f} MB/min"
            if memory_slope_mb_per_min is not None
            else "not measured",
        ),
        "High error rate": judged(
            "error_rate", error_rate, f"{error_rate:.2%}" if error_rate is not None else ""
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
                "p95_ci_low": ci[0],
                "p95_ci_high": ci[1],
                "p99_ms": s.get("p99"),
                "verdict": goals.SYMBOLS[status],
                "status": status,
                "failed_thresholds": "; ".join(failed),
                "incomplete": s.get("incomplete"),
            }
        )
    out = pd.DataFrame(rows)
    out.attrs["units"] = {"p95_ci_low": "ms", "p95_ci_high": "ms"}
    out.attrs["caption"] = (
        "One row per scenario; the verdict is the scenario's thresholds (the guide's expectations)."
    )
    out.attrs["warnings"] = run_warnings(runs)
    return out


def run_warnings(runs: Mapping[str, Any]) -> list[str]:
    """What a reader must know before trusting the runs' numbers (too few samples, a
    client-bound generator, an incomplete run), one line each, prefixed by the scenario.
    """
    out: list[str] = []
    for name, run in runs.items():
        s = run.summary
        if s.get("incomplete"):
            out.append(f"{name}: incomplete run ({s.get('incomplete_reason')})")
        for w in s.get("warnings") or []:
            if str(w).startswith("closed loop:"):
                w = "closed loop: server stalls delay the next requests and are not measured (coordinated omission)"
            out.append(f"{name}: {w}")
    return out


def all_percentiles(runs: Mapping[str, Any]) -> pd.DataFrame:
    """:func:`percentile_table` of every run, one block per scenario."""
    frames = [percentile_table(r.records, scenario=n).assign(scenario=n) for n, r in runs.items()]
    out = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    out.attrs["units"] = {"ms": "ms", "ci_low": "ms", "ci_high": "ms"}
    out.attrs["caption"] = (
        "Percentiles of successful responses with 95% CIs; p95 and p99 are judged on the CI's "
        "upper bound (a pass needs the pessimistic end to meet the target)."
    )
    return out


def measured_window(
    ts: pd.DataFrame, window_s: float | None, bucket_s: float = 1.0
) -> pd.DataFrame:
    """``ts`` with a ``phase`` column: ``load`` for buckets that end within the load window,
    ``drain`` for those after it (in-flight requests finishing once the load stopped: fewer
    requests per second there is not a throughput collapse). Without a window all are ``load``.
    """
    out = ts.copy()
    if window_s is None or window_s <= 0 or out.empty:
        out["phase"] = "load"
        return out
    out["phase"] = np.where(out["t_s"] + bucket_s <= window_s + 1e-9, "load", "drain")
    return out


def all_timeseries(runs: Mapping[str, Any], bucket_s: float = 1.0) -> pd.DataFrame:
    """:func:`timeseries` of every run, with ``scenario`` and ``phase`` (``load``, or ``drain``
    after the load window: see :func:`measured_window`) columns.
    """
    frames = [
        measured_window(
            timeseries(r.records, bucket_s), (r.summary or {}).get("window_s"), bucket_s
        ).assign(scenario=n)
        for n, r in runs.items()
    ]
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


def verdict(table: pd.DataFrame, issues: pd.DataFrame) -> dict[str, Any]:
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
    return {
        "status": worst,
        "summary": "; ".join(parts) or "no samples",
        "numbers": deciding_numbers(table),
        "warnings": list(table.attrs.get("warnings") or []),
    }


def deciding_numbers(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The figures the verdict rests on, each against its scenario rule (the run's thresholds):
    p95 (with its CI), throughput and error rate of each scenario (at most five figures).
    """
    from axon_lab.report.summary import figure

    out: list[dict[str, Any]] = []
    many = len(table) > 1
    for r in table.itertuples():
        rules = expectation_rules(r.scenario)
        prefix = f"{r.scenario} " if many else f"{r.scenario}: "

        def add(
            key: str,
            label: str,
            value: Any,
            unit: str,
            ci: Any = None,
            rules: dict[str, goals.Rule] = rules,
            prefix: str = prefix,
        ) -> None:
            rule = rules.get(key)
            ok = rule.ok(value) if rule else None
            status = None if ok is None else ("pass" if ok else "fail")
            if ok and rule is not None and ci is not None:
                # as the percentile table judges it: a pass needs the CI's pessimistic end
                # (the upper bound for a latency) to meet the target, else it is a warning
                high = ci[1]
                if (
                    high is None
                    or (isinstance(high, float) and np.isnan(high))
                    or not rule.ok(high)
                ):
                    status = "warn"
            out.append(
                figure(
                    prefix + label,
                    value,
                    unit,
                    target=f"{rule.op} {_fmt_limit(rule)}" if rule else None,
                    ci=ci,
                    status=status,
                )
            )

        add("p95_ms", "p95 latency", r.p95_ms, "ms", [r.p95_ci_low, r.p95_ci_high])
        if not many:
            out.append(figure(prefix + "p99 latency", r.p99_ms, "ms"))
        add("rps", "throughput", r.rps, "req/s")
        add("error_rate", "error rate", r.error_rate, "%")
    return out[:5]


def response_samples(runs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Response times (ms) of answered/timed-out requests, per run."""
    return {name: _ok_times(run.records) for name, run in runs.items()}


def distribution_lines(runs: Mapping[str, Any]) -> dict[str, float]:
    """Target and critical lines for the distribution plot: one scenario's p95 expectation (and
    the critical line the percentile table uses with it), else health check when only the
    health scenario ran, else full orchestration (guide MVP targets).
    """
    t = goals.get("health_check" if set(runs) == {"health"} else "full_orchestration")
    if len(runs) == 1:
        # one scenario with a p95 expectation: the lines the percentile table judges it by
        exp = goals.SCENARIO_EXPECTATIONS.get(next(iter(runs)))
        if exp is not None and exp.p95_ms is not None:
            return {"target_ms": exp.p95_ms, "critical_ms": max(exp.p95_ms, t.critical)}
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
