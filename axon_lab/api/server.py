"""Run the API: in this process (``serve``) or as a subprocess on a free loopback port."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from axon_lab.errors import BackendUnavailable, ConfigError


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(
    host: str = "127.0.0.1",
    port: int = 3000,
    *,
    allow_remote: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve the embedded Axon API with uvicorn (blocking)."""
    import uvicorn

    from axon_lab.api.app import create_app

    if not is_loopback(host) and not allow_remote:
        raise ConfigError(
            f"refusing to bind {host}: the lab binds loopback only (use --allow-remote)"
        )
    uvicorn.run(
        create_app(),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


def wait_ready(
    url: str, proc: subprocess.Popen, timeout_s: float, *, log: Path | None = None
) -> None:
    """Wait until the API at ``url`` answers ``/health`` (200 or 503), served by ``proc``.

    Raises ``BackendUnavailable`` (one line, redacted) when the process exits first, with the
    end of its output (``log`` if it writes to a file, else its stderr pipe), or on timeout.
    """
    import httpx

    from axon_lab.redact import redact_text

    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            if log is not None:
                tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            else:
                tail = proc.stderr.read().decode(errors="replace")[-600:] if proc.stderr else ""
            last = " | ".join(line.strip() for line in tail.strip().splitlines()[-3:])
            raise BackendUnavailable(
                "axon api", f"server exited with {proc.returncode}: {redact_text(last)}"
            )
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code in (200, 503):
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            where = f" (see {log})" if log is not None else ""
            raise BackendUnavailable("axon api", f"not ready within {timeout_s}s{where}")
        time.sleep(0.25)


@contextlib.contextmanager
def running_server(
    *,
    port: int = 0,
    env: Mapping[str, str] | None = None,
    timeout_s: float = 180.0,
    log_path: Path | None = None,
) -> Iterator[str]:
    """Start ``axon-lab serve`` in a subprocess on a free loopback port; yield its base URL.

    The server is ready when ``/health`` answers (200 or 503). It is stopped on exit.
    """
    from axon_lab.stack.redis_server import free_port

    port = port or free_port()
    full_env = {**os.environ, **(env or {})}
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_lab", "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT if log_path else subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, proc, timeout_s, log=log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if log_path:
            log.close()  # type: ignore[union-attr]
