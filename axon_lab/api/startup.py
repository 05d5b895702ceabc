"""Starting the embedded Axon: open the stack, build and load the corpus, warm the pipeline.

``serve`` starts in the background (:class:`Startup`): the server answers at once, ``/health``
says ``503 {"status": "building", "progress": {...}}`` while the corpus is embedded and loaded,
every other route answers 503 with ``Retry-After``, and the app becomes healthy when ready.
Stopping the server (SIGTERM, Ctrl-C) stops a build between two chunks of texts: vectors
already computed stay in the on-disk cache and the half-built corpus is never used.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from fastapi import FastAPI

from axon_lab.config import Settings

log = logging.getLogger("axon_lab.api")

#: Routes that answer while the app is starting (everything else gets 503 + Retry-After).
OPEN_WHILE_STARTING = frozenset({"/health", "/metrics/prometheus", "/docs", "/openapi.json"})
#: How long shutdown waits for a stopped build to reach its next checkpoint.
STOP_WAIT_S = 4.0


class Startup:
    """The stack, corpus and pipeline brought up on a thread; ``state`` says how far it got.

    ``state`` is ``starting`` (opening the stores), ``building`` (chunking and embedding the
    corpus), ``loading`` (filling the stores, building the HNSW index), ``warming``, ``ready``
    or ``failed`` (``error`` says why, one line).
    """

    def __init__(self, app: FastAPI) -> None:
        from axon_lab.corpus import BuildProgress

        self.app = app
        self.state = "starting"
        self.error: str | None = None
        self.exception: BaseException | None = None
        self.progress = BuildProgress()
        self.stop = threading.Event()
        self.stack: Any = None
        self.pipeline: Any = None
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="axon-startup", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def run_blocking(self) -> None:
        """Bring everything up in this thread (for in-process apps and tests); raises on failure."""
        self._run()
        if self.exception is not None:
            raise self.exception

    def _run(self) -> None:
        from axon_lab import corpus
        from axon_lab.pipeline import Pipeline
        from axon_lab.redact import redact_text
        from axon_lab.stack import Stack

        settings: Settings = self.app.state.settings
        try:
            self.stack = Stack.open(settings)
            if self.stop.is_set():
                return
            if self.app.state.load_corpus:
                self.state = "building"
                info = corpus.load_into(
                    self.stack,
                    settings.corpus_limit,
                    progress=self.progress,
                    should_stop=self.stop.is_set,
                )
                log.info("corpus loaded: %s", info)
            if self.stop.is_set():
                return
            self.state = "warming"
            pipeline = Pipeline(self.stack, self.app.state.startup_options)
            pipeline.warm_up()
            self.pipeline = pipeline
            self.app.state.stack = self.stack
            self.app.state.pipeline = pipeline
            self.state = "ready"
            log.warning("axon ready in %.1f s", time.monotonic() - self.started)
        except InterruptedError:
            self.state = "stopped"
            log.warning("start-up stopped; computed vectors are kept in the cache")
        except Exception as exc:
            self.exception = exc
            self.state = "failed"
            self.error = redact_text(f"{type(exc).__name__}: {exc}".splitlines()[0])
            log.error("start-up failed: %s", self.error)

    def status(self) -> dict[str, Any]:
        """The body of ``/health`` while not ready."""
        state = self.state
        if state == "building" and self.progress.phase == "loading":
            state = "loading"
        out: dict[str, Any] = {
            "status": state,
            "progress": self.progress.snapshot(),
            "startingSeconds": round(time.monotonic() - self.started, 1),
        }
        if self.error:
            out["error"] = self.error
        return out

    def stop_build(self) -> bool:
        """Stop a build in progress, waiting up to ``STOP_WAIT_S``; True when the thread is done."""
        self.stop.set()
        if self._thread.is_alive():
            self._thread.join(STOP_WAIT_S)
            if self._thread.is_alive():
                log.warning("start-up still busy after %.0f s; exiting without it", STOP_WAIT_S)
                return False
        return True
