"""``VectorStore``: Qdrant Edge (embedded, real HNSW, in-process) or a Qdrant server (qdrant-client).

The base class owns timing (every search is a ``vector_search`` span) and error capture;
adapters implement ``_search`` and friends. qdrant-client's own local mode is brute force
and is deliberately not offered.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_lab.errors import BackendUnavailable, ConfigError
from axon_lab.instrument import measure
from axon_lab.redact import redact_text
from axon_lab.registry import Registry

VECTOR_NAME = "text"


@dataclass(frozen=True)
class HnswParams:
    """HNSW build parameters (Qdrant names and defaults; thresholds in KB as in Qdrant)."""

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold: int = 10_000
    indexing_threshold: int = 10_000
    payload_m: int | None = None


@dataclass(frozen=True)
class _QuantSearch:
    """Search-time quantization options (rescore with the original vectors, oversampling)."""

    rescore: bool | None = None
    oversampling: float | None = None


@dataclass
class VectorPoint:
    """A point to upsert: integer id, vector, payload."""

    id: int
    vector: Sequence[float]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class Hit:
    """A search result."""

    id: int
    score: float
    payload: dict[str, Any] | None = None


class VectorStore:
    """Adapter interface; the base owns measurement and error capture."""

    kind = "abstract"
    embedded = False

    def __init__(self, collection: str) -> None:
        self.collection = collection

    # --- public, measured -----------------------------------------------------------------
    def search(
        self,
        vector: Sequence[float],
        *,
        limit: int = 20,
        workspace_id: str | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        with_payload: bool = True,
        rescore: bool | None = None,
        oversampling: float | None = None,
    ) -> list[Hit]:
        """Nearest neighbours of ``vector`` (cosine), optionally filtered by ``workspaceId``.

        ``rescore`` and ``oversampling`` apply to quantized collections only (None = the
        engine's default: Qdrant Edge 0.9 does not rescore int8 unless asked).
        """
        if hnsw_ef is not None and hnsw_ef < 1:
            raise ConfigError(f"hnsw_ef must be >= 1, got {hnsw_ef}")
        quant = (
            _QuantSearch(rescore, oversampling)
            if rescore is not None or oversampling is not None
            else None
        )
        with measure("vector_search", backend=self.kind):
            try:
                return self._search(
                    vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant
                )
            except (ConfigError, BackendUnavailable):
                raise
            except Exception as exc:
                raise BackendUnavailable("qdrant", f"search failed: {exc}") from exc

    def search_batch(
        self,
        vectors: Sequence[Any],
        *,
        limit: int = 20,
        workspace_id: str | None = None,
        hnsw_ef: int | None = None,
        exact: bool = False,
        with_payload: bool = False,
        rescore: bool | None = None,
        oversampling: float | None = None,
    ) -> list[list[Hit]]:
        """Several searches in one call (one ``vector_search_batch`` span); results in order.

        ``vectors`` holds one query vector each (a sequence of floats or a 1-d array).

        Adapters with a native batch API (Qdrant Edge ``query_batch``, the server's
        ``query_batch_points``) plan the batch as a whole; the base falls back to a loop.
        """
        if hnsw_ef is not None and hnsw_ef < 1:
            raise ConfigError(f"hnsw_ef must be >= 1, got {hnsw_ef}")
        quant = (
            _QuantSearch(rescore, oversampling)
            if rescore is not None or oversampling is not None
            else None
        )
        with measure("vector_search_batch", backend=self.kind, size=len(vectors)):
            try:
                return self._search_batch(
                    vectors, limit, workspace_id, hnsw_ef, exact, with_payload, quant
                )
            except (ConfigError, BackendUnavailable):
                raise
            except Exception as exc:
                raise BackendUnavailable("qdrant", f"batch search failed: {exc}") from exc

    def upsert(self, points: Sequence[VectorPoint], *, batch_size: int = 1000) -> int:
        """Upsert ``points`` in batches of ``batch_size``; returns the number written."""
        n = 0
        with measure("vector_upsert", backend=self.kind):
            for i in range(0, len(points), batch_size):
                chunk = points[i : i + batch_size]
                self._upsert(chunk)
                n += len(chunk)
        return n

    # --- adapter operations -----------------------------------------------------------------
    def _search(
        self, vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[Hit]:
        raise NotImplementedError

    def _search_batch(
        self, vectors, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[list[Hit]]:
        return [
            self._search(v, limit, workspace_id, hnsw_ef, exact, with_payload, quant)
            for v in vectors
        ]

    def _upsert(self, points: Sequence[VectorPoint]) -> None:
        raise NotImplementedError

    def create_payload_index(self, field_name: str) -> None:
        """Create a keyword payload index on ``field_name`` now (e.g. after an HNSW build)."""
        raise NotImplementedError

    def ensure_collection(
        self,
        dim: int,
        hnsw: HnswParams | None = None,
        payload_indexes: Sequence[str] = ("workspaceId", "tier"),
        quantization: str | None = None,
    ) -> bool:
        """Create the collection if missing (payload indexes before any HNSW build).

        ``payload_indexes=()`` creates none; ``quantization`` is None/"none" or "int8".
        Returns True when it was created.
        """
        raise NotImplementedError

    def optimize(self) -> None:
        """Build indexes now (blocking)."""

    def count(self) -> int:
        raise NotImplementedError

    def info(self) -> dict[str, Any]:
        """points, indexed_vectors, segments, payload_indexes, and adapter extras."""
        raise NotImplementedError

    def health(self) -> bool:
        try:
            self.count()
            return True
        except Exception:
            return False

    def drop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    @property
    def url(self) -> str:
        return ""


VECTOR_STORES: Registry[type[VectorStore]] = Registry("vector store")


class EdgeVectorStore(VectorStore):
    """Qdrant Edge shard on disk under ``path`` (the same Rust engine as the server)."""

    kind = "qdrant-edge"
    embedded = True

    def __init__(
        self,
        path: Path | str,
        collection: str = "axon-contexts",
        max_search_threads: int | None = None,
    ) -> None:
        super().__init__(collection)
        import qdrant_edge as qe

        self._qe = qe
        self.path = Path(path)
        self.max_search_threads = max_search_threads
        self._shard: Any = None
        self._lock = threading.Lock()
        if (self.path / "edge_config.json").exists() or any(self.path.glob("segments*")):
            try:
                self._shard = qe.EdgeShard.load(str(self.path))
            except Exception as exc:
                if "WouldBlock" in str(exc) or "WAL" in str(exc):
                    # A shard is opened by one process at a time (its WAL is locked).
                    raise BackendUnavailable(
                        "qdrant",
                        (
                            f"the Qdrant Edge shard at {self.path} is in use by another process "
                            "(an `axon-lab serve` or a notebook's embedded Axon); stop it, or give this "
                            "process its own AXON_DATA_DIR, or point AXON_QDRANT_URL at a server"
                        ),
                    ) from None
                raise

    @property
    def url(self) -> str:
        return f"edge://{self.path}"

    @property
    def shard(self) -> Any:
        if self._shard is None:
            raise BackendUnavailable(
                "qdrant", f"no Qdrant Edge shard at {self.path}; run `axon-lab corpus build`"
            )
        return self._shard

    def exists(self) -> bool:
        return self._shard is not None

    def ensure_collection(
        self,
        dim: int,
        hnsw: HnswParams | None = None,
        payload_indexes: Sequence[str] = ("workspaceId", "tier"),
        quantization: str | None = None,
    ) -> bool:
        if self._shard is not None:
            return False
        qe = self._qe
        hnsw = hnsw or HnswParams()
        quant = None
        if quantization == "int8":
            quant = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, always_ram=True)
        elif quantization not in (None, "none"):
            raise ConfigError(f"quantization must be none or int8, got {quantization!r}")
        cfg = qe.EdgeConfig(
            vectors={
                VECTOR_NAME: qe.EdgeVectorParams(
                    size=dim,
                    distance=qe.Distance.Cosine,
                    hnsw_config=qe.HnswIndexConfig(
                        m=hnsw.m,
                        ef_construct=hnsw.ef_construct,
                        full_scan_threshold=hnsw.full_scan_threshold,
                        payload_m=hnsw.payload_m,
                    ),
                    quantization_config=quant,
                )
            },
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=hnsw.indexing_threshold),
            max_search_threads=self.max_search_threads,
        )
        self.path.mkdir(parents=True, exist_ok=True)
        self._shard = qe.EdgeShard.create(str(self.path), cfg)
        for name in payload_indexes:
            self._shard.update(
                qe.UpdateOperation.create_field_index(name, qe.PayloadSchemaType.Keyword)
            )
        return True

    def _upsert(self, points: Sequence[VectorPoint]) -> None:
        qe = self._qe
        ops = [
            qe.Point(int(p.id), {VECTOR_NAME: _floats(p.vector)}, dict(p.payload)) for p in points
        ]
        self.shard.update(qe.UpdateOperation.upsert_points(ops))

    def optimize(self) -> None:
        with measure("vector_optimize", backend=self.kind):
            self.shard.optimize()
            self.shard.flush()

    def _request(
        self, vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> Any:
        qe = self._qe
        flt = None
        if workspace_id is not None:
            flt = qe.Filter(
                must=[qe.FieldCondition(key="workspaceId", match=qe.MatchValue(workspace_id))]
            )
        return qe.QueryRequest(
            query=qe.Query.Nearest(_floats(vector), using=VECTOR_NAME),
            limit=limit,
            filter=flt,
            with_payload=with_payload,
            params=qe.SearchParams(
                hnsw_ef=hnsw_ef,
                exact=exact,
                quantization=None
                if quant is None
                else qe.QuantizationSearchParams(
                    rescore=quant.rescore, oversampling=quant.oversampling
                ),
            ),
        )

    def _search(
        self, vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[Hit]:
        req = self._request(vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant)
        return [Hit(int(p.id), float(p.score), p.payload) for p in self.shard.query(req)]

    def _search_batch(
        self, vectors, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[list[Hit]]:
        reqs = [
            self._request(v, limit, workspace_id, hnsw_ef, exact, with_payload, quant)
            for v in vectors
        ]
        res = self.shard.query_batch(self._qe.QueryBatchRequest(reqs))
        return [[Hit(int(p.id), float(p.score), p.payload) for p in r] for r in res]

    def create_payload_index(self, field_name: str) -> None:
        qe = self._qe
        self.shard.update(
            qe.UpdateOperation.create_field_index(field_name, qe.PayloadSchemaType.Keyword)
        )

    def count(self) -> int:
        return int(self.shard.info().points_count)

    def info(self) -> dict[str, Any]:
        """Counts plus on-disk sizes.

        ``disk_bytes`` is the apparent size (Qdrant preallocates sparse files, so it
        overstates); ``disk_allocated_bytes`` is what the files really occupy;
        ``hnsw_bytes`` is the HNSW graph alone; ``hnsw_segments`` counts segments whose
        index is HNSW (read from each segment's ``segment.json``; None if unreadable).
        """
        i = self.shard.info()
        return {
            "points": int(i.points_count),
            "indexed_vectors": int(i.indexed_vectors_count),
            "segments": int(i.segments_count),
            "payload_indexes": sorted(i.payload_schema),
            "disk_bytes": _dir_size(self.path),
            "disk_allocated_bytes": _dir_size(self.path, allocated=True),
            "hnsw_bytes": sum(
                _dir_size(d, allocated=True) for d in self.path.glob("segments/*/vector_index-*")
            ),
            "hnsw_segments": _hnsw_segments(self.path),
        }

    def health(self) -> bool:
        return self._shard is not None and super().health()

    def drop(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)

    def close(self) -> None:
        if self._shard is not None:
            try:
                self._shard.close()
            finally:
                self._shard = None


class ServerVectorStore(VectorStore):
    """A Qdrant server through qdrant-client (HTTP); collection per ``collection``."""

    kind = "qdrant-server"

    def __init__(
        self,
        url: str,
        collection: str = "axon-contexts",
        api_key: str | None = None,
        timeout: float = 10.0,
    ) -> None:
        super().__init__(collection)
        from qdrant_client import QdrantClient

        self._url = url
        self.client = QdrantClient(url=url, api_key=api_key, timeout=int(max(1, timeout)))

    @property
    def url(self) -> str:
        return redact_text(self._url)

    def exists(self) -> bool:
        return bool(self.client.collection_exists(self.collection))

    def ensure_collection(
        self,
        dim: int,
        hnsw: HnswParams | None = None,
        payload_indexes: Sequence[str] = ("workspaceId", "tier"),
        quantization: str | None = None,
    ) -> bool:
        from qdrant_client import models as m

        if self.exists():
            return False
        hnsw = hnsw or HnswParams()
        quant = None
        if quantization == "int8":
            quant = m.ScalarQuantization(
                scalar=m.ScalarQuantizationConfig(type=m.ScalarType.INT8, always_ram=True)
            )
        elif quantization not in (None, "none"):
            raise ConfigError(f"quantization must be none or int8, got {quantization!r}")
        self.client.create_collection(
            self.collection,
            vectors_config={VECTOR_NAME: m.VectorParams(size=dim, distance=m.Distance.COSINE)},
            hnsw_config=m.HnswConfigDiff(
                m=hnsw.m,
                ef_construct=hnsw.ef_construct,
                full_scan_threshold=hnsw.full_scan_threshold,
                payload_m=hnsw.payload_m,
            ),
            optimizers_config=m.OptimizersConfigDiff(indexing_threshold=hnsw.indexing_threshold),
            quantization_config=quant,
        )
        for name in payload_indexes:
            self.client.create_payload_index(
                self.collection, name, m.PayloadSchemaType.KEYWORD, wait=True
            )
        return True

    def _upsert(self, points: Sequence[VectorPoint]) -> None:
        from qdrant_client import models as m

        self.client.upsert(
            self.collection,
            wait=True,
            points=[
                m.PointStruct(
                    id=int(p.id), vector={VECTOR_NAME: _floats(p.vector)}, payload=dict(p.payload)
                )
                for p in points
            ],
        )

    def optimize(self) -> None:
        # A server optimizes in the background; wait until the collection is green.
        import time

        from qdrant_client import models as m

        with measure("vector_optimize", backend=self.kind):
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                info = self.client.get_collection(self.collection)
                if info.status == m.CollectionStatus.GREEN:
                    return
                time.sleep(0.5)

    def _search(
        self, vector, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[Hit]:
        from qdrant_client import models as m

        flt = None
        if workspace_id is not None:
            flt = m.Filter(
                must=[m.FieldCondition(key="workspaceId", match=m.MatchValue(value=workspace_id))]
            )
        res = self.client.query_points(
            self.collection,
            query=_floats(vector),
            using=VECTOR_NAME,
            limit=limit,
            query_filter=flt,
            with_payload=with_payload,
            search_params=_server_params(m, hnsw_ef, exact, quant),
        )
        return [Hit(int(p.id), float(p.score), p.payload) for p in res.points]

    def _search_batch(
        self, vectors, limit, workspace_id, hnsw_ef, exact, with_payload, quant=None
    ) -> list[list[Hit]]:
        from qdrant_client import models as m

        flt = None
        if workspace_id is not None:
            flt = m.Filter(
                must=[m.FieldCondition(key="workspaceId", match=m.MatchValue(value=workspace_id))]
            )
        reqs = [
            m.QueryRequest(
                query=_floats(v),
                using=VECTOR_NAME,
                limit=limit,
                filter=flt,
                with_payload=with_payload,
                params=_server_params(m, hnsw_ef, exact, quant),
            )
            for v in vectors
        ]
        res = self.client.query_batch_points(self.collection, requests=reqs)
        return [[Hit(int(p.id), float(p.score), p.payload) for p in r.points] for r in res]

    def create_payload_index(self, field_name: str) -> None:
        from qdrant_client import models as m

        self.client.create_payload_index(
            self.collection, field_name, m.PayloadSchemaType.KEYWORD, wait=True
        )

    def count(self) -> int:
        return int(self.client.count(self.collection, exact=True).count)

    def info(self) -> dict[str, Any]:
        i = self.client.get_collection(self.collection)
        return {
            "points": int(i.points_count or 0),
            "indexed_vectors": int(i.indexed_vectors_count or 0),
            "segments": int(i.segments_count or 0),
            "payload_indexes": sorted((i.payload_schema or {}).keys()),
            "status": str(i.status),
        }

    def drop(self) -> None:
        self.client.delete_collection(self.collection)

    def close(self) -> None:
        self.client.close()


VECTOR_STORES.register("edge", EdgeVectorStore)
VECTOR_STORES.register("server", ServerVectorStore)


def _server_params(m: Any, hnsw_ef: int | None, exact: bool, quant: _QuantSearch | None) -> Any:
    q = (
        None
        if quant is None
        else m.QuantizationSearchParams(rescore=quant.rescore, oversampling=quant.oversampling)
    )
    return m.SearchParams(hnsw_ef=hnsw_ef, exact=exact, quantization=q)


def _floats(v: Sequence[float]) -> list[float]:
    """A vector as a list of Python floats (for arrays, ``tolist`` is ~10x faster than a loop)."""
    if hasattr(v, "tolist"):
        import numpy as np

        return np.asarray(v, dtype=np.float64).tolist()
    return [float(x) for x in v]


def _dir_size(path: Path, *, allocated: bool = False) -> int:
    """Bytes under ``path``: apparent sizes, or blocks really allocated (sparse files count less)."""
    if not path.exists():
        return 0
    files = [f.stat() for f in path.rglob("*") if f.is_file()]
    return sum(st.st_blocks * 512 if allocated else st.st_size for st in files)


def _hnsw_segments(path: Path) -> int | None:
    """Number of segments of an Edge shard whose vector index is HNSW (None if unreadable)."""
    import json

    try:
        n = 0
        for cfg in path.glob("segments/*/segment.json"):
            vectors = json.loads(cfg.read_text())["config"]["vector_data"]
            n += any(v.get("index", {}).get("type") == "hnsw" for v in vectors.values())
        return n
    except (OSError, ValueError, KeyError, AttributeError):
        return None
