"""Polling samplers: one background thread reads a source every ``interval_s`` into a frame (server RSS/CPU% over HTTP, a process tree with psutil, ``/health``).

The base :class:`Sampler` owns the thread, the interval, the clock and error tolerance; a
concrete sampler implements one operation, :meth:`Sampler.read`, that returns one row (a
dict) or ``None`` (nothing to record this time). A ``read`` that raises is counted in
:attr:`Sampler.failures` and costs one missing sample, never the run.

Each row is stamped by the base when its read begins, in the sampler's :attr:`~Sampler.clock`
column: ``t_s`` (seconds since :meth:`~Sampler.start`, monotonic) or ``unix`` (wall clock,
for aligning with events logged elsewhere).

Engine module: imports nothing from the experiment packages.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, ClassVar, Self

import pandas as pd

from axon_lab.errors import ConfigError


class Sampler:
    """Calls :meth:`read` every ``interval_s`` on a daemon thread and collects the rows.

    ``start()`` returns the sampler, ``stop()`` the frame of everything sampled (columns:
    :attr:`clock` then :attr:`columns`). Subclasses set :attr:`columns` and implement
    :meth:`read`; :meth:`session` may open what the reads share (an HTTP client).

    Attributes
    ----------
    rows
        The samples so far (dicts; appended by the sampling thread).
    failures
        Reads that raised (each one a missing sample).
    last_error
        ``"ExceptionType: message"`` of the latest failed read, or ``None``.
    """

    #: The row's fields after the time column, in frame order.
    columns: ClassVar[tuple[str, ...]] = ()
    #: ``t_s`` (seconds since start, monotonic) or ``unix`` (wall clock).
    clock: ClassVar[str] = "t_s"
    thread_name: ClassVar[str] = "axon-sampler"

    def __init__(self, *, interval_s: float, stop_timeout_s: float = 5.0) -> None:
        if not interval_s > 0:
            raise ConfigError(f"sample interval must be > 0, got {interval_s}")
        self.interval_s = float(interval_s)
        self.stop_timeout_s = stop_timeout_s
        self.rows: list[dict[str, Any]] = []
        self.failures = 0
        self.last_error: str | None = None
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=self.thread_name, daemon=True)

    # --- the source: one operation ------------------------------------------------------------
    def read(self) -> dict[str, Any] | None:
        """One sample of the source (the fields of :attr:`columns`), or ``None`` for none."""
        raise NotImplementedError

    def session(self) -> contextlib.AbstractContextManager[Any]:
        """Entered on the sampling thread around all reads (default: nothing to open)."""
        return contextlib.nullcontext()

    # --- timing and looping ----------------------------------------------------------------------
    def _stamp(self) -> float:
        return time.time() if self.clock == "unix" else time.monotonic() - self._t0

    def _loop(self) -> None:
        with self.session():
            while not self._stop.is_set():
                stamp = self._stamp()
                try:
                    row = self.read()
                except (
                    Exception
                ) as exc:  # a slow or failed read is a missing sample, not a failed run
                    self.failures += 1
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    row = None
                if row is not None:
                    self.rows.append({self.clock: stamp, **row})
                self._stop.wait(self.interval_s)

    def start(self) -> Self:
        """Start sampling (``t_s`` counts from here); returns the sampler."""
        self._t0 = time.monotonic()
        self._thread.start()
        return self

    def stop(self) -> pd.DataFrame:
        """Stop sampling (waiting for a read in flight) and return :meth:`frame`."""
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=self.stop_timeout_s)
        return self.frame()

    def frame(self) -> pd.DataFrame:
        """The samples so far as a frame (empty, with its columns, when there are none)."""
        return pd.DataFrame(list(self.rows), columns=[self.clock, *self.columns])

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _HttpSampler(Sampler):
    """A sampler whose reads are GETs on one server (one ``httpx.Client`` for all of them)."""

    def __init__(self, url: str, *, interval_s: float, timeout_s: float) -> None:
        # a read in flight may take up to timeout_s: stop() waits for it
        super().__init__(interval_s=interval_s, stop_timeout_s=max(5.0, 2 * timeout_s))
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._client: Any = None

    def session(self) -> contextlib.AbstractContextManager[Any]:
        import httpx

        self._client = httpx.Client(timeout=self.timeout_s)
        return self._client


class ServerResourceSampler(_HttpSampler):
    """RSS (MB) and CPU% of an axon_lab server from its ``/metrics/process`` (cheap, meant for
    frequent polling). Frame columns: t_s, rss_mb, cpu_percent.

    ``fallback_path`` (e.g. ``"/metrics"``, which is expensive) is polled instead once
    ``/metrics/process`` answers 404 (servers without the cheap endpoint); by default such a
    server gives no samples. A deployment without either endpoint gives none either.
    """

    columns = ("rss_mb", "cpu_percent")
    thread_name = "axon-server-resource-sampler"

    def __init__(
        self,
        url: str,
        *,
        interval_s: float = 0.5,
        timeout_s: float = 2.0,
        fallback_path: str | None = None,
    ) -> None:
        super().__init__(url, interval_s=interval_s, timeout_s=timeout_s)
        self.path = "/metrics/process"
        self.fallback_path = fallback_path

    def read(self) -> dict[str, Any] | None:
        r = self._client.get(self.url + self.path)
        if r.status_code == 404 and self.fallback_path and self.path != self.fallback_path:
            self.path = self.fallback_path
            r = self._client.get(self.url + self.path)
        doc = r.json()
        p = doc.get("process", doc)  # /metrics nests it; /metrics/process is it
        return {"rss_mb": p["rss_bytes"] / 2**20, "cpu_percent": p.get("cpu_percent")}


class HealthSampler(_HttpSampler):
    """``GET /health`` of a server: frame columns unix (wall clock), code (0: no answer),
    down (comma list of the backends it reports down, or ``no answer: <error>``), ms.
    """

    columns = ("code", "down", "ms")
    clock = "unix"
    thread_name = "axon-health-sampler"

    def __init__(self, url: str, *, interval_s: float = 0.25, timeout_s: float = 2.0) -> None:
        super().__init__(url, interval_s=interval_s, timeout_s=timeout_s)

    def read(self) -> dict[str, Any]:
        t0 = time.perf_counter()
        code, down = 0, ""
        try:
            r = self._client.get(self.url + "/health")
            code = r.status_code
            down = ",".join(r.json().get("down", []))
        except Exception as exc:  # a server gone or not answering in time is a sample too
            down = f"no answer: {type(exc).__name__}"
        return {"code": code, "down": down, "ms": (time.perf_counter() - t0) * 1000}


class ProcessResourceSampler(Sampler):
    """RSS and CPU% of a process tree (``pid`` and its children) with psutil.

    Set :attr:`phase` to label what follows (``startup``, ``idle``, ``load``, ``drain``).
    Frame columns: t_s, phase, rss_mb, cpu_pct (per core, 100 = one core; the first sample
    of a process reads 0), threads, processes. Exited (zombie) processes are left out; a
    moment with none alive gives no sample.
    """

    columns = ("phase", "rss_mb", "cpu_pct", "threads", "processes")
    thread_name = "axon-process-resource-sampler"

    def __init__(self, pid: int, *, interval_s: float = 0.5) -> None:
        import psutil

        super().__init__(interval_s=interval_s)
        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.phase = "startup"
        self._procs: dict[
            int, Any
        ] = {}  # one Process per pid: cpu_percent() is since its previous call

    def _tree(self) -> list[Any]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return []

    def read(self) -> dict[str, Any] | None:
        rss, cpu, threads, n = 0, 0.0, 0, 0
        for p in self._tree():
            proc = self._procs.setdefault(p.pid, p)
            try:
                with proc.oneshot():
                    mem = proc.memory_info().rss
                    if not mem:  # an exited (zombie) process reads 0: not a sample
                        continue
                    rss += mem
                    cpu += proc.cpu_percent(None)
                    threads += proc.num_threads()
                    n += 1
            except self._psutil.Error:
                continue
        if not n:
            return None
        return {
            "phase": self.phase,
            "rss_mb": rss / 2**20,
            "cpu_pct": cpu,
            "threads": threads,
            "processes": n,
        }
