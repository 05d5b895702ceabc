"""``axon-lab bench``: the cache-stampede burst, without and with request coalescing."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bench_env(tmp_path_factory):
    from axon_lab import corpus
    from axon_lab.config import Settings

    d = tmp_path_factory.mktemp("bench-data")
    s = Settings(data_dir=d, corpus_limit=120, indexing_threshold_kb=64, full_scan_threshold_kb=16)
    corpus.build(s.corpus_limit, settings=s)
    return s


def test_burst_shares_one_embedding_and_retrieval_when_coalescing(bench_env, monkeypatch, capsys):
    from axon_lab.cli import main

    monkeypatch.setenv("AXON_DATA_DIR", str(bench_env.data_dir))
    monkeypatch.setenv("AXON_CORPUS_LIMIT", str(bench_env.corpus_limit))
    monkeypatch.setenv("AXON_INDEXING_THRESHOLD_KB", "64")
    monkeypatch.setenv("AXON_FULL_SCAN_THRESHOLD_KB", "16")
    assert main(["bench", "burst", "--size", "6", "--bursts", "3", "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    on, off = res["coalesce"], res["no_coalesce"]
    assert on["status_counts"] == {"200": 18} and off["status_counts"] == {"200": 18}
    # without coalescing the burst stampedes (each request embeds), with it one computes
    assert off["embeddings_per_burst"] > 2 and on["embeddings_per_burst"] < 2
    # the 5 followers of each burst wait on the leader's embedding (>= 20 ms); by the retrieval
    # step some may arrive after the leader's retrieval ended (then an L1 hit): still one per burst
    assert on["cache"]["embedding"].get("inflight-hit", 0) >= 9
    assert on["retrievals_per_burst"] < 2
    assert "inflight-hit" not in off["cache"]["embedding"]
    assert main(["bench", "burst", "--size", "0"]) == 1
    assert "--size" in capsys.readouterr().err
