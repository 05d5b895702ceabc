"""``axon-lab mongo explain|log|profile|indexes|advise``: JSON and tables, one-line errors."""

from __future__ import annotations

import json

from axon_lab.cli import main
from axon_lab.mongo.files import find_fixture


def run(capsys, *argv):
    rc = main(["mongo", *argv])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_explain_json_one_summary_per_plan_with_the_fields(capsys):
    files = [
        str(find_fixture(n))
        for n in (
            "v3.2.3_find_collscan.json",
            "v6.0.15_sharded_shard_merge_sort_index_provided_sort.json",
        )
    ]
    rc, out, _ = run(capsys, "explain", *files, "--json")
    assert rc == 0
    a, b = json.loads(out)
    for field in (
        "stage_tree",
        "collscan",
        "ixscan",
        "indexes_used",
        "in_memory_sort",
        "covered",
        "sharded",
        "n_returned",
        "docs_examined",
        "keys_examined",
        "execution_time_ms",
        "selectivity",
        "server_version",
        "engine",
        "sort_memory_bytes",
        "sort_used_disk",
    ):
        assert field in a
    assert (a["collscan"], a["docs_examined"], a["stage_tree"]["stage"]) == (
        True,
        1_000_000,
        "COLLSCAN",
    )
    assert (b["sharded"], b["shard_merge"], b["in_memory_sort"]) == (
        True,
        "SHARD_MERGE_SORT",
        False,
    )
    assert [c["shard"] for c in b["stage_tree"]["children"]] == [
        "shard01",
        "shard02",
        "shard03",
        "shard04",
    ]


def test_explain_table_and_tree(capsys):
    rc, out, _ = run(
        capsys, "explain", str(find_fixture("v3.2.5_find_in_memory_sort_skip_limit.json")), "--tree"
    )
    assert rc == 0
    assert "IXSCAN { age: 1 }" in out and "in-memory sort; examined/returned 21,296" in out
    assert "      SORT returned=29 ms=440" in out


def test_explain_rejects_other_files_with_one_line(capsys):
    rc, out, err = run(capsys, "explain", str(find_fixture("profile_status_datadog.json")))
    assert rc == 1 and out == ""
    assert err.startswith("axon-lab: ") and err.count("\n") == 1
    assert "profile_status_datadog.json: not an explain document" in err


def test_log_json_sorted_by_total(capsys):
    rc, out, _ = run(
        capsys,
        "log",
        str(find_fixture("slowlog_datadog_getLog_v6plus.log")),
        str(find_fixture("slowlog_v6.0.11_and_v6.0.14_hatchet.log")),
        "--json",
    )
    doc = json.loads(out)
    assert rc == 0 and doc["slow_queries"] == 9
    assert [f["slow_queries"] for f in doc["files"]] == [3, 6]
    totals = [s["total_ms"] for s in doc["shapes"]]
    assert totals == sorted(totals, reverse=True) and totals[0] == 268
    find = next(s for s in doc["shapes"] if s["pattern"] == '{"subscribed": 1}')
    assert find["count"] == 2 and find["advised_index"] == "{ subscribed: 1, name: 1 }"
    rc, out, _ = run(
        capsys, "log", str(find_fixture("slowlog_datadog_getLog_v6plus.log")), "--top", "1"
    )
    assert rc == 0 and "test.customers" in out and "update" not in out


def test_log_rejects_a_json_explain(capsys):
    rc, _, err = run(capsys, "log", str(find_fixture("README.md")))
    assert rc == 1 and "README.md: no JSON log lines" in err


def test_profile_documents_and_status(capsys):
    rc, out, _ = run(
        capsys,
        "profile",
        str(find_fixture("profile_system.profile_datadog_v6plus.json")),
        str(find_fixture("profile_status_datadog.json")),
        "--json",
    )
    doc = json.loads(out)
    assert rc == 0 and doc["operations"] == 4
    assert doc["profiling_status"]["level"] == 1 and doc["profiling_status"]["slowms"] == 100
    assert [(s["operation"], s["count"], s["total_ms"]) for s in doc["shapes"]] == [
        ("find", 2, 99),
        ("update", 2, 31),
    ]
    rc, out, _ = run(
        capsys, "profile", str(find_fixture("profile_system.profile_datadog_v6plus.json"))
    )
    assert rc == 0 and "integration.customers" in out and "{ name: 1, age: 1 }" in out


def test_indexes(capsys, tmp_path):
    rc, out, _ = run(
        capsys,
        "indexes",
        str(find_fixture("indexStats_datadog_bar.json")),
        str(find_fixture("indexStats_datadog_foo.json")),
        "--json",
    )
    doc = json.loads(out)
    assert rc == 0 and [(i["collection"], i["ops"]) for i in doc["indexes"]] == [
        ("indexStats_datadog_bar", 12),
        ("indexStats_datadog_foo", 1243),
    ]
    assert doc["unused"] == [] and doc["redundant"] == []
    p = tmp_path / "contexts.json"
    p.write_text(
        json.dumps(
            [
                {"name": "_id_", "key": {"_id": 1}, "accesses": {"ops": 5, "since": "2024-01-01"}},
                {
                    "name": "workspaceId_1",
                    "key": {"workspaceId": 1},
                    "accesses": {"ops": 0, "since": "2024-01-01"},
                },
                {
                    "name": "wtc",
                    "key": {"workspaceId": 1, "tier": 1, "confidence": -1},
                    "accesses": {"ops": 9, "since": "2024-01-01"},
                },
            ]
        )
    )
    rc, out, _ = run(capsys, "indexes", str(p))
    assert rc == 0 and "unused: workspaceId_1; redundant prefixes: workspaceId_1" in out
    rc, _, err = run(capsys, "indexes", str(find_fixture("v3.2.3_find_collscan.json")))
    assert rc == 1 and "not $indexStats output" in err


def test_advise(capsys):
    rc, out, _ = run(capsys, "advise", "--contexts", "--json")
    doc = json.loads(out)
    assert rc == 0 and doc["key"] == {"workspaceId": 1, "tier": 1, "confidence": -1}
    assert list(doc["key"]) == ["workspaceId", "tier", "confidence"] and doc["needed"]
    rc, out, _ = run(
        capsys,
        "advise",
        "--filter",
        '{"status": "A", "age": {"$gt": 3}}',
        "--sort",
        '{"name": 1}',
        "--index",
        '{"status": 1}',
    )
    assert rc == 0 and "index:  { status: 1, name: 1, age: 1 }" in out
    assert "then drop (prefixes of it): status_1" in out
    rc, _, err = run(capsys, "advise", "--filter", "{status: A}")
    assert rc == 1 and "--filter is not JSON" in err
