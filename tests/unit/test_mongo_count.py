"""Count explains are labelled ``count``, not find.

No recorded count explain under a licence that lets the project copy it was found (see "Gaps"
in tests/fixtures/mongo/README.md), so these tests build the plans by hand, in the shape
servers report a count (``COUNT`` at the root over ``COUNT_SCAN``, ``COLLSCAN`` or
``FETCH``+``IXSCAN``; ``nCounted`` on the ``COUNT`` stage; no ``command`` before 4.4). They
test how the parser reads that shape; none of their numbers is a recording.
"""

from __future__ import annotations

import json

import pytest

from axon_lab import mongo
from axon_lab.errors import InputFileError
from axon_lab.mongo.files import classify


def stages(s: mongo.ExplainSummary) -> list[str]:
    return [n.stage for n in s.tree.walk()]


def explain(tree: dict, **extra) -> dict:
    """A hand-built explain envelope (namespace ``db.c``) around ``tree``."""
    return {
        "queryPlanner": {
            "namespace": "db.c",
            "parsedQuery": {},
            "winningPlan": tree,
            "rejectedPlans": [],
        },
        **extra,
    }


COUNT_SCAN = {
    "stage": "COUNT",
    "inputStage": {
        "stage": "COUNT_SCAN",
        "keyPattern": {"a": 1},
        "indexName": "a_1",
        "isMultiKey": False,
    },
}


def test_count_scan_is_a_covered_count_on_its_index():
    s = mongo.parse_explain(explain(COUNT_SCAN))
    assert (s.command, s.verbosity) == ("count", "queryPlanner")
    assert stages(s) == ["COUNT", "COUNT_SCAN"]
    assert s.indexes_used == ["a_1"] and s.plan_summary == "COUNT_SCAN { a: 1 }"
    assert s.ixscan and s.covered and not s.collscan


def test_collscan_under_count_judges_selectivity_on_what_was_counted():
    tree = {
        "stage": "COUNT",
        "nReturned": 0,  # a count returns no documents
        "nCounted": 4,
        "inputStage": {"stage": "COLLSCAN", "nReturned": 4, "docsExamined": 10},
    }
    s = mongo.parse_explain(
        explain(
            tree,
            executionStats={
                "nReturned": 0,
                "totalDocsExamined": 10,
                "totalKeysExamined": 0,
                "executionTimeMillis": 0,
                "executionStages": tree,
            },
        )
    )
    assert s.command == "count" and s.collscan and s.plan_summary == "COLLSCAN"
    assert stages(s) == ["COUNT", "COLLSCAN"] and "COLLSCAN" in s.flags
    assert (s.docs_examined, s.keys_examined) == (10, 0)
    assert s.selectivity == pytest.approx(10 / 4)  # 10 read for the 4 counted, not for 0


def test_a_recorded_command_wins_over_the_root_stage():
    doc = explain(COUNT_SCAN)
    assert mongo.parse_explain({**doc, "command": {"count": "c"}}).command == "count"
    fetch = explain({"stage": "FETCH", "inputStage": {"stage": "IXSCAN", "indexName": "a_1"}})
    assert mongo.parse_explain(fetch).command == "find"  # nothing in it says count
    assert mongo.parse_explain({**fetch, "command": {"count": "c"}}).command == "count"


def test_execution_stats_quoted_alone_is_read_as_an_explain(tmp_path):
    path = tmp_path / "count_stats.json"
    path.write_text(json.dumps({"executionStats": {"nReturned": 0, "executionStages": COUNT_SCAN}}))
    assert classify(path) == "explain"
    (s,) = mongo.load_explains(path)
    assert s.command == "count" and stages(s) == ["COUNT", "COUNT_SCAN"]
    # Without an executionStages tree it is not an explain.
    with pytest.raises(InputFileError, match="not an explain document"):
        mongo.parse_explain({"executionStats": {"nReturned": 1}})
