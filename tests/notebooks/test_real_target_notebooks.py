"""The latency notebooks against the real Axon API's contract: only target_url and a UUID workspace.

latency_breakdown and load_baseline run against the stand-in (tests/support/axon_api_server.py);
before_after compares two deployments (two URLs). Each shows all seven stages read from the
response bodies.
"""

from __future__ import annotations

import pytest
from support.axon_api import AxonApiServer

from axon_lab.report import load, load_frame
from axon_lab.report.run import run_notebook

pytestmark = [pytest.mark.notebook, pytest.mark.slow]

UUID = "3f2b8a1e-5c4d-4e6f-9a7b-1c2d3e4f5a6b"
SEVEN = {"collection", "analysis", "retrieval", "synthesis", "injection", "llm", "postprocessing"}


@pytest.fixture(scope="module")
def api():
    with AxonApiServer(stages="analysis=3,retrieval=6,llm=8", limit=0) as srv:
        yield srv


def _run(name, out, **params):
    from pathlib import Path

    nb = Path(__file__).resolve().parents[2] / "notebooks" / f"{name}.ipynb"
    res = run_notebook(nb, out, parameters={"smoke": True, **params})
    assert res.status == "ok", res.error
    return load(res.sidecar), res


def test_latency_breakdown_shows_the_seven_body_stages(api, tmp_path):
    doc, res = _run("latency_breakdown", tmp_path, target_url=api.url, workspace=UUID)
    stages = load_frame(res.sidecar, "stages")
    assert SEVEN <= set(stages.stage)
    assert doc["results"]["timeline_spans"] == 7 and doc["results"]["timeline_reconstructed"]
    assert doc["provenance"]["parameters"]["workspace"] == UUID
    assert doc["results"]["profile"] == "axon-api"  # detected, and recorded
    html = res.html.read_text()
    assert "no stage timings" not in html and "Traceback" not in html


def test_load_baseline_against_the_real_contract(api, tmp_path):
    doc, _ = _run("load_baseline", tmp_path, target_url=api.url, workspace=UUID)
    sc = doc["results"]["scenarios"]["simple"]
    assert sc["count"] > 0 and sc["error_rate"] == 0 and doc["results"]["profile"] == "axon-api"


def test_before_after_compares_two_deployments(api, tmp_path):
    with AxonApiServer(stages="analysis=3,retrieval=2,llm=4", limit=0) as faster:
        doc, res = _run("before_after", tmp_path, before=api.url, after=faster.url, workspace=UUID)
    table = load_frame(res.sidecar, "measuring_success").set_index("metric")
    assert table.loc["p95 Latency", "after"] < table.loc["p95 Latency", "before"]
    assert doc["verdict"]["status"] in {"pass", "warn", "fail", "info"}
    assert doc["results"]["before"]["profile"] == doc["results"]["after"]["profile"] == "axon-api"


def test_no_stage_timings_is_said_in_one_line_and_the_rest_renders(api, tmp_path):
    profile = tmp_path / "bodyless.toml"
    profile.write_text('base = "axon-api"\nname = "no-stages"\nstage_json = ""\n')
    doc, res = _run(
        "latency_breakdown", tmp_path / "out", target_url=api.url, workspace=UUID,
        profile=str(profile),
    )  # fmt: skip
    html = res.html.read_text()
    assert "no stage timings in" in html and "looked in nowhere" in html
    assert doc["verdict"]["status"] == "info" and doc["results"]["requests"] > 0
    assert "Traceback" not in html


def test_latency_breakdown_streams_ttft_and_inter_chunk_latency(tmp_path):
    with AxonApiServer(stages="llm=8", ttft_ms=12, chunk_gap_ms=3, chunks=6, limit=0) as srv:
        doc, _ = _run(
            "latency_breakdown", tmp_path, target_url=srv.url, workspace=UUID, stream=True
        )
    stream = {r["figure"]: r for r in doc["results"]["stream"]}
    assert {"ttft", "itl", "chunks", "llm-start", "complete"} <= set(stream)
    assert stream["chunks"]["p50_ms"] == 6
    assert stream["itl"]["p50_ms"] == pytest.approx(3, abs=1)
    assert stream["ttft"]["p50_ms"] - stream["llm-start"]["p50_ms"] == pytest.approx(12, abs=1)
