"""The asyncio load engine: open-loop (arrival schedule, bounded pool) and closed-loop (VUs) drivers.

One engine instance runs one plan on its own event loop in its own thread (so it works the
same from a terminal, a test or a Jupyter kernel whose loop is already running). Everything
on the request path is callback-driven — no task or future per request — so one Python
process can drive thousands of requests per second with sub-millisecond timing error.

Open loop (wrk2/k6 arrival-rate style): requests are due at their scheduled *intended* start
whatever happened to earlier ones. A due request takes an idle connection, or opens one while
the pool is below ``connections``, or else waits in a FIFO backlog (``queued``) until a
connection frees up — its response time still counts from the intended start, so a server
stall shows in ``http_req_duration`` while ``http_req_service_duration`` shows only the time on
the wire. A backlog beyond ``max_backlog`` drops requests (counted, never silently).

Closed loop (autocannon/k6 VUs): each VU owns one connection and sends its next request when
the previous one ends (plus think time); ``ramping-vus`` adds and retires VUs as the stages say
(a retiring VU finishes its request first, like k6's graceful ramp-down).

Engine interface (what :class:`~axon_lab.load.runner.LoadRunner` needs from an entry of
:data:`ENGINES`, e.g. a later ``locust`` engine):

* ``Engine(plan: Plan, sink: RecordSink, *, use_uvloop: bool)``;
* ``run() -> EngineOutcome`` — blocking, called on a worker thread; one
  :meth:`RecordSink.add <axon_lab.load.records.RecordSink.add>` per request (times in ns since
  the engine's start); raises :class:`~axon_lab.errors.BackendUnavailable` when the target
  refuses the very first connection;
* ``request_stop(reason)`` — thread-safe; the run ends soon, in-flight requests recorded as
  ``interrupted``;
* ``progress() -> dict`` — ``elapsed_s, sent, done, errors, inflight, backlog, dropped, vus,
  late`` for the progress bar.

The runner owns everything else: the output directory, the summary, thresholds, exit codes.
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import math
import ssl as _ssl
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from axon_lab.errors import BackendUnavailable
from axon_lab.load.checks import Check, CheckResponse
from axon_lab.load.http import (
    CONNECT_ERROR,
    DROPPED,
    HTTP_ERROR,
    INTERRUPTED,
    IO_ERROR,
    OK,
    TIMEOUT,
    Endpoint,
    Exchange,
    HttpConnection,
    open_connection,
)
from axon_lab.load.profiles import ResponseReader
from axon_lab.load.records import RecordSink
from axon_lab.load.selfcheck import ClientMonitor
from axon_lab.load.servertiming import CACHE_HEADERS, parse_cache_headers, parse_server_timing
from axon_lab.load.shapes import Shape
from axon_lab.registry import Registry

_now = time.perf_counter_ns

#: Load engines by name (``--engine``); a later one (locust) registers itself here.
ENGINES: Registry[Any] = Registry("load engine")


def sse_numbers(events: list[tuple[int, str]], sent_ns: int) -> dict[str, float]:
    """Per-request stream figures from timed Server-Sent Events (ms from the request's send).

    ``sse.<type>``: the first event of each type (``sse.analysis``, ``sse.retrieval``,
    ``sse.llm-start``, ``sse.complete``...); ``sse.ttft``: the first ``llm-chunk`` (time to
    first token); ``sse.itl``: the mean gap between consecutive ``llm-chunk`` events of the
    request (inter-chunk latency, as GuideLLM and llmperf report it per request),
    ``sse.itl_max`` its largest gap; ``sse.chunks``: the number of ``llm-chunk`` events;
    ``sse.chunks_per_s``: chunks after the first per second of streaming; ``sse.errors``:
    ``error`` events.
    """
    out: dict[str, float] = {}
    chunks: list[int] = []
    errors = 0
    for t, kind in events:
        key = "sse." + kind
        if key not in out:
            out[key] = (t - sent_ns) / 1e6
        if kind == "llm-chunk":
            chunks.append(t)
        elif kind == "error":
            errors += 1
    out["sse.chunks"] = float(len(chunks))
    out["sse.errors"] = float(errors)
    if chunks:
        out["sse.ttft"] = (chunks[0] - sent_ns) / 1e6
    if len(chunks) > 1:
        gaps = [(b - a) / 1e6 for a, b in zip(chunks, chunks[1:], strict=False)]
        out["sse.itl"] = sum(gaps) / len(gaps)
        out["sse.itl_max"] = max(gaps)
        span = (chunks[-1] - chunks[0]) / 1e9
        if span > 0:
            out["sse.chunks_per_s"] = (len(chunks) - 1) / span
    return out


@dataclass(frozen=True)
class Plan:
    """Everything an engine needs to run, already validated.

    Parameters
    ----------
    target
        Server and path (the path of the first payload).
    payloads
        Serialised requests; request ``seq`` uses ``payloads[seq % len(payloads)]``.
    shape
        The load shape.
    connections
        Open loop: the connection-pool bound. Closed loop: ignored (VUs come from the shape).
    timeout_s
        Per-request timeout (from the actual send).
    max_requests
        Hard bound on requests scheduled.
    grace_s
        After the shape ends, how long in-flight/queued requests may still finish.
    late_ms
        A request sent more than this after its intended start is counted late.
    checks
        Response checks.
    keep_body
        Keep bodies (checks need them).
    keep_error_body
        Keep the bodies of error responses only (the profile reads error codes from them).
    seed
        Seed of Poisson arrivals.
    max_backlog
        Open loop: requests allowed to wait for a connection before new ones are dropped.
    abort_unreachable_s
        Stop (incomplete) when every attempt has failed for this long.
    cache_headers
        Response headers parsed as cache outcomes (when no ``reader`` is given).
    sse
        Time the Server-Sent Events of streaming responses (``sse.*`` columns, see
        :func:`sse_numbers`).
    reader
        Reads stage timings, cache outcomes, rate-limit headers and error codes from a
        response, as the target profile declares (:mod:`axon_lab.load.profiles`); ``None``:
        ``Server-Timing`` and ``cache_headers`` only.
    connect_timeout_s
        TCP (and TLS) connect timeout.
    """

    target: Endpoint
    payloads: Sequence[bytes]
    shape: Shape
    connections: int
    timeout_s: float = 30.0
    max_requests: int = 1_000_000
    grace_s: float = 30.0
    late_ms: float = 10.0
    checks: tuple[Check, ...] = ()
    keep_body: bool = False
    keep_error_body: bool = False
    seed: int | None = 0
    max_backlog: int = 100_000
    abort_unreachable_s: float = 5.0
    cache_headers: tuple[str, ...] = CACHE_HEADERS
    connect_timeout_s: float = 10.0
    ssl_context: _ssl.SSLContext | None = None
    reader: ResponseReader | None = None
    sse: bool = False


@dataclass
class EngineOutcome:
    """What an engine reports besides the records."""

    started_utc: str
    elapsed_s: float
    window_s: float
    scheduled: int
    stop_reason: str | None
    monitor: ClientMonitor
    checks: dict[str, dict[str, int]] = field(default_factory=dict)
    connections_opened: int = 0
    peak_vus: int = 0
    #: What ended the load phase: ``duration`` (the shape ran out), ``max_requests`` or ``stop``.
    ended_by: str = "duration"


class _VU:
    __slots__ = ("vid", "conn", "retiring", "done", "handle", "connecting")

    def __init__(self, vid: int) -> None:
        self.vid = vid
        self.conn: HttpConnection | None = None
        self.retiring = False
        self.done = False
        self.handle: asyncio.TimerHandle | None = None
        self.connecting = False


class AsyncioEngine:
    """Runs a :class:`Plan` on a fresh event loop (uvloop when available and asked for).

    Parameters
    ----------
    plan
        What to run.
    sink
        Where records go.
    use_uvloop
        Use uvloop if it is installed.
    """

    name = "asyncio"

    def __init__(self, plan: Plan, sink: RecordSink, *, use_uvloop: bool = True) -> None:
        self.plan = plan
        self.sink = sink
        self.use_uvloop = use_uvloop
        self.loop: asyncio.AbstractEventLoop | None = None
        # progress counters (read from other threads; plain ints are safe under the GIL)
        self.sent = 0
        self.done = 0
        self.errors = 0
        self.inflight = 0
        self.dropped = 0
        self.late = 0
        self.stop_reason: str | None = None
        self.started = False
        self.t0_ns = 0
        self._seq = 0
        self._issuing = True
        self._finished: asyncio.Future[None] | None = None
        self._busy: set[HttpConnection] = set()
        self._idle: list[HttpConnection] = []
        self._backlog: deque[Exchange] = deque()
        self._connecting: set[asyncio.Task[Any]] = set()
        self._n_conns = 0
        self._conn_ids = 0
        self._vus: list[_VU] = []
        self._active_vus = 0
        self._peak_vus = 0
        self._last_progress_ns = 0
        self._failures_since_progress = 0
        self._last_failure = ""
        self._check_counts: dict[str, list[int]] = {c.name: [0, 0] for c in plan.checks}
        self._late_ns = int(plan.late_ms * 1e6)
        self._timeout_ns = int(plan.timeout_s * 1e9)
        self._periodic: dict[str, asyncio.TimerHandle] = {}
        self._monitor = ClientMonitor()
        self._end_ns = 0
        self._window_s = plan.shape.duration_s
        self._ended_by = "duration"
        self._scheduled = 0
        self._grace_handle: asyncio.TimerHandle | None = None
        self._all_conns: set[HttpConnection] = set()

    # -- thread-facing API ------------------------------------------------------------------
    def run(self) -> EngineOutcome:
        """Run the plan to completion on a new event loop (blocking; call from a worker thread)."""
        loop: asyncio.AbstractEventLoop
        if self.use_uvloop:
            try:
                import uvloop

                loop = uvloop.new_event_loop()
            except ImportError:  # pragma: no cover - uvloop is installed with uvicorn[standard]
                loop = asyncio.new_event_loop()
        else:
            loop = asyncio.new_event_loop()
        self.loop = loop
        try:
            return loop.run_until_complete(self._main())
        finally:
            try:
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    def request_stop(self, reason: str) -> None:
        """Stop as soon as possible (thread-safe): in-flight requests are recorded interrupted."""
        loop = self.loop
        if loop is None or loop.is_closed():
            self.stop_reason = self.stop_reason or reason
            return
        try:
            loop.call_soon_threadsafe(self._stop_now, reason)
        except RuntimeError:  # loop closed in between
            pass

    def progress(self) -> dict[str, Any]:
        """Counters for a progress bar."""
        elapsed = (_now() - self.t0_ns) / 1e9 if self.started else 0.0
        return {
            "elapsed_s": elapsed,
            "sent": self.sent,
            "done": self.done,
            "errors": self.errors,
            "inflight": self.inflight,
            "backlog": len(self._backlog),
            "dropped": self.dropped,
            "vus": self._active_vus,
            "late": self.late,
        }

    # -- main -----------------------------------------------------------------------------------
    async def _main(self) -> EngineOutcome:
        loop = asyncio.get_running_loop()
        self._finished = loop.create_future()
        plan = self.plan
        # Preflight: the target must accept a connection before the clock starts.
        try:
            first = await self._connect()
        except (TimeoutError, OSError) as exc:
            raise BackendUnavailable(
                "load target", f"{plan.target.base_url}: {_err(exc)}"
            ) from None
        warm = [first]
        if plan.shape.is_open:
            # Open a few more pool connections before the clock starts, so the first requests
            # do not pay connect time as schedule lag (the pool still grows on demand).
            extra = await asyncio.gather(
                *(self._connect() for _ in range(min(plan.connections, 16) - 1)),
                return_exceptions=True,
            )
            warm += [c for c in extra if isinstance(c, HttpConnection)]
        self.t0_ns = _now()
        started_utc = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        self.started = True
        self._last_progress_ns = self.t0_ns
        self._monitor.start()
        # Flush once a second: each flush briefly takes the GIL on the writer thread, and a
        # killed run loses at most the last second of records.
        self._every("flush", 1.0, self.sink.flush)
        self._every("sweep", min(0.05, plan.timeout_s / 10), self._sweep)
        if plan.shape.is_open:
            self._idle.extend(warm)
            self._open_start(len(warm))
        else:
            self._closed_start(first)
        if self.stop_reason is not None:  # stopped before we even began
            self._stop_now(self.stop_reason)
        await self._finished
        end_ns = self._end_ns or _now()
        for h in self._periodic.values():
            h.cancel()
        for conn in list(self._all_conns):
            conn.close()
        await self._monitor.stop()
        await asyncio.sleep(0)  # let transports close
        self.sink.flush()
        return EngineOutcome(
            started_utc=started_utc,
            elapsed_s=max(1e-9, (end_ns - self.t0_ns) / 1e9),
            window_s=self._window_s,
            ended_by="stop" if self.stop_reason else self._ended_by,
            scheduled=self._scheduled,
            stop_reason=self.stop_reason,
            monitor=self._monitor,
            checks={k: {"passes": v[0], "fails": v[1]} for k, v in self._check_counts.items()},
            connections_opened=self._conn_ids,
            peak_vus=self._peak_vus,
        )

    def _every(self, key: str, interval: float, fn: Any) -> None:
        loop = asyncio.get_running_loop()

        def tick() -> None:
            fn()
            self._periodic[key] = loop.call_later(interval, tick)

        self._periodic[key] = loop.call_later(interval, tick)

    def _track(self, task: asyncio.Task[Any]) -> None:
        """Remember a connect task; when it is gone the run may be able to finish."""
        self._connecting.add(task)

        def gone(t: asyncio.Task[Any]) -> None:
            self._connecting.discard(t)
            self._maybe_finish()

        task.add_done_callback(gone)

    async def _connect(self) -> HttpConnection:
        plan = self.plan
        conn = await open_connection(
            plan.target,
            self._conn_ids,
            self._on_done,
            self._on_lost,
            keep_body=plan.keep_body,
            keep_error_body=plan.keep_error_body,
            ssl_context=plan.ssl_context,
            timeout_s=plan.connect_timeout_s,
            sse=plan.sse,
        )
        self._conn_ids += 1
        self._all_conns.add(conn)
        self._progress_ok()
        return conn

    # -- recording --------------------------------------------------------------------------------
    def _record(self, ex: Exchange) -> None:
        t0 = self.t0_ns
        outcome = ex.outcome
        sent = ex.sent_ns - t0 if ex.sent_ns >= 0 else -1
        late = ex.sent_ns >= 0 and ex.sent_ns - ex.intended_ns > self._late_ns
        passed = failed = 0
        checks = self.plan.checks
        if checks and outcome not in (DROPPED, INTERRUPTED):
            service = (ex.end_ns - ex.sent_ns) / 1e6 if ex.sent_ns >= 0 else math.nan
            resp = CheckResponse(
                ex.status, ex.headers, ex.body, service, (ex.end_ns - ex.intended_ns) / 1e6
            )
            counts = self._check_counts
            for c in checks:
                if c(resp):
                    passed += 1
                    counts[c.name][0] += 1
                else:
                    failed += 1
                    counts[c.name][1] += 1
        stages = caches = numbers = texts = None
        error = ex.error
        headers = ex.headers
        reader = self.plan.reader
        if reader is not None:
            if headers or ex.body:
                facts = reader(ex.status, headers, ex.body)
                stages, caches, numbers, texts = (
                    facts.stages,
                    facts.caches,
                    facts.numbers,
                    facts.texts,
                )
                if facts.error and error is None and outcome == HTTP_ERROR:
                    error = facts.error
        if ex.events and ex.sent_ns >= 0:
            numbers = {**(numbers or {}), **sse_numbers(ex.events, ex.sent_ns)}
            if ex.sse_complete is not None and reader is not None and not stages:
                stages = reader.complete_event_stages(ex.sse_complete)
        if reader is None and headers:
            st = headers.get("server-timing")
            if st:
                stages = parse_server_timing(st)
            for h in self.plan.cache_headers:
                if h in headers:
                    caches = parse_cache_headers(headers, self.plan.cache_headers)
                    break
        self.sink.add(
            ex.seq,
            ex.stage,
            ex.conn_id,
            ex.intended_ns - t0,
            sent,
            ex.first_ns - t0 if ex.first_ns >= 0 else -1,
            ex.end_ns - t0 if ex.end_ns >= 0 else -1,
            ex.connect_ns,
            ex.status,
            outcome,
            error,
            ex.nbytes,
            ex.queued,
            late,
            -1 if not checks else passed,
            -1 if not checks else failed,
            stages,
            caches,
            numbers,
            texts,
        )
        self.done += 1
        if late:
            self.late += 1
        if outcome == OK or outcome == HTTP_ERROR:
            self._progress_ok()
            if outcome == HTTP_ERROR:
                self.errors += 1
        elif outcome == DROPPED:
            self.dropped += 1
        elif outcome != INTERRUPTED:
            self.errors += 1
            self._failures_since_progress += 1
            self._last_failure = ex.error or "error"

    def _progress_ok(self) -> None:
        self._last_progress_ns = _now()
        self._failures_since_progress = 0

    def _fail_unsent(self, ex: Exchange, outcome: int, error: str) -> None:
        ex.outcome = outcome
        ex.error = error
        ex.end_ns = _now()
        self._record(ex)

    # -- connection callbacks ------------------------------------------------------------------
    def _on_done(self, conn: HttpConnection, ex: Exchange) -> None:
        self._busy.discard(conn)
        self.inflight -= 1
        if (
            ex.outcome == IO_ERROR
            and ex.first_ns < 0
            and conn.requests > 0
            and not ex.retried
            and self._issuing
        ):
            # A reused keep-alive connection the server had already closed: retry once on a
            # fresh connection, as browsers and HTTP libraries do. The clock keeps running.
            ex.retried = True
            ex.sent_ns = ex.first_ns = ex.end_ns = -1
            ex.status, ex.error, ex.outcome, ex.headers = 0, None, OK, {}
            self._redo(conn, ex)
            return
        self._record(ex)
        owner = getattr(conn, "owner", None)
        if owner is not None:
            self._vu_after(owner, conn)
        else:
            self._release(conn)
        self._maybe_finish()

    def _on_lost(self, conn: HttpConnection) -> None:
        self._all_conns.discard(conn)
        self._busy.discard(conn)
        if conn in self._idle:
            self._idle.remove(conn)
            self._n_conns -= 1
            self._pump()

    def _redo(self, conn: HttpConnection, ex: Exchange) -> None:
        owner = getattr(conn, "owner", None)
        if owner is not None:
            owner.conn = None
            self._vu_connect_then(owner, ex)
        else:
            self._n_conns -= 1
            self._backlog.appendleft(ex)
            self._pump()

    def _send(self, conn: HttpConnection, ex: Exchange) -> None:
        self._busy.add(conn)
        self.inflight += 1
        self.sent += 1
        conn.send(ex, self.plan.payloads[ex.payload])

    def _sweep(self) -> None:
        now = _now()
        limit = self._timeout_ns
        for conn in list(self._busy):
            ex = conn.current
            if ex is not None and now - ex.sent_ns > limit:
                conn.abort(TIMEOUT, f"timeout after {self.plan.timeout_s:g}s")
        if (
            self._failures_since_progress
            and now - self._last_progress_ns > self.plan.abort_unreachable_s * 1e9
        ):
            self._stop_now(
                f"target unreachable for {self.plan.abort_unreachable_s:g}s ({self._last_failure})"
            )

    # -- open loop --------------------------------------------------------------------------------
    def _open_start(self, warm: int) -> None:
        plan = self.plan
        self._pool_max = max(1, plan.connections)
        self._n_conns = warm  # the connections opened before the start
        self._batches = plan.shape.arrivals(seed=plan.seed)
        self._bounds = plan.shape.boundaries
        self._batch_ns: np.ndarray = np.empty(0, dtype=np.int64)
        self._batch_stage: np.ndarray = np.empty(0, dtype=np.int64)
        self._bi = 0
        self._tick()

    def _next_batch(self) -> bool:
        if self._seq >= self.plan.max_requests:
            return False
        try:
            times = next(self._batches)
        except StopIteration:
            return False
        room = self.plan.max_requests - self._seq
        if room <= 0:
            return False
        times = times[:room]
        self._batch_ns = self.t0_ns + np.rint(times * 1e9).astype(np.int64)
        self._batch_stage = np.clip(
            np.searchsorted(self._bounds, times, side="right") - 1,
            0,
            len(self.plan.shape.stages) - 1,
        )
        self._bi = 0
        return True

    def _tick(self) -> None:
        if not self._issuing:
            return
        now = _now()
        payloads = len(self.plan.payloads)
        while True:
            if self._bi >= len(self._batch_ns):
                if not self._next_batch():
                    self._schedule_done()
                    return
            due = int(self._batch_ns[self._bi])
            if due > now:
                break
            ex = Exchange(self._seq, due, self._seq % payloads, int(self._batch_stage[self._bi]))
            self._seq += 1
            self._scheduled += 1
            self._bi += 1
            self._dispatch(ex)
            if not self._issuing:
                return
            now = _now()
        loop = self.loop
        assert loop is not None
        loop.call_later((due - now) / 1e9, self._tick)

    def _dispatch(self, ex: Exchange) -> None:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed or not conn.reusable:
                self._n_conns -= 1
                conn.close()
                continue
            self._send(conn, ex)
            return
        if self._n_conns < self._pool_max:
            self._n_conns += 1
            self._open_then_send(ex)
            return
        if len(self._backlog) >= self.plan.max_backlog:
            self._fail_unsent(ex, DROPPED, "backlog full")
            return
        ex.queued = True
        self._backlog.append(ex)

    def _open_then_send(self, ex: Exchange) -> None:
        loop = self.loop
        assert loop is not None
        t_start = _now()

        async def go() -> None:
            try:
                conn = await self._connect()
            except (TimeoutError, OSError) as exc:
                self._n_conns -= 1
                ex.connect_ns = _now() - t_start
                self._fail_unsent(ex, CONNECT_ERROR, f"connect: {_err(exc)}")
                loop.call_later(0.05, self._pump)
                self._maybe_finish()
                return
            ex.connect_ns = _now() - t_start
            if not self._issuing and self.stop_reason is not None:
                self._n_conns -= 1
                conn.close()
                self._fail_unsent(ex, INTERRUPTED, self.stop_reason)
                self._maybe_finish()
                return
            self._send(conn, ex)

        self._track(loop.create_task(go()))

    def _release(self, conn: HttpConnection) -> None:
        if conn.closed or not conn.reusable:
            self._n_conns -= 1
            conn.close()
            self._pump()
            return
        if self._backlog and (self._issuing or self.stop_reason is None):
            self._send(conn, self._backlog.popleft())
            return
        self._idle.append(conn)

    def _pump(self) -> None:
        """Send queued requests while the pool has room (after a connection was lost)."""
        if self.plan.shape.is_open:
            while self._backlog and (self._idle or self._n_conns < self._pool_max):
                if self.stop_reason is not None:
                    return
                self._dispatch(self._backlog.popleft())

    def _schedule_done(self) -> None:
        """No more requests will be scheduled: wait for the rest within the grace period."""
        if not self._issuing:
            return
        self._issuing = False
        loop = self.loop
        assert loop is not None
        last = (_now() - self.t0_ns) / 1e9
        if self._seq >= self.plan.max_requests:
            self._ended_by = "max_requests"
            self._window_s = min(self._window_s, max(last, 1e-3))
        self._grace_handle = loop.call_later(self.plan.grace_s, self._grace_over)
        self._maybe_finish()

    def _grace_over(self) -> None:
        for ex in list(self._backlog):
            self._fail_unsent(ex, DROPPED, "not sent before the end of the grace period")
        self._backlog.clear()
        for conn in list(self._busy):
            conn.abort(INTERRUPTED, "still running at the end of the grace period")
        self._cancel_connecting()
        self._maybe_finish(force=True)

    def _stop_now(self, reason: str) -> None:
        if self._finished is None or self._finished.done():
            return
        self.stop_reason = self.stop_reason or reason
        self._issuing = False
        for vu in self._vus:
            if vu.handle is not None:
                vu.handle.cancel()
        for ex in list(self._backlog):
            self._fail_unsent(ex, INTERRUPTED, reason)
        self._backlog.clear()
        for conn in list(self._busy):
            conn.abort(INTERRUPTED, reason)
        self._cancel_connecting()
        self._maybe_finish(force=True)

    def _cancel_connecting(self) -> None:
        for task in list(self._connecting):
            task.cancel()

    def _maybe_finish(self, force: bool = False) -> None:
        fut = self._finished
        if fut is None or fut.done() or self._issuing:
            return
        if force or (
            not self._busy
            and not self._backlog
            and not self._connecting
            and not any(v.connecting for v in self._vus)
        ):
            self._end_ns = _now()
            if self._grace_handle is not None:
                self._grace_handle.cancel()
            fut.set_result(None)

    # -- closed loop ------------------------------------------------------------------------------
    def _closed_start(self, first: HttpConnection) -> None:
        shape = self.plan.shape
        self._spare = [first]
        self._ramp()
        if shape.executor != "constant-vus":
            self._every("ramp", 0.05, self._ramp)
        loop = self.loop
        assert loop is not None
        loop.call_later(shape.duration_s, self._closed_time_up)

    def _closed_time_up(self) -> None:
        for vu in self._vus:
            if vu.handle is not None:  # thinking: end now
                vu.handle.cancel()
                vu.handle = None
                self._vu_retire(vu)
        self._schedule_done()

    def _ramp(self) -> None:
        if not self._issuing:
            return
        t = (_now() - self.t0_ns) / 1e9
        want = int(math.floor(self.plan.shape.target_at(t) + 0.5))
        active = [v for v in self._vus if not v.done and not v.retiring]
        while len(active) < want:
            vu = _VU(len(self._vus))
            self._vus.append(vu)
            active.append(vu)
            self._active_vus += 1
            self._peak_vus = max(self._peak_vus, self._active_vus)
            conn = self._spare.pop() if self._spare else None
            if conn is not None and not conn.closed:
                vu.conn = conn
                conn.owner = vu  # type: ignore[attr-defined]
                self._vu_issue(vu, _now())
            else:
                self._vu_connect_then(vu, None)
        while len(active) > want:
            vu = active.pop()
            vu.retiring = True
            if vu.handle is not None:  # thinking: retire now
                vu.handle.cancel()
                vu.handle = None
                self._vu_retire(vu)

    def _vu_retire(self, vu: _VU) -> None:
        if vu.done:
            return
        vu.done = True
        self._active_vus -= 1
        if vu.conn is not None:
            vu.conn.close()
            vu.conn = None
        self._maybe_finish()

    def _vu_issue(self, vu: _VU, intended_ns: int) -> None:
        vu.handle = None
        if vu.retiring or not self._issuing:
            self._vu_retire(vu)
            return
        if self._seq >= self.plan.max_requests:
            self._vu_retire(vu)
            self._schedule_done()
            return
        t = (intended_ns - self.t0_ns) / 1e9
        ex = Exchange(
            self._seq, intended_ns, self._seq % len(self.plan.payloads), self.plan.shape.stage_at(t)
        )
        self._seq += 1
        self._scheduled += 1
        conn = vu.conn
        if conn is None or conn.closed or not conn.reusable:
            if conn is not None:
                conn.close()
            vu.conn = None
            self._vu_connect_then(vu, ex)
            return
        self._send(conn, ex)

    def _vu_after(self, vu: _VU, conn: HttpConnection) -> None:
        if not conn.reusable or conn.closed:
            conn.close()
            vu.conn = None
        if vu.retiring or not self._issuing:
            self._vu_retire(vu)
            return
        think = self.plan.shape.think_time_s
        loop = self.loop
        assert loop is not None
        now = _now()
        if think > 0:
            vu.handle = loop.call_later(think, self._vu_issue, vu, now + int(think * 1e9))
        else:
            self._vu_issue(vu, now)

    def _vu_connect_then(self, vu: _VU, ex: Exchange | None) -> None:
        loop = self.loop
        assert loop is not None
        vu.connecting = True
        t_start = _now()

        async def go() -> None:
            try:
                conn = await self._connect()
            except (TimeoutError, OSError) as exc:
                vu.connecting = False
                if ex is not None:
                    ex.connect_ns = _now() - t_start
                    self._fail_unsent(ex, CONNECT_ERROR, f"connect: {_err(exc)}")
                else:
                    self._failures_since_progress += 1
                    self._last_failure = f"connect: {_err(exc)}"
                # back off before the VU tries again, so a dead server is not hammered
                if self._issuing and not vu.retiring:
                    vu.handle = loop.call_later(0.1, self._vu_issue, vu, _now() + 100_000_000)
                else:
                    self._vu_retire(vu)
                return
            vu.connecting = False
            conn.owner = vu  # type: ignore[attr-defined]
            vu.conn = conn
            if ex is None:
                self._vu_issue(vu, _now())
                return
            ex.connect_ns = _now() - t_start
            if not self._issuing and self.stop_reason is not None:
                self._fail_unsent(ex, INTERRUPTED, self.stop_reason)
                self._vu_retire(vu)
                return
            self._send(conn, ex)

        self._track(loop.create_task(go()))


def _err(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


ENGINES.register("asyncio", AsyncioEngine)
