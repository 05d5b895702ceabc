"""papermill execution, parameters, failure handling, redaction and the report index."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from axon_lab.errors import ConfigError
from axon_lab.report import load
from axon_lab.report.index import write_index
from axon_lab.report.run import coerce_parameters, run_notebook

TINY = Path(__file__).parent / "data" / "tiny.ipynb"
pytestmark = pytest.mark.notebook


def test_parameters_are_checked_and_typed():
    assert coerce_parameters(TINY, {"n": "5", "smoke": "true", "secret_uri": "x"}) == {
        "n": 5,
        "smoke": True,
        "secret_uri": "x",
    }
    with pytest.raises(
        ConfigError, match="unknown parameter 'nn'; valid: fail, n, secret_uri, smoke"
    ):
        coerce_parameters(TINY, {"nn": "1"})
    with pytest.raises(ConfigError, match="parameter n='five' is not a valid int"):
        coerce_parameters(TINY, {"n": "five"})
    with pytest.raises(ConfigError, match="parameter smoke='maybe' is not a valid bool"):
        coerce_parameters(TINY, {"smoke": "maybe"})


def test_run_ok_writes_sidecar_and_html_without_code_or_secrets(tmp_path, capfd):
    r = run_notebook(TINY, tmp_path, parameters={"n": "4", "secret_uri": "mongodb://u:hunter22@h/"})
    assert r.status == "ok", r.error
    # the kernel talks over Unix sockets: no ipykernel warning about plain-text TCP on stderr
    assert "without encryption" not in capfd.readouterr().err
    doc = load(r.sidecar)
    assert doc["results"] == {"n": 4, "partial": False} and doc["status"] == "ok"
    html = r.html.read_text()
    assert "hunter22" not in html and "hunter22" not in r.executed.read_text()
    assert "mongodb://u:***@h/" in html  # the printed output, redacted
    assert '<div class="highlight' not in html  # code hidden by default
    shown = run_notebook(TINY, tmp_path / "code", show_code=True)
    assert '<div class="highlight' in shown.html.read_text()


def test_failing_notebook_keeps_partial_results_and_renders_the_failure(tmp_path):
    r = run_notebook(TINY, tmp_path, parameters={"fail": "true"})
    assert r.status == "failed"
    assert "failed on purpose" in r.error
    doc = load(r.sidecar)
    assert doc["status"] == "failed" and doc["results"]["partial"] is True
    assert doc["verdict"]["status"] == "fail"
    html = r.html.read_text()
    assert "Notebook failed" in html and "failed on purpose" in html
    idx = write_index([r], tmp_path)
    assert "tiny" in idx.read_text()
    assert json.loads((tmp_path / "index.json").read_text())["reports"][0]["status"] == "failed"


def test_cli_run_exit_codes(tmp_path):
    from axon_lab.cli import main

    assert main(["run", str(TINY), "--out", str(tmp_path / "a"), "-p", "n", "2"]) == 0
    assert main(["run", str(TINY), "--out", str(tmp_path / "b"), "-p", "fail", "true"]) == 1
    assert (tmp_path / "b" / "tiny.html").exists()
    assert main(["run", str(TINY), "--out", str(tmp_path / "c"), "-p", "bogus", "1"]) == 1
