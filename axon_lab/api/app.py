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

from fastapi import FastAPI

from axon_lab.api import faults, health, metrics, prompts
from axon_lab.api import options as options_api
from axon_lab.api.errors import MAX_BODY_BYTES, install_error_handlers
from axon_lab.api.faults import FaultRequest, fault_injection_enabled
from axon_lab.api.health import HEALTH_PROBE_TIMEOUT_S
from axon_lab.api.metrics import STAGE_BUCKETS, BackendCollector, Metrics, install_metrics
from axon_lab.api.prompts import ProcessRequest
from axon_lab.config import Settings, get_settings
from axon_lab.pipeline import Pipeline, PipelineOptions

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

    Parameters
    ----------
    app : FastAPI
        An app built by ``create_app``: reads ``state.settings``, ``state.startup_options`` and
        ``state.load_corpus``; sets ``state.stack`` and ``state.pipeline``.

    Yields
    ------
    None
        While the app serves.
    """
    from axon_lab import corpus
    from axon_lab.stack import Stack

    settings: Settings = app.state.settings
    stack = await asyncio.to_thread(Stack.open, settings)
    try:
        if app.state.load_corpus:
            info = await asyncio.to_thread(corpus.load_into, stack, settings.corpus_limit)
            log.info("corpus loaded: %s", info)
        pipeline = Pipeline(stack, app.state.startup_options)
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


def create_app(
    settings: Settings | None = None,
    options: PipelineOptions | None = None,
    *,
    load_corpus: bool = True,
    fault_injection: bool | None = None,
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
    app.state.pipeline = None
    install_metrics(app)
    install_error_handlers(app)
    # Registration order is the original one (it is also the order of the OpenAPI paths).
    for concern in (health, prompts, metrics, options_api, faults):
        app.include_router(concern.router)
    return app
