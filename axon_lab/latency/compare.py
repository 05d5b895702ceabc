"""Before/after: the guide's "Measuring Success" table with a confidence interval per difference.

:func:`compare_runs` compares the latency percentiles of two load runs (records, run dirs or
results), with a bootstrap CI per difference and a warning when the machines differ.

Rows: p95 latency (bootstrap of the percentile difference), throughput (Welch on per-second
completions), memory (Welch on server RSS samples), cache hit rate and error rate (two-proportion
Wald intervals). A change is **real** when its 95% interval excludes zero; otherwise it is noise. A percentile
whose interval cannot be bounded (too few samples in the tail) gets no verdict.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from axon_lab import provenance, stats
from axon_lab.load.records import LATENCY_OUTCOMES, read_records
from axon_lab.load.summary import read_summary
from axon_lab.metrics import Metric, declare
from axon_lab.registry import Registry

#: The guide's "Measuring Success" rows.
MEASURES: Registry[Metric] = declare(
    "measure",
    [
        Metric("p95_latency", "p95 Latency", "ms"),
        Metric("throughput", "Throughput", "req/s", better="higher"),
        Metric("memory", "Memory Usage", "MB"),
        Metric("cache_hit_rate", "Cache Hit Rate", "ratio", better="higher"),
        Metric("error_rate", "Error Rate", "ratio"),
    ],
)


def _welch(a: np.ndarray, b: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return (float(b.mean() - a.mean()) if a.size and b.size else math.nan, math.nan, math.nan)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    diff = float(b.mean() - a.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / ((va**2) / (a.size - 1) + (vb**2) / (b.size - 1))
    t = sps.t.ppf(0.5 + confidence / 2, df)
    return diff, diff - t * se, diff + t * se


def _two_prop(
    ka: int, na: int, kb: int, nb: int, confidence: float = 0.95
) -> tuple[float, float, float]:
    if na == 0 or nb == 0:
        return math.nan, math.nan, math.nan
    pa, pb = ka / na, kb / nb
    z = sps.norm.ppf(0.5 + confidence / 2)
    se = math.sqrt(pa * (1 - pa) / na + pb * (1 - pb) / nb)
    return pb - pa, pb - pa - z * se, pb - pa + z * se


def _per_second(records: pd.DataFrame) -> np.ndarray:
    done = records[records["end_ns"] >= 0]
    if done.empty:
        return np.array([])
    sec = (done["end_ns"] // 1_000_000_000).astype(int)
    counts = sec.value_counts().sort_index()
    full = counts.reindex(range(int(sec.min()), int(sec.max()) + 1), fill_value=0)
    return full.iloc[1:-1].to_numpy(dtype=float) if len(full) > 3 else full.to_numpy(dtype=float)


def _cache_counts(summary: dict[str, Any], cache: str = "context") -> tuple[int, int]:
    """Hits and lookups of a cache; a disabled cache ("off") counts as requests without a hit."""
    c = summary.get("cache", {}).get(cache) or {}
    hits = int(c.get("hit", 0))
    return hits, hits + int(c.get("miss", 0)) + int(c.get("other", 0))


def measuring_success(before: Any, after: Any, *, confidence: float = 0.95) -> pd.DataFrame:
    """The guide's before/after table from two runs (objects with ``summary``, ``records`` and
    optionally ``resources``: a :class:`~axon_lab.load.LoadResult` or a loaded run directory).

    ``df.attrs["warnings"]`` says when the runs come from different machines.
    """
    rows: list[tuple[str, float | None, float | None, float, float, float, str]] = []
    pa = stats.diff_percentile(_lat(before), _lat(after), 95.0, confidence=confidence)
    rows.append(("p95_latency", pa.a, pa.b, pa.diff, pa.low, pa.high, "; ".join(pa.warnings)))
    ta, tb = _per_second(before.records), _per_second(after.records)
    d, lo, hi = _welch(ta, tb, confidence)
    rows.append(
        (
            "throughput",
            before.summary.get("rps"),
            after.summary.get("rps"),
            d,
            lo,
            hi,
            "" if min(ta.size, tb.size) >= 5 else "fewer than 5 one-second buckets",
        )
    )
    ra = getattr(before, "resources", None)
    rb = getattr(after, "resources", None)
    if ra is not None and rb is not None and not ra.empty and not rb.empty:
        d, lo, hi = _welch(ra["rss_mb"].to_numpy(float), rb["rss_mb"].to_numpy(float), confidence)
        rows.append(
            ("memory", float(ra["rss_mb"].mean()), float(rb["rss_mb"].mean()), d, lo, hi, "")
        )
    else:
        rows.append(("memory", None, None, math.nan, math.nan, math.nan, "no /metrics samples"))
    ha, na = _cache_counts(before.summary)
    hb, nb = _cache_counts(after.summary)
    d, lo, hi = _two_prop(ha, na, hb, nb, confidence)
    rows.append(
        (
            "cache_hit_rate",
            ha / na if na else None,
            hb / nb if nb else None,
            d,
            lo,
            hi,
            "" if na and nb else "no cache header in one run",
        )
    )
    rq_a, rq_b = before.summary.get("requests", {}), after.summary.get("requests", {})
    ea, eb = int(before.summary.get("errors") or 0), int(after.summary.get("errors") or 0)
    nra = int(rq_a.get("sent") or before.summary.get("count") or 0)
    nrb = int(rq_b.get("sent") or after.summary.get("count") or 0)
    d, lo, hi = _two_prop(ea, nra, eb, nrb, confidence)
    rows.append(("error_rate", ea / nra if nra else None, eb / nrb if nrb else None, d, lo, hi, ""))
    out = []
    for key, a, b, diff, lo, hi, warn in rows:
        measure = MEASURES.get(key)
        improvement = (
            ((b - a) / a) if (a not in (None, 0) and b is not None and not _nan(a)) else math.nan
        )
        real = not (_nan(lo) or _nan(hi)) and (lo > 0 or hi < 0)
        if "too few samples" in warn:
            verdict = "too few samples"
        elif not real:
            verdict = "noise" if not (_nan(lo) or _nan(hi)) else "unknown"
        else:
            verdict = "improved" if measure.improved(diff) else "regressed"
        arrow = "" if _nan(improvement) else ("↓" if improvement < 0 else "↑")
        out.append(
            {
                "metric": measure.label,
                "unit": measure.unit,
                "before": a,
                "after": b,
                "difference": diff,
                "ci_low": lo,
                "ci_high": hi,
                "improvement": f"{abs(improvement):.0%} {arrow}"
                if not _nan(improvement)
                else "n/a",
                "verdict": verdict,
                "warning": warn,
            }
        )
    df = pd.DataFrame(out)
    mw = provenance.machine_warning(
        before.summary.get("provenance"), after.summary.get("provenance")
    )
    df.attrs["warnings"] = [mw] if mw else []
    return df


def _lat(run: Any) -> np.ndarray:
    r = run.records
    if "outcome" in r.columns:
        r = r[r["outcome"].isin(LATENCY_OUTCOMES)]
    return r["response_ms"].dropna().to_numpy(dtype=float)


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def verdict(table: pd.DataFrame) -> dict[str, Any]:
    """One-line verdict for the report index, with the deciding numbers and warnings."""
    from axon_lab.report.summary import figure
    from axon_lab.report.tables import number

    improved = table.loc[table.verdict == "improved", "metric"].tolist()
    regressed = table.loc[table.verdict == "regressed", "metric"].tolist()
    status = "fail" if regressed else ("pass" if improved else "info")
    parts = []
    if improved:
        parts.append("improved: " + ", ".join(improved))
    if regressed:
        parts.append("regressed: " + ", ".join(regressed))
    if not parts:
        parts.append("no change beyond noise")
    warn = table.attrs.get("warnings") or []
    numbers = [
        figure(
            f"{r.metric}: after vs before",
            r.difference,
            "" if r.unit == "ratio" else str(r.unit),
            target=f"before {number(r.before)} → after {number(r.after)}",
            ci=[r.ci_low, r.ci_high],
            status={"improved": "pass", "regressed": "fail"}.get(r.verdict, "info"),
        )
        for r in table.itertuples()
    ][:5]
    return {
        "status": status,
        "summary": "; ".join(parts) + (f" ({warn[0]})" if warn else ""),
        "numbers": numbers,
        "warnings": list(warn),
    }


def latency_samples(before: Any, after: Any) -> dict[str, np.ndarray]:
    """Response times (ms) of both runs, for the distribution plot."""
    return {"before": _lat(before), "after": _lat(after)}


def results(
    table: pd.DataFrame, before: Any, after: Any, before_spec: str, after_spec: str
) -> dict[str, Any]:
    """JSON-able results for the sidecar."""
    return {
        "before": {
            "spec": before_spec,
            "profile": before.summary.get("target", {}).get("profile"),
            "requests": before.summary.get("count"),
            "out_dir": str(getattr(before, "out_dir", "") or ""),
        },
        "after": {
            "spec": after_spec,
            "profile": after.summary.get("target", {}).get("profile"),
            "requests": after.summary.get("count"),
            "out_dir": str(getattr(after, "out_dir", "") or ""),
        },
        "measuring_success": table.to_dict("records"),
        "warnings": table.attrs.get("warnings", []),
    }


def _samples(run: Any, column: str) -> tuple[np.ndarray, Mapping[str, Any] | None]:
    """Samples of ``column`` and the provenance from a records frame, array, result or run dir."""
    prov = None
    if isinstance(run, str | Path):
        path = Path(run)
        frame = read_records(path)
        try:
            prov = read_summary(path).get("provenance")
        except Exception:  # a partial run may have no summary; the records still count
            prov = None
        run = frame
    elif hasattr(run, "records") and hasattr(run, "summary"):  # a LoadResult
        prov = run.summary.get("provenance")
        run = run.records
    if hasattr(run, "columns"):
        if column not in run.columns:
            raise KeyError(f"no column {column!r}; has {list(run.columns)}")
        frame = run
        if "outcome" in frame.columns:  # latency of requests that got an answer or timed out
            frame = frame[frame["outcome"].isin(LATENCY_OUTCOMES)]
        return stats.clean(frame[column].to_numpy(dtype=float)), prov
    return stats.clean(run), prov


def compare_runs(
    a: Any,
    b: Any,
    *,
    metric: str = "response_ms",
    qs: Sequence[float] = (50.0, 95.0, 99.0),
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int | None = 0,
):  # -> pandas.DataFrame
    """Before/after comparison of two runs: one row per percentile with B − A and its CI.

    Parameters
    ----------
    a, b
        Each a records frame (``axon_lab.load`` records), a run directory, a ``LoadResult`` or
        an array of samples. Run A is "before", B is "after".
    metric
        Records column to compare (``response_ms``, ``service_ms``, ``stage.retrieval``...).
    qs
        Percentiles to compare.

    Returns
    -------
    pandas.DataFrame
        Columns ``metric, q, a, b, diff, low, high, rel_change, significant, n_a, n_b,
        warnings``; ``df.attrs["warnings"]`` holds run-level warnings (machines differ).
    """
    xa, pa = _samples(a, metric)
    xb, pb = _samples(b, metric)
    rows = []
    for q in qs:
        d = stats.diff_percentile(xa, xb, q, confidence=confidence, n_boot=n_boot, seed=seed)
        row = {"metric": metric, **d.to_dict()}
        row["warnings"] = "; ".join(d.warnings)
        rows.append(row)
    df = pd.DataFrame(rows)
    mw = provenance.machine_warning(pa, pb)
    df.attrs["warnings"] = [mw] if mw else []
    return df
