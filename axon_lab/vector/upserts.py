"""Batch against single-point upserts into a collection with the production payload indexes."""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

import pandas as pd

from axon_lab.config import Settings, get_settings
from axon_lab.errors import ConfigError
from axon_lab.stack.vector import HnswParams, VectorPoint
from axon_lab.vector.datasets import Dataset
from axon_lab.vector.recall import latency_summary
from axon_lab.vector.sweeps import SweepResult, _backend, sweep_stores


def upsert_bench(
    dataset: Dataset,
    *,
    n: int = 50,
    repeats: int = 20,
    warmup: int = 2,
    payload_fields: Sequence[str] = ("workspaceId", "tier"),
    settings: Settings | None = None,
) -> SweepResult:
    """Time ``n`` contexts upserted one call each against one batch call (the guide claims ~90% less).

    Into one collection with the production payload indexes: each repeat writes ``n`` fresh
    points one by one and ``n`` other fresh points as one batch, alternating which goes first
    so drift cancels. The frame has one row per (repeat, mode) with ``ms``; ``meta["summary"]``
    holds the medians, p95s and the reduction ``1 - batch/single`` (medians).
    """
    if n < 1 or repeats < 1 or n > dataset.n:
        raise ConfigError(
            f"upsert bench needs 1 <= n <= {dataset.n} points and repeats >= 1, "
            f"got n={n}, repeats={repeats}"
        )
    s = settings or get_settings()
    rows: list[dict[str, Any]] = []
    offset = int(dataset.ids.max()) + 1
    with sweep_stores(s) as open_store:
        store = open_store("upsert-bench")
        try:
            store.ensure_collection(
                dataset.dim, HnswParams(), payload_indexes=tuple(payload_fields)
            )
            for r in range(-warmup, repeats):
                base = offset + (r + warmup) * 2 * n
                pts: dict[str, list[VectorPoint]] = {}
                for mode, start in (("single", 0), ("batch", n)):
                    pts[mode] = dataset.points(0, n)
                    for j, p in enumerate(pts[mode]):  # fresh ids: inserts, not overwrites
                        p.id = base + start + j
                order = ("single", "batch") if r % 2 == 0 else ("batch", "single")
                for mode in order:
                    a = time.perf_counter_ns()
                    if mode == "single":
                        for p in pts[mode]:
                            store.upsert([p], batch_size=1)
                    else:
                        store.upsert(pts[mode], batch_size=n)
                    ms = (time.perf_counter_ns() - a) / 1e6
                    if r >= 0:
                        rows.append({"repeat": r, "mode": mode, "n": n, "ms": ms})
        finally:
            store.drop()
            store.close()
    frame = pd.DataFrame(rows)
    frame.insert(0, "backend", _backend(s))
    single = frame[frame["mode"] == "single"].ms.to_numpy()
    batch = frame[frame["mode"] == "batch"].ms.to_numpy()
    ss, bs = latency_summary(single), latency_summary(batch)
    summary = {
        "n": n,
        "repeats": repeats,
        "backend": _backend(s),
        "single_p50_ms": ss["p50_ms"],
        "single_p95_ms": ss["p95_ms"],
        "batch_p50_ms": bs["p50_ms"],
        "batch_p95_ms": bs["p95_ms"],
        "per_point_single_ms": ss["p50_ms"] / n,
        "per_point_batch_ms": bs["p50_ms"] / n,
        "reduction": 1 - bs["p50_ms"] / ss["p50_ms"] if ss["p50_ms"] > 0 else math.nan,
        "speedup": ss["p50_ms"] / bs["p50_ms"] if bs["p50_ms"] > 0 else math.nan,
        "guide_claim_reduction": 0.90,
    }
    return SweepResult(frame, [], {"summary": summary, "dataset": dataset.name})
