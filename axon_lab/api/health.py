"""``GET /health``: each store probed within a bound, 200 when all are up, 503 otherwise.

While the app is starting it answers at once with 503 and ``{"status": "starting" |
"building" | "loading" | "warming" | "failed", "progress": {stage, done, total, cached,
percent, texts_per_s, eta_s, elapsed_s}}``.
"""

from __future__ import annotations

import asyncio
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from axon_lab.api.metrics import Metrics

#: A store that does not answer its health probe within this is reported down: /health itself
#: must answer within the 1 s timeout that load balancers and Kubernetes probes use by default.
HEALTH_PROBE_TIMEOUT_S = 0.8

router = APIRouter()


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    metrics: Metrics = request.app.state.metrics
    if request.app.state.pipeline is None:  # starting: say how far, at once
        start = getattr(request.app.state, "startup", None)
        body = start.status() if start is not None else {"status": "starting"}
        metrics.requests.labels("/health", "503").inc()
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5"})
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
    return JSONResponse(
        {
            "status": status,
            "down": down,
            "backends": backends,
            "uptimeSeconds": round(time.time() - request.app.state.pipeline.started, 1),
        },
        status_code=code,
    )
