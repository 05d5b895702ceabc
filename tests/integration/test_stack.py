"""The stack against real services: lab-owned redis-server, status CLI with redaction."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import redis

from axon_lab.stack import RedisServer


def test_redis_server_is_real_and_loopback_only():
    with RedisServer(maxmemory="8mb", maxmemory_policy="allkeys-lru") as srv:
        r = redis.Redis.from_url(srv.url)
        info = r.info("server")
        assert info["redis_version"].split(".")[0] in {"6", "7"}
        assert r.config_get("bind")["bind"] == "127.0.0.1"
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "allkeys-lru"
        assert r.config_get("save")["save"] == ""
        pid = srv.pid
        assert pid and os.path.exists(f"/proc/{pid}")
    assert srv.pid is None
    assert not srv.ping()


def test_redis_pause_and_resume():
    with RedisServer() as srv:
        srv.pause()
        assert not srv.ping()
        srv.resume()
        assert srv.ping()


def _status(env_extra, tmp_path):
    env = {**os.environ, "AXON_DATA_DIR": str(tmp_path), **env_extra}
    r = subprocess.run(
        [sys.executable, "-m", "axon_lab", "stack", "status", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    return r, json.loads(r.stdout)


def test_stack_status_owns_redis_when_no_url(tmp_path):
    r, doc = _status({}, tmp_path)
    by = {b["name"]: b for b in doc["backends"]}
    assert by["redis"]["healthy"] and by["redis"]["owned"] and isinstance(by["redis"]["pid"], int)
    assert by["redis"]["url"].startswith("redis://127.0.0.1:")
    assert by["mongodb"]["kind"].startswith("mongomock")
    # no shard built in an empty data dir: reported down, and the exit code says so
    assert by["qdrant"]["healthy"] is False and r.returncode == 1


@pytest.mark.slow
def test_stack_status_redacts_urls(tmp_path):
    with RedisServer() as srv:
        url = f"redis://axon:sup3rs3cret@127.0.0.1:{srv.port}/0"
        r, doc = _status(
            {"AXON_REDIS_URL": url, "AXON_MONGODB_URI": "mongodb://u:m0ngopw@127.0.0.1:1/"},
            tmp_path,
        )
    assert "sup3rs3cret" not in r.stdout + r.stderr
    assert "m0ngopw" not in r.stdout + r.stderr
    by = {b["name"]: b for b in doc["backends"]}
    assert by["redis"]["url"] == f"redis://axon:***@127.0.0.1:{srv.port}/0"
    assert by["redis"]["owned"] is False and by["redis"]["pid"] is None


def test_edge_shard_in_use_gives_a_clear_error(tmp_path):
    from axon_lab.stack import EdgeVectorStore, HnswParams, VectorPoint

    v = EdgeVectorStore(tmp_path / "shard")
    v.ensure_collection(4, HnswParams())
    v.upsert([VectorPoint(1, [0.1, 0.2, 0.3, 0.4], {"workspaceId": "w"})])
    try:
        code = (
            "from axon_lab.stack import EdgeVectorStore; import sys; "
            f"EdgeVectorStore({str(tmp_path / 'shard')!r})"
        )
        r = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
        )
        assert r.returncode != 0
        assert "in use by another process" in r.stderr
    finally:
        v.close()
