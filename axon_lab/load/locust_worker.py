"""Locustfile run by ``locust -f`` in the master and worker subprocesses of the ``locust`` load engine.

This module imports gevent (through Locust) and must only ever be loaded by a ``locust``
subprocess, never by the notebook kernel or the axon-lab process. The plan comes from the JSON
file named by ``AXON_LOCUST_PLAN`` (written by :mod:`axon_lab.load.locust_engine`).

Worker side: :class:`AxonUser` sends the plan's pre-serialised HTTP/1.1 requests over its own
keep-alive gevent socket, times each one with ``perf_counter_ns`` (intended start, sent, first
byte, end), parses ``Server-Timing`` and cache headers, fires Locust's ``request`` event (so
Locust's own bucketed statistics exist for comparison) and keeps the full-resolution record.
Records go to the master in columnar chunks (custom message ``axon_part``) about once a second;
when the worker is told to finish (``axon_finish``) or reaches its share of ``max_requests`` it
waits for in-flight requests, sends the last chunk and ``axon_done`` with its counts.

Master side: :class:`AxonShape` drives Locust's user count from our shape's stages (spawn rate
from the stage slopes), writes every chunk it receives to ``<run_dir>/parts/`` (write, then
rename), and after the shape's end waits for every worker's ``axon_done`` (bounded by the grace
period) before quitting; on quit it writes Locust's own statistics to ``locust_stats.json``.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import gevent
import msgpack
from locust import LoadTestShape, User, constant, events, task
from locust.runners import MasterRunner, WorkerRunner
from locust.user.users import LOCUST_STATE_STOPPING


def _load_sibling(name: str) -> Any:
    """A module of ``axon_lab.load`` loaded by file path.

    Importing ``axon_lab.load.<name>`` would run ``axon_lab/load/__init__.py`` (pandas,
    pyarrow...): seconds of start-up per process on a busy machine, for stdlib-only modules.
    """
    import importlib.util

    path = Path(__file__).with_name(f"{name}.py")
    spec = importlib.util.spec_from_file_location(f"_axon_{name}", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod


_st = _load_sibling("servertiming")
parse_cache_headers, parse_server_timing = _st.parse_cache_headers, _st.parse_server_timing
_now = time.perf_counter_ns

PLAN: dict[str, Any] = json.loads(Path(os.environ["AXON_LOCUST_PLAN"]).read_text(encoding="utf-8"))
PAYLOADS = [bytes.fromhex(p) for p in PLAN["payloads"]]
STAGES: list[tuple[float, float]] = [(float(d), float(t)) for d, t in PLAN["stages"]]
DURATION_S = sum(d for d, _ in STAGES)
_checks = _load_sibling("checks")
CHECKS = [_checks.parse_check(e) for e in PLAN["checks"]]
KEEP_BODY = any(c.needs_body for c in CHECKS)
# Outcome codes (same order as axon_lab.load.records.OUTCOMES).
OK, HTTP_ERROR, TIMEOUT, CONNECT_ERROR, IO_ERROR, PROTOCOL_ERROR, INTERRUPTED = range(7)
_INT_COLUMNS = (
    "seq",
    "shape_stage",
    "conn",
    "intended_ns",
    "sent_ns",
    "first_byte_ns",
    "end_ns",
    "connect_ns",
    "status",
    "outcome",
    "bytes",
    "late",
    "checks_passed",
    "checks_failed",
)


def _stage_at(t: float) -> int:
    acc = 0.0
    for i, (d, _) in enumerate(STAGES):
        acc += d
        if t < acc:
            return i
    return len(STAGES) - 1


class _Recorder:
    """Worker-side state: request quota, counters, the current columnar chunk."""

    def __init__(self) -> None:
        self.t0_ns = _now()
        self.t0_wall_ns = time.time_ns()
        self.seq = 0
        self.inflight = 0
        self.recorded = 0
        self.issuing = True
        self.finishing = False
        self.quota = int(PLAN["max_requests"])
        self.worker = -1
        self.parts = 0
        self.conns = 0
        self.late_ns = int(float(PLAN["late_ms"]) * 1e6)
        self.check_counts: dict[str, list[int]] = {c.name: [0, 0] for c in CHECKS}
        self._new_chunk()

    def _new_chunk(self) -> None:
        self.cols: dict[str, list[Any]] = {k: [] for k in _INT_COLUMNS}
        self.errors: list[str | None] = []
        self.stages: dict[str, list[float]] = {}
        self.caches: dict[str, list[str | None]] = {}

    def add(
        self,
        row: tuple[int, ...],
        error: str | None,
        stages: dict[str, float],
        caches: dict[str, str],
    ) -> None:
        n = len(self.errors)
        for k, v in zip(_INT_COLUMNS, row, strict=True):
            self.cols[k].append(v)
        self.errors.append(error)
        for name, ms in stages.items():
            self.stages.setdefault(name, [math.nan] * n).append(ms)
        for name, val in caches.items():
            self.caches.setdefault(name, [None] * n).append(val)
        for col in self.stages.values():
            if len(col) == n:
                col.append(math.nan)
        for ccol in self.caches.values():
            if len(ccol) == n:
                ccol.append(None)
        self.recorded += 1
        if n + 1 >= 4096:
            self.flush()

    def flush(self) -> None:
        runner = _ENV.runner if _ENV is not None else None
        if not self.errors or runner is None:
            return
        self.parts += 1
        data = {
            "worker": self.worker,
            "part": self.parts,
            "t0_wall_ns": self.t0_wall_ns,
            "cols": self.cols,
            "error": self.errors,
            "stages": self.stages,
            "caches": self.caches,
        }
        self._new_chunk()
        runner.send_message("axon_part", msgpack.packb(data, use_bin_type=True))


REC: _Recorder | None = None
_ENV: Any = None


def _read_response(
    sock: socket.socket, buf: bytearray, mark: list[int]
) -> tuple[int, dict[str, str], int, bytearray, bytes]:
    """Read one response: status, lower-case headers, total bytes, leftover, body.

    ``mark[0]`` is set to the first byte's ``perf_counter_ns``.
    """
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("connection closed before the response head")
        if mark[0] < 0:
            mark[0] = _now()
        buf += data
        if len(buf) > 65536 and b"\r\n\r\n" not in buf:
            raise ValueError("response head too large")
    head_end = buf.index(b"\r\n\r\n") + 4
    lines = bytes(buf[: head_end - 4]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    status = int(parts[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        k = k.strip().lower()
        headers[k] = f"{headers[k]}, {v.strip()}" if k in headers else v.strip()
    rest = buf[head_end:]
    if status in (204, 304) or 100 <= status < 200:
        return status, headers, head_end, rest, b""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        total = head_end
        body = bytearray()
        while True:
            while b"\r\n" not in rest:
                more = sock.recv(65536)
                if not more:
                    raise ConnectionError("connection closed in a chunked body")
                rest += more
            i = rest.index(b"\r\n")
            size = int(bytes(rest[:i]).split(b";")[0], 16)
            need = i + 2 + size + 2
            while len(rest) < need:
                more = sock.recv(65536)
                if not more:
                    raise ConnectionError("connection closed in a chunked body")
                rest += more
            total += need
            body += rest[i + 2 : i + 2 + size]
            rest = rest[need:]
            if size == 0:
                return status, headers, total, rest, bytes(body)
    length = int(headers.get("content-length", "-1"))
    if length < 0:  # body until close
        while True:
            more = sock.recv(65536)
            if not more:
                break
            rest += more
        headers["connection"] = "close"
        return status, headers, head_end + len(rest), bytearray(), bytes(rest)
    while len(rest) < length:
        more = sock.recv(65536)
        if not more:
            raise ConnectionError("connection closed in the body")
        rest += more
    return status, headers, head_end + length, rest[length:], bytes(rest[:length])


class AxonUser(User):
    """One closed-loop VU: one keep-alive connection, the next request when the last one ends."""

    wait_time = constant(float(PLAN["think_time_s"]))

    def on_start(self) -> None:
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.conn_id = -1
        self.ready_ns = -1

    def on_stop(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    @task
    def one(self) -> None:
        # A ramp-down kills a user that is in its think time at once, but gevent delivers the
        # kill on the hub's next pass: a user whose think time ended meanwhile would take it in
        # the middle of its next request (recorded "interrupted"). Yielding once first makes
        # such a kill land here, before anything is sent; a user asked to stop while running
        # (graceful) sends nothing more.
        gevent.sleep(0)
        if self._state == LOCUST_STATE_STOPPING:
            return
        rec = REC
        if rec is None or not rec.issuing or rec.seq >= rec.quota:
            if rec is not None and rec.seq >= rec.quota:
                _finish("max_requests")
            gevent.sleep(0.2)
            return
        seq = rec.seq
        rec.seq += 1
        # Closed loop: the intended start is when the VU became ready (end of its think time).
        intended = _now()
        if self.ready_ns >= 0 and PLAN["think_time_s"] > 0:
            intended = min(intended, self.ready_ns + int(PLAN["think_time_s"] * 1e9))
        rec.inflight += 1
        sent = first = end = connect_ns = -1
        status, outcome, nbytes = 0, INTERRUPTED, 0
        error: str | None = "killed (locust stopped the user)"
        stages: dict[str, float] = {}
        caches: dict[str, str] = {}
        mark = [-1]
        c_pass = c_fail = -1 if not CHECKS else 0
        try:
            reused = self.sock is not None
            if self.sock is None:
                t = _now()
                try:
                    self.sock = socket.create_connection(
                        (PLAN["host"], PLAN["port"]), timeout=PLAN["connect_timeout_s"]
                    )
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError as exc:
                    connect_ns = _now() - t
                    outcome, error, end = (
                        CONNECT_ERROR,
                        f"connect: {type(exc).__name__}: {exc}",
                        _now(),
                    )
                    gevent.sleep(0.1)  # a dead server is not hammered
                    return
                connect_ns = _now() - t
                rec.conns += 1
                self.conn_id = rec.conns
                self.buf = bytearray()
            sock = self.sock
            # Per socket operation; a server trickling bytes could exceed it in total.
            sock.settimeout(PLAN["timeout_s"])
            sent = _now()
            try:
                try:
                    sock.sendall(PAYLOADS[seq % len(PAYLOADS)])
                    status, headers, nbytes, self.buf, body = _read_response(sock, self.buf, mark)
                except (ConnectionError, BrokenPipeError):
                    if not reused or mark[0] >= 0:
                        raise
                    # A kept-alive connection the server had closed meanwhile: retry once on a
                    # fresh one, as HTTP libraries (and the asyncio engine) do; the clock runs on.
                    sock.close()
                    t = _now()
                    sock = self.sock = socket.create_connection(
                        (PLAN["host"], PLAN["port"]), timeout=PLAN["connect_timeout_s"]
                    )
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connect_ns = _now() - t
                    rec.conns += 1
                    self.conn_id = rec.conns
                    self.buf = bytearray()
                    sock.settimeout(PLAN["timeout_s"])
                    sent = _now()
                    sock.sendall(PAYLOADS[seq % len(PAYLOADS)])
                    status, headers, nbytes, self.buf, body = _read_response(sock, self.buf, mark)
                end = _now()
                first = mark[0]
                if CHECKS:
                    resp = _checks.CheckResponse(
                        status,
                        headers,
                        body if KEEP_BODY else b"",
                        (end - sent) / 1e6,
                        (end - intended) / 1e6,
                    )
                    for c in CHECKS:
                        ok = c(resp)
                        rec.check_counts[c.name][0 if ok else 1] += 1
                        if ok:
                            c_pass += 1
                        else:
                            c_fail += 1
                outcome, error = (OK, None) if status < 400 else (HTTP_ERROR, f"HTTP {status}")
                st = headers.get("server-timing")
                if st:
                    stages = parse_server_timing(st)
                caches = parse_cache_headers(headers, tuple(PLAN["cache_headers"]))
                if headers.get("connection", "").lower() == "close":
                    sock.close()
                    self.sock = None
            except TimeoutError:
                end = _now()
                outcome, error = TIMEOUT, f"timeout after {PLAN['timeout_s']:g}s"
                sock.close()
                self.sock = None
            except (OSError, ValueError) as exc:
                end = _now()
                outcome = PROTOCOL_ERROR if isinstance(exc, ValueError) else IO_ERROR
                error = f"{type(exc).__name__}: {exc}"
                sock.close()
                self.sock = None
        finally:
            if end < 0:
                end = _now()
            rec.inflight -= 1
            self.ready_ns = end
            t0 = rec.t0_ns
            lag = sent - intended if sent >= 0 else 0
            rec.add(
                (
                    seq,
                    _stage_at((intended - t0) / 1e9),
                    self.conn_id,
                    intended - t0,
                    sent - t0 if sent >= 0 else -1,
                    first - t0 if first >= 0 else -1,
                    end - t0,
                    connect_ns,
                    status,
                    outcome,
                    nbytes,
                    int(lag > rec.late_ns),
                    c_pass if outcome in (OK, HTTP_ERROR) else -1,
                    c_fail if outcome in (OK, HTTP_ERROR) else -1,
                ),
                error,
                stages,
                caches,
            )
            if outcome != INTERRUPTED and _ENV is not None:
                # Locust's own statistics (it rounds to ~2 significant digits), for comparison.
                _ENV.events.request.fire(
                    request_type=PLAN["method"],
                    name=PLAN["path"],
                    response_time=(end - (sent if sent >= 0 else intended)) / 1e6,
                    response_length=nbytes,
                    context={},
                    exception=None if outcome == OK else RuntimeError(error or "error"),
                )
            if rec.seq >= rec.quota and rec.inflight == 0:
                _finish("max_requests")


def _finish(reason: str) -> None:
    """Worker: stop issuing, let in-flight requests end (bounded by the grace), send the rest."""
    rec = REC
    if rec is None or rec.finishing:
        return
    rec.finishing = True
    rec.issuing = False

    def wait_and_send() -> None:
        deadline = time.monotonic() + float(PLAN["grace_s"])
        while rec.inflight > 0 and time.monotonic() < deadline:
            gevent.sleep(0.02)
        rec.flush()
        _ENV.runner.send_message(
            "axon_done",
            {
                "worker": rec.worker,
                "recorded": rec.recorded,
                "scheduled": rec.seq,
                "reason": reason,
                "inflight_left": rec.inflight,
                "connections": rec.conns,
                "checks": rec.check_counts,
                "t0_wall_ns": rec.t0_wall_ns,
            },
        )

    gevent.spawn(wait_and_send)


# -- master side -------------------------------------------------------------------------------
class _Master:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.parts_dir = run_dir / "parts"
        self.parts_dir.mkdir(parents=True, exist_ok=True)
        self.done: dict[int, dict[str, Any]] = {}
        self.finish_sent = False


MASTER: _Master | None = None


def _on_part(environment: Any, msg: Any, **_: Any) -> None:
    assert MASTER is not None
    data = msg.data
    head = msgpack.unpackb(data, raw=False)
    name = f"w{int(head['worker']):03d}-{int(head['part']):06d}.msgpack"
    tmp = MASTER.parts_dir / ("." + name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(MASTER.parts_dir / name)


def _on_done(environment: Any, msg: Any, **_: Any) -> None:
    assert MASTER is not None
    d = dict(msg.data)
    MASTER.done[int(d["worker"])] = d
    path = MASTER.run_dir / f"worker-{int(d['worker']):03d}.json"
    path.write_text(json.dumps(d), encoding="utf-8")


def _on_finish(environment: Any, msg: Any, **_: Any) -> None:
    _finish("duration")


def _expected_workers() -> int:
    opts = _ENV.parsed_options if _ENV is not None else None
    return max(1, int(getattr(opts, "expect_workers", 1) or 1))


class AxonShape(LoadTestShape):
    """Locust's user count from our shape: stage targets, spawn rate from the stage slopes."""

    def tick(self) -> tuple[int, float] | None:
        t = self.get_run_time()
        m = MASTER
        if m is None:
            return None
        if len(m.done) >= _expected_workers():
            return None
        if t < DURATION_S:
            start = float(PLAN["start"])
            acc = 0.0
            prev = start if PLAN["ramping"] else STAGES[0][1]
            for d, target in STAGES:
                if t < acc + d:
                    slope = abs(target - prev) / d if d > 0 else 0.0
                    # A linear ramp: head for the stage's end target at the stage's slope; a flat
                    # stage starts its users at once.
                    rate = slope if slope > 0 else max(1.0, target) * 20.0
                    return int(round(target)), max(rate, 0.1)
                acc += d
                prev = target
        if not m.finish_sent:
            m.finish_sent = True
            _ENV.runner.send_message("axon_finish", {})
        if t > DURATION_S + float(PLAN["grace_s"]) + 15.0:
            return None  # a worker never reported: stop (the run is incomplete)
        u = self.get_current_user_count()
        return u, max(1.0, float(u))


@events.init.add_listener
def _on_init(environment: Any, **_: Any) -> None:
    global REC, MASTER, _ENV
    _ENV = environment
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        MASTER = _Master(Path(os.environ["AXON_LOCUST_RUN_DIR"]))
        runner.register_message("axon_part", _on_part)
        runner.register_message("axon_done", _on_done)
    elif isinstance(runner, WorkerRunner):
        REC = _Recorder()
        runner.register_message("axon_finish", _on_finish)


@events.test_start.add_listener
def _on_test_start(environment: Any, **_: Any) -> None:
    rec = REC
    runner = environment.runner
    if MASTER is not None:
        # The run's clock origin: the engine aligns every worker's times on it.
        path = MASTER.run_dir / "master_start.json"
        path.write_text(json.dumps({"t0_wall_ns": time.time_ns()}), encoding="utf-8")
    if rec is None or not isinstance(runner, WorkerRunner):
        return
    rec.worker = int(runner.worker_index)
    n = _expected_workers()
    total = int(PLAN["max_requests"])
    rec.quota = total // n + (1 if rec.worker < total % n else 0)
    rec.t0_ns = _now()
    rec.t0_wall_ns = time.time_ns()


@events.quitting.add_listener
def _on_quitting(environment: Any, **_: Any) -> None:
    if MASTER is None:
        return
    total = environment.stats.total
    qs = (0.5, 0.9, 0.95, 0.99, 0.999)
    stats = {
        "count": total.num_requests,
        "failures": total.num_failures,
        "min": total.min_response_time if total.num_requests else None,
        "max": total.max_response_time if total.num_requests else None,
        "mean": total.avg_response_time if total.num_requests else None,
        "percentiles": {
            f"p{q * 100:g}".replace(".", ""): (
                total.get_response_time_percentile(q) if total.num_requests else None
            )
            for q in qs
        },
        "rps": total.total_rps,
        "workers_done": sorted(MASTER.done),
    }
    path = MASTER.run_dir / "locust_stats.json"
    path.write_text(json.dumps(stats), encoding="utf-8")
