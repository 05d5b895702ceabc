"""``POST /api/v1/prompts/process``: its request body, the pipeline call and the timing and cache headers.

With ``"stream": true`` the answer is the real Axon API's Server-Sent Events stream instead
(``apps/api/src/routes/prompts.ts``): see :func:`stream_events`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, field_validator

from axon_lab.api.errors import error_response
from axon_lab.api.metrics import Metrics
from axon_lab.errors import BackendUnavailable
from axon_lab.pipeline import (
    MAX_PROMPT_CHARS,
    Pipeline,
    PromptTooLarge,
    StageResult,
    check_prompt,
    stream_error_message,
)

log = logging.getLogger("axon_lab.api")

PROCESS_PATH = "/api/v1/prompts/process"

#: Headers of a streamed answer, as the real route sets them (``Content-Type`` without a
#: charset, as Express sends it when the route sets the header itself).
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "Connection": "keep-alive",
    "X-Accel-Buffering": "no",
}
#: The stream's last line after a success (not after an error, as in the real route).
SSE_DONE = "data: [DONE]\n\n"

router = APIRouter()


class CursorPosition(BaseModel):
    """``metadata.cursorPosition`` (numbers, as zod's ``z.number()``)."""

    model_config = ConfigDict(extra="ignore")

    line: float = Field(..., strict=True)
    column: float = Field(..., strict=True)


class PromptMetadata(BaseModel):
    """``metadata`` of the real API's body (editor context); validated, then ignored by the
    pipeline. Unknown keys are dropped, as zod's ``z.object`` does.
    """

    model_config = ConfigDict(extra="ignore")

    fileName: StrictStr | None = None
    language: StrictStr | None = None
    cursorPosition: CursorPosition | None = None


class ProcessRequest(BaseModel):
    """``POST /api/v1/prompts/process`` body (unknown fields are ignored, as Axon does)."""

    model_config = ConfigDict(extra="ignore")

    prompt: StrictStr = Field(
        ..., description=f"the user prompt (at most {MAX_PROMPT_CHARS} characters)"
    )
    workspaceId: StrictStr = Field(..., min_length=1, max_length=128)
    source: StrictStr = Field("api", max_length=64)
    metadata: PromptMetadata | None = Field(
        None, description="editor context (fileName, language, cursorPosition); not used"
    )
    stream: StrictBool = Field(
        False, description="answer as Server-Sent Events (the real Axon API's stream)"
    )

    @field_validator("prompt", "workspaceId", "source")
    @classmethod
    def _valid_unicode(cls, v: str) -> str:
        try:
            v.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("contains a lone surrogate (not valid Unicode)") from None
        return v


def _sse(doc: dict[str, Any]) -> str:
    """One event as the real route writes it: ``data: <JSON.stringify(doc)>`` and a blank line."""
    return f"data: {json.dumps(doc, separators=(',', ':'), ensure_ascii=False)}\n\n"


def _observe(metrics: Metrics, res: StageResult) -> None:
    """Per-stage durations and cache outcomes of one processed request into the metrics."""
    for stage, ms in res.body["metadata"]["latency"].items():
        if stage != "total":
            metrics.stage.labels(stage).observe(ms / 1000)
    for cache, result in res.cache.items():
        metrics.cache.labels(cache, result).inc()


async def stream_events(
    body: ProcessRequest, pipeline: Pipeline, metrics: Metrics
) -> AsyncIterator[str]:
    """The body of a streamed answer, written as the stages run (the real route's SSE format).

    ``data: {"type":"start","requestId":"streaming"}``, then each chunk of
    :meth:`Pipeline.process_stream` as ``data: <json>``, then ``data: [DONE]``. Every event is
    followed by a blank line; there is no ``event:`` field.

    The status (200) and headers are sent before any stage runs, so a failure midway (a
    backend down or hung past its deadline) cannot become a 503: the stream carries the
    pipeline's ``error`` event (``{"data": {"error": <message>}}``) and the route's own
    ``{"type":"error","error":{"code":"STREAMING_ERROR","message":...}}``, then ends without
    ``[DONE]``, exactly as the real route does. The request counts as status 200 in the
    Prometheus metrics (with its error in ``axon_errors_total``), and there is no
    ``Server-Timing`` header: the stage latencies are in the ``complete`` event's ``latency``.
    """
    t0 = time.perf_counter()
    try:
        yield _sse({"type": "start", "requestId": "streaming"})
        try:
            async for event in pipeline.process_stream(
                body.prompt,
                body.workspaceId,
                body.source,
                on_result=functools.partial(_observe, metrics),
            ):
                yield _sse(event)
        except Exception as exc:
            if isinstance(exc, BackendUnavailable):
                metrics.errors.labels(PROCESS_PATH, exc.backend).inc()
            else:
                log.exception("streamed process failed")
                metrics.errors.labels(PROCESS_PATH, type(exc).__name__).inc()
            error = {"code": "STREAMING_ERROR", "message": stream_error_message(exc)}
            yield _sse({"type": "error", "error": error})
            return
        yield SSE_DONE
    finally:  # also when the client went away: the status was sent
        metrics.requests.labels(PROCESS_PATH, "200").inc()
        metrics.duration.labels(PROCESS_PATH).observe(time.perf_counter() - t0)


def _stream(body: ProcessRequest, pipeline: Pipeline, metrics: Metrics) -> Response:
    """A streamed answer (:func:`stream_events`); a too-large prompt is still a 413, checked
    before the stream starts.
    """
    try:
        check_prompt(body.prompt)
    except PromptTooLarge as exc:
        metrics.requests.labels(PROCESS_PATH, "413").inc()
        return error_response(413, str(exc), field="prompt")
    return StreamingResponse(
        stream_events(body, pipeline, metrics),
        media_type="text/event-stream",
        headers=SSE_HEADERS,
    )


@router.post(PROCESS_PATH)
async def process(body: ProcessRequest, request: Request) -> Response:
    """Process a prompt: JSON with ``Server-Timing`` and cache headers, or with
    ``"stream": true`` the real Axon API's Server-Sent Events.
    """
    pipeline: Pipeline = request.app.state.pipeline
    metrics: Metrics = request.app.state.metrics
    if body.stream:
        return _stream(body, pipeline, metrics)
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
    _observe(metrics, res)
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
