"""Units of the foundation: redaction, registry, targets, Server-Timing, corpus determinism, workloads."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from axon_lab import corpus, goals, workload
from axon_lab.errors import ConfigError
from axon_lab.instrument import Trace, measure, server_timing, trace
from axon_lab.load.servertiming import parse_server_timing
from axon_lab.redact import redact, redact_text
from axon_lab.registry import Registry


@pytest.mark.parametrize(
    ("raw", "secret"),
    [
        ("mongodb://admin:s3cr3t@db.example:27017/axon?authSource=admin", "s3cr3t"),
        ("mongodb+srv://user:p%40ss@cluster0.x.mongodb.net/", "p%40ss"),
        ("redis://:hunter2@127.0.0.1:6379/0", "hunter2"),
        ("https://h/q?api_key=abc123&x=1", "abc123"),
        ("connect failed for redis://u:pw@h:1 (timeout)", "pw@"),
    ],
)
def test_redact_text_removes_passwords(raw, secret):
    out = redact_text(raw)
    assert secret not in out
    assert "***" in out


def test_redact_nested_and_secret_keys():
    doc = {"uri": "mongodb://a:b@h/", "nested": [{"password": "x"}], "api_key": "k", "n": 3}
    out = redact(doc)
    assert out == {
        "uri": "mongodb://a:***@h/",
        "nested": [{"password": "***"}],
        "api_key": "***",
        "n": 3,
    }


def test_settings_repr_redacts(monkeypatch):
    from axon_lab.config import Settings

    s = Settings(mongodb_uri="mongodb://u:topsecret@h/", redis_url="redis://:pw2@127.0.0.1:1/0")
    assert "topsecret" not in repr(s) and "pw2" not in repr(s)
    assert "topsecret" not in json.dumps(s.public())
    assert s.secret("mongodb_uri") == "mongodb://u:topsecret@h/"


def test_registry_unknown_name_lists_valid_ones():
    r: Registry[int] = Registry("shape")
    r.register("ramp", 1)
    r.register("constant", 2)
    assert r.get("ramp") == 1 and r.names() == ["constant", "ramp"]
    with pytest.raises(ConfigError, match="unknown shape 'spiky'; valid: constant, ramp"):
        r.get("spiky")


def test_targets_verdicts_use_the_pessimistic_ci_bound():
    t = goals.get("full_orchestration")  # < 3000 target, < 5000 critical
    assert t.judge(2500) == "pass"
    assert t.judge(2500, ci=(2300, 3100)) == "warn"  # CI upper bound misses the target
    assert t.judge(5200) == "fail"
    assert t.judge(None) == "unknown"
    rps = goals.get("throughput")  # > 10 target, >= 5 critical
    assert (
        rps.judge(12) == "pass" and rps.judge(12, ci=(8, 14)) == "warn" and rps.judge(4) == "fail"
    )
    assert goals.stage_status("analysis", 150) == "pass"
    assert goals.stage_status("analysis", 300) == "warn"
    assert goals.stage_status("analysis", 450) == "fail"
    with pytest.raises(ConfigError):
        goals.get("nope")


def test_measure_records_spans_nesting_and_errors():
    with trace() as t:
        with measure("outer"):
            with measure("inner"):
                pass
        with pytest.raises(ValueError, match="x"):
            with measure("boom"):
                raise ValueError("x")
    names = [s.name for s in t.spans]
    assert names == ["inner", "outer", "boom"]
    assert t.spans[0].parent == "outer"
    assert t.spans[2].outcome == "error" and "ValueError" in t.spans[2].error
    header = server_timing(t, total_ms=1.5)
    parsed = parse_server_timing(header)
    assert set(parsed) == {"inner", "outer", "boom", "total"}
    assert parsed["total"] == 1.5


def test_parse_server_timing_tolerates_odd_entries():
    assert parse_server_timing('db;dur=53, cache;desc="Cache Read";dur=23.2, miss, x;dur=abc') == {
        "db": 53.0,
        "cache": 23.2,
    }
    assert parse_server_timing("") == {}
    assert isinstance(Trace().durations_ms(), dict)


@pytest.mark.slow
def test_corpus_is_deterministic_and_sampled_representatively():
    a = corpus.build_frame(limit=200)
    b = corpus.build_frame(limit=200)
    assert a.equals(b)
    assert (a.split == "corpus").sum() == 200
    assert set(a.workspaceId) >= {"test", "acme-analytics", "acme-platform"}
    assert set(a.tier) == {"workspace", "project", "global"}
    assert a.confidence.between(0.3, 1.0).all()
    assert a.content.str.len().min() >= corpus.MIN_CHARS
    meta = json.loads(a.metadata.iloc[0])
    assert meta["source"] == "python-stdlib" and "path" in meta


def test_zipf_workload_is_deterministic_and_skewed():
    w = workload.zipf_workload(2000, s=1.2, seed=7)
    assert w == workload.zipf_workload(2000, s=1.2, seed=7)
    head = w.count(workload.PROMPTS[0])
    tail = w.count(workload.PROMPTS[-1])
    assert head > 5 * max(1, tail)
    assert len(set(workload.distinct_prompts(100))) == 100


def test_cli_errors_are_one_line_exit_1():
    r = subprocess.run(
        [sys.executable, "-m", "axon_lab", "corpus", "build", "--limit", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 1
    assert (
        r.stderr.strip().splitlines()[-1] == "axon-lab: --limit must be a positive integer, got 0"
    )


@pytest.mark.slow
def test_full_corpus_matches_the_committed_manifest():
    import platform
    from pathlib import Path

    manifest = json.loads((Path(__file__).parents[2] / "data" / "corpus-manifest.json").read_text())
    if platform.python_version() != manifest["python"]:
        pytest.skip(f"manifest was built on Python {manifest['python']}")
    df = corpus.build_frame()
    m = corpus.manifest(df)
    assert m["fingerprint"] == manifest["fingerprint"]
    assert m["workspaces"] == manifest["workspaces"]
    assert m["workspaces"]["test"] > 10_000  # HNSW is really used on the main workspace


def test_experiment_commands_end_with_the_verdict_and_exit_99_on_a_fail(capsys):
    from axon_lab.cli._verdict import finish

    assert (
        finish(
            "soak failed",
            {"status": "pass", "summary": "no leak"},
            "out/soak.results.json",
            show=True,
        )
        == 0
    )
    out = capsys.readouterr()
    assert out.out == "verdict: pass: no leak\nsidecar: out/soak.results.json\n" and out.err == ""
    assert (
        finish("soak failed", {"status": "fail", "summary": "RSS +12 MB/min"}, "x", show=False)
        == 99
    )
    out = capsys.readouterr()
    assert out.out == "" and out.err == "axon-lab: soak failed: RSS +12 MB/min\n"


def test_sink_summary_mean_is_exact_and_reset_clears_it():
    from axon_lab.instrument import Sink, Span

    sink = Sink()
    for ms in (1, 2, 3, 10):
        sink.record(
            Span(name="stage", parent=None, start_ns=0, end_ns=ms * 1_000_000, outcome="ok")
        )
    sink.record(Span(name="stage", parent=None, start_ns=0, end_ns=4_000_000, outcome="error"))
    s = sink.summary()["stage"]
    assert s["count"] == 5 and s["errors"] == 1 and s["mean_ms"] == pytest.approx(4.0)
    assert s["max_ms"] == pytest.approx(10.0, rel=1e-3) and s["p50_ms"] == pytest.approx(
        3.0, rel=1e-3
    )
    sink.reset()
    assert sink.summary() == {}


def test_single_flight_shares_results_errors_and_survives_a_cancelled_leader():
    import asyncio

    from axon_lab.pipeline.flight import SingleFlight

    async def scenario():
        flight = SingleFlight()
        runs = []

        async def work(value, delay=0.05, fail=False):
            runs.append(value)
            await asyncio.sleep(delay)
            if fail:
                raise ValueError("store down")
            return value

        # five concurrent identical calls: one computation, four shared
        out = await asyncio.gather(*(flight.do("k", lambda: work("a")) for _ in range(5)))
        assert runs == ["a"] and sorted(s for _, s in out) == [False, True, True, True, True]
        assert {v for v, _ in out} == {"a"} and len(flight) == 0
        # an error reaches every waiter, and the next call computes afresh
        res = await asyncio.gather(
            *(flight.do("e", lambda: work("e", fail=True)) for _ in range(3)),
            return_exceptions=True,
        )
        assert all(isinstance(r, ValueError) for r in res) and runs.count("e") == 1
        assert (await flight.do("e", lambda: work("e2")))[0] == "e2"
        # a cancelled leader does not cancel its followers: one of them computes
        leader = asyncio.create_task(flight.do("c", lambda: work("c1", delay=1.0)))
        await asyncio.sleep(0.01)
        follower = asyncio.create_task(flight.do("c", lambda: work("c2")))
        await asyncio.sleep(0.01)
        leader.cancel()
        assert await follower == ("c2", False)
        assert leader.cancelled() and len(flight) == 0

    asyncio.run(scenario())
