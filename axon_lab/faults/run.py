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
error rate is not hidden by coordinated omission) writes per-request records; a
:class:`~axon_lab.samplers.HealthSampler` polls ``/health``; the fault's start and end are
logged with wall-clock times and aligned to the load run's start. The analysis
(:mod:`axon_lab.faults.analysis`) gives, per phase (before / during / after), requests, error
rate, server errors, share of degraded responses and latency percentiles
(:func:`~axon_lab.faults.analysis.phase_table`), and the time from the end of the fault until
requests are healthy again for good (every later request answered 200 and not degraded), the
same from ``/health``, and how fast the fault was detected
(:func:`~axon_lab.faults.analysis.recovery`). A killed experiment still leaves its records and
events file; :func:`read_fault_run` analyzes it.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from axon_lab import jsonutil, workload
from axon_lab.errors import ConfigError, InputFileError
from axon_lab.faults.analysis import FaultRun, analyze
from axon_lab.faults.proxy import LatencyProxy
from axon_lab.redact import redact_text
from axon_lab.samplers import HealthSampler

BACKENDS: tuple[str, ...] = ("redis", "qdrant", "mongodb")
MODES: tuple[str, ...] = ("stop", "pause", "latency")
EVENTS_NAME = "fault_events.json"
HEALTH_NAME = "health.parquet"
PROCESS_PATH = "/api/v1/prompts/process"


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
                    raise ConfigError(
                        "redis latency needs the proxy (start_fault_target(proxy=True))"
                    )
                self.proxy.set_delay(latency_ms)
            return
        self._faults_call("PUT", backend, {"mode": mode, "latency_ms": latency_ms})

    def clear(self, backend: str, mode: str) -> None:
        """End a fault: Redis restarted (empty) or resumed, the proxy's delay removed, the
        store wrapper cleared.
        """
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

        texts = [f"{prompt} (warm-up)" for prompt in workload.distinct_prompts(n)]
        with httpx.Client(timeout=60.0) as client:
            for body in workload.prompt_bodies(texts):
                client.post(f"{self.url}{PROCESS_PATH}", json=body)

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
        return (
            f"<FaultTarget {self.url} redis={self.redis.public_url} proxy={self.proxy is not None}>"
        )


def _check(backend: str, mode: str, latency_ms: float) -> None:
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if mode not in MODES:
        raise ConfigError(f"unknown fault mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "latency" and not latency_ms > 0:
        raise ConfigError("latency mode needs latency_ms > 0")


def start_fault_target(
    *,
    options: Any = None,
    proxy: bool = True,
    env: Mapping[str, str] | None = None,
    log_path: Path | str | None = None,
    timeout_s: float = 300.0,
) -> FaultTarget:
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


# --- the fault schedule -----------------------------------------------------------------------
class _Schedule:
    """Starts the fault ``at_s`` after ``t0`` and ends it ``for_s`` later, logging both (wall
    clock) to the events file at once; the fault is always ended, even if the run fails.
    """

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
def default_prompts(backend: str) -> str:
    """``distinct`` for the stores (every request reaches them), ``mix`` for Redis (cache traffic)."""
    return "mix" if backend == "redis" else "distinct"


def run_fault(
    target: FaultTarget,
    *,
    backend: str = "redis",
    mode: str = "stop",
    at_s: float = 10.0,
    for_s: float = 10.0,
    duration_s: float = 40.0,
    latency_ms: float = 200.0,
    rate: float = 5.0,
    connections: int = 64,
    prompts: str | None = None,
    workspace: str = "test",
    timeout_s: float = 15.0,
    health_interval_s: float = 0.25,
    out_dir: Path | str | None = None,
    progress: bool = False,
    smoke: bool = False,
) -> FaultRun:
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
    from axon_lab.lab import run_dir
    from axon_lab.load import LoadRunner

    _check(backend, mode, latency_ms)
    if smoke:
        at_s, for_s, duration_s = min(at_s, 2.5), min(for_s, 2.5), min(duration_s, 9.0)
    if not (0 < at_s and for_s > 0 and at_s + for_s < duration_s):
        raise ConfigError(
            f"the fault (at {at_s:g}s for {for_s:g}s) must end before the run does ({duration_s:g}s)"
        )
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
    plan = {
        "backend": backend,
        "mode": mode,
        "at_s": float(at_s),
        "for_s": float(for_s),
        "duration_s": float(duration_s),
        "latency_ms": float(latency_ms) if mode == "latency" else None,
        "rate": float(rate),
        "connections": int(connections),
        "prompts": prompts,
        "timeout_s": float(timeout_s),
        "target": target.label,
        "policies": _safe_policies(target),
        "smoke": smoke,
    }
    runner = LoadRunner(
        url=f"{target.url}{PROCESS_PATH}",
        method="POST",
        bodies=workload.prompt_bodies(texts, workspace),
        rate=rate,
        duration_s=duration_s,
        connections=connections,
        timeout_s=timeout_s,
        out_dir=out,
        name=f"fault {backend} {mode}",
        checks=["status==200"],
        progress=progress,
        abort_unreachable_s=max(10.0, for_s + 5.0),
        parameters={"fault": {k: v for k, v in plan.items() if k != "policies"}},
    )
    sampler = HealthSampler(target.url, interval_s=health_interval_s).start()
    schedule = _Schedule(
        target, {k: v for k, v in plan.items() if k != "policies"}, out / EVENTS_NAME
    ).start()
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


def read_fault_run(path: Path | str) -> FaultRun:
    """Analyse a fault run directory again — also one whose process was killed mid-run
    (partial records, stub summary, the events logged so far).
    """
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
        raise InputFileError(
            p / "records.parquet", f"unreadable records ({type(exc).__name__}: {exc})"
        ) from None
    hp = p / HEALTH_NAME
    health = (
        pd.read_parquet(hp)
        if hp.exists()
        else pd.DataFrame(columns=[HealthSampler.clock, *HealthSampler.columns])
    )
    return analyze(doc["plan"], records, health, doc["events"], summary, out_dir=p)
