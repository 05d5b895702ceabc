"""The embedded Axon API against real backends: contexts, Server-Timing, caches, errors, metrics."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from axon_lab.load.servertiming import parse_server_timing

PROCESS = "/api/v1/prompts/process"
ALL_STAGES = {
    "collection",
    "analysis",
    "retrieval",
    "embed",
    "vector_search",
    "document_fetch",
    "rerank",
    "synthesis",
    "injection",
    "llm",
    "postprocessing",
    "total",
}


def _post(client, prompt, ws="test", **kw):
    return client.post(PROCESS, json={"prompt": prompt, "workspaceId": ws, "source": "api", **kw})


def test_health_reports_each_backend(api_client):
    r = api_client.get("/health")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ok"
    assert body["backends"]["redis"]["kind"] == "redis-server"
    assert body["backends"]["qdrant"]["kind"] == "qdrant-edge"
    assert "not MongoDB" in body["backends"]["mongodb"]["kind"]


def test_vector_index_is_really_hnsw(api_client):
    info = api_client.app.state.stack.vectors.info()
    assert info["points"] > 300
    assert info["indexed_vectors"] == info["points"], info
    assert "workspaceId" in info["payload_indexes"]


@pytest.mark.parametrize("ws", ["test", "acme-analytics", "acme-platform"])
def test_process_returns_contexts_from_the_right_workspace(api_client, ws):
    r = _post(api_client, "How do I parse JSON with a custom decoder?", ws)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["result"]["response"]
    assert body["contexts"], "real retrieval must find contexts"
    assert {c["workspaceId"] for c in body["contexts"]} == {ws}
    assert all(c["content"] for c in body["contexts"])
    assert body["analysis"]["intent"] in {
        "question",
        "instruction",
        "analysis",
        "debugging",
        "comparison",
        "conversation",
    }


def test_server_timing_has_every_stage(api_client):
    r = _post(api_client, "Explain how the pickle protocol handles class instances (timing)")
    assert r.status_code == 200
    timing = parse_server_timing(r.headers["Server-Timing"])
    assert ALL_STAGES <= set(timing), set(timing) ^ ALL_STAGES
    assert all(v >= 0 for v in timing.values())
    lat = r.json()["metadata"]["latency"]
    assert ALL_STAGES <= set(lat)
    # the retrieval stage contains its parts
    parts = lat["embed"] + lat["vector_search"] + lat["document_fetch"] + lat["rerank"]
    assert lat["retrieval"] + lat["analysis"] >= parts * 0.99


def test_repeated_prompt_is_a_cache_hit(api_client):
    prompt = "What does functools.lru_cache do with keyword arguments? (repeat)"
    first = _post(api_client, prompt)
    second = _post(api_client, prompt)
    assert first.status_code == second.status_code == 200
    assert "context=miss" in first.headers["X-Axon-Cache"]
    cache = second.json()["metadata"]["cache"]
    assert cache == {"context": "l1-hit", "embedding": "hit", "analysis": "hit"}, cache
    assert [c["id"] for c in first.json()["contexts"]] == [
        c["id"] for c in second.json()["contexts"]
    ]


def test_l2_redis_hit_when_l1_is_off(api_client):
    opts = api_client.get("/api/v1/options").json()
    try:
        r = api_client.put("/api/v1/options", json={**opts, "l1_cache": False})
        assert r.status_code == 200
        prompt = "How does heapq implement a priority queue? (l2)"
        assert _post(api_client, prompt).json()["metadata"]["cache"]["context"] == "miss"
        assert _post(api_client, prompt).json()["metadata"]["cache"]["context"] == "l2-hit"
    finally:
        api_client.put("/api/v1/options", json=opts)


def test_bad_options_are_422(api_client):
    r = api_client.put("/api/v1/options", json={"hnsw_ef": 2})
    assert r.status_code == 422
    assert "hnsw_ef" in r.json()["error"]


def test_invalid_json_is_422(api_client):
    r = api_client.post(
        PROCESS, content=b'{"prompt": ', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert "JSON" in r.json()["error"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"workspaceId": "test", "source": "api"}, "prompt"),
        ({"prompt": "hi", "source": "api"}, "workspaceId"),
        ({"prompt": 123, "workspaceId": "test"}, "prompt"),
        ({"prompt": "hi", "workspaceId": ["test"]}, "workspaceId"),
        ({"prompt": "hi", "workspaceId": ""}, "workspaceId"),
        ([1, 2, 3], "body"),
    ],
)
def test_bad_bodies_are_422_naming_the_field(api_client, body, field):
    r = api_client.post(PROCESS, json=body)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field
    assert r.json()["error"].startswith(field)


def test_oversized_prompt_is_413(api_client):
    from axon_lab.pipeline import MAX_PROMPT_CHARS

    r = _post(api_client, "x" * (MAX_PROMPT_CHARS + 1))
    assert r.status_code == 413
    assert "limit" in r.json()["error"]


def test_oversized_body_is_413(api_client):
    r = api_client.post(
        PROCESS, content=b"{" + b" " * 300_000 + b"}", headers={"content-type": "application/json"}
    )
    assert r.status_code == 413


def test_unknown_workspace_gives_empty_context_with_a_note(api_client):
    r = _post(api_client, "What is TypeScript?", "no-such-workspace")
    assert r.status_code == 200
    body = r.json()
    assert body["contexts"] == []
    assert any("unknown workspace" in n for n in body["metadata"]["notes"])


def test_prometheus_metrics_parse(api_client):
    _post(api_client, "How do I use argparse subcommands?")
    r = api_client.get("/metrics/prometheus")
    assert r.status_code == 200
    fams = {f.name: f for f in text_string_to_metric_families(r.text)}
    assert "axon_requests" in fams and "axon_stage_duration_seconds" in fams
    stages = {s.labels.get("stage") for s in fams["axon_stage_duration_seconds"].samples}
    assert {"analysis", "retrieval", "vector_search", "llm"} <= stages
    counts = [
        s.value
        for s in fams["axon_requests"].samples
        if s.name == "axon_requests_total" and s.labels["status"] == "200"
    ]
    assert sum(counts) >= 1


def test_metrics_json(api_client):
    m = api_client.get("/metrics").json()
    assert m["requestCount"] >= 1
    assert 0 <= m["errorRate"] <= 1
    assert m["stages"]["retrieval"]["p95_ms"] >= m["stages"]["retrieval"]["p50_ms"] > 0
    assert m["process"]["rss_bytes"] > 0


def test_health_503_when_redis_stopped_and_requests_degrade(api_client):
    server = api_client.app.state.stack.redis_server
    assert server is not None, "the lab must own its redis-server"
    server.stop()
    try:
        r = api_client.get("/health")
        assert r.status_code == 503
        assert r.json()["down"] == ["redis"]
        p = _post(api_client, "How do weak references work in Python? (degraded)")
        assert p.status_code == 200, p.text
        assert p.headers.get("X-Axon-Degraded") == "redis"
        assert p.json()["contexts"]
    finally:
        server.start()
    assert api_client.get("/health").status_code == 200
    ok = _post(api_client, "How do weak references work in Python? (recovered)")
    assert ok.status_code == 200 and "X-Axon-Degraded" not in ok.headers


def test_trace_header_returns_the_span_timeline(api_client):
    r = api_client.post(
        PROCESS,
        json={"prompt": "How do I compress data with zlib? (trace)", "workspaceId": "test"},
        headers={"X-Axon-Trace": "1"},
    )
    spans = r.json()["metadata"]["timeline"]
    names = [s["name"] for s in spans]
    assert {"analysis.intent", "analysis.task_type", "analysis.entities", "vector_search"} <= set(
        names
    )
    by = {s["name"]: s for s in spans}
    assert by["vector_search"]["parent"] == "retrieval"
    assert all(s["end_ms"] >= s["start_ms"] >= 0 for s in spans)
    assert "timeline" not in _post(api_client, "no trace").json()["metadata"]


@pytest.mark.parametrize("coalesce", [True, False])
def test_concurrent_identical_misses_share_one_computation(api_client, monkeypatch, coalesce):
    """A burst of the same new prompt: with ``coalesce`` one embedding and one retrieval serve all
    (the others report ``inflight-hit``); without it, every request computes (a cache stampede)."""
    import threading
    import time
    from concurrent.futures import ThreadPoolExecutor

    from axon_lab import embeddings

    calls: list[float] = []
    real = embeddings.embed_one

    def slow_embed(text, backend=None):  # long enough for the whole burst to arrive while it runs
        calls.append(time.monotonic())
        time.sleep(1.0)
        return real(text, backend)

    monkeypatch.setattr(embeddings, "embed_one", slow_embed)
    opts = api_client.get("/api/v1/options").json()
    n = 6
    start = threading.Barrier(n)

    def one(_):
        start.wait()
        return _post(
            api_client, f"How does the bisect module keep a list sorted? (burst {coalesce})"
        )

    try:
        assert (
            api_client.put("/api/v1/options", json={**opts, "coalesce": coalesce}).status_code
            == 200
        )
        with ThreadPoolExecutor(n) as pool:
            responses = list(pool.map(one, range(n)))
    finally:
        api_client.put("/api/v1/options", json=opts)
    assert [r.status_code for r in responses] == [200] * n
    ctx = sorted(r.json()["metadata"]["cache"]["context"] for r in responses)
    emb = sorted(r.json()["metadata"]["cache"]["embedding"] for r in responses)
    ids = {tuple(c["id"] for c in r.json()["contexts"]) for r in responses}
    assert len(ids) == 1 and ids != {()}  # everyone got the same contexts
    if coalesce:
        assert len(calls) == 1, emb
        assert ctx.count("miss") == 1 and set(ctx) <= {"miss", "inflight-hit", "l1-hit"}, ctx
        assert emb.count("miss") == 1 and set(emb) <= {"miss", "inflight-hit", "hit"}, emb
        assert "inflight-hit" in emb
    else:
        assert len(calls) > 1 and "inflight-hit" not in ctx + emb, (ctx, emb)
