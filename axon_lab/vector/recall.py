"""Exact ground truth, recall@k and the latency summary of HNSW searches."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: How :func:`latency_summary` defines a percentile (recorded in every sweep's metadata).
PERCENTILE_DEFINITION = (
    "nearest rank: the p-th percentile of n samples is the ceil(p/100*n)-th smallest "
    "(numpy method='inverted_cdf', as HdrHistogram)"
)


def ground_truth(
    vectors: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    rows: np.ndarray | None = None,
    batch: int = 256,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` by cosine similarity (brute force with numpy).

    Parameters
    ----------
    vectors, queries
        Unit-norm float32 matrices (cosine is then the dot product).
    k
        Neighbours per query; fewer when the candidate set is smaller.
    rows
        Restrict candidates to these rows (a filtered subset).
    batch
        Queries per matrix product (bounds memory: ``batch * n`` floats).

    Returns
    -------
    (indices, similarities)
        ``(q, k')`` row indices into ``vectors``, best first, and their similarities.
    """
    cand = vectors if rows is None else vectors[rows]
    kk = min(k, cand.shape[0])
    nq = queries.shape[0]
    idx = np.empty((nq, kk), dtype=np.int64)
    sims = np.empty((nq, kk), dtype=np.float32)
    if kk == 0:
        return idx, sims
    for s in range(0, nq, batch):
        sc = queries[s : s + batch] @ cand.T
        part = (
            np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
            if kk < cand.shape[0]
            else np.tile(np.arange(kk), (sc.shape[0], 1))
        )
        ps = np.take_along_axis(sc, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        idx[s : s + batch] = top if rows is None else np.asarray(rows)[top]
        sims[s : s + batch] = np.take_along_axis(ps, order, axis=1)
    return idx, sims


def recall_at_k(
    found: Sequence[Sequence[int] | np.ndarray],
    truth: np.ndarray,
    k: int,
    *,
    vectors: np.ndarray | None = None,
    queries: np.ndarray | None = None,
    allowed: np.ndarray | None = None,
    eps: float = 1e-6,
) -> np.ndarray:
    """Per-query recall@k: the share of the exact top-k that the search returned.

    ``found[i]`` are row indices returned for query ``i`` (-1 for unknown ids), ``truth`` the
    rows of :func:`ground_truth`. When fewer than ``k`` candidates exist (a small filtered
    subset) the denominator is their number. With ``vectors`` and ``queries``, ties are
    tolerated as in ann-benchmarks: a returned row counts when its exact similarity is at
    least the k-th best minus ``eps`` (so an equally-near duplicate is not a miss).
    ``allowed`` (a boolean mask over rows) restricts that tolerance to the filtered subset, so
    a row that should have been filtered out never counts.
    """
    out = np.empty(len(truth), dtype=float)
    tolerant = vectors is not None and queries is not None
    for i, t in enumerate(truth):
        kk = min(k, len(t))
        if kk == 0:
            out[i] = 1.0
            continue
        f = [r for r in dict.fromkeys(int(x) for x in list(found[i])[:k]) if r >= 0]
        hits = len(set(f) & {int(x) for x in t[:kk]})
        if allowed is not None:
            f = [r for r in f if allowed[r]]
        if tolerant and f and hits < kk:
            assert vectors is not None and queries is not None
            kth = float(vectors[int(t[kk - 1])] @ queries[i])
            sims = vectors[np.asarray(f)] @ queries[i]
            hits = max(hits, int(np.sum(sims >= kth - eps)))
        out[i] = min(hits, kk) / kk
    return out


def latency_summary(latencies_ms: np.ndarray | Sequence[float]) -> dict[str, float]:
    """The summary schema over latencies (ms): count, min, max, mean, stddev, p50, p90, p95, p99, p999.

    Percentiles are nearest rank: the p-th percentile of n samples is the ``ceil(p/100·n)``-th
    smallest (numpy ``method="inverted_cdf"``; always an observed value, as HdrHistogram).
    """
    a = np.asarray(latencies_ms, dtype=float)
    a = a[np.isfinite(a)]
    out: dict[str, float] = {"count": int(a.size)}
    if a.size == 0:
        return out | dict.fromkeys(
            (
                "min_ms",
                "max_ms",
                "mean_ms",
                "stddev_ms",
                "p50_ms",
                "p90_ms",
                "p95_ms",
                "p99_ms",
                "p999_ms",
            ),
            math.nan,
        )
    qs = np.percentile(a, [50, 90, 95, 99, 99.9], method="inverted_cdf")
    return out | {
        "min_ms": float(a.min()),
        "max_ms": float(a.max()),
        "mean_ms": float(a.mean()),
        "stddev_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "p50_ms": float(qs[0]),
        "p90_ms": float(qs[1]),
        "p95_ms": float(qs[2]),
        "p99_ms": float(qs[3]),
        "p999_ms": float(qs[4]),
    }
