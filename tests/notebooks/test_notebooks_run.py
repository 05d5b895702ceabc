"""Every notebook runs through papermill with smoke parameters; sidecars have the schema and sane values."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from axon_lab.report import load, load_frame
from axon_lab.report.run import notebook_parameters

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))

pytestmark = [pytest.mark.notebook, pytest.mark.slow]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_runs_and_records_a_sidecar(smoke_report, path):
    results, _ = smoke_report
    r = results[path.stem]
    assert r.status == "ok", r.error
    doc = load(r.sidecar)
    assert doc["status"] == "ok" and doc["name"] == path.stem
    assert (
        doc["verdict"]["status"] in {"pass", "warn", "fail", "info"} and doc["verdict"]["summary"]
    )
    assert doc["provenance"]["parameters"].get("smoke") is True
    # every declared parameter reaches the sidecar (report.parameter_values(), not retyped)
    declared = set(notebook_parameters(path))
    assert declared <= set(doc["provenance"]["parameters"]), declared - set(
        doc["provenance"]["parameters"]
    )
    assert doc["provenance"]["machine"]["cores"] >= 1 and doc["provenance"]["created_utc"].endswith(
        "+00:00"
    )
    html = r.html.read_text()
    assert '<div class="highlight' not in html  # code hidden
    assert "Figure size" not in html  # figures rendered as images, not text
    assert "Traceback" not in html


def test_index_links_every_report(smoke_report):
    results, out = smoke_report
    index = (out / "index.html").read_text()
    for name in results:
        assert f"{name}/{name}.html" in index


def test_load_baseline_values(smoke_report):
    results, _ = smoke_report
    doc = load(results["load_baseline"].sidecar)
    sc = doc["results"]["scenarios"]["simple"]
    assert sc["count"] > 0 and sc["error_rate"] == 0
    assert 0 < sc["p50"] <= sc["p95"] <= sc["p99"]
    assert "<html" not in str(doc["results"]["target"])
    overview = load_frame(results["load_baseline"].sidecar, "overview")
    assert list(overview.scenario) == ["simple"]
    issues = load_frame(results["load_baseline"].sidecar, "issues")
    assert set(issues.symptom) == {
        "High p95 latency",
        "High p99 latency",
        "Low throughput",
        "Memory growth",
        "High error rate",
    }


def test_latency_breakdown_values(smoke_report):
    results, _ = smoke_report
    stages = load_frame(results["latency_breakdown"].sidecar, "stages").set_index("stage")
    for s in (
        "collection",
        "analysis",
        "retrieval",
        "vector_search",
        "document_fetch",
        "rerank",
        "synthesis",
        "injection",
        "llm",
        "postprocessing",
        "total",
    ):
        assert stages.loc[s, "count"] > 0, s
    assert stages.loc["total", "p95_ms"] >= stages.loc["llm", "p95_ms"]
    assert stages.loc["vector_search", "budget_ms"] == 200
    doc = load(results["latency_breakdown"].sidecar)
    assert (
        doc["results"]["timeline_spans"] >= 8 and doc["results"]["timeline_reconstructed"] is False
    )


def test_before_after_values(smoke_report):
    results, _ = smoke_report
    t = load_frame(results["before_after"].sidecar, "measuring_success")
    assert list(t.metric) == [
        "p95 Latency",
        "Throughput",
        "Memory Usage",
        "Cache Hit Rate",
        "Error Rate",
    ]
    assert set(t.verdict) <= {"improved", "regressed", "noise", "unknown", "too few samples"}
    hr = t.set_index("metric").loc["Cache Hit Rate"]
    assert hr.before == 0 and not pd.isna(hr.after)  # baseline has caches off
