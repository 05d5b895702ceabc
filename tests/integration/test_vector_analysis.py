"""HNSW tuning: recall against numpy ground truth, exact search, guards, sweep, frontier, upserts, CLI."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

from axon_lab import vector as V
from axon_lab.config import Settings
from axon_lab.errors import ConfigError
from axon_lab.stack.vector import HnswParams

K = 10


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(data_dir=tmp_path_factory.mktemp("vector-data"))


@pytest.fixture(scope="module")
def data():
    # 64-d keeps builds fast; the generator is the same one the stress runs use at 384-d.
    return V.synthetic_dataset(1500, n_queries=40, dim=64, latent_dim=16, seed=3)


@pytest.fixture(scope="module")
def built(data, settings):
    """One real HNSW build on Qdrant Edge (full-scan threshold low enough that HNSW is used)."""
    with V.sweep_stores(settings) as open_store:
        store = open_store("fixture")
        info = V.build_index(
            store, data, V.BuildConfig(m=8, ef_construct=32, full_scan_threshold=16)
        )
        yield store, info


def _naive_topk(vectors, queries, k, rows=None):
    out = []
    for q in queries:
        sims = [
            (float(np.dot(vectors[r], q)), r)
            for r in (range(len(vectors)) if rows is None else rows)
        ]
        out.append([r for _, r in sorted(sims, key=lambda t: (-t[0], t[1]))[:k]])
    return out


def test_ground_truth_matches_naive_brute_force(data):
    idx, sims = V.ground_truth(data.vectors, data.queries, K, batch=7)
    naive = _naive_topk(data.vectors, data.queries, K)
    for got, want in zip(idx, naive, strict=True):
        assert set(got.tolist()) == set(want)
    assert np.all(np.diff(sims, axis=1) <= 1e-6), "best first"
    rows = np.flatnonzero(data.workspace == "w10")
    fidx, _ = V.ground_truth(data.vectors, data.queries, K, rows=rows)
    assert set(np.unique(fidx)) <= set(rows.tolist())
    assert [set(r) for r in fidx.tolist()] == [
        set(r) for r in _naive_topk(data.vectors, data.queries, K, rows)
    ]
    tiny = rows[:3]  # a subset smaller than k gives k' = 3 neighbours
    assert V.ground_truth(data.vectors, data.queries, K, rows=tiny)[0].shape == (
        len(data.queries),
        3,
    )


def test_recall_at_k_definition():
    truth = np.array([[0, 1, 2, 3], [4, 5, 6, 7]])
    found = [[0, 1, 9, 8], [7, 6, 5, 4]]
    np.testing.assert_allclose(V.recall_at_k(found, truth, 4), [0.5, 1.0])
    # duplicates and unknown ids (-1) never count twice or at all
    np.testing.assert_allclose(V.recall_at_k([[0, 0, -1, 1]], truth[:1], 4), [0.5])
    # a subset smaller than k: the denominator is its size
    np.testing.assert_allclose(V.recall_at_k([[3, 1]], np.array([[1, 3]]), 10), [1.0])
    # ties: an equally near duplicate of the k-th neighbour is not a miss
    vecs = np.array([[1, 0], [0.8, 0.6], [0.8, 0.6], [0, 1]], dtype=np.float32)
    q = np.array([[1, 0]], dtype=np.float32)
    assert V.recall_at_k([[0, 2]], np.array([[0, 1]]), 2)[0] == 0.5
    assert V.recall_at_k([[0, 2]], np.array([[0, 1]]), 2, vectors=vecs, queries=q)[0] == 1.0
    # ... unless that row is outside the filtered subset
    allowed = np.array([True, True, False, True])
    assert (
        V.recall_at_k([[0, 2]], np.array([[0, 1]]), 2, vectors=vecs, queries=q, allowed=allowed)[0]
        == 0.5
    )


def test_index_is_really_built(built, data):
    store, info = built
    assert info["points"] == info["indexed_vectors"] == data.n
    assert info["hnsw_segments"] >= 1 and info["hnsw_mb"] > 0
    assert V.check_indexed(store)["points"] == data.n


def test_search_recall_matches_numpy_and_exact_is_perfect(built, data):
    store, _ = built
    truth, _ = V.ground_truth(data.vectors, data.queries, K)
    exact = V.evaluate(store, data, truth, k=K, exact=True, clients=2, warmup=2)
    assert exact["recall"] == 1.0 and exact["returned"] == K
    ev = V.evaluate(store, data, truth, k=K, hnsw_ef=K, clients=1, warmup=2)
    # recompute recall independently from the ids the engine returns
    naive = _naive_topk(data.vectors, data.queries, K)
    got = [
        [h.id for h in store.search(q, limit=K, hnsw_ef=K, with_payload=False)]
        for q in data.queries
    ]
    expected = np.mean([len(set(g) & set(n)) / K for g, n in zip(got, naive, strict=True)])
    assert ev["recall"] == pytest.approx(expected, abs=0.02)  # tie tolerance may only add
    assert 0.5 < ev["recall"] <= 1.0
    assert (
        ev["count"] == len(data.queries)
        and ev["p50_ms"] <= ev["p95_ms"] <= ev["p99_ms"] <= ev["max_ms"]
    )
    assert ev["qps_1"] > 0 and ev["qps_batch"] > 0
    # filtered: recall against the filtered ground truth, every hit inside the workspace
    rows = np.flatnonzero(data.workspace == "w50")
    ftruth, _ = V.ground_truth(data.vectors, data.queries, K, rows=rows)
    fex = V.evaluate(
        store, data, ftruth, k=K, exact=True, workspace="w50", clients=1, warmup=0, batch=False
    )
    assert fex["recall"] == 1.0
    hits = store.search(data.queries[0], limit=K, workspace_id="w50", hnsw_ef=32, with_payload=True)
    assert {h.payload["workspaceId"] for h in hits} == {"w50"}


def test_evaluate_time_cap(built, data):
    store, _ = built
    truth, _ = V.ground_truth(data.vectors, data.queries, K)
    ev = V.evaluate(
        store, data, truth, k=K, exact=True, clients=2, warmup=0, max_seconds=0.0, min_queries=5
    )
    assert ev["truncated"] and ev["queries"] == ev["count"] == 5 and ev["recall"] == 1.0
    assert not V.evaluate(store, data, truth, k=K, exact=True, clients=1, warmup=0)["truncated"]


def test_guard_unindexed_shard(data, settings):
    with V.sweep_stores(settings) as open_store:
        store = open_store("unindexed")
        # an indexing threshold far above the data size: the segment stays brute force
        store.ensure_collection(data.dim, HnswParams(indexing_threshold=10**7), payload_indexes=())
        store.upsert(data.points(0, 300))
        store.optimize()
        assert store.info()["indexed_vectors"] < 300
        with pytest.raises(V.IndexNotBuilt, match="only 0 of 300 vectors are HNSW-indexed"):
            V.check_indexed(store)
        empty = open_store("empty")
        empty.ensure_collection(data.dim, HnswParams())
        with pytest.raises(V.IndexNotBuilt, match="empty"):
            V.check_indexed(empty)
        with pytest.raises(V.IndexNotBuilt):
            V.build_index(
                open_store("also-unindexed"),
                data,
                V.BuildConfig(m=8, ef_construct=16),
                indexing_threshold_kb=10**7,
            )


def test_guard_hnsw_ef_below_k(built, data):
    store, _ = built
    with pytest.raises(ConfigError, match="hnsw_ef 5 < k 10") as exc:
        V.check_hnsw_ef(5, 10)
    assert "\n" not in str(exc.value)
    with pytest.raises(ConfigError, match="hnsw_ef 8 < k 10"):
        V.grid(hnsw_ef=(8, 16), k=10)
    with pytest.raises(ConfigError, match="hnsw_ef 4 < k 10"):
        V.evaluate(store, data, np.zeros((len(data.queries), K), dtype=int), k=K, hnsw_ef=4)
    with pytest.raises(ConfigError, match="hnsw_ef 9 < k 10"):
        V.filtered_study(data, hnsw_ef=(9,), k=10)


def test_guard_brute_force_warnings():
    info = {"points": 2000, "indexed_vectors": 2000, "segments": 2, "hnsw_segments": 1}
    # Qdrant's default 10,000 KB is 6,666 points at 384-d
    assert V.full_scan_points(10_000, 384) == 6666
    with pytest.warns(V.BruteForceWarning) as caught:
        out = V.brute_force_warnings(
            info, full_scan_threshold_kb=10_000, dim=384, subsets={"workspaceId=tiny": 20}
        )
    assert [str(w.message) for w in caught] == out and len(out) == 2
    assert "~2000 points each, under the full-scan threshold" in out[0]
    assert "workspaceId=tiny: 20 points" in out[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert V.brute_force_warnings(info, full_scan_threshold_kb=100, dim=384) == []


@pytest.mark.slow
def test_sweep_frame_frontier_and_recommendation(data, tmp_path):
    settings = Settings(data_dir=tmp_path)
    g = V.grid(m=(4, 8), ef_construct=(16,), hnsw_ef=(10, 40), full_scan_threshold=(16,), k=K)
    res = V.sweep(data, g, clients=2, warmup=2, settings=settings)
    f = res.frame
    assert len(f) == 1 + 2 * 2  # exact + builds x hnsw_ef
    assert f["exact"].sum() == 1 and f.loc[f["exact"], "recall"].item() == 1.0
    assert (f.loc[~f["exact"], "indexed_vectors"] == data.n).all()
    assert set(f.columns) >= {
        "config",
        "m",
        "ef_construct",
        "hnsw_ef",
        "recall",
        "p95_ms",
        "qps_1",
        "qps_n",
        "build_s",
        "disk_mb",
        "rss_mb",
        "brute_force",
    }
    assert not (settings.data_dir / "vector-sweep").exists(), "sweep shards are cleaned up"
    rec = V.recommend(f, target_recall=0.5, budget_ms=1000)
    assert rec["status"] == "ok" and rec["recall"] >= 0.5 and rec["margin"]["latency_ms"] > 0
    assert rec["exact"]["recall"] == 1.0
    assert V.recommend(f, target_recall=1.01)["status"] == "none"
    assert V.verdict(V.recommend(f, target_recall=1.01))["status"] == "fail"
    t = V.table(f, rec)
    assert "recommended" in set(t["role"]) and "exact" in set(t["role"])
    json.dumps(V.records(f))  # JSON-ready: no NaN/NA objects left


def test_pareto_and_cheapest_choice():
    f = pd.DataFrame(
        {
            "config": ["a", "b", "c", "d", "exact"],
            "m": [8, 16, 32, 16, None],
            "ef_construct": [64, 64, 64, 128, None],
            "hnsw_ef": [16, 16, 16, 64, None],
            "quantization": ["none"] * 5,
            "exact": [False, False, False, False, True],
            "recall": [0.90, 0.97, 0.97, 0.99, 1.0],
            "p95_ms": [0.30, 0.40, 0.41, 0.80, 2.0],
            "p50_ms": [0.20, 0.30, 0.29, 0.50, 1.5],
            "qps_1": [3000, 2500, 2400, 1200, 500],
        }
    )
    front = V.pareto_frontier(f)
    assert front["config"].tolist() == ["a", "b", "d", "exact"]  # c is dominated by b
    assert V.pareto_frontier(f, x="qps_1")["config"].tolist() == ["exact", "d", "b", "a"]
    rec = V.recommend(f, target_recall=0.95, budget_ms=5)
    # b and c tie on median latency (within 10%): the smaller index (m=16) wins
    assert rec["config"] == "b" and rec["margin"]["recall"] == pytest.approx(0.02)
    assert rec["margin"]["latency_ms"] == pytest.approx(5 - 0.40)
    assert (
        V.recommend(f, target_recall=0.95, budget_ms=5, cost="p95_ms", tie_tolerance=0)["config"]
        == "b"
    )
    assert V.recommend(f, target_recall=0.95, budget_ms=0.35)["status"] == "none"


def test_upsert_bench(data, settings):
    res = V.upsert_bench(data, n=20, repeats=3, warmup=1, settings=settings)
    assert sorted(res.frame["mode"].value_counts().items()) == [("batch", 3), ("single", 3)]
    s = res.meta["summary"]
    assert s["single_p50_ms"] > 0 and s["batch_p50_ms"] > 0 and s["n"] == 20
    assert s["reduction"] == pytest.approx(1 - s["batch_p50_ms"] / s["single_p50_ms"])
    with pytest.raises(ConfigError):
        V.upsert_bench(data, n=0)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::axon_lab.vector.BruteForceWarning")
def test_cli_sweep_smoke_and_errors(tmp_path, monkeypatch, capsys):
    from axon_lab.cli import main
    from axon_lab.config import get_settings

    monkeypatch.setenv("AXON_DATA_DIR", str(tmp_path / "data"))
    get_settings.cache_clear()
    try:
        assert (
            main(
                [
                    "vector",
                    "sweep",
                    "--dataset",
                    "synthetic",
                    "--smoke",
                    "--no-filtered",
                    "--json",
                    "--out",
                    str(tmp_path / "out"),
                ]
            )
            == 0
        )
        doc = json.loads(capsys.readouterr().out)
        assert doc["recommendation"]["status"] == "ok" and doc["verdict"]["status"] == "pass"
        assert (tmp_path / "out" / "vector_sweep.results.json").exists()
        assert main(["vector", "sweep", "--dataset", "synthetic", "--smoke", "--hnsw-ef", "5"]) == 1
        err = capsys.readouterr().err.strip()
        assert err.startswith("axon-lab: hnsw_ef 5 < k 10") and "\n" not in err
        assert (
            main(
                [
                    "vector",
                    "sweep",
                    "--dataset",
                    "synthetic",
                    "--smoke",
                    "--no-filtered",
                    "--target-recall",
                    "1.1",
                    "--quiet",
                ]
            )
            == 99
        )
        capsys.readouterr()
        assert (
            main(
                [
                    "vector",
                    "upsert-bench",
                    "--dataset",
                    "synthetic",
                    "--smoke",
                    "--n",
                    "10",
                    "--repeats",
                    "2",
                    "--json",
                ]
            )
            == 0
        )
        assert json.loads(capsys.readouterr().out)["n"] == 10
        assert (
            main(
                [
                    "vector",
                    "filtered",
                    "--dataset",
                    "synthetic",
                    "--smoke",
                    "--hnsw-ef",
                    "16",
                    "--full-scan-threshold",
                    "100",
                    "--payload-index",
                    "before",
                    "--json",
                ]
            )
            == 0
        )
        rows = json.loads(capsys.readouterr().out)["filtered"]
        assert {r["workspace"] for r in rows} == {"(all)", "w01", "w10", "w50"}
    finally:
        get_settings.cache_clear()
