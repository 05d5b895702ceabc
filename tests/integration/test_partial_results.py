"""Nothing lost: SIGKILL the load process, or kill the server, mid-run; the run directory stays readable and axon-lab still reports on it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from axon_lab.lab import load_earlier_run
from axon_lab.latency import baseline
from axon_lab.latency.compare import compare_runs
from axon_lab.load import read_records, read_summary
from axon_lab.load.testserver import LoadServer

pytestmark = pytest.mark.slow  # starts servers and runs timed loads of several seconds

REPO = Path(__file__).resolve().parents[2]
PROCESS = "/api/v1/prompts/process"
BODY = json.dumps({"prompt": "What is TypeScript?", "workspaceId": "test", "source": "api"})
RATE = 40


def _load_cli(url: str, out: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "axon_lab",
            "load",
            url + PROCESS,
            "-m",
            "POST",
            "-b",
            BODY,
            "--rate",
            str(RATE),
            "-d",
            "60",
            "--no-progress",
            "--out",
            str(out),
        ],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_parts(out: Path, n: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    parts = out / "records.parquet"
    while time.monotonic() < deadline:
        if parts.is_dir() and len(list(parts.glob("part-*.parquet"))) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} record parts flushed in {timeout_s}s")


def _report(path: Path) -> dict:
    """What axon-lab reports on a run directory, finished or not: the notebook layer's loader,
    the percentile table with CIs, the time series and a run comparison."""
    run = load_earlier_run(str(path))
    table = baseline.percentile_table(run.records).set_index("percentile")
    ts = baseline.timeseries(run.records)
    cmp = compare_runs(path, path, n_boot=200)
    return {"run": run, "table": table, "timeseries": ts, "compare": cmp}


@pytest.fixture(scope="module")
def server():
    with LoadServer("lognormal:median=20,sigma=0.3") as srv:
        yield srv


def test_sigkilled_load_run_keeps_its_flushed_records_and_is_reported_on(server, tmp_path):
    server.control(reset=True)
    proc = _load_cli(server.url, tmp_path)
    try:
        _wait_for_parts(tmp_path, 2)
        time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    served = server.stats()["count"]
    frame = read_records(tmp_path)
    # records are flushed every second: at most ~1 s of requests (plus those in flight) are lost
    assert len(frame) >= 2 * RATE * 0.8
    assert served - len(frame) <= 2.5 * RATE, (served, len(frame))
    assert frame["outcome"].astype(str).eq("ok").all() and frame["seq"].is_unique
    assert {"stage.retrieval", "cache.context"} <= set(frame.columns)
    stub = read_summary(tmp_path)
    assert stub["incomplete"] is True and "killed" in stub["incomplete_reason"]
    rep = _report(tmp_path)
    assert rep["run"].summary["incomplete"] is True and len(rep["run"].records) == len(frame)
    p50 = rep["table"].loc["p50", "ms"]
    assert 5 < p50 < 200 and np.isfinite(rep["table"].loc["p95", "ms"])
    assert rep["timeseries"]["requests"].sum() == len(frame)
    assert rep["compare"].loc[rep["compare"]["q"] == 50, "a"].iloc[0] == pytest.approx(p50)

    # a part cut short (a crash of the machine mid-write) is skipped; the rest still reads
    (tmp_path / "records.parquet" / "part-999999.parquet").write_bytes(b"PAR1 truncated")
    assert len(read_records(tmp_path)) == len(frame)


def test_server_killed_mid_run_leaves_a_summary_marked_incomplete(tmp_path):
    srv = LoadServer("constant:ms=5").__enter__()
    proc = _load_cli(srv.url, tmp_path)
    try:
        _wait_for_parts(tmp_path, 2)
    finally:
        srv.stop()  # SIGKILL: connections reset, then refused
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode in (1, 99), err  # not 0: the run is incomplete, and it says so
    s = read_summary(tmp_path)
    assert s["incomplete"] is True and "unreachable" in s["incomplete_reason"]
    assert s["requests"]["ok"] >= RATE and s["errors"] >= 1
    assert (tmp_path / "records.parquet").is_file()  # consolidated after the run ended
    frame = read_records(tmp_path)
    outcomes = frame["outcome"].astype(str).value_counts().to_dict()
    assert outcomes.get("ok") == s["requests"]["ok"]
    assert sum(v for k, v in outcomes.items() if k != "ok") >= 1
    rep = _report(tmp_path)
    assert rep["table"].loc["p50", "ms"] > 0
    assert rep["timeseries"]["errors"].sum() >= 1
