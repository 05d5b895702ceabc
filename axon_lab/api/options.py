"""``GET`` and ``PUT /api/v1/options``: read or switch the running pipeline's ``PipelineOptions``."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from axon_lab.api.errors import error_response
from axon_lab.pipeline import PipelineOptions

router = APIRouter()


@router.get("/api/v1/options")
async def get_options(request: Request) -> JSONResponse:
    return JSONResponse(request.app.state.pipeline.options.model_dump())


@router.put("/api/v1/options")
async def put_options(request: Request) -> JSONResponse:
    """Switch ``PipelineOptions`` (before/after experiments against a running server)."""
    try:
        opts = PipelineOptions.model_validate(await request.json())
    except ValidationError as exc:
        e = exc.errors()[0]
        return error_response(422, f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
    except ValueError:
        return error_response(422, "body is not valid JSON")
    request.app.state.pipeline.set_options(opts)
    return JSONResponse(opts.model_dump())
