"""The backends: start/stop/health of embedded services, one small adapter per kind.

``Stack.open(settings)`` gives a ready ``cache`` (Redis), ``vectors`` (Qdrant) and ``docs``
(MongoDB or the embedded stand-in); unset URLs mean the lab provides the backend itself.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from axon_lab.config import Settings, get_settings
from axon_lab.stack.cache import Cache, LRUCache
from axon_lab.stack.documents import DocumentStore
from axon_lab.stack.redis_server import RedisServer, find_redis_server, free_port
from axon_lab.stack.vector import (
    VECTOR_STORES,
    EdgeVectorStore,
    Hit,
    HnswParams,
    ServerVectorStore,
    VectorPoint,
    VectorStore,
)

__all__ = [
    "Cache",
    "DocumentStore",
    "EdgeVectorStore",
    "Hit",
    "HnswParams",
    "LRUCache",
    "RedisServer",
    "ServerVectorStore",
    "Stack",
    "VECTOR_STORES",
    "VectorPoint",
    "VectorStore",
    "find_redis_server",
    "free_port",
    "open_vector_store",
    "open_document_store",
]


def open_vector_store(settings: Settings | None = None) -> VectorStore:
    """Qdrant server when ``AXON_QDRANT_URL`` is set, else the Edge shard under the data dir."""
    s = settings or get_settings()
    if s.qdrant_url is not None:
        return ServerVectorStore(
            s.secret("qdrant_url") or "", s.collection, s.secret("qdrant_api_key")
        )
    return EdgeVectorStore(s.data_dir / "qdrant-edge" / s.collection, s.collection)


def open_document_store(settings: Settings | None = None) -> DocumentStore:
    """Real MongoDB when ``AXON_MONGODB_URI`` is set, else the embedded stand-in (empty)."""
    s = settings or get_settings()
    if s.mongodb_uri is not None:
        return DocumentStore.connect(s.secret("mongodb_uri") or "", s.mongodb_db)
    return DocumentStore.embedded_store(s.mongodb_db)


@dataclass
class Stack:
    """The three backends plus the redis-server the lab owns (if any)."""

    settings: Settings
    cache: Cache
    vectors: VectorStore
    docs: DocumentStore
    redis_server: RedisServer | None = None

    @classmethod
    def open(cls, settings: Settings | None = None, *, redis_timeout_s: float = 0.25) -> Stack:
        """Open every backend, starting a redis-server when ``AXON_REDIS_URL`` is unset."""
        s = settings or get_settings()
        server = None
        if s.redis_url is None:
            server = RedisServer(binary=s.redis_server_bin).start()
            url = server.url
        else:
            url = s.secret("redis_url") or ""
        cache = Cache(url, timeout_s=redis_timeout_s, owned_pid=server.pid if server else None)
        return cls(s, cache, open_vector_store(s), open_document_store(s), server)

    def close(self) -> None:
        """Close clients and stop what the lab started."""
        try:
            asyncio.run(self.cache.close()) if not _loop_running() else None
        except Exception:
            pass
        self.vectors.close()
        self.docs.close()
        if self.redis_server is not None:
            self.redis_server.stop()

    async def status_async(self) -> list[dict[str, Any]]:
        """Each backend: name, kind, url (redacted), pid if lab-owned, healthy, details."""
        redis_ok = await self.cache.ping()
        vec_ok = await asyncio.to_thread(self.vectors.health)
        doc_ok = await asyncio.to_thread(self.docs.health)
        vinfo: dict[str, Any] = {}
        if vec_ok:
            try:
                vinfo = await asyncio.to_thread(self.vectors.info)
            except Exception:
                vinfo = {}
        return [
            {
                "name": "redis",
                "kind": "redis-server",
                "url": self.cache.url,
                "pid": self.redis_server.pid if self.redis_server else None,
                "owned": self.redis_server is not None,
                "healthy": redis_ok,
                "error": None if redis_ok else self.cache.last_error,
            },
            {
                "name": "qdrant",
                "kind": self.vectors.kind,
                "url": self.vectors.url,
                "pid": None,
                "owned": self.vectors.embedded,
                "healthy": vec_ok,
                "details": vinfo,
            },
            {
                "name": "mongodb",
                "kind": self.docs.kind,
                "url": self.docs.url,
                "pid": None,
                "owned": self.docs.embedded,
                "healthy": doc_ok,
                "details": {"documents": self.docs.count() if doc_ok else None},
            },
        ]

    def status(self) -> list[dict[str, Any]]:
        return asyncio.run(self.status_async())


def _loop_running() -> bool:
    try:
        asyncio.get_running_loop()
        return True
    except RuntimeError:
        return False
