"""``POST /api/v1/prompts/process``: its request body, the pipeline call and the timing and cache headers."""

from __future__ import annotations

import logging
import math
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

from axon_lab.api.errors import error_response
from axon_lab.api.metrics import Metrics
from axon_lab.errors import BackendUnavailable
from axon_lab.pipeline import MAX_PROMPT_CHARS, Pipeline, PromptTooLarge

log = logging.getLogger("axon_lab.api")

PROCESS_PATH = "/api/v1/prompts/process"

router = APIRouter()


class ProcessRequest(BaseModel):
    """``POST /api/v1/prompts/process`` body (unknown fields are ignored, as Axon does)."""

    model_config = ConfigDict(extra="ignore")

    prompt: StrictStr = Field(
        ..., description=f"the user prompt (at most {MAX_PROMPT_CHARS} characters)"
    )
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


@router.post(PROCESS_PATH)
async def process(body: ProcessRequest, request: Request) -> Response:
    pipeline: Pipeline = request.app.state.pipeline
    metrics: Metrics = request.app.state.metrics
    t0 = time.perf_counter()
    try:
        res = await pipeline.process(body.prompt, body.workspaceId, body.source)
    except PromptTooLarge as exc:
        metrics.requests.labels(PROCESS_PATH, "413").inc()
        return error_response(413, str(exc), field="prompt")
    except BackendUnavailable as exc:
        metrics.requests.labels(PROCESS_PATH, "503").inc()
        metrics.errors.labels(PROCESS_PATH, exc.backend).inc()
        retry_after = str(max(1, math.ceil(pipeline.options.breaker_cooldown_s)))
        return error_response(
            503, str(exc), headers={"Retry-After": retry_after}, backend=exc.backend
        )
    except Exception as exc:  # never leak a traceback; count it
        log.exception("process failed")
        metrics.requests.labels(PROCESS_PATH, "500").inc()
        metrics.errors.labels(PROCESS_PATH, type(exc).__name__).inc()
        return error_response(500, f"internal error: {type(exc).__name__}")
    elapsed = time.perf_counter() - t0
    metrics.requests.labels(PROCESS_PATH, "200").inc()
    metrics.duration.labels(PROCESS_PATH).observe(elapsed)
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
