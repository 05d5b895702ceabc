"""Unit tests of the load engine's parts: shapes, parsers, HDR, statistics, the HTTP client, scenarios."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hdrh.histogram import HdrHistogram
from hypothesis import given, settings
from hypothesis import strategies as st

from axon_lab import stats
from axon_lab.errors import ConfigError
from axon_lab.goals import SCENARIO_EXPECTATIONS
from axon_lab.latency.compare import compare_runs
from axon_lab.load import (
    SCENARIOS,
    SHAPES,
    Histogram,
    LoadRunner,
    constant_rate,
    constant_vus,
    get_scenario,
    merge_histograms,
    parse_cache_headers,
    parse_check,
    parse_duration,
    parse_server_timing,
    parse_stages,
    ramping_rate,
    ramping_vus,
)
from axon_lab.load.checks import CheckResponse
from axon_lab.load.http import Endpoint, build_request, is_loopback_host
from axon_lab.load.records import OUTCOMES, empty_frame
from axon_lab.load.summary import SCHEMA
from axon_lab.load.testserver import LoadServer
from axon_lab.load.thresholds import get_metric, parse_threshold
from axon_lab.provenance import machine_warning

# -- shapes ------------------------------------------------------------------------------------


def test_constant_arrivals_are_exact():
    t = np.concatenate(list(constant_rate(100, 10).arrivals()))
    assert t.size == 1000
    assert np.allclose(np.diff(t), 0.01)
    assert 0 <= t[0] < 0.01 and t[-1] < 10


def test_poisson_arrivals_are_poisson():
    t = np.concatenate(list(constant_rate(200, 50, arrival="poisson").arrivals(seed=1)))
    gaps = np.diff(t)
    assert abs(t.size - 10_000) < 4 * math.sqrt(10_000)
    assert gaps.mean() == pytest.approx(1 / 200, rel=0.03)
    assert gaps.std() == pytest.approx(1 / 200, rel=0.05)  # exponential: sd = mean
    assert np.all(gaps >= 0)


def test_ramping_rate_follows_its_stages():
    shape = ramping_rate([(10, 100), (10, 100), (5, 0)])
    t = np.concatenate(list(shape.arrivals()))
    assert t.size == pytest.approx(shape.expected_requests(), abs=1) == 1750
    per_s = np.histogram(t, bins=25, range=(0, 25))[0]
    assert per_s[0] == 5 and per_s[9] == 95  # ramp 0 → 100 over 10 s: mid-second rates
    assert (per_s[10:20] == 100).all()
    assert per_s[24] == 10
    assert shape.target_at(5) == 50 and shape.stage_at(12) == 1


def test_spike_shape_and_scale():
    spike = get_scenario("spike")
    assert spike.shape.stages == ((30, 5), (10, 50), (60, 50), (30, 5))
    assert spike.shape.peak == 50 and spike.shape.duration_s == 130
    small = spike.scaled(0.1).shape
    assert small.duration_s == pytest.approx(13) and small.peak == 50
    assert small.think_time_s == spike.shape.think_time_s


def test_shape_validation_and_registry():
    with pytest.raises(ConfigError, match="valid: constant-arrival-rate, constant-vus"):
        SHAPES.get("soak")
    with pytest.raises(ConfigError):
        constant_vus(0, 10)
    with pytest.raises(ConfigError):
        ramping_vus([(0, 5)])
    assert SHAPES.get("ramping-vus") is ramping_vus


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 30), ("30s", 30), ("1m30s", 90), ("500ms", 0.5), ("2h", 7200), ("1.5s", 1.5), (12, 12)],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


def test_parse_bad_duration_and_stages():
    for bad in ("", "abc", "10x", "-5", "0"):
        with pytest.raises(ConfigError):
            parse_duration(bad)
    assert parse_stages("30s:5,10s:50,1m:50,30s:5") == [(30, 5), (10, 50), (60, 50), (30, 5)]
    with pytest.raises(ConfigError):
        parse_stages("30s")


def test_runner_shape_resolution():
    u = "http://127.0.0.1:9/x"
    assert LoadRunner(url=u).shape.executor == "constant-vus"
    r = LoadRunner(url=u, rate=50, duration_s=4, arrival="poisson")
    assert r.shape.executor == "constant-arrival-rate" and r.shape.arrival == "poisson"
    assert r.connections == 256  # open-loop pool bound by default
    assert LoadRunner(url=u, stages=[(5, 10)]).shape.executor == "ramping-vus"
    assert (
        LoadRunner(url=u, arrival="constant", stages=[(5, 10)]).shape.executor
        == "ramping-arrival-rate"
    )
    sc = LoadRunner(url=u, scenario="simple", scale=0.1)
    assert sc.shape.duration_s == pytest.approx(6) and sc.connections == 10
    assert sc.target.path == "/api/v1/prompts/process" and sc.method == "POST"
    assert LoadRunner(url=u, scenario="health", connections=3, duration_s=2).shape.stages == (
        (2, 3),
    )
    with pytest.raises(ConfigError, match="stages"):
        LoadRunner(url=u, scenario="spike", connections=10)
    with pytest.raises(ConfigError, match="think time"):
        LoadRunner(url=u, rate=10, think_time_s=1)


# -- scenarios -----------------------------------------------------------------------------------


def test_scenarios_carry_the_guide_expectations():
    assert SCENARIOS.names() == ["complex", "health", "simple", "spike", "sustained"]
    h = get_scenario("health")
    assert h.method == "GET" and h.path == "/health" and h.shape.stages == ((60, 50),)
    assert h.thresholds() == [
        "http_req_duration:p(95)<50",
        "http_reqs:rate>100",
        "http_req_failed:rate<=0",
    ]
    s = get_scenario("simple")
    assert s.body == {"prompt": "Hello", "workspaceId": "test", "source": "api"}
    assert get_scenario("complex").shape.stages == ((120, 5),)
    assert get_scenario("sustained").shape.stages == ((1800, 10),)
    for name, sc in ((n, get_scenario(n)) for n in SCENARIOS.names()):
        assert sc.expectation == SCENARIO_EXPECTATIONS[name]
        for t in sc.thresholds():
            parse_threshold(t)
        for c in sc.checks:
            parse_check(c)


# -- parsers -------------------------------------------------------------------------------------


def test_server_timing_parsing():
    v = "collection;dur=0.4, analysis;dur=12.1, retrieval;dur=30.2, vector_search;dur=3.1"
    assert parse_server_timing(v) == {
        "collection": 0.4,
        "analysis": 12.1,
        "retrieval": 30.2,
        "vector_search": 3.1,
    }
    assert parse_server_timing('cache;desc="Cache, Read; x";dur=23.2, db;dur=53, app;dur=47.2') == {
        "cache": 23.2,
        "db": 53.0,
        "app": 47.2,
    }
    assert parse_server_timing("miss, db;dur=bad, x;desc=y, y;dur=1, y;dur=2") == {"y": 3.0}
    assert parse_server_timing("") == {}


@given(
    st.dictionaries(
        st.from_regex(r"[a-z_]{1,12}", fullmatch=True),
        st.floats(min_value=0, max_value=1e6, allow_nan=False),
        max_size=12,
    )
)
@settings(max_examples=80, deadline=None)
def test_server_timing_round_trip(d):
    header = ", ".join(f'{k};desc="a, b; c";dur={v!r}' for k, v in d.items())
    assert parse_server_timing(header) == pytest.approx(d)


def test_cache_header_parsing():
    assert parse_cache_headers({"x-axon-cache": "context=l1-hit, embedding=miss"}) == {
        "context": "l1-hit",
        "embedding": "miss",
    }
    assert parse_cache_headers({"x-cache": "HIT from proxy"}) == {"x-cache": "hit"}
    assert parse_cache_headers({"cache-status": "Edge; hit, Origin; fwd=uri-miss; stored"}) == {
        "Edge": "hit",
        "Origin": "uri-miss",
    }


def test_checks():
    r = CheckResponse(
        200, {"server-timing": "a;dur=1"}, b'{"result": {"x": [1, 2]}, "n": null}', 12.0, 15.0
    )
    assert parse_check("status==200")(r) and parse_check("status==200").name == "status is 200"
    assert parse_check("status in 200, 201")(r) and not parse_check("status>=400")(r)
    assert parse_check("json:result")(r) and parse_check("json:result.x.1")(r)
    assert not parse_check("json:n")(r) and not parse_check("json:missing")(r)
    assert parse_check("header:Server-Timing")(r) and parse_check("body~result")(r)
    assert parse_check("duration<13")(r) and not parse_check("response_time<13")(r)
    assert not parse_check("json:result")(CheckResponse(200, {}, b"not json", 1, 1))
    with pytest.raises(ConfigError, match="cannot parse check"):
        parse_check("latency is fine")


def test_thresholds_syntax():
    t = parse_threshold("http_req_duration:p(99.9) < 2s")
    assert (t.metric, t.agg, t.op, t.limit, t.quantile) == (
        "http_req_duration",
        "p(99.9)",
        "<",
        2000,
        99.9,
    )
    assert parse_threshold("cache.embedding:rate>=80%").limit == 0.8
    assert get_metric("stage.retrieval").kind == "trend"
    with pytest.raises(ConfigError, match="percentile"):
        parse_threshold("http_req_duration:p(0)<1")


# -- safety --------------------------------------------------------------------------------------


def test_loopback_detection_and_request_bytes():
    assert (
        is_loopback_host("127.0.0.1") and is_loopback_host("localhost") and is_loopback_host("::1")
    )
    assert not is_loopback_host("10.0.0.1") and not is_loopback_host("no-such-host.invalid")
    t = Endpoint.parse("http://127.0.0.1:8080/api?x=1")
    raw = build_request("post", t, headers={"X-A": "1"}, body='{"a":1}')
    head, body = raw.split(b"\r\n\r\n")
    assert head.startswith(b"POST /api?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n")
    assert b"Content-Length: 7" in head and b"Content-Type: application/json" in head
    assert b"X-A: 1" in head and body == b'{"a":1}'
    with pytest.raises(ConfigError):
        build_request("GET", t, headers={"X": "a\r\nInjected: 1"})
    with pytest.raises(ConfigError):
        Endpoint.parse("ftp://example.com/")


# -- HDR -----------------------------------------------------------------------------------------


@given(st.lists(st.integers(min_value=0, max_value=4_000_000_000), min_size=1, max_size=300))
@settings(max_examples=100, deadline=None)
def test_vectorised_hdr_matches_record_value(values):
    h = Histogram()
    h.record_many(np.array(values))
    ref = HdrHistogram(1, 3_600_000_000, 3)
    for v in values:
        ref.record_value(min(max(v, 1), 3_600_000_000))
    assert np.array_equal(np.ctypeslib.as_array(ref.counts), np.ctypeslib.as_array(h.hdr.counts))
    assert h.count == ref.get_total_count()
    assert h.hdr.get_value_at_percentile(99) == ref.get_value_at_percentile(99)


def test_hdr_encode_merge_and_precision():
    rng = np.random.default_rng(0)
    a, b = Histogram(), Histogram()
    xa, xb = rng.lognormal(3, 1, 5000), rng.lognormal(4, 1, 5000)
    a.record_ms(xa)
    b.record_ms(xb)
    merged = merge_histograms([{"x": Histogram.decode(a.encode())}, {"x": b}])["x"]
    assert merged.count == 10_000
    exact = stats.percentile(np.concatenate([xa, xb]), 99)
    assert merged.percentile_ms(99) == pytest.approx(exact, rel=1e-3)  # 3 significant digits
    assert "Percentile" in a.percentile_distribution()
    # mean/stddev over the non-empty buckets are hdrh's own (which walks every bucket)
    s = merged.summary_ms()
    assert s["mean"] == pytest.approx(merged.hdr.get_mean_value() / 1000, rel=1e-12)
    assert s["stddev"] == pytest.approx(merged.hdr.get_stddev() / 1000, rel=1e-9)
    assert s["mean"] == pytest.approx(float(np.concatenate([xa, xb]).mean()), rel=1e-3)


# -- statistics ----------------------------------------------------------------------------------


@given(
    st.lists(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False), min_size=1, max_size=200),
    st.floats(min_value=0.1, max_value=100),
)
@settings(max_examples=300, deadline=None)
def test_nearest_rank_definition(values, q):
    x = np.array(values)
    p = stats.percentile(x, q)
    assert p in x
    assert np.mean(x <= p) >= q / 100 - 1e-9  # at least q% at or below
    assert np.mean(x < p) < q / 100 + 1e-9  # and p is the smallest such value


def test_percentile_matches_numpy_inverted_cdf_and_known_edge():
    x = np.arange(1, 1001)
    assert stats.percentile(x, 50) == 500 and stats.percentile(x, 99) == 990
    assert stats.percentile(x, 99.9) == 999  # no floating-point off-by-one
    rng = np.random.default_rng(1)
    y = rng.normal(size=777)
    for q in (50, 90, 95, 99):
        assert stats.percentile(y, q) == np.percentile(y, q, method="inverted_cdf")
    assert math.isnan(stats.percentile([], 50))


def test_order_statistic_ci_covers_and_warns():
    rng = np.random.default_rng(0)
    true_p95 = -math.log(0.05)
    cover = 0
    for _ in range(300):
        c = stats.percentile_ci(rng.exponential(1, 400), 95)
        cover += c.low <= true_p95 <= c.high
    assert cover / 300 >= 0.92
    few = stats.percentile_ci(rng.exponential(1, 100), 99)
    assert few.high is None and "too few samples" in few.warning
    assert stats.min_samples_for_ci(99) == 368 and stats.min_samples_for_ci(95) == 72
    assert "samples above p99" in stats.percentile_ci(rng.exponential(1, 500), 99).warning
    boot = stats.percentile_ci(rng.exponential(1, 2000), 95, method="bootstrap")
    assert boot.low < boot.estimate < boot.high


def test_describe_has_the_summary_fields():
    d = stats.describe(np.arange(1, 1001, dtype=float))
    assert list(d)[:10] == list(stats.STAT_FIELDS)
    assert d["count"] == 1000 and d["p50"] == 500 and d["p999"] == 999 and d["max"] == 1000
    assert d["ci"]["p95"][0] <= 950 <= d["ci"]["p95"][1]
    empty = stats.describe([])
    assert empty["count"] == 0 and empty["p99"] is None


def test_diff_percentile_and_compare_runs():
    rng = np.random.default_rng(2)
    a, b = rng.exponential(100, 3000), rng.exponential(120, 3000)
    d = stats.diff_percentile(a, b, 95)
    assert d.significant and d.low > 0 and d.rel_change == pytest.approx(0.2, abs=0.12)
    same = stats.diff_percentile(a, rng.exponential(100, 3000), 95)
    assert same.low < 0 < same.high or not same.significant
    df = compare_runs(a, b, qs=(50, 95, 99))
    assert list(df["q"]) == [50, 95, 99] and df["significant"].all()
    prov_a, prov_b = {"machine_id": "a|cpu|2|8"}, {"machine_id": "b|cpu|2|8"}
    assert "different machines" in machine_warning(prov_a, prov_b)


# -- records, summary and the client end to end ---------------------------------------------------


def test_records_frame_columns():
    f = empty_frame()
    for col in (
        "seq",
        "intended_ns",
        "sent_ns",
        "first_byte_ns",
        "end_ns",
        "response_ms",
        "service_ms",
        "ttfb_ms",
        "lag_ms",
        "status",
        "outcome",
        "late",
        "queued",
    ):
        assert col in f.columns
    assert list(f["outcome"].cat.categories) == list(OUTCOMES)


@pytest.fixture(scope="module")
def server():
    with LoadServer("constant:ms=3") as srv:
        yield srv


def test_client_handles_chunked_close_and_errors(server):
    for path, body in (("/chunked", b'{"result":"chunked"}'), ("/close", b'{"result":"bye"}')):
        res = LoadRunner(
            url=server.url + path,
            connections=2,
            duration_s=0.5,
            progress=False,
            checks=["status==200", "json:result", ("exact body", lambda r, b=body: r.body == b)],
        ).run()
        assert res.summary["errors"] == 0 and res.summary["count"] > 5, path
        assert res.summary["checks"]["rate"] == 1.0, path
    closed = LoadRunner(
        url=server.url + "/close", connections=2, duration_s=0.5, progress=False
    ).run()
    assert closed.summary["engine"]["connections_opened"] >= closed.summary["count"]
    res = LoadRunner(
        url=server.url + "/status/500", connections=1, duration_s=0.3, progress=False
    ).run()
    assert res.summary["error_rate"] == 1.0 and res.summary["requests"]["status_counts"] == {
        "500": res.summary["count"]
    }


def test_timeouts_are_counted_at_the_timeout(tmp_path):
    with LoadServer("constant:ms=2000") as slow:
        res = LoadRunner(
            url=slow.url + "/work", connections=2, duration_s=0.5, timeout_s=0.3, progress=False
        ).run()
    s = res.summary
    assert s["requests"]["timeouts"] == s["count"] > 0 and s["error_rate"] == 1.0
    assert s["min"] >= 300 and s["max"] < 1000


def test_ramping_vus_and_think_time(server):
    res = LoadRunner(
        url=server.url + "/work",
        stages=[(0.6, 6), (0.6, 6), (0.4, 0)],
        start=1,
        think_time_s=0.05,
        progress=False,
    ).run()
    s = res.summary
    assert s["engine"]["peak_vus"] == 6 and s["loop"] == "closed"
    # 6 VUs × (3 ms + 50 ms think) ≈ 110 req/s at the plateau: think time paces them
    assert 40 < s["count"] < 250
    lag = s["metrics"]["schedule_lag"]
    assert lag["p50"] < 20  # a VU wakes from its think time on time


def test_spike_scenario_runs_scaled_against_a_url(server, tmp_path):
    res = LoadRunner(
        url=server.url, scenario="spike", scale=0.02, out_dir=tmp_path, progress=False
    ).run()
    s = res.summary
    assert s["schema"] == SCHEMA and s["target"]["scenario"] == "spike"
    assert s["engine"]["peak_vus"] == 50
    assert {t["expr"] for t in s["thresholds"] if t["source"] == "scenario"} == {
        "http_req_duration:p(95)<3000",
        "http_req_failed:rate<0.05",
    }
    assert s["checks"]["by_name"]["response has result"]["fails"] == 0
    assert res.passed and res.exit_code == 0
    for key in (
        "count",
        "min",
        "max",
        "mean",
        "stddev",
        "p50",
        "p90",
        "p95",
        "p99",
        "p999",
        "rps",
        "errors",
        "requests",
        "metrics",
        "checks",
        "thresholds",
        "client",
        "provenance",
        "incomplete",
        "ci",
        "percentile_definition",
    ):
        assert key in s
    prov = s["provenance"]
    assert prov["parameters"]["scenario"] == "spike" and prov["created_utc"].endswith("+00:00")


def test_open_ramping_rate_achieves_its_schedule(server):
    res = LoadRunner(
        url=server.url + "/work",
        arrival="poisson",
        stages=[(1, 200), (1, 200)],
        start=50,
        connections=32,
        progress=False,
    ).run()
    s = res.summary
    assert s["loop"] == "open" and s["rate"]["target_rps"] == pytest.approx(162.5)
    assert s["rate"]["achieved_rate_ratio"] >= 0.9 and s["requests"]["dropped"] == 0
    assert res.passed


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl not installed")
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    return str(cert), str(key)


def test_https_targets(tls_files):
    import ssl

    from axon_lab.errors import BackendUnavailable

    with LoadServer("constant:ms=1", tls=tls_files) as srv:
        url = srv.url + "/work"
        assert url.startswith("https://")
        trusted = ssl.create_default_context(cafile=tls_files[0])
        res = LoadRunner(
            url=url, connections=2, duration_s=0.5, ssl_context=trusted, progress=False
        ).run()
        assert res.summary["count"] > 5 and res.summary["errors"] == 0
        res = LoadRunner(
            url=url, connections=2, duration_s=0.3, insecure=True, progress=False
        ).run()
        assert res.summary["errors"] == 0
        with pytest.raises(
            BackendUnavailable, match="CERTIFICATE_VERIFY_FAILED|certificate verify"
        ):
            LoadRunner(url=url, connections=1, duration_s=0.3, progress=False).run()


def test_zero_samples_fail_every_threshold():
    from axon_lab.load.thresholds import RunMetrics, builtin_thresholds, evaluate

    metrics = RunMetrics(empty_frame(), elapsed_s=1.0, window_s=1.0, scheduled_in_window=10)
    ths = [
        parse_threshold(t)
        for t in (
            "http_req_duration:p(95)<3000",
            "http_req_failed:rate<0.05",
            "checks:rate>0.99",
            "stage.retrieval:avg<1",
        )
    ]
    results = evaluate(ths + builtin_thresholds(open_loop=True), metrics)
    assert not any(r.ok for r in results)
    assert {r.reason for r in results[:4]} >= {"no samples"}


def test_rate_shortfall_over_ten_percent_fails():
    # 100 req/s into a 100 ms server through 2 connections: at most ~20 req/s get out.
    with LoadServer("constant:ms=100") as slow:
        res = LoadRunner(
            url=slow.url + "/work",
            rate=100,
            duration_s=1.5,
            connections=2,
            grace_s=1.0,
            progress=False,
        ).run()
    failed = [t.threshold.expr for t in res.failed_thresholds]
    assert failed == ["achieved_rate_ratio:value>=0.9"]
    assert res.summary["rate"]["achieved_rate_ratio"] < 0.5 and res.exit_code == 99
    assert res.summary["requests"]["dropped"] > 0  # the backlog left at the end of the grace period
