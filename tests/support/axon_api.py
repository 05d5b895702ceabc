"""Start the stand-in of the real Axon API (:mod:`support.axon_api_server`) from a test.

The server script is stdlib only and starts fast (``python -P``); this starter lives apart so
the script never imports axon_lab, whose subprocess-server base it uses.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path

from axon_lab.load.testserver import ScriptServer
from support.axon_api_server import MAX_BODY_BYTES, Config

SCRIPT = Path(__file__).with_name("axon_api_server.py")


class AxonApiServer(ScriptServer):
    """Start this stand-in Axon API in a subprocess on a free loopback port (context manager).

    Parameters
    ----------
    stages
        Stage delays in integer ms, a mapping or ``"collection=1,llm=40"`` (unnamed stages keep
        :data:`DEFAULT_STAGES_MS`). A non-streaming response takes their sum.
    ttft_ms, chunk_gap_ms, chunks
        Streaming: ``llm-start`` to first ``llm-chunk``, the gap between chunks, their number.
    contexts
        Contexts reported found/used.
    limit, window_s
        Rate limit per client IP per fixed window (``limit=0``: no limiter).
    error_rate, seed
        Fraction of valid prompt requests answered 500 (streams: an in-band error), seeded.
    api_key
        Require ``Authorization: Bearer <key>`` or ``X-API-Key`` on the prompt route.
    body_errors
        ``"validation"`` (bad JSON 400, oversize 413) or ``"express"`` (the real app's 500s).
    max_body_bytes
        The JSON body limit (10 MiB).
    timer_spin_ms
        How early the loop wakes to poll for a due timer (0: plain epoll, ~1 ms late).

    Examples
    --------
    >>> with AxonApiServer(stages="llm=40", limit=5) as srv:  # doctest: +SKIP
    ...     httpx.get(srv.url + "/health").headers["RateLimit-Remaining"]
    '4'
    """

    what = "Axon API test server"

    def __init__(
        self,
        *,
        stages: str | Mapping[str, int] | None = None,
        ttft_ms: float = 10.0,
        chunk_gap_ms: float = 2.0,
        chunks: int = 5,
        contexts: int = 3,
        limit: int = 100,
        window_s: float = 900.0,
        error_rate: float = 0.0,
        seed: int = 1,
        api_key: str | None = None,
        body_errors: str = "validation",
        max_body_bytes: int = MAX_BODY_BYTES,
        timer_spin_ms: float = 1.0,
    ) -> None:
        cfg = Config(  # validate the knobs here, not in the child
            stages=stages,
            ttft_ms=ttft_ms,
            chunk_gap_ms=chunk_gap_ms,
            chunks=chunks,
            contexts=contexts,
            limit=limit,
            window_s=window_s,
            error_rate=error_rate,
            seed=seed,
            api_key=api_key,
            body_errors=body_errors,
            max_body_bytes=max_body_bytes,
        )
        self.config = cfg
        args = [
            sys.executable,
            "-P",
            str(SCRIPT),
            "--stages",
            ",".join(f"{k}={v}" for k, v in cfg.stages.items()),
            "--ttft-ms",
            repr(cfg.ttft_ms),
            "--chunk-gap-ms",
            repr(cfg.chunk_gap_ms),
            "--chunks",
            str(cfg.chunks),
            "--contexts",
            str(cfg.contexts),
            "--limit",
            str(cfg.limit),
            "--window-s",
            repr(cfg.window_s),
            "--error-rate",
            repr(cfg.error_rate),
            "--seed",
            str(cfg.seed),
            "--body-errors",
            cfg.body_errors,
            "--max-body-bytes",
            str(cfg.max_body_bytes),
            "--timer-spin-ms",
            repr(float(timer_spin_ms)),
        ]
        # The key goes through the environment, not the command line (``ps`` shows that).
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AXON_TEST_API_KEY", None)
        if api_key:
            env["AXON_TEST_API_KEY"] = api_key
        super().__init__(args, env)

    @property
    def url(self) -> str:
        """Base URL ``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    def reset(self) -> dict:
        """Clear the limiter's counters, the statistics and the seeded generators."""
        return self.control(reset=True)
