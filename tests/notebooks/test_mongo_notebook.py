"""The MongoDB notebook runs under papermill (smoke, live mode on the embedded store → files mode)."""

from __future__ import annotations

from pathlib import Path

import pytest

from axon_lab.report import load, load_frame

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "mongo_analysis.ipynb"


@pytest.mark.notebook
def test_notebook_smoke_falls_back_and_records_a_sane_sidecar(tmp_path, monkeypatch):
    import papermill

    monkeypatch.setenv("AXON_LAB_OUT_DIR", str(tmp_path))
    monkeypatch.setenv("AXON_MONGODB_URI", "")  # never a real server from the environment here
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "mongo_analysis.ipynb"),
        kernel_name="python3",
        parameters={"mode": "live", "mongodb_uri": "", "smoke": True},
        progress_bar=False,
        cwd=str(tmp_path),
    )
    sidecar = tmp_path / "mongo_analysis.results.json"
    doc = load(sidecar)
    assert doc["name"] == "mongo_analysis" and doc["status"] == "ok" and doc["error"] is None
    assert doc["verdict"]["status"] == "info"
    assert doc["verdict"]["summary"].startswith("offline (embedded store, not MongoDB):")
    params = doc["provenance"]["parameters"]
    assert params["mode"] == "live" and params["smoke"] is True
    res = doc["results"]
    assert res["mode"] == "files" and res["target"]["embedded"] is True
    assert res["target"]["requested_mode"] == "live" and "mongomock" in res["target"]["reason"]
    assert res["notes"][0].startswith("Offline mode:")
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
