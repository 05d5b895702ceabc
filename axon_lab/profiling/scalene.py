"""scalene's JSON as tables and a flame layout: parsing, top lines and functions, the harness' share, and the scalene command line and on/off switch.

The parsing functions work on any scalene 2.x JSON (``scalene run -o out.json prog.py``);
:func:`axon_lab.profiling.run_profile` runs the API under scalene with :func:`scalene_command`.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from axon_lab.errors import BackendUnavailable, ConfigError, InputFileError
from axon_lab.jsonutil import read_json

PACKAGE_DIR = Path(__file__).resolve().parents[1]


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


_METRICS = {
    "n_cpu_percent_python": "cpu_python_pct",
    "n_cpu_percent_c": "cpu_native_pct",
    "n_sys_percent": "cpu_system_pct",
    "n_malloc_mb": "malloc_mb",
    "n_peak_mb": "peak_mb",
    "n_avg_mb": "avg_mb",
    "n_growth_mb": "growth_mb",
    "n_mallocs": "mallocs",
    "n_python_fraction": "python_alloc_fraction",
    "n_copy_mb_s": "copy_mb_s",
}


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
    multi = lines["region"].map(
        lambda r: bool(r and r[0] is not None and r[1] is not None and r[1] > r[0])
    )
    grouped = lines[active & multi].groupby([*keys, "region_key"], sort=False)
    keep = []
    for _, g in grouped:
        first = g.iloc[0].to_dict()
        first["lines"] = (
            f"{int(g.lineno.min())}-{int(g.lineno.max())}"
            if len(g) > 1
            else str(int(first["lineno"]))
        )
        keep.append(first)
    rest = lines[~(active & multi)].assign(lines=lambda d: d.lineno.astype(str))
    out = pd.concat([pd.DataFrame(keep), rest], ignore_index=True) if keep else rest
    return (
        out.drop(columns=["region", "region_key"])
        .sort_values(["file", "lineno"])
        .reset_index(drop=True)
    )


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
            leaks.append(
                {
                    "file": fname,
                    "lineno": int(lineno),
                    "likelihood": leak.get("likelihood"),
                    "velocity_mb_s": leak.get("velocity_mb_s"),
                }
            )
    line_df = _collapse_regions(pd.DataFrame(lines)) if lines else pd.DataFrame(lines)
    stacks = []
    for entry in doc.get("stacks", []) or []:
        if not isinstance(entry, Sequence) or len(entry) != 2:
            continue
        frames, stats = entry
        stats = stats if isinstance(stats, Mapping) else {}
        stacks.append(
            {
                "frames": [str(fr).rstrip(";") for fr in frames],
                "cpu_s": float(stats.get("cpu_samples", 0.0) or 0.0),
                "count": int(stats.get("count", 0) or 0),
            }
        )
    memory = pd.DataFrame(
        [
            {"t_s": float(t) / 1e9, "footprint_mb": float(mb)}
            for t, mb in (doc.get("samples") or [])
            if t is not None
        ],
        columns=["t_s", "footprint_mb"],
    )
    meta = {
        "elapsed_s": doc.get("elapsed_time_sec"),
        "max_footprint_mb": doc.get("max_footprint_mb"),
        "max_footprint_at": f"{doc.get('max_footprint_fname')}:{doc.get('max_footprint_lineno')}",
        "growth_rate": doc.get("growth_rate"),
        "program": doc.get("program"),
        "memory": bool(doc.get("memory")),
        "files": len(doc["files"]),
    }
    return ScaleneProfile(
        line_df,
        pd.DataFrame(funcs),
        pd.DataFrame(stacks, columns=["frames", "cpu_s", "count"]),
        memory,
        pd.DataFrame(leaks, columns=["file", "lineno", "likelihood", "velocity_mb_s"]),
        meta,
    )


_BY = {"cpu": "cpu_pct", "memory": "malloc_mb", "peak": "peak_mb", "growth": "growth_mb"}


def _short(path: str) -> str:
    p = Path(path)
    try:
        return str(p.relative_to(PACKAGE_DIR.parent))
    except ValueError:
        return p.name if p.is_absolute() else path


#: The profiling harness' own files: the module the profiled server runs in
#: (:mod:`axon_lab.profiling.server`, ``_serve``) and the entry script it writes for scalene.
HARNESS_FILES: tuple[str, ...] = ("profiling/server.py", "serve_axon_lab.py")


def is_harness(file: str) -> bool:
    """True for the profiling harness' own files (:data:`HARNESS_FILES`)."""
    return file.endswith(HARNESS_FILES)


def harness_share(profile: ScaleneProfile | None) -> float | None:
    """Share of sampled time (%) scalene put on the harness' lines: with the default program
    path that is the event loop, the web framework and idle worker threads, everything that ran
    outside ``axon_lab`` frames.
    """
    if profile is None or profile.functions.empty:
        return None
    f = profile.functions
    return float(f.loc[f.file.map(is_harness), "cpu_pct"].sum())


def top_lines(
    profile: ScaleneProfile | None, *, by: str = "cpu", n: int = 15, harness: bool = False
) -> pd.DataFrame:
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
        return pd.DataFrame(
            columns=["file", "lines", "source", "cpu_pct", "malloc_mb", "growth_mb"]
        )
    if not harness:
        df = df[~df.file.map(is_harness)]
    df = df[df[col] > 0].sort_values(col, ascending=False).head(n)
    cols = [
        "file",
        "lines",
        "source",
        "cpu_pct",
        "cpu_python_pct",
        "cpu_native_pct",
        "cpu_system_pct",
        "malloc_mb",
        "peak_mb",
        "growth_mb",
        "python_alloc_fraction",
        "copy_mb_s",
    ]
    return df.assign(file=df.file.map(_short))[cols].reset_index(drop=True)


def top_functions(
    profile: ScaleneProfile | None, *, by: str = "cpu", n: int = 15, harness: bool = False
) -> pd.DataFrame:
    """The ``n`` functions with the most CPU, allocation, peak or growth (empty without a profile;
    the harness' own functions only with ``harness``; see :func:`top_lines`).
    """
    col = _BY.get(by)
    if col is None:
        raise ConfigError(f"unknown ordering {by!r}; valid: {', '.join(_BY)}")
    df = profile.functions if profile is not None else pd.DataFrame()
    if df.empty:
        return pd.DataFrame(
            columns=[
                "file",
                "lineno",
                "name",
                "cpu_pct",
                "cpu_python_pct",
                "cpu_native_pct",
                "cpu_system_pct",
                "malloc_mb",
                "peak_mb",
                "growth_mb",
            ]
        )
    if not harness:
        df = df[~df.file.map(is_harness)]
    df = df[df[col] > 0].sort_values(col, ascending=False).head(n)
    cols = [
        "file",
        "lineno",
        "name",
        "cpu_pct",
        "cpu_python_pct",
        "cpu_native_pct",
        "cpu_system_pct",
        "malloc_mb",
        "peak_mb",
        "growth_mb",
    ]
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
            rows.append(
                {
                    "depth": len(node) - 1,
                    "x0": x0,
                    "width": w,
                    "cpu_s": weight[node],
                    "label": _frame_label(node[-1]),
                    "path": " > ".join(_frame_label(f) for f in node),
                }
            )
        cx = x0
        for c in sorted(children[node]):
            stack.append((c, cx))
            cx += weight[c] / total
    return pd.DataFrame(rows).sort_values(["depth", "x0"]).reset_index(drop=True)


# --- running scalene ---------------------------------------------------------------------------------
def scalene_command(
    program: Sequence[str], out_json: Path, *, profile_all: bool = False, start_off: bool = False
) -> list[str]:
    """``python -m scalene run --memory -o OUT --program-path <axon_lab> PROG --- ARGS`` (scalene 2.x).

    ``--memory`` is explicit: scalene 2.4 took ~10x longer without it on this workbench.
    ``--program-path`` makes every ``axon_lab`` module count as the program (by default only
    the entry script's directory would); ``profile_all`` adds libraries (torch, uvicorn...);
    ``start_off`` starts with profiling suspended (``--off``), to be switched on with
    :func:`scalene_switch`.
    """
    cmd = [
        sys.executable,
        "-m",
        "scalene",
        "run",
        "--memory",
        "-o",
        str(out_json),
        "--program-path",
        str(PACKAGE_DIR),
    ]
    if profile_all:
        cmd.append("--profile-all")
    if start_off:
        cmd.append("--off")
    return [*cmd, program[0], "---", *program[1:]]


def scalene_switch(pid: int, *, on: bool) -> None:
    """Resume (``on``) or suspend scalene's profiling of process ``pid`` (``python -m scalene.profile``)."""
    res = subprocess.run(
        [sys.executable, "-m", "scalene.profile", "--on" if on else "--off", "--pid", str(pid)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if res.returncode != 0 or "not found" in res.stdout:
        raise BackendUnavailable(
            "scalene",
            f"could not switch profiling {'on' if on else 'off'} for pid {pid}: "
            f"{(res.stdout + res.stderr).strip()[-200:]}",
        )
