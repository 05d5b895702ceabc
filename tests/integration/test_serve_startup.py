"""``axon-lab serve`` on an empty data dir: /health answers while the corpus builds, SIGTERM stops
the build, the next start resumes from the cached vectors and never uses a half-written corpus."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from axon_lab import corpus, embeddings, jsonutil
from axon_lab.config import Settings
from axon_lab.stack.redis_server import free_port

pytestmark = pytest.mark.slow

LIMIT = 600


def _start(env: dict[str, str], port: int, log) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "axon_lab", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def _health(url: str) -> httpx.Response | None:
    try:
        return httpx.get(f"{url}/health", timeout=2.0)
    except httpx.HTTPError:
        return None


def _poll(url: str, proc: subprocess.Popen, until, budget_s: float) -> httpx.Response:
    """Poll /health (bounded) until ``until(response)``; the last response."""
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, "server exited"
        r = _health(url)
        if r is not None and until(r):
            return r
        time.sleep(0.2)
    raise AssertionError(f"/health did not reach the state within {budget_s} s")


def test_serve_builds_in_the_background_stops_on_sigterm_and_resumes(tmp_path):
    data, cache = tmp_path / "data", tmp_path / "cache"
    cache.mkdir()
    embeddings.onnx_model("onnx")  # share the exported model, not the vectors
    (cache / "models").symlink_to(embeddings.cache_dir() / "models")
    env = {
        **os.environ,
        "AXON_DATA_DIR": str(data),
        "AXON_CACHE_DIR": str(cache),
        "AXON_CORPUS_LIMIT": str(LIMIT),
        "AXON_LOG_LEVEL": "warning",
    }
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = _start(env, port, log)
        try:
            first = _poll(url, proc, lambda r: True, 60)
            # the first answer comes before the corpus is ready: 503 with the build's state
            assert first.status_code == 503
            body = first.json()
            assert body["status"] in {"starting", "building"} and "progress" in body
            r = _poll(
                url,
                proc,
                lambda r: r.status_code == 503 and r.json()["progress"]["done"] > 0,
                90,
            )
            prog = r.json()["progress"]
            assert prog["stage"] == "embedding" and 0 < prog["done"] < prog["total"]
            # other routes refuse with 503 + Retry-After while starting
            p = httpx.post(
                f"{url}/api/v1/prompts/process",
                json={"prompt": "hello", "workspaceId": "test"},
                timeout=5,
            )
            assert p.status_code == 503 and p.headers["retry-after"] == "5"
            assert "starting" in p.json()["error"]
            proc.send_signal(signal.SIGTERM)
            rc = proc.wait(timeout=30)  # bounded; the target (< 5 s) is measured in the note
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert rc == 0, log_path.read_text()[-800:]
    settings = Settings(data_dir=data, cache_dir=cache)
    assert not corpus.is_built(corpus.paths(settings, LIMIT))  # nothing half-written in use
    kept = len(embeddings.VectorCache("onnx", cache))
    assert kept > 0  # finished chunks survive the stop

    with open(log_path, "ab") as log:
        proc = _start(env, port, log)
        try:
            r = _poll(url, proc, lambda r: r.status_code == 200, 180)
            assert r.json()["status"] == "ok"
            p = httpx.post(
                f"{url}/api/v1/prompts/process",
                json={"prompt": "How does bisect keep a list sorted?", "workspaceId": "test"},
                timeout=30,
            )
            assert p.status_code == 200, p.text
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    info = jsonutil.read_json(corpus.paths(settings, LIMIT).build_info)
    assert info["cached_texts"] >= kept > 0 and info["backend"] == "onnx"
    assert "corpus: embedded" in log_path.read_text()  # the server log shows the progress


def test_corpus_build_stops_on_sigterm_and_resumes(tmp_path):
    """``axon-lab corpus build`` killed mid-build (SIGTERM): exit 143, no corpus marked built,
    finished chunks kept; the next build embeds only the rest."""
    data, cache = tmp_path / "data", tmp_path / "cache"
    cache.mkdir()
    embeddings.onnx_model("onnx")
    (cache / "models").symlink_to(embeddings.cache_dir() / "models")
    env = {**os.environ, "AXON_DATA_DIR": str(data), "AXON_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "axon_lab", "corpus", "build", "--limit", str(LIMIT), "--no-load"]
    vectors = embeddings.VectorCache("onnx", cache).dir
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not list(vectors.glob("part-*.npz")):  # bounded: the first chunk is stored
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert rc == 143, err[-500:]
    assert "axon-lab: stopped (SIGTERM)" in err
    settings = Settings(data_dir=data, cache_dir=cache)
    assert not corpus.is_built(corpus.paths(settings, LIMIT))
    kept = len(embeddings.VectorCache("onnx", cache))
    out = subprocess.run([*cmd, "--json"], env=env, capture_output=True, timeout=300, check=True)
    info = json.loads(out.stdout)["build"]
    assert info["cached_texts"] >= kept > 0 and info["contexts"] == LIMIT
