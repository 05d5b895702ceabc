"""Parse any MongoDB ``explain()`` output into one summary: stage tree, scans, sort, counts.

Handles ``find``, ``count``, ``distinct``, write and ``aggregate`` explains at every verbosity (``queryPlanner``,
``executionStats``, ``allPlansExecution``), the classic engine and the slot-based engine
(SBE, ``explainVersion: "2"``: ``winningPlan.queryPlan`` + ``slotBasedPlan``), the 8.0 express
path, sharded clusters (``SHARD_MERGE``, ``SHARD_MERGE_SORT``, ``SINGLE_SHARD`` and the
aggregate form ``shards.<name>``) and servers 3.2 through 8.1. Unknown stages are kept in the
tree under their own name and listed in :attr:`ExplainSummary.unknown_stages`.

The stage tree of an SBE plan is its ``queryPlan`` (the classic-looking plan) annotated with
the statistics of the SBE execution stages that carry the same ``planNodeId``: the topmost
SBE stage gives ``nReturned`` and time, ``ixseek``/``ixscan`` stages give keys examined and
``seek``/``scan`` stages give documents examined. An aggregate explain becomes a chain of its
pipeline stages, the ``$cursor`` stage holding the query plan as its child and a ``$unionWith``
holding its explained sub-pipeline as a second child. Atlas Search and Vector Search stages
(:mod:`~axon_lab.mongo.search`) are plan nodes named by their index, and the documents their
``_id`` lookups examined count as documents examined.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_lab.errors import InputFileError
from axon_lab.mongo.search import (
    ID_LOOKUP,
    MONGOT_STAGES,
    id_lookup_info,
    mongot_info,
    search_advice,
    search_rows,
    union_pipeline,
)

# ---- the stage catalogue -------------------------------------------------------------------

#: Classic (and SBE ``queryPlan``) stage names, from the server's ``stage_types``.
CLASSIC_STAGES = frozenset(
    """
AND_HASH AND_SORTED BATCHED_DELETE CACHED_PLAN CLUSTERED_IXSCAN COLLSCAN COUNT COUNT_SCAN DELETE
DISTINCT_SCAN ENSURE_SORTED EOF EQ_LOOKUP EQ_LOOKUP_UNWIND EXPRESS_CLUSTERED_IXSCAN EXPRESS_DELETE
EXPRESS_IDHACK EXPRESS_IXSCAN EXPRESS_UPDATE FETCH GEO_NEAR_2D GEO_NEAR_2DSPHERE GROUP IDHACK IXSCAN
KEEP_MUTATIONS LIMIT MATCH MOCK MULTI_ITERATOR MULTI_PLAN OR PROJECTION PROJECTION_ADDFIELDS
PROJECTION_COVERED PROJECTION_DEFAULT PROJECTION_SIMPLE QUEUED_DATA RECORD_STORE_FAST_COUNT
RETURN_KEY SAMPLE_FROM_TIMESERIES_BUCKET SEARCH SENTINEL SHARDING_FILTER SHARD_MERGE
SHARD_MERGE_SORT SHARD_WRITE SINGLE_SHARD SKIP SORT SORT_KEY_GENERATOR SORT_MERGE SPOOL SUBPLAN
TEXT TEXT_MATCH TEXT_OR TIMESERIES_MODIFY TRIAL UNPACK_SAMPLED_TS_BUCKET UNPACK_TS_BUCKET UPDATE
VIRTUAL_SCAN WINDOW
""".split()
)
#: Slot-based engine execution stages (``executionStages`` of ``explainVersion: "2"``).
SBE_STAGES = frozenset(
    """
agg_project block_hashagg block_to_row branch cfilter chkbounds coscan cspool efilter espool
exchange filter group hash_agg hash_lookup hash_lookup_unwind hj ixscan ixscan_generic ixseek
limit limitskip lspool makeobj makebsonobj merge_join mj mkbson mkobj nlj project scan
search_cursor seek skip sort sorted_merge spool sspool traverse ts_bucket_to_cellblock union
unique unique_roaring unwind virtualscan window
""".split()
)
#: Synthetic nodes this parser adds (an aggregate sent to several shards).
SYNTHETIC_STAGES = frozenset({"shards"})

COLLSCAN_STAGES = frozenset({"COLLSCAN"})
#: Stages that read an index (CLUSTERED_IXSCAN reads the clustered collection by its key).
INDEX_STAGES = frozenset(
    {
        "IXSCAN",
        "EXPRESS_IXSCAN",
        "COUNT_SCAN",
        "DISTINCT_SCAN",
        "IDHACK",
        "EXPRESS_IDHACK",
        "CLUSTERED_IXSCAN",
        "EXPRESS_CLUSTERED_IXSCAN",
    }
)
#: Stages that read whole documents: a plan with one of them is not covered.
FETCH_STAGES = frozenset(
    {
        "FETCH",
        "IDHACK",
        "EXPRESS_IDHACK",
        "EXPRESS_IXSCAN",
        "EXPRESS_CLUSTERED_IXSCAN",
        "CLUSTERED_IXSCAN",
        "COLLSCAN",
        "TEXT",
        "GEO_NEAR_2D",
        "GEO_NEAR_2DSPHERE",
        "seek",
        "scan",
    }
)
#: Blocking sorts (``SORT_MERGE`` merges sorted inputs and ``SORT_KEY_GENERATOR`` only makes
#: keys; neither holds the result set in memory).
SORT_STAGES = frozenset({"SORT", "$sort", "sort"})
MERGE_STAGES = frozenset({"SHARD_MERGE", "SHARD_MERGE_SORT", "SINGLE_SHARD", "SHARD_WRITE"})
CURSOR_STAGES = frozenset({"$cursor", "$geoNearCursor"})
#: Keys that hold child stages.
_CHILD_ONE = ("inputStage", "outerStage", "innerStage", "thenStage", "elseStage")
_CHILD_MANY = ("inputStages",)
#: Keys lifted into PlanNode fields (the rest stays in ``details``).
_LIFTED = frozenset(
    {
        "stage",
        "indexName",
        "keyPattern",
        "nReturned",
        "docsExamined",
        "keysExamined",
        "executionTimeMillisEstimate",
        "executionTimeMillis",
    }
)

#: Stages that read one document by ``_id`` through the ``_id_`` index.
ID_STAGES = frozenset({"IDHACK", "EXPRESS_IDHACK"})
#: Root stages that say which command a pre-4.4 explain (no ``command`` field) explained.
ROOT_COMMANDS = {
    "COUNT": "count",
    "RECORD_STORE_FAST_COUNT": "count",
    "UPDATE": "update",
    "EXPRESS_UPDATE": "update",
    "DELETE": "delete",
    "BATCHED_DELETE": "delete",
    "EXPRESS_DELETE": "delete",
}

#: Selectivity above which a plan is flagged ("docs examined ≫ returned", the guide's sign).
SELECTIVITY_FLAG = 10.0
#: The guide's slow threshold (``executionTimeMillis > 100``).
SLOW_MS = 100.0


def is_known_stage(name: str) -> bool:
    """Whether ``name`` is a stage this parser knows (pipeline ``$`` stages always are)."""
    return (
        name in CLASSIC_STAGES
        or name in SBE_STAGES
        or name in SYNTHETIC_STAGES
        or name.startswith("$")
    )


def number(value: Any) -> int | float | None:
    """A count or time from an explain value: ints, floats, ``bson.Int64`` and Extended JSON
    (``{"$numberLong": "12"}``) are numbers; anything else is ``None``.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return value
    if isinstance(value, Mapping) and len(value) == 1:
        ((k, v),) = value.items()
        if k in ("$numberLong", "$numberInt"):
            try:
                return int(v)
            except (TypeError, ValueError):
                return None
        if k in ("$numberDouble", "$numberDecimal"):
            try:
                return float(v)
            except (TypeError, ValueError):
                return None
    return None


def plain(obj: Any) -> Any:
    """``obj`` with Extended JSON numbers (``{"$numberInt": "-1"}``, ``$numberLong``,
    ``$numberDouble``, ``$numberDecimal``) made plain numbers, at any depth; other values kept.

    >>> plain({"b": {"$numberInt": "-1"}})
    {'b': -1}
    """
    if isinstance(obj, Mapping):
        if len(obj) == 1 and next(iter(obj)) in (
            "$numberInt",
            "$numberLong",
            "$numberDouble",
            "$numberDecimal",
        ):
            n = number(obj)
            if n is not None:
                return int(n) if isinstance(n, float) and n.is_integer() else n
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


def count(value: Any) -> int | None:
    """A count (``nReturned``, ``docsExamined``...) as an int, or ``None`` (see :func:`number`)."""
    n = number(value)
    return None if n is None else int(n)


def format_key(key: Any) -> str:
    """An index key pattern the way mongod prints it in ``planSummary``: ``{ a: 1, b: -1 }``."""
    if isinstance(key, str):
        return key
    if isinstance(key, Mapping):
        items = list(key.items())
    elif isinstance(key, Sequence):
        items = [tuple(kv) for kv in key]
    else:
        return str(key)
    if not items:
        return "{}"
    parts = []
    for k, v in items:
        n = number(v)
        if n is None:
            text = f'"{v}"'
        elif isinstance(n, float) and n.is_integer():
            text = str(int(n))
        else:
            text = str(n)
        parts.append(f"{k}: {text}")
    return "{ " + ", ".join(parts) + " }"


# ---- the tree ------------------------------------------------------------------------------


@dataclass
class PlanNode:
    """One stage of a plan, with the statistics the explain reported for it.

    Attributes
    ----------
    stage
        The stage name as the server wrote it (``IXSCAN``, ``$sort``, ``nlj``...).
    known
        ``False`` for a stage this parser does not know; it is kept, never dropped.
    index_name, key_pattern
        For index stages.
    n_returned, docs_examined, keys_examined, time_ms
        Per-stage statistics when the verbosity reports them (``time_ms`` is the stage's
        ``executionTimeMillisEstimate``).
    shard
        The shard this stage ran on (sharded plans).
    details
        Every other field of the stage document (bounds, sort pattern, memory, spills...).
    children
        Input stages (``inputStage``, ``inputStages``, SBE ``outerStage``/``innerStage``,
        per-shard plans, or the previous pipeline stage).
    """

    stage: str
    known: bool = True
    index_name: str | None = None
    key_pattern: Any = None
    n_returned: int | None = None
    docs_examined: int | None = None
    keys_examined: int | None = None
    time_ms: float | None = None
    shard: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    children: list[PlanNode] = field(default_factory=list)

    def walk(self) -> Iterator[PlanNode]:
        """The node itself and every descendant, pre-order."""
        yield self
        for c in self.children:
            yield from c.walk()

    @property
    def label(self) -> str:
        """Short label: the stage and its index (``IXSCAN { age: 1 }``)."""
        if self.key_pattern is not None and self.stage in INDEX_STAGES | {"ixscan", "ixseek"}:
            return f"{self.stage} {format_key(self.key_pattern)}"
        if self.index_name and self.stage in INDEX_STAGES | MONGOT_STAGES:
            return f"{self.stage} {self.index_name}"
        if self.stage == "$unionWith" and self.details.get("coll"):
            return f"$unionWith {self.details['coll']}"
        return self.stage

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able nested dict (details included)."""
        return {
            "stage": self.stage,
            "known": self.known,
            "index_name": self.index_name,
            "key_pattern": self.key_pattern,
            "n_returned": self.n_returned,
            "docs_examined": self.docs_examined,
            "keys_examined": self.keys_examined,
            "time_ms": self.time_ms,
            "shard": self.shard,
            "details": self.details,
            "children": [c.to_dict() for c in self.children],
        }

    def set_shard(self, shard: str) -> None:
        """Mark this subtree as having run on ``shard``."""
        for n in self.walk():
            n.shard = shard


@dataclass
class ExplainSummary:
    """One explain output, summarised. Field names are fixed (CLI JSON, sidecars, frames).

    Attributes
    ----------
    source
        File (or ``file#i`` for the i-th document of a file) the explain came from.
    command
        ``find``, ``aggregate``, ``count``... (from the explain's ``command`` when present,
        else ``aggregate`` for pipelines and ``find`` otherwise).
    namespace
        ``db.collection``.
    verbosity
        ``queryPlanner``, ``executionStats`` or ``allPlansExecution``.
    server_version
        ``serverInfo.version`` (of mongos, else of the first shard).
    engine
        ``classic``, ``sbe`` (slot-based) or ``express`` (8.0 express path).
    tree
        The winning plan as a :class:`PlanNode` tree.
    plan_summary
        Index and scan stages the way mongod's ``planSummary`` prints them.
    collscan, ixscan
        Whether any stage scans the collection / reads an index.
    indexes_used
        Index names, in plan order (``"(clustered)"`` for a clustered-collection scan).
    in_memory_sort
        A blocking ``SORT`` / ``$sort`` stage (the index did not provide the order).
    sort_memory_bytes, sort_used_disk, sort_spills
        What the sort stage reported (``memUsage``/``totalDataSizeSorted``...), else ``None``.
    covered
        Answered from the index alone: an index stage, no stage that reads documents, and zero
        documents examined when that is reported.
    sharded, shard_merge, n_shards
        The explain came through mongos with per-shard plans; the merge stage
        (``SHARD_MERGE``, ``SHARD_MERGE_SORT``, ``SINGLE_SHARD``, ``$mergeCursors``...).
    n_returned, docs_examined, keys_examined, execution_time_ms
        Totals (``None`` when the verbosity does not report them).
    selectivity
        Documents examined per document the query returned, ``docs_examined / max(n, 1)``, with
        ``n = n_returned`` for a find and the ``$cursor`` output for an aggregate (so a
        ``$group`` folding many documents into few is not mistaken for a poor index). 1 is
        ideal; a scan that returns nothing counts as returning one so its cost still shows.
    rejected_plans
        Number of rejected candidate plans.
    parsed_query, sort, projection
        The filter as parsed, and the sort and projection of the command when recorded.
    unknown_stages
        Stage names not in the catalogue (kept in the tree).
    flags
        Human-readable problems (COLLSCAN, in-memory sort, low selectivity, slow...).
    search_indexes
        Atlas Search / Vector Search indexes the plan queried, in plan order.
    search
        One dict per mongot stage (:func:`~axon_lab.mongo.search.search_rows`): kind, index,
        operator, ``limit``/``num_candidates``/``filter_fields`` for vector search, rows and
        time, mongot's own query time and the documents its ``_id`` lookup examined.
    advice
        What to change (:func:`~axon_lab.mongo.search.search_advice`): search stages today.
    """

    source: str | None
    command: str
    namespace: str | None
    verbosity: str
    server_version: str | None
    engine: str
    tree: PlanNode
    plan_summary: str
    collscan: bool
    ixscan: bool
    indexes_used: list[str]
    in_memory_sort: bool
    sort_memory_bytes: int | None
    sort_used_disk: bool | None
    sort_spills: int | None
    covered: bool
    sharded: bool
    shard_merge: str | None
    n_shards: int
    n_returned: int | None
    docs_examined: int | None
    keys_examined: int | None
    execution_time_ms: float | None
    selectivity: float | None
    rejected_plans: int
    parsed_query: Any
    sort: Any
    projection: Any
    unknown_stages: list[str]
    flags: list[str]
    search_indexes: list[str] = field(default_factory=list)
    search: list[dict[str, Any]] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)

    #: Columns of :meth:`row`, in order.
    ROW_FIELDS = (
        "source",
        "command",
        "namespace",
        "server_version",
        "engine",
        "verbosity",
        "plan_summary",
        "collscan",
        "ixscan",
        "indexes_used",
        "search_indexes",
        "in_memory_sort",
        "sort_memory_bytes",
        "sort_used_disk",
        "covered",
        "sharded",
        "shard_merge",
        "n_shards",
        "n_returned",
        "docs_examined",
        "keys_examined",
        "execution_time_ms",
        "selectivity",
        "rejected_plans",
        "unknown_stages",
        "flags",
    )

    def to_dict(self, *, tree: bool = True) -> dict[str, Any]:
        """All fields as JSON-able values (the stage tree nested unless ``tree=False``)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "tree"}
        if tree:
            out["stage_tree"] = self.tree.to_dict()
        return out

    def row(self) -> dict[str, Any]:
        """A flat row for a table (lists joined with ``", "``; parquet-friendly)."""
        out = {}
        for k in self.ROW_FIELDS:
            v = getattr(self, k)
            out[k] = ", ".join(v) if isinstance(v, list) else v
        return out


# ---- parsing -------------------------------------------------------------------------------


@dataclass
class _Part:
    """What one find-like or pipeline section contributed."""

    tree: PlanNode
    n_returned: int | None = None
    query_returned: int | None = None
    docs: int | None = None
    keys: int | None = None
    time_ms: float | None = None
    verbosity: str = "queryPlanner"
    engines: set[str] = field(default_factory=set)
    rejected: int = 0
    namespace: str | None = None
    parsed_query: Any = None
    versions: list[str] = field(default_factory=list)
    merge: str | None = None
    shards: list[str] = field(default_factory=list)


_VERBOSITY_RANK = {"queryPlanner": 0, "executionStats": 1, "allPlansExecution": 2}


def _max_verbosity(parts: Sequence[_Part]) -> str:
    return max(
        (p.verbosity for p in parts), key=_VERBOSITY_RANK.__getitem__, default="queryPlanner"
    )


def _sum(values: Sequence[Any]) -> Any:
    """Sum of the reported values; ``None`` when none was reported."""
    vals = [v for v in values if v is not None]
    return sum(vals) if vals else None


def _sum_all(values: Sequence[Any]) -> Any:
    """Sum when every value was reported, else ``None`` (a partial total would mislead)."""
    return sum(values) if values and all(v is not None for v in values) else None


def _node(d: Mapping[str, Any]) -> PlanNode:
    """A PlanNode tree from a classic stage document (or an SBE execution stage)."""
    stage = d.get("stage")
    name = str(stage) if stage is not None else "(no stage name)"
    children: list[PlanNode] = []
    for k in _CHILD_ONE:
        if isinstance(d.get(k), Mapping):
            children.append(_node(d[k]))
    for k in _CHILD_MANY:
        if isinstance(d.get(k), list):
            children.extend(_node(c) for c in d[k] if isinstance(c, Mapping))
    time = number(d.get("executionTimeMillisEstimate"))
    if time is None:
        time = number(d.get("executionTimeMillis"))
    index_name = d.get("indexName") if isinstance(d.get("indexName"), str) else None
    if index_name is None and name in ID_STAGES:
        index_name = "_id_"  # IDHACK reads the _id index; its explain does not name it
    return PlanNode(
        stage=name,
        known=stage is not None and is_known_stage(name),
        index_name=index_name,
        key_pattern=d.get("keyPattern"),
        n_returned=count(d.get("nReturned")),
        docs_examined=count(d.get("docsExamined")),
        keys_examined=count(d.get("keysExamined")),
        time_ms=time,
        details={
            k: v
            for k, v in d.items()
            if k not in _LIFTED and k not in _CHILD_ONE and k not in _CHILD_MANY
        },
        children=children,
    )


def _annotate_sbe(tree: PlanNode, exec_stages: Mapping[str, Any]) -> None:
    """Copy SBE execution statistics onto the ``queryPlan`` nodes with the same planNodeId."""
    by_id: dict[Any, list[PlanNode]] = {}
    for n in _node(exec_stages).walk():  # pre-order: the first node of an id is its topmost
        pid = n.details.get("planNodeId")
        by_id.setdefault(pid, []).append(n)
    for pn in tree.walk():
        execs = by_id.get(pn.details.get("planNodeId"))
        if not execs:
            continue
        top = execs[0]
        pn.n_returned, pn.time_ms = top.n_returned, top.time_ms
        keys = [
            e.keys_examined if e.keys_examined is not None else number(e.details.get("numReads"))
            for e in execs
            if e.stage in ("ixseek", "ixscan", "ixscan_generic")
        ]
        docs = [number(e.details.get("numReads")) for e in execs if e.stage in ("seek", "scan")]
        if keys:
            pn.keys_examined = _sum(keys)
        if docs:
            pn.docs_examined = _sum(docs)
        pn.details["sbe_stages"] = [e.stage for e in execs]
        for e in execs:  # spill/memory facts of blocking SBE stages
            for k in (
                "usedDisk",
                "spills",
                "spilledRecords",
                "spilledBytes",
                "spilledBytesApprox",
                "spilledDataStorageSize",
                "totalDataSizeSorted",
                "memLimit",
            ):
                if k in e.details and k not in pn.details:
                    pn.details[k] = e.details[k]
            if e.stage == "sort":
                pn.details["sbe_sort"] = True


def _is_sbe_exec(d: Mapping[str, Any]) -> bool:
    stage = d.get("stage")
    return isinstance(stage, str) and stage in SBE_STAGES and stage.islower()


def _plan_with_stats(
    winning: Mapping[str, Any], exec_stages: Mapping[str, Any] | None, engines: set[str]
) -> PlanNode:
    """The plan tree of one (unsharded) winning plan, with statistics when available."""
    if isinstance(winning.get("queryPlan"), Mapping):
        engines.add("sbe")
        tree = _node(winning["queryPlan"])
        if isinstance(exec_stages, Mapping):
            if _is_sbe_exec(exec_stages):
                _annotate_sbe(tree, exec_stages)
            else:  # an SBE-capable server that ran this one classically
                tree = _node(exec_stages)
        if "slotBasedPlan" in winning:  # kept verbatim for readers of the SBE stages
            tree.details["slotBasedPlan"] = winning["slotBasedPlan"]
        return tree
    if isinstance(exec_stages, Mapping) and exec_stages.get("stage"):
        if _is_sbe_exec(exec_stages):
            engines.add("sbe")
            tree = _node(winning) if winning.get("stage") else _node(exec_stages)
            if winning.get("stage"):
                _annotate_sbe(tree, exec_stages)
            return tree
        engines.add("classic")
        return _node(exec_stages)  # the execution tree repeats the plan, with statistics
    engines.add("classic")
    return _node(winning)


def _version(doc: Mapping[str, Any]) -> str | None:
    si = doc.get("serverInfo")
    if isinstance(si, Mapping) and si.get("version") is not None:
        return str(si["version"])
    return None


def _find_like(doc: Mapping[str, Any]) -> _Part:
    """A section with ``queryPlanner`` (+ ``executionStats``): find, count, $cursor, shard.

    An ``executionStats`` section shown on its own (as articles and tickets often quote it) is
    read too: its ``executionStages`` tree stands for the winning plan.
    """
    qp = doc.get("queryPlanner")
    if qp is None and _exec_stages_only(doc):
        qp = {"winningPlan": doc["executionStats"]["executionStages"]}
    if not isinstance(qp, Mapping):
        raise ValueError("queryPlanner is not a document")
    winning = qp.get("winningPlan")
    if not isinstance(winning, Mapping):
        raise ValueError("queryPlanner has no winningPlan")
    es = doc.get("executionStats") if isinstance(doc.get("executionStats"), Mapping) else None
    verbosity = (
        "allPlansExecution"
        if es is not None and "allPlansExecution" in es
        else "executionStats"
        if es is not None
        else "queryPlanner"
    )
    part = _Part(tree=PlanNode("EOF"), verbosity=verbosity)
    v = _version(doc)
    if v:
        part.versions.append(v)
    if isinstance(winning.get("shards"), list):  # through mongos: one plan per shard
        part.merge = str(winning.get("stage") or "SHARD_MERGE")
        exec_root = es.get("executionStages") if es else None
        exec_shards: dict[Any, Any] = {}
        if isinstance(exec_root, Mapping) and isinstance(exec_root.get("shards"), list):
            exec_shards = {
                s.get("shardName"): s for s in exec_root["shards"] if isinstance(s, Mapping)
            }
        children: list[PlanNode] = []
        for sp in winning["shards"]:
            if not isinstance(sp, Mapping):
                continue
            name = str(sp.get("shardName", f"shard{len(children)}"))
            part.shards.append(name)
            sv = _version(sp)
            if sv:
                part.versions.append(sv)
            part.namespace = part.namespace or sp.get("namespace")
            if part.parsed_query is None:
                part.parsed_query = sp.get("parsedQuery")
            part.rejected += len(sp.get("rejectedPlans") or [])
            sw = sp["winningPlan"] if isinstance(sp.get("winningPlan"), Mapping) else {}
            ex = exec_shards.get(sp.get("shardName"), {})
            child = _plan_with_stats(sw or {}, ex.get("executionStages"), part.engines)
            child.set_shard(name)
            children.append(child)
        root = _node({k: v for k, v in (exec_root or winning).items() if k != "shards"})
        root.stage = part.merge
        root.known = is_known_stage(part.merge)
        root.children = children
        part.tree = root
    else:
        part.namespace = qp.get("namespace")
        part.parsed_query = qp.get("parsedQuery")
        part.rejected = len(qp.get("rejectedPlans") or [])
        part.tree = _plan_with_stats(
            winning, es.get("executionStages") if es else None, part.engines
        )
    if es is not None:
        part.n_returned = part.query_returned = count(es.get("nReturned"))
        part.docs = count(es.get("totalDocsExamined"))
        part.keys = count(es.get("totalKeysExamined"))
        part.time_ms = number(es.get("executionTimeMillis"))
        # A pushed-down $group / a count returns aggregates: selectivity is judged on the
        # documents that reached it (the stage below), not on the one row it produced.
        q = part.tree
        while q.stage in ("GROUP", "COUNT") and q.children:
            q = q.children[0]
        if q is not part.tree and q.n_returned is not None:
            part.query_returned = q.n_returned
        elif part.tree.stage == "COUNT":
            # A count's own nReturned is always 0: what it counted is ``nCounted``, and
            # without it (or the stage below) how many documents matched is unknown.
            part.query_returned = count(part.tree.details.get("nCounted"))
    if any(n.stage.startswith("EXPRESS_") for n in part.tree.walk()):
        part.engines.discard("classic")
        part.engines.add("express")
    return part


def _stage_name(st: Mapping[str, Any]) -> str:
    for k in st:
        if isinstance(k, str) and k.startswith("$"):
            return k
    return "(no stage name)"


def _pipeline(stages: Sequence[Any]) -> _Part:
    """An aggregate explain's ``stages`` list as a chain (last stage on top).

    A ``$unionWith`` node has the chain before it as first child and its explained
    sub-pipeline as second; its counts join the totals. Documents and keys examined are those
    of the ``$cursor`` stages plus those the search ``_id`` lookups report; the documents the
    query part returned (for selectivity) are the ``$cursor`` outputs plus the lookups' rows.
    """
    prev: PlanNode | None = None
    cursors: list[_Part] = []
    subs: list[_Part] = []
    lookups: list[PlanNode] = []
    last_stats_known = True
    for st in stages:
        if not isinstance(st, Mapping):
            continue
        name = _stage_name(st)
        spec = st.get(name)
        extra = {k: v for k, v in st.items() if k != name}
        node = PlanNode(
            stage=name,
            known=name != "(no stage name)",
            n_returned=count(st.get("nReturned")),
            time_ms=number(st.get("executionTimeMillisEstimate")),
        )
        node.details = {
            "spec": spec,
            **{
                k: v
                for k, v in extra.items()
                if k not in ("nReturned", "executionTimeMillisEstimate")
            },
        }
        sub_stages = union_pipeline(spec) if name == "$unionWith" else None
        if name in CURSOR_STAGES and isinstance(spec, Mapping) and "queryPlanner" in spec:
            sub = _find_like(spec)
            cursors.append(sub)
            node.details = {k: v for k, v in node.details.items() if k != "spec"}
            node.children = [sub.tree]
            if node.n_returned is None:
                node.n_returned = sub.n_returned
        elif sub_stages is not None and isinstance(spec, Mapping):
            sub = _pipeline(sub_stages)
            subs.append(sub)
            node.details = {
                **{k: v for k, v in spec.items() if k != "pipeline"},
                **{k: v for k, v in node.details.items() if k != "spec"},
            }
            node.children = ([prev] if prev is not None else []) + [sub.tree]
        else:
            if name in MONGOT_STAGES:
                info = mongot_info(name, spec)
                node.details["search"] = info
                node.index_name = info["index"]
            elif name == ID_LOOKUP:
                info = id_lookup_info(spec)
                node.docs_examined = count(info["docs_examined"])
                node.keys_examined = count(info["keys_examined"])
                lookups.append(node)
                if prev is not None and prev.stage in MONGOT_STAGES:
                    prev.details["id_lookup_docs_examined"] = node.docs_examined
            if prev is not None:
                node.children = [prev]
        last_stats_known = node.n_returned is not None
        prev = node
    if prev is None:
        raise ValueError("the stages list is empty")
    part = _Part(tree=prev)
    for c in cursors + subs:
        part.engines |= c.engines
        part.rejected += c.rejected
        part.versions += c.versions
        part.namespace = part.namespace or c.namespace
        if part.parsed_query is None:
            part.parsed_query = c.parsed_query
    part.verbosity = (
        _max_verbosity(cursors + subs)
        if cursors or subs
        else ("executionStats" if last_stats_known else "queryPlanner")
    )
    sources = cursors + subs
    part.docs = _sum([c.docs for c in sources] + [n.docs_examined for n in lookups])
    part.keys = _sum([c.keys for c in sources] + [n.keys_examined for n in lookups])
    times = [c.time_ms for c in sources if c.time_ms is not None]
    if prev.time_ms is not None:
        times.append(prev.time_ms)  # pipeline estimates are cumulative: the last is the total
    part.time_ms = max(times) if times else None
    # What the pipeline returned: the last stage's count; unknown if it was not reported
    # (a $cursor count is what entered the rest of the pipeline, not what came out).
    part.n_returned = prev.n_returned if last_stats_known else None
    if sources or lookups:
        part.query_returned = _sum_all(
            [c.query_returned for c in sources] + [n.n_returned for n in lookups]
        )
    else:
        part.query_returned = part.n_returned
    if not cursors:
        part.engines.add("classic")
    return part


def _sharded_aggregate(doc: Mapping[str, Any]) -> _Part:
    """``{"shards": {name: {"stages": [...]} | {"queryPlanner": ...}}, "splitPipeline": ...}``."""
    children, subs = [], []
    for name, sh in doc["shards"].items():
        if not isinstance(sh, Mapping):
            continue
        if isinstance(sh.get("stages"), list):
            sub = _pipeline(sh["stages"])
        elif "queryPlanner" in sh:
            sub = _find_like(sh)
        else:
            raise ValueError(f"shard {name!r} has neither stages nor queryPlanner")
        sub.tree.set_shard(str(name))
        subs.append(sub)
        children.append(sub.tree)
    if not subs:
        raise ValueError("shards is empty")
    root = PlanNode(
        "shards",
        details={"shards": list(doc["shards"])},
        children=children,
        n_returned=_sum_all([c.n_returned for c in children]),
        time_ms=max((c.time_ms for c in children if c.time_ms is not None), default=None),
    )
    part = _Part(tree=root, shards=[str(s) for s in doc["shards"]])
    split = doc.get("splitPipeline")
    if (
        isinstance(split, Mapping)
        and isinstance(split.get("mergerPart"), list)
        and split["mergerPart"]
    ):
        merger = _pipeline(split["mergerPart"])
        bottom = merger.tree
        while bottom.children:
            bottom = bottom.children[0]
        bottom.children = [root]
        part.tree = merger.tree
        part.merge = (
            _stage_name(split["mergerPart"][0])
            if isinstance(split["mergerPart"][0], Mapping)
            else None
        )
    for s in subs:
        part.engines |= s.engines
        part.rejected += s.rejected
        part.versions += s.versions
        part.namespace = part.namespace or s.namespace
        if part.parsed_query is None:
            part.parsed_query = s.parsed_query
    part.verbosity = _max_verbosity(subs)
    part.docs = _sum([s.docs for s in subs])
    part.keys = _sum([s.keys for s in subs])
    times = [s.time_ms for s in subs if s.time_ms is not None]
    part.time_ms = max(times) if times else None
    part.n_returned = (
        part.tree.n_returned if part.tree is not root else _sum_all([s.n_returned for s in subs])
    )
    part.query_returned = _sum_all([s.query_returned for s in subs])
    return part


def _root_command(tree: PlanNode) -> str | None:
    """The command a plan's root stage implies (``COUNT`` → ``count``...), below any merge."""
    node = tree
    while node.stage in MERGE_STAGES | SYNTHETIC_STAGES and node.children:
        node = node.children[0]
    if node.stage in ROOT_COMMANDS:
        return ROOT_COMMANDS[node.stage]
    if any(n.stage == "DISTINCT_SCAN" for n in node.walk()) and not node.stage.startswith("$"):
        return "distinct"
    return None


def _command(doc: Mapping[str, Any], default: str) -> tuple[str, Any, Any]:
    cmd = doc.get("command")
    if isinstance(cmd, Mapping) and cmd:
        first = next(iter(cmd))
        sort = cmd.get("sort")
        proj = cmd.get("projection")
        if first == "aggregate" and isinstance(cmd.get("pipeline"), list):
            for st in cmd["pipeline"]:
                if isinstance(st, Mapping) and "$sort" in st and sort is None:
                    sort = st["$sort"]
                if isinstance(st, Mapping) and "$project" in st and proj is None:
                    proj = st["$project"]
        return str(first), sort, proj
    return default, None, None


def _flags(s: ExplainSummary) -> list[str]:
    out = []
    if s.collscan:
        out.append("COLLSCAN")
    if s.in_memory_sort:
        out.append("in-memory sort" + (" spilled to disk" if s.sort_used_disk else ""))
    if s.selectivity is not None and s.selectivity >= SELECTIVITY_FLAG:
        out.append(f"examined/returned {s.selectivity:,.0f}")
    if s.execution_time_ms is not None and s.execution_time_ms > SLOW_MS:
        out.append(f"slow ({s.execution_time_ms:,.0f} ms > {SLOW_MS:.0f})")
    if s.verbosity == "queryPlanner":
        out.append("queryPlanner only (no counts)")
    if s.unknown_stages:
        out.append("unknown stages: " + ", ".join(s.unknown_stages))
    return out


def _exec_stages_only(doc: Mapping[str, Any]) -> bool:
    """Whether ``doc`` is an ``executionStats`` section quoted without its ``queryPlanner``."""
    es = doc.get("executionStats")
    return (
        "queryPlanner" not in doc
        and isinstance(es, Mapping)
        and isinstance(es.get("executionStages"), Mapping)
        and bool(es["executionStages"].get("stage"))
    )


def _problem(doc: Any) -> str | None:
    """Why ``doc`` is not an explain document (``None`` if it is one)."""
    if not isinstance(doc, Mapping):
        return f"not an explain document (top level is a {type(doc).__name__}, not an object)"
    if number(doc.get("ok")) == 0:
        return f"the server returned an error, not a plan: {doc.get('errmsg') or doc.get('codeName') or 'ok: 0'}"
    if "cursor" in doc and ("nscannedObjects" in doc or "nscanned" in doc):
        return "legacy explain format of MongoDB 2.x (cursor/nscanned) is not supported; use 3.0+"
    if (
        "queryPlanner" in doc
        or _exec_stages_only(doc)
        or isinstance(doc.get("stages"), list)
        or isinstance(doc.get("shards"), Mapping)
    ):
        return None
    keys = ", ".join(list(map(str, doc))[:6]) or "(empty object)"
    return f"not an explain document (no queryPlanner, stages or shards; keys: {keys})"


def parse_explain(doc: Any, *, source: str | Path | None = None) -> ExplainSummary:
    """Summarise one explain document.

    Parameters
    ----------
    doc
        The parsed explain output (a dict as returned by pymongo, or loaded from JSON).
    source
        Where it came from; used in the summary and in error messages.

    Returns
    -------
    ExplainSummary

    Raises
    ------
    InputFileError
        Naming ``source`` and the problem when ``doc`` is not an explain document.
    """
    where = str(source) if source is not None else "<explain document>"
    problem = _problem(doc)
    if problem:
        raise InputFileError(where, problem)
    try:
        if "queryPlanner" in doc or _exec_stages_only(doc):
            part = _find_like(doc)
            default_cmd = "find"
        elif isinstance(doc.get("stages"), list):
            part = _pipeline(doc["stages"])
            default_cmd = "aggregate"
        else:
            part = _sharded_aggregate(doc)
            default_cmd = "aggregate"
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InputFileError(where, f"malformed explain document ({exc})") from None
    if default_cmd == "find":
        default_cmd = _root_command(part.tree) or default_cmd
    command, sort, projection = _command(doc, default_cmd)
    nodes = list(part.tree.walk())
    indexes: list[str] = []
    for n in nodes:
        name = n.index_name or (
            "(clustered)" if n.stage in ("CLUSTERED_IXSCAN", "EXPRESS_CLUSTERED_IXSCAN") else None
        )
        if name and n.stage in INDEX_STAGES | {"ixscan", "ixseek"} and name not in indexes:
            indexes.append(name)
    collscan = any(n.stage in COLLSCAN_STAGES for n in nodes)
    ixscan = any(n.stage in INDEX_STAGES for n in nodes)
    sorts = [n for n in nodes if n.stage in SORT_STAGES or n.details.get("sbe_sort")]
    mem = [
        m
        for n in sorts
        for k in ("memUsage", "totalDataSizeSorted", "totalDataSizeSortedBytesEstimate")
        if (m := count(n.details.get(k))) is not None
    ]
    disk = [n.details["usedDisk"] for n in sorts if isinstance(n.details.get("usedDisk"), bool)]
    spills = [c for n in sorts if (c := count(n.details.get("spills"))) is not None]
    reads_docs = any(n.stage in FETCH_STAGES for n in nodes)
    covered = ixscan and not reads_docs and (part.docs is None or part.docs == 0)
    version = _version(doc) or (part.versions[0] if part.versions else None)
    engine = (
        "sbe" if "sbe" in part.engines else "express" if "express" in part.engines else "classic"
    )
    access = []
    search_indexes: list[str] = []
    for n in nodes:
        if n.stage in INDEX_STAGES or n.stage in COLLSCAN_STAGES or n.stage in MONGOT_STAGES:
            lab = n.label if n.key_pattern is not None or n.stage in MONGOT_STAGES else n.stage
            if lab not in access:
                access.append(lab)
        if n.stage in MONGOT_STAGES and n.index_name and n.index_name not in search_indexes:
            search_indexes.append(n.index_name)
    summary = ExplainSummary(
        source=str(source) if source is not None else None,
        command=command,
        namespace=part.namespace,
        verbosity=part.verbosity,
        server_version=version,
        engine=engine,
        tree=part.tree,
        plan_summary=", ".join(access) if access else part.tree.stage,
        collscan=collscan,
        ixscan=ixscan,
        indexes_used=indexes,
        in_memory_sort=bool(sorts),
        sort_memory_bytes=max(mem) if mem else None,
        sort_used_disk=any(disk) if disk else None,
        sort_spills=sum(spills) if spills else None,
        covered=covered,
        sharded=bool(part.shards),
        shard_merge=part.merge,
        n_shards=len(part.shards),
        n_returned=part.n_returned,
        docs_examined=part.docs,
        keys_examined=part.keys,
        execution_time_ms=part.time_ms,
        selectivity=(
            part.docs / max(part.query_returned, 1)
            if part.docs is not None and part.query_returned is not None
            else None
        ),
        rejected_plans=part.rejected,
        parsed_query=plain(part.parsed_query),
        sort=plain(sort),
        projection=plain(projection),
        unknown_stages=sorted({n.stage for n in nodes if not n.known}),
        flags=[],
        search_indexes=search_indexes,
        search=search_rows(part.tree),
    )
    summary.flags = _flags(summary)
    summary.advice = search_advice(summary)
    return summary


def load_explains(path: Path | str) -> list[ExplainSummary]:
    """Every explain in a file (one document, a JSON array of them, or JSON lines).

    Raises
    ------
    InputFileError
        Naming the file (and document index) and the problem.
    """
    from axon_lab.mongo.files import read_documents

    docs = read_documents(path)
    if len(docs) == 1:
        return [parse_explain(docs[0], source=str(path))]
    return [parse_explain(d, source=f"{path}#{i}") for i, d in enumerate(docs)]


def summaries_frame(summaries: Sequence[ExplainSummary]):  # -> pandas.DataFrame
    """One row per plan (:attr:`ExplainSummary.ROW_FIELDS`), file names shortened to the stem."""
    import pandas as pd

    rows = []
    for s in summaries:
        r = s.row()
        if r["source"]:
            r["source"] = Path(str(r["source"]).split("#")[0]).stem + (
                "#" + str(r["source"]).split("#")[1] if "#" in str(r["source"]) else ""
            )
        rows.append(r)
    return pd.DataFrame(rows, columns=list(ExplainSummary.ROW_FIELDS))


def stage_rows(summary: ExplainSummary):  # -> pandas.DataFrame
    """The stage tree as a table: depth, stage, index, shard and per-stage counts."""
    import pandas as pd

    rows = []

    def visit(n: PlanNode, depth: int) -> None:
        rows.append(
            {
                "depth": depth,
                "stage": n.stage,
                "known": n.known,
                "index": n.index_name,
                "shard": n.shard,
                "n_returned": n.n_returned,
                "docs_examined": n.docs_examined,
                "keys_examined": n.keys_examined,
                "time_ms": n.time_ms,
            }
        )
        for c in n.children:
            visit(c, depth + 1)

    visit(summary.tree, 0)
    return pd.DataFrame(rows)


#: Columns of :func:`plans_table`.
PLAN_TABLE_COLUMNS = (
    "phase",
    "plan_summary",
    "indexes_used",
    "collscan",
    "in_memory_sort",
    "covered",
    "n_returned",
    "docs_examined",
    "keys_examined",
    "execution_time_ms",
    "selectivity",
)


def plans_table(labelled: Sequence[tuple[str, ExplainSummary]]):  # -> pandas.DataFrame
    """Plans side by side, one row per ``(label, summary)`` (e.g. before/after an index).

    Returns
    -------
    pandas.DataFrame
        Columns :data:`PLAN_TABLE_COLUMNS`; ``indexes_used`` joined with ``", "``.
    """
    import pandas as pd

    rows = []
    for label, s in labelled:
        rows.append(
            {
                "phase": label,
                "plan_summary": s.plan_summary,
                "indexes_used": ", ".join(s.indexes_used),
                "collscan": s.collscan,
                "in_memory_sort": s.in_memory_sort,
                "covered": s.covered,
                "n_returned": s.n_returned,
                "docs_examined": s.docs_examined,
                "keys_examined": s.keys_examined,
                "execution_time_ms": s.execution_time_ms,
                "selectivity": s.selectivity,
            }
        )
    return pd.DataFrame(rows, columns=list(PLAN_TABLE_COLUMNS))
