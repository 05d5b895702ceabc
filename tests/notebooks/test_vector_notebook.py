"""The HNSW tuning notebook's sidecar from the session's smoke report (corpus sample, smoke grid).

The notebook runs once per session (the ``smoke_report`` fixture, like ``axon-lab report
--smoke``, with ``AXON_CORPUS_LIMIT=300``); this test checks what it recorded.
"""

from __future__ import annotations

import pytest

from axon_lab.report import load, load_frame

pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def sidecar(smoke_report):
    results, _ = smoke_report
    r = results["hnsw_tuning"]
    assert r.status == "ok", r.error
    return r.sidecar


def test_hnsw_tuning_notebook_smoke(sidecar, smoke_data_dir):
    doc = load(sidecar)
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
    sweep = load_frame(sidecar, "sweep")
    assert (
        sweep.loc[~sweep["exact"], "indexed_vectors"] == sweep.loc[~sweep["exact"], "points"]
    ).all()
    assert sweep["recall"].between(0, 1).all() and (sweep["p95_ms"] > 0).all()
    filtered = load_frame(sidecar, "filtered")
    assert set(filtered["payload_index"]) == {"before", "none"} and filtered["filtered"].any()
    # the sweep's throw-away shards are removed after the run
    sweeps = smoke_data_dir / "vector-sweep"
    assert not sweeps.exists() or not any(sweeps.iterdir())
