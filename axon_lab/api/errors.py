"""Error bodies of the API: the JSON error shape, the body-size limit (413) and the 422/HTTP error handlers."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from axon_lab.api.metrics import Metrics
from axon_lab.redact import redact_text

#: Request bodies above this many bytes are refused with 413 before parsing.
MAX_BODY_BYTES = 256 * 1024


def error_response(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """Build the API's error body, ``{"error": <redacted message>, **extra}``.

    Parameters
    ----------
    status : int
        HTTP status code of the response.
    message : str
        Human-readable error; passed through ``redact_text`` so no secret leaves the server.
    headers : dict of str to str, optional
        Extra response headers (for example ``Retry-After``).
    **extra
        Further JSON fields of the body (``field``, ``backend``, ``detail``...).

    Returns
    -------
    JSONResponse
        The error response.
    """
    return JSONResponse(
        {"error": redact_text(message), **extra}, status_code=status, headers=headers
    )


async def limit_body(request: Request, call_next: Any) -> Response:
    """HTTP middleware: refuse a body above ``MAX_BODY_BYTES`` (413) or a bad Content-Length (400).

    Parameters
    ----------
    request : Request
        The incoming request; only its ``Content-Length`` header is read.
    call_next : callable
        The rest of the application.

    Returns
    -------
    Response
        The error response, or the application's response.
    """
    length = request.headers.get("content-length")
    if length is not None:
        try:
            too_big = int(length) > MAX_BODY_BYTES
        except ValueError:
            return error_response(400, "invalid Content-Length header")
        if too_big:
            return error_response(
                413, f"request body is {length} bytes; the limit is {MAX_BODY_BYTES}"
            )
    return await call_next(request)


async def on_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Answer an invalid request body with 422 naming the first bad field (``field``, ``detail``).

    Parameters
    ----------
    request : Request
        The request whose body failed validation.
    exc : RequestValidationError
        FastAPI's validation error.

    Returns
    -------
    JSONResponse
        422 with ``error``, ``field`` and ``detail`` (loc, msg, type of each error).
    """
    errs = exc.errors()
    first = errs[0] if errs else {}
    loc = ".".join(str(x) for x in first.get("loc", ()) if x != "body") or "body"
    msg = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        msg, loc = "body is not valid JSON", "body"
    metrics: Metrics = request.app.state.metrics
    metrics.requests.labels(request.url.path, "422").inc()
    return error_response(
        422,
        f"{loc}: {msg}",
        field=loc,
        detail=[{"loc": e.get("loc"), "msg": e.get("msg"), "type": e.get("type")} for e in errs],
    )


async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """Answer an HTTP error (404, 405...) with the JSON error body; a body that cannot be parsed is 422.

    Parameters
    ----------
    request : Request
        The request that failed.
    exc : StarletteHTTPException
        The HTTP error raised by routing or by FastAPI's body parsing.

    Returns
    -------
    JSONResponse
        The error response with the same status (422 for an unparseable body).
    """
    metrics: Metrics = request.app.state.metrics
    msg, code = str(exc.detail), exc.status_code
    if code == 400 and "parsing the body" in msg:  # same answer as any other invalid JSON
        msg, code = "body: body is not valid JSON (malformed, not UTF-8, or nested too deeply)", 422
        metrics.requests.labels(request.url.path, str(code)).inc()
        return error_response(code, msg, field="body")
    metrics.requests.labels(request.url.path, str(code)).inc()
    return error_response(code, msg)


def install_error_handlers(app: FastAPI) -> None:
    """Install the body-size middleware and the 422/HTTP error handlers on ``app``.

    Parameters
    ----------
    app : FastAPI
        The application; its ``state.metrics`` (a ``Metrics``) counts the refused requests.
    """
    app.middleware("http")(limit_body)
    app.exception_handler(RequestValidationError)(on_validation)
    app.exception_handler(StarletteHTTPException)(on_http_error)
