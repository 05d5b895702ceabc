"""Metrics of the API: the Prometheus collectors and ``/metrics``, ``/metrics/process``, ``/metrics/prometheus``."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psutil
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.5, 1, 2, 3, 5, 10, 30)

router = APIRouter()


class Metrics:
    """Prometheus metrics of one app (own registry, so several apps can live in one process)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "axon_requests_total",
            "Total number of requests",
            ["endpoint", "status"],
            registry=self.registry,
        )
        self.errors = Counter(
            "axon_errors_total",
            "Total number of errors",
            ["endpoint", "kind"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "axon_request_duration_seconds",
            "Request duration in seconds",
            ["endpoint"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.stage = Histogram(
            "axon_stage_duration_seconds",
            "Pipeline stage duration in seconds",
            ["stage"],
            buckets=STAGE_BUCKETS,
            registry=self.registry,
        )
        self.cache = Counter(
            "axon_cache_lookups_total",
            "Cache lookups by cache and result",
            ["cache", "result"],
            registry=self.registry,
        )
        self.backend_up = Gauge(
            "axon_backend_up",
            "1 when the backend answered its last health check",
            ["backend"],
            registry=self.registry,
        )
        self.rss = Gauge(
            "axon_process_resident_memory_bytes",
            "Resident memory of the API process",
            registry=self.registry,
        )


class BackendCollector:
    """Prometheus view of each backend's policy and counters, read from the pipeline at scrape time."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def collect(self) -> Any:
        """Yield the backend gauges and call counters (nothing before the pipeline is up).

        Yields
        ------
        GaugeMetricFamily or CounterMetricFamily
            Timeout, retries, deadline and circuit state per backend, then calls by outcome.
        """
        pipeline = getattr(self.app.state, "pipeline", None)
        if pipeline is None:
            return
        stats = pipeline.backend_stats()
        timeout = GaugeMetricFamily(
            "axon_backend_timeout_seconds",
            "Timeout per attempt (Redis: per command)",
            labels=["backend"],
        )
        retries = GaugeMetricFamily(
            "axon_backend_retries", "Extra attempts after a failure", labels=["backend"]
        )
        deadline = GaugeMetricFamily(
            "axon_backend_deadline_seconds",
            "Longest a request waits on the backend before it is answered",
            labels=["backend"],
        )
        circuit = GaugeMetricFamily(
            "axon_backend_circuit_open",
            "1 while calls to the backend fail fast (circuit open or half-open)",
            labels=["backend"],
        )
        calls = CounterMetricFamily(
            "axon_backend_calls", "Backend calls by outcome", labels=["backend", "outcome"]
        )
        for name, st in stats.items():
            pol = st["policy"]
            timeout.add_metric([name], float(pol["timeout_s"]))
            retries.add_metric([name], float(pol["retries"]))
            deadline.add_metric([name], float(pol["deadline_s"]))
            circuit.add_metric([name], 0.0 if st["state"] == "closed" else 1.0)
            if name == "redis":
                outcomes = {
                    "error": st["errors"],
                    "timeout": st["timeouts"],
                    "skipped": st["skipped"],
                    "ok": st["calls"] - st["errors"] - st["skipped"],
                }
            else:
                outcomes = {
                    "ok": st["ok"],
                    "error": st["failures"] - st["timeouts"],
                    "timeout": st["timeouts"],
                    "rejected": st["rejected"],
                }
            for outcome, n in outcomes.items():
                calls.add_metric([name, outcome], float(max(0, n)))
        yield from (timeout, retries, deadline, circuit, calls)


def install_metrics(app: FastAPI) -> Metrics:
    """Give ``app`` its metrics: ``state.metrics`` (with the backend collector) and ``state.api_process``.

    Parameters
    ----------
    app : FastAPI
        The application.

    Returns
    -------
    Metrics
        The app's metrics, also stored as ``app.state.metrics``.
    """
    metrics = Metrics()
    metrics.registry.register(BackendCollector(app))
    app.state.metrics = metrics
    # One handle per app: psutil's cpu_percent(None) is the CPU share since this handle's last call.
    app.state.api_process = psutil.Process(os.getpid())
    return metrics


def process_info(proc: psutil.Process) -> dict[str, Any]:
    """Read pid, resident memory, CPU share since the last call and thread count of ``proc``.

    Parameters
    ----------
    proc : psutil.Process
        The API process handle (``app.state.api_process``).

    Returns
    -------
    dict
        ``pid``, ``rss_bytes``, ``cpu_percent`` and ``threads``.
    """
    with proc.oneshot():
        return {
            "pid": proc.pid,
            "rss_bytes": proc.memory_info().rss,
            "cpu_percent": proc.cpu_percent(None),
            "threads": proc.num_threads(),
        }


@router.get("/metrics")
async def metrics_json(request: Request) -> JSONResponse:
    # Off the event loop: the per-stage summary can take seconds to compute (it is cached).
    data = await asyncio.to_thread(request.app.state.pipeline.metrics)
    data["process"] = process_info(request.app.state.api_process)
    return JSONResponse(data)


@router.get("/metrics/process")
async def metrics_process(request: Request) -> JSONResponse:
    """RSS, CPU% and threads of the API process only: cheap, for samplers polling often."""
    return JSONResponse(process_info(request.app.state.api_process))


@router.get("/metrics/prometheus")
async def metrics_prometheus(request: Request) -> Response:
    metrics: Metrics = request.app.state.metrics
    metrics.rss.set(request.app.state.api_process.memory_info().rss)
    return PlainTextResponse(
        generate_latest(metrics.registry).decode(), media_type=CONTENT_TYPE_LATEST
    )
