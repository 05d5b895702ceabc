"""The caches/Redis notebook runs under papermill with smoke parameters and records a sane sidecar."""

from __future__ import annotations

import pytest

from axon_lab.report import load, load_frame

# The session's smoke report runs every notebook; when this module asks for it first, its set-up
# counts against this test's timeout, so allow for the whole report on a shared 2-core machine.
pytestmark = [pytest.mark.notebook, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def sidecar(smoke_report):
    """The notebook's sidecar from the session's smoke report (each notebook runs once per session:
    papermill, kernel python3, AXON_LAB_OUT_DIR/AXON_DATA_DIR in tmp dirs, AXON_CORPUS_LIMIT=300)."""
    results, _ = smoke_report
    r = results["caches_redis"]
    assert r.status == "ok", r.error
    return r.sidecar


def test_sidecar_schema_and_verdict(sidecar) -> None:
    doc = load(sidecar)
    assert doc["name"] == "caches_redis" and doc["status"] == "ok" and doc["error"] is None
    assert doc["verdict"]["status"] in {"pass", "warn", "fail", "info"}
    assert "guide claims confirmed" in doc["verdict"]["summary"]
    params = doc["provenance"]["parameters"]
    assert params["smoke"] is True and params["requests"] == 60  # smoke sizes applied


def test_levels_match_the_prediction(sidecar) -> None:
    res = load(sidecar)["results"]
    levels = {r["config"]: r for r in res["levels"]}
    assert list(levels) == ["none", "l1", "l2", "l1+l2"]
    assert (
        levels["none"]["hit_rate"] is None
        and levels["none"]["misses"] == levels["none"]["requests"]
    )
    for name in ("l1", "l2", "l1+l2"):
        lv = levels[name]
        assert (
            lv["l1_hits"] == lv["expected_l1_hits"] and lv["l2_hits"] == lv["expected_l2_hits"]
        ), name
        assert 0 < lv["hit_rate"] < 1 and lv["cache_errors"] == 0
    assert levels["l2"]["keyspace_hit_rate"] == pytest.approx(levels["l2"]["hit_rate"])
    lat = {(r["config"], r["level"]): r for r in res["level_latency"]}
    assert 0 < lat[("l1", "L1")]["p50_ms"] < lat[("none", "L3")]["p50_ms"]
    frame = load_frame(sidecar, "config_requests")
    assert len(frame) == 4 * 60 and set(frame.context) <= {"l1-hit", "l2-hit", "miss", "off"}


def test_experiments_values(sidecar) -> None:
    res = load(sidecar)["results"]
    ttl = {r["ttl_s"]: r for r in res["ttl"]}
    assert ttl[3600]["expired_misses"] == 0 and ttl[300]["effective_ttl_s"] == 300
    ev = {r["policy"]: r for r in res["eviction"]}
    assert ev["no cap"]["evicted_keys"] == 0 and ev["allkeys-lru"]["evicted_keys"] > 0
    ser = {r["format"]: r for r in res["serialization"]}
    assert ser["msgpack"]["bytes_per_entry"] == 3459 and ser["json"]["bytes_per_entry"] > 3459
    rt = [r for r in res["round_trips"] if r["method"] == "sequential"]
    assert rt and all(r["reduction_vs_sequential"] == 0 for r in rt)
    assert {r["variant"] for r in res["parallelism"]} == {"pipeline", "io 20 ms"}
    assert res["chars4_error"]["texts"] == 100 and res["chars4_error"]["cl100k_total"] > 0
    claims = res["claims"]
    assert len(claims) >= 5 and {c["status"] for c in claims} <= {
        "confirmed",
        "partly",
        "refuted",
        "unknown",
    }
    assert res["redis_after"]["maxmemory"] == 0  # the eviction experiment restored the config
