"""The CI gate: did any metric regress since the baseline? (``axon-lab history check``).

Every series (one metric of one scenario or notebook on one machine, runs in time order) is
searched for level shifts (:func:`axon_lab.history.changepoints.detect`); a shift in the bad
direction at or after the baseline is a regression. The baseline is ``last-N`` (the last N runs
of each series are new) or a commit / run id prefix (runs after the last run at it are new).
Runs of different machines are never in one series.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

from axon_lab.errors import ConfigError
from axon_lab.history.changepoints import detect
from axon_lab.redact import redact_text

SERIES_KEY: tuple[str, ...] = ("metric", "name", "machine")


@dataclass(frozen=True)
class Shift:
    """A level shift in one series since the baseline."""

    metric: str
    name: str
    machine: str
    unit: str
    kind: str
    before: float
    after: float
    change: float
    p_value: float
    run: int
    commit_before: str | None
    commit_after: str | None
    options_change: str

    def line(self) -> str:
        """One line: metric [name @ machine] before → after (change) at run i (commits; options)."""
        unit = f" {self.unit}" if self.unit else ""
        change = "n/a" if math.isnan(self.change) else f"{self.change:+.1%}"
        commits = f"{(self.commit_before or '?')[:8]}..{(self.commit_after or '?')[:8]}"
        extra = f"; options: {self.options_change}" if self.options_change else ""
        return (
            f"{self.metric} [{self.name} @ {self.machine}] {self.before:.4g} → {self.after:.4g}{unit} "
            f"({change}, p={self.p_value:.2g}) at run {self.run + 1} (commits {commits}{extra})"
        )


@dataclass
class CheckResult:
    """Regressions and improvements since the baseline, and series too short to judge."""

    regressions: list[Shift] = field(default_factory=list)
    improvements: list[Shift] = field(default_factory=list)
    short: list[str] = field(default_factory=list)
    series: int = 0

    @property
    def passed(self) -> bool:
        return not self.regressions

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "series": self.series,
            "regressions": [asdict(s) for s in self.regressions],
            "improvements": [asdict(s) for s in self.improvements],
            "short": self.short,
        }

    def markdown(self) -> str:
        """A pull-request comment: a verdict line and a table per kind of shift."""
        head = (
            f"### Performance: {len(self.regressions)} regression(s), "
            f"{len(self.improvements)} improvement(s) in {self.series} series"
        )
        out = [head, ""]
        for title, shifts in (
            ("Regressions", self.regressions),
            ("Improvements", self.improvements),
        ):
            if not shifts:
                continue
            out += [f"**{title}**", "", "| metric | scenario | before | after | change | commits |",
                    "|---|---|---|---|---|---|"]  # fmt: skip
            for s in shifts:
                out.append(
                    f"| `{s.metric}` | {s.name} | {s.before:.4g} {s.unit} | {s.after:.4g} {s.unit} "
                    f"| {s.change:+.1%} | {(s.commit_before or '?')[:8]}..{(s.commit_after or '?')[:8]}"
                    + (f" ({s.options_change})" if s.options_change else "")
                    + " |"
                )
            out.append("")
        if not self.regressions and not self.improvements:
            out.append("No significant change since the baseline.")
        return "\n".join(out).rstrip() + "\n"


def _start(series: pd.DataFrame, baseline: str) -> int:
    """Position of the first new run of ``series`` (rows in time order)."""
    n = len(series)
    if baseline.startswith("last-"):
        try:
            k = int(baseline.split("-", 1)[1])
        except ValueError:
            raise ConfigError(f"baseline {baseline!r}: expected last-N or a commit") from None
        if k < 1:
            raise ConfigError(f"baseline {baseline!r}: N must be >= 1")
        return max(0, n - k)
    at = [
        i
        for i, (c, r) in enumerate(zip(series["commit"], series["run_id"], strict=True))
        if (isinstance(c, str) and c.startswith(baseline)) or str(r).startswith(baseline)
    ]
    return at[-1] + 1 if at else -1


def _mode(values: pd.Series) -> Any:
    """The most common value of a segment (``None`` for an empty one)."""
    vals = values.dropna()
    return vals.mode().iloc[0] if len(vals) else None


def _options_change(before: Any, after: Any) -> str:
    """``key a→b`` for the pipeline options that differ between two runs."""
    if before == after or not (before or after):
        return ""
    try:
        a = json.loads(before) if isinstance(before, str) else {}
        b = json.loads(after) if isinstance(after, str) else {}
    except ValueError:
        return ""
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return ""
    diffs = [
        f"{k} {a.get(k)!r}→{b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)
    ]
    return redact_text(", ".join(diffs[:6]) + (" ..." if len(diffs) > 6 else ""))


def check(
    frame: pd.DataFrame,
    *,
    baseline: str = "last-1",
    metrics: list[str] | None = None,
    min_effect: float = 0.05,
    alpha: float = 0.01,
) -> CheckResult:
    """Shifts since ``baseline`` in every series of ``frame`` (tidy history rows)."""
    result = CheckResult()
    if not len(frame):
        return result
    f = frame if not metrics else frame[frame["metric"].isin(metrics)]
    known = False
    for key, series in f.sort_values("created_utc", kind="stable").groupby(
        list(SERIES_KEY), sort=True, dropna=False
    ):
        series = series.reset_index(drop=True)
        result.series += 1
        start = _start(series, baseline)
        if start < 0:
            continue
        known = True
        if start >= len(series):
            continue
        better = str(series["better"].iloc[0] or "lower")
        points = detect(series["value"].to_numpy(dtype=float), better=better,
                        min_effect=min_effect, alpha=alpha)  # fmt: skip
        if not points and len(series) < 6:
            result.short.append(f"{key[0]} [{key[1]}]: {len(series)} runs, too few to judge")
        bounds = [0, *(cp.index for cp in points), len(series)]
        for k, cp in enumerate(points):
            if cp.index < start:
                continue
            i = cp.index
            # the options each segment mostly ran with (a shift may be found a run off)
            opts = series["options"]
            before_opts = _mode(opts.iloc[bounds[k] : i])
            after_opts = _mode(opts.iloc[i : bounds[k + 2]])
            shift = Shift(
                metric=str(key[0]),
                name=str(key[1]),
                machine=str(key[2]),
                unit=str(series["unit"].iloc[0] or ""),
                kind=cp.kind,
                before=cp.before,
                after=cp.after,
                change=cp.change,
                p_value=cp.p_value,
                run=i,
                commit_before=series["commit"].iloc[i - 1] if i > 0 else None,
                commit_after=series["commit"].iloc[i],
                options_change=_options_change(before_opts, after_opts),
            )
            (result.regressions if cp.kind == "regression" else result.improvements).append(shift)
    if not known and not baseline.startswith("last-"):
        commits = sorted({str(c)[:8] for c in frame["commit"].dropna()})[:5]
        raise ConfigError(
            f"baseline {baseline!r} matches no run (commits: {', '.join(commits) or 'none'}; "
            "or use last-N)"
        )
    return result
