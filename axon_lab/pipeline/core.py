"""The Axon orchestrator: collection → analysis → retrieval → synthesis → injection → LLM →
post-processing, every stage a ``measure()`` span, every cache level reported.

Reliability: every store call goes through a :class:`BackendGuard` (own bounded thread pool,
timeout per attempt, retries, circuit breaker), so a down or hung vector store or document
store gives a 503 naming it within ``PipelineOptions.backend_policies()[...]["deadline_s"]``,
never a hang; Redis failures only degrade the request (served without the cache).

Streaming: :meth:`Pipeline.process_stream` runs the same stages as :meth:`Pipeline.process` and
yields the real Axon orchestrator's stream chunks (``processStreaming`` in
``packages/middleware/src/orchestrator.ts``) as each stage starts and ends; the LLM stage
streams its text as ``llm-chunk`` events.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import functools
import hashlib
import json
import math
import random
import re
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from axon_lab import embeddings, tokens
from axon_lab.errors import AxonLabError, BackendUnavailable
from axon_lab.instrument import measure, server_timing, trace
from axon_lab.pipeline import analyzer
from axon_lab.pipeline.flight import SingleFlight
from axon_lab.pipeline.options import LLMOptions, PipelineOptions
from axon_lab.redact import redact_text
from axon_lab.stack import LRUCache, Stack

#: Documented request limits (the API answers 413 above MAX_PROMPT_CHARS).
MAX_PROMPT_CHARS = 32_000
MAX_WORKSPACE_CHARS = 128
TIER_WEIGHT = {"workspace": 1.0, "project": 0.9, "global": 0.8}
SYSTEM_TEMPLATE = (
    "You are Axon, a coding assistant. Use the context below when it is relevant and cite it "
    "as [n].\n\n## Context\n{context}\n\n## User\n{prompt}\n"
)


class PromptTooLarge(AxonLabError):
    """The prompt is above :data:`MAX_PROMPT_CHARS`."""


def check_prompt(prompt: str) -> None:
    """Raise :class:`PromptTooLarge` when ``prompt`` is above :data:`MAX_PROMPT_CHARS`.

    The collection stage calls it; the API also calls it before it starts a stream, so a
    streamed request too gets its 413 (a stream's status is sent before any stage runs).
    """
    if len(prompt) > MAX_PROMPT_CHARS:
        raise PromptTooLarge(
            f"prompt has {len(prompt)} characters; the limit is {MAX_PROMPT_CHARS}"
        )


# --- streaming: the real Axon orchestrator's chunks ------------------------------------------
#: Callback a stage calls when it starts or ends (streaming): ``emit(type, data)``.
Emit = Callable[[str, Any], None]

#: ``complete`` event ``latency`` keys (the real API's ``latencyBreakdown`` names) → span names.
STREAM_LATENCY_KEYS = {
    "collection": "collection",
    "analysis": "analysis",
    "retrieval": "retrieval",
    "synthesis": "synthesis",
    "injection": "injection",
    "llm": "llm",
    "postProcessing": "postprocessing",
}


def stream_event(kind: str, data: Any) -> dict[str, Any]:
    """One chunk of the real orchestrator's stream: ``{"type", "data", "timestamp"}``.

    ``timestamp`` is ISO 8601 in UTC with milliseconds and a ``Z``, like JavaScript's
    ``Date.toJSON`` (what ``JSON.stringify`` writes for the real chunk's ``new Date()``).
    """
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {"type": kind, "data": data, "timestamp": now}


def stream_error_message(exc: BaseException) -> str:
    """What a stream's ``error`` event says: the lab's own errors (a backend down, a prompt too
    large) by their message, redacted; anything else only by its type (never a traceback).
    """
    if isinstance(exc, AxonLabError):
        return redact_text(str(exc))
    return f"internal error: {type(exc).__name__}"


def split_chunks(text: str, n: int) -> list[str]:
    """``text`` cut at word starts into at most ``n`` pieces of about as many words each.

    The pieces join back to ``text`` exactly (whitespace included); an empty or blank text
    gives no piece.
    """
    words = re.findall(r"\s*\S+\s*", text)
    n = min(n, len(words))
    return ["".join(words[i * len(words) // n : (i + 1) * len(words) // n]) for i in range(n)]


def chunk_offsets_ms(latency_ms: float, n: int, ttft_share: float) -> list[float]:
    """When each of ``n`` chunks arrives, in ms after the LLM call starts.

    The first after ``ttft_share * latency_ms`` (time to first token), the last at
    ``latency_ms``, the others evenly between, so the gaps sum to the whole latency; a single
    chunk arrives at ``latency_ms``.
    """
    if n <= 1:
        return [latency_ms] * n
    first = latency_ms * ttft_share
    gap = (latency_ms - first) / (n - 1)
    return [first + i * gap for i in range(n)]


def _silent(kind: str, data: Any) -> None:
    """The non-streaming ``emit``: nobody listens."""


@dataclass
class StageResult:
    """What one request produced, plus its trace (for Server-Timing and timelines)."""

    body: dict[str, Any]
    server_timing: str
    cache: dict[str, str]
    timeline: list[dict[str, Any]] = field(default_factory=list)
    degraded: list[str] = field(default_factory=list)


# --- serialisation for Redis values ----------------------------------------------------------
def encode(obj: Any, fmt: str) -> bytes:
    """Encode for Redis: ``json`` (UTF-8) or ``msgpack``."""
    if fmt == "msgpack":
        import msgpack

        return msgpack.packb(obj, use_bin_type=True)
    return json.dumps(obj, separators=(",", ":")).encode()


def decode(raw: bytes, fmt: str) -> Any:
    if fmt == "msgpack":
        import msgpack

        return msgpack.unpackb(raw, raw=False)
    return json.loads(raw)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


# --- reliability: faults (lab experiments) and the guard around every store call -------------
FAULT_MODES = ("stop", "pause", "latency")


class Fault:
    """A fault injected into a store's calls, in the guard's worker thread, before the real call.

    This is a latency-injecting wrapper for the in-process stores (Qdrant Edge, the embedded
    MongoDB stand-in): the pipeline's timeouts, retries and circuit breaker see it exactly as
    they would see a slow, frozen or refusing server, but the store itself is untouched.

    Parameters
    ----------
    mode
        ``stop``: every call fails at once (connection refused); ``pause``: every call hangs
        until the fault is cleared (like a SIGSTOPped server), at most ``max_pause_s``;
        ``latency``: every call waits ``latency_ms`` first.
    latency_ms
        Added latency (``latency`` mode).
    max_pause_s
        Bound on a paused call (so no thread waits forever).
    """

    def __init__(self, mode: str, *, latency_ms: float = 0.0, max_pause_s: float = 300.0) -> None:
        if mode not in FAULT_MODES:
            raise ValueError(f"unknown fault mode {mode!r}; valid: {', '.join(FAULT_MODES)}")
        if mode == "latency" and not latency_ms > 0:
            raise ValueError("latency mode needs latency_ms > 0")
        self.mode = mode
        self.latency_ms = float(latency_ms)
        self.max_pause_s = float(max_pause_s)
        self.since_unix = time.time()
        self._released = threading.Event()

    def apply(self, backend: str) -> None:
        """Called in the worker thread before the store call."""
        if self._released.is_set():
            return
        if self.mode == "stop":
            raise ConnectionRefusedError(f"{backend}: connection refused (injected fault: stopped)")
        if self.mode == "pause":
            self._released.wait(self.max_pause_s)
        else:
            self._released.wait(self.latency_ms / 1000.0)

    def release(self) -> None:
        """End the fault: paused calls continue, delayed calls stop waiting."""
        self._released.set()

    def to_dict(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "latency_ms": self.latency_ms if self.mode == "latency" else None,
            "since_unix": self.since_unix,
        }


class BackendGuard:
    """Every call to one store: own thread pool, timeout per attempt, retries, circuit breaker.

    * A call runs in the guard's pool (at most ``max_inflight`` at once, including calls that
      timed out but whose thread is still stuck in the store); beyond that it fails fast, so a
      hung store can neither queue requests forever nor take the threads the rest of the
      pipeline needs.
    * Each attempt is bounded by ``timeout_s``; a failed or timed-out attempt is retried
      ``retries`` times after ``retry_backoff_s * n``.
    * After ``breaker_failures`` consecutive failed attempts the circuit opens: calls fail at
      once for ``breaker_cooldown_s``, then one probe call goes through; its success (or a
      successful health probe) closes the circuit.

    Every failure is raised as :class:`BackendUnavailable` naming the backend.
    """

    def __init__(
        self,
        name: str,
        *,
        timeout_s: float,
        retries: int = 0,
        retry_backoff_s: float = 0.05,
        breaker_failures: int = 5,
        breaker_cooldown_s: float = 1.0,
        max_inflight: int = 8,
    ) -> None:
        self.name = name
        self.fault: Fault | None = None
        self._lock = threading.Lock()
        self._inflight = 0
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self.max_inflight = 0
        self.configure(
            timeout_s=timeout_s,
            retries=retries,
            retry_backoff_s=retry_backoff_s,
            breaker_failures=breaker_failures,
            breaker_cooldown_s=breaker_cooldown_s,
            max_inflight=max_inflight,
        )
        self.state = "closed"
        self._open_until = 0.0
        self._consecutive = 0
        self._probing = False
        self.calls = self.ok = self.failures = self.timeouts = self.retried = self.rejected = 0
        self.last_error: str | None = None
        self.opened_unix: float | None = None
        self.closed_unix: float | None = None

    def configure(
        self,
        *,
        timeout_s: float,
        retries: int,
        retry_backoff_s: float,
        breaker_failures: int,
        breaker_cooldown_s: float,
        max_inflight: int,
    ) -> None:
        """Apply a policy (``PipelineOptions``); a new in-flight bound gets a new pool."""
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.retry_backoff_s = float(retry_backoff_s)
        self.breaker_failures = int(breaker_failures)
        self.breaker_cooldown_s = float(breaker_cooldown_s)
        if max_inflight != self.max_inflight or self._executor is None:
            old = self._executor
            self.max_inflight = int(max_inflight)
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.max_inflight, thread_name_prefix=f"axon-{self.name}"
            )
            if old is not None:
                old.shutdown(wait=False)

    @property
    def inflight(self) -> int:
        """Calls submitted and not finished (a timed-out call counts until its thread returns)."""
        return self._inflight

    # -- circuit ----------------------------------------------------------------------------
    def _admit(self) -> bool:
        """Raise when the circuit is open; return True when this call is the half-open probe."""
        if self.state == "closed":
            return False
        if self.state == "open" and time.monotonic() >= self._open_until:
            self.state = "half-open"
        if self.state == "half-open" and not self._probing:
            self._probing = True
            return True
        self.rejected += 1
        wait = max(0.0, self._open_until - time.monotonic())
        raise BackendUnavailable(
            self.name,
            f"circuit open after {self._consecutive} consecutive failures "
            f"(last: {self.last_error}); next probe in {wait:.1f}s",
        )

    def _success(self) -> None:
        self.ok += 1
        self._consecutive = 0
        if self.state != "closed":
            self.state = "closed"
            self.closed_unix = time.time()

    def _failure(self, problem: str, *, probe: bool) -> None:
        self.failures += 1
        self._consecutive += 1
        self.last_error = problem
        if probe or (self.state == "closed" and self._consecutive >= self.breaker_failures):
            if self.state == "closed":
                self.opened_unix = time.time()
            self.state = "open"
            self._open_until = time.monotonic() + self.breaker_cooldown_s

    # -- calls ------------------------------------------------------------------------------
    def _submit(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> asyncio.Future:
        if self._inflight >= self.max_inflight:
            self.rejected += 1
            raise BackendUnavailable(
                self.name,
                f"{self._inflight} calls still in flight (limit {self.max_inflight}): "
                "the store is hung or overloaded",
            )
        fault = self.fault
        ctx = contextvars.copy_context()  # spans measured in the store land in this request's trace
        call = functools.partial(fn, *args, **kwargs)
        name = self.name

        def run() -> Any:
            if fault is not None:
                fault.apply(name)
            return ctx.run(call)

        def done(_: concurrent.futures.Future) -> None:
            with self._lock:
                self._inflight -= 1

        assert self._executor is not None
        with self._lock:
            self._inflight += 1
        try:
            cf = self._executor.submit(run)
        except RuntimeError:  # pool shut down (server stopping)
            with self._lock:
                self._inflight -= 1
            raise BackendUnavailable(self.name, "shutting down") from None
        cf.add_done_callback(done)  # also runs when a queued call is cancelled by a timeout
        return asyncio.wrap_future(cf)

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` under the policy; raises :class:`BackendUnavailable`."""
        self.calls += 1
        probe = self._admit()
        attempts = 1 if probe else self.retries + 1
        problem, made = "no attempt made", 0
        try:
            for attempt in range(attempts):
                if attempt:
                    if self.state == "open":  # opened meanwhile (other requests): stop here
                        break
                    self.retried += 1
                    await asyncio.sleep(self.retry_backoff_s * attempt)
                made += 1
                fut = self._submit(fn, args, kwargs)
                try:
                    result = await asyncio.wait_for(fut, self.timeout_s)
                except TimeoutError:
                    self.timeouts += 1
                    problem = f"timed out after {self.timeout_s:g}s"
                except BackendUnavailable as exc:
                    problem = exc.problem
                except Exception as exc:  # the store failed to answer: refused, reset, bad reply
                    problem = f"{type(exc).__name__}: {exc}"
                else:
                    self._success()
                    return result
                self._failure(problem, probe=probe)
        finally:
            if probe:
                self._probing = False
        tries = f" ({made} attempts)" if made > 1 else ""
        raise BackendUnavailable(self.name, f"{problem}{tries}")

    async def probe(self, fn: Callable[[], bool], timeout_s: float) -> bool:
        """A health check through the guard's pool (not counted, not blocked by the circuit);
        a success closes an open circuit.
        """
        try:
            ok = bool(await asyncio.wait_for(self._submit(fn, (), {}), timeout_s))
        except Exception:
            return False
        if ok and self.state != "closed":
            self._consecutive = 0
            self.state = "closed"
            self.closed_unix = time.time()
        return ok

    def set_fault(self, fault: Fault | None) -> None:
        """Inject (or with ``None`` clear) a fault; clearing releases paused calls."""
        old, self.fault = self.fault, fault
        if old is not None:
            old.release()

    def stats(self) -> dict[str, Any]:
        """Policy, state and counters (``/metrics``)."""
        return {
            "state": self.state,
            "timeout_s": self.timeout_s,
            "retries": self.retries,
            "retry_backoff_s": self.retry_backoff_s,
            "breaker_failures": self.breaker_failures,
            "breaker_cooldown_s": self.breaker_cooldown_s,
            "max_inflight": self.max_inflight,
            "inflight": self._inflight,
            "calls": self.calls,
            "ok": self.ok,
            "failures": self.failures,
            "timeouts": self.timeouts,
            "retried": self.retried,
            "rejected": self.rejected,
            "last_error": self.last_error,
            "opened_unix": self.opened_unix,
            "closed_unix": self.closed_unix,
            "fault": self.fault.to_dict() if self.fault else None,
        }

    def close(self) -> None:
        """Release any fault and stop the pool (stuck threads are not waited for)."""
        self.set_fault(None)
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)


async def _drip(
    text: str, latency_ms: float, llm: LLMOptions, on_chunk: Callable[[str], None]
) -> None:
    """The simulated LLM, streaming: ``text`` in pieces (:func:`split_chunks`) at the times of
    :func:`chunk_offsets_ms`, each awaited against one start time so sleep overshoots do not add
    up: the call lasts the drawn latency, as without streaming.
    """
    pieces = split_chunks(text, llm.stream_chunks)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for piece, at_ms in zip(
        pieces, chunk_offsets_ms(latency_ms, len(pieces), llm.ttft_share), strict=True
    ):
        await asyncio.sleep(max(0.0, start + at_ms / 1000 - loop.time()))
        on_chunk(piece)
    if not pieces:
        await asyncio.sleep(latency_ms / 1000)


class Pipeline:
    """One Axon instance over a :class:`~axon_lab.stack.Stack`.

    ``await pipeline.process(prompt, workspace_id, source)`` runs every stage and returns a
    :class:`StageResult`; ``pipeline.process_stream(...)`` runs the same stages yielding the
    real Axon stream's chunks; ``metrics()`` gives the guide's ``getMetrics()`` (counts, error
    rate, per-stage percentiles from bounded histograms).
    """

    def __init__(self, stack: Stack, options: PipelineOptions | None = None) -> None:
        self.stack = stack
        self.options = options or PipelineOptions()
        self.l1 = LRUCache(self.options.l1_max_entries, self.options.l1_ttl_s)
        self._known_workspaces: set[str] | None = None
        self._known_modules: frozenset[str] = frozenset()
        self._rng = random.Random(self.options.llm.seed)
        self.requests = 0
        self.errors = 0
        self.cache_counts: dict[str, dict[str, int]] = {}
        self.started = time.time()
        self._llm_client: Any = None
        self.guards: dict[str, BackendGuard] = {}
        self.flights = SingleFlight()
        self._apply_policies()

    def _apply_policies(self) -> None:
        """Timeouts, retries and circuit settings from the options onto each backend."""
        o = self.options
        for name, timeout, retries in (
            ("qdrant", o.vector_timeout_s, o.vector_retries),
            ("mongodb", o.document_timeout_s, o.document_retries),
        ):
            kw: dict[str, Any] = dict(
                timeout_s=timeout,
                retries=retries,
                retry_backoff_s=o.retry_backoff_s,
                breaker_failures=o.breaker_failures,
                breaker_cooldown_s=o.breaker_cooldown_s,
                max_inflight=o.backend_max_inflight,
            )
            if name in self.guards:
                self.guards[name].configure(**kw)
            else:
                self.guards[name] = BackendGuard(name, **kw)
        self.stack.cache.configure(
            timeout_s=o.redis_timeout_s, retries=o.redis_retries, cooldown_s=o.breaker_cooldown_s
        )

    def close(self) -> None:
        """Stop the backend pools (and release injected faults)."""
        for guard in self.guards.values():
            guard.close()

    # --- lifecycle ------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Load the model, intent prototypes and the workspace list before serving."""
        embeddings.model(self.options.embedding_backend)
        analyzer._prototypes(self.options.embedding_backend)
        tokens.encoding()
        self.refresh_workspaces()

    def refresh_workspaces(self) -> set[str]:
        try:
            self._known_workspaces = set(self.stack.docs.workspaces())
        except Exception:
            self._known_workspaces = None
        return self._known_workspaces or set()

    def set_options(self, options: PipelineOptions) -> None:
        """Switch knobs (clears L1 so experiments start cold)."""
        self.options = options
        if options.embedding_backend is not None:  # load a newly chosen backend now, not mid-run
            embeddings.model(options.embedding_backend)
            analyzer._prototypes(options.embedding_backend)
        self.l1 = LRUCache(options.l1_max_entries, options.l1_ttl_s)
        self._rng = random.Random(options.llm.seed)
        self._apply_policies()

    def _count_cache(self, cache: str, result: str) -> None:
        d = self.cache_counts.setdefault(cache, {})
        d[result] = d.get(result, 0) + 1

    # --- the request ----------------------------------------------------------------------
    async def process(self, prompt: str, workspace_id: str, source: str = "api") -> StageResult:
        """Process one prompt through every stage (raises BackendUnavailable on a down store)."""
        return await self._run(prompt, workspace_id, source, None)

    async def process_stream(
        self,
        prompt: str,
        workspace_id: str,
        source: str = "api",
        *,
        on_result: Callable[[StageResult], None] | None = None,
    ) -> AsyncIterator[dict[str, Any]]:
        """Process one prompt through the same stages as :meth:`process`, yielding the real Axon
        orchestrator's stream chunks (``processStreaming``) as each stage starts and ends.

        Chunks are ``{"type", "data", "timestamp"}`` (:func:`stream_event`), in this order:
        ``analysis`` (``None``, collection starts), ``analysis`` (``None``, analysis starts),
        ``analysis`` (``{"intent", "taskType"}``), ``retrieval`` (``None``), ``retrieval``
        (``{"contextsFound"}``), ``context`` (``None``), ``context`` (``{"sections"}``: the
        contexts kept by synthesis), nothing for injection, ``llm-start``, ``llm-chunk``
        (``{"content"}``, the text deltas) one or more times, ``llm-end``, then after
        post-processing ``complete``: ``{"requestId", "totalLatencyMs", "qualityScore",
        "latency"}``; ``qualityScore`` is ``None`` (this pipeline does not score answers) and
        ``latency`` is a lab extension: the stage spans in ms under the real API's
        ``latencyBreakdown`` names (:data:`STREAM_LATENCY_KEYS`; 0 for a skipped stage).

        LLM chunks: the simulated LLM cuts its text into at most ``llm.stream_chunks`` pieces
        paced over the same drawn latency as without streaming (``llm.ttft_share`` before the
        first one); ``openai`` asks the endpoint for ``"stream": true`` and passes each
        content delta on; ``off`` sends ``llm-start`` and ``llm-end`` with no ``llm-chunk``
        between (no text is generated, so there is no first token to time).

        On a failure (a backend down, a prompt too large) it yields ``error``
        (``{"error": <message>}``, :func:`stream_error_message`) and re-raises, as the real
        orchestrator does. Spans, caches and counters are those of :meth:`process`; the stages
        run in their own task (their trace never leaks into the consumer) that is cancelled
        when the consumer stops early.

        Parameters
        ----------
        prompt, workspace_id, source
            As for :meth:`process`.
        on_result
            Called with the request's :class:`StageResult` (latencies, cache outcomes) before
            ``complete`` is yielded, e.g. to record metrics.

        Yields
        ------
        dict
            One stream chunk.
        """
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def emit(kind: str, data: Any) -> None:
            queue.put_nowait(stream_event(kind, data))

        async def run() -> StageResult:
            try:
                return await self._run(prompt, workspace_id, source, emit)
            finally:
                queue.put_nowait(None)

        task = asyncio.create_task(run())
        try:
            while (event := await queue.get()) is not None:
                yield event
            res = await task
        except Exception as exc:
            yield stream_event("error", {"error": stream_error_message(exc)})
            raise
        finally:
            if not task.done():  # the consumer went away: stop the stages
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if on_result is not None:
            on_result(res)
        latency = res.body["metadata"]["latency"]
        yield stream_event(
            "complete",
            {
                "requestId": res.body["metadata"]["requestId"],
                "totalLatencyMs": latency["total"],
                "qualityScore": None,
                "latency": {k: latency.get(span, 0.0) for k, span in STREAM_LATENCY_KEYS.items()},
            },
        )

    async def _run(
        self, prompt: str, workspace_id: str, source: str, emit: Emit | None
    ) -> StageResult:
        """Every stage in order, for :meth:`process` and :meth:`process_stream`; ``emit``
        (streaming only) hears each stage start and end.
        """
        note = emit or _silent
        self.requests += 1
        t0 = time.perf_counter_ns()
        cache: dict[str, str] = {}
        notes: list[str] = []
        with trace() as tr:
            try:
                note("analysis", None)  # collection starts: the real orchestrator says so
                raw = await self._collection(prompt, workspace_id, source)
                note("analysis", None)
                analysis, qvec = await self._analysis(raw, cache)
                note("analysis", {"intent": analysis["intent"], "taskType": analysis["taskType"]})
                note("retrieval", None)
                contexts = await self._retrieval(raw, qvec, cache, notes)
                note("retrieval", {"contextsFound": len(contexts)})
                note("context", None)
                synth = await self._synthesis(contexts)
                note("context", {"sections": len(synth["included"])})
                final_prompt = await self._injection(raw, synth)
                note("llm-start", None)
                llm = await self._llm(
                    final_prompt,
                    synth,
                    None if emit is None else lambda text: note("llm-chunk", {"content": text}),
                )
                note("llm-end", None)
                result = await self._postprocess(llm, synth)
            except BaseException:
                self.errors += 1
                raise
        total_ms = (time.perf_counter_ns() - t0) / 1e6
        latency = {k: round(v, 3) for k, v in tr.durations_ms().items()}
        latency["total"] = round(total_ms, 3)
        degraded = ["redis"] if "degraded" in cache.values() or self.stack.cache.degraded else []
        if degraded:
            notes.append(
                "cache degraded: Redis unavailable, serving without L2/analysis/embedding caches"
            )
        for k, v in cache.items():
            self._count_cache(k, v)
        body = {
            "result": result,
            "analysis": analysis,
            "contexts": [
                {
                    k: c[k]
                    for k in (
                        "id",
                        "workspaceId",
                        "tier",
                        "confidence",
                        "score",
                        "content",
                        "metadata",
                    )
                    if k in c
                }
                for c in synth["included"]
            ],
            "metadata": {
                "requestId": raw["requestId"],
                "workspaceId": workspace_id,
                "source": source,
                "latency": latency,
                "cache": cache,
                "notes": notes,
                "degraded": degraded,
                "tokens": {
                    "prompt": raw["tokens"],
                    "context": synth["tokens"],
                    "final_prompt": final_prompt["tokens"],
                    "output": result["usage"]["output_tokens"],
                },
                "llm": {"mode": self.options.llm.mode},
            },
        }
        return StageResult(
            body, server_timing(tr, total_ms=total_ms), cache, tr.timeline(), degraded
        )

    # --- stages ---------------------------------------------------------------------------
    async def _collection(self, prompt: str, workspace_id: str, source: str) -> dict[str, Any]:
        with measure("collection"):
            text = " ".join(prompt.split())
            check_prompt(prompt)
            return {
                "requestId": uuid.uuid4().hex,
                "text": text,
                "workspaceId": workspace_id,
                "source": source,
                "hash": _sha(text),
                "tokens": tokens.TOKEN_COUNTERS.get(self.options.token_counter)(text),
                "receivedAt": time.time(),
            }

    async def _shared(
        self, key: str, compute: Callable[[], Awaitable[Any]], cache: dict[str, str], name: str
    ) -> Any:
        """``compute()``, shared with concurrent identical calls when ``coalesce`` is on (a
        follower's cache outcome ``name`` becomes ``inflight-hit``).
        """
        if not self.options.coalesce:
            return await compute()
        value, shared = await self.flights.do(key, compute)
        if shared:
            cache[name] = "inflight-hit"
        return value

    async def _embedding(self, text: str, key_hash: str, cache: dict[str, str]) -> np.ndarray:
        """Query embedding through the Redis embedding cache (json or msgpack)."""
        o = self.options
        with measure("embed"):
            backend = embeddings.check_backend(o.embedding_backend)
            key = f"emb:{backend}:{o.serialization}:{key_hash}"
            if o.embedding_cache:
                raw, ok = await self.stack.cache.lookup(key)
                if raw is not None:
                    cache["embedding"] = "hit"
                    return np.asarray(decode(raw, o.serialization), dtype=np.float32)
                cache["embedding"] = "miss" if ok else "degraded"
            else:
                cache["embedding"] = "off"

            async def compute() -> np.ndarray:
                vec = await asyncio.to_thread(embeddings.embed_one, text, backend)
                if o.embedding_cache:
                    await self.stack.cache.set(
                        key,
                        encode([float(x) for x in vec], o.serialization),
                        o.embedding_cache_ttl_s,
                    )
                return vec

            return await self._shared(key, compute, cache, "embedding")

    async def _analysis(
        self, raw: dict[str, Any], cache: dict[str, str]
    ) -> tuple[dict[str, Any], np.ndarray]:
        o = self.options
        with measure("analysis"):
            # The query embedding is needed by intent and by retrieval: compute it once.
            qvec = await self._embedding(raw["text"], raw["hash"], cache)
            key = f"analysis:{raw['hash']}"
            if o.analysis_cache:
                hit, ok = await self.stack.cache.lookup(key)
                if hit is not None:
                    cache["analysis"] = "hit"
                    return json.loads(hit), qvec
                cache["analysis"] = "miss" if ok else "degraded"
            else:
                cache["analysis"] = "off"
            text = raw["text"]

            async def step(name: str, fn: Any, *args: Any) -> Any:
                with measure(f"analysis.{name}"):
                    return await asyncio.to_thread(fn, *args)

            calls: list[tuple[Any, ...]] = [
                ("intent", analyzer.classify_intent, text, qvec, o.embedding_backend),
                ("task_type", analyzer.identify_task_type, text),
                ("entities", analyzer.extract_entities, text, self._known_modules),
            ]
            if o.parallel_analysis:
                intent, task, entities = await asyncio.gather(
                    *(step(n, f, *a) for n, f, *a in calls)
                )
            else:
                intent = await step(*calls[0])
                task = await step(*calls[1])
                entities = await step(*calls[2])
            analysis = {
                **intent,
                **task,
                "entities": entities,
                "mode": "parallel" if o.parallel_analysis else "sequential",
            }
            if o.analysis_cache:
                await self.stack.cache.set(
                    key, json.dumps(analysis).encode(), o.analysis_cache_ttl_s
                )
            return analysis, qvec

    async def _retrieval(
        self, raw: dict[str, Any], qvec: np.ndarray, cache: dict[str, str], notes: list[str]
    ) -> list[dict[str, Any]]:
        o = self.options
        ws = raw["workspaceId"]
        with measure("retrieval"):
            if self._known_workspaces is not None and ws not in self._known_workspaces:
                cache["context"] = "skip"
                notes.append(f"unknown workspace {ws!r}: no contexts retrieved")
                return []
            key = f"ctx:{o.fingerprint()}:{_sha(ws)}:{raw['hash']}"
            if o.l1_cache:
                hit = self.l1.get(key)
                if hit is not None:
                    cache["context"] = "l1-hit"
                    return hit
            l2_ok = True
            if o.l2_cache:
                with measure("context_cache"):
                    raw_hit, l2_ok = await self.stack.cache.lookup(key)
                if raw_hit is not None:
                    contexts = decode(raw_hit, "msgpack")
                    cache["context"] = "l2-hit"
                    if o.l1_cache:
                        self.l1.set(key, contexts)
                    return contexts
            # "degraded": the L2 lookup failed (Redis down), which is not a miss of the cache.
            cache["context"] = (
                ("miss" if l2_ok else "degraded") if (o.l1_cache or o.l2_cache) else "off"
            )

            async def compute() -> list[dict[str, Any]]:
                if o.coalesce and o.l1_cache:
                    # Double check: an identical request may have finished while this one
                    # awaited the L2 lookup (too late to share its flight, in time for L1).
                    late = self.l1.get(key)
                    if late is not None:
                        cache["context"] = "l1-hit"
                        return late
                contexts = await self._retrieve_from_stores(raw, qvec)
                if o.l1_cache:
                    self.l1.set(key, contexts)
                if o.l2_cache:
                    await self.stack.cache.set(
                        key, encode(contexts, "msgpack"), o.context_cache_ttl_s
                    )
                return contexts

            return await self._shared(key, compute, cache, "context")

    async def _retrieve_from_stores(
        self, raw: dict[str, Any], qvec: np.ndarray
    ) -> list[dict[str, Any]]:
        o = self.options
        hits = await self.guards["qdrant"].call(
            self.stack.vectors.search,
            qvec,
            limit=o.search_limit,
            workspace_id=raw["workspaceId"],
            hnsw_ef=o.hnsw_ef,
            exact=o.exact_search,
            with_payload=False,
        )
        ids = [h.id for h in hits]
        scores = {h.id: h.score for h in hits}
        docs = await self.guards["mongodb"].call(
            self.stack.docs.fetch, ids, projection=o.projection
        )
        with measure("rerank"):
            return await self._rerank(raw["text"], qvec, docs, scores)

    async def _rerank(
        self, text: str, qvec: np.ndarray, docs: list[dict[str, Any]], scores: dict[int, float]
    ) -> list[dict[str, Any]]:
        o = self.options
        words = {w.lower() for w in analyzer._WORD.findall(text) if len(w) > 2}
        if o.rerank == "embedding" and docs:
            texts = [d["content"] for d in docs]
            if o.batch_embedding:
                mat = await asyncio.to_thread(
                    functools.partial(embeddings.embed, backend=o.embedding_backend), texts
                )
            else:
                mat = np.stack(
                    [
                        await asyncio.to_thread(embeddings.embed_one, t, o.embedding_backend)
                        for t in texts
                    ]
                )
            sem = {d["_id"]: float(v @ qvec) for d, v in zip(docs, mat, strict=True)}
        else:
            sem = {d["_id"]: scores.get(d["_id"], 0.0) for d in docs}
        out = []
        for d in docs:
            cwords = {w.lower() for w in analyzer._WORD.findall(d["content"][:2000]) if len(w) > 2}
            overlap = len(words & cwords) / max(1, len(words))
            conf = float(d.get("confidence", 0.5))
            score = (
                sem[d["_id"]] * (0.7 + 0.3 * conf) * TIER_WEIGHT.get(d.get("tier", ""), 0.8)
                + 0.1 * overlap
            )
            out.append(
                {
                    "id": int(d["_id"]),
                    "workspaceId": d.get("workspaceId"),
                    "tier": d.get("tier"),
                    "confidence": conf,
                    "score": round(score, 6),
                    "vectorScore": round(scores.get(d["_id"], 0.0), 6),
                    "content": d["content"],
                    "metadata": d.get("metadata", {}),
                }
            )
        out.sort(key=lambda c: (-c["score"], c["id"]))
        return out[: o.top_k]

    async def _synthesis(self, contexts: list[dict[str, Any]]) -> dict[str, Any]:
        with measure("synthesis"):
            count = tokens.TOKEN_COUNTERS.get(self.options.token_counter)
            budget = self.options.context_token_budget
            used, included, seen = 0, [], set()
            for c in contexts:
                sig = c["content"][:120]
                if sig in seen:
                    continue
                n = count(c["content"])
                if used + n > budget:
                    continue
                seen.add(sig)
                used += n
                included.append(c)
            text = "\n\n".join(
                f"[{i}] ({c['tier']}, {c['confidence']:.2f}) {c['content']}"
                for i, c in enumerate(included, 1)
            )
            return {
                "included": included,
                "text": text,
                "tokens": used,
                "dropped": len(contexts) - len(included),
            }

    async def _injection(self, raw: dict[str, Any], synth: dict[str, Any]) -> dict[str, Any]:
        with measure("injection"):
            text = SYSTEM_TEMPLATE.format(
                context=synth["text"] or "(no context)", prompt=raw["text"]
            )
            return {
                "text": text,
                "tokens": tokens.TOKEN_COUNTERS.get(self.options.token_counter)(text),
            }

    async def _llm(
        self,
        final_prompt: dict[str, Any],
        synth: dict[str, Any],
        on_chunk: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """The LLM call; with ``on_chunk`` (streaming) each text delta is passed on as it comes."""
        llm = self.options.llm
        if llm.mode == "off":
            return {"text": "", "output_tokens": 0, "latency_ms": 0.0, "mode": "off"}
        with measure("llm"):
            if llm.mode == "openai":
                return await self._llm_openai(final_prompt, on_chunk)
            # Seeded log-normal latency; an await like a remote call, so no CPU is used.
            latency = (
                llm.median_ms * math.exp(self._rng.gauss(0.0, llm.sigma))
                + llm.per_output_token_ms * llm.output_tokens
            )
            cites = " ".join(f"[{i}]" for i in range(1, min(3, len(synth["included"])) + 1))
            first = (
                synth["included"][0]["content"].split(". ")[0]
                if synth["included"]
                else "No context found."
            )
            text = f"Based on the retrieved context {cites}: {first}.".strip()
            if on_chunk is None:
                await asyncio.sleep(latency / 1000)
            else:
                await _drip(text, latency, llm, on_chunk)
            return {
                "text": text,
                "output_tokens": llm.output_tokens,
                "latency_ms": latency,
                "mode": "simulated",
            }

    async def _llm_openai(
        self, final_prompt: dict[str, Any], on_chunk: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        import httpx

        s = self.stack.settings
        if self._llm_client is None:
            headers = (
                {"Authorization": f"Bearer {s.secret('llm_api_key')}"} if s.llm_api_key else {}
            )
            self._llm_client = httpx.AsyncClient(
                base_url=(s.secret("llm_url") or "").rstrip("/"),
                headers=headers,
                timeout=self.options.llm.timeout_s,
            )
        request = {
            "model": s.llm_model,
            "max_tokens": self.options.llm.output_tokens,
            "messages": [{"role": "user", "content": final_prompt["text"]}],
        }
        if on_chunk is not None:
            return await self._llm_openai_stream(request, on_chunk)
        try:
            r = await self._llm_client.post("/v1/chat/completions", json=request)
            r.raise_for_status()
            data = r.json()
        except Exception as exc:
            raise BackendUnavailable("llm", f"{type(exc).__name__}: {exc}") from exc
        text = data["choices"][0]["message"]["content"]
        return {
            "text": text,
            "output_tokens": data.get("usage", {}).get("completion_tokens", 0),
            "mode": "openai",
        }

    async def _llm_openai_stream(
        self, request: dict[str, Any], on_chunk: Callable[[str], None]
    ) -> dict[str, Any]:
        """``"stream": true`` on the OpenAI-compatible endpoint: its SSE ``data:`` lines carry
        ``choices[0].delta.content`` until ``[DONE]``; ``output_tokens`` comes from a ``usage``
        object when the server sends one (0 otherwise, as without streaming).
        """
        parts: list[str] = []
        usage: dict[str, Any] = {}
        try:
            async with self._llm_client.stream(
                "POST", "/v1/chat/completions", json={**request, "stream": True}
            ) as r:
                r.raise_for_status()
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, event: fields
                    payload = line[5:].strip()
                    if payload == "[DONE]":
                        break
                    doc = json.loads(payload)
                    if doc.get("error"):
                        raise RuntimeError(f"error event: {doc['error']}")
                    usage = doc.get("usage") or usage
                    choices = doc.get("choices") or [{}]
                    delta = (choices[0].get("delta") or {}).get("content")
                    if delta:
                        parts.append(delta)
                        on_chunk(delta)
        except Exception as exc:
            raise BackendUnavailable("llm", f"{type(exc).__name__}: {exc}") from exc
        return {
            "text": "".join(parts),
            "output_tokens": usage.get("completion_tokens", 0),
            "mode": "openai",
        }

    async def _postprocess(self, llm: dict[str, Any], synth: dict[str, Any]) -> dict[str, Any]:
        with measure("postprocessing"):
            import re

            cited = sorted({int(n) for n in re.findall(r"\[(\d+)\]", llm["text"])})
            citations = [
                {"n": n, "contextId": synth["included"][n - 1]["id"]}
                for n in cited
                if 0 < n <= len(synth["included"])
            ]
            return {
                "response": llm["text"].strip(),
                "citations": citations,
                "usage": {
                    "output_tokens": llm["output_tokens"],
                    "counted_tokens": tokens.TOKEN_COUNTERS.get(self.options.token_counter)(
                        llm["text"]
                    ),
                },
                "llm": llm["mode"],
            }

    # --- metrics (the guide's getMetrics) -------------------------------------------------
    #: Per-stage percentiles are recomputed at most this often: ``Sink.summary()`` holds the
    #: sink's lock while it reads every histogram (~30 ms for 30 span names here), so a client
    #: polling /metrics in a tight loop cannot stall the requests it measures.
    STAGE_SUMMARY_MAX_AGE_S = 1.0

    def stage_summary(self) -> tuple[dict[str, Any], float]:
        """Per-stage summary (cached up to :attr:`STAGE_SUMMARY_MAX_AGE_S`) and its age in s."""
        from axon_lab.instrument import SINK

        cached = getattr(self, "_stage_cache", None)
        now = time.monotonic()
        if cached is None or now - cached[0] > self.STAGE_SUMMARY_MAX_AGE_S:
            cached = self._stage_cache = (now, SINK.summary())
        return cached[1], now - cached[0]

    def metrics(self) -> dict[str, Any]:
        per, age = self.stage_summary()
        hits = {k: v for k, v in self.cache_counts.items()}
        ctx = hits.get("context", {})
        lookups = sum(
            n for r, n in ctx.items() if r in ("l1-hit", "l2-hit", "inflight-hit", "miss")
        )
        return {
            "requestCount": self.requests,
            "errorCount": self.errors,
            "errorRate": self.errors / self.requests if self.requests else 0.0,
            "uptimeSeconds": round(time.time() - self.started, 1),
            "stages": per,
            "stagesAgeSeconds": round(age, 1),
            "cache": {
                "counts": hits,
                "contextHitRate": (
                    ctx.get("l1-hit", 0) + ctx.get("l2-hit", 0) + ctx.get("inflight-hit", 0)
                )
                / lookups
                if lookups
                else None,
                "l1Entries": len(self.l1),
                "redisDegraded": self.stack.cache.degraded,
                "redisErrors": self.stack.cache.errors,
            },
            "backends": self.backend_stats(),
            "options": self.options.model_dump(),
        }

    def backend_stats(self) -> dict[str, dict[str, Any]]:
        """Per backend: the configured policy (timeouts, retries, deadline) and live counters."""
        policies = self.options.backend_policies()
        live = {"redis": self.stack.cache.stats(), **{n: g.stats() for n, g in self.guards.items()}}
        return {name: {"policy": policies[name], **live[name]} for name in policies}
