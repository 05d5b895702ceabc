"""Target profiles: the real Axon API's contract as data (bodies, stage timings, errors, limits)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from axon_lab.errors import ConfigError, InputFileError
from axon_lab.load.profiles import (
    PROFILES,
    load_profile,
    parse_policy,
    resolve_profile,
)
from axon_lab.load.records import empty_frame, normalize
from axon_lab.load.scenarios import for_profile, get_scenario
from axon_lab.load.thresholds import RunMetrics, builtin_thresholds, evaluate

UUID = "3f2b8a1e-5c4d-4e6f-9a7b-1c2d3e4f5a6b"
REAL_BODY = {
    "success": True,
    "data": {
        "requestId": "r1",
        "response": "hi",
        "metadata": {
            "tokensUsed": 12,
            "latency": {
                "collection": 1,
                "analysis": 5,
                "retrieval": 20,
                "synthesis": 3,
                "injection": 1,
                "llm": 40,
                "postProcessing": 2,
            },
            "contextUsed": 3,
            "actions": [],
        },
    },
}


def test_real_api_body_stages_land_in_the_lab_stage_names():
    read = PROFILES.get("axon-api").reader()
    facts = read(200, {"content-type": "application/json"}, json.dumps(REAL_BODY).encode())
    assert facts.stages == {
        "collection": 1.0,
        "analysis": 5.0,
        "retrieval": 20.0,
        "synthesis": 3.0,
        "injection": 1.0,
        "llm": 40.0,
        "postprocessing": 2.0,
    }
    assert facts.error is None and facts.caches is None


def test_error_codes_and_rate_limit_headers_are_read():
    read = PROFILES.get("axon-api").reader()
    body = b'{"success": false, "error": {"code": "RATE_LIMIT_EXCEEDED", "message": "Too many"}}'
    headers = {
        "ratelimit-policy": "100;w=900",
        "ratelimit-limit": "100",
        "ratelimit-remaining": "0",
        "ratelimit-reset": "842",
        "retry-after": "842",
    }
    facts = read(429, headers, body)
    assert facts.error == "429 RATE_LIMIT_EXCEEDED"
    assert facts.numbers == {
        "ratelimit.limit": 100.0,
        "ratelimit.remaining": 0.0,
        "ratelimit.reset": 842.0,
        "ratelimit.retry_after": 842.0,
    }
    assert facts.texts == {"ratelimit.policy": "100;w=900"} and facts.stages is None
    assert parse_policy("100;w=900") == (100, 900.0) and parse_policy("nonsense") is None


def test_embedded_profile_reads_server_timing_and_cache_headers():
    read = PROFILES.get("axon-lab").reader()
    facts = read(
        200,
        {"server-timing": "analysis;dur=12.5, total;dur=20", "x-axon-cache": "context=l1-hit"},
        b'{"result": "x"}',
    )
    assert facts.stages == {"analysis": 12.5, "total": 20.0}
    assert facts.caches == {"context": "l1-hit"}


def test_workspace_is_checked_before_any_request():
    api = PROFILES.get("axon-api")
    with pytest.raises(ConfigError, match="needs a workspace"):
        api.body("hi")
    with pytest.raises(ConfigError, match="needs a UUID workspaceId, got 'test'"):
        api.body("hi", "test")
    assert api.body("hi", UUID) == {"prompt": "hi", "workspaceId": UUID, "source": "api"}
    assert PROFILES.get("axon-lab").body("hi")["workspaceId"] == "test"


def test_scenarios_follow_the_profile():
    sc = for_profile(get_scenario("simple"), PROFILES.get("axon-api"), UUID)
    assert sc.body == {"prompt": "Hello", "workspaceId": UUID, "source": "api"}
    assert "json:data.response" in sc.checks and "json:result" not in sc.checks
    health = for_profile(get_scenario("health"), PROFILES.get("axon-api"), UUID)
    assert health.body is None and health.path == "/health"
    same = for_profile(get_scenario("simple"), PROFILES.get("axon-lab"))
    assert same.body == get_scenario("simple").body and same.checks == get_scenario("simple").checks


def test_profile_files_extend_a_built_in_one(tmp_path, monkeypatch):
    f = tmp_path / "mine.toml"
    f.write_text(
        'base = "axon-api"\nname = "staging"\nsource = "cli"\nauth_env = "MY_TOKEN"\n'
        'body_extra = {metadata = {language = "python"}}\n'
        f'workspace = "{UUID}"\n'
    )
    p = load_profile(f)
    assert p.name == "staging" and p.stage_json == "data.metadata.latency"
    assert p.body("x") == {
        "prompt": "x",
        "workspaceId": UUID,
        "source": "cli",
        "metadata": {"language": "python"},
    }
    assert p.auth_headers() == {}
    monkeypatch.setenv("MY_TOKEN", "s3cret")
    assert p.auth_headers() == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in json.dumps(p.to_dict()) and p.to_dict()["auth_configured"] is True
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"name": "j", "stage_json": "timings", "ok_json": "ok"}))
    assert resolve_profile(str(j)).stage_json == "timings"
    bad = tmp_path / "bad.toml"
    bad.write_text('stage_jsn = "x"\n')
    with pytest.raises(InputFileError, match="unknown profile field"):
        load_profile(bad)
    with pytest.raises(ConfigError, match="unknown target profile 'nope'"):
        resolve_profile("nope")


def _frame(statuses, errors=None, **cols):
    n = len(statuses)
    rows = {
        "seq": np.arange(n),
        "shape_stage": np.zeros(n, dtype=np.int16),
        "conn": np.zeros(n, dtype=np.int32),
        "intended_ns": np.arange(n) * 1_000_000,
        "sent_ns": np.arange(n) * 1_000_000,
        "first_byte_ns": np.arange(n) * 1_000_000 + 500_000,
        "end_ns": np.arange(n) * 1_000_000 + 900_000,
        "response_ms": np.full(n, 0.9),
        "service_ms": np.full(n, 0.9),
        "ttfb_ms": np.full(n, 0.5),
        "lag_ms": np.zeros(n),
        "connect_ms": np.full(n, np.nan),
        "status": np.array(statuses, dtype=np.int16),
        "outcome": ["ok" if s < 400 else "http_error" for s in statuses],
        "error": errors or [None] * n,
        "bytes": np.full(n, 100),
        "queued": np.zeros(n, dtype=bool),
        "late": np.zeros(n, dtype=bool),
        "checks_passed": np.full(n, -1),
        "checks_failed": np.full(n, -1),
    }
    rows.update(cols)
    frame = pd.DataFrame(rows)
    return normalize(pd.concat([empty_frame(), frame], ignore_index=True))


def _verdict(frame):
    metrics = RunMetrics(frame, elapsed_s=1.0)
    results = {r.threshold.expr: r for r in evaluate(builtin_thresholds(False), metrics)}
    return metrics, results["http_req_rejected:rate<0.5"]


def test_all_400_run_fails_naming_the_rejected_body():
    frame = _frame([400] * 10, errors=["400 VALIDATION_ERROR"] * 10)
    metrics, res = _verdict(frame)
    assert not res.ok
    assert res.reason == (
        "400 VALIDATION_ERROR on 100% of requests: the target rejected the request body"
    )
    # no successful response: no latency sample, so a latency threshold cannot pass
    value, why = metrics.value("http_req_duration", "p(95)")
    assert value is None and why.startswith("no samples")


def test_rate_limited_run_fails_naming_the_limit():
    statuses = [200] * 3 + [429] * 7
    frame = _frame(
        statuses,
        errors=[None] * 3 + ["429 RATE_LIMIT_EXCEEDED"] * 7,
        **{
            "ratelimit.policy": ["3;w=900"] * 10,
            "ratelimit.limit": np.full(10, 3.0),
            "ratelimit.remaining": np.array([2, 1, 0] + [0] * 7, dtype=float),
            "ratelimit.reset": np.full(10, 900.0),
            "ratelimit.retry_after": np.array([np.nan] * 3 + [900.0] * 7),
        },
    )
    metrics, res = _verdict(frame)
    assert not res.ok and res.reason.startswith(
        "rate limited: 429 after 3 requests, RateLimit-Policy 3;w=900, resets in 900 s"
    )
    rl = metrics.rate_limit()
    assert rl["limited"] == 7 and rl["limit"] == 3 and rl["remaining"] == 0
    # latency is judged on the 3 successful responses only
    assert metrics.value("http_req_duration", "count")[0] == 3


def test_a_few_refusals_do_not_fail_the_run():
    frame = _frame([200] * 9 + [404])
    _, res = _verdict(frame)
    assert res.ok and res.value == pytest.approx(0.1)


def test_detection_falls_back_to_the_generic_reading_for_other_servers():
    from axon_lab.load.profiles import detect_or_default
    from axon_lab.load.testserver import LoadServer

    with LoadServer() as srv:
        prof, how = detect_or_default(srv.url)
    assert prof.name == "axon-lab" and how.startswith("not detected") and "generic" in how
    prof, how = detect_or_default("http://127.0.0.1:1")  # nothing listens there
    assert prof.name == "axon-lab" and "ConnectError" in how
