"""A test HTTP/1.1 server whose latency distribution (and injected stalls) the test controls.

Run it as a subprocess (``python -P axon_lab/load/testserver.py --latency lognormal:median=150,sigma=0.5``;
``-P`` keeps ``axon_lab/load`` off ``sys.path``, where its ``http.py`` would shadow the standard
library's; the file imports nothing of axon_lab, so it starts fast);
it prints ``READY <port>`` when listening. :class:`LoadServer` does that for tests and benchmarks.

Latency is *deterministic*: the server precomputes ``n`` delays at the quantiles
``(k + 0.5) / n`` of the chosen distribution, shuffles them with a seed, and gives the i-th
request it receives delay ``schedule[i % n]``. A run of exactly ``n`` requests therefore sees
exactly the known distribution, so a correct client must measure exactly its percentiles
(plus loopback overhead). The response is scheduled at receive time + delay, so concurrent
requests do not queue behind each other.

A *stall* blocks the server's event loop (``time.sleep``, like a stop-the-world GC pause) for
``stall_ms`` at ``stall_at_s`` after the first request since start or reset: nothing is read,
answered or accepted until it ends. This is the coordinated-omission self-test's fault.

Endpoints
---------
``GET /health``
    200 at once.
``* /work``, ``* /api/v1/prompts/process``
    200 after the scheduled delay, JSON body ``{"result": ..., "i": n}``; the Axon path also
    sends ``Server-Timing`` (the delay split over the guide's stages) and ``X-Axon-Cache``.
``* /status/<code>``
    That status at once.
``GET /chunked``
    A chunked response. ``GET /close``: a response with ``Connection: close``.
``POST /__control``
    JSON ``{"reset": true, "stall_at_s": 2.0, "stall_ms": 1400, "latency": "constant:ms=5"}``;
    ``GET /__stats`` returns the request count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import socket
import subprocess
import sys
import time
from collections import deque
from pathlib import Path
from statistics import NormalDist
from typing import Self

# Share of the delay per Server-Timing stage (the guide's latency breakdown, normalised).
STAGE_SHARES = {
    "collection": 10,
    "analysis": 200,
    "retrieval": 500,
    "vector_search": 200,
    "synthesis": 100,
    "injection": 50,
    "llm": 2000,
    "postprocessing": 140,
}
_SHARE_TOTAL = sum(v for k, v in STAGE_SHARES.items() if k != "vector_search")


def latency_schedule(spec: str) -> list[float]:
    """The delays (seconds, shuffled) for a latency ``spec``.

    Parameters
    ----------
    spec
        ``none`` | ``constant:ms=5`` | ``lognormal:median=150,sigma=0.5[,n=2000][,seed=1]``
        | ``uniform:low=10,high=30[,n=...]`` (all in milliseconds).
    """
    kind, _, args = spec.partition(":")
    kw = {k: float(v) for k, v in (a.split("=") for a in args.split(",") if a)}
    n = int(kw.pop("n", 2000))
    seed = int(kw.pop("seed", 1))
    if kind == "none":
        return [0.0]
    if kind == "constant":
        return [kw["ms"] / 1000.0]
    qs = [(k + 0.5) / n for k in range(n)]
    if kind == "lognormal":
        nd = NormalDist()
        values = [kw["median"] * math.exp(kw["sigma"] * nd.inv_cdf(q)) / 1000.0 for q in qs]
    elif kind == "uniform":
        values = [(kw["low"] + (kw["high"] - kw["low"]) * q) / 1000.0 for q in qs]
    else:
        raise ValueError(f"unknown latency kind {kind!r}")
    random.Random(seed).shuffle(values)
    return values


class _State:
    def __init__(self, latency: str, stall_at_s: float | None, stall_ms: float) -> None:
        self.set_latency(latency)
        self.count = 0
        self.stall_at_s = stall_at_s
        self.stall_ms = stall_ms
        self.stall_handle: asyncio.TimerHandle | None = None
        self.stalls = 0
        # Actual receive→write time of each delayed response (ms): what the server really did.
        self.actual_ms: list[float] = []

    def set_latency(self, latency: str) -> None:
        self.latency = latency
        self.schedule = latency_schedule(latency)

    def next_delay(self) -> tuple[int, float]:
        i = self.count
        if i == 0 and self.stall_at_s is not None:
            loop = asyncio.get_running_loop()
            self.stall_handle = loop.call_later(self.stall_at_s, self._stall)
        self.count += 1
        return i, self.schedule[i % len(self.schedule)]

    def _stall(self) -> None:
        self.stalls += 1
        time.sleep(self.stall_ms / 1000.0)  # block the loop on purpose: the injected fault

    def reset(self) -> None:
        self.count = 0
        self.stalls = 0
        self.actual_ms = []
        if self.stall_handle is not None:
            self.stall_handle.cancel()
            self.stall_handle = None


def _response(
    status: int, body: bytes, *, headers: dict[str, str] | None = None, close: bool = False
) -> bytes:
    reason = {200: "OK", 404: "Not Found", 500: "Internal Server Error", 503: "Service Unavailable"}
    lines = [
        f"HTTP/1.1 {status} {reason.get(status, 'Status')}",
        f"Content-Length: {len(body)}",
        "Content-Type: application/json",
    ]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _axon_headers(i: int, delay_s: float) -> dict[str, str]:
    ms = delay_s * 1000.0
    parts = [f"{k};dur={ms * v / _SHARE_TOTAL:.3f}" for k, v in STAGE_SHARES.items()]
    parts.append(f"total;dur={ms:.3f}")
    cache = f"context={'l1-hit' if i % 2 else 'miss'}, embedding={'hit' if i % 4 else 'miss'}"
    return {"Server-Timing": ", ".join(parts), "X-Axon-Cache": cache}


class _Handler(asyncio.Protocol):
    def __init__(self, state: _State) -> None:
        self.state = state
        self.buf = bytearray()
        self.pending: deque[tuple[str, str, bytes, bool]] = deque()
        self.busy = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            method, path, _ = head[0].split(" ", 2)
            length, close = 0, False
            for line in head[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "connection" and "close" in value.lower():
                    close = True
            if len(self.buf) < end + 4 + length:
                return
            body = bytes(self.buf[end + 4 : end + 4 + length])
            del self.buf[: end + 4 + length]
            self.pending.append((method, path, body, close))
            self._next()

    def _next(self) -> None:
        if self.busy or not self.pending or self.transport is None:
            return
        self.busy = True
        method, path, body, close = self.pending.popleft()
        loop = asyncio.get_running_loop()
        st = self.state
        if path == "/health":
            self._send(_response(200, b'{"status":"ok"}', close=close), close)
        elif path in ("/work", "/api/v1/prompts/process"):
            i, delay = st.next_delay()
            headers = _axon_headers(i, delay) if path.startswith("/api/") else None
            payload = _response(
                200, b'{"result":{"text":"ok"},"i":%d}' % i, headers=headers, close=close
            )
            t_recv = time.perf_counter()

            def respond() -> None:
                st.actual_ms.append((time.perf_counter() - t_recv) * 1000.0)
                self._send(payload, close)

            if delay > 0:
                loop.call_later(delay, respond)
            else:
                respond()
        elif path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            self._send(_response(code, b'{"error":"asked for it"}', close=close), close)
        elif path == "/chunked":
            chunks = [b'{"result":', b'"chunked"', b"}"]
            data = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
            self._send(head + data, close)
        elif path == "/close":
            self._send(_response(200, b'{"result":"bye"}', close=True), True)
        elif path == "/__control" and method == "POST":
            cmd = json.loads(body or b"{}")
            if cmd.get("reset"):
                st.reset()
            if "stall_at_s" in cmd:
                st.stall_at_s = cmd["stall_at_s"]
            if "stall_ms" in cmd:
                st.stall_ms = float(cmd["stall_ms"])
            if "latency" in cmd:
                st.set_latency(cmd["latency"])
            self._send(_response(200, b'{"ok":true}', close=close), close)
        elif path == "/__stats":
            out = json.dumps(
                {
                    "count": st.count,
                    "stalls": st.stalls,
                    "latency": st.latency,
                    "actual_ms": st.actual_ms,
                }
            ).encode()
            self._send(_response(200, out, close=close), close)
        else:
            self._send(_response(404, b'{"error":"not found"}', close=close), close)

    def _send(self, payload: bytes, close: bool) -> None:
        self.busy = False
        if self.transport is None:
            return
        self.transport.write(payload)
        if close:
            self.transport.close()
            return
        self._next()


async def serve(
    port: int,
    latency: str,
    stall_at_s: float | None,
    stall_ms: float,
    tls: tuple[str, str] | None = None,
) -> None:
    """Serve until killed; prints ``READY <port>`` once listening (``tls``: cert and key files)."""
    loop = asyncio.get_running_loop()
    state = _State(latency, stall_at_s, stall_ms)
    ctx = None
    if tls:
        import ssl

        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(*tls)
    server = await loop.create_server(
        lambda: _Handler(state), "127.0.0.1", port, backlog=4096, ssl=ctx
    )
    sock = server.sockets[0]
    print(f"READY {sock.getsockname()[1]}", flush=True)
    await server.serve_forever()


class ScriptServer:
    """A stdlib-only server script run as a subprocess (``python -P FILE ...``) that prints
    ``READY <port>`` when listening: start, stop and its ``/__control``/``/__stats`` endpoints.

    Subclasses set :attr:`args` (the command line) and may set :attr:`env`; used by
    :class:`LoadServer` and by the test suite's stand-in of the real Axon API.
    """

    #: What the error message calls the server.
    what = "test server"

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self.args = args
        self.env = env if env is not None else {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    @property
    def pid(self) -> int:
        """The server's process id."""
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Self:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True, env=self.env)
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("READY"):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError(f"{self.what} did not start: {line!r}")

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """Kill the server (idempotent)."""
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()

    def control(self, **cmd: object) -> dict:
        """POST ``cmd`` as JSON to ``/__control``; plain http only."""
        return self._call("POST", "/__control", json.dumps(cmd).encode())

    def stats(self) -> dict:
        """``GET /__stats``."""
        return self._call("GET", "/__stats", b"")

    def _call(self, method: str, path: str, body: bytes) -> dict:
        with socket.create_connection(("127.0.0.1", self.port), timeout=10) as s:
            s.sendall(
                f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        head, _, payload = data.partition(b"\r\n\r\n")
        out = json.loads(payload)
        status_line = head.split(b"\r\n", 1)[0]
        if not status_line.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"{method} {path}: {status_line!r} {out}")
        return out


class LoadServer(ScriptServer):
    """Start the test server (this file) in a subprocess on a free loopback port (context manager).

    Parameters
    ----------
    latency
        The latency spec (see :func:`latency_schedule`).
    stall_at_s, stall_ms
        Inject one stall this long after the first request.
    uvloop
        Run the server on uvloop (faster, for benchmarks).
    tls
        ``(cert_file, key_file)``: serve https.
    """

    def __init__(
        self,
        latency: str = "none",
        *,
        stall_at_s: float | None = None,
        stall_ms: float = 1400.0,
        uvloop: bool = False,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.latency = latency
        self.scheme = "https" if tls else "http"
        args = [
            sys.executable,
            "-P",
            str(Path(__file__).resolve()),
            "--latency",
            latency,
            "--stall-ms",
            str(stall_ms),
        ]
        if stall_at_s is not None:
            args += ["--stall-at", str(stall_at_s)]
        if uvloop:
            args.append("--uvloop")
        if tls:
            args += ["--tls-cert", tls[0], "--tls-key", tls[1]]
        super().__init__(args)

    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT`` (``https`` with TLS)."""
        return f"{self.scheme}://127.0.0.1:{self.port}"


def main() -> None:
    """Command line: ``--port --latency --stall-at --stall-ms --uvloop``."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--latency", default="none")
    p.add_argument("--stall-at", type=float, default=None)
    p.add_argument("--stall-ms", type=float, default=1400.0)
    p.add_argument("--uvloop", action="store_true")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    a = p.parse_args()
    coro = serve(
        a.port, a.latency, a.stall_at, a.stall_ms, (a.tls_cert, a.tls_key) if a.tls_cert else None
    )
    try:
        if a.uvloop:
            import uvloop

            uvloop.run(coro)
        else:
            asyncio.run(coro)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
