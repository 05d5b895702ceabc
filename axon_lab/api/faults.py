"""``/api/v1/faults``: stop, pause or slow down a backend the lab owns (only with ``AXON_FAULT_INJECTION=1``)."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StrictStr

from axon_lab.api.errors import error_response
from axon_lab.pipeline.core import FAULT_MODES, Fault

log = logging.getLogger("axon_lab.api")

router = APIRouter()


def fault_injection_enabled() -> bool:
    """True when ``AXON_FAULT_INJECTION`` is set to 1/true/yes (lab fault experiments)."""
    return os.environ.get("AXON_FAULT_INJECTION", "").strip().lower() in ("1", "true", "yes")


class FaultRequest(BaseModel):
    """``PUT /api/v1/faults/{backend}`` body."""

    model_config = ConfigDict(extra="forbid")

    mode: StrictStr = Field(..., description=f"one of {', '.join(FAULT_MODES)}")
    latency_ms: float = Field(0.0, ge=0, le=60_000)


@router.get("/api/v1/faults")
async def get_faults(request: Request) -> JSONResponse:
    if not request.app.state.fault_injection:
        return _faults_off()
    return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})


@router.put("/api/v1/faults/{backend}")
async def put_fault(backend: str, body: FaultRequest, request: Request) -> JSONResponse:
    """Inject a fault into a backend the lab owns (``AXON_FAULT_INJECTION=1`` only)."""
    if not request.app.state.fault_injection:
        return _faults_off()
    stack, pipeline = request.app.state.stack, request.app.state.pipeline
    if body.mode not in FAULT_MODES:
        return error_response(
            422,
            f"mode: unknown fault mode {body.mode!r}; valid: {', '.join(FAULT_MODES)}",
            field="mode",
        )
    if backend == "redis":
        server = stack.redis_server
        if server is None:
            return error_response(
                409,
                "redis: not owned by this server (AXON_REDIS_URL is set); fault the "
                "redis-server where it runs",
                field="backend",
            )
        if body.mode == "latency":
            return error_response(
                422,
                "redis: latency needs a TCP proxy in front of Redis; use a fault target "
                "(axon_lab.faults.start_fault_target)",
                field="mode",
            )
        await asyncio.to_thread(server.kill if body.mode == "stop" else server.pause)
        request.app.state.redis_fault = {"mode": body.mode, "since_unix": time.time()}
    elif backend in pipeline.guards:
        try:
            fault = Fault(body.mode, latency_ms=body.latency_ms)
        except ValueError as exc:
            return error_response(422, f"latency_ms: {exc}", field="latency_ms")
        pipeline.guards[backend].set_fault(fault)
    else:
        return _unknown_backend(backend, pipeline.guards)
    log.warning("fault injected: %s %s", backend, body.mode)
    return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})


@router.delete("/api/v1/faults/{backend}")
async def clear_fault(backend: str, request: Request) -> JSONResponse:
    """End a fault: a stopped redis-server is started again, a paused one resumed."""
    if not request.app.state.fault_injection:
        return _faults_off()
    stack, pipeline = request.app.state.stack, request.app.state.pipeline
    if backend == "redis":
        current = getattr(request.app.state, "redis_fault", None)
        if current is not None and stack.redis_server is not None:
            fn = (
                stack.redis_server.resume
                if current["mode"] == "pause"
                else stack.redis_server.restart
            )
            await asyncio.to_thread(fn)
        request.app.state.redis_fault = None
    elif backend in pipeline.guards:
        pipeline.guards[backend].set_fault(None)
    else:
        return _unknown_backend(backend, pipeline.guards)
    log.warning("fault cleared: %s", backend)
    return JSONResponse({"enabled": True, "faults": _fault_state(request.app)})


def _faults_off() -> JSONResponse:
    return error_response(
        404,
        "fault injection is off: start the server with AXON_FAULT_INJECTION=1 "
        "(lab fault experiments only)",
    )


def _unknown_backend(backend: str, guards: dict[str, Any]) -> JSONResponse:
    return error_response(
        404,
        f"unknown backend {backend!r}; valid: redis, {', '.join(sorted(guards))}",
        field="backend",
    )


def _fault_state(app: FastAPI) -> dict[str, Any]:
    guards = app.state.pipeline.guards
    out: dict[str, Any] = {"redis": getattr(app.state, "redis_fault", None)}
    out.update({name: g.fault.to_dict() if g.fault else None for name, g in guards.items()})
    return out
