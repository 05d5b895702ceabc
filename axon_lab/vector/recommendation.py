"""Pareto frontier, the cheapest configuration that meets the target, its verdict and report table."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from axon_lab.goals import STAGE_BUDGET_MS
from axon_lab.vector.sweeps import metric

#: The guide's vector-search budget (ms, p95).
BUDGET_MS: float = float(STAGE_BUDGET_MS["vector_search"])


def pareto_frontier(frame: pd.DataFrame, x: str = "p95_ms", y: str = "recall") -> pd.DataFrame:
    """Rows not dominated on (``x``, ``y``) — directions from :data:`METRICS` — sorted by ``x``.

    A row is dominated when another is at least as good on both metrics and better on one
    (ann-benchmarks' frontier). Exact-search rows take part like any other.
    """
    if frame.empty:
        return frame.copy()
    sx = 1 if metric(x).better == "lower" else -1
    sy = 1 if metric(y).better == "lower" else -1
    d = frame.dropna(subset=[x, y])
    xs, ys = sx * d[x].to_numpy(float), sy * d[y].to_numpy(float)
    keep = []
    for i in range(len(d)):
        dominated = np.any((xs <= xs[i]) & (ys <= ys[i]) & ((xs < xs[i]) | (ys < ys[i])))
        keep.append(not dominated)
    return d[np.asarray(keep)].sort_values(x).reset_index(drop=True)


def recommend(
    frame: pd.DataFrame,
    *,
    target_recall: float = 0.95,
    budget_ms: float = BUDGET_MS,
    latency: str = "p95_ms",
    cost: str = "p50_ms",
    tie_tolerance: float = 0.10,
) -> dict[str, Any]:
    """The cheapest configuration with ``recall >= target_recall`` and ``latency < budget_ms``.

    Cheapest means: lowest ``cost`` per query (default the median latency: the search work paid
    on every request, and far less sensitive than p95 to a busy neighbour on a shared machine);
    configurations within ``tie_tolerance`` (relative) of the lowest are treated as equal, as
    such differences are noise, and among them the smallest index wins (``m``, then
    ``ef_construct``: memory and build time), then the smallest ``hnsw_ef``, then no
    quantization. Exact search is never recommended but is reported alongside.

    Returns
    -------
    dict
        ``status`` (``ok`` or ``none``), ``target_recall``, ``budget_ms``, the chosen row's
        config and metrics, ``margin`` (recall above target, ms under budget, share of the
        budget used), ``exact`` (recall, p95, QPS of exact search) and, when nothing qualifies,
        ``best`` (the highest-recall row) and a ``reason``.
    """
    if frame.empty:
        return {
            "status": "none",
            "reason": "no measurements",
            "target_recall": target_recall,
            "budget_ms": budget_ms,
        }
    ann = frame[~frame["exact"].astype(bool)]
    ok = ann[(ann["recall"] >= target_recall) & (ann[latency] < budget_ms)]
    ex = frame[frame["exact"].astype(bool)]
    exact = None
    if not ex.empty:
        e = ex.sort_values(latency).iloc[0]
        exact = {
            "config": e["config"],
            "recall": float(e["recall"]),
            latency: float(e[latency]),
            "qps_1": float(e["qps_1"]),
            "qps_n": float(e.get("qps_n", math.nan)),
        }
    out: dict[str, Any] = {
        "target_recall": target_recall,
        "budget_ms": budget_ms,
        "latency": latency,
        "cost": cost,
        "exact": exact,
        "candidates": int(len(ok)),
    }
    if ok.empty:
        best = (
            ann.sort_values(["recall", latency], ascending=[False, True]).iloc[0]
            if not ann.empty
            else None
        )
        out.update(
            status="none",
            reason=f"no configuration reaches recall {target_recall} with "
            f"{latency} < {budget_ms} ms",
            best=None if best is None else _pick(best, latency),
        )
        return out
    floor = float(ok[cost].min())
    tied = ok[ok[cost] <= floor * (1 + tie_tolerance)].copy()
    tied["_q"] = (tied["quantization"] != "none").astype(int)
    chosen = tied.sort_values(["m", "ef_construct", "hnsw_ef", "_q", cost]).iloc[0]
    row = _pick(chosen, latency)
    out.update(
        status="ok",
        **row,
        margin={
            "recall": float(chosen["recall"]) - target_recall,
            "latency_ms": budget_ms - float(chosen[latency]),
            "budget_share": float(chosen[latency]) / budget_ms,
        },
    )
    return out


def _pick(r: pd.Series, latency: str) -> dict[str, Any]:
    keys = (
        "config",
        "m",
        "ef_construct",
        "full_scan_threshold",
        "quantization",
        "hnsw_ef",
        "oversampling",
        "recall",
        "recall_min",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        latency,
        "qps_1",
        "qps_n",
        "qps_batch",
        "build_s",
        "hnsw_mb",
        "disk_mb",
    )
    out: dict[str, Any] = {}
    for key in keys:
        v = r.get(key)
        if v is None or (not isinstance(v, str) and bool(pd.isna(v))):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out[key] = v
    return out


def verdict(
    recommendation: Mapping[str, Any], goal: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """A one-line verdict: ``pass`` when a configuration meets the target (and ``goal``, if given)."""
    from axon_lab.report.summary import figure

    rec = recommendation
    if rec.get("status") != "ok":
        return {"status": "fail", "summary": rec.get("reason", "no configuration meets the target")}
    lat = rec.get("latency", "p95_ms")
    numbers = [
        figure(
            f"recall@k of {rec['config']} hnsw_ef={rec['hnsw_ef']}",
            rec["recall"],
            "",
            target=f">= {rec['target_recall']}",
            status="pass",
        ),
        figure(
            f"{lat.removesuffix('_ms')} search latency",
            rec[lat],
            "ms",
            target=f"<= {rec['budget_ms']:g} ms",
            status="pass",
        ),
    ]
    if goal is not None:
        numbers.append(
            figure(
                f"stretch goal: recall {goal.get('target_recall')} at < {goal.get('budget_ms', 0):g} ms",
                goal.get("recall"),
                "",
                target="met" if goal.get("status") == "ok" else str(goal.get("reason") or "missed"),
                status="pass" if goal.get("status") == "ok" else "warn",
            )
        )
    text = (
        f"{rec['config']} hnsw_ef={rec['hnsw_ef']}: recall {rec['recall']:.3f} "
        f"(target {rec['target_recall']}), {lat.removesuffix('_ms')} {rec[lat]:.2f} ms "
        f"(budget {rec['budget_ms']:g} ms)"
    )
    if goal is not None:
        if goal.get("status") != "ok":
            return {
                "status": "warn",
                "summary": f"{text}; goal missed: {goal.get('reason')}",
                "numbers": numbers,
            }
        text += (
            f"; goal recall {goal['target_recall']} at < {goal['budget_ms']:g} ms met by "
            f"{goal['config']} hnsw_ef={goal['hnsw_ef']} ({goal['recall']:.3f}, {goal[lat]:.2f} ms)"
        )
    return {"status": "pass", "summary": text, "numbers": numbers}


def table(frame: pd.DataFrame, recommendation: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The report table: exact search, the Pareto frontier on (p95, recall) and the recommendation."""
    cols = [
        c
        for c in (
            "config",
            "hnsw_ef",
            "oversampling",
            "recall",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "qps_1",
            "qps_n",
            "qps_batch",
            "build_s",
            "hnsw_mb",
        )
        if c in frame.columns
    ]
    front = pareto_frontier(frame)
    parts = [frame[frame["exact"].astype(bool)], front[~front["exact"].astype(bool)]]
    t = pd.concat(parts)[cols].drop_duplicates().reset_index(drop=True)
    t.insert(
        0, "role", np.where(t["config"].astype(str).str.startswith("exact"), "exact", "frontier")
    )
    if recommendation and recommendation.get("status") == "ok":
        hit = (
            (
                (t["config"] == recommendation["config"])
                & (t["hnsw_ef"] == recommendation["hnsw_ef"])
            )
            .fillna(False)
            .astype(bool)
        )
        if not hit.any():
            r = pd.DataFrame([{c: recommendation.get(c) for c in cols}])
            r.insert(0, "role", "recommended")
            t = pd.concat([t, r], ignore_index=True)
        else:
            t.loc[hit, "role"] = "recommended"
    return t
