"""The locust workers' HTTP client: Connection: close, chunked bodies, checks and error statuses."""

from __future__ import annotations

import pytest

from axon_lab.load import LoadRunner
from axon_lab.load.testserver import LoadServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server():
    with LoadServer("constant:ms=2") as srv:
        yield srv


@pytest.mark.parametrize(
    ("path", "check", "status"),
    [
        ("/close", "body~bye", 200),
        ("/chunked", "json:result", 200),
        ("/status/503", "status==503", 503),
    ],
)
def test_worker_client_reads_every_response_kind(server, path, check, status):
    res = LoadRunner(
        url=server.url + path,
        connections=4,
        duration_s=5,
        max_requests=40,
        engine="locust",
        engine_options={"workers": 1},
        checks=[check],
        progress=False,
    ).run()
    s = res.summary
    assert s["count"] == 40, s.get("incomplete_reason")
    assert (res.records["status"] == status).all()
    assert s["checks"]["rate"] == 1.0
    if status >= 400:
        assert s["errors"] == 40
    else:
        assert s["errors"] == 0 and (res.records["bytes"] > 0).all()


def test_guide_preset_with_stages_runs_on_locust(server):
    # The spike preset at 5% scale: 1→5 VUs, jump to 50, hold, back to 5 (think time 1 s).
    res = LoadRunner(
        url=server.url,
        scenario="spike",
        scale=0.05,
        engine="locust",
        engine_options={"workers": 2},
        progress=False,
    ).run()
    s = res.summary
    assert not res.incomplete, s.get("incomplete_reason")
    assert s["shape"]["executor"] == "ramping-vus"
    bad = res.records[res.records["outcome"] != "ok"]
    # Ramp-down lets requests finish, so nothing is interrupted.
    assert bad.empty, bad[["seq", "shape_stage", "outcome", "error"]].to_string()
    assert s["checks"]["rate"] == 1.0 and res.passed
    by_stage = res.records.groupby("shape_stage").size()
    # The 50-VU plateau (stage 2, 1.5 s) sends far more than the 1→5 VU ramp (stage 0).
    assert by_stage.get(2, 0) > 3 * by_stage.get(0, 0)
