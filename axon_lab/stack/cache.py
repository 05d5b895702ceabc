"""``Cache``: redis-py (asyncio) against a real redis-server, and the in-process L1 LRU.

Cache failures never fail a request: a Redis error counts as a miss, flags the cache as
degraded (``degraded`` / ``last_error``) and the next call tries again, so the cache comes
back by itself when Redis does.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from axon_lab.instrument import measure
from axon_lab.redact import redact_text


class Cache:
    """L2 cache on Redis (async). Methods never raise on Redis errors; they report misses."""

    kind = "redis"

    def __init__(self, url: str, *, timeout_s: float = 0.25, owned_pid: int | None = None) -> None:
        import redis.asyncio as aredis

        self._url = url
        self.timeout_s = timeout_s
        self.owned_pid = owned_pid
        self.client = aredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            health_check_interval=0, retry_on_timeout=False,
        )
        self.degraded = False
        self.last_error: str | None = None
        self.errors = 0

    @property
    def url(self) -> str:
        return redact_text(self._url)

    def _fail(self, exc: Exception) -> None:
        self.degraded = True
        self.errors += 1
        self.last_error = f"{type(exc).__name__}: {exc}"

    def _ok(self) -> None:
        self.degraded = False

    async def get(self, key: str) -> bytes | None:
        with measure("redis_get"):
            try:
                v = await self.client.get(key)
                self._ok()
                return v
            except Exception as exc:  # redis errors, timeouts, connection refused
                self._fail(exc)
                return None

    async def set(self, key: str, value: bytes, ttl_s: int | None) -> bool:
        with measure("redis_set"):
            try:
                await self.client.set(key, value, ex=ttl_s)
                self._ok()
                return True
            except Exception as exc:
                self._fail(exc)
                return False

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        try:
            v = await self.client.mget(list(keys))
            self._ok()
            return list(v)
        except Exception as exc:
            self._fail(exc)
            return [None] * len(keys)

    async def ping(self) -> bool:
        try:
            ok = bool(await self.client.ping())
            self._ok()
            return ok
        except Exception as exc:
            self._fail(exc)
            return False

    async def flush(self) -> None:
        await self.client.flushdb()

    async def close(self) -> None:
        await self.client.aclose()


class LRUCache:
    """L1: in-memory LRU with a TTL (the guide's ``max: 100, ttl: 60000``)."""

    def __init__(self, max_entries: int = 100, ttl_s: float = 60.0) -> None:
        self.max_entries = max_entries
        self.ttl_s = ttl_s
        self._d: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> Any | None:
        item = self._d.get(key)
        if item is None or item[0] < time.monotonic():
            if item is not None:
                del self._d[key]
            self.misses += 1
            return None
        self._d.move_to_end(key)
        self.hits += 1
        return item[1]

    def set(self, key: str, value: Any) -> None:
        self._d[key] = (time.monotonic() + self.ttl_s, value)
        self._d.move_to_end(key)
        while len(self._d) > self.max_entries:
            self._d.popitem(last=False)

    def clear(self) -> None:
        self._d.clear()

    def __len__(self) -> int:
        return len(self._d)
