"""``axon-lab load``: thresholds exit 0/99, unknown metrics rejected, safety, interrupted and killed runs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from axon_lab.cli import main
from axon_lab.errors import BackendUnavailable, ConfigError
from axon_lab.load import LoadRunner, read_records, read_summary
from axon_lab.load.testserver import LoadServer

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server():
    with LoadServer("constant:ms=2") as srv:
        yield srv


def test_threshold_pass_exits_0(server, tmp_path, capsys):
    rc = main(
        [
            "load",
            server.url + "/api/v1/prompts/process",
            "-m",
            "POST",
            "-b",
            '{"prompt":"x"}',
            "-c",
            "2",
            "-d",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path),
            "--threshold",
            "http_req_duration:p(95)<2000",
            "--threshold",
            "http_req_failed:rate<0.05",
            "--threshold",
            "stage.retrieval:p(95)<500",
            "--threshold",
            "checks:rate>0.99",
            "--threshold",
            "http_reqs:rate>10",
            "--check",
            "status==200",
            "--check",
            "json:result",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "Latency (ms)" in out and "Req/Sec" in out and "thresholds PASSED" in out
    s = read_summary(tmp_path)
    assert s["passed"] is True and s["incomplete"] is False
    assert {t["expr"] for t in s["thresholds"]} >= {"stage.retrieval:p(95)<500", "checks:rate>0.99"}
    assert s["checks"]["rate"] == 1.0
    assert "stage.retrieval" in s["metrics"] and s["cache"]["embedding"][
        "hit_rate"
    ] == pytest.approx(0.75, abs=0.01)
    for name in s["files"].values():
        assert (tmp_path / name).is_file()


def test_threshold_fail_exits_99(server, tmp_path, capsys):
    rc = main(
        [
            "load",
            server.url + "/work",
            "-c",
            "2",
            "-d",
            "1",
            "--no-progress",
            "--out",
            str(tmp_path),
            "--threshold",
            "http_req_duration:p(95)<0.001",
        ]
    )
    captured = capsys.readouterr()
    assert rc == 99
    assert "thresholds failed: http_req_duration:p(95)<0.001" in captured.err
    s = read_summary(tmp_path)
    assert s["passed"] is False
    failed = [t for t in s["thresholds"] if not t["ok"]]
    assert [t["expr"] for t in failed] == ["http_req_duration:p(95)<0.001"]


def test_threshold_on_missing_samples_fails_not_passes(server, capsys):
    # /work sends no Server-Timing: a stage threshold has nothing to judge, so it must fail.
    rc = main(
        [
            "load",
            server.url + "/work",
            "-c",
            "1",
            "-d",
            "0.5",
            "--no-progress",
            "--threshold",
            "stage.retrieval:p(95)<500",
            "--threshold",
            "checks:rate>0.5",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 99
    assert "no samples" in err


def test_error_rate_threshold(server, capsys):
    rc = main(
        [
            "load",
            server.url + "/status/503",
            "-c",
            "2",
            "-d",
            "0.5",
            "--no-progress",
            "--threshold",
            "http_req_failed:rate<0.05",
        ]
    )
    assert rc == 99
    assert "http_req_failed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("expr", "needle"),
    [
        ("foo_bar:p(95)<1", "unknown metric 'foo_bar'; valid: achieved_rate_ratio"),
        ("http_req_failed:p(95)<1", "aggregation 'p(95)' is not valid; valid: rate"),
        ("http_req_duration<3000", "cannot parse threshold"),
    ],
)
def test_bad_thresholds_are_rejected_before_running(expr, needle, capsys):
    t0 = time.monotonic()
    rc = main(["load", "http://127.0.0.1:9/x", "--threshold", expr, "--no-progress"])
    err = capsys.readouterr().err
    assert rc == 1
    assert needle in err and len(err.strip().splitlines()) == 1
    assert time.monotonic() - t0 < 5


def test_unknown_metric_message_lists_all_metrics():
    with pytest.raises(ConfigError) as exc:
        LoadRunner(url="http://127.0.0.1:9/", thresholds=["latency:p(95)<1"])
    for name in ("http_req_duration", "http_req_failed", "checks", "http_reqs", "stage.<name>"):
        assert name in str(exc.value)


def test_unknown_scenario_and_engine_list_valid_names():
    with pytest.raises(ConfigError, match="valid: complex, health, simple, spike, sustained"):
        LoadRunner(url="http://127.0.0.1:9/", scenario="smoke")
    with pytest.raises(ConfigError, match="valid: asyncio"):
        LoadRunner(url="http://127.0.0.1:9/", engine="gatling")


def test_remote_targets_need_allow_remote(capsys):
    rc = main(["load", "http://10.255.255.1:8080/health", "-d", "1", "--no-progress"])
    assert rc == 1
    assert "--allow-remote" in capsys.readouterr().err
    LoadRunner(url="http://10.255.255.1:8080/health", allow_remote=True)  # accepted


def test_every_run_is_bounded():
    with pytest.raises(ConfigError, match="max_duration_s"):
        LoadRunner(url="http://127.0.0.1:9/", duration_s=10 * 3600)


def test_max_requests_bounds_a_run(server):
    res = LoadRunner(
        url=server.url + "/work", connections=4, duration_s=30, max_requests=50, progress=False
    ).run()
    assert res.summary["requests"]["scheduled"] == 50 and res.summary["count"] == 50
    assert res.summary["elapsed_s"] < 10


def test_unreachable_target_is_an_error():
    with pytest.raises(BackendUnavailable, match="load target"):
        LoadRunner(url="http://127.0.0.1:9/health", duration_s=1, progress=False).run()


def test_stop_keeps_records_and_marks_incomplete(server, tmp_path):
    runner = LoadRunner(
        url=server.url + "/work", rate=100, duration_s=30, out_dir=tmp_path, progress=False
    )
    threading.Timer(1.0, runner.stop, args=("interrupted (test)",)).start()
    res = runner.run()
    assert res.incomplete and res.interrupted and res.exit_code == 130
    s = read_summary(tmp_path)
    assert s["incomplete"] is True and "interrupted" in s["incomplete_reason"]
    assert 50 <= s["count"] <= 200 and s["elapsed_s"] < 10
    assert (tmp_path / "records.parquet").is_file()
    assert len(read_records(tmp_path)) == len(res.records)


@pytest.mark.slow  # kills or runs processes for seconds
def test_dying_server_keeps_records_and_marks_incomplete(tmp_path):
    with LoadServer("constant:ms=2") as srv:
        runner = LoadRunner(
            url=srv.url + "/work",
            rate=100,
            duration_s=30,
            out_dir=tmp_path,
            abort_unreachable_s=1.0,
            progress=False,
        )
        threading.Timer(1.0, srv.stop).start()
        res = runner.run()
    s = read_summary(tmp_path)
    assert s["incomplete"] is True and "unreachable" in s["incomplete_reason"]
    assert s["requests"]["ok"] >= 50
    assert s["errors"] >= 1 and s["elapsed_s"] < 10
    assert res.exit_code == 99  # the built-in rate check fails: the run fell short of its schedule


def _cli(args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "axon_lab", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_parts(out: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (
            list((out / "records.parquet").glob("part-*.parquet"))
            if (out / "records.parquet").is_dir()
            else False
        ):
            return
        time.sleep(0.1)
    raise AssertionError("no records flushed")


@pytest.mark.slow  # kills or runs processes for seconds
def test_ctrl_c_writes_summary_and_exits_130(server, tmp_path):
    proc = _cli(
        [
            "load",
            server.url + "/work",
            "--rate",
            "50",
            "-d",
            "60",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    _wait_for_parts(tmp_path)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    s = read_summary(tmp_path)
    assert s["incomplete"] is True and "Ctrl-C" in s["incomplete_reason"]
    assert (tmp_path / "records.parquet").is_file() and s["count"] > 0
    assert "INCOMPLETE" in out


@pytest.mark.slow  # kills or runs processes for seconds
def test_killed_run_leaves_readable_partial_records(server, tmp_path):
    proc = _cli(
        [
            "load",
            server.url + "/work",
            "--rate",
            "50",
            "-d",
            "60",
            "--no-progress",
            "--out",
            str(tmp_path),
        ]
    )
    _wait_for_parts(tmp_path)
    time.sleep(0.6)
    proc.kill()
    proc.communicate(timeout=30)
    parts_dir = tmp_path / "records.parquet"
    assert parts_dir.is_dir()
    frame = read_records(tmp_path)
    assert len(frame) > 0 and frame["outcome"].eq("ok").all()
    assert len(pd.read_parquet(parts_dir)) == len(frame)  # plain pandas reads it too
    stub = json.loads((tmp_path / "summary.json").read_text())
    assert stub["incomplete"] is True and "killed" in stub["incomplete_reason"]
