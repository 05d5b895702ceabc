"""The HTTP surface of Axon (FastAPI): /health, /api/v1/prompts/process, /metrics, /metrics/prometheus.

Lab extensions: ``/api/v1/options`` (switch ``PipelineOptions``) and, only when the server
is started with ``AXON_FAULT_INJECTION=1``, ``/api/v1/faults`` (stop, pause or slow down a
backend the lab owns, for fault experiments).

``create_app`` wires one router per concern (``health``, ``prompts``, ``metrics``,
``options``, ``faults``) and the error handlers (``errors``); route handlers read the shared
state from ``request.app.state``: ``settings``, ``stack``, ``pipeline``, ``metrics``,
``api_process``, ``fault_injection``. A route's docstring is its OpenAPI description.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response

from axon_lab.api import faults, health, metrics, prompts
from axon_lab.api import options as options_api
from axon_lab.api.errors import MAX_BODY_BYTES, error_response, install_error_handlers
from axon_lab.api.faults import FaultRequest, fault_injection_enabled
from axon_lab.api.health import HEALTH_PROBE_TIMEOUT_S
from axon_lab.api.metrics import STAGE_BUCKETS, BackendCollector, Metrics, install_metrics
from axon_lab.api.prompts import ProcessRequest
from axon_lab.api.startup import OPEN_WHILE_STARTING, Startup
from axon_lab.config import Settings, get_settings
from axon_lab.pipeline import PipelineOptions

__all__ = [
    "HEALTH_PROBE_TIMEOUT_S",
    "MAX_BODY_BYTES",
    "STAGE_BUCKETS",
    "BackendCollector",
    "FaultRequest",
    "Metrics",
    "ProcessRequest",
    "create_app",
    "fault_injection_enabled",
    "lifespan",
]

log = logging.getLogger("axon_lab.api")


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Open the stack (starting Redis if needed), load the corpus, warm the pipeline; close all on exit.

    With ``state.background_start`` (``serve``) this happens on a thread (``startup.Startup``)
    and the app answers at once: ``/health`` reports the build's progress, other routes 503.

    Parameters
    ----------
    app : FastAPI
        An app built by ``create_app``: reads ``state.settings``, ``state.startup_options``,
        ``state.load_corpus`` and ``state.background_start``; sets ``state.startup``,
        ``state.stack`` and ``state.pipeline``.

    Yields
    ------
    None
        While the app serves.
    """
    start = Startup(app)
    app.state.startup = start
    if app.state.background_start:
        start.start()
    else:
        await asyncio.to_thread(start.run_blocking)
    try:
        yield
    finally:
        done = await asyncio.to_thread(start.stop_build)
        if start.pipeline is not None:
            start.pipeline.close()
        if start.stack is not None and done:
            with contextlib.suppress(Exception):
                await start.stack.cache.close()
            await asyncio.to_thread(start.stack.close)
        elif start.stack is not None:  # the start-up thread is stuck in a store: stop ours
            with contextlib.suppress(Exception):
                start.stack.close()


async def refuse_while_starting(request: Request, call_next: Any) -> Response:
    """HTTP middleware: 503 + ``Retry-After`` on every route but ``/health`` until ready."""
    start: Startup | None = getattr(request.app.state, "startup", None)
    if (
        request.app.state.pipeline is None
        and start is not None
        and request.url.path not in OPEN_WHILE_STARTING
    ):
        st = start.status()
        pct = st["progress"]["percent"]
        what = {"building": f"building the corpus ({pct}%)", "loading": "loading the corpus"}
        message = f"Axon is starting: {what.get(st['status'], st['status'])}; retry later"
        if st["status"] == "failed":
            message = f"Axon failed to start: {st.get('error')}"
        return error_response(503, message, headers={"Retry-After": "5"}, starting=st)
    return await call_next(request)


def create_app(
    settings: Settings | None = None,
    options: PipelineOptions | None = None,
    *,
    load_corpus: bool = True,
    fault_injection: bool | None = None,
    background_start: bool = False,
) -> FastAPI:
    """Build the app; the lifespan opens the stack (starting Redis if needed) and loads the corpus.

    Parameters
    ----------
    settings : Settings, optional
        Lab settings (default: ``get_settings()``).
    options : PipelineOptions, optional
        Pipeline options at start (default: the pipeline's defaults); ``PUT /api/v1/options``
        switches them later.
    load_corpus : bool, default True
        Load the corpus into the stores at start.
    fault_injection : bool, optional
        Enable ``/api/v1/faults`` (default: ``AXON_FAULT_INJECTION``).
    background_start : bool, default False
        Start serving at once and bring the stack up on a thread (``serve``); otherwise the
        app is ready when its lifespan has started (in-process use, tests).

    Returns
    -------
    FastAPI
        The app; ``app.state.pipeline`` is ``None`` until the lifespan has started.
    """
    app = FastAPI(title="Axon (axon_lab)", version="1.0", lifespan=lifespan)
    app.state.settings = settings or get_settings()
    app.state.startup_options = options
    app.state.load_corpus = load_corpus
    app.state.fault_injection = (
        fault_injection_enabled() if fault_injection is None else fault_injection
    )
    app.state.background_start = background_start
    app.state.pipeline = None
    app.state.stack = None
    install_metrics(app)
    install_error_handlers(app)
    app.middleware("http")(refuse_while_starting)
    # Registration order is the original one (it is also the order of the OpenAPI paths).
    for concern in (health, prompts, metrics, options_api, faults):
        app.include_router(concern.router)
    return app
