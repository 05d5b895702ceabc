"""Coordinated-omission self-test: an injected 1.4 s server stall must show in open-loop response time."""

from __future__ import annotations

import pytest

from axon_lab.load import LoadRunner
from axon_lab.load.testserver import LoadServer

pytestmark = pytest.mark.slow  # starts servers and runs timed loads of several seconds

STALL_AT_S = 2.0
STALL_MS = 1400
RATE = 200
DURATION_S = 6.0
POOL = 8


@pytest.fixture(scope="module")
def server():
    with LoadServer("constant:ms=5") as srv:
        yield srv


def _arm(server) -> None:
    server.control(reset=True, stall_at_s=STALL_AT_S, stall_ms=STALL_MS)


@pytest.fixture(scope="module")
def open_run(server):
    _arm(server)
    res = LoadRunner(
        url=server.url + "/work",
        rate=RATE,
        duration_s=DURATION_S,
        connections=POOL,
        late_ms=10,
        progress=False,
    ).run()
    assert server.stats()["stalls"] == 1
    return res


@pytest.fixture(scope="module")
def closed_run(server, open_run):
    _arm(server)
    res = LoadRunner(
        url=server.url + "/work", connections=POOL, duration_s=DURATION_S, progress=False
    ).run()
    assert server.stats()["stalls"] == 1
    return res


def test_open_loop_response_time_shows_the_stall(open_run):
    s = open_run.summary
    assert s["errors"] == 0
    # ~280 requests were due during the stall; those due in its first 0.4 s waited >= 1 s.
    assert s["metrics"]["http_req_duration"]["p99"] >= 1000.0
    assert s["p99"] >= 1000.0


def test_bounded_pool_service_time_hides_it_and_late_requests_are_counted(open_run):
    s = open_run.summary
    # Only the POOL requests in flight when the stall began saw it on the wire.
    assert s["metrics"]["http_req_service_duration"]["p99"] < 1000.0
    stalled_on_wire = (open_run.records["service_ms"] >= 1000).sum()
    assert 1 <= stalled_on_wire <= POOL
    # The requests due during the stall left late, after waiting for a connection.
    assert s["requests"]["late"] >= 200
    assert s["requests"]["queued"] >= 200
    assert s["metrics"]["schedule_lag"]["max"] >= 1000.0
    # Nothing was dropped and the backlog drained in time: the rate was achieved.
    assert s["requests"]["dropped"] == 0
    assert s["rate"]["achieved_rate_ratio"] >= 0.9
    assert open_run.passed


def test_closed_loop_under_reports(open_run, closed_run):
    closed_p99 = closed_run.summary["p99"]
    open_p99 = open_run.summary["p99"]
    # The closed loop stopped sending during the stall: only its POOL in-flight requests saw it.
    assert (closed_run.records["response_ms"] >= 1000).sum() <= POOL
    assert closed_p99 < 100.0
    assert open_p99 / closed_p99 > 10.0, (
        f"closed loop p99 {closed_p99:.1f} ms vs open loop {open_p99:.1f} ms"
    )
    assert any("coordinated omission" in w for w in closed_run.summary["warnings"])
