"""Fault experiments: stop, pause or slow a backend the lab owns during a load run; error rate and latency before, during and after the fault, and the time to recover.

How each fault is made
----------------------
The experiment runs against a *fault target*: the embedded Axon API in a subprocess
(``AXON_FAULT_INJECTION=1``) whose Redis is a ``redis-server`` owned by the experiment
(:func:`start_fault_target`).

* ``redis`` — real faults on the real process: ``stop`` kills it (SIGKILL, like a crash or
  the OOM killer) and starts it again, empty, on the same port when the fault ends;
  ``pause`` freezes it (SIGSTOP, connections hang) and resumes it (SIGCONT); ``latency``
  goes through a tiny loopback TCP proxy (:class:`LatencyProxy`, its own process) that sits
  between Axon and Redis for the whole run and holds every byte Axon sends for
  ``latency_ms`` while the fault lasts.
* ``qdrant``, ``mongodb`` — the stores are in-process (Qdrant Edge, the embedded MongoDB
  stand-in), so the fault is a wrapper in the pipeline's store guard
  (``PUT /api/v1/faults/{backend}``, :class:`axon_lab.pipeline.core.Fault`): ``stop`` refuses
  every call at once, ``pause`` makes every call hang until the fault ends, ``latency`` makes
  every call wait ``latency_ms`` first. It runs in the guard's worker thread just before the
  real call, so the pipeline's timeouts, retries and circuit breaker see exactly what a slow,
  frozen or refusing server would show them; the store's own internals are not exercised.

What is measured
----------------
An open-loop load (constant arrival rate: requests keep arriving during the fault, so the
error rate is not hidden by coordinated omission) writes per-request records; a sampler polls
``/health``; the fault's start and end are logged with wall-clock times and aligned to the
load run's start. :func:`phase_table` gives, per phase (before / during / after), requests,
error rate, server errors, share of degraded responses and latency percentiles;
:func:`recovery` gives the time from the end of the fault until requests are healthy again
for good (every later request answered 200 and not degraded), the same from ``/health``, and
how fast the fault was detected. A killed experiment still leaves its records and events
file; :func:`read_fault_run` analyses it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as _dt
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import jsonutil, stats
from axon_lab.errors import BackendUnavailable, ConfigError, InputFileError
from axon_lab.redact import redact_text

BACKENDS: tuple[str, ...] = ("redis", "qdrant", "mongodb")
MODES: tuple[str, ...] = ("stop", "pause", "latency")
PHASES: tuple[str, ...] = ("before", "during", "after")
EVENTS_NAME = "fault_events.json"
HEALTH_NAME = "health.parquet"
PROCESS_PATH = "/api/v1/prompts/process"


# --- the Redis latency proxy -------------------------------------------------------------------
class LatencyProxy:
    """A loopback TCP proxy in front of an upstream (Redis) that can delay the bytes it forwards.

    It runs as its own process (``python -m axon_lab.faults proxy``) so it neither
    competes with the load generator for the GIL nor dies with a stuck caller; commands go
    over its stdin (``delay <ms>``), and it exits when stdin closes (its parent went away).
    Bytes from the client to the upstream are held for the delay, in order, so each command's
    round trip is ``delay`` longer; replies are forwarded at once.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, int(upstream_port))
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.delay_ms = 0.0

    def start(self, timeout_s: float = 30.0) -> LatencyProxy:
        """Start the proxy on a free loopback port; returns when it listens."""
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axon_lab.faults", "proxy", "--upstream",
             f"{self.upstream[0]}:{self.upstream[1]}"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1)
        box: dict[str, str] = {}
        reader = threading.Thread(target=lambda: box.setdefault("line", self.proc.stdout.readline()),  # type: ignore[union-attr]
                                  daemon=True)
        reader.start()
        reader.join(timeout_s)
        line = box.get("line", "")
        if not line.startswith("READY "):
            self.stop()
            raise BackendUnavailable("redis proxy", f"did not start within {timeout_s:g}s")
        self.port = int(line.split()[1])
        return self

    def set_delay(self, ms: float) -> None:
        """Delay every byte sent upstream by ``ms`` from now on (0: no delay)."""
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise BackendUnavailable("redis proxy", "not running")
        self.proc.stdin.write(f"delay {float(ms)}\n")
        self.proc.stdin.flush()
        self.delay_ms = float(ms)

    def stop(self) -> None:
        """Stop the proxy (closing stdin; then SIGTERM/SIGKILL if needed)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def _proxy_serve(upstream: tuple[str, int], state: dict[str, float]) -> None:
    """The proxy's event loop: accept, connect upstream, pump both ways (client→upstream delayed)."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(sender())
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(65536)
                due = loop.time() + (state["delay_ms"] / 1000.0 if delayed else 0.0)
                queue.put_nowait((due, data))
                if not data:
                    break
            await task
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            task.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*upstream)
        except OSError:  # upstream down: the client sees its connection closed
            cwriter.close()
            return
        await asyncio.gather(pump(creader, uwriter, True), pump(ureader, cwriter, False),
                             return_exceptions=True)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_done = loop.create_future()

    def read_commands() -> None:
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "delay":
                with contextlib.suppress(ValueError):
                    state["delay_ms"] = max(0.0, float(parts[1]))
        loop.call_soon_threadsafe(stdin_done.set_result, None)

    threading.Thread(target=read_commands, daemon=True).start()
    async with server:
        await stdin_done  # parent closed stdin (or died): stop


def _main(argv: list[str] | None = None) -> int:
    """``python -m axon_lab.faults proxy --upstream HOST:PORT`` (used by :class:`LatencyProxy`)."""
    parser = argparse.ArgumentParser(prog="axon_lab.faults")
    sub = parser.add_subparsers(dest="cmd", required=True)
    px = sub.add_parser("proxy", help="loopback TCP proxy with an adjustable delay (stdin: 'delay MS')")
    px.add_argument("--upstream", required=True, help="HOST:PORT (loopback only)")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    from axon_lab.api.server import is_loopback

    if not is_loopback(host):
        sys.stderr.write(f"refusing a non-loopback upstream {host!r}\n")
        return 1
    asyncio.run(_proxy_serve((host, int(port)), {"delay_ms": 0.0}))
    return 0


# --- the target -------------------------------------------------------------------------------
@dataclass
class FaultTarget:
    """The embedded Axon with fault injection on, its own redis-server and the Redis proxy.

    Attributes
    ----------
    url
        Base URL of the API (loopback).
    redis
        The lab-owned :class:`~axon_lab.stack.RedisServer` the API uses.
    proxy
        The :class:`LatencyProxy` between the API and Redis (``None`` when not used).
    """

    url: str
    redis: Any
    proxy: LatencyProxy | None
    log_path: Path | None = None
    _stack: contextlib.ExitStack | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return "embedded Axon (axon_lab, fault injection on, MongoDB stand-in: mongomock)"

    def inject(self, backend: str, mode: str, *, latency_ms: float = 0.0) -> None:
        """Start a fault (see the module docstring for how each is made)."""
        _check(backend, mode, latency_ms)
        if backend == "redis":
            if mode == "stop":
                self.redis.kill()
            elif mode == "pause":
                self.redis.pause()
            else:
                if self.proxy is None:
                    raise ConfigError("redis latency needs the proxy (start_fault_target(proxy=True))")
                self.proxy.set_delay(latency_ms)
            return
        self._faults_call("PUT", backend, {"mode": mode, "latency_ms": latency_ms})

    def clear(self, backend: str, mode: str) -> None:
        """End a fault: Redis restarted (empty) or resumed, the proxy's delay removed, the
        store wrapper cleared."""
        if backend == "redis":
            if mode == "stop":
                self.redis.start()
            elif mode == "pause":
                self.redis.resume()
            elif self.proxy is not None:
                self.proxy.set_delay(0.0)
            return
        self._faults_call("DELETE", backend, None)

    def _faults_call(self, method: str, backend: str, body: dict[str, Any] | None) -> None:
        import httpx

        r = httpx.request(method, f"{self.url}/api/v1/faults/{backend}", json=body, timeout=10.0)
        if r.status_code != 200:
            raise ConfigError(f"fault {method} {backend}: {r.json().get('error', r.text)}")

    def set_options(self, options: Any) -> dict[str, Any]:
        """PUT ``PipelineOptions`` (a model or a dict of overrides on the current ones)."""
        import httpx

        from axon_lab.pipeline import PipelineOptions

        if isinstance(options, PipelineOptions):
            body = options.model_dump()
        else:
            current = httpx.get(f"{self.url}/api/v1/options", timeout=10).json()
            body = {**current, **dict(options)}
        r = httpx.put(f"{self.url}/api/v1/options", json=body, timeout=10)
        if r.status_code != 200:
            raise ConfigError(f"options rejected: {r.json().get('error', r.text)}")
        return r.json()

    def warm_up(self, n: int = 3) -> None:
        """A few sequential requests (distinct prompts) so the first measured ones are not cold."""
        import httpx

        from axon_lab import workload

        with httpx.Client(timeout=60.0) as client:
            for prompt in workload.distinct_prompts(n):
                client.post(f"{self.url}{PROCESS_PATH}",
                            json={"prompt": f"{prompt} (warm-up)", "workspaceId": "test", "source": "axon_lab"})

    def policies(self) -> dict[str, Any]:
        """Each backend's timeouts, retries and deadline, as the server reports them in /metrics."""
        import httpx

        backends = httpx.get(f"{self.url}/metrics", timeout=10).json()["backends"]
        return {name: b["policy"] for name, b in backends.items()}

    def stop(self) -> None:
        """Stop the API, the proxy and Redis."""
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __enter__(self) -> FaultTarget:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<FaultTarget {self.url} redis={self.redis.public_url} proxy={self.proxy is not None}>"


def _check(backend: str, mode: str, latency_ms: float) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown fault mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "latency" and not latency_ms > 0:
        raise ConfigError("latency mode needs latency_ms > 0")


def start_fault_target(*, options: Any = None, proxy: bool = True, env: Mapping[str, str] | None = None,
                       log_path: Path | str | None = None, timeout_s: float = 300.0) -> FaultTarget:
    """Start Redis (+ the latency proxy) and the embedded Axon with fault injection on.

    Parameters
    ----------
    options
        ``PipelineOptions`` (or a dict of overrides) set on the server once it is up.
    proxy
        Put the :class:`LatencyProxy` between Axon and Redis (needed for Redis latency faults;
        it stays in the path for the whole run so before/during/after compare like with like).
    env
        Extra environment for the server (``AXON_DATA_DIR``, ``AXON_CORPUS_LIMIT``...).
        ``AXON_REDIS_URL`` is always set here, to the lab's own redis-server.
    log_path
        Where the server's output goes (default: discarded).
    """
    from axon_lab.api.server import running_server
    from axon_lab.stack import RedisServer

    stack = contextlib.ExitStack()
    try:
        redis = RedisServer().start()
        stack.callback(redis.stop)
        px = None
        redis_url = redis.url
        if proxy:
            px = LatencyProxy(redis.host, redis.port).start()
            stack.callback(px.stop)
            redis_url = f"redis://127.0.0.1:{px.port}/0"
        full_env = {**(env or {}), "AXON_REDIS_URL": redis_url, "AXON_FAULT_INJECTION": "1"}
        lp = Path(log_path) if log_path else None
        url = stack.enter_context(running_server(env=full_env, timeout_s=timeout_s, log_path=lp))
        target = FaultTarget(url, redis, px, lp, stack)
        if options is not None:
            target.set_options(options)
        target.warm_up()
        return target
    except BaseException:
        stack.close()
        raise


# --- health sampling and the fault schedule ----------------------------------------------------
class HealthSampler:
    """Polls ``GET /health`` every ``interval_s`` on a thread: unix time, status code, down list."""

    def __init__(self, url: str, *, interval_s: float = 0.25, timeout_s: float = 2.0) -> None:
        self.url = url.rstrip("/") + "/health"
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.rows: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="axon-health-sampler", daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.Client(timeout=self.timeout_s) as client:
            while not self._stop.is_set():
                t = time.time()
                t0 = time.perf_counter()
                code, down = 0, ""
                try:
                    r = client.get(self.url)
                    code = r.status_code
                    down = ",".join(r.json().get("down", []))
                except Exception as exc:  # server gone or not answering in time
                    down = f"no answer: {type(exc).__name__}"
                self.rows.append({"unix": t, "code": code, "down": down,
                                  "ms": (time.perf_counter() - t0) * 1000})
                self._stop.wait(self.interval_s)

    def start(self) -> HealthSampler:
        self._thread.start()
        return self

    def stop(self) -> pd.DataFrame:
        self._stop.set()
        self._thread.join(timeout=5)
        return pd.DataFrame(self.rows, columns=["unix", "code", "down", "ms"])


class _Schedule:
    """Starts the fault ``at_s`` after ``t0`` and ends it ``for_s`` later, logging both (wall
    clock) to the events file at once; the fault is always ended, even if the run fails."""

    def __init__(self, target: FaultTarget, plan: dict[str, Any], events_path: Path) -> None:
        self.target = target
        self.plan = plan
        self.events_path = events_path
        self.events: list[dict[str, Any]] = []
        self.error: str | None = None
        self._active = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="axon-fault-schedule", daemon=True)

    def _log(self, event: str, **detail: Any) -> None:
        self.events.append({"event": event, "unix": time.time(), **detail})
        jsonutil.write_json(self.events_path, {"plan": self.plan, "events": self.events})

    def _run(self) -> None:
        p = self.plan
        t0 = time.time()
        try:
            if self._stop.wait(p["at_s"]):
                return
            self._log("fault_start")
            self._active = True
            self.target.inject(p["backend"], p["mode"], latency_ms=p["latency_ms"] or 0.0)
            self._log("fault_injected")
            self._stop.wait(max(0.0, t0 + p["at_s"] + p["for_s"] - time.time()))
        except Exception as exc:
            self.error = redact_text(f"{type(exc).__name__}: {exc}")
            self._log("error", error=self.error)
        finally:
            self._end()

    def _end(self) -> None:
        if not self._active:
            return
        self._active = False
        self._log("fault_end")
        try:
            self.target.clear(self.plan["backend"], self.plan["mode"])
            self._log("fault_cleared")
        except Exception as exc:
            self.error = redact_text(f"could not end the fault: {type(exc).__name__}: {exc}")
            self._log("error", error=self.error)

    def start(self) -> _Schedule:
        self._log("scheduled", t0_unix=time.time())
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


# --- the experiment ---------------------------------------------------------------------------
@dataclass
class FaultRun:
    """A fault experiment's data and analysis (also rebuilt by :func:`read_fault_run`).

    Attributes
    ----------
    plan
        backend, mode, at_s, for_s, latency_ms, rate, duration_s...
    records
        The load run's per-request records plus ``t_s`` (s since the run's start),
        ``phase``, ``degraded`` and ``healthy`` columns.
    health
        ``/health`` samples: t_s, code, down, ms, phase.
    fault
        Actual fault start and end, s since the run's start (``start_s``, ``end_s``).
    summary
        The load run's ``summary.json`` (a stub if the run was killed).
    phases, recovery
        :func:`phase_table` and :func:`recovery` of the above.
    """

    plan: dict[str, Any]
    records: pd.DataFrame
    health: pd.DataFrame
    fault: dict[str, float | None]
    summary: dict[str, Any]
    phases: pd.DataFrame
    recovery: dict[str, Any]
    out_dir: Path | None = None
    error: str | None = None

    def __repr__(self) -> str:
        p = self.plan
        during = self.phases.set_index("phase").get("error_rate", pd.Series(dtype=float)).get("during")
        rec = self.recovery.get("recovery_s")
        return (f"<FaultRun {p['backend']} {p['mode']} at {p['at_s']:g}s for {p['for_s']:g}s: "
                f"{len(self.records)} requests, error rate during {_fmt_rate(during)}, "
                f"recovered in {'-' if rec is None else f'{rec:.2f}s'}>")


def _fmt_rate(v: Any) -> str:
    return "-" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{100 * v:.2f}%"


def default_prompts(backend: str) -> str:
    """``distinct`` for the stores (every request reaches them), ``mix`` for Redis (cache traffic)."""
    return "mix" if backend == "redis" else "distinct"


def run_fault(target: FaultTarget, *, backend: str = "redis", mode: str = "stop", at_s: float = 10.0,
              for_s: float = 10.0, duration_s: float = 40.0, latency_ms: float = 200.0, rate: float = 5.0,
              connections: int = 64, prompts: str | None = None, workspace: str = "test",
              timeout_s: float = 15.0, health_interval_s: float = 0.25, out_dir: Path | str | None = None,
              progress: bool = False, smoke: bool = False) -> FaultRun:
    """Run a load at a constant arrival rate and inject one fault into it.

    Parameters
    ----------
    target
        A :class:`FaultTarget` (:func:`start_fault_target`).
    backend, mode
        What to break (:data:`BACKENDS`) and how (:data:`MODES`).
    at_s, for_s
        The fault starts ``at_s`` after the load starts and lasts ``for_s``.
    duration_s
        Length of the load run (must leave time after the fault to see recovery).
    latency_ms
        Added latency in ``latency`` mode.
    rate, connections
        Open loop: requests per second and the connection-pool bound.
    prompts
        ``mix`` (Zipf-like repetition), ``distinct`` (every cache misses) or ``guide``;
        default :func:`default_prompts`.
    timeout_s
        Client timeout per request (a hang would show as timeouts).
    out_dir
        Where the records, ``health.parquet`` and ``fault_events.json`` go (default:
        ``reports/faults/runs/<backend>-<mode>``).
    smoke
        CI: shrink the run to 9 s (fault at 2.5 s for 2.5 s) through the same code path.
    """
    from axon_lab import workload
    from axon_lab.lab import run_dir
    from axon_lab.load import LoadRunner

    _check(backend, mode, latency_ms)
    if smoke:
        at_s, for_s, duration_s = min(at_s, 2.5), min(for_s, 2.5), min(duration_s, 9.0)
    if not (0 < at_s and for_s > 0 and at_s + for_s < duration_s):
        raise ConfigError(f"the fault (at {at_s:g}s for {for_s:g}s) must end before the run does ({duration_s:g}s)")
    prompts = prompts or default_prompts(backend)
    n = max(100, int(rate * duration_s * 1.2) + 10)
    if prompts == "distinct":
        texts = workload.distinct_prompts(n)
        # a per-run salt: a second experiment on the same server must miss the caches too
        salt = f"{time.time_ns() % 1_000_000:06d}"
        texts = [f"{t} [{salt}]" for t in texts]
    elif prompts == "mix":
        texts = workload.zipf_workload(n)
    elif prompts == "guide":
        texts = [workload.GUIDE_PROMPTS["baseline"]]
    else:
        raise ConfigError(f"prompts must be mix, distinct or guide, got {prompts!r}")
    out = Path(out_dir) if out_dir is not None else run_dir("faults", f"{backend}-{mode}")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    plan = {"backend": backend, "mode": mode, "at_s": float(at_s), "for_s": float(for_s),
            "duration_s": float(duration_s), "latency_ms": float(latency_ms) if mode == "latency" else None,
            "rate": float(rate), "connections": int(connections), "prompts": prompts, "timeout_s": float(timeout_s),
            "target": target.label, "policies": _safe_policies(target), "smoke": smoke}
    bodies = [{"prompt": t, "workspaceId": workspace, "source": "axon_lab"} for t in texts]
    runner = LoadRunner(url=f"{target.url}{PROCESS_PATH}", method="POST", bodies=bodies, rate=rate,
                        duration_s=duration_s, connections=connections, timeout_s=timeout_s, out_dir=out,
                        name=f"fault {backend} {mode}", checks=["status==200"], progress=progress,
                        abort_unreachable_s=max(10.0, for_s + 5.0),
                        parameters={"fault": {k: v for k, v in plan.items() if k != "policies"}})
    sampler = HealthSampler(target.url, interval_s=health_interval_s).start()
    schedule = _Schedule(target, {k: v for k, v in plan.items() if k != "policies"}, out / EVENTS_NAME).start()
    error = None
    try:
        result = runner.run()
    finally:
        schedule.stop()
        health = sampler.stop()
        health.to_parquet(out / HEALTH_NAME, index=False)
    if schedule.error:
        error = schedule.error
    run = analyze(plan, result.records, health, schedule.events, result.summary, out_dir=out)
    run.error = error
    return run


def _safe_policies(target: FaultTarget) -> dict[str, Any] | None:
    try:
        return target.policies()
    except Exception:  # a server without /metrics backends: the run still works
        return None


def _started_unix(summary: Mapping[str, Any], events: list[dict[str, Any]]) -> float:
    """The load run's start (wall clock): ``started_utc`` of the summary, else the schedule's t0."""
    started = summary.get("started_utc")
    if started:
        return _dt.datetime.fromisoformat(started).timestamp()
    for e in events:
        if e["event"] == "scheduled":
            return float(e.get("t0_unix", e["unix"]))
    raise InputFileError("fault run", "no start time (neither a summary nor a schedule event)")


def analyze(plan: Mapping[str, Any], records: pd.DataFrame, health: pd.DataFrame, events: list[dict[str, Any]],
            summary: Mapping[str, Any], *, out_dir: Path | None = None) -> FaultRun:
    """Align the records, health samples and fault events on the run's clock and analyze them."""
    t0 = _started_unix(summary, events)
    ev = {e["event"]: e["unix"] - t0 for e in events}
    # start/end: when the fault was begun/ended; restored: when the backend was back (a killed
    # Redis answers again) — recovery is timed from there.
    fault = {"start_s": ev.get("fault_start"), "end_s": ev.get("fault_end"),
             "restored_s": ev.get("fault_cleared", ev.get("fault_end"))}
    recs = records.copy()
    sent = recs["sent_ns"].where(recs["sent_ns"] >= 0, recs["intended_ns"]) if len(recs) else recs["sent_ns"]
    recs["t_s"] = sent.astype("float64") / 1e9
    recs["end_s"] = recs["end_ns"].where(recs["end_ns"] >= 0).astype("float64") / 1e9
    cache_cols = [c for c in recs.columns if c.startswith("cache.")]
    if cache_cols:
        recs["degraded"] = np.logical_or.reduce([recs[c].astype("string").fillna("").eq("degraded").to_numpy()
                                                 for c in cache_cols])
    else:
        recs["degraded"] = False
    recs["healthy"] = recs["outcome"].astype(str).eq("ok") & recs["status"].eq(200) & ~recs["degraded"]
    recs["phase"] = _phase(recs["t_s"], fault, recs["end_s"])
    h = health.copy()
    h["t_s"] = h["unix"] - t0 if len(h) else pd.Series(dtype=float)
    h["phase"] = _phase(h["t_s"], fault)
    phases = phase_table(recs)
    rec = recovery(recs, h, fault)
    return FaultRun(dict(plan), recs, h, fault, dict(summary), phases, rec, out_dir=out_dir)


def _phase(t: pd.Series, fault: Mapping[str, float | None], end: pd.Series | None = None) -> Any:
    """``before`` / ``during`` / ``after`` the fault. With ``end`` (a request's completion), a
    request belongs to ``during`` when it was in flight at any time during the fault — one
    sent just before it and failed by it is the fault's, not the baseline's."""
    start, stop = fault.get("start_s"), fault.get("end_s")
    out = pd.Series("before", index=t.index, dtype=object)
    if start is not None:
        hit = t >= start
        if end is not None:
            hit = hit | (end.fillna(np.inf) >= start)
        out[hit] = "during"
        if stop is not None:
            out[t >= stop] = "after"
    return pd.Categorical(out, categories=list(PHASES))


def phase_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per phase: requests, rps, errors and error rate (status ≠ 200 or no answer), 5xx, 503s,
    timeouts, degraded share, and response-time percentiles (nearest rank, ms) of all answers."""
    rows = []
    for phase in PHASES:
        g = records[records["phase"] == phase]
        n = len(g)
        ok = g["outcome"].astype(str).eq("ok") & g["status"].eq(200) if n else pd.Series(dtype=bool)
        timed = g[g["outcome"].astype(str).isin(["ok", "http_error", "timeout"])]["response_ms"].dropna()
        span = float(g["t_s"].max() - g["t_s"].min()) if n > 1 else 0.0
        row = {"phase": phase, "requests": n, "rps": n / span if span > 0 else None,
               "errors": int(n - ok.sum()) if n else 0,
               "error_rate": float(1 - ok.mean()) if n else None,
               "server_errors": int((g["status"] >= 500).sum()) if n else 0,
               "status_503": int((g["status"] == 503).sum()) if n else 0,
               "timeouts": int(g["outcome"].astype(str).eq("timeout").sum()) if n else 0,
               "degraded": int(g["degraded"].sum()) if n else 0,
               "degraded_share": float(g["degraded"].mean()) if n else None}
        for q in (50, 95, 99):
            row[f"p{q}_ms"] = stats.percentile(timed.to_numpy(), q) if len(timed) else None
        row["max_ms"] = float(timed.max()) if len(timed) else None
        rows.append(row)
    return pd.DataFrame(rows)


def recovery(records: pd.DataFrame, health: pd.DataFrame, fault: Mapping[str, float | None]) -> dict[str, Any]:
    """Detection and recovery times (s) around the fault.

    * ``detection_s``: fault start → the first unhealthy answer (completed after the start);
    * ``recovery_s``: backend restored (``restored_s``: a killed Redis answers again, a store
      wrapper is cleared) → the send time of the first request from which on *every* request
      sent is healthy (200, not degraded), i.e. from when new requests get full service again
      (0 when the first one after the restore already does); ``None`` if never;
    * ``health_recovery_s``: restored → the first ``/health`` 200 from which on all are 200;
    * ``latency_recovery_s``: restored → the send time of the first request (sent after the
      end) answered within the p95 of the healthy answers before the fault;
    * ``max_error_answer_ms``: the slowest answer that was not a success (how long a client
      waited for its 503 or timeout: the bound on a failure).
    """
    start, end = fault.get("start_s"), fault.get("end_s")
    restored = fault.get("restored_s", end)
    out: dict[str, Any] = {"fault_start_s": start, "fault_end_s": end, "restored_s": restored, "detection_s": None,
                           "recovery_s": None, "recovered": False, "health_recovery_s": None,
                           "latency_recovery_s": None,
                           "unhealthy_requests": int((~records["healthy"]).sum()) if len(records) else 0,
                           "max_error_answer_ms": None}
    if start is None or not len(records):
        return out
    r = records.sort_values("t_s")
    seen = r["end_s"].fillna(r["t_s"])
    bad = seen[(~r["healthy"]) & (seen >= start)]
    if len(bad):
        out["detection_s"] = float(bad.min() - start)
    failed = r[~r["outcome"].astype(str).eq("ok") | ~r["status"].eq(200)]
    if len(failed) and failed["response_ms"].notna().any():
        out["max_error_answer_ms"] = float(failed["response_ms"].max())
    if end is None or restored is None:
        return out
    after = r[r["t_s"] >= end]
    if len(after):
        healthy = after["healthy"].to_numpy()
        # the first index from which on everything is healthy: after the last unhealthy one
        unhealthy = np.flatnonzero(~healthy)
        first = 0 if not unhealthy.size else int(unhealthy[-1]) + 1
        if first < len(after):
            out["recovery_s"] = max(0.0, float(after["t_s"].iloc[first]) - restored)
            out["recovered"] = True
        # latency back to normal: the first request sent after the end answered within the
        # baseline's p95 (before the fault)
        base = r[(r["phase"] == "before") & r["healthy"]]["response_ms"].dropna()
        fast = after[after["healthy"] & (after["response_ms"] <= stats.percentile(base.to_numpy(), 95))] \
            if len(base) >= 5 else after.iloc[0:0]
        if len(fast):
            out["latency_recovery_s"] = max(0.0, float(fast["t_s"].iloc[0]) - restored)
    if len(health):
        h = health[health["t_s"] >= end].sort_values("t_s")
        ok = h["code"].eq(200).to_numpy()
        bad_h = np.flatnonzero(~ok)
        first_h = 0 if not bad_h.size else int(bad_h[-1]) + 1
        if first_h < len(h):
            out["health_recovery_s"] = max(0.0, float(h["t_s"].iloc[first_h] - restored))
    return out


def read_fault_run(path: Path | str) -> FaultRun:
    """Analyse a fault run directory again — also one whose process was killed mid-run
    (partial records, stub summary, the events logged so far)."""
    from axon_lab.load import read_records
    from axon_lab.load.summary import SUMMARY_NAME

    p = Path(path)
    doc = jsonutil.read_json(p / EVENTS_NAME, missing="not a fault run directory", want_object=True)
    try:
        summary = jsonutil.read_json(p / SUMMARY_NAME, missing="no summary", want_object=True)
    except InputFileError:  # killed before the stub summary was written: the events still count
        summary = {}
    try:
        records = read_records(p)
    except InputFileError:
        raise
    except Exception as exc:  # a records file cut short or overwritten: name it, one line
        raise InputFileError(p / "records.parquet", f"unreadable records ({type(exc).__name__}: {exc})") from None
    hp = p / HEALTH_NAME
    health = pd.read_parquet(hp) if hp.exists() else pd.DataFrame(columns=["unix", "code", "down", "ms"])
    return analyze(doc["plan"], records, health, doc["events"], summary, out_dir=p)


# --- results for sidecars and reports ---------------------------------------------------------
def timeline(run: FaultRun, bucket_s: float = 1.0) -> pd.DataFrame:
    """Per time bucket (by send time): requests, errors, 503s, degraded, p50/p95/max response (ms)."""
    r = run.records
    cols = ["t_s", "requests", "errors", "status_503", "degraded", "error_rate", "p50_ms", "p95_ms", "max_ms"]
    if r.empty:
        return pd.DataFrame(columns=cols)
    df = pd.DataFrame({"t_s": (r["t_s"] // bucket_s) * bucket_s, "bad": ~(r["outcome"].astype(str).eq("ok") & r["status"].eq(200)),
                       "s503": r["status"].eq(503), "deg": r["degraded"], "ms": r["response_ms"]})
    g = df.groupby("t_s")
    out = pd.DataFrame({
        "requests": g.size(), "errors": g["bad"].sum(), "status_503": g["s503"].sum(), "degraded": g["deg"].sum(),
        "p50_ms": g["ms"].agg(lambda v: stats.percentile(v.dropna(), 50) if v.notna().any() else np.nan),
        "p95_ms": g["ms"].agg(lambda v: stats.percentile(v.dropna(), 95) if v.notna().any() else np.nan),
        "max_ms": g["ms"].max(),
    }).reset_index()
    out["error_rate"] = out["errors"] / out["requests"]
    return out[cols]


def results(run: FaultRun) -> dict[str, Any]:
    """JSON-able results: the plan, the fault's actual times, phases, recovery, errors seen."""
    errs = run.records["error"].dropna().astype(str).value_counts().head(5) if len(run.records) else pd.Series(dtype=int)
    return {"plan": run.plan, "fault": run.fault, "phases": run.phases.to_dict(orient="records"),
            "recovery": run.recovery, "requests": int(len(run.records)),
            "incomplete": bool(run.summary.get("incomplete")), "top_errors": {str(k): int(v) for k, v in errs.items()},
            "health_samples": int(len(run.health)), "error": run.error}


def verdict(run: FaultRun, *, max_error_rate: float | None = None) -> dict[str, str]:
    """One line: pass when the service degraded as it should and recovered.

    Redis faults must not fail requests (error rate during the fault below ``max_error_rate``,
    default 1%); store faults may fail (503) but every failure must be answered within the
    policy's deadline plus a margin (no hang), and the service must recover after the fault.
    """
    p, ph = run.plan, run.phases.set_index("phase")
    rec = run.recovery
    during = ph.loc["during", "error_rate"] if "during" in ph.index else None
    after_err = ph.loc["after", "server_errors"] if "after" in ph.index else 0
    parts = [f"{p['backend']} {p['mode']}: error rate during {_fmt_rate(during)}"]
    status = "pass"
    if p["backend"] == "redis" and p["mode"] != "latency":
        limit = 0.01 if max_error_rate is None else max_error_rate
        if during is not None and not np.isnan(during) and during >= limit:
            status = "fail"
            parts.append(f"(limit {100 * limit:g}%: Redis must only degrade the service)")
    elif max_error_rate is not None and during is not None and not np.isnan(during) and during >= max_error_rate:
        status = "fail"
    if rec.get("max_error_answer_ms") is not None:
        parts.append(f"slowest failure {rec['max_error_answer_ms']:.0f} ms")
        deadline = ((p.get("policies") or {}).get(p["backend"]) or {}).get("deadline_s")
        if deadline is not None and rec["max_error_answer_ms"] > 1000 * (deadline + 5.0):
            status = "fail"
            parts.append(f"(beyond the {deadline:g}s deadline: a hang)")
    if rec.get("recovered"):
        parts.append(f"recovered {rec['recovery_s']:.2f}s after the fault")
    else:
        status = "fail"
        parts.append("did not recover before the run ended")
    if after_err and rec.get("recovered") is False:
        parts.append(f"{after_err} server errors after the fault")
    if run.error:
        status = "fail"
        parts.append(f"schedule error: {run.error}")
    return {"status": status, "summary": "; ".join(parts)}


if __name__ == "__main__":  # pragma: no cover - the proxy process
    sys.exit(_main())
