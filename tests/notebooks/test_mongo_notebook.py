"""The MongoDB notebook's sidecar from the session's smoke report (files mode, recorded output).

The notebook runs once per session (the ``smoke_report`` fixture, like ``axon-lab report
--smoke``). Live mode falling back to the recorded files on the embedded store is tested on
the same code path in ``tests/unit/test_mongo_live.py``.
"""

from __future__ import annotations

import pytest

from axon_lab.report import load, load_frame

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def sidecar(smoke_report):
    results, _ = smoke_report
    r = results["mongo_analysis"]
    assert r.status == "ok", r.error
    return r.sidecar


def test_notebook_smoke_records_a_sane_sidecar(sidecar):
    doc = load(sidecar)
    assert doc["name"] == "mongo_analysis" and doc["status"] == "ok" and doc["error"] is None
    assert doc["verdict"]["status"] == "info"
    assert doc["verdict"]["summary"].startswith("offline")
    params = doc["provenance"]["parameters"]
    assert params["mode"] == "files" and params["smoke"] is True
    res = doc["results"]
    assert res["mode"] == "files" and res["target"]["requested_mode"] == "files"
    counts = res["counts"]
    assert counts["plans"] >= 7 and counts["collscan"] >= 3 and counts["in_memory_sort"] >= 1
    assert counts["covered"] >= 1 and counts["sharded"] >= 2
    assert counts["shapes"] >= 8 and counts["operations"] >= 13
    assert res["contexts_advice"]["key"] == {"workspaceId": 1, "tier": 1, "confidence": -1}
    assert res["tree_plan"]["stage_tree"]["stage"]
    assert res["live"] is None
    assert set(doc["frames"]) == {"plans", "before_after", "shapes", "indexes"}
    shapes = load_frame(sidecar, "shapes")
    assert shapes.total_ms.is_monotonic_decreasing and (shapes["count"] >= 1).all()
    assert (shapes.min_ms <= shapes.mean_ms).all() and (shapes.mean_ms <= shapes.max_ms).all()
    plans = load_frame(sidecar, "plans")
    assert len(plans) == counts["plans"]
    assert ((plans.docs_examined >= 0) | plans.docs_examined.isna()).all()
    ba = load_frame(sidecar, "before_after")
    assert len(ba) >= 2 and ba.execution_time_ms.is_monotonic_decreasing
