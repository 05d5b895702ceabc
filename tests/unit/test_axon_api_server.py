"""The stand-in Axon API server speaks the real API's contract: bodies, 400s, limiter, SSE timing."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import subprocess
import sys
import time
import uuid
from datetime import datetime

import httpx
import pytest
from support.axon_api import AxonApiServer
from support.axon_api_server import (
    DEFAULT_STAGES_MS,
    STAGES,
    chunk_texts,
    parse_stages,
    validate_prompt_body,
)

PROCESS = "/api/v1/prompts/process"
WS = "3f2b8c1e-9a4d-4e7f-8b6a-2c1d0e9f8a7b"
STAGE_MS = {
    "collection": 1,
    "analysis": 5,
    "retrieval": 20,
    "synthesis": 3,
    "injection": 1,
    "llm": 40,
    "postProcessing": 2,
}
TTFT_MS = 60.0
GAP_MS = 20.0
CHUNKS = 6
KNOBS = {
    "stages": STAGE_MS,
    "ttft_ms": TTFT_MS,
    "chunk_gap_ms": GAP_MS,
    "chunks": CHUNKS,
    "limit": 100,
    "window_s": 900,
    "error_rate": 0.0,
}
VALIDATION = {
    "success": False,
    "error": {"code": "VALIDATION_ERROR", "message": "Validation error"},
}
RATE_HEADERS = ("ratelimit-policy", "ratelimit-limit", "ratelimit-remaining", "ratelimit-reset")
ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def tolerance_ms(expected_ms: float) -> float:
    """The required accuracy: within 2% or 1 ms, whichever is larger."""
    return max(0.02 * expected_ms, 1.0)


@pytest.fixture(scope="module")
def server():
    with AxonApiServer(stages=STAGE_MS, ttft_ms=TTFT_MS, chunk_gap_ms=GAP_MS, chunks=CHUNKS) as srv:
        yield srv


@pytest.fixture
def api(server):
    """The shared server with its counters cleared and its knobs back at the module's values."""
    server.control(reset=True, **KNOBS)
    yield server
    server.control(reset=True, **KNOBS)


@pytest.fixture
def client(api):
    with httpx.Client(base_url=api.url, timeout=10) as c:
        yield c


@pytest.fixture(scope="module")
def limited():
    with AxonApiServer(stages="llm=0", limit=5, window_s=60) as srv:
        yield srv


def prompt(**over):
    return {"prompt": "How is the cache invalidated?", "workspaceId": WS, **over}


# -- non-streaming -------------------------------------------------------------------------------


def test_process_body_shape_and_stage_latencies(client):
    t0 = time.perf_counter()
    r = client.post(PROCESS, json=prompt(source="cli", metadata={"fileName": "a.py"}))
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"success", "data"} and body["success"] is True
    data = body["data"]
    assert set(data) == {"requestId", "response", "metadata"}
    assert uuid.UUID(data["requestId"]).version == 4
    assert data["response"] == "".join(chunk_texts(CHUNKS))
    meta = data["metadata"]
    assert set(meta) == {"tokensUsed", "latency", "contextUsed", "actions"}
    assert meta["latency"] == STAGE_MS and list(meta["latency"]) == list(STAGES)
    assert all(type(v) is int for v in meta["latency"].values())
    assert type(meta["tokensUsed"]) is int and meta["tokensUsed"] > 0
    assert meta["contextUsed"] == 3 and meta["actions"] == []
    # Delayed by the sum of the stages (a schedule, so not less; loopback adds little).
    total = sum(STAGE_MS.values())
    assert total - 1.0 <= elapsed_ms < total + 50.0
    assert "server-timing" not in r.headers and "x-axon-cache" not in r.headers
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.headers["connection"] == "keep-alive"
    assert all(h in r.headers for h in RATE_HEADERS)


def test_concurrent_requests_do_not_queue(api):
    api.control(stages={"llm": 100})
    n = 10

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=api.url, timeout=10) as c:
            rs = await asyncio.gather(*(c.post(PROCESS, json=prompt()) for _ in range(n)))
        return [r.status_code for r in rs]

    t0 = time.perf_counter()
    statuses = asyncio.run(burst())
    elapsed_ms = (time.perf_counter() - t0) * 1000.0
    one = sum(STAGE_MS.values()) - STAGE_MS["llm"] + 100
    assert statuses == [200] * n
    assert elapsed_ms < 2 * one, f"{n} concurrent requests took {elapsed_ms:.0f} ms, one is {one}"
    stats = api.stats()
    assert stats["max_inflight"] == n and stats["by_status"] == {"200": n}


# -- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(prompt(workspaceId="ws-1"), id="non-uuid-workspace"),
        pytest.param(prompt(workspaceId="3f2b8c1e9a4d4e7f8b6a2c1d0e9f8a7b"), id="uuid-no-dashes"),
        pytest.param(
            prompt(workspaceId="3f2b8c1e-9a4d-0e7f-8b6a-2c1d0e9f8a7b"), id="uuid-version-0"
        ),
        pytest.param(prompt(workspaceId=WS + "\n"), id="uuid-trailing-newline"),
        pytest.param(prompt(source="web"), id="unknown-source"),
        pytest.param(prompt(source=None), id="null-source"),
        pytest.param(prompt(prompt=""), id="empty-prompt"),
        pytest.param({"workspaceId": WS}, id="missing-prompt"),
        pytest.param(prompt(prompt=42), id="prompt-not-string"),
        pytest.param(prompt(stream="yes"), id="stream-not-bool"),
        pytest.param(prompt(metadata=None), id="null-metadata"),
        pytest.param(prompt(metadata={"cursorPosition": {"line": "1", "column": 2}}), id="cursor"),
        pytest.param(prompt(metadata={"cursorPosition": {"line": True, "column": 2}}), id="bool"),
        pytest.param(prompt(metadata={"language": 3}), id="language-not-string"),
        pytest.param([prompt()], id="array-body"),
    ],
)
def test_invalid_bodies_are_validation_errors(client, payload):
    r = client.post(PROCESS, json=payload)
    assert r.status_code == 400 and r.json() == VALIDATION
    assert all(h in r.headers for h in RATE_HEADERS)


@pytest.mark.parametrize(
    ("content", "ctype"),
    [
        (b'{"prompt": "x", "workspaceId": ', "application/json"),
        (b"NaN", "application/json"),
        (b'"just a string"', "application/json"),
        (json.dumps(prompt()).encode(), "text/plain"),  # express.json skips it: body undefined
        (b"", "application/json"),
    ],
    ids=["truncated", "nan", "scalar", "not-json-content-type", "empty"],
)
def test_invalid_json_is_a_validation_error(client, content, ctype):
    r = client.post(PROCESS, content=content, headers={"Content-Type": ctype})
    assert r.status_code == 400 and r.json() == VALIDATION


def test_valid_variants_are_accepted(client):
    for ws in (WS.upper(), "017f22e2-79b0-7cc3-98c4-dc0c0c07398f", str(uuid.UUID(int=0))):
        full = prompt(
            workspaceId=ws,
            source="editor",
            stream=False,
            extra="ignored",
            metadata={"language": "py", "cursorPosition": {"line": 3, "column": 1.5}},
        )
        r = client.post(
            PROCESS, json=full, headers={"Content-Type": "application/json; charset=utf-8"}
        )
        assert r.status_code == 200, (ws, r.text)


def test_validator_mirrors_zod_defaults():
    assert validate_prompt_body(prompt()) == {
        "prompt": "How is the cache invalidated?",
        "workspaceId": WS,
        "source": "api",
        "stream": False,
    }
    assert validate_prompt_body(prompt(metadata={}, junk=1))["metadata"] == {}
    assert validate_prompt_body(prompt(workspaceId="FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF")) is None
    assert validate_prompt_body(prompt(workspaceId="ffffffff-ffff-ffff-ffff-ffffffffffff"))


# -- rate limiter --------------------------------------------------------------------------------


def test_rate_limit_counts_every_route_and_rejects_the_sixth(limited):
    limited.reset()
    with httpx.Client(base_url=limited.url, timeout=10) as c:
        seen = []
        for i in range(5):
            r = c.get("/health") if i == 2 else c.post(PROCESS, json=prompt())  # /health counts
            assert r.status_code == 200
            assert r.headers["ratelimit-policy"] == "5;w=60"
            assert r.headers["ratelimit-limit"] == "5"
            assert 59 <= int(r.headers["ratelimit-reset"]) <= 60
            assert "retry-after" not in r.headers
            seen.append(int(r.headers["ratelimit-remaining"]))
        assert seen == [4, 3, 2, 1, 0]
        for path in (PROCESS, "/health", "/nope"):
            r = c.post(path, json=prompt()) if path == PROCESS else c.get(path)
            assert r.status_code == 429
            assert r.json() == {
                "success": False,
                "error": {
                    "code": "RATE_LIMIT_EXCEEDED",
                    "message": "Too many requests from this IP, please try again later.",
                },
            }
            assert r.headers["ratelimit-remaining"] == "0"
            assert 59 <= int(r.headers["retry-after"]) <= 60
            assert r.headers["retry-after"] == r.headers["ratelimit-reset"]
        # The control routes are not rate limited and carry no RateLimit headers.
        r = c.get("/__stats")
        assert r.status_code == 200 and "ratelimit-limit" not in r.headers
    stats = limited.stats()
    assert stats["by_status"] == {"200": 5, "429": 3} and stats["rate_limited"] == 3
    assert stats["clients"]["127.0.0.1"]["hits"] == 8  # rejected requests count too
    limited.reset()
    with httpx.Client(base_url=limited.url, timeout=10) as c:
        assert c.get("/health/live").headers["ratelimit-remaining"] == "4"


def test_rate_limit_window_resets(limited):
    limited.control(reset=True, window_s=0.3)
    try:
        with httpx.Client(base_url=limited.url, timeout=10) as c:
            rs = [c.get("/health/live") for _ in range(6)]
            assert [r.status_code for r in rs] == [200] * 5 + [429]
            assert rs[0].headers["ratelimit-policy"] == "5;w=1"  # ceil(window seconds)
            assert rs[-1].headers["retry-after"] == "1"
            time.sleep(0.35)
            r = c.get("/health/live")
            assert r.status_code == 200 and r.headers["ratelimit-remaining"] == "4"
    finally:
        limited.control(reset=True, window_s=60)


def test_limit_zero_disables_the_limiter(client, api):
    api.control(limit=0)
    r = client.get("/health")
    assert r.status_code == 200 and not any(h in r.headers for h in RATE_HEADERS)


# -- streaming -----------------------------------------------------------------------------------

EVENT_TYPES = (
    ["start", "analysis", "analysis", "analysis", "retrieval", "retrieval", "context", "context"]
    + ["llm-start"]
    + ["llm-chunk"] * CHUNKS
    + ["llm-end", "complete", "[DONE]"]
)


def _stream_once(client: httpx.Client) -> tuple[httpx.Response, list[tuple[float, object]], float]:
    """One streamed request: the response, (arrival s, event) pairs, and the send instant."""
    client.get("/health/live")  # warm the keep-alive connection: no connect in the timing
    events: list[tuple[float, object]] = []
    t_send = time.perf_counter()
    with client.stream("POST", PROCESS, json=prompt(stream=True)) as r:
        for line in r.iter_lines():
            now = time.perf_counter()
            if not line:
                continue
            assert line.startswith("data: "), line
            raw = line[len("data: ") :]
            events.append((now, raw if raw == "[DONE]" else json.loads(raw)))
    return r, events, t_send


def test_stream_events_headers_and_order(client):
    r, events, _ = _stream_once(client)
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/event-stream"
    assert r.headers["cache-control"] == "no-cache"
    assert r.headers["connection"] == "keep-alive"
    assert r.headers["transfer-encoding"] == "chunked" and "content-length" not in r.headers
    assert all(h in r.headers for h in RATE_HEADERS)
    kinds = [e if e == "[DONE]" else e["type"] for _, e in events]
    assert kinds == EVENT_TYPES
    assert events[0][1] == {"type": "start", "requestId": "streaming"}
    body = [e for _, e in events[1:-1]]
    assert all(set(e) == {"type", "data", "timestamp"} for e in body)
    assert all(ISO.fullmatch(e["timestamp"]) for e in body)
    datetime.fromisoformat(body[0]["timestamp"].replace("Z", "+00:00"))
    data = [e["data"] for e in body]
    assert data[:7] == [
        None,
        None,
        {"intent": "general", "taskType": "general-query"},
        None,
        {"contextsFound": 3},
        None,
        {"sections": 3},
    ]
    assert data[7] is None  # llm-start
    chunks = [e["data"]["content"] for e in body if e["type"] == "llm-chunk"]
    assert chunks == chunk_texts(CHUNKS)
    assert body[-2]["data"] is None  # llm-end
    complete = body[-1]["data"]
    assert set(complete) == {"requestId", "totalLatencyMs", "qualityScore"}
    uuid.UUID(complete["requestId"])
    pre_llm = sum(v for k, v in STAGE_MS.items() if k not in ("llm", "postProcessing"))
    total = pre_llm + TTFT_MS + (CHUNKS - 1) * GAP_MS + STAGE_MS["postProcessing"]
    assert abs(complete["totalLatencyMs"] - total) <= 2
    # The connection is kept alive after the chunked terminator.
    assert client.get("/health/live").status_code == 200


def test_stream_timing_matches_the_schedule(client):
    """Time to first chunk and inter-chunk gaps within 2% or 1 ms, as a client measures them."""
    pre_llm = sum(v for k, v in STAGE_MS.items() if k not in ("llm", "postProcessing"))
    failures: list[str] = []
    for _attempt in range(3):  # a descheduled client (busy CI box) may miss once; the server won't
        _, events, t_send = _stream_once(client)
        at = {k: [t for t, e in events if e != "[DONE]" and e["type"] == k] for k in EVENT_TYPES}
        chunk_t = at["llm-chunk"]
        ttft = (chunk_t[0] - at["llm-start"][0]) * 1000.0
        ttft_from_send = (chunk_t[0] - t_send) * 1000.0
        gaps = [(b - a) * 1000.0 for a, b in zip(chunk_t, chunk_t[1:], strict=False)]
        failures = []
        if abs(ttft - TTFT_MS) > tolerance_ms(TTFT_MS):
            failures.append(f"llm-start -> first chunk {ttft:.2f} ms, want {TTFT_MS}")
        want = pre_llm + TTFT_MS
        if abs(ttft_from_send - want) > tolerance_ms(want):
            failures.append(f"send -> first chunk {ttft_from_send:.2f} ms, want {want}")
        for g in gaps:
            if abs(g - GAP_MS) > tolerance_ms(GAP_MS):
                failures.append(f"gaps {[round(x, 2) for x in gaps]} ms, want {GAP_MS}")
                break
        if not failures:
            break
    assert not failures, "; ".join(failures)


def test_stream_with_zero_chunks_still_ends(client, api):
    api.control(chunks=0, ttft_ms=0, stages={k: 0 for k in STAGES})
    _, events, _ = _stream_once(client)
    kinds = [e if e == "[DONE]" else e["type"] for _, e in events]
    assert kinds == [k for k in EVENT_TYPES if k != "llm-chunk"]


# -- other routes --------------------------------------------------------------------------------


def test_health_routes(client):
    h = client.get("/health").json()
    assert h["success"] is True and set(h["data"]) == {"status", "timestamp", "uptime", "version"}
    assert h["data"]["status"] == "healthy" and h["data"]["version"] == "0.1.0"
    assert isinstance(h["data"]["uptime"], float) and ISO.fullmatch(h["data"]["timestamp"])
    ready = client.get("/health/ready").json()
    assert ready["success"] is True and ready["data"]["ready"] is True
    assert ready["data"]["services"] == {"mongodb": True, "redis": True, "qdrant": True}
    assert client.get("/health/live").json() == {"success": True, "data": {"alive": True}}
    assert client.get("/HEALTH/live/").status_code == 200  # Express: case-insensitive, non-strict
    head = client.head("/health")
    assert (
        head.status_code == 200 and head.content == b"" and int(head.headers["content-length"]) > 0
    )


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/nope"), ("GET", PROCESS), ("POST", "/health"), ("DELETE", "/api/v1/x?q=1")],
)
def test_unknown_routes_are_404(client, method, path):
    r = client.request(method, path)
    assert r.status_code == 404
    shown = path.split("?")[0]
    assert r.json() == {
        "success": False,
        "error": {"code": "NOT_FOUND", "message": f"Route {method} {shown} not found"},
    }
    assert all(h in r.headers for h in RATE_HEADERS)


def test_api_key_auth():
    with (
        AxonApiServer(stages="llm=0", api_key="s3cret") as srv,
        httpx.Client(base_url=srv.url, timeout=10) as c,
    ):
        r = c.post(PROCESS, json=prompt())
        assert r.status_code == 401 and r.json()["success"] is False
        assert r.json()["error"]["code"] == "UNAUTHORIZED"
        bad = c.post(PROCESS, json=prompt(), headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        for headers in ({"Authorization": "Bearer s3cret"}, {"X-API-Key": "s3cret"}):
            assert c.post(PROCESS, json=prompt(), headers=headers).status_code == 200
        assert c.get("/health").status_code == 200  # only the prompt route is protected


def test_error_rate_gives_500_and_in_band_stream_errors(client, api):
    api.control(error_rate=1.0, stages={k: 0 for k in STAGES}, ttft_ms=0, chunk_gap_ms=0)
    r = client.post(PROCESS, json=prompt())
    assert r.status_code == 500
    assert r.json() == {
        "success": False,
        "error": {"code": "INTERNAL_SERVER_ERROR", "message": "An unexpected error occurred"},
    }
    _, events, _ = _stream_once(client)
    kinds = [e["type"] for _, e in events]
    assert kinds == ["start", "analysis", "error", "error"]
    assert events[-1][1]["error"]["code"] == "STREAMING_ERROR"
    # Seeded: the same fraction fails in the same order after a reset.
    api.control(reset=True, error_rate=0.5)
    first = [client.post(PROCESS, json=prompt()).status_code for _ in range(8)]
    api.control(reset=True)
    assert [client.post(PROCESS, json=prompt()).status_code for _ in range(8)] == first
    assert set(first) == {200, 500}


def test_body_limit_413_then_connection_reused(client, api):
    api.control(stages={k: 0 for k in STAGES})
    big = b'{"prompt": "' + b"x" * (10 * 1024 * 1024) + b'"}'
    r = client.post(PROCESS, content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["code"] == "PAYLOAD_TOO_LARGE"
    just_under = json.dumps(prompt(prompt="y" * (10 * 1024 * 1024 - 200))).encode()
    r = client.post(PROCESS, content=just_under, headers={"Content-Type": "application/json"})
    assert r.status_code == 200
    assert api.stats()["by_status"] == {"413": 1, "200": 1}


def test_express_mode_body_errors_are_500s_before_the_limiter():
    with (
        AxonApiServer(stages="llm=0", limit=2, body_errors="express") as srv,
        httpx.Client(base_url=srv.url, timeout=10) as c,
    ):
        for _ in range(3):
            r = c.post(PROCESS, content=b"{oops", headers={"Content-Type": "application/json"})
            assert r.status_code == 500 and r.json()["error"]["code"] == "INTERNAL_SERVER_ERROR"
            assert "ratelimit-limit" not in r.headers
        assert c.post(PROCESS, json=prompt(prompt="")).status_code == 400  # zod: still 400
        assert c.post(PROCESS, json=prompt()).headers["ratelimit-remaining"] == "0"


# -- HTTP/1.1 on the wire ------------------------------------------------------------------------


def _read_response(sock: socket.socket, buf: bytearray) -> tuple[int, dict[str, str], bytes]:
    """One Content-Length response from ``buf`` (refilled from ``sock``)."""
    deadline = time.monotonic() + 10
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        buf += sock.recv(65536)
    head, _, _ = bytes(buf).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
    n = int(headers["content-length"])
    start = len(head) + 4
    while len(buf) < start + n and time.monotonic() < deadline:
        buf += sock.recv(65536)
    body = bytes(buf[start : start + n])
    del buf[: start + n]
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("piece", [None, 13], ids=["one-write", "dribbled"])
def test_pipelined_requests_answered_in_order(api, piece):
    body = json.dumps(prompt()).encode()
    reqs = (
        b"GET /health/live HTTP/1.1\r\nHost: x\r\n\r\n"
        + b"POST " + PROCESS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Content-Length: %d\r\n\r\n" % len(body) + body
        + b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
        # a chunked request body (two chunks, a chunk extension, a trailer)
        + b"POST " + PROCESS.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Transfer-Encoding: chunked\r\n\r\n"
        + b"%x;ext=1\r\n%s\r\n" % (10, body[:10]) + b"%x\r\n%s\r\n" % (len(body) - 10, body[10:])
        + b"0\r\nX-Trailer: 1\r\n\r\n"
        + b"GET /health/live HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )  # fmt: skip
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if piece is None:
            s.sendall(reqs)
        else:  # every parser state sees partial input
            for i in range(0, len(reqs), piece):
                s.sendall(reqs[i : i + piece])
                time.sleep(0.0005)
        buf = bytearray()
        got = [_read_response(s, buf) for _ in range(5)]
        assert s.recv(100) == b""  # closed after the Connection: close request
    assert [g[0] for g in got] == [200, 200, 404, 200, 200]
    assert json.loads(got[1][2])["data"]["metadata"]["latency"] == STAGE_MS
    assert got[4][1]["connection"] == "close"
    assert api.stats()["requests"] == 5


def test_malformed_request_line_is_400_and_closes(api):
    with socket.create_connection(("127.0.0.1", api.port), timeout=10) as s:
        s.sendall(b"NONSENSE\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400 ")


# -- knobs ---------------------------------------------------------------------------------------


def test_parse_stages():
    assert parse_stages(None) == DEFAULT_STAGES_MS
    got = parse_stages("collection=1, llm=40,postprocessing=2")
    assert got == {**DEFAULT_STAGES_MS, "collection": 1, "llm": 40, "postProcessing": 2}
    for bad in ("nope=1", "llm", "llm=-1", "llm=1.5"):
        with pytest.raises(ValueError):  # noqa: PT011
            parse_stages(bad)


def test_cli_rejects_bad_knobs():
    from support import axon_api_server

    r = subprocess.run(
        [sys.executable, "-P", axon_api_server.__file__, "--stages", "bogus=1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert r.returncode == 2 and "unknown stage" in r.stderr
