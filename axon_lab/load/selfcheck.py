"""Generator self-check: the client's own CPU and event-loop lag, and a client-bound verdict."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import numpy as np

from axon_lab.stats import percentile

#: Event-loop lag p99 above this (ms) means the generator could not keep its own timing.
LOOP_LAG_LIMIT_MS = 5.0
#: Dispatch lag p99 of requests that had a free connection, above this (ms): client-bound.
DISPATCH_LAG_LIMIT_MS = 5.0
#: Engine-thread CPU at or above this (% of one core) counts as saturated.
CPU_SATURATED_PCT = 90.0
#: Whole-machine CPU at or above this (%) means client and server compete for cores.
MACHINE_SATURATED_PCT = 95.0


class ClientMonitor:
    """Samples event-loop lag (every ``interval_s``) and CPU (every ``cpu_interval_s``).

    Runs as a task on the generator's event loop; the CPU of the loop's own thread is what
    limits a single-process asyncio generator, so it is sampled per thread (psutil), next to the
    whole process and the whole machine.
    """

    def __init__(self, *, interval_s: float = 0.1, cpu_interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self.cpu_interval_s = cpu_interval_s
        self.loop_lag_ms: list[float] = []
        self.thread_cpu: list[float] = []
        self.process_cpu: list[float] = []
        self.machine_cpu: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sampling on the running loop."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop sampling."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    async def _run(self) -> None:
        try:
            import psutil

            proc = psutil.Process()
            psutil.cpu_percent(None)
        except Exception:  # pragma: no cover - psutil is a dependency
            proc = None
        tid = threading.get_native_id()
        last_wall = time.perf_counter()
        last_proc = _proc_time(proc)
        last_thread = _thread_time(proc, tid)
        next_cpu = last_wall + self.cpu_interval_s
        while True:
            t_expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            now = time.perf_counter()
            # Bounded: one float per interval (36k per hour at 0.1 s).
            self.loop_lag_ms.append(max(0.0, (now - t_expected) * 1000.0))
            if proc is not None and now >= next_cpu:
                wall = now - last_wall
                pt, tt = _proc_time(proc), _thread_time(proc, tid)
                self.process_cpu.append(100.0 * (pt - last_proc) / wall)
                if tt is not None and last_thread is not None:
                    self.thread_cpu.append(100.0 * (tt - last_thread) / wall)
                try:
                    import psutil

                    self.machine_cpu.append(float(psutil.cpu_percent(None)))
                except Exception:  # pragma: no cover
                    pass
                last_wall, last_proc, last_thread = now, pt, tt
                next_cpu = now + self.cpu_interval_s

    def summary(self, dispatch_lag_ms: np.ndarray | None = None) -> dict[str, Any]:
        """Client figures and the verdict.

        Parameters
        ----------
        dispatch_lag_ms
            Schedule lag of requests that did *not* wait for a connection (open loop); their lag
            is the generator's own timing error.

        Returns
        -------
        dict
            ``loop_lag_ms`` (p50/p99/max), ``engine_thread_cpu_pct``, ``process_cpu_pct``,
            ``machine_cpu_pct`` (mean/max), ``dispatch_lag_ms`` (p50/p99), ``client_bound`` and
            ``reasons``.
        """
        lag = np.asarray(self.loop_lag_ms)
        out: dict[str, Any] = {
            "loop_lag_ms": _pcts(lag),
            "engine_thread_cpu_pct": _mean_max(self.thread_cpu),
            "process_cpu_pct": _mean_max(self.process_cpu),
            "machine_cpu_pct": _mean_max(self.machine_cpu),
            "dispatch_lag_ms": _pcts(dispatch_lag_ms) if dispatch_lag_ms is not None else None,
        }
        reasons = []
        if lag.size and out["loop_lag_ms"]["p99"] > LOOP_LAG_LIMIT_MS:
            reasons.append(
                f"event-loop lag p99 {out['loop_lag_ms']['p99']:.1f} ms > {LOOP_LAG_LIMIT_MS:g} ms"
            )
        if self.thread_cpu:
            busy = float(np.mean(np.asarray(self.thread_cpu) >= CPU_SATURATED_PCT))
            if busy >= 0.25:
                reasons.append(
                    f"generator thread at >= {CPU_SATURATED_PCT:g}% CPU in {busy:.0%} of samples"
                )
        d = out["dispatch_lag_ms"]
        if d and d["count"] and d["p99"] > DISPATCH_LAG_LIMIT_MS:
            reasons.append(
                f"dispatch lag p99 {d['p99']:.1f} ms > {DISPATCH_LAG_LIMIT_MS:g} ms "
                "(requests left late with a connection free)"
            )
        m = out["machine_cpu_pct"]
        if m["mean"] is not None and m["mean"] >= MACHINE_SATURATED_PCT:
            reasons.append(
                f"machine CPU {m['mean']:.0f}% on average: client and server compete for cores"
            )
        out["client_bound"] = bool(reasons)
        out["reasons"] = reasons
        return out


def _proc_time(proc: Any) -> float:
    if proc is None:
        return 0.0
    t = proc.cpu_times()
    return float(t.user + t.system)


def _thread_time(proc: Any, tid: int) -> float | None:
    if proc is None:
        return None
    try:
        for th in proc.threads():
            if th.id == tid:
                return float(th.user_time + th.system_time)
    except Exception:  # some platforms do not expose threads
        return None
    return None


def _pcts(x: np.ndarray | None) -> dict[str, Any]:
    arr = np.asarray(x if x is not None else [], dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return {"count": 0, "p50": None, "p99": None, "max": None}
    return {
        "count": int(arr.size),
        "p50": percentile(arr, 50),
        "p99": percentile(arr, 99),
        "max": float(arr.max()),
    }


def _mean_max(x: list[float]) -> dict[str, float | None]:
    if not x:
        return {"mean": None, "max": None}
    return {"mean": float(np.mean(x)), "max": float(np.max(x))}
