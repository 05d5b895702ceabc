"""Slow-query log and ``system.profile`` digests (query shapes sorted by total time)."""

from __future__ import annotations

import gzip
import json

import pytest

from axon_lab import mongo
from axon_lab.errors import ConfigError, InputFileError
from axon_lab.mongo.files import find_fixture, read_documents
from axon_lab.mongo.workload import operation_from_profile


def shapes(frame):
    return {(r.namespace, r.operation, r.pattern, r.sort): r for r in frame.itertuples()}


def test_datadog_log_two_finds_form_one_shape_with_esr_advice():
    read = mongo.read_slow_log(find_fixture("slowlog_datadog_getLog_v6plus.log"))
    assert (read.lines, read.json_lines, len(read.operations), read.skipped) == (3, 3, 3, 0)
    ops = read.operations
    assert [o.operation for o in ops] == ["update", "find", "find"]
    assert [o.duration_ms for o in ops] == [11, 12, 14]
    f = mongo.digest(ops)
    assert f.total_ms.tolist() == [26.0, 11.0]  # sorted by total time
    find = f.iloc[0]
    assert (find.namespace, find.operation, find.pattern, find.sort) == (
        "test.customers",
        "find",
        '{"subscribed": 1}',
        '{"name": 1}',
    )
    assert (find["count"], find.min_ms, find.mean_ms, find.max_ms) == (2, 12, 13, 14)
    assert find.p95_ms == pytest.approx(13.9)  # linear interpolation between 12 and 14
    assert (find.docs_examined, find.keys_examined, find.n_returned) == (540 + 612, 1152, 101 + 0)
    assert find.plan_summary == "IXSCAN { name: 1 }"
    # IXSCAN {name: 1} sorts but does not filter: ESR puts the equality first.
    assert find.advised_index == "{ subscribed: 1, name: 1 }"
    upd = f.iloc[1]
    assert (upd.operation, upd.pattern, upd.docs_examined, upd.n_returned) == (
        "update",
        '{"age": {"$gt": 1}}',
        487,
        487,
    )
    assert upd.advised_index == ""  # one document examined per document matched: fine


def test_hatchet_log_shapes():
    read = mongo.read_slow_log(find_fixture("slowlog_v6.0.11_and_v6.0.14_hatchet.log"))
    assert len(read.operations) == 6
    f = mongo.digest(read.operations)
    assert f.total_ms.tolist() == [268, 221, 90, 89, 1, 0]
    s = shapes(f)
    collscan = s[("testdb.vehicles", "find", "{}", "")]
    assert (
        collscan.collscan and collscan.plan_summary == "COLLSCAN" and collscan.advised_index == ""
    )
    covered = s[("testdb.vehicles", "find", '{"color": 1}', '{"brand": -1}')]
    assert covered.docs_examined == 0 and covered.keys_examined == 101 and covered.n_returned == 101
    assert covered.plan_summary == "IXSCAN { color: 1, brand: 1 }" and not covered.in_memory_sort
    remove = s[("testdb.__examples", "remove", '{"email": 1}', "")]
    assert remove.n_returned == 1 and remove.total_ms == 221  # ndeleted counts as returned
    distinct = s[("testdb.vehicles", "distinct", "{}", "")]
    assert distinct.plan_summary == "DISTINCT_SCAN { color: 1 }"
    keys = s[
        ("admin.system.keys", "find", '{"expiresAt": {"$gt": 1}, "purpose": 1}', '{"expiresAt": 1}')
    ]
    assert keys.in_memory_sort and keys.collscan
    assert keys.advised_index == ""  # internal collection: no advice
    ts = s[("testdb.system.buckets.ts_seconds", "update", '{"_id": 1}', "")]
    assert ts.plan_summary == "CLUSTERED_IXSCAN"


def test_profiler_documents():
    ops = mongo.read_profile(find_fixture("profile_system.profile_datadog_v6plus.json"))
    assert [(o.operation, o.duration_ms) for o in ops] == [
        ("update", 10),
        ("find", 85),
        ("update", 21),
        ("find", 14),
    ]
    assert [o.has_sort_stage for o in ops] == [False, False, False, True]
    f = mongo.digest(ops)
    assert f.source.tolist() == ["profile", "profile"]
    find, upd = f.iloc[0], f.iloc[1]
    assert (find.operation, find["count"], find.total_ms, find.max_ms) == ("find", 2, 99, 85)
    assert (find.docs_examined, find.n_returned) == (417 + 456, 0)
    assert find.in_memory_sort and find.plan_summary == "IXSCAN { name: 1 }"
    assert find.advised_index == "{ name: 1, age: 1 }"  # sort first, range last
    assert (upd.operation, upd["count"], upd.total_ms, upd.docs_examined, upd.n_returned) == (
        "update",
        2,
        31,
        431 + 416,
        431 + 416,
    )


def test_profiling_status():
    doc = read_documents(find_fixture("profile_status_datadog.json"))[0]
    st = mongo.profiling_status(doc)
    assert (st["level"], st["slowms"], st["sample_rate"]) == (1, 100, 1)
    assert st["text"] == "level 1: operations slower than 100 ms are profiled (sample rate 1)"
    with pytest.raises(InputFileError, match="is a profiling status"):
        mongo.read_profile(find_fixture("profile_status_datadog.json"))


def test_filter_shapes():
    assert mongo.filter_shape({"b": "x", "a": {"$in": [1, 2]}}) == {"a": {"$in": 1}, "b": 1}
    assert mongo.filter_shape({"$or": [{"a": 1}, {"b": {"$gt": 2}}]}) == {
        "$or": [{"a": 1}, {"b": {"$gt": 1}}]
    }
    assert mongo.filter_shape({"_id": {"$oid": "65f7"}, "d": {"$date": "2024"}}) == {
        "_id": 1,
        "d": 1,
    }
    assert mongo.filter_shape({"e": {"$elemMatch": {"x": 1, "y": {"$lt": 3}}}}) == {
        "e": {"$elemMatch": {"x": 1, "y": {"$lt": 1}}}
    }


def test_gzip_logs_and_other_lines(tmp_path):
    src = find_fixture("slowlog_datadog_getLog_v6plus.log").read_text()
    gz = tmp_path / "mongod.log.gz"
    gz.write_bytes(gzip.compress(("banner line\n" + src).encode()))
    read = mongo.read_slow_log(gz)
    assert (read.lines, read.json_lines, read.skipped, len(read.operations)) == (4, 3, 1, 3)
    text = tmp_path / "mongod-4.2.log"
    text.write_text(
        '2020-01-01T00:00:00.000+0000 I COMMAND [conn1] command test.c command: find { find: "c" } 120ms\n'
    )
    with pytest.raises(
        InputFileError, match=r"mongod-4.2.log: no JSON log lines: .*4.4\+ structured logs"
    ):
        mongo.read_slow_log(text)
    with pytest.raises(InputFileError, match="no system.profile documents"):
        mongo.read_profile(find_fixture("indexStats_datadog_foo.json"))


def test_empty_digest_has_the_columns():
    f = mongo.digest([])
    assert list(f.columns) == list(mongo.DIGEST_COLUMNS) and f.empty


# ---- issue 16: other commands, internal-thread lines, skipped lines -----------------------

ATLAS_LOG = "slowlog_atlas_v8.0.28_node_atlascli.log.gz"
INDEX_BUILDS = "slowlog_v6.0.14_hatchet_index_builds.log"


def hand_count(path) -> dict[tuple[str, str], list[float]]:
    """Slow-query lines counted by hand: json per line, msg "Slow query", by command name,
    lines of internal threads (attr.type "none") left out.
    """
    out: dict[tuple[str, str], list[float]] = {}
    for ln in gzip.open(path, "rt") if str(path).endswith(".gz") else open(path):
        d = json.loads(ln)
        if d.get("msg") == "Slow query" and d["attr"].get("type") != "none":
            a = d["attr"]
            op = a["type"] if a["type"] != "command" else next(iter(a["command"]))
            out.setdefault((a["ns"], op), []).append(a["durationMillis"])
    return out


def test_atlas_node_log_matches_a_hand_count():
    path = find_fixture(ATLAS_LOG)
    read = mongo.read_slow_log(path)
    assert (read.lines, read.json_lines, read.skipped, read.truncated) == (4014, 4014, 0, False)
    assert (len(read.operations), read.queries, read.commands, read.internal) == (2, 0, 2, 0)
    counted = hand_count(path)
    assert counted == {
        ("admin.$cmd", "replSetInitiate"): [406],
        ("admin.$cmd", "createUser"): [820],
    }
    assert mongo.digest(read.operations).empty  # no query shape on this node
    cmds = mongo.digest(read.operations, kind="commands")
    assert [(r.namespace, r.operation, r.count, r.total_ms) for r in cmds.itertuples()] == [
        ("admin.$cmd", "createUser", 1, 820.0),
        ("admin.$cmd", "replSetInitiate", 1, 406.0),
    ]
    assert {(r.namespace, r.operation): [r.total_ms] for r in cmds.itertuples()} == counted


def test_index_builds_are_not_counted_twice_and_commands_are_apart():
    path = find_fixture(INDEX_BUILDS)
    read = mongo.read_slow_log(path)
    assert (len(read.operations), read.queries, read.commands, read.internal) == (32, 9, 19, 4)
    assert "none" not in {o.operation for o in read.operations}
    shapes = mongo.digest(read.operations)
    assert set(shapes.operation) == {"find", "count"} and shapes["count"].sum() == 9
    cmds = mongo.digest(read.operations, kind="commands")
    by_op = {r.operation: r for r in cmds.itertuples()}
    assert set(by_op) == {"createIndexes", "voteCommitIndexBuild", "hello"}
    # Four builds, four createIndexes: the index-build thread's lines are the same operations.
    assert (by_op["createIndexes"].count, by_op["createIndexes"].total_ms) == (
        4,
        787 + 895 + 849 + 789,
    )
    assert cmds.total_ms.tolist() == sorted(cmds.total_ms, reverse=True)
    # Every operation once, as a hand count of the command lines gives it.
    got: dict[tuple[str, str], tuple[int, float]] = {}
    for r in mongo.digest(read.operations, kind="all").itertuples():
        n, t = got.get((r.namespace, r.operation), (0, 0.0))
        got[(r.namespace, r.operation)] = (n + r.count, t + r.total_ms)
    assert got == {k: (len(v), sum(v)) for k, v in hand_count(path).items()}
    # Where no command line exists (an index build on a secondary), the build is counted once.
    builds = [o for o in read.operations if o.internal]
    alone = mongo.digest(builds, kind="commands")
    assert [(r.operation, r.count, r.total_ms) for r in alone.itertuples()] == [
        ("createIndexes", 4, 310 + 298 + 229 + 203)
    ]
    with pytest.raises(ConfigError, match="unknown digest kind 'nope'"):
        mongo.digest(read.operations, kind="nope")


def test_cut_and_mixed_logs_count_what_they_skip(tmp_path):
    lines = find_fixture("slowlog_datadog_getLog_v6plus.log").read_text().splitlines()
    cut = tmp_path / "cut.log"
    cut.write_text("\n".join(lines[:2] + [lines[2][: len(lines[2]) // 2]]))  # cut mid-line
    read = mongo.read_slow_log(cut)
    assert (read.lines, read.json_lines, read.malformed, read.text_lines) == (3, 2, 1, 0)
    assert len(read.operations) == 2
    assert read.skipped_text() == "skipped 1 of 3 lines (1 cut or malformed JSON)"
    mixed = tmp_path / "mixed.log"
    mixed.write_text(
        "\n".join(
            [
                "2020-01-01T00:00:00.000+0000 I COMMAND [conn1] command test.c 120ms",
                *lines,
                lines[0][:40],
            ]
        )
    )
    read = mongo.read_slow_log(mixed)
    assert (read.lines, read.skipped, read.text_lines, read.malformed) == (5, 2, 1, 1)
    assert read.skipped_text() == "skipped 2 of 5 lines (1 not JSON, 1 cut or malformed JSON)"
    # A gzip download cut short: the lines before the cut are read, the cut is said.
    raw = find_fixture(ATLAS_LOG).read_bytes()
    part = tmp_path / "cut.log.gz"
    part.write_bytes(raw[: len(raw) // 2])
    read = mongo.read_slow_log(part)
    assert read.truncated and 0 < read.lines < 4014 and read.malformed <= 1
    assert "gzip data cut short" in read.skipped_text()
    with pytest.raises(InputFileError, match="gzip data is cut short"):
        read_documents(part)


# ---- 3.x profiler documents ---------------------------------------------------------------
# No permissively licensed recording of 3.4/3.6 ``system.profile`` documents was found (see the
# fixtures' README, "Gaps"): these are written by hand in the documented 3.4/3.6 layout (the
# command under ``query``, ``op: "query"``, no ``planSummary``, ``execStats`` only), as
# ``mongoexport`` prints them (Extended JSON wrappers).


def _n(v: int) -> dict:
    return {"$numberInt": str(v)}


LEGACY_PROFILE = [
    {  # 3.4 find: op "query", the find command under "query"
        "op": "query",
        "ns": "shop.orders",
        "query": {"find": "orders", "filter": {"status": "A"}},
        "keysExamined": _n(12),
        "docsExamined": _n(12),
        "nreturned": _n(12),
        "millis": _n(42),
        "execStats": {
            "stage": "FETCH",
            "inputStage": {"stage": "IXSCAN", "keyPattern": {"status": _n(1)}},
        },
        "ts": {"$date": "2018-02-01T10:00:00.000Z"},
    },
    {  # 3.4 find with an in-memory sort at the root of execStats
        "op": "query",
        "ns": "shop.orders",
        "query": {"find": "orders", "filter": {"cust": "x"}, "sort": {"total": _n(-1)}},
        "docsExamined": _n(5000),
        "keysExamined": _n(0),
        "nreturned": _n(3),
        "millis": _n(120),
        "execStats": {
            "stage": "SORT",
            "inputStage": {"stage": "SORT_KEY_GENERATOR", "inputStage": {"stage": "COLLSCAN"}},
        },
    },
    {  # 3.4 count: op "command", COUNT over COLLSCAN
        "op": "command",
        "ns": "shop.orders",
        "command": {"count": "orders", "query": {"total": {"$gt": _n(100)}}},
        "docsExamined": _n(5000),
        "millis": _n(30),
        "execStats": {"stage": "COUNT", "inputStage": {"stage": "COLLSCAN"}},
    },
    {  # 3.4 update: the filter under "query", the update under "updateobj"
        "op": "update",
        "ns": "shop.orders",
        "query": {"_id": {"$oid": "5a72e2b0c3a1e2d4f5a6b7c8"}},
        "updateobj": {"$set": {"status": "B"}},
        "keysExamined": _n(1),
        "docsExamined": _n(1),
        "nMatched": _n(1),
        "millis": _n(2),
    },
    {  # 3.6 getmore: the originating find names the shape and the sort
        "op": "getmore",
        "ns": "shop.orders",
        "command": {"getMore": {"$numberLong": "7"}, "collection": "orders"},
        "originatingCommand": {
            "find": "orders",
            "filter": {"cust": "y"},
            "sort": {"total": _n(1)},
        },
        "docsExamined": _n(101),
        "nreturned": _n(101),
        "millis": _n(9),
    },
]


def test_legacy_profiler_documents_read_as_their_newer_form():
    find, srt, cnt, upd, more = (operation_from_profile(d) for d in LEGACY_PROFILE)
    assert (find.operation, find.pattern, find.plan_summary) == (
        "find",
        '{"status": 1}',
        "IXSCAN { status: 1 }",
    )
    assert (find.docs_examined, find.keys_examined, find.n_returned, find.duration_ms) == (
        12,
        12,
        12,
        42.0,
    )
    assert find.ts == "2018-02-01T10:00:00.000Z"
    assert (srt.pattern, srt.sort, srt.plan_summary, srt.has_sort_stage) == (
        '{"cust": 1}',
        '{"total": -1}',
        "COLLSCAN",
        True,
    )
    assert (cnt.operation, cnt.pattern, cnt.plan_summary) == (
        "count",
        '{"total": {"$gt": 1}}',
        "COLLSCAN",
    )
    assert (upd.operation, upd.pattern, upd.n_returned) == ("update", '{"_id": 1}', 1)
    assert (more.operation, more.pattern, more.sort) == ("getMore", '{"cust": 1}', '{"total": 1}')
    f = mongo.digest([find, srt, cnt, upd, more])
    assert "$number" not in f.to_json() and "$oid" not in f.to_json()  # plain in every shape
    count = f[f.operation == "count"].iloc[0]
    assert count.collscan and count.advised_index == "{ total: 1 }"
    assert f[(f.operation == "find") & (f.sort != "")].iloc[0].in_memory_sort
