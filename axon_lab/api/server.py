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
from typing import Any

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
        create_app(background_start=True),
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


#: ``/health`` statuses of an app that is still starting (``api.startup``).
STARTING = frozenset({"starting", "building", "loading", "warming"})


def wait_ready(
    url: str,
    proc: subprocess.Popen,
    timeout_s: float,
    *,
    log: Path | None = None,
    progress: bool = True,
) -> None:
    """Wait until the API at ``url`` is up, served by ``proc``.

    Up means ``/health`` answers 200, or 503 for a store that is down (fault experiments
    start that way), but not 503 "starting/building/loading": while the server builds its
    corpus, ``progress`` shows the build (a bar on a terminal, a widget in a notebook) and the
    timeout counts from the last progress, so a long first build is waited for and a hung one
    is not. Raises ``BackendUnavailable`` (one line, redacted) when the process exits first,
    with the end of its output (``log`` if it writes to a file, else its stderr pipe), when
    start-up fails, or on timeout.
    """
    import httpx

    from axon_lab.redact import redact_text

    deadline = time.monotonic() + timeout_s
    bar: Any = None
    last: tuple[Any, ...] = ()
    try:
        while True:
            if proc.poll() is not None:
                if log is not None:
                    tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
                else:
                    tail = proc.stderr.read().decode(errors="replace")[-600:] if proc.stderr else ""
                lines = [line.strip() for line in tail.strip().splitlines() if line.strip()]
                raise BackendUnavailable(
                    "axon api",
                    f"server exited with {proc.returncode}: {redact_text(' | '.join(lines[-3:]))}",
                )
            try:
                r = httpx.get(f"{url}/health", timeout=2.0)
            except httpx.HTTPError:
                r = None
            if r is not None and r.status_code == 200:
                return
            if r is not None and r.status_code == 503:
                body = _json_or_empty(r)
                status = body.get("status")
                if status == "failed":
                    raise BackendUnavailable(
                        "axon api", f"start-up failed: {redact_text(str(body.get('error')))}"
                    )
                if status not in STARTING:
                    return  # up, with a store down
                prog = body.get("progress") or {}
                now = (status, prog.get("stage"), prog.get("done"))
                if now != last:  # progress: the timeout counts from here
                    last = now
                    deadline = time.monotonic() + timeout_s
                if progress and prog.get("total"):
                    bar = _show_build(bar, prog)
            if time.monotonic() > deadline:
                where = f" (see {log})" if log is not None else ""
                raise BackendUnavailable("axon api", f"not ready within {timeout_s}s{where}")
            time.sleep(0.25)
    finally:
        if bar is not None:
            bar.close()


def _json_or_empty(r: Any) -> dict[str, Any]:
    try:
        body = r.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _show_build(bar: Any, prog: dict[str, Any]) -> Any:
    """A progress bar of the server's corpus build (texts/s and ETA come from tqdm)."""
    if bar is None:
        from tqdm.auto import tqdm

        bar = tqdm(
            total=int(prog["total"]),
            initial=int(prog.get("done") or 0),
            unit="text",
            desc="server: embedding corpus",
            dynamic_ncols=True,
        )
    else:
        bar.update(max(0, int(prog.get("done") or 0) - bar.n))
    return bar


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
