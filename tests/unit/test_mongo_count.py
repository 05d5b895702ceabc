"""Count explains recorded from real servers (quoted in articles): labelled ``count``, not find.

The files live only in ``../shared/fixtures/mongo`` (no licence lets the project copy them; see
SOURCES.md there), so every test here skips when that folder is absent.
"""

from __future__ import annotations

import json

import pytest
from support.mongo_fixtures import load

from axon_lab import mongo
from axon_lab.errors import InputFileError
from axon_lab.mongo.files import classify, find_fixture


def raw(name: str) -> dict:
    path = find_fixture(name)
    if path is None:
        pytest.skip(f"{name} lives only in ../shared/fixtures/mongo, which is absent")
    return json.loads(path.read_text())


def stages(s: mongo.ExplainSummary) -> list[str]:
    return [n.stage for n in s.tree.walk()]


def node(s: mongo.ExplainSummary, stage: str) -> mongo.PlanNode:
    return next(n for n in s.tree.walk() if n.stage == stage)


def test_count_scan_queryplanner_names_the_index_used():
    s = load("vNA_count_count_scan_comrade_trimmed.json")
    assert s.command == "count"
    assert stages(s) == ["COUNT", "COUNT_SCAN"]
    assert s.indexes_used == ["customer_1_bonusPoint_1"]
    assert node(s, "COUNT_SCAN").index_name == "customer_1_bonusPoint_1"
    assert s.plan_summary == "COUNT_SCAN { customer: 1, bonusPoint: 1 }"
    assert s.ixscan and not s.collscan and s.covered and "COLLSCAN" not in s.flags
    assert s.namespace == "comrade.order" and s.rejected_plans == 0
    assert (s.keys_examined, s.docs_examined, s.execution_time_ms) == (1, 0, 2)


def test_collscan_under_count_is_a_collection_scan():
    s = load("vNA_count_collscan_comrade_trimmed.json")
    assert s.command == "count"
    assert stages(s) == ["COUNT", "COLLSCAN"]
    assert s.collscan and not s.ixscan and s.indexes_used == []
    assert "COLLSCAN" in s.flags and s.plan_summary == "COLLSCAN"
    assert (s.docs_examined, s.keys_examined, s.execution_time_ms) == (100001, 0, 51)
    # A count's own nReturned is always 0; with the stage counts cut, matches are unknown,
    # so no examined/returned ratio is made up from it.
    assert s.selectivity is None
    assert not any(f.startswith("examined/returned") for f in s.flags)


def test_count_scan_execution_stats_report_ncounted_and_keys():
    s = load("vNA_count_count_scan_fundebug_executionstats_only.json")
    assert s.command == "count" and s.verbosity == "executionStats"
    assert stages(s) == ["COUNT", "COUNT_SCAN"]
    assert s.indexes_used == ["projectId_1_createTime_-1"]
    count_node, scan = node(s, "COUNT"), node(s, "COUNT_SCAN")
    assert count_node.details["nCounted"] == 20853 and count_node.n_returned == 0
    assert scan.index_name == "projectId_1_createTime_-1"
    assert (scan.keys_examined, scan.n_returned) == (20854, 20853)
    assert (s.keys_examined, s.docs_examined, s.execution_time_ms) == (20854, 0, 47)
    assert not s.collscan and s.covered and s.selectivity == 0.0  # 0 docs read for 20853


def test_fetch_ixscan_execution_stats_of_the_same_count_before_the_index():
    s = load("vNA_count_fetch_ixscan_fundebug_executionstats_only.json")
    assert stages(s) == ["FETCH", "IXSCAN"]
    assert s.indexes_used == ["projectId_1"] and not s.collscan and not s.covered
    assert (s.keys_examined, s.docs_examined, s.n_returned) == (28338, 28338, 20853)
    assert node(s, "FETCH").docs_examined == 28338
    assert node(s, "IXSCAN").keys_examined == 28338
    assert s.selectivity == pytest.approx(28338 / 20853)
    assert any(f.startswith("slow") for f in s.flags)  # 28,055 ms
    # The quoted excerpt starts at FETCH: neither the COUNT root nor the command is shown,
    # so nothing in it says "count"; with the command recorded, the command wins.
    assert s.command == "find"
    doc = raw("vNA_count_fetch_ixscan_fundebug_executionstats_only.json")
    assert mongo.parse_explain({**doc, "command": {"count": "events"}}).command == "count"


def test_count_without_query_has_no_input_stage():
    q = load("v3.0.5_count_no_query_megalomono_queryplanner.json")
    assert (q.command, q.server_version, q.verbosity) == ("count", "3.0.5", "queryPlanner")
    assert stages(q) == ["COUNT"] and "queryPlanner only (no counts)" in q.flags
    e = load("v3.0.5_count_no_query_megalomono_executionstats.json")
    assert (e.command, e.server_version, e.verbosity) == ("count", "3.0.5", "executionStats")
    assert stages(e) == ["COUNT"] and node(e, "COUNT").details["nCounted"] == 100
    assert not e.collscan and not e.ixscan and e.indexes_used == []
    assert (e.docs_examined, e.keys_examined) == (0, 0)


def test_execution_stats_quoted_alone_is_read_as_an_explain():
    path = find_fixture("vNA_count_count_scan_fundebug_executionstats_only.json")
    if path is None:
        pytest.skip("../shared/fixtures/mongo is absent")
    assert classify(path) == "explain"
    # Without an executionStages tree it is still not an explain.
    with pytest.raises(InputFileError, match="not an explain document"):
        mongo.parse_explain({"executionStats": {"nReturned": 1}})
