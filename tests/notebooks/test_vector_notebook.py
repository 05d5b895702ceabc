"""The HNSW tuning notebook runs end to end with smoke parameters and records a valid sidecar."""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "hnsw_tuning.ipynb"


@pytest.mark.notebook
def test_hnsw_tuning_notebook_smoke(tmp_path, monkeypatch):
    import papermill

    from axon_lab.report import load, load_frame

    out, data = tmp_path / "out", tmp_path / "data"
    monkeypatch.setenv("AXON_LAB_OUT_DIR", str(out))
    monkeypatch.setenv("AXON_DATA_DIR", str(data))
    # synthetic keeps the test free of the embedding model; corpus smoke runs use the same cells
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(tmp_path / "executed.ipynb"),
        kernel_name="python3",
        parameters={"smoke": True, "dataset": "synthetic", "upsert_repeats": 3},
        progress_bar=False,
        cwd=str(tmp_path),
    )
    doc = load(out / "hnsw_tuning.results.json")
    assert doc["status"] == "ok" and doc["name"] == "hnsw_tuning"
    assert (
        doc["verdict"]["status"] in {"pass", "warn", "fail"}
        and "\n" not in doc["verdict"]["summary"]
    )
    assert doc["provenance"]["parameters"]["smoke"] is True
    res = doc["results"]
    rec = res["recommendation"]
    assert rec["status"] == "ok" and 0.95 <= rec["recall"] <= 1.0 and rec["p95_ms"] < 200
    assert rec["exact"]["recall"] == 1.0
    assert {r["role"] for r in res["table"]} >= {"exact", "recommended"}
    assert 0 < res["upserts"]["single_p50_ms"] and 0 < res["upserts"]["batch_p50_ms"]
    sweep = load_frame(out / "hnsw_tuning.results.json", "sweep")
    assert (
        sweep.loc[~sweep["exact"], "indexed_vectors"] == sweep.loc[~sweep["exact"], "points"]
    ).all()
    assert sweep["recall"].between(0, 1).all() and (sweep["p95_ms"] > 0).all()
    filtered = load_frame(out / "hnsw_tuning.results.json", "filtered")
    assert set(filtered["payload_index"]) == {"before", "none"} and filtered["filtered"].any()
    assert not (data / "vector-sweep").exists() or not any((data / "vector-sweep").iterdir())
