"""The ``locust`` load engine: the same closed-loop scenarios on Locust's distributed master/worker runner.

Locust (and gevent) run only in subprocesses: ``locust -f axon_lab/load/locust_worker.py
--headless --master`` plus ``--worker`` processes. Each worker records every request at full
resolution (``perf_counter_ns``; the record schema of :mod:`axon_lab.load.records`, Server-Timing
stages and cache headers included) and streams columnar chunks to the master, which writes them
to ``<run>/locust/parts/``. This engine (in the axon-lab process) feeds those chunks into the
ordinary :class:`~axon_lab.load.records.RecordSink` as they arrive, so the runner's summary,
HDR histograms, thresholds (exit 99 across all workers), checks, CIs and stage breakdown work
unchanged. Worker times are aligned on the master's clock by each worker's wall-clock start.

Besides our exact figures the run keeps Locust's own statistics (bucketed: response times are
rounded to ~2 significant digits above 100 ms) in the summary's ``locust`` block;
:func:`side_by_side` shows both.

Modes (:class:`LocustEngine` keyword options, ``--workers`` / ``--master`` / ``--worker`` in the CLI)

* ``workers=N`` (default 1): master and N workers on this machine, on 127.0.0.1;
* ``expect_workers=N`` with ``master_bind``: only the master here; workers on other machines run
  :func:`run_worker` (``axon-lab load ... --engine locust --worker --master-host H``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from axon_lab.errors import BackendUnavailable, ConfigError
from axon_lab.load.checks import Check, parse_check
from axon_lab.load.engine import ENGINES, EngineOutcome, Plan
from axon_lab.load.hdr import Histogram, merge_histograms, write_histograms
from axon_lab.load.records import RecordSink
from axon_lab.load.selfcheck import ClientMonitor

LOCUSTFILE = Path(__file__).with_name("locust_worker.py")
DEFAULT_MASTER_PORT = 5557
#: Locust's summary percentiles, as stored in the ``locust`` block.
LOCUST_PERCENTILES = ("p50", "p90", "p95", "p99", "p999")


def plan_document(plan: Plan, *, method: str = "GET") -> dict[str, Any]:
    """The JSON plan the locustfile reads (closed loop, plain HTTP only).

    Parameters
    ----------
    plan
        The engine plan.
    method
        Request method (a label for Locust's statistics).

    Raises
    ------
    ConfigError
        For open-loop shapes, https targets or checks, which this engine does not run.
    """
    shape = plan.shape
    if shape.is_open:
        raise ConfigError(
            "the locust engine runs closed-loop users (constant-vus/ramping-vus); "
            "use --engine asyncio for arrival-rate (open-loop) shapes"
        )
    if plan.target.scheme != "http":
        raise ConfigError("the locust engine sends plain http only; use --engine asyncio for https")
    checks = [check_expression(c) for c in plan.checks]
    first = (
        plan.payloads[0].split(b" ", 1)[0].decode("ascii", "replace") if plan.payloads else method
    )
    return {
        "host": plan.target.host,
        "port": plan.target.port,
        "path": plan.target.path,
        "method": first,
        "payloads": [p.hex() for p in plan.payloads],
        "stages": [list(s) for s in shape.stages],
        "start": shape.start,
        "ramping": shape.executor == "ramping-vus",
        "think_time_s": shape.think_time_s,
        "timeout_s": plan.timeout_s,
        "connect_timeout_s": plan.connect_timeout_s,
        "grace_s": plan.grace_s,
        "max_requests": plan.max_requests,
        "late_ms": plan.late_ms,
        "cache_headers": list(plan.cache_headers),
        "checks": checks,
    }


def check_expression(check: Check) -> str:
    """The CLI expression of a built-in check (workers re-parse it; functions cannot travel).

    Raises
    ------
    ConfigError
        For a custom ``(name, fn)`` check, which a worker process cannot rebuild.
    """
    n = check.name
    expr = None
    m = re.match(r"^(status|duration|response_time) (<=|>=|==|!=|<|>) ([\d.]+)(ms)?$", n)
    if n.startswith("status is "):
        expr = "status==" + n[len("status is ") :]
    elif m:
        expr = f"{m.group(1)}{m.group(2)}{m.group(3)}"
    elif n.startswith("status in "):
        expr = n
    elif n.startswith("response has "):
        expr = "json:" + n[len("response has ") :]
    elif n.startswith("has header "):
        expr = "header:" + n[len("has header ") :]
    elif n.startswith("body matches "):
        expr = "body~" + n[len("body matches ") :]
    if expr is None or parse_check(expr).name != n:
        raise ConfigError(
            f"the locust engine runs built-in checks only (CLI syntax); {n!r} is a "
            "custom check: use --engine asyncio"
        )
    return expr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _locust_cmd(*args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--loglevel",
        os.environ.get("AXON_LOCUST_LOGLEVEL", "WARNING"),
        *args,
    ]


def _env(plan_path: Path, run_dir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AXON_LOCUST_PLAN"] = str(plan_path)
    env["AXON_LOCUST_RUN_DIR"] = str(run_dir)
    return env


class LocustEngine:
    """Runs a :class:`~axon_lab.load.engine.Plan` on Locust master/worker subprocesses.

    Parameters
    ----------
    plan
        What to run (closed loop, http).
    sink
        Where records go (fed from the workers' chunks).
    use_uvloop
        Ignored (Locust runs on gevent, in its own processes).
    workers
        Workers to start on this machine (with ``expect_workers`` unset).
    expect_workers
        Master-only mode: start no workers, wait for this many remote ones.
    master_bind
        Master-only mode: the address the master listens on (``0.0.0.0`` for other machines).
    master_port
        The master's port (default: a free one locally, 5557 in master-only mode).
    connect_wait_s
        How long the master waits for every worker to connect.
    """

    name = "locust"

    def __init__(
        self,
        plan: Plan,
        sink: RecordSink,
        *,
        use_uvloop: bool = False,
        workers: int = 1,
        expect_workers: int | None = None,
        master_bind: str = "127.0.0.1",
        master_port: int | None = None,
        connect_wait_s: float = 60.0,
    ) -> None:
        self.plan = plan
        self.sink = sink
        self.doc = plan_document(plan)
        self.remote = expect_workers is not None
        self.n_workers = int(expect_workers if expect_workers is not None else workers)
        if self.n_workers < 1:
            raise ConfigError("workers must be >= 1")
        if not self.remote and master_bind not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(
                "local workers use the loopback master; use expect_workers for remote ones"
            )
        self.master_bind = master_bind
        self.master_port = master_port
        self.connect_wait_s = connect_wait_s
        self.run_dir = Path(sink.directory) / "locust"
        self.stop_reason: str | None = None
        self.started = False
        self.t0_ns = 0
        self.t0_wall_ns = 0
        self.done = 0
        self.errors = 0
        self._seen: set[str] = set()
        self._procs: list[subprocess.Popen[bytes]] = []
        self._worker_counts: dict[int, int] = {}
        self._worker_hist: dict[int, dict[str, Histogram]] = {}
        self._seq = 0
        self._last_end_ns = 0
        self._started_utc = ""
        self.info: dict[str, Any] = {}

    # -- engine interface ---------------------------------------------------------------------
    def run(self) -> EngineOutcome:
        """Start master (and local workers), ingest their chunks until the master exits."""
        plan = self.plan
        try:
            socket.create_connection(
                (plan.target.host, plan.target.port), timeout=plan.connect_timeout_s
            ).close()
        except OSError as exc:
            raise BackendUnavailable("load target", f"{plan.target.base_url}: {exc}") from None
        if self.run_dir.exists():  # an earlier run's parts must not be ingested
            shutil.rmtree(self.run_dir)
        self.run_dir.mkdir(parents=True)
        plan_path = self.run_dir / "plan.json"
        plan_path.write_text(json.dumps(self.doc), encoding="utf-8")
        port = self.master_port or (DEFAULT_MASTER_PORT if self.remote else _free_port())
        env = _env(plan_path, self.run_dir)
        logs = self.run_dir / "logs"
        logs.mkdir(exist_ok=True)
        cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        master = self._spawn(
            _locust_cmd(
                "--master",
                "--master-bind-host",
                self.master_bind,
                "--master-bind-port",
                str(port),
                "--expect-workers",
                str(self.n_workers),
                "--expect-workers-max-wait",
                str(int(self.connect_wait_s)),
                "--csv",
                str(self.run_dir / "locust"),
                "--only-summary",
                # Ramp-down lets a retiring user finish its request (k6's graceful ramp-down)
                # instead of killing it mid-flight.
                "--stop-timeout",
                f"{max(1.0, plan.timeout_s):g}",
            ),
            env,
            logs / "master.log",
        )
        if not self.remote:
            for i in range(self.n_workers):
                self._spawn(
                    _locust_cmd(
                        "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)
                    ),
                    env,
                    logs / f"worker-{i}.log",
                )
        launched_ns = time.perf_counter_ns()
        self.t0_ns = launched_ns
        self.t0_wall_ns = time.time_ns()
        started_utc = _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")
        self._started_utc = started_utc
        hard_end = (
            time.monotonic() + self.connect_wait_s + plan.shape.duration_s + plan.grace_s + 60
        )
        try:
            while master.poll() is None:
                if not self.started:
                    self._clock_origin()
                self._ingest()
                if self.stop_reason is not None or time.monotonic() > hard_end:
                    self.stop_reason = self.stop_reason or "wall-clock bound exceeded"
                    master.terminate()  # Locust quits cleanly on SIGTERM and writes its stats
                    try:
                        master.wait(15)
                    except subprocess.TimeoutExpired:
                        master.kill()
                    break
                time.sleep(0.2)
        finally:
            for p in self._procs[1:]:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
            if master.poll() is None:
                master.kill()
                master.wait()
        if not self.started:
            self._clock_origin()
        self._ingest()
        # The load phase: from the master's test start to the last response.
        end_ns = self.t0_ns + self._last_end_ns if self._last_end_ns > 0 else time.perf_counter_ns()
        cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        elapsed = max(1e-9, (end_ns - self.t0_ns) / 1e9)
        cpu_s = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        self.info = self._collect(cpu_s, elapsed, master.returncode)
        done = self.info["workers_done"]
        reason = self.stop_reason
        if reason is None and len(done) < self.n_workers:
            reason = f"only {len(done)} of {self.n_workers} locust workers reported (see {logs})"
        scheduled = sum(int(d.get("scheduled", 0)) for d in done.values())
        ended_by = (
            "stop"
            if self.stop_reason
            else (
                "max_requests"
                if done and all(d.get("reason") == "max_requests" for d in done.values())
                else "duration"
            )
        )
        window = plan.shape.duration_s
        if ended_by == "max_requests":
            window = min(window, elapsed)
        self.info["startup_s"] = round((self.t0_ns - launched_ns) / 1e9, 3)
        checks = {c.name: {"passes": 0, "fails": 0} for c in plan.checks}
        for d in done.values():
            for name, (passes, fails) in (d.get("checks") or {}).items():
                if name in checks:
                    checks[name]["passes"] += int(passes)
                    checks[name]["fails"] += int(fails)
        return EngineOutcome(
            started_utc=self._started_utc,
            elapsed_s=elapsed,
            window_s=window,
            scheduled=scheduled,
            stop_reason=reason,
            monitor=ClientMonitor(),
            checks=checks,
            connections_opened=sum(int(d.get("connections", 0)) for d in done.values()),
            peak_vus=int(plan.shape.peak),
            ended_by=ended_by,
        )

    def request_stop(self, reason: str) -> None:
        """Stop soon: the master is sent SIGTERM and the run ends incomplete."""
        self.stop_reason = self.stop_reason or reason

    def progress(self) -> dict[str, Any]:
        """Counters for the progress bar (updated as chunks arrive, about once a second)."""
        elapsed = (time.perf_counter_ns() - self.t0_ns) / 1e9 if self.started else 0.0
        return {
            "elapsed_s": elapsed,
            "sent": self.done,
            "done": self.done,
            "errors": self.errors,
            "inflight": 0,
            "backlog": 0,
            "dropped": 0,
            "vus": 0,
            "late": 0,
        }

    def summary_extra(self) -> dict[str, Any]:
        """The ``locust`` block for the summary (Locust's own statistics, workers, client CPU).

        Also replaces the ``engine`` block: Locust runs on gevent (no uvloop), with this many
        workers and connections.
        """
        done = self.info.get("workers_done") or {}
        engine = {
            "name": self.name,
            "uvloop": False,
            "workers": self.n_workers,
            "peak_vus": int(self.plan.shape.peak),
            "connections_opened": sum(int(d.get("connections", 0)) for d in done.values()),
        }
        return {"locust": self.info, "engine": engine}

    # -- internals ----------------------------------------------------------------------------
    def _spawn(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "wb") as fh:
            p = subprocess.Popen(
                cmd, env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        self._procs.append(p)
        return p

    def _clock_origin(self) -> None:
        """Take the master's test start (written by the locustfile) as t = 0."""
        path = self.run_dir / "master_start.json"
        if not path.exists():
            return
        wall = int(json.loads(path.read_text(encoding="utf-8"))["t0_wall_ns"])
        # The same instant on our perf_counter clock (both clocks tick at the same rate).
        self.t0_ns = time.perf_counter_ns() - (time.time_ns() - wall)
        self.t0_wall_ns = wall
        self._started_utc = _dt.datetime.fromtimestamp(wall / 1e9, _dt.UTC).isoformat(
            timespec="milliseconds"
        )
        self.started = True

    def _ingest(self) -> None:
        """Feed every new part file into the sink (worker clocks aligned on ours)."""
        import msgpack

        parts = self.run_dir / "parts"
        if not parts.is_dir() or not self.started:
            return
        for path in sorted(parts.glob("w*.msgpack")):
            if path.name in self._seen:
                continue
            self._seen.add(path.name)
            d = msgpack.unpackb(path.read_bytes(), raw=False)
            self._add_chunk(d)
        self.sink.flush()

    def _add_chunk(self, d: dict[str, Any]) -> None:
        cols, errors = d["cols"], d["error"]
        worker = int(d["worker"])
        shift = int(d["t0_wall_ns"]) - self.t0_wall_ns
        stages, caches = d["stages"], d["caches"]
        n = len(errors)
        add = self.sink.add
        stage_i, conns = cols["shape_stage"], cols["conn"]
        times = [cols[k] for k in ("intended_ns", "sent_ns", "first_byte_ns", "end_ns")]
        connect, status, outcome = cols["connect_ns"], cols["status"], cols["outcome"]
        cpass, cfail = cols["checks_passed"], cols["checks_failed"]
        nbytes, late = cols["bytes"], cols["late"]
        conn_base = worker * 1_000_000
        for i in range(n):
            it, st, fb, en = (int(t[i]) for t in times)
            add(
                self._seq,
                stage_i[i],
                conn_base + conns[i] if conns[i] >= 0 else -1,
                it + shift,
                st + shift if st >= 0 else -1,
                fb + shift if fb >= 0 else -1,
                en + shift if en >= 0 else -1,
                connect[i],
                status[i],
                outcome[i],
                errors[i],
                nbytes[i],
                False,
                bool(late[i]),
                cpass[i],
                cfail[i],
                {k: v[i] for k, v in stages.items() if v[i] == v[i]} or None,
                {k: v[i] for k, v in caches.items() if v[i] is not None} or None,
            )
            self._seq += 1
            if en >= 0 and en + shift > self._last_end_ns:
                self._last_end_ns = en + shift
            if outcome[i] not in (0, 6):
                self.errors += 1
        # The worker's own HDR histogram (merged with the others' at the end).
        o = np.asarray(outcome)
        timed = (o <= 2) & (np.asarray(times[1]) >= 0)
        resp = (np.asarray(times[3]) - np.asarray(times[0]))[timed] / 1e6
        serv = (np.asarray(times[3]) - np.asarray(times[1]))[timed] / 1e6
        h = self._worker_hist.setdefault(
            worker, {"http_req_duration": Histogram(), "http_req_service_duration": Histogram()}
        )
        h["http_req_duration"].record_ms(resp)
        h["http_req_service_duration"].record_ms(serv)
        self.done += n
        self._worker_counts[worker] = self._worker_counts.get(worker, 0) + n

    def _collect(self, cpu_s: float, elapsed: float, master_rc: int | None) -> dict[str, Any]:
        done: dict[int, dict[str, Any]] = {}
        for path in sorted(self.run_dir.glob("worker-*.json")):
            d = json.loads(path.read_text(encoding="utf-8"))
            done[int(d["worker"])] = d
        for w, hist in self._worker_hist.items():
            write_histograms(self.run_dir / f"histograms-worker-{w:03d}.json", hist)
        merged = merge_histograms(self._worker_hist.values()) if self._worker_hist else {}
        stats_path = self.run_dir / "locust_stats.json"
        stats = json.loads(stats_path.read_text(encoding="utf-8")) if stats_path.exists() else None
        return {
            "version": _locust_version(),
            "workers": self.n_workers,
            "mode": "master-only" if self.remote else "local",
            "master_returncode": master_rc,
            "workers_done": done,
            # Records the master received per worker (must equal what each worker recorded).
            "records_by_worker": {str(k): v for k, v in sorted(self._worker_counts.items())},
            "recorded_by_worker": {
                str(k): int(v.get("recorded", 0)) for k, v in sorted(done.items())
            },
            "merged_histogram_count": {k: h.count for k, h in merged.items()},
            "client_cpu_s": round(cpu_s, 3),
            "client_cpu_pct": round(100.0 * cpu_s / elapsed, 1),
            "stats": stats,
            "csv": str(self.run_dir / "locust_stats.csv"),
        }


def _locust_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("locust")
    except PackageNotFoundError:  # pragma: no cover
        return None


def run_worker(
    plan: Plan,
    *,
    master_host: str,
    master_port: int = DEFAULT_MASTER_PORT,
    run_dir: Path | str | None = None,
) -> int:
    """Run one Locust worker for ``plan`` against a master elsewhere (blocking).

    The worker builds its plan from the same scenario arguments as the master side, sends its
    records to the master and exits when the master quits.

    Parameters
    ----------
    plan
        The same plan the master side runs (same scenario, URL, shape, max_requests).
    master_host, master_port
        Where the master listens.
    run_dir
        Where the plan file and the worker's log go (default: a temporary directory).

    Returns
    -------
    int
        The worker process's exit code.
    """
    import tempfile

    doc = plan_document(plan)
    with tempfile.TemporaryDirectory(prefix="axon-locust-worker-") as tmp:
        d = Path(run_dir) if run_dir is not None else Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        plan_path = d / "plan.json"
        plan_path.write_text(json.dumps(doc), encoding="utf-8")
        cmd = _locust_cmd(
            "--worker", "--master-host", master_host, "--master-port", str(master_port)
        )
        return subprocess.call(cmd, env=_env(plan_path, d))


def side_by_side(summary: dict[str, Any]) -> str:
    """Our exact percentiles beside Locust's bucketed ones for the same run (ms).

    Parameters
    ----------
    summary
        A ``summary.json`` of a ``locust``-engine run.

    Returns
    -------
    str
        A small text table: percentile, ours, Locust's, Locust's error.
    """
    stats = (summary.get("locust") or {}).get("stats") or {}
    theirs = stats.get("percentiles") or {}
    lines = [f"{'':6} {'axon_lab':>12} {'locust':>10} {'locust err':>11}"]
    for key in LOCUST_PERCENTILES:
        ours = summary.get(key)
        loc = theirs.get(key)
        err = f"{(loc - ours) / ours:+.2%}" if ours and loc is not None else "-"
        o = f"{ours:.2f}" if ours is not None else "-"
        lines.append(f"{key:6} {o:>12} {loc if loc is not None else '-':>10} {err:>11}")
    lines.append(f"{'count':6} {summary.get('count', 0):>12} {stats.get('count', '-'):>10}")
    return "\n".join(lines)


ENGINES.register("locust", LocustEngine)
