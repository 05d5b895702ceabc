"""Workload digests from slow-query logs (logv2 JSON, 4.4+) and ``system.profile``, like ``mloginfo --queries``.

Each slow operation becomes an :class:`Operation`; operations with the same namespace,
operation, filter shape (values replaced by ``1``, operators kept, keys sorted) and sort form
one query shape. :func:`digest` gives one row per shape — count, min, mean, p95, max and total
time, documents and keys examined, documents returned, the plan summaries seen — sorted by
total time, the cost the server actually paid. Shapes whose plan is poor (a collection scan
with a filter, a blocking sort, many documents examined per document returned) get an index
advised by Equality → Sort → Range.

Like ``mloginfo --queries``, the shapes are query operations only (:data:`QUERY_OPERATIONS`:
find, aggregate, count, distinct, getMore, update, delete, findAndModify...); every other
command (createIndexes, insert, hello, replSetInitiate...) is digested apart
(``digest(ops, kind="commands")``). A slow-query line an internal thread wrote
(``attr.type: "none"``, e.g. the index build of a createIndexes) is the same operation as the
command line that started it: it is folded into that command, never counted as an operation
of its own. Extended JSON numbers (``{"$numberInt": "-1"}``) are made plain in every shape, and
profiler documents of 3.x servers (``op: "query"`` with the command under ``query``, only
``execStats`` for the plan) are read as their newer form.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from axon_lab.errors import InputFileError
from axon_lab.mongo.advice import advise_index, is_literal_value, key_pairs
from axon_lab.mongo.explain import count, format_key, number, plain

#: logv2 id of "Slow query" (mongod and mongos).
SLOW_QUERY_ID = 51803
#: Advise an index when a shape examines at least this many documents per document returned.
ADVISE_SELECTIVITY = 2.0
#: Columns of :func:`digest`, in order.
DIGEST_COLUMNS = (
    "source",
    "namespace",
    "operation",
    "pattern",
    "sort",
    "count",
    "min_ms",
    "mean_ms",
    "p95_ms",
    "max_ms",
    "total_ms",
    "docs_examined",
    "keys_examined",
    "n_returned",
    "examined_per_returned",
    "plan_summary",
    "collscan",
    "in_memory_sort",
    "advised_index",
)
_PLAN_KEY = re.compile(r"\b(IXSCAN|COUNT_SCAN|DISTINCT_SCAN|EXPRESS_IXSCAN)\s+(\{[^}]*\})")
#: Operations digested as query shapes (``mloginfo --queries``); the rest are other commands.
QUERY_OPERATIONS = frozenset(
    {
        "find",
        "aggregate",
        "count",
        "distinct",
        "getMore",
        "update",
        "remove",
        "delete",
        "findAndModify",
        "findandmodify",
        "geoNear",
        "mapReduce",
        "mapreduce",
    }
)
#: Kinds :func:`digest` can tabulate.
DIGEST_KINDS = ("queries", "commands", "all")
#: Columns of the other-commands table (``digest(ops, kind="commands")`` has all of
#: :data:`DIGEST_COLUMNS`; these are the ones that mean something for a command).
COMMAND_COLUMNS = tuple(
    c
    for c in DIGEST_COLUMNS[: DIGEST_COLUMNS.index("total_ms") + 1]
    if c not in ("pattern", "sort")
)
#: Scan stages named in a plan summary derived from ``execStats`` (3.x profiler documents).
_SCAN_STAGES = frozenset(
    {
        "COLLSCAN",
        "IXSCAN",
        "COUNT_SCAN",
        "DISTINCT_SCAN",
        "IDHACK",
        "EXPRESS_IDHACK",
        "EXPRESS_IXSCAN",
        "CLUSTERED_IXSCAN",
        "EXPRESS_CLUSTERED_IXSCAN",
        "GEO_NEAR_2D",
        "GEO_NEAR_2DSPHERE",
        "TEXT",
    }
)


@dataclass
class Operation:
    """One slow operation from a log line or a profiler document.

    ``n_returned`` is documents returned, or matched/deleted for writes (what the examined
    documents should be compared with). ``internal`` marks a slow-query line written by a
    server thread (``attr.type: "none"``) on behalf of a command; ``fold_key`` identifies the
    command it belongs to.
    """

    source: str
    ts: str | None
    namespace: str
    operation: str
    pattern: str
    sort: str
    duration_ms: float
    docs_examined: int | None
    keys_examined: int | None
    n_returned: int | None
    plan_summary: str | None
    has_sort_stage: bool
    filter: Any = None
    sort_spec: Any = None
    projection: Any = None
    app_name: str | None = None
    query_hash: str | None = None
    internal: bool = False
    fold_key: str | None = None

    @property
    def is_query(self) -> bool:
        """A query operation (a shape of its own), not another command."""
        return self.operation in QUERY_OPERATIONS


def _value_shape(v: Any) -> Any:
    if (
        isinstance(v, Mapping)
        and v
        and all(isinstance(k, str) and k.startswith("$") for k in v)
        and not is_literal_value(v)
    ):
        out = {}
        for op in sorted(v):
            if op == "$elemMatch":
                out[op] = filter_shape(v[op])
            elif op == "$not":
                out[op] = _value_shape(v[op])
            else:
                out[op] = 1
        return out
    return 1


def filter_shape(flt: Any) -> Any:
    """The shape of a filter: values become ``1``, operators stay, keys sorted.

    >>> filter_shape({"tier": "w", "workspaceId": "x", "confidence": {"$gt": 0.5}})
    {'confidence': {'$gt': 1}, 'tier': 1, 'workspaceId': 1}
    """
    if not isinstance(flt, Mapping):
        return 1
    out: dict[str, Any] = {}
    for k in sorted(flt, key=str):
        v = flt[k]
        if k in ("$and", "$or", "$nor") and isinstance(v, list):
            out[k] = [filter_shape(x) for x in v]
        elif isinstance(k, str) and k.startswith("$"):
            out[k] = 1
        else:
            out[k] = _value_shape(v)
    return out


def _text(obj: Any) -> str:
    return json.dumps(obj, separators=(", ", ": "), default=str)


def _first_match(pipeline: Any) -> Any:
    if isinstance(pipeline, list):
        for st in pipeline:
            if isinstance(st, Mapping) and "$match" in st:
                return st["$match"]
    return None


def _first_sort(pipeline: Any) -> Any:
    if isinstance(pipeline, list):
        for st in pipeline:
            if isinstance(st, Mapping) and "$sort" in st:
                return st["$sort"]
    return None


def _query_parts(op: str, cmd: Mapping[str, Any]) -> tuple[Any, Any, Any]:
    """(filter, sort, projection) of a command document."""
    if op == "find":
        return cmd.get("filter"), cmd.get("sort"), cmd.get("projection")
    if op == "aggregate":
        return _first_match(cmd.get("pipeline")), _first_sort(cmd.get("pipeline")), None
    if op in ("distinct", "count", "findAndModify", "findandmodify"):
        return cmd.get("query"), cmd.get("sort"), cmd.get("fields")
    if op in ("update", "remove", "delete"):
        if "q" in cmd:
            return cmd.get("q"), None, None
        stmts = cmd.get("updates") or cmd.get("deletes")
        if isinstance(stmts, list) and stmts and isinstance(stmts[0], Mapping):
            return stmts[0].get("q"), None, None
    return None, None, None


def _ts(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("$date", value)
    if isinstance(value, Mapping) and "$numberLong" in value:  # {"$date": {"$numberLong": ms}}
        import datetime as dt

        ms = number(value)
        if ms is not None:
            return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC).isoformat()
    return None if value is None else str(value)


def exec_plan(exec_stats: Any) -> tuple[str | None, bool]:
    """A plan summary and whether there is a blocking sort, from a profiler ``execStats`` tree
    (3.x profiler documents have no ``planSummary``): the scan stages as mongod prints them
    (``COLLSCAN``, ``IXSCAN { a: 1 }``...), in plan order, and whether a ``SORT`` stage ran.
    """
    scans: list[str] = []
    sort = False
    stack = [exec_stats] if isinstance(exec_stats, Mapping) else []
    while stack:
        st = stack.pop(0)
        name = str(st.get("stage") or "")
        if name == "SORT":
            sort = True
        if name in _SCAN_STAGES:
            key = st.get("keyPattern")
            label = f"{name} {format_key(plain(key))}" if isinstance(key, Mapping) else name
            if label not in scans:
                scans.append(label)
        for k in ("inputStage", "outerStage", "innerStage", "thenStage", "elseStage"):
            if isinstance(st.get(k), Mapping):
                stack.append(st[k])
        for c in st.get("inputStages") or []:
            if isinstance(c, Mapping):
                stack.append(c)
    return (", ".join(scans) or None), sort


def _operation(
    source: str,
    ts: Any,
    ns: str,
    op: str,
    cmd: Mapping[str, Any],
    d: Mapping[str, Any],
    duration: Any,
) -> Operation:
    if op == "getMore" and isinstance(d.get("originatingCommand"), Mapping):
        oc = d["originatingCommand"]
        flt, srt, proj = _query_parts(str(next(iter(oc), "")), oc)
    else:
        flt, srt, proj = _query_parts(op, cmd)
    flt, srt, proj = plain(flt), plain(srt), plain(proj)
    plan, blocking = d.get("planSummary"), bool(d.get("hasSortStage"))
    if not plan and isinstance(d.get("execStats"), Mapping):
        plan, sort_stage = exec_plan(d["execStats"])
        blocking = blocking or sort_stage
    docs = count(d.get("docsExamined"))
    if docs is None:
        docs = count(d.get("nscannedObjects"))
    keys = count(d.get("keysExamined"))
    if keys is None:
        keys = count(d.get("nscanned"))
    returned = count(d.get("nreturned"))
    if returned is None:
        returned = count(d.get("nMatched"))
    if returned is None:
        returned = count(d.get("ndeleted"))
    return Operation(
        source=source,
        ts=_ts(ts),
        namespace=ns,
        operation=op,
        pattern=_text(filter_shape(flt)) if flt is not None else "",
        sort=_text(srt) if srt else "",
        duration_ms=float(number(duration) or 0.0),
        docs_examined=docs,
        keys_examined=keys,
        n_returned=returned,
        plan_summary=plan if isinstance(plan, str) else None,
        has_sort_stage=blocking,
        filter=flt,
        sort_spec=srt,
        projection=proj,
        app_name=d.get("appName"),
        query_hash=d.get("queryHash"),
    )


def operation_from_log(line: Mapping[str, Any]) -> Operation | None:
    """An :class:`Operation` from one parsed logv2 line, or ``None`` if it is not a slow query."""
    if not isinstance(line, Mapping):
        return None
    if line.get("msg") != "Slow query" and line.get("id") != SLOW_QUERY_ID:
        return None
    attr = line.get("attr")
    if not isinstance(attr, Mapping) or "durationMillis" not in attr:
        return None
    cmd: Mapping[str, Any] = attr["command"] if isinstance(attr.get("command"), Mapping) else {}
    typ = str(attr.get("type") or "command")
    internal = typ == "none"
    op = str(next(iter(cmd), "command")) if typ in ("command", "none") else typ
    ns = str(attr.get("ns", ""))
    out = _operation("log", line.get("t"), ns, op, cmd, attr, attr.get("durationMillis"))
    out.internal = internal
    out.fold_key = _fold_key(ns, op, cmd)
    return out


def _fold_key(ns: str, op: str, cmd: Mapping[str, Any]) -> str:
    """What makes an internal thread's slow-query line the same operation as a command line:
    namespace, command, and the index names of a createIndexes (else the command's target).
    """
    what: Any = cmd.get(op)
    if isinstance(cmd.get("indexes"), list):
        what = sorted(str(ix.get("name")) for ix in cmd["indexes"] if isinstance(ix, Mapping))
    return json.dumps([ns, op, what], sort_keys=True, default=str)


_PROFILE_OPS = {"query": "find", "getmore": "getMore"}


def operation_from_profile(doc: Mapping[str, Any]) -> Operation | None:
    """An :class:`Operation` from one ``system.profile`` document (``None`` if it is not one)."""
    if not isinstance(doc, Mapping) or "op" not in doc or "ns" not in doc:
        return None
    cmd: Mapping[str, Any] = doc["command"] if isinstance(doc.get("command"), Mapping) else {}
    query = doc.get("query") if isinstance(doc.get("query"), Mapping) else None
    op = str(doc["op"])
    if op == "command" and not cmd and query is not None:
        cmd = query  # 3.0-3.2: the command document is under "query"
    op = str(next(iter(cmd), "command")) if op == "command" else _PROFILE_OPS.get(op, op)
    if op == "find" and "find" not in cmd and query is not None:
        if "find" in query:  # 3.2-3.4: the find command is under "query"
            cmd = query
        elif "$query" in query:  # 3.0 and legacy opcodes: {$query, $orderby}
            cmd = {"find": "", "filter": query["$query"], "sort": query.get("$orderby")}
        else:
            cmd = {"find": "", "filter": query}
    elif op in ("update", "remove", "delete") and "q" not in cmd and query is not None:
        cmd = {**cmd, "q": query}  # 3.x writes: the filter is under "query"
    return _operation("profile", doc.get("ts"), str(doc["ns"]), op, cmd, doc, doc.get("millis"))


@dataclass
class LogRead:
    """A slow-query log read: the operations and what was skipped.

    Attributes
    ----------
    lines
        Non-empty lines read.
    json_lines
        Lines that parsed as JSON.
    operations
        Every slow-query line as an :class:`Operation` (internal threads' lines included,
        flagged ``internal``).
    malformed
        Lines that start like JSON but do not parse: cut short (a log copied while written,
        a truncated download) or damaged.
    truncated
        The gzip data ended before its end marker (the text read is what came before).
    """

    path: str
    lines: int
    json_lines: int
    operations: list[Operation]
    malformed: int = 0
    truncated: bool = False

    @property
    def skipped(self) -> int:
        """Lines that were not read as JSON: text lines plus malformed (cut) JSON lines."""
        return self.lines - self.json_lines

    @property
    def text_lines(self) -> int:
        """Lines that are not JSON at all (legacy text log lines, banners...)."""
        return self.skipped - self.malformed

    @property
    def queries(self) -> int:
        """Slow query operations (the shapes table)."""
        return sum(1 for o in self.operations if o.is_query and not o.internal)

    @property
    def commands(self) -> int:
        """Slow operations of other commands (the commands table)."""
        return sum(1 for o in self.operations if not o.is_query and not o.internal)

    @property
    def internal(self) -> int:
        """Slow-query lines of internal threads (``attr.type: "none"``), folded into their
        command when it is in the log.
        """
        return sum(1 for o in self.operations if o.internal)

    def skipped_text(self) -> str:
        """One line saying what was skipped (empty when nothing was)."""
        parts = []
        if self.text_lines:
            parts.append(f"{self.text_lines} not JSON")
        if self.malformed:
            parts.append(f"{self.malformed} cut or malformed JSON")
        text = f"skipped {self.skipped} of {self.lines} lines ({', '.join(parts)})" if parts else ""
        if self.truncated:
            text = (text + "; " if text else "") + "gzip data cut short: read what came before"
        return text


def read_slow_log(path: Path | str) -> LogRead:
    """Slow operations from a MongoDB 4.4+ structured (JSON) log, plain or gzip-compressed.

    Lines that are not JSON, and JSON lines cut short, are skipped and counted
    (:attr:`LogRead.skipped`); a gzip file cut short is read up to where it ends.

    Raises
    ------
    InputFileError
        When no line is JSON (a pre-4.4 text log, or not a log at all).
    """
    from axon_lab.mongo.files import read_text_partial

    text, complete = read_text_partial(path)
    lines = [ln for ln in text.splitlines() if ln.strip()]
    ops: list[Operation] = []
    n_json = 0
    malformed = 0
    for ln in lines:
        ln = ln.strip()
        if not ln.startswith("{"):
            continue
        try:
            obj = json.loads(ln)
        except json.JSONDecodeError:
            malformed += 1
            continue
        n_json += 1
        op = operation_from_log(obj)
        if op is not None:
            ops.append(op)
    if not n_json:
        why = " (and the gzip data is cut short)" if not complete else ""
        raise InputFileError(
            path,
            "no JSON log lines: slow-query digests read MongoDB 4.4+ "
            f"structured logs (legacy text logs are not supported){why}",
        )
    return LogRead(str(path), len(lines), n_json, ops, malformed=malformed, truncated=not complete)


def read_profile(path: Path | str) -> list[Operation]:
    """Operations from a file of ``system.profile`` documents (JSON array or JSON lines).

    Raises
    ------
    InputFileError
        When the file holds no profiler document.
    """
    from axon_lab.mongo.files import read_documents

    docs = read_documents(path)
    ops = [op for op in (operation_from_profile(d) for d in docs) if op is not None]
    if not ops:
        if len(docs) == 1 and isinstance(docs[0], Mapping) and "was" in docs[0]:
            raise InputFileError(
                path, "is a profiling status (getProfilingStatus), not system.profile documents"
            )
        raise InputFileError(path, "no system.profile documents (objects with op, ns, millis)")
    return ops


def profiling_status(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A ``db.getProfilingStatus()`` / ``profile: -1`` reply as ``{level, slowms, sample_rate,
    text}``.
    """
    level = count(doc.get("was"))
    slowms = number(doc.get("slowms"))
    rate = number(doc.get("sampleRate"))
    what = {
        0: "profiler off",
        1: f"operations slower than {slowms} ms are profiled",
        2: "every operation is profiled",
    }.get(level if level is not None else -1, "unknown level")
    text = f"level {level}: {what}" + (f" (sample rate {rate})" if rate is not None else "")
    return {"level": level, "slowms": slowms, "sample_rate": rate, "text": text}


def plan_keys(plan_summary: str | None) -> list[list[tuple[str, Any]]]:
    """Index keys named in a ``planSummary`` (``"IXSCAN { name: 1 }"`` → ``[[("name", 1)]]``)."""
    if not plan_summary:
        return []
    return [key_pairs(m.group(2)) for m in _PLAN_KEY.finditer(plan_summary)]


def _p95(values: Sequence[float]) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), 95))


def _fold(operations: Iterable[Operation]) -> list[Operation]:
    """Operations without the internal threads' lines whose command is among them."""
    ops = list(operations)
    commands = {(o.source, o.fold_key) for o in ops if not o.internal}
    return [o for o in ops if not o.internal or (o.source, o.fold_key) not in commands]


def digest_operations(operations: Iterable[Operation], kind: str = "queries") -> list[Operation]:
    """The operations a digest of ``kind`` tabulates (see :func:`digest`).

    Raises
    ------
    ConfigError
        For a kind not in :data:`DIGEST_KINDS`.
    """
    if kind not in DIGEST_KINDS:
        from axon_lab.errors import ConfigError

        raise ConfigError(f"unknown digest kind {kind!r}; valid: {', '.join(DIGEST_KINDS)}")
    ops = _fold(operations)
    if kind == "queries":
        return [o for o in ops if o.is_query]
    if kind == "commands":
        return [o for o in ops if not o.is_query]
    return ops


def digest(operations: Iterable[Operation], kind: str = "queries"):  # -> pandas.DataFrame
    """One row per query shape, sorted by total time (like ``mloginfo --queries``).

    Percentiles use linear interpolation between closest ranks (numpy's default), so the p95
    of two operations lies between them.

    Operations from a log and from the profiler are kept apart (``source``): the same
    operation can be in both, and adding them would count it twice.

    Parameters
    ----------
    kind
        ``queries`` (default): query operations only (:data:`QUERY_OPERATIONS`);
        ``commands``: every other command (createIndexes, insert, hello...); ``all``: both.
        An internal thread's line (``attr.type: "none"``) is dropped when the command line it
        belongs to is among the operations (it is the same operation), and otherwise counts
        as that command (e.g. an index build on a secondary, where no command line exists).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`DIGEST_COLUMNS`. ``examined_per_returned`` is summed documents examined
        over summed documents returned (or matched/deleted for writes), with at least one;
        ``advised_index`` is an Equality → Sort → Range key for shapes with a poor plan
        (empty otherwise, and for ``system`` collections).
    """
    import pandas as pd

    groups: dict[tuple[str, str, str, str, str], list[Operation]] = {}
    for op in digest_operations(operations, kind):
        groups.setdefault((op.source, op.namespace, op.operation, op.pattern, op.sort), []).append(
            op
        )
    rows = []
    for (source, ns, opname, pattern, sort), ops in groups.items():
        times = [o.duration_ms for o in ops]
        docs = [o.docs_examined for o in ops if o.docs_examined is not None]
        keys = [o.keys_examined for o in ops if o.keys_examined is not None]
        ret = [o.n_returned for o in ops if o.n_returned is not None]
        plans = Counter(o.plan_summary for o in ops if o.plan_summary)
        collscan = any("COLLSCAN" in p for p in plans)
        blocking = any(o.has_sort_stage for o in ops)
        per = (sum(docs) / max(sum(ret), 1)) if docs and ret else None
        advised = ""
        first = ops[0]
        if (
            ".system." not in f".{ns}"
            and (first.filter or first.sort_spec)
            and (collscan or blocking or (per is not None and per >= ADVISE_SELECTIVITY))
        ):
            used = [k for p in plans for k in plan_keys(p)]
            adv = advise_index(first.filter, first.sort_spec, first.projection, existing=used)
            if adv.needed:
                advised = adv.key_text
        rows.append(
            {
                "source": source,
                "namespace": ns,
                "operation": opname,
                "pattern": pattern,
                "sort": sort,
                "count": len(ops),
                "min_ms": min(times),
                "mean_ms": sum(times) / len(times),
                "p95_ms": _p95(times),
                "max_ms": max(times),
                "total_ms": sum(times),
                "docs_examined": sum(docs) if docs else None,
                "keys_examined": sum(keys) if keys else None,
                "n_returned": sum(ret) if ret else None,
                "examined_per_returned": per,
                "plan_summary": " | ".join(p for p, _ in plans.most_common()),
                "collscan": collscan,
                "in_memory_sort": blocking,
                "advised_index": advised,
            }
        )
    frame = pd.DataFrame(rows, columns=list(DIGEST_COLUMNS))
    if frame.empty:
        return frame
    return frame.sort_values(["total_ms", "count"], ascending=False, kind="stable").reset_index(
        drop=True
    )
