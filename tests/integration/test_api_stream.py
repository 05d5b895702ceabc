"""``"stream": true`` on the embedded Axon: the real Axon API's Server-Sent Events, stage by stage."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from itertools import pairwise
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from axon_lab.pipeline import (
    STREAM_LATENCY_KEYS,
    LLMOptions,
    Pipeline,
    PipelineOptions,
    chunk_offsets_ms,
    split_chunks,
)

PROCESS = "/api/v1/prompts/process"
STAGES_BEFORE_LLM = [
    "analysis",
    "analysis",
    "analysis",
    "retrieval",
    "retrieval",
    "context",
    "context",
    "llm-start",
]


def _body(prompt: str, ws: str = "test", **kw: Any) -> dict[str, Any]:
    return {"prompt": prompt, "workspaceId": ws, "source": "api", **kw}


def _parse(text: str) -> list[Any]:
    """SSE body → events: each ``data: <json>`` block (no other field), ``[DONE]`` as a string."""
    blocks = text.split("\n\n")
    assert blocks[-1] == "", "every event ends with a blank line"
    events: list[Any] = []
    for block in blocks[:-1]:
        assert block.startswith("data: ") and "\n" not in block, block
        payload = block.removeprefix("data: ")
        events.append(payload if payload == "[DONE]" else json.loads(payload))
    return events


def _stream(client, prompt: str, ws: str = "test") -> tuple[httpx.Response, list[Any]]:
    with client.stream("POST", PROCESS, json=_body(prompt, ws, stream=True)) as r:
        text = "".join(r.iter_text())
    return r, _parse(text)


def _types(events: list[Any]) -> list[str]:
    return [e if isinstance(e, str) else e["type"] for e in events]


def _samples(client, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    text = client.get("/metrics/prometheus").text
    return {
        tuple(sorted(s.labels.items())): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
        if s.name == name
    }


# --- pure functions (fast loop) --------------------------------------------------------------
@pytest.mark.parametrize(
    "text", ["", "   ", "one", "Based on the retrieved context [1] [2]: a b c.", "  lead  trail  "]
)
@pytest.mark.parametrize("n", [1, 3, 20])
def test_split_chunks_joins_back_and_keeps_words_whole(text, n):
    pieces = split_chunks(text, n)
    assert len(pieces) <= n
    if text.strip():
        assert "".join(pieces) == text
        assert all(p.strip() for p in pieces)
        assert len(pieces) == min(n, len(text.split()))
        assert all(not (a[-1:].strip() and b[:1].strip()) for a, b in pairwise(pieces))
    else:
        assert pieces == []


def test_chunk_offsets_cover_the_whole_latency():
    offsets = chunk_offsets_ms(100.0, 5, 0.3)
    assert offsets[0] == pytest.approx(30.0)
    assert offsets[-1] == pytest.approx(100.0)
    gaps = [b - a for a, b in pairwise(offsets)]
    assert gaps == pytest.approx([17.5] * 4)
    assert chunk_offsets_ms(80.0, 1, 0.3) == [80.0]
    assert chunk_offsets_ms(80.0, 0, 0.3) == []


def test_streaming_knobs_leave_the_baseline_alone():
    dump = PipelineOptions.baseline().model_dump()
    assert dump["llm"]["stream_chunks"] == 20
    assert 0 <= dump["llm"]["ttft_share"] <= 1
    assert (
        PipelineOptions.baseline().fingerprint()
        == PipelineOptions.baseline(llm=LLMOptions(stream_chunks=3, ttft_share=0.9)).fingerprint()
    )


# --- the embedded API (slow: api_client builds the corpus) -----------------------------------
def test_stream_sends_the_real_api_events_in_order(api_client):
    prompt = "How do I stream a JSON response with a custom encoder?"
    r, events = _stream(api_client, prompt)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["x-accel-buffering"] == "no"
    assert "server-timing" not in r.headers

    types = _types(events)
    assert events[0] == {"type": "start", "requestId": "streaming"}
    n_chunks = types.count("llm-chunk")
    assert 1 <= n_chunks <= LLMOptions().stream_chunks
    assert types == [
        "start",
        *STAGES_BEFORE_LLM,
        *["llm-chunk"] * n_chunks,
        "llm-end",
        "complete",
        "[DONE]",
    ]
    chunks = events[1:-1]
    for e in chunks:
        assert set(e) == {"type", "data", "timestamp"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["timestamp"]), e
    stamps = [datetime.fromisoformat(e["timestamp"]) for e in chunks]
    assert stamps == sorted(stamps)

    by_type: dict[str, list[Any]] = {}
    for e in chunks:
        by_type.setdefault(e["type"], []).append(e["data"])
    assert by_type["analysis"][:2] == [None, None]
    assert set(by_type["analysis"][2]) == {"intent", "taskType"}
    assert by_type["retrieval"][0] is None and by_type["retrieval"][1]["contextsFound"] > 0
    assert by_type["context"][0] is None and by_type["context"][1]["sections"] >= 1
    assert by_type["llm-start"] == [None] and by_type["llm-end"] == [None]
    assert all(set(d) == {"content"} and d["content"] for d in by_type["llm-chunk"])

    done = by_type["complete"][0]
    assert re.fullmatch(r"[0-9a-f]{32}", done["requestId"])
    assert done["qualityScore"] is None
    assert set(done["latency"]) == set(STREAM_LATENCY_KEYS)
    assert all(v >= 0 for v in done["latency"].values())
    assert done["latency"]["llm"] > 0 and done["latency"]["retrieval"] > 0
    assert done["totalLatencyMs"] >= sum(done["latency"].values()) - 0.01


def test_streamed_text_is_the_json_response_and_json_still_has_its_headers(api_client):
    prompt = "How do I parse JSON with a custom decoder in a streaming parser?"
    _, events = _stream(api_client, prompt)
    text = "".join(
        e["data"]["content"] for e in events if e != "[DONE]" and e["type"] == "llm-chunk"
    )
    r = api_client.post(PROCESS, json=_body(prompt))
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert "server-timing" in r.headers and "llm;dur=" in r.headers["server-timing"]
    assert "x-axon-cache" in r.headers and "x-request-id" in r.headers
    # Same prompt, same contexts (cached): the simulated LLM writes the same text.
    assert text == r.json()["result"]["response"]
    assert len(split_chunks(text, 100)) > 1, "the simulated text has several words to stream"


def test_a_streamed_request_counts_in_the_metrics(api_client):
    key200 = (("endpoint", PROCESS), ("status", "200"))
    before = _samples(api_client, "axon_requests_total").get(key200, 0.0)
    llm_before = _samples(api_client, "axon_stage_duration_seconds_count").get(
        (("stage", "llm"),), 0
    )
    r, events = _stream(api_client, "Which metrics does a streamed request record?")
    assert events[-1] == "[DONE]"
    after = _samples(api_client, "axon_requests_total").get(key200, 0.0)
    llm_after = _samples(api_client, "axon_stage_duration_seconds_count").get(
        (("stage", "llm"),), 0
    )
    assert after == before + 1
    assert llm_after == llm_before + 1


def test_metadata_is_accepted_and_bad_stream_fields_are_422(api_client):
    meta = {"fileName": "a.py", "language": "python", "cursorPosition": {"line": 3, "column": 7}}
    r = api_client.post(PROCESS, json=_body("metadata is ignored", metadata=meta, stream=False))
    assert r.status_code == 200 and "server-timing" in r.headers
    for bad in (
        {"stream": "yes"},
        {"stream": None},
        {"metadata": "a.py"},
        {"metadata": {"cursorPosition": {"line": "3", "column": 1}}},
    ):
        r = api_client.post(PROCESS, json=_body("bad field", **bad))
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["field"].split(".")[0] in bad


def test_a_too_large_prompt_is_413_before_the_stream_starts(api_client):
    r = api_client.post(PROCESS, json=_body("x" * 32_001, stream=True))
    assert r.status_code == 413
    assert r.json()["field"] == "prompt"


def test_backend_down_mid_stream_is_an_error_event_and_no_done(api_client):
    from axon_lab.pipeline.core import Fault

    guard = api_client.app.state.pipeline.guards["qdrant"]
    guard.set_fault(Fault("stop"))
    try:
        r, events = _stream(api_client, "A fresh prompt while the vector store is down (stream)")
    finally:
        guard.set_fault(None)
    assert r.status_code == 200, "the status was sent before the stages ran"
    types = _types(events)
    assert types == ["start", *STAGES_BEFORE_LLM[:4], "error", "error"]
    assert "qdrant unavailable" in events[-2]["data"]["error"]
    assert events[-1]["error"]["code"] == "STREAMING_ERROR"
    assert events[-1]["error"]["message"] == events[-2]["data"]["error"]
    # The store is back: the next stream completes.
    assert _stream(api_client, "A fresh prompt after the vector store is back")[1][-1] == "[DONE]"


def _direct(
    api_client, llm: LLMOptions, client: httpx.AsyncClient | None = None
) -> tuple[list[Any], Any]:
    """``process_stream`` on a Pipeline of its own over the session's stores (caches off, so
    Redis, bound to the app's event loop, is never called from this one).
    """
    pipeline = Pipeline(api_client.app.state.stack, PipelineOptions.baseline(llm=llm))
    pipeline._llm_client = client
    results = []

    async def run() -> list[Any]:
        try:
            return [
                e
                async for e in pipeline.process_stream(
                    "How do I parse JSON?", "test", on_result=results.append
                )
            ]
        finally:
            if client is not None:
                await client.aclose()

    try:
        events = asyncio.run(run())
    finally:
        pipeline.close()
    assert len(results) == 1 and pipeline.requests == 1 and pipeline.errors == 0
    return events, results[0]


def test_llm_off_streams_no_chunk(api_client):
    events, res = _direct(api_client, LLMOptions(mode="off"))
    assert _types(events) == [*STAGES_BEFORE_LLM, "llm-end", "complete"]
    assert events[-1]["data"]["latency"]["llm"] == 0.0
    assert res.body["result"]["response"] == ""


def test_openai_mode_passes_the_endpoint_deltas_on(api_client):
    deltas = ["Use ", "json.loads", " with ", "object_hook", "."]

    def handler(request: httpx.Request) -> httpx.Response:
        assert json.loads(request.content)["stream"] is True
        lines = [json.dumps({"choices": [{"delta": {"content": d}}]}) for d in deltas]
        lines += [json.dumps({"choices": [], "usage": {"completion_tokens": 5}}), "[DONE]"]
        sse = "".join(f"data: {line}\n\n" for line in lines)
        return httpx.Response(200, text=sse, headers={"content-type": "text/event-stream"})

    client = httpx.AsyncClient(transport=httpx.MockTransport(handler), base_url="http://llm.test")
    events, res = _direct(api_client, LLMOptions(mode="openai"), client)
    types = _types(events)
    assert types == [*STAGES_BEFORE_LLM, *["llm-chunk"] * len(deltas), "llm-end", "complete"]
    assert [e["data"]["content"] for e in events if e["type"] == "llm-chunk"] == deltas
    assert res.body["result"]["response"] == "".join(deltas)
    assert res.body["result"]["usage"]["output_tokens"] == 5
    assert res.body["result"]["llm"] == "openai"
