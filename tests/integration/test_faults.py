"""Faults survived: Redis killed under load (< 1% errors, recovery), down or hung stores give a bounded 503 and recover, policies in /metrics; spike and a short soak on the same server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import time
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from axon_lab.errors import BackendUnavailable
from axon_lab.pipeline import LLMOptions, PipelineOptions
from axon_lab.pipeline.core import BackendGuard, Fault
from axon_lab.stack import Cache, RedisServer

PROCESS = "/api/v1/prompts/process"


# --- units: the guard and the cache, no server --------------------------------------------------
def _guard(name: str = "qdrant", **kw) -> BackendGuard:
    base = dict(
        timeout_s=1.0,
        retries=0,
        retry_backoff_s=0.0,
        breaker_failures=100,
        breaker_cooldown_s=1.0,
        max_inflight=4,
    )
    return BackendGuard(name, **{**base, **kw})


def test_guard_times_out_each_attempt_retries_and_names_the_backend():
    g = _guard(timeout_s=0.1, retries=1)
    t0 = time.perf_counter()
    with pytest.raises(BackendUnavailable) as err:
        asyncio.run(g.call(time.sleep, 0.6))
    assert time.perf_counter() - t0 < 0.5  # two 0.1 s attempts, not the 0.6 s call
    assert err.value.backend == "qdrant"
    assert "timed out after 0.1s (2 attempts)" in str(err.value)
    st = g.stats()
    assert st["timeouts"] == 2 and st["retried"] == 1 and st["failures"] == 2
    g.close()


def test_circuit_opens_fails_fast_then_a_probe_closes_it():
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise ConnectionRefusedError("refused")

    g = _guard("mongodb", breaker_failures=3, breaker_cooldown_s=0.3)

    async def main() -> None:
        for _ in range(3):
            with pytest.raises(BackendUnavailable, match="ConnectionRefusedError"):
                await g.call(refused)
        assert g.state == "open"
        with pytest.raises(BackendUnavailable, match="circuit open after 3 consecutive failures"):
            await g.call(refused)
        assert len(calls) == 3  # failed fast: the store was not called
        await asyncio.sleep(0.35)
        assert await g.call(lambda: 42) == 42  # the half-open probe succeeds
        assert g.state == "closed"

    asyncio.run(main())
    g.close()


def test_a_hung_store_fills_its_own_pool_and_then_fails_fast():
    g = _guard(timeout_s=0.1, max_inflight=2)
    g.set_fault(Fault("pause"))

    async def main() -> None:
        for _ in range(2):
            with pytest.raises(BackendUnavailable, match="timed out"):
                await g.call(lambda: 1)
        assert g.inflight == 2  # both threads still stuck in the "store"
        t0 = time.perf_counter()
        with pytest.raises(BackendUnavailable, match="still in flight"):
            await g.call(lambda: 1)
        assert time.perf_counter() - t0 < 0.05
        assert await asyncio.to_thread(lambda: 7) == 7  # the default pool is untouched
        assert await g.probe(lambda: True, 0.5) is False  # health: down while saturated
        g.set_fault(None)  # the store "comes back": stuck calls finish
        for _ in range(50):
            if g.inflight == 0:
                break
            await asyncio.sleep(0.02)
        assert g.inflight == 0
        assert await g.call(lambda: 5) == 5

    asyncio.run(main())
    g.close()


def test_spans_measured_inside_a_store_call_land_in_the_request_trace():
    from axon_lab.instrument import measure, trace

    def search() -> int:
        with measure("vector_search"):
            return 3

    g = _guard()

    async def main() -> dict:
        with trace() as tr:
            assert await g.call(search) == 3
        return tr.durations_ms()

    assert "vector_search" in asyncio.run(main())
    g.close()


def test_cache_degrades_fast_and_comes_back_by_itself():
    with RedisServer() as srv:

        async def main() -> None:
            c = Cache(srv.url, timeout_s=0.2, cooldown_s=0.3)
            assert await c.set("k", b"v", 60)
            assert await c.lookup("k") == (b"v", True)
            assert await c.lookup("absent") == (None, True)  # a real miss
            srv.kill()
            assert await c.lookup("k") == (None, False) and c.degraded  # a failure, not a miss
            t0 = time.perf_counter()
            for _ in range(100):
                assert await c.lookup("k") == (None, False)
            assert time.perf_counter() - t0 < 0.1 and c.skipped >= 100  # circuit open: no waiting
            srv.start()  # empty, same port
            await asyncio.sleep(0.35)
            assert await c.set("k", b"w", 60)  # the probe after the cooldown succeeds
            assert not c.degraded and c.state == "closed"
            assert await c.lookup("k") == (b"w", True)
            await c.close()

        asyncio.run(main())


def test_frozen_redis_costs_one_timeout_per_cooldown():
    with RedisServer() as srv:

        async def main() -> None:
            c = Cache(srv.url, timeout_s=0.2, cooldown_s=5.0)
            assert await c.set("k", b"v", 60)
            srv.pause()
            try:
                t0 = time.perf_counter()
                assert await c.lookup("k") == (None, False)
                first = time.perf_counter() - t0
                t0 = time.perf_counter()
                for _ in range(20):
                    await c.lookup("k")
                rest = time.perf_counter() - t0
            finally:
                srv.resume()
            assert 0.15 < first < 1.5 and rest < 0.1, (first, rest)
            assert c.timeouts == 1
            assert await c.ping() and not c.degraded  # health checks always probe
            await c.close()

        asyncio.run(main())


def test_fault_endpoints_are_off_unless_enabled(api_client):
    r = api_client.put("/api/v1/faults/qdrant", json={"mode": "stop"})
    assert r.status_code == 404 and "AXON_FAULT_INJECTION" in r.json()["error"]
    assert api_client.get("/api/v1/faults").status_code == 404


@pytest.mark.slow
def test_fault_endpoints_stop_and_restart_the_redis_server_the_api_owns(tmp_path):
    from fastapi.testclient import TestClient

    from axon_lab.api.app import create_app
    from axon_lab.config import Settings

    app = create_app(Settings(data_dir=tmp_path), load_corpus=False, fault_injection=True)
    with TestClient(app) as client:
        server = client.app.state.stack.redis_server
        assert server is not None and server.ping()
        assert (
            client.put(
                "/api/v1/faults/redis", json={"mode": "latency", "latency_ms": 5}
            ).status_code
            == 422
        )
        assert client.put("/api/v1/faults/nope", json={"mode": "stop"}).status_code == 404
        r = client.put("/api/v1/faults/redis", json={"mode": "stop"})
        assert r.status_code == 200 and r.json()["faults"]["redis"]["mode"] == "stop"
        assert not server.ping() and "redis" in client.get("/health").json()["down"]
        r = client.delete("/api/v1/faults/redis")
        assert r.status_code == 200 and r.json()["faults"]["redis"] is None
        assert server.ping() and "redis" not in client.get("/health").json()["down"]
        r = client.put("/api/v1/faults/mongodb", json={"mode": "stop"})
        assert (
            r.json()["faults"]["mongodb"]["mode"] == "stop"
            and "mongodb" in client.get("/health").json()["down"]
        )
        client.delete("/api/v1/faults/mongodb")
        assert "mongodb" not in client.get("/health").json()["down"]


def test_a_fault_run_directory_with_unreadable_records_is_one_clear_error(tmp_path):
    from axon_lab.errors import InputFileError
    from axon_lab.faults import EVENTS_NAME, read_fault_run

    (tmp_path / EVENTS_NAME).write_text(json.dumps({"plan": {}, "events": []}))
    (tmp_path / "records.parquet").write_bytes(b"PAR1 cut short")
    with pytest.raises(InputFileError, match="records.parquet: unreadable records"):
        read_fault_run(tmp_path)
    with pytest.raises(InputFileError, match="not a fault run directory"):
        read_fault_run(tmp_path / "nowhere")


# --- against the embedded Axon with fault injection on ------------------------------------------
@pytest.fixture(scope="module")
def data_env(lab_settings, tmp_path_factory):
    """A private data dir with the session's corpus (built once), for subprocess servers."""
    from axon_lab import corpus

    corpus.build(lab_settings.corpus_limit, settings=lab_settings)
    d = tmp_path_factory.mktemp("faults-data")
    shutil.copytree(lab_settings.data_dir / "corpus", d / "corpus")
    return {"AXON_DATA_DIR": str(d), "AXON_CORPUS_LIMIT": str(lab_settings.corpus_limit)}


@pytest.fixture(scope="module")
def target(data_env, tmp_path_factory):
    from axon_lab.faults import start_fault_target

    opts = PipelineOptions(
        llm=LLMOptions(median_ms=30.0),
        vector_timeout_s=0.5,
        document_timeout_s=0.5,
        breaker_cooldown_s=0.5,
    )
    log = tmp_path_factory.mktemp("faults-log") / "server.log"
    with start_fault_target(env=data_env, options=opts, log_path=log) as t:
        yield t


def _prompt(tag: str) -> dict:
    return {
        "prompt": f"How does the {tag} module handle errors? [{uuid.uuid4().hex[:8]}]",
        "workspaceId": "test",
        "source": "api",
    }


def _wait_ok(client: httpx.Client, timeout_s: float = 15.0) -> float:
    """Seconds until a fresh request is answered 200 (recovery), bounded."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        if client.post(PROCESS, json=_prompt("json")).status_code == 200:
            return time.monotonic() - t0
        time.sleep(0.2)
    raise AssertionError(f"not recovered within {timeout_s}s")


@pytest.mark.slow
def test_redis_killed_during_a_load_run_degrades_and_recovers(target, tmp_path):
    from axon_lab.faults import read_fault_run, run_fault, verdict

    run = run_fault(
        target,
        backend="redis",
        mode="stop",
        at_s=3.0,
        for_s=3.0,
        duration_s=10.0,
        rate=8.0,
        out_dir=tmp_path / "run",
    )
    ph = run.phases.set_index("phase")
    assert ph.loc["during", "requests"] >= 15
    assert ph.loc["during", "error_rate"] < 0.01, run.phases  # degrade, don't die
    assert run.phases["server_errors"].sum() == 0
    assert ph.loc["during", "degraded_share"] > 0.5  # served without the cache, and marked so
    during = run.health[run.health["phase"] == "during"]
    assert (during["code"] == 503).any() and during["down"].str.contains("redis").any()
    rec = run.recovery
    assert rec["recovered"] and rec["recovery_s"] < 3.0, rec  # the cache came back by itself
    assert rec["health_recovery_s"] is not None and rec["health_recovery_s"] < 3.0
    assert not run.records.sort_values("t_s")["degraded"].tail(5).any()
    assert verdict(run)["status"] == "pass"
    redis = httpx.get(f"{target.url}/metrics", timeout=10).json()["backends"]["redis"]
    assert redis["errors"] > 0 and redis["state"] == "closed" and redis["last_recovery_unix"]

    # a killed experiment leaves a stub summary: the analysis falls back to the schedule's clock
    (tmp_path / "run" / "summary.json").write_text(
        json.dumps({"schema": "axon_lab.load.summary/1", "incomplete": True})
    )
    again = read_fault_run(tmp_path / "run")
    assert len(again.records) == len(run.records)
    assert abs(again.fault["start_s"] - run.fault["start_s"]) < 1.0
    assert again.recovery["recovered"]


@pytest.mark.slow
def test_fault_cli_analyzes_a_run_directory(target, tmp_path, capsys):
    from axon_lab.cli import main
    from axon_lab.faults import run_fault
    from axon_lab.report import load

    run_fault(
        target,
        backend="qdrant",
        mode="latency",
        latency_ms=150.0,
        at_s=1.5,
        for_s=1.5,
        duration_s=5.0,
        rate=4.0,
        out_dir=tmp_path,
    )
    assert main(["fault", "--analyze", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "verdict: " in out and f"sidecar: {tmp_path}" in out and "during" in out
    assert main(["fault", "--analyze", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["verdict"]["status"] in ("pass", "warn", "info")
    doc = load(tmp_path / "faults.results.json")
    ph = {p["phase"]: p for p in doc["results"]["phases"]}
    assert ph["during"]["p50_ms"] > ph["before"]["p50_ms"]  # the stores' added latency shows
    assert (tmp_path / "fault_timeline.png").stat().st_size > 10_000


@pytest.mark.slow
def test_vector_store_down_is_a_fast_503_and_the_server_recovers(target):
    deadline = target.policies()["qdrant"]["deadline_s"]
    with httpx.Client(base_url=target.url, timeout=30) as c:
        target.inject("qdrant", "stop")
        try:
            t0 = time.perf_counter()
            r = c.post(PROCESS, json=_prompt("qdrant"))
            took = time.perf_counter() - t0
            assert r.status_code == 503, r.text
            body = r.json()
            assert body["backend"] == "qdrant" and body["error"].startswith("qdrant unavailable")
            assert int(r.headers["Retry-After"]) >= 1
            assert took < deadline + 3.0
            h = c.get("/health")
            assert h.status_code == 503 and "qdrant" in h.json()["down"]
        finally:
            target.clear("qdrant", "stop")
        assert _wait_ok(c) < 10.0
        assert c.get("/health").status_code == 200


@pytest.mark.slow
def test_hung_document_store_answers_503_within_its_deadline_never_hangs(target):
    pol = target.policies()["mongodb"]
    with httpx.Client(base_url=target.url, timeout=30) as c:
        target.inject("mongodb", "pause")
        try:

            def one(i: int) -> tuple[int, float, dict]:
                t0 = time.perf_counter()
                r = c.post(PROCESS, json=_prompt(f"hung{i}"))
                return r.status_code, time.perf_counter() - t0, r.json()

            with concurrent.futures.ThreadPoolExecutor(12) as ex:
                answers = list(ex.map(one, range(12)))
            assert {a[0] for a in answers} == {503}, answers
            assert {a[2]["backend"] for a in answers} == {"mongodb"}
            # every client got its answer within the policy's deadline (plus queueing on 2 cores)
            assert max(a[1] for a in answers) < pol["deadline_s"] + 4.0, answers
            t0 = time.perf_counter()
            h = c.get("/health")
            assert h.status_code == 503 and "mongodb" in h.json()["down"]
            assert (
                time.perf_counter() - t0 < 2.5
            )  # /health never hangs on a hung store (0.8 s probes)
            st = c.get("/metrics").json()["backends"]["mongodb"]
            assert st["inflight"] <= st["max_inflight"] and st["timeouts"] >= 1
            assert st["fault"]["mode"] == "pause"
        finally:
            target.clear("mongodb", "pause")
        assert _wait_ok(c) < 10.0
        assert c.get("/metrics").json()["backends"]["mongodb"]["fault"] is None


@pytest.mark.slow
def test_slow_vector_store_beyond_its_timeout_is_a_503_below_it_a_slow_200(target):
    with httpx.Client(base_url=target.url, timeout=30) as c:
        target.inject("qdrant", "latency", latency_ms=1500.0)
        try:
            r = c.post(PROCESS, json=_prompt("slow"))
            assert r.status_code == 503 and "timed out after 0.5s" in r.json()["error"], r.text
        finally:
            target.clear("qdrant", "latency")
        _wait_ok(c)
        target.inject("qdrant", "latency", latency_ms=100.0)
        try:
            r = c.post(PROCESS, json=_prompt("bit-slow"))
            assert r.status_code == 200
            assert r.json()["metadata"]["latency"]["retrieval"] >= 100.0
        finally:
            target.clear("qdrant", "latency")


@pytest.mark.slow
def test_timeouts_and_retries_per_backend_are_options_reported_in_metrics(target):
    pol = target.policies()
    assert pol["qdrant"]["timeout_s"] == 0.5 and pol["qdrant"]["retries"] == 1
    assert pol["qdrant"]["deadline_s"] == pytest.approx(0.5 * 2 + 0.05)
    assert pol["mongodb"]["timeout_s"] == 0.5 and pol["redis"]["timeout_s"] == 0.25
    assert pol["redis"]["on_failure"].startswith("degrade")
    before = httpx.get(f"{target.url}/api/v1/options", timeout=10).json()
    try:
        target.set_options({"vector_timeout_s": 0.7, "vector_retries": 2, "redis_timeout_s": 0.1})
        pol = target.policies()
        assert pol["qdrant"]["timeout_s"] == 0.7 and pol["qdrant"]["retries"] == 2
        assert pol["redis"]["timeout_s"] == 0.1
        text = httpx.get(f"{target.url}/metrics/prometheus", timeout=10).text
        fams = {f.name: f for f in text_string_to_metric_families(text)}
        timeouts = {
            s.labels["backend"]: s.value for s in fams["axon_backend_timeout_seconds"].samples
        }
        retries = {s.labels["backend"]: s.value for s in fams["axon_backend_retries"].samples}
        assert timeouts == {"redis": 0.1, "qdrant": 0.7, "mongodb": 0.5}
        assert (
            retries["qdrant"] == 2
            and "axon_backend_calls" in fams
            and "axon_backend_circuit_open" in fams
        )
    finally:
        target.set_options(before)


@pytest.mark.slow
def test_spike_5_50_5_has_no_server_errors(target, tmp_path):
    from axon_lab.load import LoadRunner

    res = LoadRunner(
        url=target.url,
        scenario="spike",
        scale=0.1,
        out_dir=tmp_path,
        progress=False,
        timeout_s=20.0,
    ).run()
    s = res.summary
    assert s["engine"]["peak_vus"] == 50
    assert s["count"] >= 100
    assert not any(code.startswith("5") for code in s["requests"]["status_counts"]), s["requests"]
    assert s["requests"]["failed"] == 0 and s["requests"]["timeouts"] == 0


@pytest.mark.slow
def test_short_soak_fits_the_memory_slope_and_latency_drift(target, tmp_path):
    from axon_lab.profiling.soak import results, run_soak, verdict

    run = run_soak(target.url, duration_s=12.0, rate=4.0, sample_interval_s=0.25, out_dir=tmp_path)
    m, lat = run.memory, run.latency
    assert m["samples"] >= 20 and m["slope_mb_per_min"] is not None and len(m["ci95"]) == 2
    assert m["leak_suspected"] is None  # too short to judge, and said so
    assert lat["ratio"] is not None and lat["p50_slope_ms_per_min"] is not None
    assert run.summary["errors"] == 0
    v = verdict(run)
    assert v["status"] == "info" and "not judged" in v["summary"]
    assert results(run)["rss_samples"] == len(run.resources)
    assert (tmp_path / "resources.parquet").exists()
