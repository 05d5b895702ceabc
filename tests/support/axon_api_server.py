"""A stand-in for the real Axon API (its Express app's HTTP contract) with deterministic latency.

Run it as a subprocess (``python -P tests/support/axon_api_server.py --stages llm=40 --limit 5``);
it imports only the standard library (so it starts fast) and prints ``READY <port>`` when
listening. :class:`AxonApiServer` does that for tests on a free loopback port.

The contract is the one of the real Axon (GitHub ``TheFakeCreator/Axon``, ``apps/api``: Express 5,
zod 4, express-rate-limit 8 with ``standardHeaders: true, legacyHeaders: false``). Its middleware
order is body parser, rate limiter, routes, 404 handler, error handler: the limiter applies to
every route, ``/health`` included.

Endpoints
---------
``POST /api/v1/prompts/process``
    Body ``{"prompt": str (non-empty), "workspaceId": UUID, "source": "cli"|"api"|"editor"|"chat"
    (default "api"), "metadata": {"fileName": str, "language": str, "cursorPosition":
    {"line": number, "column": number}} (optional), "stream": bool (default false)}``; any
    violation → 400 ``VALIDATION_ERROR``. Non-streaming: 200 after the sum of the seven stage
    delays, ``data.metadata.latency`` reports exactly those delays (integer ms). ``stream: true``:
    a chunked ``text/event-stream`` whose events follow the real orchestrator's order, each sent at
    its scheduled instant (``start``, ``analysis`` ×3, ``retrieval`` ×2, ``context`` ×2,
    ``llm-start``, ``llm-chunk`` × ``--chunks``, ``llm-end``, ``complete``, ``[DONE]``).
``GET /health``, ``GET /health/ready``, ``GET /health/live``
    The real bodies. Unknown routes: 404 ``NOT_FOUND`` ``Route <METHOD> <path> not found``.
``POST /__control``, ``GET /__stats`` (not part of the real API, never rate limited)
    ``{"reset": true}`` clears the limiter's counters, the statistics and the seeded generators;
    other keys change a knob at run time (``stages``, ``ttft_ms``, ``chunk_gap_ms``, ``chunks``,
    ``contexts``, ``limit``, ``window_s``, ``error_rate``, ``api_key``, ``ready``).
    ``/__stats`` returns counts per status and route, 429s, streams, in-flight maxima, the config.

Timing
------
Every delay is an absolute instant on the loop's monotonic clock computed from the request's
start (``loop.call_at``), so delays do not accumulate drift and concurrent requests do not queue
behind each other. ``epoll`` sleeps in whole milliseconds (rounded up), so the loop's selector
wakes ``--timer-spin-ms`` early and polls without blocking until the timer is due: events leave
within a few microseconds of their schedule (0 disables this, at up to 1 ms of lateness).

Rate limiter
------------
express-rate-limit's MemoryStore: a fixed window per client IP that starts at the client's first
request; every request counts (429s included). Every response carries ``RateLimit-Policy:
<limit>;w=<window s>``, ``RateLimit-Limit``, ``RateLimit-Remaining`` and ``RateLimit-Reset``
(seconds, rounded up); a 429 also carries ``Retry-After``. ``--limit 0`` disables the limiter.

Body errors
-----------
``--body-errors validation`` (default): malformed JSON on the prompt route → 400
``VALIDATION_ERROR``; a body over ``--max-body-bytes`` (10 MiB, express.json's ``'10mb'``) → 413
``PAYLOAD_TOO_LARGE``; both after the limiter. ``--body-errors express`` reproduces what the real
app does instead: express.json's parse and size errors reach the app's error handler, which turns
every error that is not an ``AppError`` into 500 ``INTERNAL_SERVER_ERROR``, before the limiter
(no RateLimit headers, not counted), on any route.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import math
import os
import random
import re
import selectors
import sys
import time
import uuid
from collections import Counter, deque
from collections.abc import Mapping
from email.utils import formatdate
from typing import Any

#: The orchestrator's seven stages, in pipeline order (the keys of ``latencyBreakdown``).
STAGES = (
    "collection",
    "analysis",
    "retrieval",
    "synthesis",
    "injection",
    "llm",
    "postProcessing",
)
#: Default stage delays (ms): small, so tests run fast.
DEFAULT_STAGES_MS = {
    "collection": 1,
    "analysis": 2,
    "retrieval": 5,
    "synthesis": 1,
    "injection": 1,
    "llm": 10,
    "postProcessing": 1,
}
#: express.json({limit: '10mb'}): the ``bytes`` package's 10 MiB.
MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_HEAD_BYTES = 64 * 1024
SOURCES = ("cli", "api", "editor", "chat")
VERSION = "0.1.0"
# zod 4's z.string().uuid(): RFC 9562 versions 1-8 with the RFC variant, plus the nil and max UUIDs.
_UUID_RE = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[89abAB][0-9a-fA-F]{3}-[0-9a-fA-F]{12}"
    r"|00000000-0000-0000-0000-000000000000|ffffffff-ffff-ffff-ffff-ffffffffffff"
)
_WORDS = (
    "Axon simulated answer: the workspace context was retrieved, synthesized and injected "
    "before the model replied."
).split()
_REASONS = {
    200: "OK",
    204: "No Content",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    413: "Payload Too Large",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
_RATE_LIMIT_BODY = {
    "success": False,
    "error": {
        "code": "RATE_LIMIT_EXCEEDED",
        "message": "Too many requests from this IP, please try again later.",
    },
}


def _error(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "error": {"code": code, "message": message}}


def _dumps(obj: object) -> bytes:
    """``JSON.stringify``: compact, UTF-8."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def _iso(t: float | None = None) -> str:
    """``new Date().toISOString()``: UTC, millisecond precision, ``Z``."""
    t = time.time() if t is None else t
    ms = int(t * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + f".{ms % 1000:03d}Z"


def parse_stages(spec: str | Mapping[str, int] | None) -> dict[str, int]:
    """Stage delays (integer ms) from ``collection=1,analysis=5,...``; unnamed stages keep defaults.

    Parameters
    ----------
    spec
        A ``name=ms`` list (names as in :data:`STAGES`, case-insensitive), a mapping, or ``None``.
    """
    out = dict(DEFAULT_STAGES_MS)
    if spec is None:
        return out
    items: list[tuple[str, str | float]] = []
    if isinstance(spec, str):
        for part in (p.strip() for p in spec.split(",")):
            if part:
                name, sep, text = part.partition("=")
                if not sep:
                    raise ValueError(f"stage {part!r} is not name=ms")
                items.append((name.strip(), text.strip()))
    else:
        items = [(str(k), v) for k, v in spec.items()]
    names = {s.lower(): s for s in STAGES}
    for name, value in items:
        key = names.get(name.lower())
        if key is None:
            raise ValueError(f"unknown stage {name!r}; stages are {', '.join(STAGES)}")
        ms = float(value)
        if ms < 0 or ms != int(ms):
            raise ValueError(f"stage {name}={value}: delays are non-negative integer ms")
        out[key] = int(ms)
    return out


def chunk_texts(n: int) -> list[str]:
    """The ``n`` deterministic ``llm-chunk`` contents (their concatenation is the response)."""
    return [(" " if k else "") + _WORDS[k % len(_WORDS)] for k in range(n)]


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")  # JSON.parse rejects NaN and Infinity


def _is_number(v: object) -> bool:
    # z.number(): finite numbers only; JSON booleans are not numbers.
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def validate_prompt_body(body: object) -> dict[str, Any] | None:
    """The zod schema of the real prompt route: the parsed request, or ``None`` when invalid.

    Unknown keys are dropped (zod strips them); ``null`` is not "absent" (``.optional()`` and
    ``.default()`` only replace ``undefined``).
    """
    if not isinstance(body, dict):
        return None
    prompt = body.get("prompt")
    if not isinstance(prompt, str) or len(prompt) < 1:
        return None
    ws = body.get("workspaceId")
    if not isinstance(ws, str) or _UUID_RE.fullmatch(ws) is None:
        return None
    source = body.get("source", "api")
    if source not in SOURCES:
        return None
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        return None
    out: dict[str, Any] = {
        "prompt": prompt,
        "workspaceId": ws,
        "source": source,
        "stream": stream,
    }
    if "metadata" in body:
        md = body["metadata"]
        if not isinstance(md, dict):
            return None
        clean: dict[str, Any] = {}
        for key in ("fileName", "language"):
            if key in md:
                if not isinstance(md[key], str):
                    return None
                clean[key] = md[key]
        if "cursorPosition" in md:
            cp = md["cursorPosition"]
            if not (isinstance(cp, dict) and _is_number(cp.get("line"))):
                return None
            if not _is_number(cp.get("column")):
                return None
            clean["cursorPosition"] = {"line": cp["line"], "column": cp["column"]}
        out["metadata"] = clean
    return out


class _EarlySelector(selectors.DefaultSelector):
    """The default selector, but it wakes ``early`` seconds before a timeout; the event loop then
    polls (timeout 0) until its timer is due, instead of sleeping up to 1 ms past it.
    """

    def __init__(self, early: float) -> None:
        super().__init__()
        self.early = early

    def select(self, timeout: float | None = None) -> list:
        if timeout is not None and timeout > 0:
            timeout = max(0.0, timeout - self.early)
        return super().select(timeout)


def _set_done(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


async def _sleep_until(when: float) -> None:
    """Sleep until the loop's clock reads ``when`` (an absolute instant: no accumulated drift)."""
    loop = asyncio.get_running_loop()
    if when <= loop.time():
        return
    fut = loop.create_future()
    handle = loop.call_at(when, _set_done, fut)
    try:
        await fut
    finally:
        handle.cancel()


class Config:
    """The server's knobs (command line, :class:`AxonApiServer`, ``POST /__control``).

    Parameters
    ----------
    stages
        Stage delays, integer ms (see :func:`parse_stages`).
    ttft_ms, chunk_gap_ms, chunks
        Streaming: delay from ``llm-start`` to the first ``llm-chunk``, gap between chunks, count.
    contexts
        ``contextUsed`` / ``contextsFound`` / ``sections`` reported.
    limit, window_s
        Rate limit per client IP and window (0: no limiter).
    error_rate, seed
        Fraction of valid prompt requests that fail (seeded, in arrival order).
    api_key
        If set, the prompt route requires ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.
    body_errors
        ``validation`` (bad JSON 400, oversize 413) or ``express`` (the real app's 500s).
    max_body_bytes
        The body parser's limit.
    """

    def __init__(
        self,
        *,
        stages: str | Mapping[str, int] | None = None,
        ttft_ms: float = 10.0,
        chunk_gap_ms: float = 2.0,
        chunks: int = 5,
        contexts: int = 3,
        limit: int = 100,
        window_s: float = 900.0,
        error_rate: float = 0.0,
        seed: int = 1,
        api_key: str | None = None,
        body_errors: str = "validation",
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.stages = parse_stages(stages)
        self.ttft_ms = float(ttft_ms)
        self.chunk_gap_ms = float(chunk_gap_ms)
        self.chunks = int(chunks)
        self.contexts = int(contexts)
        self.limit = int(limit)
        self.window_s = float(window_s)
        self.error_rate = float(error_rate)
        self.seed = int(seed)
        self.api_key = api_key or None
        self.body_errors = body_errors
        self.max_body_bytes = int(max_body_bytes)
        self.ready = True
        self.check()

    def check(self) -> None:
        if self.ttft_ms < 0 or self.chunk_gap_ms < 0 or self.chunks < 0 or self.contexts < 0:
            raise ValueError("ttft_ms, chunk_gap_ms, chunks and contexts must be >= 0")
        if self.limit < 0 or self.window_s <= 0:
            raise ValueError("limit must be >= 0 and window_s > 0")
        if not 0.0 <= self.error_rate <= 1.0:
            raise ValueError("error_rate must be in [0, 1]")
        if self.body_errors not in ("validation", "express"):
            raise ValueError("body_errors must be 'validation' or 'express'")

    def update(self, cmd: Mapping[str, Any]) -> None:
        """Apply the knobs present in ``cmd`` (a ``/__control`` body)."""
        if "stages" in cmd:
            self.stages = parse_stages(cmd["stages"])
        for key, kind in (
            ("ttft_ms", float),
            ("chunk_gap_ms", float),
            ("chunks", int),
            ("contexts", int),
            ("limit", int),
            ("window_s", float),
            ("error_rate", float),
        ):
            if key in cmd:
                setattr(self, key, kind(cmd[key]))
        if "api_key" in cmd:
            self.api_key = cmd["api_key"] or None
        if "ready" in cmd:
            self.ready = bool(cmd["ready"])
        self.check()

    def as_dict(self) -> dict[str, Any]:
        return {
            "stages": dict(self.stages),
            "ttft_ms": self.ttft_ms,
            "chunk_gap_ms": self.chunk_gap_ms,
            "chunks": self.chunks,
            "contexts": self.contexts,
            "limit": self.limit,
            "window_s": self.window_s,
            "error_rate": self.error_rate,
            "seed": self.seed,
            "api_key": self.api_key is not None,
            "body_errors": self.body_errors,
            "max_body_bytes": self.max_body_bytes,
            "ready": self.ready,
        }


class _State:
    """Rate-limiter store, seeded generators and counters, shared by all connections."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.started = time.monotonic()
        self.reset()

    def reset(self) -> None:
        self.clients: dict[str, list[float]] = {}  # ip -> [hits, reset instant (loop clock)]
        self.error_rng = random.Random(self.config.seed)
        self.id_rng = random.Random(self.config.seed + 1)
        self.requests = 0
        self.by_status: Counter[str] = Counter()
        self.by_route: Counter[str] = Counter()
        self.rate_limited = 0
        self.streams = 0
        self.streams_completed = 0
        self.errors_injected = 0
        self.inflight = 0
        self.max_inflight = 0

    def request_id(self) -> str:
        return str(uuid.UUID(int=self.id_rng.getrandbits(128), version=4))

    def rate_limit(self, ip: str, now: float) -> tuple[dict[str, str], int | None]:
        """Count a hit for ``ip``: the draft-6 headers, and ``Retry-After`` seconds when over."""
        cfg = self.config
        if cfg.limit <= 0:
            return {}, None
        entry = self.clients.get(ip)
        if entry is None or entry[1] <= now:
            entry = self.clients[ip] = [0, now + cfg.window_s]
        entry[0] += 1
        hits = int(entry[0])
        reset_s = max(0, math.ceil(entry[1] - now))
        headers = {
            "RateLimit-Policy": f"{cfg.limit};w={math.ceil(cfg.window_s)}",
            "RateLimit-Limit": str(cfg.limit),
            "RateLimit-Remaining": str(max(cfg.limit - hits, 0)),
        }
        if reset_s:  # express-rate-limit omits a zero reset
            headers["RateLimit-Reset"] = str(reset_s)
        if hits > cfg.limit:
            self.rate_limited += 1
            return headers, reset_s
        return headers, None

    def stats(self) -> dict[str, Any]:
        now = asyncio.get_running_loop().time()
        return {
            "requests": self.requests,
            "by_status": dict(self.by_status),
            "by_route": dict(self.by_route),
            "rate_limited": self.rate_limited,
            "streams": self.streams,
            "streams_completed": self.streams_completed,
            "errors_injected": self.errors_injected,
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "clients": {
                ip: {"hits": int(h), "reset_in_s": round(max(0.0, r - now), 3)}
                for ip, (h, r) in self.clients.items()
            },
            "uptime_s": round(time.monotonic() - self.started, 3),
            "config": self.config.as_dict(),
        }


class _BadRequest(Exception):
    def __init__(self, status: int = 400) -> None:
        super().__init__(status)
        self.status = status


class _Request:
    __slots__ = ("body", "close", "headers", "method", "target", "too_large", "version")

    def __init__(self, method: str, target: str, version: str, headers: dict[str, str]) -> None:
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers
        self.body = bytearray()
        self.too_large = False
        conn = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        self.close = "close" in conn or (version == "HTTP/1.0" and "keep-alive" not in conn)


class _Connection(asyncio.Protocol):
    """One HTTP/1.1 connection: an incremental parser and an in-order (pipelined) responder."""

    def __init__(self, app: _App) -> None:
        self.app = app
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = "unknown"
        self.pending: deque[_Request] = deque()
        self.busy = False
        self.stop_parsing = False
        self.task: asyncio.Task | None = None
        # parser state: "head", "body" (Content-Length), "size", "data", "crlf", "trailer"
        self.state = "head"
        self.cur: _Request | None = None
        self.remaining = 0

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = str(peer[0])

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self.pending.clear()
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        if self.stop_parsing:
            return
        self.buf += data
        try:
            self._parse()
        except _BadRequest as exc:
            self.stop_parsing = True
            self.pending.clear()
            if self.transport is not None and not self.busy:
                reason = _REASONS.get(exc.status, "Bad Request")
                self.transport.write(
                    f"HTTP/1.1 {exc.status} {reason}\r\nConnection: close\r\n"
                    f"Content-Length: 0\r\n\r\n".encode()
                )
                self.transport.close()
            elif self.transport is not None:
                self.transport.close()
        if len(self.pending) > 64 and self.transport is not None:
            self.transport.pause_reading()  # bounded pipelining queue

    # -- parser --------------------------------------------------------------------------
    def _parse(self) -> None:
        buf = self.buf
        limit = self.app.config.max_body_bytes
        while not self.stop_parsing:
            if self.state == "head":
                while buf.startswith(b"\r\n"):  # RFC 9112: ignore empty lines before a request
                    del buf[:2]
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise _BadRequest(431)
                    return
                if end > MAX_HEAD_BYTES:
                    raise _BadRequest(431)
                lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
                del buf[: end + 4]
                self._start_request(lines, limit)
            elif self.state in ("body", "data"):
                take = min(self.remaining, len(buf))
                if take == 0:
                    return
                req = self.cur
                assert req is not None
                if not req.too_large:
                    req.body += buf[:take]
                    if len(req.body) > limit:
                        req.too_large = True
                        req.body = bytearray()
                del buf[:take]
                self.remaining -= take
                if self.remaining:
                    return
                if self.state == "body":
                    self._finish()
                else:
                    self.state = "crlf"
            elif self.state == "size":
                idx = buf.find(b"\r\n")
                if idx < 0:
                    if len(buf) > 4096:
                        raise _BadRequest()
                    return
                text = bytes(buf[:idx]).split(b";", 1)[0].strip()
                del buf[: idx + 2]
                try:
                    size = int(text, 16)
                except ValueError:
                    raise _BadRequest() from None
                if size < 0:
                    raise _BadRequest()
                if size == 0:
                    self.state = "trailer"
                else:
                    self.state, self.remaining = "data", size
            elif self.state == "crlf":
                if len(buf) < 2:
                    return
                if buf[:2] != b"\r\n":
                    raise _BadRequest()
                del buf[:2]
                self.state = "size"
            elif self.state == "trailer":
                idx = buf.find(b"\r\n")
                if idx < 0:
                    if len(buf) > MAX_HEAD_BYTES:
                        raise _BadRequest(431)
                    return
                del buf[: idx + 2]
                if idx == 0:
                    self._finish()

    def _start_request(self, lines: list[str], limit: int) -> None:
        parts = lines[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[0].isalpha():
            raise _BadRequest()
        method, target, version = parts
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            name = name.strip().lower()
            if not sep or not name or name != name.strip() or " " in name:
                raise _BadRequest()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        req = _Request(method.upper(), target, version, headers)
        self.cur = req
        te = headers.get("transfer-encoding")
        cl = headers.get("content-length")
        if te is not None:
            if cl is not None:
                raise _BadRequest()  # request smuggling guard (RFC 9112 6.3)
            if te.split(",")[-1].strip().lower() != "chunked":
                raise _BadRequest(501)
            self.state = "size"
        elif cl is not None:
            values = {v.strip() for v in cl.split(",")}
            if len(values) != 1 or not next(iter(values)).isdigit():
                raise _BadRequest()
            n = int(next(iter(values)))
            if n > limit:
                req.too_large = True  # drain (not buffer) the body, answer, keep the connection
            if n:
                self.state, self.remaining = "body", n
            else:
                self._finish()
        else:
            self._finish()

    def _finish(self) -> None:
        req = self.cur
        assert req is not None
        self.cur, self.state, self.remaining = None, "head", 0
        self.pending.append(req)
        if req.close:
            self.stop_parsing = True  # nothing after a Connection: close request is answered
        self._next()

    # -- responder -----------------------------------------------------------------------
    def _next(self) -> None:
        if self.busy or not self.pending or self.transport is None:
            return
        if len(self.pending) <= 16:
            self.transport.resume_reading()
        self.busy = True
        req = self.pending.popleft()
        self.task = asyncio.get_running_loop().create_task(self._serve(req))

    async def _serve(self, req: _Request) -> None:
        try:
            await self.app.handle(req, self)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug here: say so and drop the connection
            print(
                f"axon_api_server: error handling {req.method} {req.target}: {exc!r}",
                file=sys.stderr,
            )
            if self.transport is not None:
                self.transport.close()
            return
        finally:
            self.busy = False
        if self.transport is None:
            return
        if req.close:
            self.transport.close()
            return
        self._next()

    def write(self, data: bytes) -> bool:
        if self.transport is None or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def send(
        self,
        req: _Request,
        status: int,
        body: object | bytes | None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """A complete response with ``Content-Length`` (JSON unless ``body`` is bytes/None)."""
        if body is None:
            payload, ctype = b"", None
        elif isinstance(body, bytes):
            payload, ctype = body, "application/json; charset=utf-8"
        else:
            payload, ctype = _dumps(body), "application/json; charset=utf-8"
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}"]
        for k, v in (headers or {}).items():
            lines.append(f"{k}: {v}")
        if ctype:
            lines.append(f"Content-Type: {ctype}")
        lines.append(f"Content-Length: {len(payload)}")
        lines.append(f"Date: {formatdate(usegmt=True)}")
        lines.append(f"Connection: {'close' if req.close else 'keep-alive'}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.write(head if req.method == "HEAD" else head + payload)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(obj: object) -> bytes:
    return _chunk(b"data: " + _dumps(obj) + b"\n\n")


class _App:
    """Routing, the limiter, validation and the two prompt-processing modes."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.state = _State(config)

    def _count(self, route: str, status: int) -> None:
        self.state.by_route[route] += 1
        self.state.by_status[str(status)] += 1

    async def handle(self, req: _Request, conn: _Connection) -> None:
        cfg, st = self.config, self.state
        path = req.target.split("?", 1)[0].split("#", 1)[0]
        if "://" in path:  # absolute-form target
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        key = path.lower()  # Express routing: case-insensitive, one optional trailing slash
        if len(key) > 1 and key.endswith("/"):
            key = key[:-1]

        if key == "/__stats" and req.method in ("GET", "HEAD"):
            conn.send(req, 200, st.stats())
            return
        if key == "/__control" and req.method == "POST":
            self._control(req, conn)
            return

        st.requests += 1
        if req.method == "OPTIONS":  # cors(): preflight answered before the limiter
            self._count("OPTIONS", 204)
            conn.send(
                req,
                204,
                None,
                {
                    "Access-Control-Allow-Origin": "*",
                    "Access-Control-Allow-Credentials": "true",
                    "Access-Control-Allow-Methods": "GET,HEAD,PUT,PATCH,POST,DELETE",
                    "Vary": "Access-Control-Request-Headers",
                },
            )
            return

        parsed: object = None
        parse_failed = False
        is_json = req.headers.get("content-type", "").split(";")[0].strip().lower() == (
            "application/json"
        )
        if is_json and req.body and not req.too_large:
            try:
                text = bytes(req.body).decode("utf-8")
                if text.lstrip(" \t\r\n")[:1] not in ("{", "["):
                    raise ValueError("express.json is strict: objects and arrays only")
                parsed = json.loads(text, parse_constant=_reject_constant)
            except ValueError:
                parse_failed = True
        elif is_json and not req.too_large:
            parsed = {}  # body-parser: an empty JSON body is {}

        if cfg.body_errors == "express" and (req.too_large or parse_failed):
            self._count("body-parser", 500)
            conn.send(req, 500, _error("INTERNAL_SERVER_ERROR", "An unexpected error occurred"))
            return

        headers, retry_after = st.rate_limit(conn.peer, asyncio.get_running_loop().time())
        if retry_after is not None:
            self._count("429", 429)
            conn.send(req, 429, _RATE_LIMIT_BODY, {**headers, "Retry-After": str(retry_after)})
            return
        if req.too_large:
            self._count("413", 413)
            conn.send(req, 413, _error("PAYLOAD_TOO_LARGE", "request entity too large"), headers)
            return

        get = req.method in ("GET", "HEAD")
        if get and key == "/health":
            self._count("GET /health", 200)
            body = {
                "success": True,
                "data": {
                    "status": "healthy",
                    "timestamp": _iso(),
                    "uptime": time.monotonic() - st.started,
                    "version": VERSION,
                },
            }
            conn.send(req, 200, body, headers)
        elif get and key == "/health/ready":
            status = 200 if cfg.ready else 503
            self._count("GET /health/ready", status)
            services = {"mongodb": cfg.ready, "redis": cfg.ready, "qdrant": cfg.ready}
            body = {
                "success": cfg.ready,
                "data": {"ready": cfg.ready, "services": services, "timestamp": _iso()},
            }
            conn.send(req, status, body, headers)
        elif get and key == "/health/live":
            self._count("GET /health/live", 200)
            conn.send(req, 200, {"success": True, "data": {"alive": True}}, headers)
        elif req.method == "POST" and key == "/api/v1/prompts/process":
            await self._prompt(req, conn, headers, None if parse_failed else parsed)
        else:
            self._count("404", 404)
            message = f"Route {req.method} {path} not found"
            conn.send(req, 404, _error("NOT_FOUND", message), headers)

    def _control(self, req: _Request, conn: _Connection) -> None:
        try:
            cmd = json.loads(bytes(req.body) or b"{}")
            if not isinstance(cmd, dict):
                raise ValueError("the control body is a JSON object")
            if cmd.get("reset"):
                self.state.reset()
            self.config.update(cmd)
        except (ValueError, TypeError) as exc:
            conn.send(req, 400, {"ok": False, "error": str(exc)})
            return
        conn.send(req, 200, {"ok": True, "config": self.config.as_dict()})

    def _authorized(self, req: _Request) -> bool:
        key = self.config.api_key
        if key is None:
            return True
        scheme, _, token = req.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), key.encode()):
            return True
        given = req.headers.get("x-api-key")
        return given is not None and hmac.compare_digest(given.encode(), key.encode())

    async def _prompt(
        self, req: _Request, conn: _Connection, headers: dict[str, str], parsed: object
    ) -> None:
        cfg, st = self.config, self.state
        route = "POST /api/v1/prompts/process"
        if not self._authorized(req):
            self._count(route, 401)
            body = _error("UNAUTHORIZED", "Missing or invalid API key")
            conn.send(req, 401, body, {**headers, "WWW-Authenticate": "Bearer"})
            return
        data = validate_prompt_body(parsed)
        if data is None:
            self._count(route, 400)
            conn.send(req, 400, _error("VALIDATION_ERROR", "Validation error"), headers)
            return
        fail = cfg.error_rate > 0 and st.error_rng.random() < cfg.error_rate
        if fail:
            st.errors_injected += 1
        if fail and not data["stream"]:
            self._count(route, 500)
            conn.send(
                req, 500, _error("INTERNAL_SERVER_ERROR", "An unexpected error occurred"), headers
            )
            return
        st.inflight += 1
        st.max_inflight = max(st.max_inflight, st.inflight)
        try:
            if data["stream"]:
                await self._stream(req, conn, headers, data, fail)
            else:
                await self._process(req, conn, headers, data)
        finally:
            st.inflight -= 1

    async def _process(
        self, req: _Request, conn: _Connection, headers: dict[str, str], data: dict[str, Any]
    ) -> None:
        cfg, st = self.config, self.state
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        stages = dict(cfg.stages)  # the knobs as of the request's start
        chunks = chunk_texts(cfg.chunks)
        request_id = st.request_id()
        await _sleep_until(t0 + sum(stages.values()) / 1000.0)
        body = {
            "success": True,
            "data": {
                "requestId": request_id,
                "response": "".join(chunks),
                "metadata": {
                    "tokensUsed": math.ceil(len(data["prompt"]) / 4) + len(chunks),
                    "latency": {name: stages[name] for name in STAGES},
                    "contextUsed": cfg.contexts,
                    "actions": [],
                },
            },
        }
        self._count("POST /api/v1/prompts/process", 200)
        conn.send(req, 200, body, headers)

    async def _stream(
        self,
        req: _Request,
        conn: _Connection,
        headers: dict[str, str],
        data: dict[str, Any],
        fail: bool,
    ) -> None:
        cfg, st = self.config, self.state
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        ms = {k: v / 1000.0 for k, v in cfg.stages.items()}
        ttft, gap, n = cfg.ttft_ms / 1000.0, cfg.chunk_gap_ms / 1000.0, cfg.chunks
        contexts = cfg.contexts
        request_id = st.request_id()
        self._count("POST /api/v1/prompts/process", 200)
        st.streams += 1
        lines = [
            "HTTP/1.1 200 OK",
            *(f"{k}: {v}" for k, v in headers.items()),
            "Content-Type: text/event-stream",
            "Cache-Control: no-cache",
            f"Connection: {'close' if req.close else 'keep-alive'}",
            "X-Accel-Buffering: no",
            f"Date: {formatdate(usegmt=True)}",
            "Transfer-Encoding: chunked",
        ]
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        if req.method == "HEAD":
            conn.write(head)
            return

        def ev(kind: str, payload: object) -> bytes:
            return _event({"type": kind, "data": payload, "timestamp": _iso()})

        if not conn.write(head + _event({"type": "start", "requestId": "streaming"})):
            return
        conn.write(ev("analysis", None))  # collection starts
        t = t0 + ms["collection"]
        await _sleep_until(t)
        if fail:  # the generator yields an error event and throws; the route adds its own
            message = "Injected failure (--error-rate)"
            conn.write(ev("error", {"error": message}))
            conn.write(
                _event({"type": "error", "error": {"code": "STREAMING_ERROR", "message": message}})
            )
            conn.write(b"0\r\n\r\n")
            return
        conn.write(ev("analysis", None))  # analysis starts
        t += ms["analysis"]
        await _sleep_until(t)
        conn.write(ev("analysis", {"intent": "general", "taskType": "general-query"}))
        conn.write(ev("retrieval", None))
        t += ms["retrieval"]
        await _sleep_until(t)
        conn.write(ev("retrieval", {"contextsFound": contexts}))
        conn.write(ev("context", None))
        t += ms["synthesis"]
        await _sleep_until(t)
        conn.write(ev("context", {"sections": contexts}))
        t += ms["injection"]
        await _sleep_until(t)
        conn.write(ev("llm-start", None))
        t_llm = t
        for k, text in enumerate(chunk_texts(n)):
            await _sleep_until(t_llm + ttft + k * gap)
            if not conn.write(ev("llm-chunk", {"content": text})):
                return
        t = t_llm + ttft + max(n - 1, 0) * gap
        await _sleep_until(t)
        conn.write(ev("llm-end", None))
        await _sleep_until(t + ms["postProcessing"])
        complete = {
            "requestId": request_id,
            "totalLatencyMs": round((loop.time() - t0) * 1000.0),
            "qualityScore": 0.85,
        }
        conn.write(ev("complete", complete) + _chunk(b"data: [DONE]\n\n") + b"0\r\n\r\n")
        st.streams_completed += 1


async def serve(config: Config, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until killed; prints ``READY <port>`` once listening."""
    loop = asyncio.get_running_loop()
    app = _App(config)
    server = await loop.create_server(lambda: _Connection(app), host, port, backlog=4096)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    await server.serve_forever()


def run(config: Config, host: str = "127.0.0.1", port: int = 0, timer_spin_ms: float = 1.0) -> None:
    """Run :func:`serve` on an event loop whose selector wakes ``timer_spin_ms`` early."""
    early = timer_spin_ms / 1000.0
    factory = (lambda: asyncio.SelectorEventLoop(_EarlySelector(early))) if early > 0 else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve(config, host, port))


def main(argv: list[str] | None = None) -> None:
    """Command line: the knobs of :class:`AxonApiServer`, plus ``--host`` and ``--port``."""
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--stages", default=None, help="e.g. collection=1,analysis=5,llm=40 (ms)")
    p.add_argument("--ttft-ms", type=float, default=10.0)
    p.add_argument("--chunk-gap-ms", type=float, default=2.0)
    p.add_argument("--chunks", type=int, default=5)
    p.add_argument("--contexts", type=int, default=3)
    p.add_argument("--limit", type=int, default=100, help="requests per window per IP; 0: off")
    p.add_argument("--window-s", type=float, default=900.0)
    p.add_argument("--error-rate", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--api-key", default=os.environ.get("AXON_TEST_API_KEY"))
    p.add_argument("--body-errors", choices=("validation", "express"), default="validation")
    p.add_argument("--max-body-bytes", type=int, default=MAX_BODY_BYTES)
    p.add_argument("--timer-spin-ms", type=float, default=1.0)
    a = p.parse_args(argv)
    try:
        config = Config(
            stages=a.stages,
            ttft_ms=a.ttft_ms,
            chunk_gap_ms=a.chunk_gap_ms,
            chunks=a.chunks,
            contexts=a.contexts,
            limit=a.limit,
            window_s=a.window_s,
            error_rate=a.error_rate,
            seed=a.seed,
            api_key=a.api_key,
            body_errors=a.body_errors,
            max_body_bytes=a.max_body_bytes,
        )
    except ValueError as exc:
        p.error(str(exc))
    try:
        run(config, a.host, a.port, a.timer_spin_ms)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
