"""Integration fixtures: a small real corpus, a real redis-server and a real Qdrant Edge shard."""

from __future__ import annotations

import pytest

TEST_CORPUS_LIMIT = 400


@pytest.fixture(scope="session")
def lab_settings(tmp_path_factory: pytest.TempPathFactory):
    """Settings on a private data dir with a small corpus; HNSW forced on (low threshold)."""
    from axon_lab.config import Settings

    return Settings(
        data_dir=tmp_path_factory.mktemp("axon-data"),
        corpus_limit=TEST_CORPUS_LIMIT,
        indexing_threshold_kb=64,
        full_scan_threshold_kb=16,
    )


@pytest.fixture(scope="session")
def api_client(lab_settings):
    """The embedded Axon API (FastAPI TestClient) over real Redis + Qdrant Edge + mongomock."""
    from fastapi.testclient import TestClient

    from axon_lab.api.app import create_app
    from axon_lab.pipeline import LLMOptions, PipelineOptions

    # A fast simulated LLM (20 ms median) keeps the suite quick; the stage is still timed.
    app = create_app(lab_settings, PipelineOptions(llm=LLMOptions(median_ms=20.0)))
    with TestClient(app) as client:
        yield client
