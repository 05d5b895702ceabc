"""Slow-query log and ``system.profile`` digests (query shapes sorted by total time)."""

from __future__ import annotations

import gzip
import json

import pytest

from axon_lab import mongo
from axon_lab.errors import ConfigError, InputFileError
from axon_lab.mongo.files import SHARED_FIXTURES, find_fixture, read_documents, repo_root


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


# ---- issue 16: other commands, internal-thread lines, skipped lines, legacy profiles -------

SHARED = repo_root() / SHARED_FIXTURES
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


def percona(name: str):
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} lives only in ../shared/fixtures/mongo, which is absent")
    (op,) = mongo.read_profile(path)
    return op


def test_legacy_profiler_documents():
    find = percona("profile_v3.4.12_find_percona.json")  # op "query", command under "query"
    assert (find.operation, find.pattern, find.plan_summary) == ("find", '{"k": 1}', "IXSCAN")
    assert (find.docs_examined, find.keys_examined, find.n_returned, find.duration_ms) == (
        2,
        2,
        2,
        42.0,
    )
    assert find.ts == "2020-01-01T00:00:00+00:00"
    srt = percona("profile_v3.4.12_find_with_sort_percona.json")
    assert (srt.pattern, srt.sort, srt.has_sort_stage) == ('{"c": 1}', '{"b": -1}', True)
    cnt = percona("profile_v3.4.12_count_with_query_percona.json")  # COUNT over COLLSCAN
    assert (cnt.operation, cnt.pattern, cnt.plan_summary) == (
        "count",
        '{"a": {"$gt": 1}}',
        "COLLSCAN",
    )
    upd = percona("profile_v3.4.12_update_percona.json")  # filter under "query"
    assert (upd.operation, upd.pattern) == ("update", '{"a": {"$gte": 1}}')
    more = percona("profile_v3.6.2_getmore_percona.json")
    assert (more.operation, more.pattern, more.sort) == ("getMore", '{"a": {"$gt": 1}}', '{"a": 1}')
    srt36 = percona("profile_v3.6.2_find_with_sort_percona.json")  # 3.6: under "command"
    assert (srt36.pattern, srt36.sort, srt36.has_sort_stage) == ('{"c": 1}', '{"b": -1}', True)
    ops = [
        percona(f"profile_v{v}_{n}_percona.json")
        for v, n in [
            ("3.4.12", "find"),
            ("3.4.12", "find_with_sort"),
            ("3.4.12", "count_with_query"),
            ("3.4.12", "update"),
            ("3.4.12", "distinct"),
            ("3.6.2", "find_with_sort"),
            ("3.6.2", "count_with_query"),
            ("3.6.2", "getmore"),
        ]
    ]
    f = mongo.digest(ops)
    assert "$number" not in f.to_json()  # Extended JSON made plain in every shape
    count = f[f.operation == "count"].iloc[0]
    assert (count["count"], count.collscan, count.advised_index) == (2, True, "{ a: 1 }")
    assert f[(f.operation == "find") & (f.sort != "")].iloc[0].in_memory_sort
