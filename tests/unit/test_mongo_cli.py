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


# ---- issue 16: per-file results, skipped lines, other commands, closed pipes ---------------


def test_one_bad_file_among_several_still_prints_the_good_ones(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    good = [str(find_fixture(n)) for n in ("v3.2.3_find_collscan.json", "v3.2.5_find_idhack.json")]
    rc, out, err = run(capsys, "explain", good[0], str(bad), good[1])
    assert rc == 1
    assert "v3.2.3_find_collscan" in out and "v3.2.5_find_idhack" in out and "IDHACK" in out
    assert err.count("\n") == 1 and err.startswith(f"axon-lab: {bad}: not JSON")
    rc, out, err = run(capsys, "explain", good[0], str(bad), "--json")
    assert rc == 1 and [s["source"] for s in json.loads(out)] == [good[0]]
    rc, out, err = run(
        capsys, "log", str(find_fixture("slowlog_datadog_getLog_v6plus.log")), str(bad), "--json"
    )
    doc = json.loads(out)
    assert rc == 1 and [f["slow_queries"] for f in doc["files"]] == [3]
    assert "bad.json: no JSON log lines" in err and err.count("\n") == 1
    rc, out, err = run(
        capsys,
        "indexes",
        str(find_fixture("indexStats_datadog_bar.json")),
        str(find_fixture("v3.2.3_find_collscan.json")),
    )
    assert rc == 1 and "indexStats_datadog_bar" in out and "not $indexStats output" in err
    rc, out, err = run(
        capsys,
        "profile",
        str(bad),
        str(find_fixture("profile_status_datadog.json")),
        "--json",
    )
    assert rc == 1 and json.loads(out)["profiling_status"]["level"] == 1


def test_log_prints_shapes_other_commands_and_skipped_lines(capsys, tmp_path):
    lines = find_fixture("slowlog_v6.0.14_hatchet_index_builds.log").read_text().splitlines()
    mixed = tmp_path / "mixed.log"
    mixed.write_text("\n".join(["a text line", *lines, lines[0][:50]]))
    rc, out, _ = run(capsys, "log", str(mixed))
    assert rc == 0
    assert (
        f"{mixed}: 34 lines, 32 slow-query lines (9 queries, 19 other commands, "
        "4 internal-thread lines (attr.type none)); skipped 2 of 34 lines "
        "(1 not JSON, 1 cut or malformed JSON)"
    ) in out
    shapes, commands = out.split("other commands (19 operations):")
    assert "query shapes (9 operations):" in shapes and "createIndexes" not in shapes
    assert "createIndexes      4" in commands and "none" not in commands
    rc, out, _ = run(capsys, "log", str(mixed), "--json")
    doc = json.loads(out)
    (f,) = doc["files"]
    assert (f["skipped"], f["text_lines"], f["malformed"], f["internal"]) == (2, 1, 1, 4)
    assert (doc["queries"], doc["other_commands"], doc["skipped_lines"]) == (9, 19, 2)
    assert [c["operation"] for c in doc["commands"]] == [
        "createIndexes",
        "voteCommitIndexBuild",
        "hello",
    ]


def test_a_closed_pipe_ends_quietly(capsys, monkeypatch):
    class Closed:
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr("sys.stdout", Closed())
    rc = main(["mongo", "explain", str(find_fixture("v3.2.3_find_collscan.json")), "--json"])
    assert rc == 141


def test_a_closed_pipe_in_a_real_process_has_no_traceback():
    import subprocess
    import sys

    files = [str(find_fixture("v3.2.6_sharded_shard_merge_collscan_and_ixscan.json"))] * 40
    proc = subprocess.Popen(
        [sys.executable, "-m", "axon_lab", "mongo", "explain", *files, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == b"[\n  {\n    "  # like `| head -c 10`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipeError" not in err and err == ""
