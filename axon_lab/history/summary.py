"""The guide's "Document Results" Markdown for two runs or commits of the history.

The template of the guide's *Measuring Success* section ("Performance Optimization Results":
Date, Version, Changes Made, Results, Next Steps), filled from the run history
(``axon-lab history summary --from REF --to REF``): the commit subjects between the two commits
(``git log``), and the guide's five rows (p95 latency, throughput, memory, cache hit rate, error
rate) with the improvement in each metric's good direction and a 95% confidence interval of the
difference when each side has several runs.
"""

from __future__ import annotations

import math
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from axon_lab import __version__
from axon_lab.errors import ConfigError
from axon_lab.history.store import metric_info
from axon_lab.redact import redact_text

__all__ = ["RESULT_ROWS", "document_results", "git_subjects", "welch_ci"]

#: The guide's before/after rows: label, history metric, display unit (``%``: a ratio shown
#: as a percentage, its difference in percentage points).
RESULT_ROWS: tuple[tuple[str, str, str], ...] = (
    ("p95 latency", "http_req_duration:p95", "ms"),
    ("Throughput", "http_reqs:rate", "req/s"),
    ("Memory", "process.rss_mb", "MB"),
    ("Cache hit rate", "cache.context:rate", "%"),
    ("Error rate", "http_req_failed:rate", "%"),
)
_MAX_SUBJECTS = 30
#: A regression without a confidence interval (single runs) is worth a second look from here.
_NOTABLE = 0.05


@dataclass(frozen=True)
class _Side:
    """The runs of one side: what the reference matched and their rows."""

    ref: str
    commit: str | None
    rows: pd.DataFrame

    @property
    def runs(self) -> int:
        return int(self.rows["run_id"].nunique())

    def describe(self) -> str:
        r = self.rows
        what = f"commit `{self.commit[:8]}`" if self.commit else f"run `{self.ref}`"
        branch = next((str(b) for b in r["branch"].dropna()), None)
        dirty = " (dirty)" if r["dirty"].fillna(False).astype(bool).any() else ""
        first, last = r["created_utc"].min(), r["created_utc"].max()
        when = first.strftime("%Y-%m-%d %H:%M")
        if last.floor("min") != first.floor("min"):
            when += f" to {last.strftime('%Y-%m-%d %H:%M')}"
        machines = ", ".join(f"`{m}`" for m in sorted(r["machine"].dropna().astype(str).unique()))
        on = f" on {branch}" if branch else ""
        return (
            f"{what}{dirty}{on}: {self.runs} run{'s' if self.runs != 1 else ''}, {when} UTC, "
            f"machine {machines or 'unknown'}"
        )


def _resolve(frame: pd.DataFrame, ref: str, what: str) -> _Side:
    """The runs of a commit prefix (all of its runs) or of a run id prefix (that run)."""
    ref = (ref or "").strip()
    commits = frame["commit"].astype("string").fillna("")
    run_ids = frame["run_id"].astype(str)
    if ref:
        at = sorted(set(commits[commits.str.startswith(ref)]) - {""})
        if len(at) == 1:
            return _Side(ref, at[0], frame[commits == at[0]])
        ids = sorted(set(run_ids[run_ids.str.startswith(ref)]))
        if len(at) > 1 or len(ids) > 1:
            some = ", ".join(c[:8] for c in (at or ids)[:5])
            raise ConfigError(f"{what} {ref!r} is ambiguous ({some}, ...): give more characters")
        if ids:
            rows = frame[run_ids == ids[0]]
            commit = next((str(c) for c in rows["commit"].dropna()), None)
            return _Side(ref, commit, rows)
    order = frame.sort_values("created_utc", ascending=False, kind="stable")
    known_c = list(dict.fromkeys(str(c)[:8] for c in order["commit"].dropna()))[:4]
    known_r = list(dict.fromkeys(str(r)[:8] for r in order["run_id"]))[:3]
    raise ConfigError(
        f"{what} {ref!r} matches no run or commit in the history (latest commits: "
        f"{', '.join(known_c) or 'none'}; runs: {', '.join(known_r) or 'none'})"
    )


def git_subjects(
    before: str, after: str, *, cwd: Path | str | None = None, timeout: float = 10.0
) -> list[str] | None:
    """Subjects of the commits in ``before..after`` (oldest first), or ``None`` without git.

    Parameters
    ----------
    before, after : str
        Commit ids.
    cwd : path, optional
        The repository (default: the checkout that holds ``axon_lab``, whose commits the
        history records).
    timeout : float
        Seconds before git is given up on.

    Returns
    -------
    list of str or None
        ``None`` when git is missing, fails (a commit unknown to this clone) or times out.
    """
    root = Path(cwd) if cwd is not None else Path(__file__).resolve().parents[2]
    try:
        done = subprocess.run(
            ["git", "log", "--reverse", "--format=%s", f"{before}..{after}"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return [line for line in done.stdout.splitlines() if line.strip()]


def welch_ci(
    a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> tuple[float, float, float]:
    """``mean(b) - mean(a)`` and its Welch t confidence interval ``(diff, low, high)``.

    NaN bounds when a side has fewer than 2 values; a zero-width interval when neither varies.
    """
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    if not x.size or not y.size:
        return math.nan, math.nan, math.nan
    diff = float(y.mean() - x.mean())
    if x.size < 2 or y.size < 2:
        return diff, math.nan, math.nan
    wa, wb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se2 = wa + wb
    if se2 == 0:
        return diff, diff, diff
    df = se2 * se2 / (wa * wa / (x.size - 1) + wb * wb / (y.size - 1))
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(se2)
    return diff, diff - half, diff + half


def _like_with_like(
    a: pd.DataFrame, b: pd.DataFrame, metric: str
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """The rows of ``metric`` on each side from one series (scenario and machine) both ran.

    A commit's runs may cover several scenarios and machines; pooling them would compare
    hardware and workloads, and their spread would swamp the confidence interval. The series
    with the most runs on both sides is kept (its runs are the replicates that are averaged);
    the third value names it when the sides had more than one to choose from, or says that they
    share none (then every row is used).
    """
    ra, rb = a[a["metric"] == metric], b[b["metric"] == metric]
    if not len(ra) or not len(rb):
        return ra, rb, ""
    ka = ra["name"].astype("string").fillna("") + "\0" + ra["machine"].astype("string").fillna("")
    kb = rb["name"].astype("string").fillna("") + "\0" + rb["machine"].astype("string").fillna("")
    ca, cb = ka.value_counts(), kb.value_counts()
    both = sorted(set(ca.index) & set(cb.index), key=lambda k: (-min(ca[k], cb[k]), k))
    if not both:
        return ra, rb, "different scenarios or machines"
    if len(ca) == 1 and len(cb) == 1:
        return ra, rb, ""
    name, machine = both[0].split("\0", 1)
    return ra[ka == both[0]], rb[kb == both[0]], f"{name} @ {machine.split('|', 1)[0]}"


def _value(v: float, unit: str) -> str:
    if not math.isfinite(v):
        return "n/a"
    if unit == "%":
        return f"{100 * v:.3g}%"
    return f"{v:,.0f} {unit}" if abs(v) >= 1000 else f"{v:.4g} {unit}"


def _bound(v: float, unit: str) -> str:
    if unit == "%":
        return f"{100 * v:+.2g}"
    return f"{v:+,.0f}" if abs(v) >= 1000 else f"{v:+.3g}"


def document_results(history_frame: pd.DataFrame, *, before: str, after: str) -> str:
    """The guide's "Document Results" Markdown comparing two runs or commits.

    Parameters
    ----------
    history_frame : pandas.DataFrame
        Tidy history rows (:meth:`axon_lab.history.History.frame`).
    before, after : str
        A commit id prefix (all runs at that commit; their values are averaged) or a run id
        prefix (that run).

    Returns
    -------
    str
        Markdown: ``## Performance Optimization Results`` with the date (of the latest run of
        ``after``), the version (axon_lab and the two commits), the changes (``git log`` subjects
        between the commits, "n/a" without git or commits), the results table of
        :data:`RESULT_ROWS` (before, after, improvement in the metric's good direction, Welch 95%
        CI of the difference of the run means when each side has at least 2 runs), and next steps
        naming the regressions.

    Raises
    ------
    ConfigError
        If ``before`` or ``after`` matches no run or commit (one line listing some that exist),
        or matches several.
    """
    if not len(history_frame):
        raise ConfigError("the history is empty: add runs first (axon-lab history add)")
    a = _resolve(history_frame, before, "before")
    b = _resolve(history_frame, after, "after")
    out = [
        "## Performance Optimization Results",
        "",
        f"**Date**: {b.rows['created_utc'].max().strftime('%Y-%m-%d')}",
        "",
        f"**Version**: axon_lab {__version__}; "
        f"{(a.commit or a.ref)[:8]} → {(b.commit or b.ref)[:8]}",
        "",
        f"- Before: {a.describe()}",
        f"- After: {b.describe()}",
    ]
    ma = set(a.rows["machine"].dropna().astype(str))
    mb = set(b.rows["machine"].dropna().astype(str))
    if ma and mb and not ma & mb:
        out += [
            "",
            "> **Warning**: before and after ran on different machines; the differences "
            "include the hardware.",
        ]
    out += ["", "### Changes Made", ""]
    if not (a.commit and b.commit):
        out.append("n/a")
    elif a.commit == b.commit:
        out.append("None: both sides are the same commit.")
    else:
        subjects = git_subjects(a.commit, b.commit)
        if subjects is None:
            out.append("n/a")
        elif not subjects:
            out.append(f"No commits in {a.commit[:8]}..{b.commit[:8]}.")
        else:
            out += [f"{i}. {redact_text(s)}" for i, s in enumerate(subjects[:_MAX_SUBJECTS], 1)]
            if len(subjects) > _MAX_SUBJECTS:
                out.append(f"\n... and {len(subjects) - _MAX_SUBJECTS} more commits.")
    out += [
        "",
        "### Results",
        "",
        "| Metric | Before | After | Improvement | 95% CI of the difference (after − before) |",
        "|---|---|---|---|---|",
    ]
    regressions = []
    for label, metric, unit in RESULT_ROWS:
        ra, rb, where = _like_with_like(a.rows, b.rows, metric)
        va = ra["value"].to_numpy(dtype=float)
        vb = rb["value"].to_numpy(dtype=float)
        va, vb = va[np.isfinite(va)], vb[np.isfinite(vb)]
        if not va.size or not vb.size:
            missing = "after" if va.size else "before" if vb.size else "on either side"
            mean_a = _value(float(va.mean()), unit) if va.size else "n/a"
            mean_b = _value(float(vb.mean()), unit) if vb.size else "n/a"
            out.append(f"| {label} | {mean_a} | {mean_b} | n/a | n/a (no {metric} {missing}) |")
            continue
        better = next((str(x) for x in rb["better"].dropna()), metric_info(metric).better)
        x, y = float(va.mean()), float(vb.mean())
        diff, low, high = welch_ci(va, vb)
        if x == 0:
            improvement = "n/a (before is 0)"
            rel = math.nan
        else:
            rel = (y - x) / abs(x) * (-1 if better == "lower" else 1)  # > 0: better
            arrow = "↓" if y < x else "↑" if y > x else "="
            word = "improvement" if rel > 0 else "regression" if rel < 0 else "no change"
            improvement = f"{abs(rel):.1%} {word} ({arrow})" if rel else "no change (=)"
        real = math.isfinite(low) and (low > 0 or high < 0)
        if va.size < 2 or vb.size < 2:
            one = "each" if va.size < 2 and vb.size < 2 else "before" if va.size < 2 else "after"
            ci = f"n/a (one run {one})"
        else:
            pp = " pp" if unit == "%" else f" {unit}"
            ci = f"[{_bound(low, unit)}, {_bound(high, unit)}]{pp}" + (
                " (excludes 0)" if real else ""
            )
        n = f"n={va.size}/{vb.size}" if va.size > 1 or vb.size > 1 else ""
        note = "; ".join(part for part in (where, n) if part)
        out.append(
            f"| {label}{f' ({note})' if note else ''} | {_value(x, unit)} | {_value(y, unit)} "
            f"| {improvement} | {ci} |"
        )
        if math.isfinite(rel) and rel < 0:
            if real:
                regressions.append(f"- Investigate the {label.lower()} regression ({-rel:.1%}).")
            elif not math.isfinite(low) and -rel >= _NOTABLE:
                regressions.append(
                    f"- Check the {label.lower()} regression ({-rel:.1%}) with more runs "
                    "(no confidence interval from single runs)."
                )
    out += [
        "",
        "Improvement: the relative change of the mean in the metric's good direction (lower "
        "latency, memory and error rate; higher throughput and cache hit rate). CI: Welch's t "
        "interval of the difference of the run means (pp: percentage points).",
        "",
        "### Next Steps",
        "",
        *(regressions or ["- No regression in these five metrics."]),
    ]
    return "\n".join(out) + "\n"
