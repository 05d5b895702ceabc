"""HNSW parameter sweeps: the metric table, index builds and checks, search measurement, the grid."""

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
from axon_lab.metrics import Metric, declare
from axon_lab.registry import Registry
from axon_lab.stack.vector import (
    EdgeVectorStore,
    HnswParams,
    ServerVectorStore,
    VectorStore,
)
from axon_lab.vector.datasets import Dataset
from axon_lab.vector.recall import PERCENTILE_DEFINITION, ground_truth, latency_summary, recall_at_k

#: Bytes per stored vector component (float32); Qdrant converts KB thresholds with it.
FLOAT_BYTES = 4
#: Qdrant's default full-scan threshold (KB of vectors).
DEFAULT_FULL_SCAN_KB = 10_000
#: Indexing threshold used by sweeps (KB): low, so every non-trivial segment gets an HNSW graph.
SWEEP_INDEXING_KB = 20
QUANTIZATIONS = ("none", "int8")
PAYLOAD_INDEX_MODES = ("before", "after", "none")


class IndexNotBuilt(AxonLabError):
    """The HNSW index is missing or partial, so timings would measure brute force."""


class BruteForceWarning(UserWarning):
    """A segment or a filtered subset is under the full-scan threshold: Qdrant searches it exactly."""


# --- metrics, declared once -----------------------------------------------------------------


METRICS: Registry[Metric] = declare(
    "vector metric",
    [
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
    ],
)


def metric(name: str) -> Metric:
    """The declared metric ``name`` (the error lists the valid names)."""
    return METRICS.get(name)


# --- guards -----------------------------------------------------------------------------------


def check_hnsw_ef(hnsw_ef: int | None, k: int) -> None:
    """Reject ``hnsw_ef < k`` (Qdrant silently searches with ``ef = k``, mislabelling the row)."""
    if hnsw_ef is not None and hnsw_ef < k:
        raise ConfigError(
            f"hnsw_ef {hnsw_ef} < k {k}: Qdrant would silently search with ef = k, "
            "so the row would be mislabelled; use hnsw_ef >= k"
        )


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
        raise IndexNotBuilt(
            f"collection {store.collection!r}: only {indexed} of {points} vectors are "
            "HNSW-indexed; searches would be brute force (lower indexing_threshold "
            "or run optimize() before timing)"
        )
    return info


def wait_indexed(
    store: VectorStore, *, timeout_s: float = 600.0, poll_s: float = 0.5
) -> dict[str, Any]:
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


def brute_force_warnings(
    info: Mapping[str, Any],
    *,
    full_scan_threshold_kb: int,
    dim: int,
    subsets: Mapping[str, int] | None = None,
    emit: bool = True,
) -> list[str]:
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
        out.append(
            f"HNSW segments hold ~{per_segment} points each, under the full-scan threshold "
            f"({full_scan_threshold_kb} KB = {thr} points at {dim}-d): unfiltered searches are "
            "brute force, so recall 1.0 says nothing about HNSW"
        )
    for name, size in (subsets or {}).items():
        if size < thr:
            out.append(
                f"filter {name}: {size} points, under the full-scan threshold ({thr} points): "
                "with a payload index Qdrant answers it by exact scan of the matches"
            )
    if emit:
        for w in out:
            warnings.warn(w, BruteForceWarning, stacklevel=2)
    return out


# --- stores for sweeps ------------------------------------------------------------------------


@contextlib.contextmanager
def sweep_stores(
    settings: Settings | None = None,
    *,
    run_id: str | None = None,
    max_search_threads: int | None = None,
) -> Iterator[Callable[[str], VectorStore]]:
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
            store = ServerVectorStore(
                s.secret("qdrant_url") or "",
                f"axon-lab-sweep-{run_id}-{safe}",
                s.secret("qdrant_api_key"),
                timeout=60.0,
            )
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
        return HnswParams(
            m=self.m,
            ef_construct=self.ef_construct,
            full_scan_threshold=self.full_scan_threshold,
            indexing_threshold=indexing_threshold_kb,
            payload_m=self.payload_m,
        )


def build_index(
    store: VectorStore,
    dataset: Dataset,
    config: BuildConfig,
    *,
    payload_fields: Sequence[str] = ("workspaceId", "tier"),
    indexing_threshold_kb: int = SWEEP_INDEXING_KB,
    batch_size: int = 1000,
    chunk: int = 20_000,
    timeout_s: float = 3600.0,
) -> dict[str, Any]:
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
        raise ConfigError(
            f"payload_index must be one of {', '.join(PAYLOAD_INDEX_MODES)}, "
            f"got {config.payload_index!r}"
        )
    rss0 = _rss_mb()
    t0 = time.perf_counter()
    store.ensure_collection(
        dataset.dim,
        config.hnsw(indexing_threshold_kb),
        payload_indexes=tuple(payload_fields) if config.payload_index == "before" else (),
        quantization=None if config.quantization == "none" else config.quantization,
    )
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
        "upsert_s": t1 - t0,
        "optimize_s": t2 - t1,
        "build_s": t2 - t0,
        "payload_index_s": t3 - t2,
        "points": info["points"],
        "indexed_vectors": info["indexed_vectors"],
        "segments": info["segments"],
        "hnsw_segments": info.get("hnsw_segments"),
        "payload_indexes": ",".join(info.get("payload_indexes", [])),
        "disk_mb": info.get("disk_allocated_bytes", math.nan) / mb,
        "hnsw_mb": info.get("hnsw_bytes", math.nan) / mb,
        "rss_mb": (rss1 - rss0) if store.embedded else math.nan,
    }


# --- measurement ------------------------------------------------------------------------------


def throughput(
    store: VectorStore,
    queries: np.ndarray,
    *,
    clients: int,
    min_queries: int | None = None,
    **search: Any,
) -> float:
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


def evaluate(
    store: VectorStore,
    dataset: Dataset,
    truth: np.ndarray,
    *,
    k: int = 10,
    hnsw_ef: int | None = None,
    exact: bool = False,
    workspace: str | None = None,
    rescore: bool | None = None,
    oversampling: float | None = None,
    clients: int = 2,
    warmup: int = 20,
    repeats: int = 1,
    batch: bool = True,
    max_seconds: float | None = None,
    min_queries: int = 50,
) -> dict[str, Any]:
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
    kw: dict[str, Any] = {
        "limit": k,
        "workspace_id": workspace,
        "hnsw_ef": None if exact else hnsw_ef,
        "exact": exact,
        "with_payload": False,
        "rescore": rescore,
        "oversampling": oversampling,
    }
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
            if (
                max_seconds is not None
                and r == 0
                and len(found) >= min_queries
                and time.perf_counter() - t0 > max_seconds
            ):
                truncated = True
                break
        if truncated:
            break
    wall = time.perf_counter() - t0
    done = int(np.isfinite(lat).sum())
    qs = qs[: len(found)]
    allowed = None if workspace is None else dataset.workspace == workspace
    rec = recall_at_k(
        [dataset.rows(f) for f in found],
        truth[: len(found)],
        k,
        vectors=dataset.vectors,
        queries=qs,
        allowed=allowed,
    )
    out: dict[str, Any] = {
        "recall": float(rec.mean()),
        "recall_min": float(rec.min()),
        "returned": float(np.mean([len(f) for f in found])) if found else 0.0,
        "queries": len(qs),
        "truncated": truncated,
        **latency_summary(lat),
        "qps_1": done / wall if wall > 0 else math.nan,
        "clients": clients,
    }
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
    always rescoring with the original vectors).
    """

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
        q = (
            tuple(self.quantization)
            if not isinstance(self.quantization, str)
            else (self.quantization,)
        )
        bad = [x for x in q if x not in QUANTIZATIONS]
        if bad or not q:
            raise ConfigError(
                f"quantization must be among {', '.join(QUANTIZATIONS)}, got {list(q)}"
            )
        object.__setattr__(self, "quantization", q)
        ov = tuple(float(x) for x in self.oversampling)
        if not ov or any(x < 1 for x in ov):
            raise ConfigError(f"oversampling must be >= 1, got {list(ov)}")
        object.__setattr__(self, "oversampling", ov)

    def builds(self) -> list[BuildConfig]:
        """Every build of the grid, cheapest first."""
        return [
            BuildConfig(m, efc, fst, q)
            for q in self.quantization
            for fst in self.full_scan_threshold
            for m in self.m
            for efc in self.ef_construct
        ]

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for provenance)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


#: The smoke grid keeps the shape (2 builds, 2 ef values) at a low full-scan threshold so a
#: 2,000-point set is really searched through HNSW.
SMOKE_FULL_SCAN_KB = 100


def grid(
    *,
    m: Sequence[int] = (8, 16, 32),
    ef_construct: Sequence[int] = (64, 128, 256),
    hnsw_ef: Sequence[int] = (16, 32, 64, 128, 256),
    full_scan_threshold: Sequence[int] = (DEFAULT_FULL_SCAN_KB,),
    quantization: Sequence[str] = ("none",),
    oversampling: Sequence[float] = (1.0, 2.0),
    k: int = 10,
    smoke: bool = False,
) -> Grid:
    """Build a :class:`Grid` (validated: ``hnsw_ef < k`` is a :class:`ConfigError`).

    With ``smoke`` the grid shrinks to the two smallest ``m``, the smallest ``ef_construct``, the
    two smallest ``hnsw_ef`` and a full-scan threshold of 100 KB.
    """
    g = Grid(
        tuple(m),
        tuple(ef_construct),
        tuple(hnsw_ef),
        tuple(full_scan_threshold),
        tuple(quantization),
        tuple(oversampling),
        int(k),
    )
    if smoke:
        g = replace(
            g,
            m=tuple(sorted(g.m)[:2]),
            ef_construct=(min(g.ef_construct),),
            hnsw_ef=tuple(sorted(g.hnsw_ef)[:2]),
            full_scan_threshold=(SMOKE_FULL_SCAN_KB,),
            quantization=g.quantization[:1],
            oversampling=g.oversampling[:1],
        )
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
    return {
        "dataset": dataset.name,
        "points": dataset.n,
        "dim": dataset.dim,
        "queries": int(len(dataset.queries)),
        "dataset_info": dataset.info,
        "backend": _backend(settings),
        "cpus": os.cpu_count(),
        "loadavg_end": list(os.getloadavg()),
        "percentiles": PERCENTILE_DEFINITION,
        **extra,
    }


class _NoBar:
    """Stands in for a progress bar when none is shown."""

    def set_description(self, _text: str) -> None:
        pass

    def update(self, _n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _sweep_bar(g: Grid, include_exact: bool, *, enabled: bool | None) -> Any:
    """A tqdm bar over the sweep's searches (tqdm.auto: a widget in JupyterLab), or a stand-in."""
    if enabled is None:
        from axon_lab.report.sidecar import OUT_DIR_ENV

        enabled = OUT_DIR_ENV not in os.environ  # a person runs it, not axon-lab run/report
    if not enabled:
        return _NoBar()
    builds = list(g.builds())
    total = sum(
        len(g.hnsw_ef) * (len(g.oversampling) if b.quantization != "none" else 1) for b in builds
    )
    total += len({b.quantization for b in builds}) if include_exact else 0
    try:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc="HNSW sweep", unit="search", leave=True)
    except Exception:  # no tqdm: run without a bar
        return _NoBar()


def sweep(
    dataset: Dataset,
    g: Grid | None = None,
    *,
    clients: int = 2,
    include_exact: bool = True,
    payload_fields: Sequence[str] = ("workspaceId", "tier"),
    indexing_threshold_kb: int = SWEEP_INDEXING_KB,
    max_search_threads: int | None = None,
    warmup: int = 20,
    settings: Settings | None = None,
    progress: Callable[[str], None] | bool | None = None,
) -> SweepResult:
    """Build each (m, ef_construct, full_scan_threshold, quantization) once, then measure every hnsw_ef.

    ``progress``: a function that gets one line per step (the CLI), ``True`` for a progress bar
    (a live widget in JupyterLab), ``None`` for a bar only when a person runs the notebook
    (not under ``axon-lab run``/``report``).

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
    say = progress if callable(progress) else (lambda _msg: None)
    bar = _sweep_bar(g, include_exact, enabled=progress if isinstance(progress, bool) else None)
    exact_done: set[str] = set()
    with sweep_stores(s, max_search_threads=max_search_threads) as open_store:
        for cfg in g.builds():
            store = open_store(cfg.label)
            try:
                say(f"build {cfg.label} on {dataset.n} points ...")
                bar.set_description(f"build {cfg.label}")
                b = build_index(
                    store,
                    dataset,
                    cfg,
                    payload_fields=payload_fields,
                    indexing_threshold_kb=indexing_threshold_kb,
                )
                say(f"  built in {b['build_s']:.1f} s (HNSW {b['optimize_s']:.1f} s)")
                w = brute_force_warnings(
                    b, full_scan_threshold_kb=cfg.full_scan_threshold, dim=dataset.dim
                )
                notes.extend(f"{cfg.label}: {x}" for x in w)
                base = {"config": cfg.label, **asdict(cfg), "k": k, "brute_force": bool(w)}
                if include_exact and cfg.quantization not in exact_done:
                    exact_done.add(cfg.quantization)
                    bar.set_description(f"exact search ({cfg.quantization})")
                    ev = evaluate(
                        store, dataset, truth, k=k, exact=True, clients=clients, warmup=warmup
                    )
                    bar.update(1)
                    rows.append(
                        {
                            **base,
                            "config": f"exact-{cfg.quantization}"
                            if cfg.quantization != "none"
                            else "exact",
                            "m": None,
                            "ef_construct": None,
                            "hnsw_ef": None,
                            "exact": True,
                            "rescore": None,
                            "oversampling": None,
                            **ev,
                            "brute_force": True,
                        }
                    )
                searches: list[tuple[bool | None, float | None]] = [(None, None)]
                if cfg.quantization != "none":
                    searches = [(True, ov) for ov in g.oversampling]
                for ef in g.hnsw_ef:
                    for rescore, ov in searches:
                        bar.set_description(f"search {cfg.label} hnsw_ef={ef}")
                        ev = evaluate(
                            store,
                            dataset,
                            truth,
                            k=k,
                            hnsw_ef=ef,
                            rescore=rescore,
                            oversampling=ov,
                            clients=clients,
                            warmup=warmup,
                        )
                        rows.append(
                            {
                                **base,
                                **b,
                                "hnsw_ef": ef,
                                "exact": False,
                                "rescore": rescore,
                                "oversampling": ov,
                                **ev,
                            }
                        )
                        bar.update(1)
                        say(
                            f"  hnsw_ef={ef}{'' if ov is None else f' oversampling={ov}'}: "
                            f"recall@{k} {ev['recall']:.4f}, p95 {ev['p95_ms']:.3f} ms, "
                            f"{ev['qps_1']:.0f} QPS"
                        )
            finally:
                store.drop()
                store.close()
    bar.set_description("HNSW sweep done")
    bar.close()
    frame = _tidy(pd.DataFrame(rows), dataset, s)
    return SweepResult(
        frame,
        notes,
        _meta(
            dataset,
            s,
            grid=g.to_dict(),
            clients=clients,
            loadavg_start=load0,
            indexing_threshold_kb=indexing_threshold_kb,
            payload_fields=list(payload_fields),
            max_search_threads=max_search_threads,
        ),
    )
