"""Shared fixtures: a small real corpus, a real redis-server and a real Qdrant Edge shard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
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


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory: pytest.TempPathFactory):
    """Every notebook executed once with smoke parameters, like ``axon-lab report --smoke``.

    Returns ``(results_by_name, out_dir)``; notebook tests check their sidecars from here so
    each notebook runs once per session.
    """
    from axon_lab.report.index import build_report

    out = tmp_path_factory.mktemp("report")
    data = tmp_path_factory.mktemp("report-data")
    saved = {k: os.environ.get(k) for k in ("AXON_DATA_DIR", "AXON_CORPUS_LIMIT")}
    os.environ["AXON_DATA_DIR"] = str(data)
    os.environ["AXON_CORPUS_LIMIT"] = "300"
    try:
        results, index, seconds = build_report(out, smoke=True)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return {r.name: r for r in results}, out
