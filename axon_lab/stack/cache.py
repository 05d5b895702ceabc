"""``Cache``: redis-py (asyncio) against a real redis-server, and the in-process L1 LRU.

Cache failures never fail a request: a Redis error or timeout counts as a failed lookup
(``lookup`` says so; ``get`` returns a miss), marks the cache ``degraded`` and opens a short
circuit: for ``cooldown_s`` every call is skipped at once instead of waiting on a dead or
frozen server, then one probe call goes through. The first success closes the circuit, so
the cache comes back by itself when Redis does (``ping`` — the health check — always probes).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from axon_lab.instrument import measure
from axon_lab.redact import redact_text


class Cache:
    """L2 cache on Redis (async). Methods never raise on Redis errors; they report misses.

    Parameters
    ----------
    url
        Redis URL (may hold a password; :attr:`url` is redacted).
    timeout_s
        Socket (read and connect) timeout per command.
    retries
        Extra attempts after a failed command (0: a miss is cheaper than a retry).
    cooldown_s
        After a failure, calls are skipped (fail fast) this long before one probe.
    owned_pid
        pid of the redis-server when the lab started it.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = 0.25,
        retries: int = 0,
        cooldown_s: float = 1.0,
        owned_pid: int | None = None,
    ) -> None:
        self._url = url
        self.owned_pid = owned_pid
        self.timeout_s = timeout_s
        self.retries = retries
        self.cooldown_s = cooldown_s
        self.client = self._client(timeout_s)
        self._retired: list[Any] = []
        self.degraded = False
        self.last_error: str | None = None
        self.errors = 0
        self.timeouts = 0
        self.skipped = 0
        self.retried = 0
        self.calls = 0
        self._open_until = 0.0
        self._probing = False
        self.last_failure_unix: float | None = None
        self.last_recovery_unix: float | None = None

    def _client(self, timeout_s: float) -> Any:
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
        from redis.exceptions import ConnectionError as RedisConnectionError

        # One immediate reconnect for a pooled connection that died with a restarted server;
        # timeouts are not retried here (``retries`` decides, at this level).
        return aredis.Redis.from_url(
            self._url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            health_check_interval=0,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )

    def configure(
        self,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        cooldown_s: float | None = None,
    ) -> None:
        """Change the policy (``PipelineOptions``); a new timeout takes a new client."""
        if retries is not None:
            self.retries = retries
        if cooldown_s is not None:
            self.cooldown_s = cooldown_s
        if timeout_s is not None and timeout_s != self.timeout_s:
            self._retired.append(self.client)  # closed in close(): commands may be in flight
            self.timeout_s = timeout_s
            self.client = self._client(timeout_s)

    @property
    def url(self) -> str:
        return redact_text(self._url)

    @property
    def state(self) -> str:
        """``closed`` (healthy), ``open`` (skipping calls) or ``half-open`` (probe due/in flight)."""
        if not self.degraded:
            return "closed"
        return "open" if time.monotonic() < self._open_until else "half-open"

    def _fail(self, exc: Exception) -> None:
        from redis.exceptions import TimeoutError as RedisTimeoutError

        if not self.degraded:
            self.last_failure_unix = time.time()
        self.degraded = True
        self.errors += 1
        if isinstance(exc, RedisTimeoutError | TimeoutError):
            self.timeouts += 1
        self.last_error = redact_text(f"{type(exc).__name__}: {exc}")
        self._open_until = time.monotonic() + self.cooldown_s

    def _ok(self) -> None:
        if self.degraded:
            self.last_recovery_unix = time.time()
        self.degraded = False
        self._open_until = 0.0

    async def _call(
        self, fn: Callable[[], Awaitable[Any]], *, probe: bool = False
    ) -> tuple[bool, Any]:
        """Run one command under the policy: ``(ok, value)``; never raises."""
        self.calls += 1
        is_probe = False
        if self.degraded and not probe:
            if time.monotonic() < self._open_until or self._probing:
                self.skipped += 1
                return False, None
            self._probing = is_probe = True  # this call probes; the others keep skipping meanwhile
        try:
            for attempt in range(self.retries + 1):
                if attempt:
                    self.retried += 1
                try:
                    value = await fn()
                except Exception as exc:  # redis errors, timeouts, connection refused
                    self._fail(exc)
                    continue
                self._ok()
                return True, value
            return False, None
        finally:
            if is_probe:
                self._probing = False

    async def lookup(self, key: str) -> tuple[bytes | None, bool]:
        """``(value, ok)``: ``ok`` is False when Redis failed or was skipped (not a miss)."""
        with measure("redis_get"):
            ok, value = await self._call(lambda: self.client.get(key))
        return value, ok

    async def get(self, key: str) -> bytes | None:
        """The value, or ``None`` on a miss and on any Redis failure."""
        value, _ = await self.lookup(key)
        return value

    async def set(self, key: str, value: bytes, ttl_s: int | None) -> bool:
        with measure("redis_set"):
            ok, _ = await self._call(lambda: self.client.set(key, value, ex=ttl_s))
        return ok

    async def mget(self, keys: Sequence[str]) -> list[bytes | None]:
        ok, values = await self._call(lambda: self.client.mget(list(keys)))
        return list(values) if ok else [None] * len(keys)

    async def ping(self) -> bool:
        """A real round trip, whatever the circuit's state (a success closes it)."""
        ok, value = await self._call(self.client.ping, probe=True)
        return bool(ok and value)

    def stats(self) -> dict[str, Any]:
        """Policy, state and counters (``/metrics``)."""
        return {
            "state": self.state,
            "degraded": self.degraded,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "cooldown_s": self.cooldown_s,
            "calls": self.calls,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "skipped": self.skipped,
            "retried": self.retried,
            "last_error": self.last_error,
            "last_failure_unix": self.last_failure_unix,
            "last_recovery_unix": self.last_recovery_unix,
        }

    async def flush(self) -> None:
        await self.client.flushdb()

    async def close(self) -> None:
        for client in (*self._retired, self.client):
            try:
                await client.aclose()
            except Exception:  # closing a client of a dead server must not fail a shutdown
                pass
        self._retired.clear()


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
