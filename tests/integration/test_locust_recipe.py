"""The several-machines recipe on loopback: ``--master --expect-workers 2`` and two ``--worker`` CLIs."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

import pytest

from axon_lab.load.testserver import LoadServer

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_master_and_separately_started_workers(tmp_path):
    cli = [sys.executable, "-c", "import sys; from axon_lab.cli import main; sys.exit(main())"]
    port = _free_port()
    with LoadServer("constant:ms=20") as srv:
        common = [
            srv.url + "/work",
            "--engine",
            "locust",
            "-c",
            "10",
            "-d",
            "3",
            "--max-requests",
            "200",
            "--master-port",
            str(port),
            "--no-progress",
        ]
        master = subprocess.Popen(
            [
                *cli,
                "load",
                *common,
                "--master",
                "--expect-workers",
                "2",
                "--master-bind",
                "127.0.0.1",
                "--out",
                str(tmp_path),
                "--threshold",
                "http_req_duration:p(95)<1",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        workers = [
            subprocess.Popen(
                [*cli, "load", *common, "--worker", "--master-host", "127.0.0.1"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for _ in range(2)
        ]
        try:
            _, err = master.communicate(timeout=120)
            rcs = [w.wait(timeout=30) for w in workers]
        finally:
            for p in (master, *workers):
                if p.poll() is None:
                    p.kill()
    assert master.returncode == 99, err.decode()[-2000:]  # the threshold failed across workers
    assert rcs == [0, 0]
    s = json.loads((tmp_path / "summary.json").read_text())
    loc = s["locust"]
    assert loc["mode"] == "master-only" and loc["workers"] == 2
    assert s["count"] == 200 == sum(loc["records_by_worker"].values())
    assert loc["records_by_worker"] == loc["recorded_by_worker"] == {"0": 100, "1": 100}
