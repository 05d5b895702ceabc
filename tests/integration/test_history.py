"""Run history: ingestion, idempotency, both stores, concurrent writers, bad files, the CI gate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from axon_lab.history import open_history, read_run
from axon_lab.history.check import check
from axon_lab.load import LoadRunner
from axon_lab.load.testserver import LoadServer

REPO = Path(__file__).resolve().parents[2]


def _load_run(url: str, out: Path, name: str = "work") -> Path:
    LoadRunner(
        url=url + "/work", connections=2, duration_s=0.4, out_dir=out, name=name, progress=False
    ).run()
    return out


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    with LoadServer("constant:ms=2") as srv:
        return [_load_run(srv.url, base / f"r{i}") for i in range(2)]


@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_add_is_idempotent_and_rows_carry_provenance(two_runs, tmp_path, kind):
    loc = tmp_path / ("h.duckdb" if kind == "duckdb" else "hist")
    h = open_history(loc)
    first = h.add(two_runs)
    again = h.add([two_runs[0], two_runs[0] / "summary.json"])
    assert len(first.added) == 2 and not first.errors
    assert again.added == [] and len(again.skipped) == 2
    f = h.frame()
    assert f["run_id"].nunique() == 2
    p95 = f[f.metric == "http_req_duration:p95"]
    assert len(p95) == 2 and (p95.unit == "ms").all() and (p95.better == "lower").all()
    rps = f[f.metric == "http_reqs:rate"]
    assert (rps.better == "higher").all() and (rps.value > 0).all()
    assert f["machine"].notna().all() and str(f["created_utc"].dtype).startswith("datetime64")
    runs = h.runs()
    assert list(runs["metrics"] > 5) == [True, True] and set(runs["kind"]) == {"load"}


def test_bad_paths_and_foreign_files_are_named_and_the_rest_is_read(two_runs, tmp_path):
    h = open_history(tmp_path / "hist")
    h.add(two_runs)
    (tmp_path / "hist" / "run-bogus.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "hist" / "notes.txt").write_text("hello")
    f = h.frame()
    assert f["run_id"].nunique() == 2
    assert any("run-bogus.parquet: unreadable" in e for e in h.errors)
    assert any("notes.txt: not a history file" in e for e in h.errors)
    res = h.add([tmp_path / "nothing-here", tmp_path / "hist" / "notes.txt"])
    assert len(res.errors) == 2 and all(": " in e and "\n" not in e for e in res.errors)


_WRITER = """
import sys
from axon_lab.history import open_history
h = open_history(sys.argv[1])
for path in sys.argv[2:]:
    h.add([path])
"""


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["duckdb", "parquet"])
def test_two_processes_adding_at_once_lose_nothing(tmp_path, kind):
    with LoadServer("constant:ms=1") as srv:
        runs = [_load_run(srv.url, tmp_path / f"r{i}") for i in range(8)]
    loc = tmp_path / ("h.duckdb" if kind == "duckdb" else "hist")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", _WRITER, str(loc), *map(str, runs[i::2])], env=env)
        for i in range(2)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0]
    assert open_history(loc).frame()["run_id"].nunique() == 8


def test_report_index_and_sidecars_are_runs(tmp_path):
    prov = {"created_utc": "2026-11-30T12:00:00+00:00", "machine_id": "m1",
            "commit": {"id": "abc", "dirty": False, "branch": "main"}, "parameters": {}}  # fmt: skip
    side = tmp_path / "hnsw_tuning" / "hnsw_tuning.results.json"
    side.parent.mkdir()
    side.write_text(json.dumps({
        "schema": "axon_lab.results/1", "name": "hnsw_tuning", "provenance": prov,
        "verdict": {"status": "pass", "summary": "ok"},
        "results": {"recommendation": {"recall": 0.99, "p95_ms": 1.5}},
    }))  # fmt: skip
    (tmp_path / "index.json").write_text(json.dumps({
        "provenance": prov,
        "reports": [{"name": "hnsw_tuning", "status": "ok", "seconds": 12.5,
                     "html": "hnsw_tuning/hnsw_tuning.html",
                     "sidecar": "hnsw_tuning/hnsw_tuning.results.json"}],
    }))  # fmt: skip
    runs = read_run(tmp_path)
    assert [r.kind for r in runs] == ["report", "notebook"]
    assert runs[0].values == {"report.seconds": 12.5}
    assert runs[1].values["vector.recall"] == 0.99 and runs[1].report.endswith(".html")


@pytest.mark.slow
def test_check_flags_the_p95_regression_when_caches_go_off_and_names_the_options(tmp_path):
    """6 runs with caches on, then 6 with them off, on the embedded server (LLM off)."""
    from axon_lab.api.server import running_server

    hist = tmp_path / "hist"
    env = {
        # its own data dir: the session's embedded API holds the shared Qdrant Edge shard
        "AXON_DATA_DIR": str(tmp_path / "data"),
        "AXON_CORPUS_LIMIT": "200",
        "AXON_HISTORY": str(hist),
    }
    prompts = [{"prompt": f"How do I parse JSON {i}?", "workspaceId": "test"} for i in range(3)]
    with running_server(env=env, timeout_s=600) as url:
        for group, caches in (("on", True), ("off", False)):
            opts = {"llm": {"mode": "off"}, "l1_cache": caches, "l2_cache": caches,
                    "embedding_cache": caches, "analysis_cache": caches}  # fmt: skip
            assert httpx.put(f"{url}/api/v1/options", json=opts, timeout=10).status_code == 200
            for i in range(6):
                out = tmp_path / f"{group}{i}"
                args = ["load", url + "/api/v1/prompts/process", "-c", "2", "-d", "1.5",
                        "--bodies-file", str(_bodies(tmp_path, prompts)), "--out", str(out),
                        "--name", f"caches-{group}", "--no-progress", "--profile", "axon-lab"]  # fmt: skip
                r = subprocess.run([sys.executable, "-m", "axon_lab", *args], env={**os.environ,
                                   **env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                                   timeout=120)  # fmt: skip
                assert r.returncode == 0, r.stderr[-1500:]
    f = open_history(hist).frame()
    assert f["run_id"].nunique() == 12
    res = check(f, baseline="last-6", metrics=["http_req_duration:p95"])
    assert len(res.regressions) == 1, res.to_dict()
    reg = res.regressions[0]
    assert reg.run == 6 and reg.change > 0.5
    assert "l1_cache True→False" in reg.options_change
    # the CLI gate: exit 99 with a one-line list, and a Markdown summary for the PR
    md = tmp_path / "check.md"
    r = subprocess.run(
        [sys.executable, "-m", "axon_lab", "history", "--history", str(hist), "check",
         "--baseline", "last-6", "--metric", "http_req_duration:p95", "--fail-on-regression",
         "--markdown", str(md)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60,
    )  # fmt: skip
    assert r.returncode == 99 and r.stderr.startswith("axon-lab: regressed: http_req_duration:p95")
    assert "REGRESSION  http_req_duration:p95" in r.stdout and "l1_cache" in md.read_text()


def _bodies(tmp_path: Path, prompts: list[dict]) -> Path:
    p = tmp_path / "bodies.jsonl"
    if not p.exists():
        p.write_text("\n".join(json.dumps(b) for b in prompts) + "\n")
    return p
