"""Slow-query log and ``system.profile`` digests (query shapes sorted by total time)."""

from __future__ import annotations

import gzip

import pytest

from axon_lab import mongo
from axon_lab.errors import InputFileError
from axon_lab.mongo.files import find_fixture, read_documents


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
