"""HNSW tuning: recall vs latency and QPS, filtered search, upsert batching, the cheapest config."""

from __future__ import annotations

import contextlib
import gc
import math
import os
import re
import shutil
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from axon_lab.config import Settings, get_settings
from axon_lab.errors import AxonLabError, ConfigError
from axon_lab.goals import STAGE_BUDGET_MS
from axon_lab.metrics import Metric, declare
from axon_lab.registry import Registry
from axon_lab.stack.vector import (
    EdgeVectorStore,
    HnswParams,
    ServerVectorStore,
    VectorPoint,
    VectorStore,
)

#: Bytes per stored vector component (float32); Qdrant converts KB thresholds with it.
FLOAT_BYTES = 4
#: The guide's vector-search budget (ms, p95).
BUDGET_MS: float = float(STAGE_BUDGET_MS["vector_search"])
#: Qdrant's default full-scan threshold (KB of vectors).
DEFAULT_FULL_SCAN_KB = 10_000
#: Indexing threshold used by sweeps (KB): low, so every non-trivial segment gets an HNSW graph.
SWEEP_INDEXING_KB = 20
#: Workspaces of the synthetic dataset and their shares (selectivities 50%, 10%, 1%).
SYNTHETIC_WORKSPACES: dict[str, float] = {"w50": 0.50, "w10": 0.10, "w01": 0.01, "rest": 0.39}
SYNTHETIC_TIERS: dict[str, float] = {"workspace": 0.5, "project": 0.3, "global": 0.2}
QUANTIZATIONS = ("none", "int8")
PAYLOAD_INDEX_MODES = ("before", "after", "none")
PERCENTILE_DEFINITION = (
    "nearest rank: the p-th percentile of n samples is the ceil(p/100*n)-th smallest "
    "(numpy method='inverted_cdf', as HdrHistogram)"
)


class IndexNotBuilt(AxonLabError):
    """The HNSW index is missing or partial, so timings would measure brute force."""


class BruteForceWarning(UserWarning):
    """A segment or a filtered subset is under the full-scan threshold: Qdrant searches it exactly."""


# --- metrics, declared once -----------------------------------------------------------------


METRICS: Registry[Metric] = declare("vector metric", [
    Metric("recall", "recall@k", "", "higher"),
    Metric("recall_min", "worst-query recall@k", "", "higher"),
    Metric("p50_ms", "p50 search latency", "ms", "lower"),
    Metric("p95_ms", "p95 search latency", "ms", "lower"),
    Metric("p99_ms", "p99 search latency", "ms", "lower"),
    Metric("mean_ms", "mean search latency", "ms", "lower"),
    Metric("qps_1", "QPS, 1 client", "queries/s", "higher"),
    Metric("qps_n", "QPS, N clients", "queries/s", "higher"),
    Metric("qps_batch", "QPS, one batch request", "queries/s", "higher"),
    Metric("build_s", "build time (upsert + HNSW)", "s", "lower"),
    Metric("optimize_s", "HNSW build time", "s", "lower"),
    Metric("disk_mb", "disk (allocated)", "MB", "lower"),
    Metric("hnsw_mb", "HNSW graph on disk", "MB", "lower"),
    Metric("rss_mb", "RSS growth during build", "MB", "lower"),
    Metric("hnsw_ef", "hnsw_ef", "", "lower"),
])


def metric(name: str) -> Metric:
    """The declared metric ``name`` (the error lists the valid names)."""
    return METRICS.get(name)


# --- datasets ---------------------------------------------------------------------------------


@dataclass
class Dataset:
    """Vectors to index plus queries that are not members.

    Attributes
    ----------
    name
        ``corpus`` or ``synthetic``.
    vectors
        ``(n, dim)`` float32, unit norm (cosine = dot product).
    ids
        Point ids (int64), one per row.
    workspace, tier
        Payload values per row (the filter fields).
    queries
        ``(q, dim)`` float32, unit norm.
    info
        How it was made (source, seed, sizes).
    """

    name: str
    vectors: np.ndarray
    ids: np.ndarray
    workspace: np.ndarray
    tier: np.ndarray
    queries: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    _order: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of points."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row indices of point ``ids`` (-1 for an id that is not in the dataset)."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty(0, dtype=np.int64)
        sorted_ids = self.ids[self._order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        out = self._order[pos]
        return np.where(sorted_ids[pos] == ids, out, -1).astype(np.int64)

    def points(self, start: int = 0, stop: int | None = None, *, id_offset: int = 0) -> list[VectorPoint]:
        """Rows ``start:stop`` as points with payload ``workspaceId`` and ``tier``."""
        stop = self.n if stop is None else min(stop, self.n)
        return [VectorPoint(int(self.ids[i]) + id_offset, self.vectors[i],
                            {"workspaceId": str(self.workspace[i]), "tier": str(self.tier[i])})
                for i in range(start, stop)]

    def shares(self) -> pd.DataFrame:
        """Points and share of the dataset per workspace (largest first)."""
        ws, counts = np.unique(self.workspace, return_counts=True)
        df = pd.DataFrame({"workspace": ws, "points": counts, "share": counts / max(self.n, 1)})
        return df.sort_values("points", ascending=False).reset_index(drop=True)

    def describe(self) -> pd.DataFrame:
        """A one-row summary (name, points, dim, queries, workspaces, source)."""
        return pd.DataFrame([{
            "dataset": self.name, "points": self.n, "dim": self.dim, "queries": len(self.queries),
            "workspaces": int(len(np.unique(self.workspace))), **{k: v for k, v in self.info.items()
                                                                   if isinstance(v, str | int | float)},
        }])


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def synthetic_dataset(n: int, *, n_queries: int = 500, dim: int = 384, clusters: int | None = None,
                      latent_dim: int = 32, spread: float = 0.5, noise: float = 0.02, seed: int = 0,
                      workspaces: Mapping[str, float] = SYNTHETIC_WORKSPACES,
                      chunk: int = 20_000) -> Dataset:
    """A clustered set that behaves like sentence embeddings and scales to millions of points.

    Points are Gaussian clusters (uneven sizes, Dirichlet weights) in a ``latent_dim``-dimensional
    space, mapped into ``dim`` dimensions by a random orthonormal basis, plus isotropic
    ``noise``, then normalised. A low intrinsic dimension is what makes real embeddings
    searchable by HNSW; pure high-dimensional noise would not be. Queries come from the same
    distribution with another random stream, so they are not members. Workspaces and tiers are
    assigned independently of the clusters, as in the corpus (hash-assigned).

    Parameters
    ----------
    n
        Points (generated in chunks of ``chunk`` rows, so 200k+ fits in memory easily).
    n_queries
        Queries.
    clusters
        Number of clusters (default ``max(8, sqrt(n) / 2)``).
    spread, noise
        Within-cluster standard deviation (latent space) and ambient noise.
    seed
        Everything is a function of the seed.
    """
    if n < 1 or n_queries < 1:
        raise ConfigError(f"synthetic dataset needs n >= 1 and n_queries >= 1, got {n}, {n_queries}")
    rng = np.random.default_rng(seed)
    c = clusters or max(8, int(math.sqrt(n) / 2))
    centers = rng.standard_normal((c, latent_dim))
    weights = rng.dirichlet(np.ones(c))
    basis = np.linalg.qr(rng.standard_normal((dim, latent_dim)))[0]

    def draw(m: int, r: np.random.Generator) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        for s in range(0, m, chunk):
            k = min(chunk, m - s)
            z = centers[r.choice(c, size=k, p=weights)] + spread * r.standard_normal((k, latent_dim))
            out[s:s + k] = _unit(z @ basis.T + noise * r.standard_normal((k, dim)))
        return out

    vectors = draw(n, rng)
    queries = draw(n_queries, np.random.default_rng(seed + 1))
    pr = np.random.default_rng(seed + 2)
    names = list(workspaces)
    p = np.asarray([workspaces[k] for k in names], dtype=float)
    ws = np.asarray(names, dtype=object)[pr.choice(len(names), size=n, p=p / p.sum())]
    tiers = list(SYNTHETIC_TIERS)
    tp = np.asarray(list(SYNTHETIC_TIERS.values()))
    tier = np.asarray(tiers, dtype=object)[pr.choice(len(tiers), size=n, p=tp / tp.sum())]
    return Dataset("synthetic", vectors, np.arange(n, dtype=np.int64), ws, tier, queries, info={
        "source": "synthetic clustered (latent Gaussian clusters, random orthonormal map, noise)",
        "seed": seed, "clusters": c, "latent_dim": latent_dim, "spread": spread, "noise": noise,
    })


def corpus_dataset(limit: int | None = None, *, n_queries: int | None = None,
                   settings: Settings | None = None) -> Dataset:
    """The real corpus embeddings; queries are the held-out texts (real, not corpus members).

    ``limit`` selects the representative sample ``axon_lab.corpus`` builds (embedded on first
    use, ~100 texts/s); ``None`` is the full corpus.
    """
    from axon_lab import corpus

    df = corpus.load_frame(limit, settings=settings, split=None)
    c = df[df.split == "corpus"].reset_index(drop=True)
    h = df[df.split == "heldout"].reset_index(drop=True)
    if n_queries is not None:
        h = h.head(n_queries)
    if len(c) == 0 or len(h) == 0:
        raise ConfigError(f"corpus (limit={limit}) has {len(c)} contexts and {len(h)} held-out queries")
    return Dataset("corpus", _unit(np.stack(c.embedding.to_numpy())), c.id.to_numpy(np.int64),
                   c.workspaceId.to_numpy(object), c.tier.to_numpy(object),
                   _unit(np.stack(h.embedding.to_numpy())), info={
                       "source": "axon_lab corpus (Python stdlib texts, all-MiniLM-L6-v2)",
                       "fingerprint": corpus.fingerprint(df), "limit": -1 if limit is None else limit})


DATASETS: Registry[Callable[..., Dataset]] = Registry("vector dataset")
DATASETS.register("corpus", corpus_dataset)
DATASETS.register("synthetic", synthetic_dataset)

#: Sizes used when ``smoke`` is set: seconds, same code path.
SMOKE_SYNTHETIC_SIZE = 2000
SMOKE_QUERIES = 100
SMOKE_CORPUS_LIMIT = 300


def load_dataset(name: str, *, size: int | None = None, n_queries: int | None = None, seed: int = 0,
                 smoke: bool = False, settings: Settings | None = None) -> Dataset:
    """A dataset by name: ``corpus`` (``size`` = corpus sample limit, None = full) or ``synthetic``.

    ``size`` and ``n_queries`` of 0 mean the default, like None (notebook parameters are ints).

    With ``smoke`` the dataset is small (synthetic: 2,000 points and 100 queries; corpus: the
    ``AXON_CORPUS_LIMIT`` sample, default 300) so a notebook finishes in seconds.
    """
    factory = DATASETS.get(name)
    s = settings or get_settings()
    size, n_queries = size or None, n_queries or None
    if name == "synthetic":
        n = size or 10_000
        q = n_queries or 500
        if smoke:
            n, q = min(n, SMOKE_SYNTHETIC_SIZE), min(q, SMOKE_QUERIES)
        return factory(n, n_queries=q, seed=seed)
    limit = size
    if smoke:
        cap = s.corpus_limit or SMOKE_CORPUS_LIMIT
        limit = cap if size is None else min(size, cap)
    return factory(limit, n_queries=n_queries, settings=s)


# --- exact ground truth and recall ----------------------------------------------------------


def ground_truth(vectors: np.ndarray, queries: np.ndarray, k: int, *, rows: np.ndarray | None = None,
                 batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
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
        sc = queries[s:s + batch] @ cand.T
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk] if kk < cand.shape[0] else \
            np.tile(np.arange(kk), (sc.shape[0], 1))
        ps = np.take_along_axis(sc, part, axis=1)
        order = np.argsort(-ps, axis=1, kind="stable")
        top = np.take_along_axis(part, order, axis=1)
        idx[s:s + batch] = top if rows is None else np.asarray(rows)[top]
        sims[s:s + batch] = np.take_along_axis(ps, order, axis=1)
    return idx, sims


def recall_at_k(found: Sequence[Sequence[int] | np.ndarray], truth: np.ndarray, k: int, *,
                vectors: np.ndarray | None = None, queries: np.ndarray | None = None,
                allowed: np.ndarray | None = None, eps: float = 1e-6) -> np.ndarray:
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


# --- guards -----------------------------------------------------------------------------------


def check_hnsw_ef(hnsw_ef: int | None, k: int) -> None:
    """Reject ``hnsw_ef < k`` (Qdrant silently searches with ``ef = k``, mislabelling the row)."""
    if hnsw_ef is not None and hnsw_ef < k:
        raise ConfigError(f"hnsw_ef {hnsw_ef} < k {k}: Qdrant would silently search with ef = k, "
                          "so the row would be mislabelled; use hnsw_ef >= k")


def full_scan_points(full_scan_threshold_kb: int, dim: int) -> int:
    """The full-scan threshold in points: Qdrant converts KB with the vector size (``dim * 4`` bytes)."""
    return int(full_scan_threshold_kb) * 1024 // (int(dim) * FLOAT_BYTES)


def check_indexed(store: VectorStore) -> dict[str, Any]:
    """The store's ``info()`` after verifying every vector is in an HNSW graph.

    Raises
    ------
    IndexNotBuilt
        When ``indexed_vectors < points`` (or the collection is empty): searches would be
        brute force over the unindexed segments, and a sweep would time the wrong thing.
    """
    info = store.info()
    points, indexed = int(info.get("points", 0)), int(info.get("indexed_vectors", 0))
    if points == 0:
        raise IndexNotBuilt(f"collection {store.collection!r} is empty; nothing to time")
    if indexed < points:
        raise IndexNotBuilt(f"collection {store.collection!r}: only {indexed} of {points} vectors are "
                            "HNSW-indexed; searches would be brute force (lower indexing_threshold "
                            "or run optimize() before timing)")
    return info


def wait_indexed(store: VectorStore, *, timeout_s: float = 600.0, poll_s: float = 0.5) -> dict[str, Any]:
    """Optimize, then wait until every vector is indexed (a server indexes in the background)."""
    store.optimize()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check_indexed(store)
        except IndexNotBuilt:
            if store.embedded or time.monotonic() > deadline:
                raise
            time.sleep(poll_s)


def brute_force_warnings(info: Mapping[str, Any], *, full_scan_threshold_kb: int, dim: int,
                         subsets: Mapping[str, int] | None = None, emit: bool = True) -> list[str]:
    """Warnings for searches Qdrant answers by full scan, so recall 1.0 would mean nothing.

    A segment whose vectors are fewer than the full-scan threshold is searched exactly even
    with an HNSW graph; so is a filtered subset whose (estimated) size is under it. Points per
    HNSW segment are estimated as ``indexed_vectors / hnsw_segments`` (exact with one segment).
    Each warning is also emitted as a :class:`BruteForceWarning` unless ``emit`` is False.
    """
    thr = full_scan_points(full_scan_threshold_kb, dim)
    out: list[str] = []
    nseg = info.get("hnsw_segments") or info.get("segments") or 1
    per_segment = int(info.get("indexed_vectors", 0)) // max(int(nseg), 1)
    if per_segment < thr:
        out.append(f"HNSW segments hold ~{per_segment} points each, under the full-scan threshold "
                   f"({full_scan_threshold_kb} KB = {thr} points at {dim}-d): unfiltered searches are "
                   "brute force, so recall 1.0 says nothing about HNSW")
    for name, size in (subsets or {}).items():
        if size < thr:
            out.append(f"filter {name}: {size} points, under the full-scan threshold ({thr} points): "
                       "with a payload index Qdrant answers it by exact scan of the matches")
    if emit:
        for w in out:
            warnings.warn(w, BruteForceWarning, stacklevel=2)
    return out


# --- stores for sweeps ------------------------------------------------------------------------


@contextlib.contextmanager
def sweep_stores(settings: Settings | None = None, *, run_id: str | None = None,
                 max_search_threads: int | None = None) -> Iterator[Callable[[str], VectorStore]]:
    """Open throw-away collections; everything is dropped on exit.

    Qdrant Edge by default (shards under ``<data_dir>/vector-sweep/<run_id>/``), a Qdrant server
    when ``AXON_QDRANT_URL`` is set (collections ``axon-lab-sweep-<run_id>-<name>``). Yields
    ``open(name) -> VectorStore`` (an empty collection; call ``ensure_collection``).
    """
    s = settings or get_settings()
    run_id = run_id or f"{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    root = s.data_dir / "vector-sweep" / run_id
    opened: list[VectorStore] = []

    def open_store(name: str) -> VectorStore:
        safe = re.sub(r"[^A-Za-z0-9_.-]", "_", name)
        store: VectorStore
        if s.qdrant_url is not None:
            store = ServerVectorStore(s.secret("qdrant_url") or "", f"axon-lab-sweep-{run_id}-{safe}",
                                      s.secret("qdrant_api_key"), timeout=60.0)
            if store.exists():
                store.drop()
        else:
            path = root / safe
            shutil.rmtree(path, ignore_errors=True)
            store = EdgeVectorStore(path, safe, max_search_threads=max_search_threads)
        opened.append(store)
        return store

    try:
        yield open_store
    finally:
        for store in opened:
            with contextlib.suppress(Exception):
                store.drop()
            with contextlib.suppress(Exception):
                store.close()
        shutil.rmtree(root, ignore_errors=True)
        with contextlib.suppress(OSError):
            root.parent.rmdir()  # only when no other run is using it


def _rss_mb() -> float:
    import psutil

    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


# --- build ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildConfig:
    """One index build: HNSW parameters, quantization and when the payload index is created."""

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold: int = DEFAULT_FULL_SCAN_KB
    quantization: str = "none"
    payload_index: str = "before"  # before | after | none (the HNSW build)
    payload_m: int | None = None

    @property
    def label(self) -> str:
        """A short name: ``m16-efc128-fst10000`` (+ ``-int8``, ``-pi_after``)."""
        s = f"m{self.m}-efc{self.ef_construct}-fst{self.full_scan_threshold}"
        if self.quantization != "none":
            s += f"-{self.quantization}"
        if self.payload_index != "before":
            s += f"-pi_{self.payload_index}"
        return s

    def hnsw(self, indexing_threshold_kb: int = SWEEP_INDEXING_KB) -> HnswParams:
        """The adapter's ``HnswParams``."""
        return HnswParams(m=self.m, ef_construct=self.ef_construct,
                          full_scan_threshold=self.full_scan_threshold,
                          indexing_threshold=indexing_threshold_kb, payload_m=self.payload_m)


def build_index(store: VectorStore, dataset: Dataset, config: BuildConfig, *,
                payload_fields: Sequence[str] = ("workspaceId", "tier"),
                indexing_threshold_kb: int = SWEEP_INDEXING_KB, batch_size: int = 1000,
                chunk: int = 20_000, timeout_s: float = 3600.0) -> dict[str, Any]:
    """Create the collection, upsert the dataset in batches, build HNSW (blocking) and check it.

    The payload index on ``payload_fields`` is created before the upsert (``before``: Qdrant
    then adds payload-aware links while building HNSW), after the build (``after``) or never.

    Returns
    -------
    dict
        ``upsert_s``, ``optimize_s``, ``build_s``, ``payload_index_s``, the store's ``info()``
        fields, ``disk_mb``, ``hnsw_mb`` and ``rss_mb`` (process RSS growth: meaningful for the
        in-process Edge engine only; NaN for a server).
    """
    if config.payload_index not in PAYLOAD_INDEX_MODES:
        raise ConfigError(f"payload_index must be one of {', '.join(PAYLOAD_INDEX_MODES)}, "
                          f"got {config.payload_index!r}")
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    store.ensure_collection(dataset.dim, config.hnsw(indexing_threshold_kb),
                            payload_indexes=tuple(payload_fields) if config.payload_index == "before" else (),
                            quantization=None if config.quantization == "none" else config.quantization)
    for s in range(0, dataset.n, chunk):
        store.upsert(dataset.points(s, s + chunk), batch_size=batch_size)
    t1 = time.perf_counter()
    info = wait_indexed(store, timeout_s=timeout_s)
    t2 = time.perf_counter()
    if config.payload_index == "after":
        for f in payload_fields:
            store.create_payload_index(f)
        info = check_indexed(store)
    t3 = time.perf_counter()
    rss1 = _rss_mb()
    mb = 2**20
    return {
        "upsert_s": t1 - t0, "optimize_s": t2 - t1, "build_s": t2 - t0, "payload_index_s": t3 - t2,
        "points": info["points"], "indexed_vectors": info["indexed_vectors"],
        "segments": info["segments"], "hnsw_segments": info.get("hnsw_segments"),
        "payload_indexes": ",".join(info.get("payload_indexes", [])),
        "disk_mb": info.get("disk_allocated_bytes", math.nan) / mb,
        "hnsw_mb": info.get("hnsw_bytes", math.nan) / mb,
        "rss_mb": (rss1 - rss0) if store.embedded else math.nan,
    }


# --- measurement ------------------------------------------------------------------------------


def latency_summary(latencies_ms: np.ndarray | Sequence[float]) -> dict[str, float]:
    """The summary schema over latencies (ms): count, min, max, mean, stddev, p50, p90, p95, p99, p999.

    Percentiles are nearest rank: the p-th percentile of n samples is the ``ceil(p/100·n)``-th
    smallest (numpy ``method="inverted_cdf"``; always an observed value, as HdrHistogram).
    """
    a = np.asarray(latencies_ms, dtype=float)
    a = a[np.isfinite(a)]
    out: dict[str, float] = {"count": int(a.size)}
    if a.size == 0:
        return out | dict.fromkeys(("min_ms", "max_ms", "mean_ms", "stddev_ms", "p50_ms", "p90_ms",
                                    "p95_ms", "p99_ms", "p999_ms"), math.nan)
    qs = np.percentile(a, [50, 90, 95, 99, 99.9], method="inverted_cdf")
    return out | {
        "min_ms": float(a.min()), "max_ms": float(a.max()), "mean_ms": float(a.mean()),
        "stddev_ms": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "p50_ms": float(qs[0]), "p90_ms": float(qs[1]), "p95_ms": float(qs[2]),
        "p99_ms": float(qs[3]), "p999_ms": float(qs[4]),
    }


def throughput(store: VectorStore, queries: np.ndarray, *, clients: int, min_queries: int | None = None,
               **search: Any) -> float:
    """Queries per second with ``clients`` threads issuing searches back to back (closed loop).

    Each thread takes every ``clients``-th query; the set is repeated until at least
    ``min_queries`` (default: the number of queries) have run in total. The first error raised
    in a thread is re-raised.
    """
    if clients < 1:
        raise ConfigError(f"clients must be >= 1, got {clients}")
    total = max(min_queries or len(queries), len(queries))
    per = [list(range(i, total, clients)) for i in range(clients)]
    errors: list[BaseException] = []
    start = threading.Barrier(clients + 1)

    def worker(idx: list[int]) -> None:
        start.wait()
        try:
            for j in idx:
                store.search(queries[j % len(queries)], **search)
        except BaseException as exc:  # reported to the caller below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(p,), daemon=True) for p in per]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return total / wall if wall > 0 else math.nan


def evaluate(store: VectorStore, dataset: Dataset, truth: np.ndarray, *, k: int = 10,
             hnsw_ef: int | None = None, exact: bool = False, workspace: str | None = None,
             rescore: bool | None = None, oversampling: float | None = None, clients: int = 2,
             warmup: int = 20, repeats: int = 1, batch: bool = True, max_seconds: float | None = None,
             min_queries: int = 50) -> dict[str, Any]:
    """Recall@k and latency of one search setting over all queries.

    ``returned`` is the mean number of hits per query (fewer than ``k`` means the search gave
    up early, e.g. a filtered HNSW walk that could not reach enough matches).

    Single-client latencies are timed around each ``store.search`` call (``perf_counter_ns``;
    the adapter records the same calls as ``vector_search`` spans); ``qps_1`` is queries over
    that loop's wall time, ``qps_n`` the closed-loop throughput of ``clients`` threads and
    ``qps_batch`` one ``search_batch`` call with every query.

    ``max_seconds`` bounds a slow setting (e.g. a filter without payload index on 200k points):
    the single-client loop stops once it has run that long and done ``min_queries`` queries;
    every figure then uses the queries done, and ``truncated`` says so.
    """
    if not exact:
        check_hnsw_ef(hnsw_ef, k)
    kw: dict[str, Any] = {"limit": k, "workspace_id": workspace, "hnsw_ef": None if exact else hnsw_ef,
                          "exact": exact, "with_payload": False, "rescore": rescore,
                          "oversampling": oversampling}
    qs = dataset.queries
    for v in qs[:warmup]:
        store.search(v, **kw)
    lat = np.full(len(qs) * repeats, np.nan)
    found: list[list[int]] = []
    truncated = False
    t0 = time.perf_counter()
    for r in range(repeats):
        for i, v in enumerate(qs):
            a = time.perf_counter_ns()
            hits = store.search(v, **kw)
            lat[r * len(qs) + i] = (time.perf_counter_ns() - a) / 1e6
            if r == 0:
                found.append([h.id for h in hits])
            if (max_seconds is not None and r == 0 and len(found) >= min_queries
                    and time.perf_counter() - t0 > max_seconds):
                truncated = True
                break
        if truncated:
            break
    wall = time.perf_counter() - t0
    done = int(np.isfinite(lat).sum())
    qs = qs[:len(found)]
    allowed = None if workspace is None else dataset.workspace == workspace
    rec = recall_at_k([dataset.rows(f) for f in found], truth[:len(found)], k, vectors=dataset.vectors,
                      queries=qs, allowed=allowed)
    out: dict[str, Any] = {"recall": float(rec.mean()), "recall_min": float(rec.min()),
                           "returned": float(np.mean([len(f) for f in found])) if found else 0.0,
                           "queries": len(qs), "truncated": truncated, **latency_summary(lat),
                           "qps_1": done / wall if wall > 0 else math.nan, "clients": clients}
    out["qps_n"] = throughput(store, qs, clients=clients, **kw) if clients > 1 else out["qps_1"]
    if batch:
        b0 = time.perf_counter()
        store.search_batch(list(qs), **kw)
        out["qps_batch"] = len(qs) / (time.perf_counter() - b0)
    return out


# --- the sweep --------------------------------------------------------------------------------


def _ints(values: Sequence[int] | int, name: str) -> tuple[int, ...]:
    vals = (values,) if isinstance(values, int) else tuple(values)
    if not vals or any(int(v) != v or v < 1 for v in vals):
        raise ConfigError(f"{name} must be positive integers, got {list(vals)}")
    return tuple(int(v) for v in vals)


@dataclass(frozen=True)
class Grid:
    """The sweep grid: builds are ``m × ef_construct × full_scan_threshold × quantization``;
    each build is searched at every ``hnsw_ef`` (and, when quantized, every ``oversampling``,
    always rescoring with the original vectors)."""

    m: tuple[int, ...] = (8, 16, 32)
    ef_construct: tuple[int, ...] = (64, 128, 256)
    hnsw_ef: tuple[int, ...] = (16, 32, 64, 128, 256)
    full_scan_threshold: tuple[int, ...] = (DEFAULT_FULL_SCAN_KB,)
    quantization: tuple[str, ...] = ("none",)
    oversampling: tuple[float, ...] = (1.0, 2.0)
    k: int = 10

    def __post_init__(self) -> None:
        for name in ("m", "ef_construct", "hnsw_ef", "full_scan_threshold"):
            object.__setattr__(self, name, _ints(getattr(self, name), name))
        if int(self.k) < 1:
            raise ConfigError(f"k must be >= 1, got {self.k}")
        for ef in self.hnsw_ef:
            check_hnsw_ef(ef, self.k)
        q = tuple(self.quantization) if not isinstance(self.quantization, str) else (self.quantization,)
        bad = [x for x in q if x not in QUANTIZATIONS]
        if bad or not q:
            raise ConfigError(f"quantization must be among {', '.join(QUANTIZATIONS)}, got {list(q)}")
        object.__setattr__(self, "quantization", q)
        ov = tuple(float(x) for x in self.oversampling)
        if not ov or any(x < 1 for x in ov):
            raise ConfigError(f"oversampling must be >= 1, got {list(ov)}")
        object.__setattr__(self, "oversampling", ov)

    def builds(self) -> list[BuildConfig]:
        """Every build of the grid, cheapest first."""
        return [BuildConfig(m, efc, fst, q) for q in self.quantization for fst in self.full_scan_threshold
                for m in self.m for efc in self.ef_construct]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for provenance)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: The smoke grid keeps the shape (2 builds, 2 ef values) at a low full-scan threshold so a
#: 2,000-point set is really searched through HNSW.
SMOKE_FULL_SCAN_KB = 100


def grid(*, m: Sequence[int] = (8, 16, 32), ef_construct: Sequence[int] = (64, 128, 256),
         hnsw_ef: Sequence[int] = (16, 32, 64, 128, 256),
         full_scan_threshold: Sequence[int] = (DEFAULT_FULL_SCAN_KB,),
         quantization: Sequence[str] = ("none",), oversampling: Sequence[float] = (1.0, 2.0),
         k: int = 10, smoke: bool = False) -> Grid:
    """Build a :class:`Grid` (validated: ``hnsw_ef < k`` is a :class:`ConfigError`).

    With ``smoke`` the grid shrinks to the two smallest ``m``, the smallest ``ef_construct``, the
    two smallest ``hnsw_ef`` and a full-scan threshold of 100 KB.
    """
    g = Grid(tuple(m), tuple(ef_construct), tuple(hnsw_ef), tuple(full_scan_threshold),
             tuple(quantization), tuple(oversampling), int(k))
    if smoke:
        g = replace(g, m=tuple(sorted(g.m)[:2]), ef_construct=(min(g.ef_construct),),
                    hnsw_ef=tuple(sorted(g.hnsw_ef)[:2]), full_scan_threshold=(SMOKE_FULL_SCAN_KB,),
                    quantization=g.quantization[:1], oversampling=g.oversampling[:1])
    return g


@dataclass
class SweepResult:
    """A tidy frame (one row per measured setting) plus warnings and metadata."""

    frame: pd.DataFrame
    warnings: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: ``rows`` (records), ``warnings``, ``meta``."""
        return {"rows": records(self.frame), "warnings": list(self.warnings), "meta": self.meta}


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as dicts with missing values (NaN, ``pd.NA``) as None, ready for JSON."""
    return frame.astype(object).where(frame.notna(), None).to_dict(orient="records")


def _backend(settings: Settings) -> str:
    return "qdrant-server" if settings.qdrant_url is not None else "qdrant-edge"


def _tidy(frame: pd.DataFrame, dataset: Dataset, settings: Settings) -> pd.DataFrame:
    """Dataset and backend first; integer parameters as nullable integers (exact rows have none)."""
    frame.insert(0, "dataset", dataset.name)
    frame.insert(1, "backend", _backend(settings))
    for col in ("m", "ef_construct", "hnsw_ef", "payload_m", "full_scan_threshold"):
        if col in frame.columns:
            frame[col] = pd.array(frame[col].astype("float").round(), dtype="Int64")
    for col in ("oversampling",):
        if col in frame.columns:
            frame[col] = frame[col].astype("float")
    for col in ("rescore",):
        if col in frame.columns:
            frame[col] = frame[col].astype("boolean")
    return frame


def _meta(dataset: Dataset, settings: Settings, **extra: Any) -> dict[str, Any]:
    return {"dataset": dataset.name, "points": dataset.n, "dim": dataset.dim,
            "queries": int(len(dataset.queries)), "dataset_info": dataset.info,
            "backend": _backend(settings), "cpus": os.cpu_count(),
            "loadavg_end": list(os.getloadavg()), "percentiles": PERCENTILE_DEFINITION, **extra}


def sweep(dataset: Dataset, g: Grid | None = None, *, clients: int = 2, include_exact: bool = True,
          payload_fields: Sequence[str] = ("workspaceId", "tier"),
          indexing_threshold_kb: int = SWEEP_INDEXING_KB, max_search_threads: int | None = None,
          warmup: int = 20, settings: Settings | None = None,
          progress: Callable[[str], None] | None = None) -> SweepResult:
    """Build each (m, ef_construct, full_scan_threshold, quantization) once, then measure every hnsw_ef.

    Each build is verified (``indexed_vectors == points``, else :class:`IndexNotBuilt`) and
    checked for brute-force segments (:class:`BruteForceWarning`) before anything is timed.
    Exact search (``exact=True``, the brute-force baseline) is measured once per quantization.
    Collections are throw-away (see :func:`sweep_stores`) and dropped after use.

    Returns
    -------
    SweepResult
        ``frame`` columns: config, m, ef_construct, full_scan_threshold, quantization,
        payload_index, hnsw_ef, exact, rescore, oversampling, k, recall, recall_min, queries,
        count, the latency summary (``*_ms``), qps_1, qps_n, clients, qps_batch, the build
        fields of :func:`build_index`, brute_force.
    """
    g = g or Grid()
    s = settings or get_settings()
    k = g.k
    load0 = list(os.getloadavg())  # the machine may be shared: keep its load beside the numbers
    truth, _ = ground_truth(dataset.vectors, dataset.queries, k)
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    say = progress or (lambda _msg: None)
    exact_done: set[str] = set()
    with sweep_stores(s, max_search_threads=max_search_threads) as open_store:
        for cfg in g.builds():
            store = open_store(cfg.label)
            try:
                say(f"build {cfg.label} on {dataset.n} points ...")
                b = build_index(store, dataset, cfg, payload_fields=payload_fields,
                                indexing_threshold_kb=indexing_threshold_kb)
                say(f"  built in {b['build_s']:.1f} s (HNSW {b['optimize_s']:.1f} s)")
                w = brute_force_warnings(b, full_scan_threshold_kb=cfg.full_scan_threshold, dim=dataset.dim)
                notes.extend(f"{cfg.label}: {x}" for x in w)
                base = {"config": cfg.label, **asdict(cfg), "k": k, "brute_force": bool(w)}
                if include_exact and cfg.quantization not in exact_done:
                    exact_done.add(cfg.quantization)
                    ev = evaluate(store, dataset, truth, k=k, exact=True, clients=clients, warmup=warmup)
                    rows.append({**base, "config": f"exact-{cfg.quantization}" if cfg.quantization != "none"
                                 else "exact", "m": None, "ef_construct": None, "hnsw_ef": None,
                                 "exact": True, "rescore": None, "oversampling": None, **ev,
                                 "brute_force": True})
                searches: list[tuple[bool | None, float | None]] = [(None, None)]
                if cfg.quantization != "none":
                    searches = [(True, ov) for ov in g.oversampling]
                for ef in g.hnsw_ef:
                    for rescore, ov in searches:
                        ev = evaluate(store, dataset, truth, k=k, hnsw_ef=ef, rescore=rescore,
                                      oversampling=ov, clients=clients, warmup=warmup)
                        rows.append({**base, **b, "hnsw_ef": ef, "exact": False, "rescore": rescore,
                                     "oversampling": ov, **ev})
                        say(f"  hnsw_ef={ef}{'' if ov is None else f' oversampling={ov}'}: "
                            f"recall@{k} {ev['recall']:.4f}, p95 {ev['p95_ms']:.3f} ms, "
                            f"{ev['qps_1']:.0f} QPS")
            finally:
                store.drop()
                store.close()
    frame = _tidy(pd.DataFrame(rows), dataset, s)
    return SweepResult(frame, notes, _meta(dataset, s, grid=g.to_dict(), clients=clients, loadavg_start=load0,
                                          indexing_threshold_kb=indexing_threshold_kb,
                                          payload_fields=list(payload_fields),
                                          max_search_threads=max_search_threads))


# --- filtered search --------------------------------------------------------------------------


def pick_workspaces(dataset: Dataset, selectivities: Sequence[float] = (0.01, 0.1, 0.5)) -> pd.DataFrame:
    """For each target selectivity, the workspace whose share is closest (duplicates dropped)."""
    shares = dataset.shares()
    picked = []
    for target in selectivities:
        i = int((shares.share - target).abs().idxmin())
        picked.append({"target": float(target), **shares.loc[i].to_dict()})
    return pd.DataFrame(picked).drop_duplicates("workspace").reset_index(drop=True)


def filtered_study(dataset: Dataset, *, m: int = 16, ef_construct: int = 128,
                   hnsw_ef: Sequence[int] = (32, 64, 128), k: int = 10,
                   selectivities: Sequence[float] = (0.01, 0.1, 0.5),
                   payload_index: Sequence[str] = ("before", "none"),
                   full_scan_threshold: int = DEFAULT_FULL_SCAN_KB, clients: int = 1,
                   indexing_threshold_kb: int = SWEEP_INDEXING_KB, max_search_threads: int | None = None,
                   warmup: int = 10, max_seconds: float | None = 15.0, settings: Settings | None = None,
                   progress: Callable[[str], None] | None = None) -> SweepResult:
    """Filtered search (``workspaceId`` = w) at several selectivities, per payload-index mode.

    One build per ``payload_index`` mode (``before`` the HNSW build, ``after`` it, or ``none``);
    for each picked workspace (:func:`pick_workspaces`) and the unfiltered case, recall@k
    against the exact filtered top-k and latency at every ``hnsw_ef``, plus exact search.
    Subsets under the full-scan threshold are flagged (``below_full_scan``) and warned about:
    Qdrant answers them by exact scan when it can estimate their size (payload index).
    A filter without a payload index can cost a payload scan per query (hundreds of ms at
    200k points), so each setting runs at most ``max_seconds`` (at least 50 queries; see
    :func:`evaluate`) and no batch pass.
    """
    for ef in hnsw_ef:
        check_hnsw_ef(ef, k)
    bad = [x for x in payload_index if x not in PAYLOAD_INDEX_MODES]
    if bad:
        raise ConfigError(f"payload_index must be among {', '.join(PAYLOAD_INDEX_MODES)}, got {bad}")
    s = settings or get_settings()
    say = progress or (lambda _msg: None)
    picked = pick_workspaces(dataset, selectivities)
    thr = full_scan_points(full_scan_threshold, dataset.dim)
    cases: list[tuple[str | None, float, float, np.ndarray]] = [(None, 1.0, 1.0, ground_truth(
        dataset.vectors, dataset.queries, k)[0])]
    for r in picked.itertuples(index=False):
        rows_ws = np.flatnonzero(dataset.workspace == r.workspace)
        cases.append((str(r.workspace), float(r.target), float(r.share),
                      ground_truth(dataset.vectors, dataset.queries, k, rows=rows_ws)[0]))
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    with sweep_stores(s, max_search_threads=max_search_threads) as open_store:
        for mode in payload_index:
            cfg = BuildConfig(m, ef_construct, full_scan_threshold, "none", mode)
            store = open_store(f"filtered-{cfg.label}")
            try:
                say(f"build {cfg.label} on {dataset.n} points ...")
                b = build_index(store, dataset, cfg, payload_fields=("workspaceId",),
                                indexing_threshold_kb=indexing_threshold_kb)
                sizes = {f"workspaceId={ws}": int(round(share * dataset.n))
                         for ws, _t, share, _ in cases if ws is not None}
                w = brute_force_warnings(b, full_scan_threshold_kb=full_scan_threshold, dim=dataset.dim,
                                         subsets=sizes, emit=mode == payload_index[0])
                if mode == payload_index[0]:
                    notes.extend(w)
                for ws, target, share, truth in cases:
                    size = int(round(share * dataset.n))
                    base = {"config": cfg.label, "m": m, "ef_construct": ef_construct,
                            "full_scan_threshold": full_scan_threshold, "payload_index": mode,
                            "workspace": ws or "(all)", "filtered": ws is not None, "target": target,
                            "selectivity": share, "subset_points": size, "below_full_scan": size < thr,
                            "k": k, "build_s": b["build_s"], "optimize_s": b["optimize_s"]}
                    ev = evaluate(store, dataset, truth, k=k, exact=True, workspace=ws, clients=clients,
                                  warmup=warmup, batch=False, max_seconds=max_seconds)
                    out.append({**base, "hnsw_ef": None, "exact": True, **ev})
                    for ef in hnsw_ef:
                        ev = evaluate(store, dataset, truth, k=k, hnsw_ef=ef, workspace=ws,
                                      clients=clients, warmup=warmup, batch=False, max_seconds=max_seconds)
                        out.append({**base, "hnsw_ef": ef, "exact": False, **ev})
                        say(f"  {mode} {ws or '(all)'} hnsw_ef={ef}: recall {ev['recall']:.4f}, "
                            f"p95 {ev['p95_ms']:.3f} ms")
            finally:
                store.drop()
                store.close()
    frame = _tidy(pd.DataFrame(out), dataset, s)
    return SweepResult(frame, notes, _meta(dataset, s, m=m, ef_construct=ef_construct, k=k,
                                          full_scan_threshold=full_scan_threshold,
                                          full_scan_points=thr, payload_index=list(payload_index)))


#: The build the filtered study uses when no configuration was recommended.
DEFAULT_FILTERED_BUILD = (16, 128)


def filtered_study_for(dataset: Dataset, recommendation: Mapping[str, Any], g: Grid, *,
                       selectivities: Sequence[float] = (0.01, 0.1, 0.5),
                       payload_index: Sequence[str] = ("before", "none"), **kw: Any) -> SweepResult:
    """:func:`filtered_study` on the recommended build (``m``, ``ef_construct``; m=16/128 when
    nothing was recommended) at the grid's ``hnsw_ef`` values, ``k`` and first full-scan threshold."""
    if recommendation.get("status") == "ok":
        m, efc = int(recommendation["m"]), int(recommendation["ef_construct"])
    else:
        m, efc = DEFAULT_FILTERED_BUILD
    return filtered_study(dataset, m=m, ef_construct=efc, hnsw_ef=g.hnsw_ef, k=g.k,
                          selectivities=selectivities, payload_index=payload_index,
                          full_scan_threshold=g.full_scan_threshold[0], **kw)


# --- batch vs single upsert -------------------------------------------------------------------


def upsert_bench(dataset: Dataset, *, n: int = 50, repeats: int = 20, warmup: int = 2,
                 payload_fields: Sequence[str] = ("workspaceId", "tier"),
                 settings: Settings | None = None) -> SweepResult:
    """Time ``n`` contexts upserted one call each against one batch call (the guide claims ~90% less).

    Into one collection with the production payload indexes: each repeat writes ``n`` fresh
    points one by one and ``n`` other fresh points as one batch, alternating which goes first
    so drift cancels. The frame has one row per (repeat, mode) with ``ms``; ``meta["summary"]``
    holds the medians, p95s and the reduction ``1 - batch/single`` (medians).
    """
    if n < 1 or repeats < 1 or n > dataset.n:
        raise ConfigError(f"upsert bench needs 1 <= n <= {dataset.n} points and repeats >= 1, "
                          f"got n={n}, repeats={repeats}")
    s = settings or get_settings()
    rows: list[dict[str, Any]] = []
    offset = int(dataset.ids.max()) + 1
    with sweep_stores(s) as open_store:
        store = open_store("upsert-bench")
        try:
            store.ensure_collection(dataset.dim, HnswParams(), payload_indexes=tuple(payload_fields))
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
    summary = {"n": n, "repeats": repeats, "backend": _backend(s),
               "single_p50_ms": ss["p50_ms"], "single_p95_ms": ss["p95_ms"],
               "batch_p50_ms": bs["p50_ms"], "batch_p95_ms": bs["p95_ms"],
               "per_point_single_ms": ss["p50_ms"] / n, "per_point_batch_ms": bs["p50_ms"] / n,
               "reduction": 1 - bs["p50_ms"] / ss["p50_ms"] if ss["p50_ms"] > 0 else math.nan,
               "speedup": ss["p50_ms"] / bs["p50_ms"] if bs["p50_ms"] > 0 else math.nan,
               "guide_claim_reduction": 0.90}
    return SweepResult(frame, [], {"summary": summary, "dataset": dataset.name})


# --- frontier, recommendation, verdict --------------------------------------------------------


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


def recommend(frame: pd.DataFrame, *, target_recall: float = 0.95, budget_ms: float = BUDGET_MS,
              latency: str = "p95_ms", cost: str = "p50_ms", tie_tolerance: float = 0.10) -> dict[str, Any]:
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
        return {"status": "none", "reason": "no measurements", "target_recall": target_recall,
                "budget_ms": budget_ms}
    ann = frame[~frame["exact"].astype(bool)]
    ok = ann[(ann["recall"] >= target_recall) & (ann[latency] < budget_ms)]
    ex = frame[frame["exact"].astype(bool)]
    exact = None
    if not ex.empty:
        e = ex.sort_values(latency).iloc[0]
        exact = {"config": e["config"], "recall": float(e["recall"]), latency: float(e[latency]),
                 "qps_1": float(e["qps_1"]), "qps_n": float(e.get("qps_n", math.nan))}
    out: dict[str, Any] = {"target_recall": target_recall, "budget_ms": budget_ms, "latency": latency,
                           "cost": cost, "exact": exact, "candidates": int(len(ok))}
    if ok.empty:
        best = ann.sort_values(["recall", latency], ascending=[False, True]).iloc[0] if not ann.empty else None
        out.update(status="none", reason=f"no configuration reaches recall {target_recall} with "
                   f"{latency} < {budget_ms} ms", best=None if best is None else _pick(best, latency))
        return out
    floor = float(ok[cost].min())
    tied = ok[ok[cost] <= floor * (1 + tie_tolerance)].copy()
    tied["_q"] = (tied["quantization"] != "none").astype(int)
    chosen = tied.sort_values(["m", "ef_construct", "hnsw_ef", "_q", cost]).iloc[0]
    row = _pick(chosen, latency)
    out.update(status="ok", **row, margin={
        "recall": float(chosen["recall"]) - target_recall,
        "latency_ms": budget_ms - float(chosen[latency]),
        "budget_share": float(chosen[latency]) / budget_ms,
    })
    return out


def _pick(r: pd.Series, latency: str) -> dict[str, Any]:
    keys = ("config", "m", "ef_construct", "full_scan_threshold", "quantization", "hnsw_ef", "oversampling",
            "recall", "recall_min", "p50_ms", "p95_ms", "p99_ms", latency, "qps_1", "qps_n", "qps_batch",
            "build_s", "hnsw_mb", "disk_mb")
    out: dict[str, Any] = {}
    for key in keys:
        v = r.get(key)
        if v is None or (not isinstance(v, str) and bool(pd.isna(v))):
            v = None
        elif isinstance(v, np.generic):
            v = v.item()
        out[key] = v
    return out


def verdict(recommendation: Mapping[str, Any], goal: Mapping[str, Any] | None = None) -> dict[str, str]:
    """A one-line verdict: ``pass`` when a configuration meets the target (and ``goal``, if given)."""
    rec = recommendation
    if rec.get("status") != "ok":
        return {"status": "fail", "summary": rec.get("reason", "no configuration meets the target")}
    lat = rec.get("latency", "p95_ms")
    text = (f"{rec['config']} hnsw_ef={rec['hnsw_ef']}: recall {rec['recall']:.3f} "
            f"(target {rec['target_recall']}), {lat.removesuffix('_ms')} {rec[lat]:.2f} ms "
            f"(budget {rec['budget_ms']:g} ms)")
    if goal is not None:
        if goal.get("status") != "ok":
            return {"status": "warn", "summary": f"{text}; goal missed: {goal.get('reason')}"}
        text += (f"; goal recall {goal['target_recall']} at < {goal['budget_ms']:g} ms met by "
                 f"{goal['config']} hnsw_ef={goal['hnsw_ef']} ({goal['recall']:.3f}, {goal[lat]:.2f} ms)")
    return {"status": "pass", "summary": text}


def table(frame: pd.DataFrame, recommendation: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """The report table: exact search, the Pareto frontier on (p95, recall) and the recommendation."""
    cols = [c for c in ("config", "hnsw_ef", "oversampling", "recall", "p50_ms", "p95_ms", "p99_ms",
                        "qps_1", "qps_n", "qps_batch", "build_s", "hnsw_mb") if c in frame.columns]
    front = pareto_frontier(frame)
    parts = [frame[frame["exact"].astype(bool)], front[~front["exact"].astype(bool)]]
    t = pd.concat(parts)[cols].drop_duplicates().reset_index(drop=True)
    t.insert(0, "role", np.where(t["config"].astype(str).str.startswith("exact"), "exact", "frontier"))
    if recommendation and recommendation.get("status") == "ok":
        hit = ((t["config"] == recommendation["config"])
               & (t["hnsw_ef"] == recommendation["hnsw_ef"])).fillna(False).astype(bool)
        if not hit.any():
            r = pd.DataFrame([{c: recommendation.get(c) for c in cols}])
            r.insert(0, "role", "recommended")
            t = pd.concat([t, r], ignore_index=True)
        else:
            t.loc[hit, "role"] = "recommended"
    return t
