"""The Redis latency proxy: a loopback TCP proxy, run as its own process, that holds the bytes sent upstream for an adjustable delay.

``python -m axon_lab.faults.proxy proxy --upstream HOST:PORT`` (started by :class:`LatencyProxy`):
it prints ``READY <port>`` once it listens, reads ``delay <ms>`` commands on stdin and exits
when stdin closes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import threading

from axon_lab.errors import BackendUnavailable


class LatencyProxy:
    """A loopback TCP proxy in front of an upstream (Redis) that can delay the bytes it forwards.

    It runs as its own process (``python -m axon_lab.faults.proxy proxy``) so it neither
    competes with the load generator for the GIL nor dies with a stuck caller; commands go
    over its stdin (``delay <ms>``), and it exits when stdin closes (its parent went away).
    Bytes from the client to the upstream are held for the delay, in order, so each command's
    round trip is ``delay`` longer; replies are forwarded at once.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, int(upstream_port))
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.delay_ms = 0.0

    def start(self, timeout_s: float = 30.0) -> LatencyProxy:
        """Start the proxy on a free loopback port; returns when it listens."""
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "axon_lab.faults.proxy",
                "proxy",
                "--upstream",
                f"{self.upstream[0]}:{self.upstream[1]}",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        box: dict[str, str] = {}
        reader = threading.Thread(
            target=lambda: box.setdefault("line", self.proc.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout_s)
        line = box.get("line", "")
        if not line.startswith("READY "):
            self.stop()
            raise BackendUnavailable("redis proxy", f"did not start within {timeout_s:g}s")
        self.port = int(line.split()[1])
        return self

    def set_delay(self, ms: float) -> None:
        """Delay every byte sent upstream by ``ms`` from now on (0: no delay)."""
        if self.proc is None or self.proc.stdin is None or self.proc.poll() is not None:
            raise BackendUnavailable("redis proxy", "not running")
        self.proc.stdin.write(f"delay {float(ms)}\n")
        self.proc.stdin.flush()
        self.delay_ms = float(ms)

    def stop(self) -> None:
        """Stop the proxy (closing stdin; then SIGTERM/SIGKILL if needed)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(Exception):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


async def _proxy_serve(upstream: tuple[str, int], state: dict[str, float]) -> None:
    """The proxy's event loop: accept, connect upstream, pump both ways (client→upstream delayed)."""

    async def pump(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delayed: bool
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def sender() -> None:
            loop = asyncio.get_running_loop()
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                await writer.drain()

        task = asyncio.ensure_future(sender())
        loop = asyncio.get_running_loop()
        try:
            while True:
                data = await reader.read(65536)
                due = loop.time() + (state["delay_ms"] / 1000.0 if delayed else 0.0)
                queue.put_nowait((due, data))
                if not data:
                    break
            await task
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            task.cancel()
            with contextlib.suppress(Exception):
                writer.close()

    async def handle(creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        try:
            ureader, uwriter = await asyncio.open_connection(*upstream)
        except OSError:  # upstream down: the client sees its connection closed
            cwriter.close()
            return
        await asyncio.gather(
            pump(creader, uwriter, True), pump(ureader, cwriter, False), return_exceptions=True
        )

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    print(f"READY {port}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_done = loop.create_future()

    def read_commands() -> None:
        for line in sys.stdin:
            parts = line.split()
            if len(parts) == 2 and parts[0] == "delay":
                with contextlib.suppress(ValueError):
                    state["delay_ms"] = max(0.0, float(parts[1]))
        loop.call_soon_threadsafe(stdin_done.set_result, None)

    threading.Thread(target=read_commands, daemon=True).start()
    async with server:
        await stdin_done  # parent closed stdin (or died): stop


def _main(argv: list[str] | None = None) -> int:
    """``python -m axon_lab.faults.proxy proxy --upstream HOST:PORT`` (used by :class:`LatencyProxy`)."""
    parser = argparse.ArgumentParser(prog="axon_lab.faults.proxy")
    sub = parser.add_subparsers(dest="cmd", required=True)
    px = sub.add_parser(
        "proxy", help="loopback TCP proxy with an adjustable delay (stdin: 'delay MS')"
    )
    px.add_argument("--upstream", required=True, help="HOST:PORT (loopback only)")
    args = parser.parse_args(argv)
    host, _, port = args.upstream.rpartition(":")
    from axon_lab.api.server import is_loopback

    if not is_loopback(host):
        sys.stderr.write(f"refusing a non-loopback upstream {host!r}\n")
        return 1
    asyncio.run(_proxy_serve((host, int(port)), {"delay_ms": 0.0}))
    return 0


if __name__ == "__main__":  # pragma: no cover - the proxy process
    sys.exit(_main())
