"""The HTTP surface of Axon (FastAPI): /health, /api/v1/prompts/process, /metrics, /metrics/prometheus.

Lab extensions: ``/api/v1/options`` (switch ``PipelineOptions``) and, only when the server
is started with ``AXON_FAULT_INJECTION=1``, ``/api/v1/faults`` (stop, pause or slow down a
backend the lab owns, for fault experiments).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, StrictStr, ValidationError, field_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

from axon_lab.config import Settings, get_settings
from axon_lab.errors import BackendUnavailable
from axon_lab.pipeline import MAX_PROMPT_CHARS, Pipeline, PipelineOptions, PromptTooLarge
from axon_lab.pipeline.core import FAULT_MODES, Fault
from axon_lab.redact import redact_text

log = logging.getLogger("axon_lab.api")

#: A store that does not answer its health probe within this is reported down: /health itself
#: must answer within the 1 s timeout that load balancers and Kubernetes probes use by default.
HEALTH_PROBE_TIMEOUT_S = 0.8
#: Request bodies above this many bytes are refused with 413 before parsing.
MAX_BODY_BYTES = 256 * 1024
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 30)


class ProcessRequest(BaseModel):
    """``POST /api/v1/prompts/process`` body (unknown fields are ignored, as Axon does)."""

    model_config = ConfigDict(extra="ignore")

    prompt: StrictStr = Field(..., description=f"the user prompt (at most {MAX_PROMPT_CHARS} characters)")
    workspaceId: StrictStr = Field(..., min_length=1, max_length=128)
    source: StrictStr = Field("api", max_length=64)

    @field_validator("prompt", "workspaceId", "source")
    @classmethod
    def _valid_unicode(cls, v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (not valid Unicode)") from None
        return v


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("axon_requests_total", "Total number of requests",
                                ["endpoint", "status"], registry=self.registry)
        self.errors = Counter("axon_errors_total", "Total number of errors", ["endpoint", "kind"],
                              registry=self.registry)
        self.duration = Histogram("axon_request_duration_seconds", "Request duration in seconds",
                                  ["endpoint"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.stage = Histogram("axon_stage_duration_seconds", "Pipeline stage duration in seconds",
                               ["stage"], buckets=STAGE_BUCKETS, registry=self.registry)
        self.cache = Counter("axon_cache_lookups_total", "Cache lookups by cache and result",
                             ["cache", "result"], registry=self.registry)
        self.backend_up = Gauge("axon_backend_up", "1 when the backend answered its last health check",
                                ["backend"], registry=self.registry)
        self.rss = Gauge("axon_process_resident_memory_bytes", "Resident memory of the API process",
                         registry=self.registry)


class BackendCollector:
    """Prometheus view of each backend's policy and counters, read from the pipeline at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Any:
        pipeline = getattr(self.app.state, "pipeline", None)
        if pipeline is None:
            return
        stats = pipeline.backend_stats()
        timeout = GaugeMetricFamily("axon_backend_timeout_seconds", "Timeout per attempt (Redis: per command)",
                                    labels=["backend"])
        retries = GaugeMetricFamily("axon_backend_retries", "Extra attempts after a failure", labels=["backend"])
        deadline = GaugeMetricFamily("axon_backend_deadline_seconds",
                                     "Longest a request waits on the backend before it is answered",
                                     labels=["backend"])
        circuit = GaugeMetricFamily("axon_backend_circuit_open",
                                    "1 while calls to the backend fail fast (circuit open or half-open)",
                                    labels=["backend"])
        calls = CounterMetricFamily("axon_backend_calls", "Backend calls by outcome", labels=["backend", "outcome"])
        for name, st in stats.items():
            pol = st["policy"]
            timeout.add_metric([name], float(pol["timeout_s"]))
            retries.add_metric([name], float(pol["retries"]))
            deadline.add_metric([name], float(pol["deadline_s"]))
            circuit.add_metric([name], 0.0 if st["state"] == "closed" else 1.0)
            if name == "redis":
                outcomes = {"error": st["errors"], "timeout": st["timeouts"], "skipped": st["skipped"],
                            "ok": st["calls"] - st["errors"] - st["skipped"]}
            else:
                outcomes = {"ok": st["ok"], "error": st["failures"] - st["timeouts"], "timeout": st["timeouts"],
                            "rejected": st["rejected"]}
            for outcome, n in outcomes.items():
                calls.add_metric([name, outcome], float(max(0, n)))
        yield from (timeout, retries, deadline, circuit, calls)


def _error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": redact_text(message), **extra}, status_code=status, headers=headers)


def fault_injection_enabled() -> bool:
    """True when ``AXON_FAULT_INJECTION`` is set to 1/true/yes (lab fault experiments)."""
    return os.environ.get("AXON_FAULT_INJECTION", "").strip().lower() in ("1", "true", "yes")


class FaultRequest(BaseModel):
    """``PUT /api/v1/faults/{backend}`` body."""

    model_config = ConfigDict(extra="forbid")

    mode: StrictStr = Field(..., description=f"one of {', '.join(FAULT_MODES)}")
    latency_ms: float = Field(0.0, ge=0, le=60_000)


def create_app(settings: Settings | None = None, options: PipelineOptions | None = None,
               *, load_corpus: bool = True, fault_injection: bool | None = None) -> FastAPI:
    """Build the app; the lifespan opens the stack (starting Redis if needed) and loads the corpus.

    ``fault_injection`` (default: ``AXON_FAULT_INJECTION``) enables ``/api/v1/faults``.
    """
    settings = settings or get_settings()
    faults_on = fault_injection_enabled() if fault_injection is None else fault_injection

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from axon_lab import corpus
        from axon_lab.stack import Stack

        stack = await asyncio.to_thread(Stack.open, settings)
        try:
            if load_corpus:
                info = await asyncio.to_thread(corpus.load_into, stack, settings.corpus_limit)
                log.info("corpus loaded: %s", info)
            pipeline = Pipeline(stack, options)
            await asyncio.to_thread(pipeline.warm_up)
            app.state.stack = stack
            app.state.pipeline = pipeline
            yield
        finally:
            if getattr(app.state, "pipeline", None) is not None:
                app.state.pipeline.close()
            with contextlib.suppress(Exception):
                await stack.cache.close()
            await asyncio.to_thread(stack.close)

    app = FastAPI(title="Axon (axon_lab)", version="1.0", lifespan=lifespan)
    metrics = Metrics()
    metrics.registry.register(BackendCollector(app))
    app.state.metrics = metrics
    app.state.pipeline = None
    proc = psutil.Process(os.getpid())

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Any) -> Response:
        length = request.headers.get("content-length")
        if length is not None:
            try:
                too_big = int(length) > MAX_BODY_BYTES
            except ValueError:
                return _error(400, "invalid Content-Length header")
            if too_big:
                return _error(413, f"request body is {length} bytes; the limit is {MAX_BODY_BYTES}")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
        msg = first.get("msg", "invalid request")
        if first.get("type") == "json_invalid":
            msg, loc = "body is not valid JSON", "body"
        metrics.requests.labels(request.url.path, "422").inc()
        return _error(422, f"{loc}: {msg}", field=loc,
                      detail=[{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errs])

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg, code = str(exc.detail), exc.status_code
        if code == 400 and "parsing the body" in msg:  # same answer as any other invalid JSON
            msg, code = "body: body is not valid JSON (malformed, not UTF-8, or nested too deeply)", 422
            metrics.requests.labels(request.url.path, str(code)).inc()
            return _error(code, msg, field="body")
        metrics.requests.labels(request.url.path, str(code)).inc()
        return _error(code, msg)

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        stack = request.app.state.stack
        guards = request.app.state.pipeline.guards
        t0 = time.perf_counter()
        # Store probes run in each store's own pool: a hung store cannot hang /health.
        checks = await asyncio.gather(
            stack.cache.ping(),
            guards["qdrant"].probe(stack.vectors.health, HEALTH_PROBE_TIMEOUT_S),
            guards["mongodb"].probe(stack.docs.health, HEALTH_PROBE_TIMEOUT_S),
            return_exceptions=True,
        )
        names = ("redis", "qdrant", "mongodb")
        kinds = ("redis-server", stack.vectors.kind, stack.docs.kind)
        backends = {}
        for name, kind, ok in zip(names, kinds, checks, strict=True):
            up = ok is True
            metrics.backend_up.labels(name).set(1 if up else 0)
            backends[name] = {"status": "up" if up else "down", "kind": kind}
        down = [n for n, b in backends.items() if b["status"] == "down"]
        status = "ok" if not down else "degraded"
        code = 200 if not down else 503
        metrics.requests.labels("/health", str(code)).inc()
        metrics.duration.labels("/health").observe(time.perf_counter() - t0)
        return JSONResponse({"status": status, "down": down, "backends": backends,
                             "uptimeSeconds": round(time.time() - request.app.state.pipeline.started, 1)},
                            status_code=code)

    @app.post("/api/v1/prompts/process")
    async def process(body: ProcessRequest, request: Request) -> Response:
        pipeline: Pipeline = request.app.state.pipeline
        t0 = time.perf_counter()
        path = "/api/v1/prompts/process"
        try:
            res = await pipeline.process(body.prompt, body.workspaceId, body.source)
        except PromptTooLarge as exc:
            metrics.requests.labels(path, "413").inc()
            return _error(413, str(exc), field="prompt")
        except BackendUnavailable as exc:
            metrics.requests.labels(path, "503").inc()
            metrics.errors.labels(path, exc.backend).inc()
            retry_after = str(max(1, math.ceil(pipeline.options.breaker_cooldown_s)))
            return _error(503, str(exc), headers={"Retry-After": retry_after}, backend=exc.backend)
        except Exception as exc:  # never leak a traceback; count it
            log.exception("process failed")
            metrics.requests.labels(path, "500").inc()
            metrics.errors.labels(path, type(exc).__name__).inc()
            return _error(500, f"internal error: {type(exc).__name__}")
        elapsed = time.perf_counter() - t0
        metrics.requests.labels(path, "200").inc()
        metrics.duration.labels(path).observe(elapsed)
        for stage, ms in res.body["metadata"]["latency"].items():
            if stage != "total":
                metrics.stage.labels(stage).observe(ms / 1000)
        for cache, result in res.cache.items():
            metrics.cache.labels(cache, result).inc()
        if request.headers.get("x-axon-trace", "").lower() in ("1", "true", "yes"):
            res.body["metadata"]["timeline"] = res.timeline
        headers = {
            "Server-Timing": res.server_timing,
            "X-Axon-Cache": ", ".join(f"{k}={v}" for k, v in sorted(res.cache.items())),
            "X-Request-Id": res.body["metadata"]["requestId"],
        }
        if res.degraded:
            headers["X-Axon-Degraded"] = ",".join(res.degraded)
        return JSONResponse(res.body, headers=headers)

    def process_info() -> dict[str, Any]:
        with proc.oneshot():
            return {"pid": proc.pid, "rss_bytes": proc.memory_info().rss,
                    "cpu_percent": proc.cpu_percent(None), "threads": proc.num_threads()}

    @app.get("/metrics")
    async def metrics_json(request: Request) -> JSONResponse:
        # Off the event loop: the per-stage summary can take seconds to compute (it is cached).
        data = await asyncio.to_thread(request.app.state.pipeline.metrics)
        data["process"] = process_info()
        return JSONResponse(data)

    @app.get("/metrics/process")
    async def metrics_process() -> JSONResponse:
        """RSS, CPU% and threads of the API process only: cheap, for samplers polling often."""
        return JSONResponse(process_info())

    @app.get("/metrics/prometheus")
    async def metrics_prometheus() -> Response:
        metrics.rss.set(proc.memory_info().rss)
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/api/v1/options")
    async def get_options(request: Request) -> JSONResponse:
        return JSONResponse(request.app.state.pipeline.options.model_dump())

    @app.put("/api/v1/options")
    async def put_options(request: Request) -> JSONResponse:
        """Switch ``PipelineOptions`` (before/after experiments against a running server)."""
        try:
            opts = PipelineOptions.model_validate(await request.json())
        except ValidationError as exc:
            e = exc.errors()[0]
            return _error(422, f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
        except ValueError:
            return _error(422, "body is not valid JSON")
        request.app.state.pipeline.set_options(opts)
        return JSONResponse(opts.model_dump())

    @app.get("/api/v1/faults")
    async def get_faults(request: Request) -> JSONResponse:
        if not faults_on:
            return _faults_off()
        return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})

    @app.put("/api/v1/faults/{backend}")
    async def put_fault(backend: str, body: FaultRequest, request: Request) -> JSONResponse:
        """Inject a fault into a backend the lab owns (``AXON_FAULT_INJECTION=1`` only)."""
        if not faults_on:
            return _faults_off()
        stack, pipeline = request.app.state.stack, request.app.state.pipeline
        if body.mode not in FAULT_MODES:
            return _error(422, f"mode: unknown fault mode {body.mode!r}; valid: {', '.join(FAULT_MODES)}",
                          field="mode")
        if backend == "redis":
            server = stack.redis_server
            if server is None:
                return _error(409, "redis: not owned by this server (AXON_REDIS_URL is set); fault the "
                                   "redis-server where it runs", field="backend")
            if body.mode == "latency":
                return _error(422, "redis: latency needs a TCP proxy in front of Redis; use a fault target "
                                   "(axon_lab.faults.start_fault_target)", field="mode")
            await asyncio.to_thread(server.kill if body.mode == "stop" else server.pause)
            request.app.state.redis_fault = {"mode": body.mode, "since_unix": time.time()}
        elif backend in pipeline.guards:
            try:
                fault = Fault(body.mode, latency_ms=body.latency_ms)
            except ValueError as exc:
                return _error(422, f"latency_ms: {exc}", field="latency_ms")
            pipeline.guards[backend].set_fault(fault)
        else:
            return _error(404, f"unknown backend {backend!r}; valid: redis, {', '.join(sorted(pipeline.guards))}",
                          field="backend")
        log.warning("fault injected: %s %s", backend, body.mode)
        return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})

    @app.delete("/api/v1/faults/{backend}")
    async def clear_fault(backend: str, request: Request) -> JSONResponse:
        """End a fault: a stopped redis-server is started again, a paused one resumed."""
        if not faults_on:
            return _faults_off()
        stack, pipeline = request.app.state.stack, request.app.state.pipeline
        if backend == "redis":
            current = getattr(request.app.state, "redis_fault", None)
            if current is not None and stack.redis_server is not None:
                fn = stack.redis_server.resume if current["mode"] == "pause" else stack.redis_server.restart
                await asyncio.to_thread(fn)
            request.app.state.redis_fault = None
        elif backend in pipeline.guards:
            pipeline.guards[backend].set_fault(None)
        else:
            return _error(404, f"unknown backend {backend!r}; valid: redis, {', '.join(sorted(pipeline.guards))}",
                          field="backend")
        log.warning("fault cleared: %s", backend)
        return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})

    return app


def _faults_off() -> JSONResponse:
    return _error(404, "fault injection is off: start the server with AXON_FAULT_INJECTION=1 "
                       "(lab fault experiments only)")


def _fault_state(app: FastAPI) -> dict[str, Any]:
    guards = app.state.pipeline.guards
    out: dict[str, Any] = {"redis": getattr(app.state, "redis_fault", None)}
    out.update({name: g.fault.to_dict() if g.fault else None for name, g in guards.items()})
    return out
