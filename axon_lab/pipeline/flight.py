"""Request coalescing ("single flight"): concurrent identical cache misses share one computation.

Without it, N requests for the same new prompt that arrive together all miss the caches and all
embed the prompt and query the stores (a cache stampede); with it, the first computes and the
others wait for its result. A follower is told it shared (the pipeline reports the cache
outcome ``inflight-hit``). An error reaches every waiter; a leader that is cancelled (its client
went away) does not cancel the followers: the first of them computes instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class SingleFlight:
    """Per event loop: ``await flight.do(key, fn)`` -> ``(value, shared)``."""

    def __init__(self) -> None:
        self._calls: dict[tuple[int, str], asyncio.Future[Any]] = {}

    def __len__(self) -> int:
        return len(self._calls)

    async def do(self, key: str, fn: Callable[[], Awaitable[Any]]) -> tuple[Any, bool]:
        """Run ``fn()`` unless an identical call (same ``key``) is in flight; then share its result."""
        loop = asyncio.get_running_loop()
        k = (id(loop), key)
        while True:
            fut = self._calls.get(k)
            if fut is None:
                break
            try:
                return await asyncio.shield(fut), True
            except asyncio.CancelledError:
                if not fut.cancelled():
                    raise  # this waiter itself was cancelled
                # the leader was cancelled: compute (or follow a new leader) instead
        fut = loop.create_future()
        # Retrieve an error nobody waited for, so asyncio does not log it as never retrieved.
        fut.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._calls[k] = fut
        try:
            value = await fn()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            raise
        else:
            fut.set_result(value)
            return value, False
        finally:
            if self._calls.get(k) is fut:
                del self._calls[k]
