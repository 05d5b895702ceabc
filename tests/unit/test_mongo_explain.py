"""Explain parsing: the facts each recorded explain shows, and errors for what is not an explain."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bson.int64 import Int64
from support.mongo_fixtures import load

from axon_lab import mongo
from axon_lab.errors import InputFileError
from axon_lab.mongo.files import SHARED_FIXTURES, find_fixture, repo_root

SHARED = repo_root() / SHARED_FIXTURES


def stages(s: mongo.ExplainSummary) -> list[str]:
    return [n.stage for n in s.tree.walk()]


# What each recorded file shows (read from the files themselves; see SOURCES.md).
FACTS = {
    "v3.2.3_find_collscan.json": dict(
        command="find",
        server_version="3.2.3",
        engine="classic",
        collscan=True,
        ixscan=False,
        indexes_used=[],
        in_memory_sort=False,
        covered=False,
        sharded=False,
        n_returned=1_000_000,
        docs_examined=1_000_000,
        keys_examined=0,
        execution_time_ms=188,
        selectivity=1.0,
        plan_summary="COLLSCAN",
    ),
    "v3.2.5_find_covered_ixscan_projection.json": dict(
        server_version="3.2.5",
        collscan=False,
        ixscan=True,
        indexes_used=["age_1"],
        covered=True,
        in_memory_sort=False,
        n_returned=191_665,
        docs_examined=0,
        keys_examined=191_665,
        execution_time_ms=118,
        plan_summary="IXSCAN { age: 1 }",
    ),
    "v3.2.5_find_in_memory_sort_skip_limit.json": dict(
        in_memory_sort=True,
        sort_memory_bytes=12416,
        sort_used_disk=None,
        covered=False,
        indexes_used=["age_1"],
        n_returned=9,
        docs_examined=191_665,
        keys_examined=191_665,
        execution_time_ms=495,
    ),
    "v3.2.5_find_ixscan_fetch.json": dict(
        collscan=False,
        ixscan=True,
        covered=False,
        in_memory_sort=False,
        n_returned=191_665,
        docs_examined=191_665,
        keys_examined=191_665,
        execution_time_ms=135,
        selectivity=1.0,
    ),
    "v3.2.6_sharded_shard_merge_collscan_and_ixscan.json": dict(
        server_version="3.2.6",
        sharded=True,
        shard_merge="SHARD_MERGE",
        n_shards=3,
        collscan=True,
        ixscan=True,
        indexes_used=["age_1"],
        n_returned=22_528,
        docs_examined=330_552,
        keys_examined=15_485,
        execution_time_ms=260,
    ),
    "v4.2.20_agg_collscan_blocking_sort.json": dict(
        command="aggregate",
        server_version="4.2.20",
        engine="classic",
        collscan=True,
        in_memory_sort=True,
        n_returned=None,
        docs_examined=1_454_504,
        keys_examined=0,
        execution_time_ms=21_317,
        sharded=False,
    ),
    "v4.4.22_agg_out_ixscan_fetch_limit_queryplanner.json": dict(
        command="aggregate",
        verbosity="queryPlanner",
        server_version="4.4.22",
        collscan=False,
        ixscan=True,
        indexes_used=["status_code_1"],
        covered=False,
        n_returned=None,
        docs_examined=None,
        execution_time_ms=None,
    ),
    "v4.9.0-alpha_find_sbe_ixscan_fetch.json": dict(
        engine="sbe",
        server_version="4.9.0-alpha4-346-g16aff18",
        ixscan=True,
        indexes_used=["beds"],
        covered=False,
        n_returned=1432,
        docs_examined=1432,
        keys_examined=1432,
        execution_time_ms=5,
    ),
    "v5.0.0-rc7_find_sbe_collscan_projection.json": dict(
        engine="sbe",
        collscan=True,
        n_returned=1000,
        docs_examined=100_000,
        keys_examined=0,
        execution_time_ms=61,
        selectivity=100.0,
    ),
    "v5.0.3_agg_cursor_collscan_lookup.json": dict(
        command="aggregate",
        engine="classic",
        collscan=True,
        in_memory_sort=False,
        n_returned=20,
        docs_examined=100,
        execution_time_ms=5,
    ),
    "v5.0.8_find_collscan.json": dict(
        engine="classic", collscan=True, n_returned=6048, docs_examined=6048, execution_time_ms=4
    ),
    "v5.0.8_sharded_agg_projection_covered_queryplanner.json": dict(
        command="aggregate",
        verbosity="queryPlanner",
        sharded=True,
        n_shards=1,
        covered=True,
        ixscan=True,
        collscan=False,
        indexes_used=["host_id_1"],
        in_memory_sort=True,
        n_returned=None,
    ),
    "v5.3.0-rc3_agg_cursor_sbe_ixscan_fetch.json": dict(
        command="aggregate",
        engine="sbe",
        indexes_used=["abbr_index"],
        n_returned=6,
        docs_examined=6,
        keys_examined=479,
        execution_time_ms=1,
        covered=False,
    ),
    "v5.3.0-rc3_sharded_agg_geonear_group_sort.json": dict(
        sharded=True,
        n_shards=1,
        in_memory_sort=True,
        sort_memory_bytes=103_390,
        sort_used_disk=False,
        sort_spills=0,
        indexes_used=["address_location"],
        collscan=False,
        n_returned=422,
        docs_examined=490,
        keys_examined=719,
        execution_time_ms=12,
    ),
    "v5.3.0-rc3_sharded_agg_sbe_collscan_group.json": dict(
        engine="sbe",
        sharded=True,
        n_shards=1,
        collscan=True,
        n_returned=1,
        docs_examined=121_254,
        keys_examined=0,
        execution_time_ms=90,
    ),
    "v5.3.0-rc3_sharded_find_sbe_single_shard.json": dict(
        engine="sbe",
        sharded=True,
        shard_merge="SINGLE_SHARD",
        n_shards=1,
        collscan=True,
        n_returned=0,
        docs_examined=0,
    ),
    "v6.0.15_find_collscan_regex_docsExamined_gg_nReturned.json": dict(
        server_version="6.0.15",
        collscan=True,
        n_returned=0,
        docs_examined=721,
        execution_time_ms=14,
        selectivity=721.0,
    ),
    "v6.0.15_sharded_shard_merge_sort_index_provided_sort.json": dict(
        sharded=True,
        shard_merge="SHARD_MERGE_SORT",
        n_shards=4,
        in_memory_sort=False,
        ixscan=True,
        indexes_used=["user_id_1"],
        collscan=False,
        covered=False,
        n_returned=51,
        docs_examined=51,
        keys_examined=51,
        execution_time_ms=3,
    ),
    "v7.0.21_agg_cursor_ixscan_fetch_group.json": dict(
        command="aggregate",
        engine="classic",
        indexes_used=["cuisine_-1"],
        in_memory_sort=False,
        n_returned=5,
        docs_examined=43_207,
        keys_examined=43_207,
        execution_time_ms=1028,
        selectivity=1.0,
        verbosity="executionStats",
    ),
    "v7.0.22_find_collscan_low_selectivity.json": dict(
        collscan=True,
        n_returned=759_349,
        docs_examined=998_014,
        execution_time_ms=1233,
        verbosity="executionStats",
    ),
    "v7.3.0-alpha_mongos_unsharded_agg_collscan.json": dict(
        sharded=True,
        n_shards=1,
        collscan=True,
        verbosity="queryPlanner",
        server_version="7.3.0-alpha1-184-gef22b28",
        n_returned=None,
    ),
    "v8.0.0-rc15_agg_count_scan_sbe.json": dict(
        engine="sbe",
        ixscan=True,
        collscan=False,
        indexes_used=["a_1"],
        covered=True,
        n_returned=1,
        docs_examined=0,
        keys_examined=2,
    ),
    "v8.0.0-rc15_find_clustered_ixscan.json": dict(
        engine="classic",
        collscan=False,
        ixscan=True,
        indexes_used=["(clustered)"],
        covered=False,
        n_returned=1,
        docs_examined=2,
        plan_summary="CLUSTERED_IXSCAN",
    ),
    "v8.0.0-rc15_find_express_ixscan.json": dict(
        engine="express",
        ixscan=True,
        indexes_used=["a_1_b_1"],
        covered=False,
        n_returned=1,
        docs_examined=1,
        keys_examined=1,
        plan_summary="EXPRESS_IXSCAN { a: 1, b: 1 }",
    ),
    "vNA_sbe_queryplanner_only.json": dict(
        engine="sbe",
        verbosity="queryPlanner",
        collscan=True,
        server_version=None,
        n_returned=None,
        docs_examined=None,
        selectivity=None,
    ),
    # Added for issue 16 (EPM, in tests/fixtures/mongo): IDHACK.
    "v3.2.5_find_idhack.json": dict(
        command="find",
        server_version="3.2.5",
        engine="classic",
        ixscan=True,
        collscan=False,
        indexes_used=["_id_"],
        covered=False,
        n_returned=0,
        docs_examined=0,
        keys_examined=0,
        plan_summary="IDHACK",
    ),
}


@pytest.mark.parametrize("name", sorted(FACTS))
def test_recorded_explain_facts(name):
    s = load(name)
    for field, expected in FACTS[name].items():
        got = getattr(s, field)
        if isinstance(expected, float):
            assert got == pytest.approx(expected), (name, field)
        else:
            assert got == expected, (name, field, got)
    assert not s.unknown_stages, (name, s.unknown_stages)
    json.dumps(s.to_dict(), default=str)  # serialisable with its stage tree


def test_every_shared_explain_parses_and_is_covered_by_a_fact_test():
    if not SHARED.is_dir():
        pytest.skip("../shared/fixtures/mongo is absent")
    files = sorted(p.name for p in SHARED.glob("v*.json"))
    assert files, "no recorded explain in ../shared/fixtures/mongo"
    # Every explain there (25 at the time of writing; the folder is not ours) has facts here.
    assert not set(files) - set(FACTS), sorted(set(files) - set(FACTS))
    for f in files:
        assert mongo.load_explains(SHARED / f)


def test_in_memory_sort_tree_and_index_provided_sort():
    s = load("v3.2.5_find_in_memory_sort_skip_limit.json")
    assert stages(s) == [
        "SKIP",
        "PROJECTION",
        "SORT",
        "KEEP_MUTATIONS",
        "SORT_KEY_GENERATOR",
        "FETCH",
        "IXSCAN",
    ]
    sort = next(n for n in s.tree.walk() if n.stage == "SORT")
    assert sort.details["sortPattern"] == {"email": -1} and sort.details["memLimit"] == 33554432
    assert "in-memory sort" in s.flags
    # Sharded merge sort: every shard generates sort keys over an index scan; no SORT anywhere.
    m = load("v6.0.15_sharded_shard_merge_sort_index_provided_sort.json")
    assert "SORT" not in stages(m) and stages(m).count("SORT_KEY_GENERATOR") == 4
    assert m.tree.stage == "SHARD_MERGE_SORT"
    assert [c.shard for c in m.tree.children] == ["shard01", "shard02", "shard03", "shard04"]
    assert [c.n_returned for c in m.tree.children] == [16, 12, 9, 14]


def test_sharded_merge_keeps_each_shards_plan():
    s = load("v3.2.6_sharded_shard_merge_collscan_and_ixscan.json")
    by_shard = {c.shard: [n.stage for n in c.walk()] for c in s.tree.children}
    assert by_shard == {
        "shard01": ["SHARDING_FILTER", "COLLSCAN"],
        "shard02": ["SHARDING_FILTER", "FETCH", "IXSCAN"],
        "shard03": ["SHARDING_FILTER", "FETCH", "IXSCAN"],
    }
    collscan = next(n for n in s.tree.walk() if n.stage == "COLLSCAN")
    assert collscan.docs_examined == 315_067 and collscan.shard == "shard01"
    assert s.plan_summary == "COLLSCAN, IXSCAN { age: 1 }"
    assert s.selectivity == pytest.approx(330_552 / 22_528)


def test_sbe_plan_is_the_query_plan_annotated_by_plan_node_id():
    s = load("v4.9.0-alpha_find_sbe_ixscan_fetch.json")
    fetch, ixscan = list(s.tree.walk())
    assert (fetch.stage, ixscan.stage) == ("FETCH", "IXSCAN")
    assert fetch.docs_examined == 1432 and fetch.details["sbe_stages"] == ["nlj", "limit", "seek"]
    assert ixscan.keys_examined == 1432 and ixscan.key_pattern == {"beds": 1}
    c = load("v5.0.0-rc7_find_sbe_collscan_projection.json")
    assert stages(c) == ["PROJECTION_SIMPLE", "COLLSCAN"]
    assert list(c.tree.walk())[1].docs_examined == 100_000


def test_sbe_pushed_down_group_selectivity_uses_documents_reaching_the_group():
    s = load("v5.3.0-rc3_sharded_agg_sbe_collscan_group.json")
    assert stages(s) == ["shards", "$limit", "$cursor", "GROUP", "SHARDING_FILTER", "COLLSCAN"]
    assert s.selectivity == pytest.approx(121_254 / 4083)


def test_aggregate_pipeline_is_a_chain_over_the_cursor():
    s = load("v4.2.20_agg_collscan_blocking_sort.json")
    assert stages(s) == ["$sort", "$cursor", "COLLSCAN"]
    assert s.tree.details["spec"] == {"sortKey": {"name": -1}, "limit": 100}
    g = load("v5.3.0-rc3_sharded_agg_geonear_group_sort.json")
    assert stages(g)[:5] == ["shards", "$sort", "$group", "$geoNearCursor", "SHARDING_FILTER"]
    assert stages(g).count("IXSCAN") == 12 and "GEO_NEAR_2DSPHERE" in stages(g)
    count = load("v8.0.0-rc15_agg_count_scan_sbe.json")
    assert stages(count) == ["$project", "$cursor", "GROUP", "COUNT_SCAN"]


def test_queryplanner_only_sharded_covered_projection():
    s = load("v5.0.8_sharded_agg_projection_covered_queryplanner.json")
    assert "PROJECTION_COVERED" in stages(s) and "FETCH" not in stages(s)
    assert s.tree.children[0].shard == "shard1"
    assert "queryPlanner only (no counts)" in s.flags


def _explain(stage_tree, **extra):
    return {
        "queryPlanner": {
            "namespace": "db.c",
            "parsedQuery": {},
            "winningPlan": stage_tree,
            "rejectedPlans": [],
        },
        **extra,
    }


def test_unknown_stages_are_kept_and_named():
    doc = _explain(
        {
            "stage": "FUTURE_STAGE",
            "inputStage": {"stage": "IXSCAN", "indexName": "a_1", "keyPattern": {"a": 1}},
        }
    )
    s = mongo.parse_explain(doc)
    assert stages(s) == ["FUTURE_STAGE", "IXSCAN"]
    assert s.unknown_stages == ["FUTURE_STAGE"] and not s.tree.known
    assert "unknown stages: FUTURE_STAGE" in s.flags
    nameless = mongo.parse_explain(_explain({"inputStage": {"stage": "COLLSCAN"}}))
    assert stages(nameless) == ["(no stage name)", "COLLSCAN"] and nameless.collscan


def test_live_pymongo_values_and_extended_json_numbers():
    doc = _explain(
        {"stage": "COLLSCAN"},
        executionStats={
            "nReturned": Int64(3),
            "totalDocsExamined": {"$numberLong": "300"},
            "totalKeysExamined": 0,
            "executionTimeMillis": 7,
            "executionStages": {"stage": "COLLSCAN"},
        },
        serverInfo={"version": "7.0.2"},
    )
    s = mongo.parse_explain(doc)
    assert (s.n_returned, s.docs_examined, s.selectivity, s.server_version) == (
        3,
        300,
        100.0,
        "7.0.2",
    )
    assert s.verbosity == "executionStats"
    assert s.command == "find"


@pytest.mark.parametrize(
    ("doc", "problem"),
    [
        (
            {"name": "_id_", "key": {"_id": 1}},
            "not an explain document (no queryPlanner, stages or shards; keys: name, key",
        ),
        (
            {"ok": 0, "errmsg": "ns not found"},
            "the server returned an error, not a plan: ns not found",
        ),
        ({"cursor": "BtreeCursor a_1", "nscannedObjects": 3, "n": 1}, "legacy explain format"),
        ("a string", "not an explain document (top level is a str"),
        (
            {"queryPlanner": {"namespace": "a.b"}},
            "malformed explain document (queryPlanner has no winningPlan)",
        ),
    ],
)
def test_not_an_explain_is_a_clear_error(doc, problem):
    with pytest.raises(
        InputFileError,
        match="^<explain document>: " + problem.replace("(", r"\(").replace(")", r"\)"),
    ):
        mongo.parse_explain(doc)


def test_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text("this is not json\n")
    with pytest.raises(InputFileError, match=r"notes.json: not JSON or JSON lines"):
        mongo.load_explains(bad)
    empty = tmp_path / "empty.json"
    empty.write_text("")
    with pytest.raises(InputFileError, match="empty.json: is empty"):
        mongo.load_explains(empty)
    with pytest.raises(InputFileError, match="missing.json: no such file"):
        mongo.load_explains(tmp_path / "missing.json")
    stats = find_fixture("indexStats_datadog_bar.json")
    with pytest.raises(
        InputFileError, match=r"indexStats_datadog_bar.json: not an explain document"
    ):
        mongo.load_explains(stats)


def test_a_file_with_several_explains_gives_one_summary_each(tmp_path):
    docs = [
        json.loads(find_fixture(n).read_text())
        for n in ("v3.2.3_find_collscan.json", "v3.2.5_find_ixscan_fetch.json")
    ]
    many = tmp_path / "two.json"
    many.write_text(json.dumps(docs))
    a, b = mongo.load_explains(many)
    assert (a.collscan, b.collscan) == (True, False)
    assert a.source.endswith("two.json#0") and b.source.endswith("two.json#1")
    lines = tmp_path / "two.jsonl"
    lines.write_text("\n".join(json.dumps(d) for d in docs))
    assert [s.collscan for s in mongo.load_explains(lines)] == [True, False]


def test_frames_and_format_key():
    s = load("v3.2.5_find_in_memory_sort_skip_limit.json")
    f = mongo.summaries_frame([s])
    assert f.loc[0, "source"] == "v3.2.5_find_in_memory_sort_skip_limit"
    assert f.loc[0, "indexes_used"] == "age_1"
    rows = mongo.stage_rows(s)
    assert rows.depth.tolist() == list(range(7)) and rows.stage.iloc[-1] == "IXSCAN"
    assert (
        mongo.format_key({"a": 1, "b": -1.0, "loc": "2dsphere"})
        == '{ a: 1, b: -1, loc: "2dsphere" }'
    )
    assert mongo.format_key([("x", 1)]) == "{ x: 1 }"


def test_classify_recognises_every_kind():
    from axon_lab.mongo.files import classify

    kinds = {
        "v3.2.3_find_collscan.json": "explain",
        "slowlog_datadog_getLog_v6plus.log": "log",
        "profile_system.profile_datadog_v6plus.json": "profile",
        "profile_status_datadog.json": "profile_status",
        "indexStats_datadog_foo.json": "index_stats",
        "README.md": "other",
    }
    for name, kind in kinds.items():
        assert classify(find_fixture(name)) == kind, name
    assert classify(Path("/nonexistent/file.json")) == "other"


def test_idhack_names_the_id_index():
    s = load("v3.2.5_find_idhack.json")
    (node,) = list(s.tree.walk())
    assert (node.stage, node.index_name, node.label) == ("IDHACK", "_id_", "IDHACK _id_")
    assert s.ixscan and s.indexes_used == ["_id_"] and not s.covered


def test_extended_json_is_plain_in_summaries():
    assert mongo.plain({"b": {"$numberInt": "-1"}, "c": [{"$numberLong": "7"}]}) == {
        "b": -1,
        "c": [7],
    }
    assert mongo.plain({"d": {"$numberDouble": "0.5"}, "o": {"$oid": "65f7"}}) == {
        "d": 0.5,
        "o": {"$oid": "65f7"},
    }
    doc = _explain(
        {"stage": "COLLSCAN"}, command={"find": "c", "sort": {"b": {"$numberInt": "-1"}}}
    )
    assert mongo.parse_explain(doc).sort == {"b": -1}
