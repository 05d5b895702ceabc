"""Profiling the API under load: the run (:func:`run_profile`), its summary and verdict, and the profiled server itself (run as a script, under scalene).

``run_profile(scenario=...)`` starts ``axon-lab``'s API in a subprocess (under ``scalene run``
unless ``profiler="none"``), samples the RSS and CPU% of its process tree with psutil
(:class:`~axon_lab.samplers.ProcessResourceSampler`) while idle and while a load scenario
(:mod:`axon_lab.load`) drives it, records the event loop's lag from inside the server, then
stops it so scalene writes its profile. The server's code (:func:`_serve`) lives here, so
scalene attributes the event loop and the web framework to this file
(:func:`axon_lab.profiling.scalene.is_harness`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from axon_lab.api.server import wait_ready
from axon_lab.config import child_env
from axon_lab.errors import ConfigError
from axon_lab.profiling.resources import (
    label_phases,
    lag_summary,
    memory_slope,
    read_lag,
    resource_summary,
    resource_verdicts,
)
from axon_lab.profiling.scalene import (
    ScaleneProfile,
    harness_share,
    parse_scalene,
    scalene_command,
    scalene_switch,
    top_functions,
    top_lines,
)
from axon_lab.samplers import ProcessResourceSampler


# --- the run --------------------------------------------------------------------------------------------
@dataclass
class ProfileRun:
    """What :func:`run_profile` measured; frames are also written under ``out_dir``."""

    resources: pd.DataFrame
    lag: pd.DataFrame
    scalene: ScaleneProfile | None
    load_summary: dict[str, Any]
    redis: dict[str, Any] | None
    params: dict[str, Any]
    out_dir: Path
    marks: dict[str, float] = field(default_factory=dict)


def serving_pid(root_pid: int, port: int) -> int:
    """The process of ``root_pid``'s tree that listens on ``port`` (scalene runs the program in a
    child process); ``root_pid`` when none is found.
    """
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return root_pid
    for p in procs:
        try:
            if any(
                c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                for c in p.net_connections(kind="tcp")
            ):
                return p.pid
        except psutil.Error:
            continue
    return root_pid


def _write_launcher(out: Path) -> Path:
    """A two-line entry script in ``out``: scalene needs a program file, and running this
    module's file directly would put ``axon_lab/profiling`` first on ``sys.path``, where its
    ``scalene.py`` would shadow the ``scalene`` package itself.
    """
    path = out / "serve_axon_lab.py"
    path.write_text(
        "import sys\nfrom axon_lab.profiling.server import _main\n\nsys.exit(_main())\n",
        encoding="utf-8",
    )
    return path


def run_profile(
    *,
    scenario: str = "simple",
    out_dir: str | Path,
    scale: float = 1.0,
    idle_s: float = 10.0,
    profiler: str = "scalene",
    sample_interval_s: float = 0.5,
    lag_interval_s: float = 0.1,
    drain_s: float = 2.0,
    profile_all: bool = False,
    profile_startup: bool = False,
    startup_timeout_s: float = 600.0,
    stop_timeout_s: float = 300.0,
    env: Mapping[str, str] | None = None,
    load_options: Mapping[str, Any] | None = None,
) -> ProfileRun:
    """Profile the embedded API while a load scenario drives it.

    Parameters
    ----------
    scenario
        A load preset from :data:`axon_lab.load.SCENARIOS` (``health``, ``simple``, ``complex``,
        ``sustained`` for a soak, ``spike``).
    out_dir
        Where scalene's JSON, the server log, the lag file and the load run's files go.
    scale
        Multiplies the scenario's durations (CI: small).
    idle_s
        Seconds sampled after start-up with no load (the guide's idle memory).
    profiler
        ``scalene`` or ``none`` (resources, lag and load only: no profiler overhead, the right
        choice for a soak's memory slope).
    sample_interval_s, lag_interval_s
        RSS/CPU sampling period and the event-loop probe's sleep.
    profile_all
        Let scalene profile libraries too.
    profile_startup
        Profile from process start (imports, model and corpus loading). By default scalene
        starts suspended and profiles the load phase only, so the tables show what serving
        costs; RSS and CPU% are sampled in every phase either way.
    env
        Extra environment for the server (``AXON_DATA_DIR``, ``AXON_CORPUS_LIMIT``...).
        ``AXON_REDIS_URL`` is set to a lab redis-server started here, so Redis ``INFO`` can be
        compared before and after the load.
    load_options
        Extra keyword arguments for :class:`axon_lab.load.LoadRunner` (``connections``...).
    """
    from axon_lab.cache import redis_stats
    from axon_lab.load import LoadRunner, get_scenario
    from axon_lab.stack import RedisServer, free_port

    if profiler not in ("scalene", "none"):
        raise ConfigError(f"unknown profiler {profiler!r}; valid: none, scalene")
    if idle_s < 0 or drain_s < 0:
        raise ConfigError("idle_s and drain_s must be >= 0")
    get_scenario(scenario)  # unknown name → error listing the valid ones
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scalene_json, lag_file, stop_file, log = (
        out / "scalene.json",
        out / "event_loop_lag.csv",
        out / ".stop",
        out / "server.log",
    )
    for p in (scalene_json, lag_file, stop_file):
        p.unlink(missing_ok=True)
    port = free_port()
    program = [
        str(_write_launcher(out)),
        "serve",
        "--port",
        str(port),
        "--stop-file",
        str(stop_file),
        "--lag-file",
        str(lag_file),
        "--lag-interval",
        str(lag_interval_s),
    ]
    switch = profiler == "scalene" and not profile_startup
    cmd = (
        scalene_command(program, scalene_json, profile_all=profile_all, start_off=switch)
        if profiler == "scalene"
        else [sys.executable, *program]
    )
    params = {
        "scenario": scenario,
        "scale": scale,
        "idle_s": idle_s,
        "profiler": profiler,
        "sample_interval_s": sample_interval_s,
        "lag_interval_s": lag_interval_s,
        "profile_all": profile_all,
        "profile_startup": profile_startup,
        "load_options": dict(load_options or {}),
    }
    redis_server = RedisServer().start()
    marks: dict[str, float] = {}
    proc = None
    sampler = None
    try:
        full_env = child_env({**os.environ, **(env or {})}, AXON_REDIS_URL=redis_server.url)
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, env=full_env, stdout=logf, stderr=subprocess.STDOUT)
        sampler = ProcessResourceSampler(proc.pid, interval_s=sample_interval_s).start()
        marks["startup"] = time.time()
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, proc, startup_timeout_s, log=log)
        sampler.phase, marks["idle"] = "idle", time.time()
        time.sleep(idle_s)
        before = redis_stats.snapshot(redis_server.url)
        server_pid = serving_pid(proc.pid, port)
        if switch:
            scalene_switch(server_pid, on=True)
        sampler.phase, marks["load"] = "load", time.time()
        result = LoadRunner(
            url=url,
            scenario=scenario,
            scale=scale,
            out_dir=out / "load",
            progress=False,
            name=f"profile-{scenario}",
            **dict(load_options or {}),
        ).run()
        sampler.phase, marks["drain"] = "drain", time.time()
        if switch:
            scalene_switch(server_pid, on=False)
        after = redis_stats.snapshot(redis_server.url)
        time.sleep(drain_s)
        stop_file.touch()
        try:
            proc.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        resources = sampler.stop() if sampler is not None else pd.DataFrame()
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        redis_server.stop()
        stop_file.unlink(missing_ok=True)
    lag = label_phases(read_lag(lag_file), {k: v for k, v in marks.items() if k != "startup"})
    lag["t_s"] = lag["time"] - marks.get("startup", 0.0)  # same origin as the resource samples
    prof = parse_scalene(scalene_json) if profiler == "scalene" and scalene_json.exists() else None
    summary = {
        k: result.summary.get(k)
        for k in (
            "count",
            "rps",
            "errors",
            "error_rate",
            "p50",
            "p95",
            "p99",
            "max",
            "mean",
            "loop",
            "incomplete",
            "cache",
            "client",
        )
    }
    summary["scenario"] = scenario
    summary["passed"] = result.passed
    summary["thresholds"] = [{"expr": t.threshold.expr, "ok": t.ok} for t in result.thresholds]
    return ProfileRun(
        resources, lag, prof, summary, redis_stats.delta(before, after), params, out, marks
    )


def summarize(run: ProfileRun, *, soak: bool = False, n: int = 15) -> dict[str, Any]:
    """JSON-able results of a profile run: resources, verdicts, lag, memory slope, top tables."""
    verdicts = resource_verdicts(run.resources)
    slope = memory_slope(run.resources)
    res: dict[str, Any] = {
        "params": run.params,
        "load": run.load_summary,
        "redis": run.redis,
        "resources": resource_summary(run.resources),
        "verdicts": verdicts,
        "event_loop_lag": lag_summary(run.lag),
        "memory_slope": slope,
        "soak": soak,
    }
    p = run.scalene
    res["scalene"] = {
        "meta": p.meta if p is not None else None,
        "harness_pct": harness_share(p),
        "top_functions_cpu": top_functions(p, by="cpu", n=n),
        "top_functions_memory": top_functions(p, by="memory", n=n),
        "top_lines_cpu": top_lines(p, by="cpu", n=n),
        "top_lines_memory": top_lines(p, by="memory", n=n),
        "top_lines_growth": top_lines(p, by="growth", n=n),
        "leaks": p.leaks if p is not None else pd.DataFrame(),
    }
    return res


#: Smoke values (CI): the same code path, a few seconds of load.
SMOKE: dict[str, Any] = {"scale": 0.1, "idle_s": 2.0, "sample_interval_s": 0.25}


def effective_parameters(
    *, smoke: bool = False, out_dir: str = "", **params: Any
) -> dict[str, Any]:
    """A notebook's parameters with smoke values applied and defaults resolved.

    ``out_dir`` empty means ``<sidecar dir>/profile-run`` (``$AXON_LAB_OUT_DIR`` or
    ``reports/profiling``); a soak keeps the profiler only when one was asked for explicitly.
    """
    from axon_lab.report.sidecar import default_out_dir

    out = {**params, **(SMOKE if smoke else {}), "smoke": smoke}
    out["out_dir"] = out_dir or str(default_out_dir("profiling") / "profile-run")
    if out.get("scenario") in (None, ""):
        out["scenario"] = "sustained" if out.get("soak") else "simple"
    return out


def verdict(results: Mapping[str, Any]) -> dict[str, Any]:
    """One-line verdict: worst of the memory/CPU verdicts, and the soak leak flag."""
    v = results["verdicts"]
    statuses = [s for s in v.status if s != "unknown"]
    worst = (
        "fail"
        if "fail" in statuses
        else ("warn" if "warn" in statuses else ("pass" if statuses else "info"))
    )
    slope = results["memory_slope"]
    parts = [
        f"{r.metric}: {r.value:.0f} {r.unit} ({r.status})"
        for r in v.itertuples()
        if r.value is not None and not (isinstance(r.value, float) and math.isnan(r.value))
    ]
    if slope.get("slope_mb_per_min") is not None:
        judged = "" if slope.get("leak_suspected") is not None else " (too short to judge)"
        parts.append(f"RSS slope {slope['slope_mb_per_min']:+.1f} MB/min{judged}")
    if slope.get("leak_suspected"):
        parts.append("LEAK SUSPECTED")
        if results.get("soak"):
            worst = "fail"
    from axon_lab.report.summary import figure

    numbers = [
        figure(
            str(r.metric),
            r.value,
            str(r.unit),
            target=f"< {r.target:,g} {r.unit}" if r.target is not None else None,
            status=str(r.status),
        )
        for r in v.itertuples()
    ][:4]
    if slope.get("slope_mb_per_min") is not None:
        numbers.append(
            figure(
                "RSS slope under load",
                slope["slope_mb_per_min"],
                "MB/min",
                target="flat (no leak)",
                status="fail" if slope.get("leak_suspected") else None,
            )
        )
    return {"status": worst, "summary": "; ".join(parts) or "no samples", "numbers": numbers}


# --- the profiled server (run as a script under scalene) ----------------------------------------------------
async def _lag_probe(path: Path, interval_s: float) -> None:
    """Sleep ``interval_s`` repeatedly and log how late the loop woke up (unix_time,lag_ms)."""
    loop = asyncio.get_running_loop()
    with open(path, "a", encoding="utf-8") as f:
        while True:
            t0 = loop.time()
            await asyncio.sleep(interval_s)
            lag_ms = max(0.0, (loop.time() - t0 - interval_s) * 1000)
            f.write(f"{time.time():.3f},{lag_ms:.3f}\n")
            f.flush()


def _serve(port: int, stop_file: Path, lag_file: Path, lag_interval_s: float) -> None:
    """The embedded API with an event-loop lag probe; exits cleanly when ``stop_file`` appears
    (so a profiler wrapped around the process writes its output).
    """
    import uvicorn

    from axon_lab.api.app import create_app
    from axon_lab.config import get_settings

    config = uvicorn.Config(
        create_app(),
        host="127.0.0.1",
        port=port,
        log_level=get_settings().log_level,
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        async def watch() -> None:
            while not server.should_exit:
                if stop_file.exists():
                    server.should_exit = True
                await asyncio.sleep(0.25)

        tasks = [
            asyncio.create_task(watch()),
            asyncio.create_task(_lag_probe(lag_file, lag_interval_s)),
        ]
        try:
            await server.serve()
        finally:
            for t in tasks:
                t.cancel()

    asyncio.run(main())


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="axon_lab.profiling.server")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser(
        "serve", help="the API with a lag probe and a stop file (used by run_profile)"
    )
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--stop-file", type=Path, required=True)
    s.add_argument("--lag-file", type=Path, required=True)
    s.add_argument("--lag-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    _serve(args.port, args.stop_file, args.lag_file, args.lag_interval)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
