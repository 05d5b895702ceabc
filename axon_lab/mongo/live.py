"""Live MongoDB analysis: profile the app's queries, explain, create the advised index, explain again.

:func:`connect` turns a URI, a pymongo ``MongoClient``/``Database`` or the lab's
``DocumentStore`` into a :class:`MongoConnection` and decides the mode. The embedded store
(mongomock) is not MongoDB — it has no query planner, explain, profiler or index that changes a
plan — so a mongomock client or database, or any server that fails ``buildInfo`` (unreachable,
or not MongoDB), gives ``mode == "files"`` with the reason, never an exception; the caller then
analyses recorded files instead.

:func:`run_live` does, on a real server, what the guide's Database Optimization section does by
hand: set the profiling level, run the app's queries on ``contexts``, explain with
``executionStats``, create the index advised by Equality → Sort → Range, explain again and
tabulate before/after, measure the bytes a projection saves (BSON sizes of the documents
returned, with ``bson.encode``) and compare connection-pool settings under concurrent threads.
Everything the server is asked goes through ``Database.command`` (plus ``find``/``insert_many``
on the collection), so tests can record it with a mock.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from axon_lab.errors import ConfigError
from axon_lab.mongo.advice import GUIDE_INDEX_NAME, IndexAdvice, advise_index
from axon_lab.mongo.explain import ExplainSummary, parse_explain, plans_table
from axon_lab.mongo.workload import (
    Operation,
    digest,
    operation_from_log,
    operation_from_profile,
)
from axon_lab.redact import redact_text

MODES = ("live", "files")
#: The guide's profiling threshold (``db.setProfilingLevel(2, { slowms: 100 })``).
SLOWMS = 100
#: The app's projection for synthesis (the guide's "after").
APP_PROJECTION = {"content": 1, "metadata": 1, "confidence": 1}
#: Pool settings compared: the driver default and the guide's recommendation.
POOL_CONFIGS: tuple[tuple[int, int], ...] = ((10, 0), (50, 10))
EMBEDDED_REASON = (
    "the embedded store (mongomock) is not MongoDB: it has no query planner, explain, "
    "profiler or index that changes a plan; switching to offline mode (recorded files)"
)


@dataclass
class MongoConnection:
    """Where MongoDB analysis runs and why.

    Attributes
    ----------
    requested_mode
        What was asked (``live`` or ``files``).
    mode
        What will run: ``live`` only against a server that answered ``buildInfo``.
    reason
        One line saying why (redacted: no password ever appears).
    uri
        The URI, redacted (``""`` when a client object was given).
    database
        Database name.
    server_version, topology
        From ``buildInfo`` / ``hello`` (``standalone``, ``replica set``, ``mongos``).
    embedded
        Whether the target was the embedded mongomock store.
    """

    requested_mode: str
    mode: str
    reason: str
    uri: str = ""
    database: str | None = None
    server_version: str | None = None
    topology: str | None = None
    embedded: bool = False
    db: Any = field(default=None, repr=False, compare=False)
    client_factory: Callable[..., Any] | None = field(default=None, repr=False, compare=False)

    @property
    def live(self) -> bool:
        """Whether live analysis can run."""
        return self.mode == "live"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description (no handles, URI redacted)."""
        return {
            "requested_mode": self.requested_mode,
            "mode": self.mode,
            "reason": self.reason,
            "uri": self.uri,
            "database": self.database,
            "server_version": self.server_version,
            "topology": self.topology,
            "embedded": self.embedded,
        }

    def __repr__(self) -> str:
        where = f" {self.uri}" if self.uri else ""
        version = (
            f" (MongoDB {self.server_version}, {self.topology})" if self.server_version else ""
        )
        return f"MongoDB target: {self.mode} mode{where}{version} — {self.reason}"


def is_embedded(obj: Any) -> bool:
    """Whether ``obj`` is the embedded store: a mongomock client/database/collection, or the
    lab's ``DocumentStore`` in embedded mode.
    """
    if getattr(obj, "embedded", None) is True and hasattr(obj, "coll"):
        return True
    return type(obj).__module__.split(".")[0] == "mongomock"


def _settings_uri() -> str:
    try:
        from axon_lab.config import get_settings

        return get_settings().secret("mongodb_uri") or ""
    except Exception:  # settings problems must not stop offline analysis
        return ""


def _short(exc: BaseException) -> str:
    text = redact_text(" ".join(str(exc).split()))
    return f"{type(exc).__name__}: {text[:200]}"


def connect(
    target: Any = None, *, mode: str = "live", database: str = "axon", timeout_ms: int = 3000
) -> MongoConnection:
    """Resolve what to analyze; falls back to ``files`` mode instead of failing.

    Parameters
    ----------
    target
        A MongoDB URI, a pymongo ``MongoClient`` or ``Database``, a mongomock one, or the lab's
        ``DocumentStore``. Empty means ``AXON_MONGODB_URI``, else the embedded store.
    mode
        ``live`` (try the server) or ``files`` (recorded files only).
    database
        Database holding the app's collection (ignored when a ``Database`` is given).
    timeout_ms
        Server selection timeout for URIs.

    Returns
    -------
    MongoConnection
        ``mode == "live"`` only if the server answered ``buildInfo``.

    Raises
    ------
    ConfigError
        For a mode other than ``live`` / ``files``.
    """
    if mode not in MODES:
        raise ConfigError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if mode == "files":
        return MongoConnection(
            "files",
            "files",
            "files mode requested: analysing recorded server output",
            uri=redact_text(target) if isinstance(target, str) else "",
            database=database,
        )
    if target is None or (isinstance(target, str) and not target.strip()):
        target = _settings_uri()
        if not target:
            import mongomock

            return MongoConnection(
                "live",
                "files",
                "no MongoDB URI (mongodb_uri / AXON_MONGODB_URI); " + EMBEDDED_REASON,
                uri="mongomock://in-process",
                database=database,
                embedded=True,
                db=mongomock.MongoClient()[database],
            )
    uri = ""
    factory = None
    if isinstance(target, str):
        import pymongo

        uri = target.strip()
        shown = redact_text(uri)

        def factory(**kw: Any) -> Any:
            return pymongo.MongoClient(
                uri, serverSelectionTimeoutMS=timeout_ms, appname="axon-lab", **kw
            )

        try:
            client = factory()
            db = client.get_database(database) if database else client.get_default_database()
        except Exception as exc:  # invalid URI, bad option...
            return MongoConnection(
                "live",
                "files",
                f"cannot use the MongoDB URI ({_short(exc)}); offline mode (recorded files)",
                uri=shown,
                database=database,
            )
        uri = shown
    elif hasattr(target, "coll") and hasattr(target, "db") and hasattr(target, "embedded"):
        db = target.db  # the lab's DocumentStore
        uri = getattr(target, "url", "")
    else:
        db = _database_of(target, database)
    name = getattr(db, "name", database)
    name = name if isinstance(name, str) else database
    if is_embedded(target) or is_embedded(db):
        return MongoConnection(
            "live",
            "files",
            EMBEDDED_REASON,
            uri=uri or "mongomock://in-process",
            database=name,
            embedded=True,
            db=db,
        )
    try:
        info = db.command("buildInfo")
        version = str(info.get("version")) if isinstance(info, Mapping) else None
        if not version:
            raise ValueError("buildInfo has no version")
    except Exception as exc:
        return MongoConnection(
            "live",
            "files",
            f"the server failed buildInfo ({_short(exc)}): not a real "
            "MongoDB or not reachable; offline mode (recorded files)",
            uri=uri,
            database=name,
            db=db,
        )
    topology = "standalone"
    try:
        hello = db.command("hello")
        if isinstance(hello, Mapping):
            topology = (
                "mongos"
                if hello.get("msg") == "isdbgrid"
                else "replica set"
                if hello.get("setName")
                else "standalone"
            )
    except Exception:
        topology = "unknown"
    return MongoConnection(
        "live",
        "live",
        f"MongoDB {version} answered buildInfo",
        uri=uri,
        database=name,
        server_version=version,
        topology=topology,
        db=db,
        client_factory=factory,
    )


def _database_of(obj: Any, database: str) -> Any:
    """A database handle from a client or database object (pymongo, mongomock or duck-typed)."""
    try:
        import pymongo
        from pymongo.database import Database

        if isinstance(obj, Database):
            return obj
        if isinstance(obj, pymongo.MongoClient):
            return obj[database]
    except ImportError:  # pragma: no cover - pymongo is a dependency
        pass
    if type(obj).__name__ == "MongoClient":  # mongomock
        return obj[database]
    if callable(getattr(obj, "command", None)):
        return obj
    raise ConfigError(
        f"cannot use {type(obj).__name__} as a MongoDB target; "
        "give a URI, a MongoClient or a Database"
    )


# ---- the live steps ------------------------------------------------------------------------


def _first_batch(reply: Any) -> list[Any]:
    if isinstance(reply, Mapping) and isinstance(reply.get("cursor"), Mapping):
        return list(reply["cursor"].get("firstBatch") or [])
    return []


def profiling_level(db: Any) -> dict[str, Any]:
    """The current profiling status (``{"was", "slowms", "sampleRate"}``)."""
    reply = db.command("profile", -1)
    return {k: reply.get(k) for k in ("was", "slowms", "sampleRate") if k in reply}


def set_profiling(db: Any, level: int, slowms: int = SLOWMS) -> dict[str, Any]:
    """``db.setProfilingLevel(level, {slowms})``; returns the previous status."""
    reply = db.command("profile", level, slowms=slowms)
    return {k: reply.get(k) for k in ("was", "slowms", "sampleRate") if k in reply}


def explain_find(
    db: Any,
    collection: str,
    filter: Mapping[str, Any],
    *,
    sort: Any = None,
    limit: int | None = None,
    projection: Any = None,
    hint: Any = None,
    verbosity: str = "executionStats",
    label: str = "find",
) -> ExplainSummary:
    """``db.coll.find(...).explain(verbosity)`` through the ``explain`` command, parsed
    (``source`` of the summary is ``live <collection>: <label>``).
    """
    cmd: dict[str, Any] = {"find": collection, "filter": dict(filter)}
    if sort:
        cmd["sort"] = dict(sort)
    if projection:
        cmd["projection"] = dict(projection)
    if limit:
        cmd["limit"] = int(limit)
    if hint is not None:
        cmd["hint"] = hint
    reply = db.command("explain", cmd, verbosity=verbosity)
    return parse_explain(dict(reply), source=f"live {collection}: {label}")


def list_indexes(db: Any, collection: str) -> list[dict[str, Any]]:
    """The collection's indexes (``listIndexes``)."""
    return [dict(ix) for ix in _first_batch(db.command("listIndexes", collection))]


def create_index(db: Any, collection: str, key: Sequence[tuple[str, Any]], name: str) -> None:
    """``createIndexes`` with an ordered key."""
    from bson.son import SON

    db.command("createIndexes", collection, indexes=[{"key": SON(list(key)), "name": name}])


def drop_index(db: Any, collection: str, name: str) -> None:
    """``dropIndexes`` of one index by name."""
    db.command("dropIndexes", collection, index=name)


def bson_size(docs: Sequence[Mapping[str, Any]]) -> int:
    """Total BSON size of documents, in bytes (what the server sends, without message framing)."""
    import bson

    return sum(len(bson.encode(d)) for d in docs)


def measure_projection(
    collection: Any, filter: Mapping[str, Any], projection: Mapping[str, Any], *, limit: int = 0
) -> dict[str, Any]:
    """Bytes and time of a query with and without a projection (the guide's "~70% less").

    Works on any pymongo-compatible collection: BSON sizes are a property of the documents.

    Returns
    -------
    dict
        ``documents, full_bytes, projected_bytes, saved_bytes, saved_fraction, full_ms,
        projected_ms`` (times are one client-side fetch each, including decoding).
    """
    t0 = time.perf_counter_ns()
    full = list(collection.find(dict(filter)).limit(limit))
    t1 = time.perf_counter_ns()
    proj = list(collection.find(dict(filter), dict(projection)).limit(limit))
    t2 = time.perf_counter_ns()
    fb, pb = bson_size(full), bson_size(proj)
    return {
        "documents": len(full),
        "projection": dict(projection),
        "full_bytes": fb,
        "projected_bytes": pb,
        "saved_bytes": fb - pb,
        "saved_fraction": (fb - pb) / fb if fb else None,
        "full_ms": (t1 - t0) / 1e6,
        "projected_ms": (t2 - t1) / 1e6,
    }


class _PoolEvents:
    """Counts pool events of one client (connections created, check-out waits)."""

    def __init__(self) -> None:
        import threading

        self.lock = threading.Lock()
        self.created = 0
        self.waits_ms: list[float] = []

    def listener(self) -> Any:
        from pymongo import monitoring

        outer = self

        class Listener(monitoring.ConnectionPoolListener):
            def connection_created(self, event: Any) -> None:
                with outer.lock:
                    outer.created += 1

            def connection_checked_out(self, event: Any) -> None:
                d = getattr(event, "duration", None)  # pymongo >= 4.7: seconds waited
                if d is not None:
                    with outer.lock:
                        outer.waits_ms.append(float(d) * 1000)

            def pool_created(self, event: Any) -> None: ...
            def pool_ready(self, event: Any) -> None: ...
            def pool_cleared(self, event: Any) -> None: ...
            def pool_closed(self, event: Any) -> None: ...
            def connection_ready(self, event: Any) -> None: ...
            def connection_closed(self, event: Any) -> None: ...
            def connection_check_out_started(self, event: Any) -> None: ...
            def connection_check_out_failed(self, event: Any) -> None: ...
            def connection_checked_in(self, event: Any) -> None: ...

        return Listener()


#: Columns of :func:`compare_pools`.
POOL_COLUMNS = (
    "max_pool_size",
    "min_pool_size",
    "threads",
    "queries",
    "errors",
    "wall_s",
    "qps",
    "p50_ms",
    "p95_ms",
    "max_ms",
    "connections_created",
    "mean_checkout_wait_ms",
    "first_error",
)


def compare_pools(
    client_factory: Callable[..., Any],
    database: str,
    collection: str,
    query: Mapping[str, Any],
    *,
    configs: Sequence[tuple[int, int]] = POOL_CONFIGS,
    threads: int = 16,
    queries: int = 200,
    warm_s: float = 0.5,
):  # -> DataFrame
    """Run the same query from ``threads`` threads under each ``(maxPoolSize, minPoolSize)``.

    Parameters
    ----------
    client_factory
        ``factory(maxPoolSize=..., minPoolSize=..., event_listeners=[...])`` → a new client.
    query
        ``{"filter", "sort", "limit", "projection"}``.
    warm_s
        Pause after the first ``ping`` so ``minPoolSize`` connections can open (the driver opens
        them in the background; that warm-up is what the setting buys).

    Returns
    -------
    pandas.DataFrame
        One row per configuration, columns :data:`POOL_COLUMNS`; percentiles are numpy's
        linear interpolation over per-query client-side latencies.
    """
    import numpy as np
    import pandas as pd

    rows = []
    for max_pool, min_pool in configs:
        events = _PoolEvents()
        try:
            listener = events.listener()
            client = client_factory(
                maxPoolSize=max_pool, minPoolSize=min_pool, event_listeners=[listener]
            )
        except ImportError:  # pragma: no cover - pymongo is a dependency
            client = client_factory(maxPoolSize=max_pool, minPoolSize=min_pool)
        coll = client[database][collection]
        errors: list[str] = []

        def one(_: int, coll: Any = coll, errors: list[str] = errors) -> float | None:
            t0 = time.perf_counter_ns()
            try:
                cur = coll.find(dict(query.get("filter") or {}), query.get("projection"))
                if query.get("sort"):
                    cur = cur.sort(list(dict(query["sort"]).items()))
                list(cur.limit(int(query.get("limit") or 0)))
            except Exception as exc:
                errors.append(_short(exc))
                return None
            return (time.perf_counter_ns() - t0) / 1e6

        try:
            client[database].command("ping")
            if min_pool and warm_s:
                time.sleep(warm_s)
            t0 = time.perf_counter()
            with ThreadPoolExecutor(max_workers=threads) as ex:
                lat = [x for x in ex.map(one, range(queries)) if x is not None]
            wall = time.perf_counter() - t0
        finally:
            client.close()
        arr = np.asarray(lat, dtype=float)
        rows.append(
            {
                "max_pool_size": max_pool,
                "min_pool_size": min_pool,
                "threads": threads,
                "queries": queries,
                "errors": len(errors),
                "wall_s": wall,
                "qps": len(lat) / wall if wall > 0 else None,
                "p50_ms": float(np.percentile(arr, 50)) if arr.size else None,
                "p95_ms": float(np.percentile(arr, 95)) if arr.size else None,
                "max_ms": float(arr.max()) if arr.size else None,
                "connections_created": events.created,
                "mean_checkout_wait_ms": float(np.mean(events.waits_ms))
                if events.waits_ms
                else None,
                "first_error": errors[0] if errors else None,
            }
        )
    return pd.DataFrame(rows, columns=list(POOL_COLUMNS))


def _synthetic_contexts(n: int) -> list[dict[str, Any]]:
    """Deterministic stand-in contexts (used only when the corpus is not built)."""
    tiers = ("workspace", "project", "global")
    spaces = ("test", "test", "test", "acme-analytics", "acme-platform")
    out = []
    for i in range(n):
        out.append(
            {
                "_id": i,
                "workspaceId": spaces[i % len(spaces)],
                "tier": tiers[(i // 5) % 3],
                "confidence": ((i * 7919) % 1000) / 1000.0,
                "content": f"context {i}: " + "lorem ipsum dolor sit amet " * 12,
                "metadata": {"source": "synthetic", "position": i, "tags": ["a", "b"]},
            }
        )
    return out


def seed_documents(n: int) -> list[dict[str, Any]]:
    """``n`` context documents: the lab's corpus when built, else deterministic synthetic ones."""
    try:
        from axon_lab import corpus

        df = corpus.load_frame(None, build_if_missing=False)
        return list(corpus.documents(df.head(n)))
    except Exception:
        return _synthetic_contexts(n)


@dataclass
class LiveReport:
    """What :func:`run_live` measured (``ran`` is ``False`` when it fell back)."""

    ran: bool
    target: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    namespace: str | None = None
    documents: int | None = None
    seeded: int = 0
    workspace_id: str | None = None
    tier: str | None = None
    query: dict[str, Any] = field(default_factory=dict)
    query_runs_ms: list[float] = field(default_factory=list)
    profiling: dict[str, Any] = field(default_factory=dict)
    advice: IndexAdvice | None = None
    index_created: str | None = None
    index_dropped: bool = False
    before_hint: Any = None
    before: ExplainSummary | None = None
    after: ExplainSummary | None = None
    workspace_before: ExplainSummary | None = None
    workspace_after: ExplainSummary | None = None
    projection: dict[str, Any] | None = None
    pools: Any = None
    profile_operations: list[Operation] = field(default_factory=list)
    log_operations: list[Operation] = field(default_factory=list)
    index_stats: list[dict[str, Any]] = field(default_factory=list)

    def before_after(self):  # -> pandas.DataFrame
        """The before/after table (:func:`~axon_lab.mongo.explain.plans_table`): the
        contexts query (``before``/``after``), then the workspace query (``workspace before``/
        ``workspace after``).
        """
        pairs = [
            (k, s)
            for k, s in (
                ("before", self.before),
                ("after", self.after),
                ("workspace before", self.workspace_before),
                ("workspace after", self.workspace_after),
            )
            if s is not None
        ]
        return plans_table(pairs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (plans without their trees)."""
        return {
            "ran": self.ran,
            "target": self.target,
            "notes": self.notes,
            "namespace": self.namespace,
            "documents": self.documents,
            "seeded": self.seeded,
            "workspace_id": self.workspace_id,
            "tier": self.tier,
            "query": self.query,
            "query_runs_ms": self.query_runs_ms,
            "profiling": self.profiling,
            "advice": self.advice.to_dict() if self.advice else None,
            "index_created": self.index_created,
            "index_dropped": self.index_dropped,
            "before_hint": self.before_hint,
            "before": self.before.to_dict(tree=False) if self.before else None,
            "after": self.after.to_dict(tree=False) if self.after else None,
            "workspace_before": self.workspace_before.to_dict(tree=False)
            if self.workspace_before
            else None,
            "workspace_after": self.workspace_after.to_dict(tree=False)
            if self.workspace_after
            else None,
            "projection": self.projection,
            "pools": None if self.pools is None else self.pools.to_dict(orient="records"),
        }


def _pick_query(
    db: Any, collection: str, workspace_id: str, tier: str
) -> tuple[str | None, str | None]:
    """The workspace and tier to query: given ones, else the guide's (``test``/``workspace``)
    when present, else the most common pair.
    """
    if workspace_id and tier:
        return workspace_id, tier
    match: dict[str, Any] = {"workspaceId": workspace_id} if workspace_id else {}
    pipeline = [
        {"$match": match},
        {"$group": {"_id": {"w": "$workspaceId", "t": "$tier"}, "n": {"$sum": 1}}},
        {"$sort": {"n": -1}},
        {"$limit": 50},
    ]
    pairs = [
        (d["_id"].get("w"), d["_id"].get("t"))
        for d in _first_batch(db.command("aggregate", collection, pipeline=pipeline, cursor={}))
        if isinstance(d.get("_id"), Mapping)
    ]
    if not pairs:
        return workspace_id or None, tier or None
    for w, t in pairs:
        if (w, t) == (workspace_id or "test", tier or "workspace"):
            return w, t
    for w, t in pairs:
        if not tier or t == tier:
            return w, t
    return pairs[0]


def run_live(
    target: Any,
    *,
    collection: str = "contexts",
    workspace_id: str = "",
    tier: str = "",
    seed: int = 0,
    keep_index: bool = False,
    limit: int = 20,
    repeats: int = 3,
    pool_configs: Sequence[tuple[int, int]] = POOL_CONFIGS,
    pool_threads: int = 16,
    pool_queries: int = 200,
    slowms: int = SLOWMS,
    database: str = "axon",
) -> LiveReport:
    """The guide's MongoDB session on a live server; falls back (``ran=False``) instead of failing.

    Steps: remember the profiling level and set it to 2 (``slowms``); seed ``seed`` contexts if
    the collection is empty (never otherwise); run the app's query (``{workspaceId, tier}``
    sorted by ``confidence`` desc, limit ``limit``, the app's projection) ``repeats`` times;
    advise an index (ESR) against ``listIndexes``; explain ``executionStats`` of that query and
    of the guide's workspace query (``{workspaceId}`` with the projection) before (with
    ``hint: {$natural: 1}`` when an index already serves the query, so "before" is the plan
    without it); create the advised index if needed (named like the guide's when it is the
    guide's key); explain again; drop the index again unless ``keep_index``; measure projection
    bytes; read ``system.profile`` and ``getLog`` for the run; ``$indexStats``; restore the
    profiling level; compare pool settings (only with a URI target, which can open clients).

    Parameters
    ----------
    target
        A :class:`MongoConnection` from :func:`connect`, or anything :func:`connect` accepts.

    Returns
    -------
    LiveReport
    """
    if not isinstance(target, MongoConnection):
        target = connect(target, database=database)
    rep = LiveReport(ran=False, target=target.to_dict())
    if not target.live:
        rep.notes.append(target.reason)
        return rep
    db = target.db
    rep.namespace = f"{target.database}.{collection}"
    try:
        started = _server_now(db)
    except Exception:
        started = None
    try:
        rep.profiling["before"] = profiling_level(db)
        set_profiling(db, 2, slowms)
        rep.profiling["during"] = {"was": 2, "slowms": slowms}
    except Exception as exc:
        rep.notes.append(f"profiling not available ({_short(exc)}); continuing without it")
    try:
        count = int(db.command("count", collection).get("n", 0))
        if count == 0 and seed > 0:
            docs = seed_documents(seed)
            db[collection].insert_many(docs)
            rep.seeded = len(docs)
            rep.notes.append(f"{collection} was empty: seeded {len(docs)} context documents")
            count = len(docs)
        rep.documents = count
        if count == 0:
            rep.notes.append(f"{rep.namespace} is empty; set seed to insert contexts first")
            return rep
        ws, tr = _pick_query(db, collection, workspace_id, tier)
        rep.workspace_id, rep.tier = ws, tr
        flt = {"workspaceId": ws, **({"tier": tr} if tr else {})}
        sort = {"confidence": -1}
        rep.query = {"filter": flt, "sort": sort, "limit": limit, "projection": APP_PROJECTION}
        for _ in range(max(1, repeats)):
            t0 = time.perf_counter_ns()
            list(db[collection].find(flt, APP_PROJECTION).sort(list(sort.items())).limit(limit))
            rep.query_runs_ms.append((time.perf_counter_ns() - t0) / 1e6)
        existing = list_indexes(db, collection)
        advice = advise_index(flt, sort, APP_PROJECTION, existing)
        rep.advice = advice
        if advice.served_by:
            rep.before_hint = {"$natural": 1}
            rep.notes.append(
                f"{advice.served_by} already serves the query: 'before' is the plan "
                "forced to a collection scan (hint $natural)"
            )
        rep.before = explain_find(
            db,
            collection,
            flt,
            sort=sort,
            limit=limit,
            projection=APP_PROJECTION,
            hint=rep.before_hint,
            label="before",
        )
        # The guide's second query: a workspace's contexts with the synthesis projection.
        wflt = {"workspaceId": ws}
        rep.workspace_before = explain_find(
            db,
            collection,
            wflt,
            projection=APP_PROJECTION,
            hint=rep.before_hint,
            label="workspace before",
        )
        if advice.needed:
            name = (
                GUIDE_INDEX_NAME
                if advice.key == [("workspaceId", 1), ("tier", 1), ("confidence", -1)]
                else advice.name
            )
            create_index(db, collection, advice.key, name)
            rep.index_created = name
        rep.after = explain_find(
            db, collection, flt, sort=sort, limit=limit, projection=APP_PROJECTION, label="after"
        )
        rep.workspace_after = explain_find(
            db, collection, wflt, projection=APP_PROJECTION, label="workspace after"
        )
        rep.projection = measure_projection(db[collection], wflt, APP_PROJECTION)
        try:
            rep.index_stats = _first_batch(
                db.command("aggregate", collection, pipeline=[{"$indexStats": {}}], cursor={})
            )
        except Exception as exc:
            rep.notes.append(f"$indexStats not available ({_short(exc)})")
        rep.ran = True
    finally:
        if rep.index_created and not keep_index and not rep.index_dropped:
            try:  # leave the server as found even when a step failed
                drop_index(db, collection, rep.index_created)
                rep.index_dropped = True
            except Exception as exc:
                rep.notes.append(f"could not drop {rep.index_created} ({_short(exc)})")
        if "before" in rep.profiling:
            try:
                prev = rep.profiling["before"]
                set_profiling(db, int(prev.get("was", 0)), int(prev.get("slowms", SLOWMS)))
                rep.profiling["restored"] = True
            except Exception as exc:
                rep.notes.append(f"could not restore the profiling level ({_short(exc)})")
    rep.profile_operations = _profile_ops(db, rep.namespace, started, rep.notes)
    rep.log_operations = _log_ops(db, rep.namespace, rep.notes)
    if target.client_factory is not None and pool_queries > 0:
        rep.pools = compare_pools(
            target.client_factory,
            target.database or database,
            collection,
            rep.query,
            configs=pool_configs,
            threads=pool_threads,
            queries=pool_queries,
        )
    else:
        rep.notes.append("pool comparison needs a URI (it opens clients with other pool settings)")
    return rep


def _server_now(db: Any) -> Any:
    """The server's clock (``hello.localTime``), to select this run's profiler documents."""
    reply = db.command("hello")
    return reply.get("localTime") if isinstance(reply, Mapping) else None


def _profile_ops(db: Any, namespace: str, since: Any, notes: list[str]) -> list[Operation]:
    flt: dict[str, Any] = {"ns": namespace}
    if since is not None:
        flt["ts"] = {"$gte": since}
    try:
        docs = list(db["system.profile"].find(flt))
    except Exception as exc:
        notes.append(f"system.profile not readable ({_short(exc)})")
        return []
    return [op for op in (operation_from_profile(d) for d in docs if isinstance(d, Mapping)) if op]


def _log_ops(db: Any, namespace: str, notes: list[str]) -> list[Operation]:
    """Slow queries on ``namespace`` among the server's recent log lines (``getLog: global``)."""
    import json

    try:
        reply = db.client["admin"].command("getLog", "global")
        lines = reply.get("log") if isinstance(reply, Mapping) else None
    except Exception as exc:
        notes.append(f"getLog not available ({_short(exc)})")
        return []
    ops = []
    for ln in lines if isinstance(lines, list) else []:
        try:
            op = operation_from_log(json.loads(ln)) if isinstance(ln, str) else None
        except ValueError:
            continue
        if op is not None and op.namespace == namespace:
            ops.append(op)
    return ops


def live_shapes(report: LiveReport):  # -> pandas.DataFrame
    """The digest of the run's profiler and log operations (empty frame when none)."""
    return digest(report.profile_operations + report.log_operations)
