"""Profiling the API under load: scalene's JSON as tables and a flame layout, RSS/CPU% and event-loop lag against the guide's targets, soak memory slope.

``run_profile(scenario=...)`` starts ``axon-lab``'s API in a subprocess (under ``scalene run``
unless ``profiler="none"``), samples its RSS and CPU% with psutil while idle and while a load
scenario (:mod:`axon_lab.load`) drives it, records the event loop's lag from inside the
server, then stops it so scalene writes its profile. The parsing functions work on any
scalene 2.x JSON (``scalene run -o out.json prog.py``).

Conventions: CPU% is per core, as ``docker stats`` and ``top`` report it (100% = one core
busy), and the guide's CPU targets (< 50% normal, < 80% peak) are judged on that figure;
"normal" is the mean over the load phase, "peak" the 95th percentile of the samples.
Memory is the RSS of the server's process tree (profiler included when there is one).
Percentiles are numpy's linear interpolation (type 7).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import goals
from axon_lab.api.server import wait_ready
from axon_lab.config import child_env
from axon_lab.errors import BackendUnavailable, ConfigError, InputFileError
from axon_lab.jsonutil import read_json

PACKAGE_DIR = Path(__file__).resolve().parents[1]
#: The guide's "High Event Loop Delay (> 10ms)" (clinic doctor) in "Identify Bottlenecks".
LAG_LIMIT_MS = 10.0
#: Soak: RSS growth (MB per minute over the load phase) above which a leak is suspected, when
#: the slope's 95% CI excludes zero as well.
LEAK_SLOPE_MB_PER_MIN = 1.0
PHASES: tuple[str, ...] = ("startup", "idle", "load", "drain")


# --- scalene JSON -----------------------------------------------------------------------------------
@dataclass
class ScaleneProfile:
    """A parsed scalene profile.

    Attributes
    ----------
    lines, functions
        One row per profiled line / function: file, lineno, name or source, cpu_python_pct,
        cpu_native_pct, cpu_system_pct, cpu_pct (their sum), malloc_mb, peak_mb, avg_mb,
        growth_mb, mallocs, python_alloc_fraction, copy_mb_s. Lines inside one loop region
        that scalene reports with identical figures are collapsed into one row (``lines``
        names the range), so shares are not counted twice.
    stacks
        CPU stacks: ``frames`` (outermost first, ``file func:line``), cpu_s, count.
    memory
        The footprint timeline: t_s (since start), footprint_mb.
    leaks
        Lines scalene's leak detector flagged (file, lineno, likelihood, velocity_mb_s).
    meta
        elapsed_s, max_footprint_mb (and where), growth_rate, program, memory (bool).
    """

    lines: pd.DataFrame
    functions: pd.DataFrame
    stacks: pd.DataFrame
    memory: pd.DataFrame
    leaks: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


_METRICS = {"n_cpu_percent_python": "cpu_python_pct", "n_cpu_percent_c": "cpu_native_pct",
            "n_sys_percent": "cpu_system_pct", "n_malloc_mb": "malloc_mb", "n_peak_mb": "peak_mb",
            "n_avg_mb": "avg_mb", "n_growth_mb": "growth_mb", "n_mallocs": "mallocs",
            "n_python_fraction": "python_alloc_fraction", "n_copy_mb_s": "copy_mb_s"}


def _rows(entries: Sequence[Mapping[str, Any]], file: str, kind: str) -> list[dict[str, Any]]:
    out = []
    for e in entries:
        row: dict[str, Any] = {"file": file, "lineno": int(e.get("lineno", 0))}
        text = str(e.get("line", ""))
        row["name" if kind == "function" else "source"] = text.strip() if kind == "line" else text
        for k, v in _METRICS.items():
            row[v] = float(e.get(k, 0.0) or 0.0)
        row["cpu_pct"] = row["cpu_python_pct"] + row["cpu_native_pct"] + row["cpu_system_pct"]
        if kind == "line":
            row["region"] = (e.get("start_region_line"), e.get("end_region_line"))
        out.append(row)
    return out


def _collapse_regions(lines: pd.DataFrame) -> pd.DataFrame:
    """Collapse lines of one loop region that carry identical figures into a single row."""
    if lines.empty:
        return lines.assign(lines="")
    keys = ["file", "cpu_python_pct", "cpu_native_pct", "cpu_system_pct", "malloc_mb", "growth_mb"]
    lines = lines.copy()
    lines["region_key"] = lines["region"].astype(str)
    active = (lines.cpu_pct > 0) | (lines.malloc_mb > 0)
    multi = lines["region"].map(lambda r: bool(r and r[0] is not None and r[1] is not None and r[1] > r[0]))
    grouped = lines[active & multi].groupby([*keys, "region_key"], sort=False)
    keep = []
    for _, g in grouped:
        first = g.iloc[0].to_dict()
        first["lines"] = (f"{int(g.lineno.min())}-{int(g.lineno.max())}" if len(g) > 1
                          else str(int(first["lineno"])))
        keep.append(first)
    rest = lines[~(active & multi)].assign(lines=lambda d: d.lineno.astype(str))
    out = pd.concat([pd.DataFrame(keep), rest], ignore_index=True) if keep else rest
    return out.drop(columns=["region", "region_key"]).sort_values(["file", "lineno"]).reset_index(drop=True)


def parse_scalene(source: str | Path | Mapping[str, Any]) -> ScaleneProfile:
    """Parse scalene's JSON (a path or the loaded dict) into frames.

    Raises
    ------
    InputFileError
        When the file is missing, not JSON or not a scalene profile.
    """
    if isinstance(source, Mapping):
        doc = dict(source)
        where: Any = "<dict>"
    else:
        where = Path(source)
        doc = read_json(where)
    if not isinstance(doc, dict) or "files" not in doc or not isinstance(doc["files"], dict):
        raise InputFileError(where, "not a scalene profile (no 'files' object)")
    lines, funcs, leaks = [], [], []
    for fname, f in doc["files"].items():
        lines += _rows(f.get("lines", []), fname, "line")
        funcs += _rows(f.get("functions", []), fname, "function")
        for lineno, leak in (f.get("leaks") or {}).items():
            leak = leak if isinstance(leak, Mapping) else {}
            leaks.append({"file": fname, "lineno": int(lineno), "likelihood": leak.get("likelihood"),
                          "velocity_mb_s": leak.get("velocity_mb_s")})
    line_df = _collapse_regions(pd.DataFrame(lines)) if lines else pd.DataFrame(lines)
    stacks = []
    for entry in doc.get("stacks", []) or []:
        if not isinstance(entry, Sequence) or len(entry) != 2:
            continue
        frames, stats = entry
        stats = stats if isinstance(stats, Mapping) else {}
        stacks.append({"frames": [str(fr).rstrip(";") for fr in frames],
                       "cpu_s": float(stats.get("cpu_samples", 0.0) or 0.0),
                       "count": int(stats.get("count", 0) or 0)})
    memory = pd.DataFrame([{"t_s": float(t) / 1e9, "footprint_mb": float(mb)}
                           for t, mb in (doc.get("samples") or []) if t is not None],
                          columns=["t_s", "footprint_mb"])
    meta = {"elapsed_s": doc.get("elapsed_time_sec"), "max_footprint_mb": doc.get("max_footprint_mb"),
            "max_footprint_at": f"{doc.get('max_footprint_fname')}:{doc.get('max_footprint_lineno')}",
            "growth_rate": doc.get("growth_rate"), "program": doc.get("program"),
            "memory": bool(doc.get("memory")), "files": len(doc["files"])}
    return ScaleneProfile(line_df, pd.DataFrame(funcs), pd.DataFrame(stacks, columns=["frames", "cpu_s", "count"]),
                          memory, pd.DataFrame(leaks, columns=["file", "lineno", "likelihood", "velocity_mb_s"]),
                          meta)


_BY = {"cpu": "cpu_pct", "memory": "malloc_mb", "peak": "peak_mb", "growth": "growth_mb"}


def _short(path: str) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(PACKAGE_DIR.parent))
    except ValueError:
        return p.name if p.is_absolute() else path


def is_harness(file: str) -> bool:
    """True for the profiling harness' own files (this module, the generated entry script)."""
    return file.endswith(("profiling/scalene.py", "serve_axon_lab.py"))


def harness_share(profile: ScaleneProfile | None) -> float | None:
    """Share of sampled time (%) scalene put on the harness' lines: with the default program
    path that is the event loop, the web framework and idle worker threads, everything that ran
    outside ``axon_lab`` frames."""
    if profile is None or profile.functions.empty:
        return None
    f = profile.functions
    return float(f.loc[f.file.map(is_harness), "cpu_pct"].sum())


def top_lines(profile: ScaleneProfile | None, *, by: str = "cpu", n: int = 15,
              harness: bool = False) -> pd.DataFrame:
    """The ``n`` lines with the most CPU (``cpu``), allocation (``memory``), peak or growth
    (empty when there is no profile, e.g. a run with ``profiler="none"``).

    scalene's CPU shares are of sampled time across threads, and it counts a thread blocked in C
    (a pool worker waiting on its queue, the loop in ``epoll``) as native/system time; psutil's
    CPU% (:func:`resource_verdicts`) is the machine's view. Without ``harness`` the harness' own
    lines (see :func:`harness_share`) are left out, so the table shows the application's code.
    """
    col = _BY.get(by)
    if col is None:
        raise ConfigError(f"unknown ordering {by!r}; valid: {', '.join(_BY)}")
    df = profile.lines if profile is not None else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=["file", "lines", "source", "cpu_pct", "malloc_mb", "growth_mb"])
    if not harness:
        df = df[~df.file.map(is_harness)]
    df = df[df[col] > 0].sort_values(col, ascending=False).head(n)
    cols = ["file", "lines", "source", "cpu_pct", "cpu_python_pct", "cpu_native_pct", "cpu_system_pct",
            "malloc_mb", "peak_mb", "growth_mb", "python_alloc_fraction", "copy_mb_s"]
    return df.assign(file=df.file.map(_short))[cols].reset_index(drop=True)


def top_functions(profile: ScaleneProfile | None, *, by: str = "cpu", n: int = 15,
                  harness: bool = False) -> pd.DataFrame:
    """The ``n`` functions with the most CPU, allocation, peak or growth (empty without a profile;
    the harness' own functions only with ``harness``; see :func:`top_lines`)."""
    col = _BY.get(by)
    if col is None:
        raise ConfigError(f"unknown ordering {by!r}; valid: {', '.join(_BY)}")
    df = profile.functions if profile is not None else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(columns=["file", "lineno", "name", "cpu_pct", "cpu_python_pct", "cpu_native_pct",
                                     "cpu_system_pct", "malloc_mb", "peak_mb", "growth_mb"])
    if not harness:
        df = df[~df.file.map(is_harness)]
    df = df[df[col] > 0].sort_values(col, ascending=False).head(n)
    cols = ["file", "lineno", "name", "cpu_pct", "cpu_python_pct", "cpu_native_pct", "cpu_system_pct",
            "malloc_mb", "peak_mb", "growth_mb"]
    return df.assign(file=df.file.map(_short))[cols].reset_index(drop=True)


def _frame_label(frame: str) -> str:
    """``/x/axon_lab/embeddings.py embed:38`` → ``embeddings.py embed:38``."""
    path, _, rest = frame.partition(" ")
    return f"{Path(path).name} {rest}".strip()


def flame_layout(profile: ScaleneProfile | None, *, min_share: float = 0.005) -> pd.DataFrame:
    """An icicle (flame graph) layout of scalene's CPU stacks.

    Every distinct call-path prefix becomes a box: ``depth`` (0 = outermost), ``x0`` and
    ``width`` as shares of all sampled CPU time, ``cpu_s``, ``label`` (file function:line) and
    ``path``. Boxes narrower than ``min_share`` are dropped (their time still counts in
    their parents). Children are ordered by name, as flame graphs are.
    """
    st = profile.stacks if profile is not None else pd.DataFrame()
    if st.empty or st.cpu_s.sum() <= 0:
        return pd.DataFrame(columns=["depth", "x0", "width", "cpu_s", "label", "path"])
    total = float(st.cpu_s.sum())
    weight: dict[tuple[str, ...], float] = {}
    children: dict[tuple[str, ...], set[tuple[str, ...]]] = {(): set()}
    for frames, cpu in zip(st.frames, st.cpu_s, strict=True):
        path: tuple[str, ...] = ()
        for fr in frames:
            child = (*path, fr)
            weight[child] = weight.get(child, 0.0) + float(cpu)
            children.setdefault(path, set()).add(child)
            children.setdefault(child, set())
            path = child
    rows = []
    stack: list[tuple[tuple[str, ...], float]] = []
    x = 0.0
    for c in sorted(children[()]):
        stack.append((c, x))
        x += weight[c] / total
    while stack:
        node, x0 = stack.pop()
        w = weight[node] / total
        if w >= min_share:
            rows.append({"depth": len(node) - 1, "x0": x0, "width": w, "cpu_s": weight[node],
                         "label": _frame_label(node[-1]), "path": " > ".join(_frame_label(f) for f in node)})
        cx = x0
        for c in sorted(children[node]):
            stack.append((c, cx))
            cx += weight[c] / total
    return pd.DataFrame(rows).sort_values(["depth", "x0"]).reset_index(drop=True)


# --- resources, event-loop lag, soak ------------------------------------------------------------------
class ResourceSampler:
    """Samples RSS and CPU% of a process tree with psutil on a background thread.

    Set :attr:`phase` to label what follows (``startup``, ``idle``, ``load``, ``drain``);
    :meth:`frame` returns the samples: t_s (since start), phase, rss_mb, cpu_pct (per core,
    100 = one core), threads, processes.
    """

    def __init__(self, pid: int, *, interval_s: float = 0.5) -> None:
        import psutil

        if interval_s <= 0:
            raise ConfigError(f"sample interval must be > 0, got {interval_s}")
        self._psutil = psutil
        self.root = psutil.Process(pid)
        self.interval_s = interval_s
        self.phase = "startup"
        self._rows: list[dict[str, Any]] = []
        self._procs: dict[int, Any] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="axon-resource-sampler", daemon=True)
        self._t0 = time.monotonic()

    def _tree(self) -> list[Any]:
        try:
            return [self.root, *self.root.children(recursive=True)]
        except self._psutil.Error:
            return []

    def _loop(self) -> None:
        while not self._stop.is_set():
            rss, cpu, threads, n = 0, 0.0, 0, 0
            for p in self._tree():
                proc = self._procs.setdefault(p.pid, p)
                try:
                    with proc.oneshot():
                        mem = proc.memory_info().rss
                        if not mem:  # an exited (zombie) process reads 0: not a sample
                            continue
                        rss += mem
                        cpu += proc.cpu_percent(None)  # since the previous call: first one reads 0
                        threads += proc.num_threads()
                        n += 1
                except self._psutil.Error:
                    continue
            if n:
                self._rows.append({"t_s": time.monotonic() - self._t0, "phase": self.phase,
                                   "rss_mb": rss / 2**20, "cpu_pct": cpu, "threads": threads, "processes": n})
            self._stop.wait(self.interval_s)

    def start(self) -> ResourceSampler:
        self._thread.start()
        return self

    def stop(self) -> pd.DataFrame:
        """Stop sampling and return :meth:`frame`."""
        self._stop.set()
        self._thread.join(5)
        return self.frame()

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(list(self._rows), columns=["t_s", "phase", "rss_mb", "cpu_pct", "threads", "processes"])


def resource_summary(resources: pd.DataFrame) -> pd.DataFrame:
    """Per phase: samples, RSS mean/max (MB) and CPU% mean/p95/max (per core)."""
    rows = []
    for phase in [p for p in PHASES if p in set(resources.phase)]:
        g = resources[resources.phase == phase]
        rows.append({"phase": phase, "samples": len(g), "seconds": float(g.t_s.max() - g.t_s.min()) if len(g) else 0.0,
                     "rss_mean_mb": float(g.rss_mb.mean()), "rss_max_mb": float(g.rss_mb.max()),
                     "cpu_mean_pct": float(g.cpu_pct.mean()), "cpu_p95_pct": float(np.percentile(g.cpu_pct, 95)),
                     "cpu_max_pct": float(g.cpu_pct.max())})
    return pd.DataFrame(rows)


def resource_verdicts(resources: pd.DataFrame) -> pd.DataFrame:
    """The guide's memory and CPU targets judged on the samples.

    * memory idle: max RSS while idle, target < 2 GB (warn up to the 4 GB critical);
    * memory under load: max RSS during load, critical < 4 GB (pass below, fail above);
    * CPU normal: mean CPU% during load, target < 50% (warn up to 80%);
    * CPU peak: p95 of CPU% samples during load, critical < 80% (pass below, fail above).
    """
    s = resource_summary(resources).set_index("phase")
    mem, cpu = goals.get("memory_usage"), goals.get("cpu_usage")

    def val(phase: str, col: str) -> float | None:
        return float(s.loc[phase, col]) if phase in s.index else None

    def critical(v: float | None, limit: float) -> str:
        return "unknown" if v is None else ("pass" if v < limit else "fail")

    rows = [
        {"metric": "memory idle (max RSS)", "value": val("idle", "rss_max_mb"), "unit": "MB",
         "target": mem.target, "critical": mem.critical, "status": mem.judge(val("idle", "rss_max_mb"))},
        {"metric": "memory under load (max RSS)", "value": val("load", "rss_max_mb"), "unit": "MB",
         "target": mem.critical, "critical": mem.critical, "status": critical(val("load", "rss_max_mb"), mem.critical)},
        {"metric": "CPU normal (mean under load)", "value": val("load", "cpu_mean_pct"), "unit": "% of a core",
         "target": cpu.target, "critical": cpu.critical, "status": cpu.judge(val("load", "cpu_mean_pct"))},
        {"metric": "CPU peak (p95 under load)", "value": val("load", "cpu_p95_pct"), "unit": "% of a core",
         "target": cpu.critical, "critical": cpu.critical, "status": critical(val("load", "cpu_p95_pct"), cpu.critical)},
    ]
    return pd.DataFrame(rows)


def read_lag(path: str | Path) -> pd.DataFrame:
    """The lag file the profiled server writes: ``unix_time,lag_ms`` per line → frame (time, lag_ms)."""
    path = Path(path)
    if not path.exists():
        return pd.DataFrame(columns=["time", "lag_ms"])
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split(",")
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                rows.append({"time": float(parts[0]), "lag_ms": float(parts[1])})
    return pd.DataFrame(rows, columns=["time", "lag_ms"])


def label_phases(frame: pd.DataFrame, marks: Mapping[str, float], *, time_col: str = "time") -> pd.DataFrame:
    """Add a ``phase`` column from phase start times (unix seconds) ``{"idle": t, "load": t, ...}``."""
    out = frame.copy()
    order = sorted(marks.items(), key=lambda kv: kv[1])
    out["phase"] = "startup"
    for name, t in order:
        out.loc[out[time_col] >= t, "phase"] = name
    return out


def lag_summary(lag: pd.DataFrame) -> pd.DataFrame:
    """Event-loop lag per phase: p50, p99, max (ms) and the share of samples over 10 ms."""
    rows = []
    phases = [p for p in PHASES if "phase" in lag and p in set(lag.phase)] if len(lag) else []
    for phase in phases:
        v = lag.loc[lag.phase == phase, "lag_ms"].to_numpy(dtype=float)
        p99 = float(np.percentile(v, 99))
        rows.append({"phase": phase, "samples": int(v.size), "p50_ms": float(np.percentile(v, 50)),
                     "p99_ms": p99, "max_ms": float(v.max()), "share_over_10ms": float((v > LAG_LIMIT_MS).mean()),
                     "status": "pass" if p99 <= LAG_LIMIT_MS else ("warn" if p99 <= 5 * LAG_LIMIT_MS else "fail")})
    return pd.DataFrame(rows)


def memory_slope(resources: pd.DataFrame, *, phase: str = "load", skip_fraction: float = 0.1,
                 leak_mb_per_min: float = LEAK_SLOPE_MB_PER_MIN, min_minutes: float = 2.0) -> dict[str, Any]:
    """Least-squares RSS slope over a phase (MB per minute) with a 95% CI; flags a suspected leak.

    The first ``skip_fraction`` of the phase is left out (caches and pools fill up first). A
    leak is suspected when the slope is above ``leak_mb_per_min`` and its CI excludes zero;
    phases shorter than ``min_minutes`` are fitted but not judged (``leak_suspected`` None):
    a few seconds of warm-up growth extrapolate to an alarming, meaningless slope.
    """
    from scipy import stats

    g = resources[resources.phase == phase].sort_values("t_s")
    g = g.iloc[int(len(g) * skip_fraction):]
    out: dict[str, Any] = {"phase": phase, "samples": len(g), "slope_mb_per_min": None, "ci95": None,
                           "r2": None, "minutes": None, "growth_mb": None, "leak_suspected": None,
                           "threshold_mb_per_min": leak_mb_per_min, "min_minutes": min_minutes}
    if len(g) < 5 or float(g.t_s.max() - g.t_s.min()) <= 0:
        return out
    minutes = (g.t_s - g.t_s.iloc[0]).to_numpy(dtype=float) / 60
    fit = stats.linregress(minutes, g.rss_mb.to_numpy(dtype=float))
    tcrit = float(stats.t.ppf(0.975, len(g) - 2))
    lo, hi = fit.slope - tcrit * fit.stderr, fit.slope + tcrit * fit.stderr
    out.update({"slope_mb_per_min": float(fit.slope), "ci95": [float(lo), float(hi)],
                "r2": float(fit.rvalue ** 2), "minutes": float(minutes[-1]),
                "growth_mb": float(g.rss_mb.iloc[-1] - g.rss_mb.iloc[0]),
                "intercept_mb": float(fit.intercept)})
    if minutes[-1] >= min_minutes:
        out["leak_suspected"] = bool(fit.slope > leak_mb_per_min and lo > 0)
    return out


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


def scalene_command(program: Sequence[str], out_json: Path, *, profile_all: bool = False,
                    start_off: bool = False) -> list[str]:
    """``python -m scalene run --memory -o OUT --program-path <axon_lab> PROG --- ARGS`` (scalene 2.x).

    ``--memory`` is explicit: scalene 2.4 took ~10x longer without it on this workbench.
    ``--program-path`` makes every ``axon_lab`` module count as the program (by default only
    the entry script's directory would); ``profile_all`` adds libraries (torch, uvicorn...);
    ``start_off`` starts with profiling suspended (``--off``), to be switched on with
    :func:`scalene_switch`.
    """
    cmd = [sys.executable, "-m", "scalene", "run", "--memory", "-o", str(out_json),
           "--program-path", str(PACKAGE_DIR)]
    if profile_all:
        cmd.append("--profile-all")
    if start_off:
        cmd.append("--off")
    return [*cmd, program[0], "---", *program[1:]]


def scalene_switch(pid: int, *, on: bool) -> None:
    """Resume (``on``) or suspend scalene's profiling of process ``pid`` (``python -m scalene.profile``)."""
    res = subprocess.run([sys.executable, "-m", "scalene.profile", "--on" if on else "--off", "--pid", str(pid)],
                         capture_output=True, text=True, timeout=30)
    if res.returncode != 0 or "not found" in res.stdout:
        raise BackendUnavailable("scalene", f"could not switch profiling {'on' if on else 'off'} for pid {pid}: "
                                            f"{(res.stdout + res.stderr).strip()[-200:]}")


def serving_pid(root_pid: int, port: int) -> int:
    """The process of ``root_pid``'s tree that listens on ``port`` (scalene runs the program in a
    child process); ``root_pid`` when none is found."""
    import psutil

    try:
        root = psutil.Process(root_pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return root_pid
    for p in procs:
        try:
            if any(c.laddr and c.laddr.port == port and c.status == psutil.CONN_LISTEN
                   for c in p.net_connections(kind="tcp")):
                return p.pid
        except psutil.Error:
            continue
    return root_pid


def _write_launcher(out: Path) -> Path:
    """A two-line entry script in ``out``: scalene needs a program file, and running this
    module's file directly would put ``axon_lab/analysis`` first on ``sys.path``, where
    ``profile.py`` would shadow the standard library's ``profile`` (used by ``cProfile``)."""
    path = out / "serve_axon_lab.py"
    path.write_text("import sys\nfrom axon_lab.profiling import _main\n\nsys.exit(_main())\n",
                    encoding="utf-8")
    return path


def run_profile(*, scenario: str = "simple", out_dir: str | Path, scale: float = 1.0, idle_s: float = 10.0,
                profiler: str = "scalene", sample_interval_s: float = 0.5, lag_interval_s: float = 0.1,
                drain_s: float = 2.0, profile_all: bool = False, profile_startup: bool = False,
                startup_timeout_s: float = 600.0,
                stop_timeout_s: float = 300.0, env: Mapping[str, str] | None = None,
                load_options: Mapping[str, Any] | None = None) -> ProfileRun:
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
    scalene_json, lag_file, stop_file, log = (out / "scalene.json", out / "event_loop_lag.csv",
                                              out / ".stop", out / "server.log")
    for p in (scalene_json, lag_file, stop_file):
        p.unlink(missing_ok=True)
    port = free_port()
    program = [str(_write_launcher(out)), "serve", "--port", str(port), "--stop-file", str(stop_file),
               "--lag-file", str(lag_file), "--lag-interval", str(lag_interval_s)]
    switch = profiler == "scalene" and not profile_startup
    cmd = (scalene_command(program, scalene_json, profile_all=profile_all, start_off=switch)
           if profiler == "scalene" else [sys.executable, *program])
    params = {"scenario": scenario, "scale": scale, "idle_s": idle_s, "profiler": profiler,
              "sample_interval_s": sample_interval_s, "lag_interval_s": lag_interval_s,
              "profile_all": profile_all, "profile_startup": profile_startup,
              "load_options": dict(load_options or {})}
    redis_server = RedisServer().start()
    marks: dict[str, float] = {}
    proc = None
    sampler = None
    try:
        full_env = child_env({**os.environ, **(env or {})}, AXON_REDIS_URL=redis_server.url)
        with open(log, "wb") as logf:
            proc = subprocess.Popen(cmd, env=full_env, stdout=logf, stderr=subprocess.STDOUT)
        sampler = ResourceSampler(proc.pid, interval_s=sample_interval_s).start()
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
        result = LoadRunner(url=url, scenario=scenario, scale=scale, out_dir=out / "load", progress=False,
                            name=f"profile-{scenario}", **dict(load_options or {})).run()
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
    summary = {k: result.summary.get(k) for k in ("count", "rps", "errors", "error_rate", "p50", "p95", "p99",
                                                  "max", "mean", "loop", "incomplete", "cache", "client")}
    summary["scenario"] = scenario
    summary["passed"] = result.passed
    summary["thresholds"] = [{"expr": t.threshold.expr, "ok": t.ok} for t in result.thresholds]
    return ProfileRun(resources, lag, prof, summary, redis_stats.delta(before, after), params, out, marks)


def summarize(run: ProfileRun, *, soak: bool = False, n: int = 15) -> dict[str, Any]:
    """JSON-able results of a profile run: resources, verdicts, lag, memory slope, top tables."""
    verdicts = resource_verdicts(run.resources)
    slope = memory_slope(run.resources)
    res: dict[str, Any] = {
        "params": run.params, "load": run.load_summary, "redis": run.redis,
        "resources": resource_summary(run.resources), "verdicts": verdicts,
        "event_loop_lag": lag_summary(run.lag), "memory_slope": slope, "soak": soak,
    }
    p = run.scalene
    res["scalene"] = {"meta": p.meta if p is not None else None, "harness_pct": harness_share(p),
                      "top_functions_cpu": top_functions(p, by="cpu", n=n),
                      "top_functions_memory": top_functions(p, by="memory", n=n),
                      "top_lines_cpu": top_lines(p, by="cpu", n=n),
                      "top_lines_memory": top_lines(p, by="memory", n=n),
                      "top_lines_growth": top_lines(p, by="growth", n=n),
                      "leaks": p.leaks if p is not None else pd.DataFrame()}
    return res


#: Smoke values (CI): the same code path, a few seconds of load.
SMOKE: dict[str, Any] = {"scale": 0.1, "idle_s": 2.0, "sample_interval_s": 0.25}


def effective_parameters(*, smoke: bool = False, out_dir: str = "", **params: Any) -> dict[str, Any]:
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


def verdict(results: Mapping[str, Any]) -> dict[str, str]:
    """One-line verdict: worst of the memory/CPU verdicts, and the soak leak flag."""
    v = results["verdicts"]
    statuses = [s for s in v.status if s != "unknown"]
    worst = "fail" if "fail" in statuses else ("warn" if "warn" in statuses else ("pass" if statuses else "info"))
    slope = results["memory_slope"]
    parts = [f"{r.metric}: {r.value:.0f} {r.unit} ({r.status})" for r in v.itertuples() if r.value is not None
             and not (isinstance(r.value, float) and math.isnan(r.value))]
    if slope.get("slope_mb_per_min") is not None:
        judged = "" if slope.get("leak_suspected") is not None else " (too short to judge)"
        parts.append(f"RSS slope {slope['slope_mb_per_min']:+.1f} MB/min{judged}")
    if slope.get("leak_suspected"):
        parts.append("LEAK SUSPECTED")
        if results.get("soak"):
            worst = "fail"
    return {"status": worst, "summary": "; ".join(parts) or "no samples"}


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
    (so a profiler wrapped around the process writes its output)."""
    import uvicorn

    from axon_lab.api.app import create_app
    from axon_lab.config import get_settings

    config = uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level=get_settings().log_level,
                            access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)

    async def main() -> None:
        async def watch() -> None:
            while not server.should_exit:
                if stop_file.exists():
                    server.should_exit = True
                await asyncio.sleep(0.25)

        tasks = [asyncio.create_task(watch()), asyncio.create_task(_lag_probe(lag_file, lag_interval_s))]
        try:
            await server.serve()
        finally:
            for t in tasks:
                t.cancel()

    asyncio.run(main())


def _main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="axon_lab.profiling")
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="the API with a lag probe and a stop file (used by run_profile)")
    s.add_argument("--port", type=int, required=True)
    s.add_argument("--stop-file", type=Path, required=True)
    s.add_argument("--lag-file", type=Path, required=True)
    s.add_argument("--lag-interval", type=float, default=0.1)
    args = parser.parse_args(argv)
    _serve(args.port, args.stop_file, args.lag_file, args.lag_interval)
    return 0


if __name__ == "__main__":
    sys.exit(_main())
