"""The results store across runs: every run's metrics as tidy rows with provenance.

What is ingested (:func:`read_run`), each as one *run* with a stable ``run_id`` (a hash of the
file's content, so adding the same run twice is one run):

* a load run directory or its ``summary.json`` (``axon_lab.load.summary/1``): latency p50/p95/p99,
  throughput, error rate, refusals, cache hit rates, stage and stream p95s;
* a notebook sidecar ``<name>.results.json`` (``axon_lab.results/1``): the headline figures of the
  notebooks that have them (load_baseline per scenario, latency_breakdown per stage, hnsw_tuning
  recall and p95 at the recommended configuration, profiling RSS), and its verdict;
* a report directory's ``index.json`` (``axon-lab report``): the report's wall time, and the
  sidecars it links.

A row: ``run_id, created_utc, kind, name, metric, unit, better, value, machine, commit, dirty,
branch, label, report, options``. Metric names follow the load thresholds' syntax,
``<metric>:<aggregation>`` (``http_req_duration:p95``, ``http_reqs:rate``,
``stage.retrieval:p95``), and take their unit and better direction from one declaration
(:data:`axon_lab.load.thresholds.METRICS`, :data:`HISTORY_METRICS` for the rest).

Two stores (:func:`open_history`):

* a DuckDB file (``*.duckdb``, the embedded default ``data/history.duckdb``): one table
  ``metrics``; writers take DuckDB's file lock in turn;
* a directory of Parquet files (for CI and teams): one file per run, written to a temporary
  name and renamed, so concurrent writers never lose or half-write a run; any Parquet tool,
  pandas or DuckDB reads it. A corrupt or foreign file is reported in one line and the rest is
  read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pandas as pd

from axon_lab import jsonutil
from axon_lab.errors import ConfigError, InputFileError
from axon_lab.load.thresholds import get_metric
from axon_lab.metrics import Metric, declare

#: Environment variable naming the history (``axon-lab report/load --history``).
HISTORY_ENV = "AXON_HISTORY"
COLUMNS: tuple[str, ...] = (
    "run_id",
    "created_utc",
    "kind",
    "name",
    "metric",
    "unit",
    "better",
    "value",
    "machine",
    "commit",
    "dirty",
    "branch",
    "label",
    "report",
    "options",
)

#: Metrics of notebooks and reports that are not load metrics (declared once, here).
HISTORY_METRICS = declare(
    "history metric",
    [
        Metric("report.seconds", "report wall time", "s"),
        Metric("vector.recall", "recall@k at the recommended HNSW config", "", "higher"),
        Metric("vector.p95_ms", "vector search p95 at the recommended config", "ms"),
        Metric("process.rss_mb", "server RSS (max)", "MB"),
        Metric("verdict.score", "verdict (pass 1, warn 0.5, fail 0)", "", "higher"),
    ],
)
_VERDICT_SCORE = {"pass": 1.0, "warn": 0.5, "fail": 0.0}


def metric_info(metric: str) -> Metric:
    """The declaration behind a history metric name (``http_req_duration:p95`` → its Metric)."""
    base = metric.split(":", 1)[0]
    if base in HISTORY_METRICS.names():
        return HISTORY_METRICS.get(base)
    try:
        return get_metric(base)
    except ConfigError:
        return Metric(base, base, "")


@dataclass
class Run:
    """One ingested run: its id, provenance fields and metric values."""

    run_id: str
    kind: str
    name: str
    provenance: Mapping[str, Any]
    values: dict[str, float] = field(default_factory=dict)
    label: str | None = None
    report: str | None = None
    options: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        """Tidy rows (one per metric)."""
        prov = self.provenance
        commit = prov.get("commit") or {}
        base = {
            "run_id": self.run_id,
            "created_utc": pd.to_datetime(prov.get("created_utc"), utc=True),
            "kind": self.kind,
            "name": self.name,
            "machine": prov.get("machine_id"),
            "commit": commit.get("id"),
            "dirty": commit.get("dirty"),
            "branch": commit.get("branch"),
            "label": self.label,
            "report": self.report,
            "options": self.options,
        }
        out = []
        for metric, value in self.values.items():
            info = metric_info(metric)
            out.append({**base, "metric": metric, "unit": info.unit, "better": info.better,
                        "value": float(value)})  # fmt: skip
        return out


def _run_id(raw: bytes, name: str) -> str:
    return hashlib.sha1(name.encode() + b"\0" + raw).hexdigest()[:16]


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and v == v and not isinstance(v, bool) else None


def _put(values: dict[str, float], key: str, v: Any) -> None:
    x = _num(v)
    if x is not None:
        values[key] = x


def load_summary_values(s: Mapping[str, Any]) -> dict[str, float]:
    """History metrics of one load summary."""
    values: dict[str, float] = {}
    m = s.get("metrics", {})
    head = m.get("http_req_duration", {})
    for q in ("p50", "p95", "p99"):
        _put(values, f"http_req_duration:{q}", head.get(q))
    _put(values, "http_reqs:rate", s.get("rps"))
    _put(values, "http_req_failed:rate", s.get("error_rate"))
    _put(values, "http_req_rejected:rate", (s.get("rejected") or {}).get("rate"))
    for cache, c in (s.get("cache") or {}).items():
        _put(values, f"cache.{cache}:rate", c.get("hit_rate"))
    for key, st in m.items():
        if key.startswith(("stage.", "sse.")) and isinstance(st, Mapping):
            _put(values, f"{key}:p95", st.get("p95"))
    return values


def _options(prov: Mapping[str, Any]) -> str | None:
    opts = (prov.get("parameters") or {}).get("options")
    return json.dumps(opts, sort_keys=True) if opts else None


def _from_summary(path: Path, raw: bytes, doc: Mapping[str, Any]) -> Run:
    prov = doc.get("provenance") or {}
    tgt = doc.get("target") or {}
    # the series is the scenario, else the request (method and path): --name labels a run
    # without splitting its series
    req_path = urlsplit(str(tgt.get("url") or "")).path or "/"
    name = tgt.get("scenario") or f"{tgt.get('method') or 'GET'} {req_path}"
    return Run(
        _run_id(raw, "load"),
        "load",
        str(name),
        prov,
        load_summary_values(doc),
        label=doc.get("name"),
        options=_options(prov),
    )


def _from_sidecar(path: Path, raw: bytes, doc: Mapping[str, Any], report: str | None) -> Run:
    prov = doc.get("provenance") or {}
    name = str(doc.get("name"))
    res = doc.get("results") or {}
    values: dict[str, float] = {}
    verdict = (doc.get("verdict") or {}).get("status")
    if verdict in _VERDICT_SCORE:
        values["verdict.score"] = _VERDICT_SCORE[verdict]
    if name == "load_baseline":
        for sc, st in (res.get("scenarios") or {}).items():
            for q in ("p50", "p95", "p99"):
                _put(values, f"http_req_duration:{q}@{sc}", st.get(q))
            _put(values, f"http_reqs:rate@{sc}", st.get("rps"))
            _put(values, f"http_req_failed:rate@{sc}", st.get("error_rate"))
    elif name == "latency_breakdown":
        for row in res.get("stages") or []:
            _put(values, f"stage.{row.get('stage')}:p95", row.get("p95_ms"))
        _put(values, "http_req_duration:p95", res.get("p95_ms"))
    elif name == "hnsw_tuning":
        rec = res.get("recommendation") or {}
        _put(values, "vector.recall", rec.get("recall"))
        _put(values, "vector.p95_ms", rec.get("p95_ms"))
    elif name == "profiling":
        rs = res.get("resources")
        if isinstance(rs, list):
            rss = [_num(r.get("rss_max_mb")) for r in rs if isinstance(r, Mapping)]
            rss_ok = [x for x in rss if x is not None]
            if rss_ok:
                values["process.rss_mb"] = max(rss_ok)
    return Run(_run_id(raw, name), "notebook", name, prov, values, report=report,
               options=_options(prov))  # fmt: skip


def read_run(path: Path | str) -> list[Run]:
    """The runs in ``path``: a load run dir or summary.json, a sidecar, or a report dir/index.json.

    Raises :class:`InputFileError` (one line, naming the file) for anything else.
    """
    p = Path(path)
    if p.is_dir():
        for candidate in ("summary.json", "index.json"):
            if (p / candidate).is_file():
                return read_run(p / candidate)
        sidecars = sorted(p.glob("*.results.json"))
        if sidecars:
            return [r for s in sidecars for r in read_run(s)]
        raise InputFileError(p, "not a run: no summary.json, index.json or *.results.json")
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise InputFileError(p, "no such file") from None
    doc = jsonutil.read_json(p, want_object=True)
    schema = str(doc.get("schema", ""))
    if schema.startswith("axon_lab.load.summary/"):
        return [_from_summary(p, raw, doc)]
    if schema.startswith("axon_lab.results/"):
        return [_from_sidecar(p, raw, doc, None)]
    if "reports" in doc and "provenance" in doc:  # a report's index.json
        prov = doc["provenance"]
        total = sum(_num(r.get("seconds")) or 0.0 for r in doc["reports"])
        runs = [Run(_run_id(raw, "report"), "report", "smoke-report", prov,
                    {"report.seconds": total}, report="index.html")]  # fmt: skip
        for r in doc["reports"]:
            if r.get("sidecar"):
                sub = p.parent / r["sidecar"]
                if sub.is_file():
                    for run in read_run(sub):
                        run.report = r.get("html")
                        runs.append(run)
        return runs
    raise InputFileError(p, f"not a run the history knows (schema {schema or 'missing'})")


def frame(runs: Iterable[Run]) -> pd.DataFrame:
    """Tidy rows of ``runs`` with the fixed :data:`COLUMNS`."""
    rows = [row for r in runs for row in r.rows()]
    df = pd.DataFrame(rows, columns=list(COLUMNS))
    if len(df):
        df["created_utc"] = pd.to_datetime(df["created_utc"], utc=True)
    return df


@dataclass
class AddResult:
    """What :meth:`History.add` did."""

    added: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class History:
    """A results store (:func:`open_history`): ``add`` runs, read the tidy ``frame``."""

    location: Path
    errors: list[str]

    def add(self, paths: Sequence[Path | str]) -> AddResult:
        """Ingest runs (idempotent: a run already stored is skipped); bad paths are reported."""
        result = AddResult()
        have = self.run_ids()
        new: list[Run] = []
        for path in paths:
            try:
                runs = read_run(path)
            except InputFileError as exc:
                result.errors.append(str(exc))
                continue
            for run in runs:
                if run.run_id in have:
                    result.skipped.append(run.run_id)
                    continue
                new.append(run)
                have.add(run.run_id)
                result.added.append(run.run_id)
        self._write_all(new)
        return result

    def _write_all(self, runs: list[Run]) -> None:
        for run in runs:
            self._write(run)

    def run_ids(self) -> set[str]:
        """Ids of the stored runs."""
        f = self.frame()
        return set(f["run_id"]) if len(f) else set()

    def runs(self) -> pd.DataFrame:
        """One row per run (provenance and the number of metrics), oldest first."""
        f = self.frame()
        keys = ["run_id", "created_utc", "kind", "name", "machine", "commit", "dirty", "branch",
                "label", "report", "options"]  # fmt: skip
        if not len(f):
            return pd.DataFrame(columns=[*keys, "metrics"])
        g = f.groupby("run_id", sort=False)
        out = g[keys[1:]].first()
        out["metrics"] = g.size()
        return out.reset_index().sort_values("created_utc", kind="stable").reset_index(drop=True)

    def frame(self) -> pd.DataFrame:  # pragma: no cover - implemented by the stores
        raise NotImplementedError

    def _write(self, run: Run) -> None:  # pragma: no cover - implemented by the stores
        raise NotImplementedError


class ParquetHistory(History):
    """A directory of Parquet files, one per run (``run-<run_id>.parquet``)."""

    def __init__(self, location: Path) -> None:
        self.location = location
        self.errors = []
        location.mkdir(parents=True, exist_ok=True)

    def _write(self, run: Run) -> None:
        final = self.location / f"run-{run.run_id}.parquet"
        if final.exists():
            return
        tmp = self.location / f".run-{run.run_id}.{os.getpid()}.tmp"
        frame([run]).to_parquet(tmp, index=False)
        tmp.replace(final)  # atomic: a reader sees the whole run or none of it

    def frame(self) -> pd.DataFrame:
        parts, self.errors = [], []
        for f in sorted(self.location.iterdir()):
            if f.name.startswith(".") or f.is_dir():
                continue
            if not (f.name.startswith("run-") and f.suffix == ".parquet"):
                self.errors.append(f"{f}: not a history file (expected run-<id>.parquet)")
                continue
            try:
                part = pd.read_parquet(f)
            except Exception as exc:  # a corrupt file: name it, read the rest
                self.errors.append(f"{f}: unreadable ({type(exc).__name__})")
                continue
            if list(part.columns) != list(COLUMNS):
                self.errors.append(f"{f}: foreign columns, not a history file")
                continue
            parts.append(part)
        if not parts:
            return frame([])
        out = pd.concat(parts, ignore_index=True)
        out["created_utc"] = pd.to_datetime(out["created_utc"], utc=True)
        return out


class DuckDBHistory(History):
    """One DuckDB file with a ``metrics`` table (writers take the file lock in turn)."""

    def __init__(self, location: Path, *, lock_timeout_s: float = 30.0) -> None:
        self.location = location
        self.errors = []
        self.lock_timeout_s = lock_timeout_s
        location.parent.mkdir(parents=True, exist_ok=True)

    def _connect(self, read_only: bool = False) -> Any:
        import duckdb

        deadline = time.monotonic() + self.lock_timeout_s
        while True:
            try:
                return duckdb.connect(str(self.location), read_only=read_only)
            except duckdb.IOException as exc:  # another process holds the lock: wait our turn
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise InputFileError(self.location, f"cannot open ({exc})") from None
                time.sleep(0.05)

    def _write(self, run: Run) -> None:
        self._write_all([run])

    def _write_all(self, runs: list[Run]) -> None:
        """One connection and one INSERT for every new run (the file lock is held briefly)."""
        if not runs:
            return
        rows = frame(runs)  # noqa: F841 - read by DuckDB's replacement scan below
        con = self._connect()
        try:
            con.execute("CREATE TABLE IF NOT EXISTS metrics AS SELECT * FROM rows WHERE false")
            con.execute(
                "INSERT INTO metrics SELECT * FROM rows WHERE run_id NOT IN "
                "(SELECT run_id FROM metrics)"
            )
        finally:
            con.close()

    def frame(self) -> pd.DataFrame:
        if not self.location.exists():
            return frame([])
        con = self._connect(read_only=True)
        try:
            tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
            if "metrics" not in tables:
                return frame([])
            out = con.execute("SELECT * FROM metrics").df()
        finally:
            con.close()
        out["created_utc"] = pd.to_datetime(out["created_utc"], utc=True)
        return out[list(COLUMNS)]


def default_location() -> Path:
    """``$AXON_HISTORY``, else ``<data dir>/history.duckdb``."""
    env = os.environ.get(HISTORY_ENV)
    if env:
        return Path(env)
    from axon_lab.config import get_settings

    return Path(get_settings().data_dir) / "history.duckdb"


def open_history(location: Path | str | None = None) -> History:
    """The store at ``location`` (default :func:`default_location`): a ``.duckdb`` file or a
    directory of Parquet files.
    """
    p = Path(location) if location is not None else default_location()
    if p.suffix in (".duckdb", ".db"):
        return DuckDBHistory(p)
    if p.exists() and not p.is_dir():
        raise InputFileError(p, "a history is a .duckdb file or a directory of Parquet files")
    return ParquetHistory(p)


def record_run(path: Path | str, location: Path | str | None = None) -> AddResult | None:
    """Add a finished run to the history at ``location`` (or ``$AXON_HISTORY``); ``None`` when
    neither is set (runs are only recorded when asked).
    """
    loc = location or os.environ.get(HISTORY_ENV)
    if not loc:
        return None
    return open_history(loc).add([path])
