"""Live mode: the commands it sends (recorded with a mock server), and the fallback to files mode.

No MongoDB server can run here. The pymongo calls are checked against a fake server behind a
``unittest.mock`` Database (every ``command`` is recorded); the fallback is exercised against
the embedded store (mongomock), a database whose ``buildInfo`` fails and an unreachable URI.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from unittest import mock

import bson
import mongomock
import pytest
from bson.son import SON
from pymongo.database import Database
from pymongo.errors import OperationFailure

from axon_lab import mongo
from axon_lab.errors import ConfigError
from axon_lab.mongo import live as mongo_live
from axon_lab.mongo.files import find_fixture

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
DOCS = [
    {
        "_id": i,
        "workspaceId": w,
        "tier": t,
        "confidence": c,
        "content": "text " * 40,
        "metadata": {"path": f"m{i}.py", "tags": ["x"]},
    }
    for i, (w, t, c) in enumerate(
        [
            ("test", "workspace", 0.9),
            ("test", "workspace", 0.4),
            ("test", "project", 0.7),
            ("test", "workspace", 0.8),
            ("acme", "global", 0.3),
        ]
    )
]
FLT = {"workspaceId": "test", "tier": "workspace"}


def _explain(indexed: bool) -> dict[str, Any]:
    """A 7.0-shaped executionStats explain of the app query, without or with the index."""
    if indexed:
        ix = {
            "stage": "IXSCAN",
            "keyPattern": {"workspaceId": 1, "tier": 1, "confidence": -1},
            "indexName": "workspace_tier_confidence_idx",
            "direction": "forward",
            "nReturned": 3,
            "keysExamined": 3,
        }
        plan = {
            "stage": "PROJECTION_SIMPLE",
            "nReturned": 3,
            "inputStage": {
                "stage": "LIMIT",
                "limitAmount": 20,
                "nReturned": 3,
                "inputStage": {
                    "stage": "FETCH",
                    "docsExamined": 3,
                    "nReturned": 3,
                    "inputStage": ix,
                },
            },
        }
        stats = (3, 1, 3, 3)
    else:
        plan = {
            "stage": "PROJECTION_SIMPLE",
            "nReturned": 3,
            "inputStage": {
                "stage": "SORT",
                "sortPattern": {"confidence": -1},
                "memLimit": 104857600,
                "limitAmount": 20,
                "type": "simple",
                "totalDataSizeSorted": 2190,
                "usedDisk": False,
                "spills": 0,
                "nReturned": 3,
                "inputStage": {
                    "stage": "COLLSCAN",
                    "direction": "forward",
                    "docsExamined": 5,
                    "nReturned": 3,
                },
            },
        }
        stats = (3, 4, 0, 5)
    n, ms, keys, docs = stats
    return {
        "explainVersion": "1",
        "queryPlanner": {
            "namespace": "axon.contexts",
            "parsedQuery": FLT,
            "winningPlan": plan,
            "rejectedPlans": [],
        },
        "executionStats": {
            "executionSuccess": True,
            "nReturned": n,
            "executionTimeMillis": ms,
            "totalKeysExamined": keys,
            "totalDocsExamined": docs,
            "executionStages": plan,
        },
        "serverInfo": {"host": "db", "port": 27017, "version": "7.0.12"},
        "ok": 1,
    }


class FakeCursor:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs

    def sort(self, spec: Any) -> FakeCursor:
        for key, direction in reversed(list(spec)):
            self.docs.sort(key=lambda d, k=key: d.get(k), reverse=direction == -1)
        return self

    def limit(self, n: int) -> FakeCursor:
        self.docs = self.docs[:n] if n else self.docs
        return self

    def __iter__(self):
        return iter(self.docs)


class FakeCollection:
    def __init__(self, docs: list[dict[str, Any]]) -> None:
        self.docs = docs
        self.inserted: list[dict[str, Any]] = []

    def find(self, flt: dict[str, Any] | None = None, projection: Any = None) -> FakeCursor:
        def match(d: dict[str, Any], k: str, v: Any) -> bool:
            if isinstance(v, dict) and "$gte" in v:
                return d.get(k) is not None and d[k] >= v["$gte"]
            return d.get(k) == v

        out = [d for d in self.docs if all(match(d, k, v) for k, v in (flt or {}).items())]
        if projection:
            keep = {"_id", *[k for k, v in projection.items() if v]}
            out = [{k: v for k, v in d.items() if k in keep} for d in out]
        return FakeCursor(out)

    def insert_many(self, docs: list[dict[str, Any]]) -> None:
        self.inserted += docs
        self.docs += docs


class FakeServer:
    """Answers commands like a MongoDB 7.0 replica-set member and records them."""

    def __init__(self, docs=None, indexes=None, fail_on: str | None = None) -> None:
        self.contexts = FakeCollection(list(DOCS if docs is None else docs))
        self.indexes = [{"v": 2, "key": {"_id": 1}, "name": "_id_"}, *(indexes or [])]
        self.level = {"was": 0, "slowms": 100, "sampleRate": 1.0}
        self.fail_on = fail_on
        self.explains = 0
        profile_doc = {
            "op": "query",
            "ns": "axon.contexts",
            "command": {"find": "contexts", "filter": FLT, "sort": {"confidence": -1}, "limit": 20},
            "keysExamined": 0,
            "docsExamined": 5,
            "nreturned": 3,
            "millis": 120,
            "planSummary": "COLLSCAN",
            "hasSortStage": True,
            "ts": NOW,
        }
        self.profile = FakeCollection([profile_doc])

    def command(self, name: Any, value: Any = 1, **kw: Any) -> dict[str, Any]:
        if name == self.fail_on:
            raise OperationFailure(f"{name} failed on purpose")
        if name == "buildInfo":
            return {"version": "7.0.12", "ok": 1}
        if name == "hello":
            return {"isWritablePrimary": True, "setName": "rs0", "localTime": NOW, "ok": 1}
        if name == "profile":
            prev = dict(self.level)
            if value != -1:
                self.level = {"was": value, "slowms": kw.get("slowms", 100), "sampleRate": 1.0}
            return {**prev, "ok": 1}
        if name == "count":
            return {"n": len(self.contexts.docs), "ok": 1}
        if name == "aggregate":
            if kw["pipeline"] == [{"$indexStats": {}}]:
                batch = [
                    {
                        "name": ix["name"],
                        "key": ix["key"],
                        "host": "db:27017",
                        "accesses": {"ops": 1, "since": NOW},
                    }
                    for ix in self.indexes
                ]
            else:
                batch = [
                    {"_id": {"w": "test", "t": "workspace"}, "n": 3},
                    {"_id": {"w": "test", "t": "project"}, "n": 1},
                ]
            return {"cursor": {"firstBatch": batch, "id": 0}, "ok": 1}
        if name == "listIndexes":
            return {"cursor": {"firstBatch": list(self.indexes), "id": 0}, "ok": 1}
        if name == "explain":
            self.explains += 1
            indexed = any("workspaceId" in ix["key"] for ix in self.indexes) and "hint" not in value
            return _explain(indexed)
        if name == "createIndexes":
            self.indexes.append({"v": 2, **kw["indexes"][0]})
            return {"createdCollectionAutomatically": False, "ok": 1}
        if name == "dropIndexes":
            self.indexes = [ix for ix in self.indexes if ix["name"] != kw["index"]]
            return {"ok": 1}
        if name == "ping":
            return {"ok": 1}
        raise OperationFailure(f"no such command: {name}")

    def admin_command(self, name: Any, value: Any = 1, **kw: Any) -> dict[str, Any]:
        if name == "getLog":
            lines = find_fixture("slowlog_datadog_getLog_v6plus.log").read_text().splitlines()
            lines.append(
                '{"t":{"$date":"2026-01-01T00:00:00.000+00:00"},"s":"I","c":"COMMAND",'
                '"id":51803,"ctx":"conn1","msg":"Slow query","attr":{"type":"command",'
                '"ns":"axon.contexts","command":{"find":"contexts","filter":{"workspaceId":'
                '"test","tier":"workspace"},"sort":{"confidence":-1},"limit":20},'
                '"planSummary":"COLLSCAN","keysExamined":0,"docsExamined":5,'
                '"hasSortStage":true,"nreturned":3,"durationMillis":130}}'
            )
            return {"totalLinesWritten": len(lines), "log": lines, "ok": 1}
        raise OperationFailure(f"no such admin command: {name}")


def fake_db(server: FakeServer) -> mock.MagicMock:
    """A pymongo ``Database`` mock whose every command goes to ``server`` and is recorded."""
    db = mock.MagicMock(spec=Database)
    db.name = "axon"
    db.command.side_effect = server.command
    colls = {"contexts": server.contexts, "system.profile": server.profile}
    db.__getitem__.side_effect = lambda name: colls[name]
    admin = mock.MagicMock()
    admin.command.side_effect = server.admin_command
    db.client = mock.MagicMock()
    db.client.__getitem__.side_effect = lambda name: {"admin": admin}[name]
    return db


def sent(db: mock.MagicMock) -> list[tuple[Any, Any, dict[str, Any]]]:
    """The commands sent, as ``(name, value, options)``."""
    out = []
    for c in db.command.call_args_list:
        args = list(c.args) + [1]
        out.append((args[0], args[1], dict(c.kwargs)))
    return out


def test_live_session_sends_the_guides_commands_in_order():
    server = FakeServer()
    db = fake_db(server)
    target = mongo.connect(db)
    assert target.live and target.server_version == "7.0.12" and target.topology == "replica set"
    rep = mongo.run_live(target, repeats=2)
    assert rep.ran, rep.notes
    names = [n for n, _, _ in sent(db)]
    assert names == [
        "buildInfo",
        "hello",
        "hello",
        "profile",
        "profile",
        "count",
        "aggregate",
        "listIndexes",
        "explain",
        "explain",
        "createIndexes",
        "explain",
        "explain",
        "aggregate",
        "dropIndexes",
        "profile",
    ]
    calls = sent(db)
    assert calls[3][:2] == ("profile", -1)
    assert calls[4] == (
        "profile",
        2,
        {"slowms": 100},
    )  # the guide's setProfilingLevel(2, {slowms: 100})
    explain = calls[8]
    assert explain[1] == {
        "find": "contexts",
        "filter": FLT,
        "sort": {"confidence": -1},
        "projection": mongo_live.APP_PROJECTION,
        "limit": 20,
    }
    assert explain[2] == {"verbosity": "executionStats"}
    assert calls[9][1] == {
        "find": "contexts",
        "filter": {"workspaceId": "test"},
        "projection": mongo_live.APP_PROJECTION,
    }  # the guide's second query
    assert calls[12][1] == calls[9][1]
    create = calls[10]
    assert create[1] == "contexts"
    (spec,) = create[2]["indexes"]
    assert isinstance(spec["key"], SON)
    assert list(spec["key"].items()) == [("workspaceId", 1), ("tier", 1), ("confidence", -1)]
    assert spec["name"] == "workspace_tier_confidence_idx"
    assert calls[14] == ("dropIndexes", "contexts", {"index": "workspace_tier_confidence_idx"})
    assert calls[15] == ("profile", 0, {"slowms": 100})  # restored
    assert server.level["was"] == 0 and rep.profiling["restored"]
    # What was measured.
    assert (rep.workspace_id, rep.tier, rep.documents) == ("test", "workspace", 5)
    assert len(rep.query_runs_ms) == 2
    ba = rep.before_after()
    assert ba.phase.tolist() == ["before", "after", "workspace before", "workspace after"]
    assert ba.collscan.tolist()[:2] == [True, False] and ba.in_memory_sort.tolist()[:2] == [
        True,
        False,
    ]
    assert ba.docs_examined.tolist()[:2] == [5, 3] and ba.keys_examined.tolist()[:2] == [0, 3]
    assert rep.after.indexes_used == ["workspace_tier_confidence_idx"]
    assert rep.before.sort_memory_bytes == 2190 and rep.before.sort_used_disk is False
    assert rep.index_created == "workspace_tier_confidence_idx" and rep.index_dropped
    # Projection bytes are the BSON sizes of what came back.
    docs = [d for d in DOCS if d["workspaceId"] == "test"]
    proj = [{k: d[k] for k in ("_id", "content", "metadata", "confidence")} for d in docs]
    assert rep.projection["documents"] == 4
    assert rep.projection["full_bytes"] == sum(len(bson.encode(d)) for d in docs)
    assert rep.projection["projected_bytes"] == sum(len(bson.encode(d)) for d in proj)
    assert 0 < rep.projection["saved_fraction"] < 1
    # Profiler and getLog: only this namespace.
    (prof,) = rep.profile_operations
    assert (prof.namespace, prof.pattern, prof.duration_ms) == (
        "axon.contexts",
        '{"tier": 1, "workspaceId": 1}',
        120,
    )
    assert [o.duration_ms for o in rep.log_operations] == [130]
    shapes = mongo.live_shapes(rep)
    assert set(shapes.source) == {"profile", "log"}
    assert set(shapes.advised_index) == {"{ workspaceId: 1, tier: 1, confidence: -1 }"}
    assert [ix["name"] for ix in rep.index_stats] == ["_id_", "workspace_tier_confidence_idx"]
    assert rep.pools is None and any("pool comparison needs a URI" in n for n in rep.notes)


def test_an_index_that_already_serves_is_bypassed_with_a_natural_hint_not_recreated():
    server = FakeServer(
        indexes=[
            {
                "key": {"workspaceId": 1, "tier": 1, "confidence": -1},
                "name": "workspace_tier_confidence_idx",
            }
        ]
    )
    db = fake_db(server)
    rep = mongo.run_live(mongo.connect(db))
    explains = [c for c in sent(db) if c[0] == "explain"]
    assert [("hint" in e[1]) for e in explains] == [True, True, False, False]
    assert explains[0][1]["hint"] == {"$natural": 1}
    assert not [c for c in sent(db) if c[0] in ("createIndexes", "dropIndexes")]
    assert rep.advice.served_by == "workspace_tier_confidence_idx" and rep.index_created is None
    assert rep.before.collscan and not rep.after.collscan
    assert any("hint $natural" in n for n in rep.notes)


def test_keep_index_leaves_the_index():
    db = fake_db(server := FakeServer())
    rep = mongo.run_live(mongo.connect(db), keep_index=True)
    assert rep.index_created and not rep.index_dropped
    assert "workspace_tier_confidence_idx" in [ix["name"] for ix in server.indexes]


def test_a_failing_step_still_drops_the_index_and_restores_profiling():
    server = FakeServer()
    db = fake_db(server)
    target = mongo.connect(db)
    original = server.command

    def fail_after_explain(name, value=1, **kw):
        if name == "explain" and server.explains == 2:
            raise OperationFailure("explain failed on purpose")
        return original(name, value, **kw)

    db.command.side_effect = fail_after_explain
    with pytest.raises(OperationFailure, match="on purpose"):
        mongo.run_live(target)
    names = [n for n, _, _ in sent(db)]
    assert names[-2:] == ["dropIndexes", "profile"]
    assert server.level["was"] == 0 and [ix["name"] for ix in server.indexes] == ["_id_"]


def test_empty_collection_is_seeded_only_when_asked(monkeypatch):
    server = FakeServer(docs=[])
    rep = mongo.run_live(mongo.connect(fake_db(server)))
    assert not rep.ran and any("is empty; set seed" in n for n in rep.notes)
    assert server.contexts.inserted == [] and server.explains == 0
    monkeypatch.setattr(mongo_live, "seed_documents", mongo_live._synthetic_contexts)
    server = FakeServer(docs=[])
    rep = mongo.run_live(mongo.connect(fake_db(server)), seed=30)
    assert rep.ran and rep.seeded == 30 and len(server.contexts.inserted) == 30
    assert {"workspaceId", "tier", "confidence", "content", "metadata"} <= set(
        server.contexts.inserted[0]
    )


def test_mongos_without_profiler_continues():
    server = FakeServer(fail_on="profile")
    rep = mongo.run_live(mongo.connect(fake_db(server)))
    assert rep.ran and any(
        n.startswith("profiling not available (OperationFailure") for n in rep.notes
    )


# ---- the fallback --------------------------------------------------------------------------


def test_mongomock_client_and_database_fall_back_to_files_mode():
    client = mongomock.MongoClient()
    for obj in (client, client["axon"]):
        t = mongo.connect(obj)
        assert (t.requested_mode, t.mode, t.embedded) == ("live", "files", True)
        assert "mongomock" in t.reason and "not MongoDB" in t.reason
    rep = mongo.run_live(client["axon"])  # never raises
    assert not rep.ran and "mongomock" in rep.notes[0] and rep.before is None


def test_lab_document_store_embedded_is_detected():
    from axon_lab.stack.documents import DocumentStore

    t = mongo.connect(DocumentStore.embedded_store())
    assert t.mode == "files" and t.embedded


def test_empty_uri_without_settings_uses_the_embedded_store(monkeypatch):
    monkeypatch.setattr(mongo_live, "_settings_uri", lambda: "")
    t = mongo.connect("")
    assert t.mode == "files" and t.embedded and "no MongoDB URI" in t.reason
    assert mongo.connect("", mode="files").reason.startswith("files mode requested")
    with pytest.raises(ConfigError, match="unknown mode 'both'; valid: live, files"):
        mongo.connect("", mode="both")


def test_server_failing_buildinfo_falls_back():
    db = mock.MagicMock(spec=Database)
    db.name = "axon"
    db.command.side_effect = OperationFailure("no such command: 'buildInfo'")
    t = mongo.connect(db)
    assert t.mode == "files" and not t.embedded
    assert "failed buildInfo (OperationFailure: no such command" in t.reason


def test_unreachable_uri_falls_back_and_never_shows_the_password():
    t = mongo.connect("mongodb://axon:s3cret-pw@127.0.0.1:1/axon", timeout_ms=150)
    assert t.mode == "files" and "failed buildInfo" in t.reason
    assert t.uri == "mongodb://axon:***@127.0.0.1:1/axon"
    for text in (t.reason, t.uri, repr(t), str(t.to_dict())):
        assert "s3cret-pw" not in text
    bad = mongo.connect("not-a-uri://x", timeout_ms=150)
    assert bad.mode == "files" and "cannot use the MongoDB URI" in bad.reason


def test_analyze_falls_back_to_recorded_files():
    a = mongo.analyze(
        mongo.connect(mongomock.MongoClient()), fixtures_dir=str(find_fixture("README.md").parent)
    )
    assert a.mode == "files" and a.notes[0].startswith(
        "Offline mode: the embedded store (mongomock) is not MongoDB"
    )
    v = a.verdict()
    assert v["status"] == "info" and v["summary"].startswith(
        "offline (embedded store, not MongoDB)"
    )
    assert len(a.plans) >= 7 and a.tree_plan is not None
    assert a.before_after.phase.tolist()[0] == "v3.2.5_find_in_memory_sort_skip_limit"
    assert a.shapes.total_ms.is_monotonic_decreasing
    assert a.advice.key_text == "{ workspaceId: 1, tier: 1, confidence: -1 }"
    assert set(a.frames()) == {"plans", "before_after", "shapes", "indexes"}
    r = a.results()
    assert r["mode"] == "files" and r["target"]["embedded"] and r["live"] is None
    assert r["counts"]["plans"] == len(a.plans)


def test_analyze_live_against_the_fake_server():
    a = mongo.analyze(mongo.connect(fake_db(FakeServer())), smoke=True)
    assert a.mode == "live" and [s.source for s in a.plans] == [
        "live contexts: before",
        "live contexts: after",
        "live contexts: workspace before",
        "live contexts: workspace after",
    ]
    assert a.tree_plan is a.live.before and a.before_after.phase.tolist()[:2] == ["before", "after"]
    assert a.verdict()["status"] == "pass"
    assert "COLLSCAN → IXSCAN { workspaceId: 1, tier: 1, confidence: -1 }" in a.verdict()["summary"]
    assert a.projection["documents"] == 4 and a.pools is None
    assert a.results()["live"]["index_created"] == "workspace_tier_confidence_idx"


# ---- measurements that work on any pymongo-compatible collection ---------------------------


def test_projection_bytes_on_the_embedded_store():
    coll = mongomock.MongoClient()["axon"]["contexts"]
    coll.insert_many([dict(d) for d in DOCS])
    m = mongo.measure_projection(coll, {"workspaceId": "test"}, {"confidence": 1})
    assert m["documents"] == 4
    assert m["projected_bytes"] == sum(
        len(bson.encode({"_id": d["_id"], "confidence": d["confidence"]}))
        for d in DOCS
        if d["workspaceId"] == "test"
    )
    assert m["saved_bytes"] == m["full_bytes"] - m["projected_bytes"] > 0


class FakeClient:
    def __init__(self, **kw: Any) -> None:
        self.kw = kw
        self.closed = False
        self.db = mock.MagicMock()
        self.db.__getitem__.return_value = FakeCollection(list(DOCS))

    def __getitem__(self, name: str) -> Any:
        return self.db

    def close(self) -> None:
        self.closed = True


def test_pool_comparison_opens_one_client_per_setting():
    made: list[FakeClient] = []

    def factory(**kw: Any) -> FakeClient:
        made.append(FakeClient(**kw))
        return made[-1]

    q = {
        "filter": FLT,
        "sort": {"confidence": -1},
        "limit": 20,
        "projection": mongo_live.APP_PROJECTION,
    }
    f = mongo.compare_pools(factory, "axon", "contexts", q, threads=4, queries=24, warm_s=0)
    assert [(c.kw["maxPoolSize"], c.kw["minPoolSize"]) for c in made] == [(10, 0), (50, 10)]
    assert all(len(c.kw["event_listeners"]) == 1 and c.closed for c in made)
    assert f.max_pool_size.tolist() == [10, 50] and f.errors.tolist() == [0, 0]
    assert (f.queries == 24).all() and (f.qps > 0).all() and (f.p95_ms >= f.p50_ms).all()
