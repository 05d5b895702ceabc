"""Redis INFO parsing and run deltas, against a real redis-server."""

from __future__ import annotations

import json

import pytest
import redis

from axon_lab.cache import redis_stats
from axon_lab.stack import RedisServer

SAMPLE = """# Server\r
redis_version:7.2.4\r
uptime_in_seconds:120\r
\r
# Memory\r
used_memory:1048576\r
used_memory_peak:2097152\r
used_memory_rss:3145728\r
mem_fragmentation_ratio:3.00\r
maxmemory:0\r
maxmemory_policy:noeviction\r
used_memory_peak_perc:50.00%\r
\r
# Stats\r
keyspace_hits:80\r
keyspace_misses:20\r
evicted_keys:4\r
expired_keys:2\r
instantaneous_ops_per_sec:15\r
total_commands_processed:500\r
total_connections_received:7\r
\r
# Keyspace\r
db0:keys=10,expires=3,avg_ttl=1000\r
db1:keys=2,expires=0,avg_ttl=0\r
"""


@pytest.fixture(scope="module")
def server():
    with RedisServer() as s:
        yield s


def test_parse_info_text() -> None:
    info = redis_stats.parse_info(SAMPLE)
    assert info["redis_version"] == "7.2.4"
    assert info["used_memory"] == 1048576
    assert info["mem_fragmentation_ratio"] == 3.0
    assert info["used_memory_peak_perc"] == "50.00%"
    assert info["keyspace"]["db0"] == {"keys": 10, "expires": 3, "avg_ttl": 1000}
    assert info["sections"] == ["server", "memory", "stats", "keyspace"]
    st = redis_stats.stats_from_info(info, captured_at=0.0)
    assert st.hit_rate == pytest.approx(0.8)
    assert (st.keys, st.expires, st.evicted_keys, st.expired_keys) == (12, 3, 4, 2)
    assert redis_stats.hit_rate_verdict(st.hit_rate) == "warn"  # 80% is not > 80%
    assert redis_stats.hit_rate_verdict(None) == "unknown"


def test_snapshot_parses_real_server(server) -> None:
    st = redis_stats.snapshot(server.url)
    assert st.redis_version and st.used_memory and st.used_memory > 0
    assert st.used_memory_peak >= st.used_memory
    assert st.mem_fragmentation_ratio and st.mem_fragmentation_ratio > 0
    assert st.maxmemory_policy  # noeviction by default


def test_delta_counts_a_known_workload_exactly(server) -> None:
    r = redis.Redis.from_url(server.url)
    r.flushdb()
    before = redis_stats.snapshot(server.url)
    for i in range(5):
        r.set(f"k{i}", b"x" * 100)
    for i in range(5):
        assert r.get(f"k{i}") is not None
    for i in range(3):
        assert r.get(f"missing{i}") is None
    after = redis_stats.snapshot(server.url)
    d = redis_stats.delta(before, after)
    assert (d["keyspace_hits"], d["keyspace_misses"]) == (5, 3)
    assert d["hit_rate"] == pytest.approx(5 / 8)
    assert d["total_commands_processed"] == 13  # 5 SET + 8 GET; the snapshots' INFO excluded
    assert d["keys_after"] - d["keys_before"] == 5
    assert d["used_memory_change"] > 0 and not d["restarted"]
    r.close()


def test_evictions_counted_under_small_maxmemory(server) -> None:
    r = redis.Redis.from_url(server.url)
    r.flushdb()
    base = redis_stats.snapshot(server.url)
    r.config_set("maxmemory", base.used_memory + 256 * 1024)
    r.config_set("maxmemory-policy", "allkeys-lru")
    try:
        for i in range(400):
            r.set(f"big{i}", b"v" * 4096)
        after = redis_stats.snapshot(server.url)
    finally:
        r.config_set("maxmemory", 0)
        r.config_set("maxmemory-policy", "noeviction")
        r.flushdb()
        r.close()
    d = redis_stats.delta(base, after)
    assert d["evicted_keys"] > 0
    assert after.keys < 400
    assert after.maxmemory_policy == "allkeys-lru"


def test_cli_stats_json_redacts_url(server, capsys) -> None:
    from axon_lab.cli import main

    url = server.url.replace(
        "redis://", "redis://default:hunter2@"
    )  # password is not needed: no ACL
    rc = main(["redis", "stats", "--url", server.url, "--json"])
    assert rc == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stats"]["used_memory"] > 0 and doc["lab_owned"] is False
    rc = main(["redis", "stats", "--url", url.replace(str(server.port), "1"), "--json"])
    err = capsys.readouterr().err
    assert rc == 1 and "hunter2" not in err and "***" in err


def test_key_memory_by_prefix(server) -> None:
    r = redis.Redis.from_url(server.url)
    r.flushdb()
    for i in range(20):
        r.set(f"emb:msgpack:{i}", b"x" * 3000, ex=3600)
    for i in range(5):
        r.set(f"ctx:{i}", b"y" * 200)
    frame = redis_stats.key_memory(server.url).set_index("prefix")
    r.flushdb()
    r.close()
    assert frame.loc["emb", "keys"] == 20 and frame.loc["ctx", "keys"] == 5
    assert frame.loc["emb", "with_ttl"] == 20 and frame.loc["ctx", "with_ttl"] == 0
    assert frame.loc["emb", "mean_bytes"] >= 3000 and frame.index[0] == "emb"
    assert frame.share.sum() == pytest.approx(1.0) and not frame.sampled.any()
