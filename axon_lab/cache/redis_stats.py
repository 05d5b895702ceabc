"""Redis ``INFO`` parsed into the guide's metrics (memory, hit rate, evictions, ops/s) and their change over a run."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from axon_lab import goals
from axon_lab.errors import BackendUnavailable
from axon_lab.redact import redact_text

#: Counters of ``INFO stats`` whose change over a run is reported by :func:`delta`.
COUNTERS: tuple[str, ...] = (
    "keyspace_hits",
    "keyspace_misses",
    "evicted_keys",
    "expired_keys",
    "total_commands_processed",
    "total_connections_received",
)


def parse_info(text: str | bytes) -> dict[str, Any]:
    """Parse the raw text of ``INFO`` (what ``redis-cli INFO`` prints) into one flat dict.

    Parameters
    ----------
    text
        ``INFO`` output: ``# Section`` headers and ``field:value`` lines.

    Returns
    -------
    dict
        ``{field: value}`` with integers and floats converted; ``keyspace`` lines
        (``db0:keys=3,expires=1,avg_ttl=0``) become ``{"db0": {"keys": 3, ...}}`` under
        the ``"keyspace"`` key; ``"sections"`` lists the section names seen.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    out: dict[str, Any] = {"keyspace": {}, "sections": []}
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            section = line.lstrip("#").strip().lower()
            out["sections"].append(section)
            continue
        if ":" not in line:
            continue
        key, value = line.split(":", 1)
        if section == "keyspace" or (key.startswith("db") and key[2:].isdigit() and "=" in value):
            out["keyspace"][key] = {
                k: _number(v) for k, v in (kv.split("=", 1) for kv in value.split(",") if "=" in kv)
            }
            continue
        out[key] = _number(value)
    return out


def _number(value: str) -> Any:
    """``"12"`` → 12, ``"1.05"`` → 1.05, anything else unchanged (``"6.2.5"``, ``"12.5%"``)."""
    try:
        return int(value)
    except ValueError:
        pass
    try:
        return float(value)
    except ValueError:
        return value


@dataclass(frozen=True)
class RedisStats:
    """The guide's Redis metrics from one ``INFO`` (bytes, counts; ``hit_rate`` in [0, 1]).

    ``hit_rate = keyspace_hits / (keyspace_hits + keyspace_misses)`` since the server started
    (or since ``CONFIG RESETSTAT``); ``None`` when there was no lookup. ``captured_at`` is the
    wall-clock time of the snapshot (``time.time()``), used for rates over a run.
    """

    redis_version: str | None
    uptime_s: int | None
    used_memory: int | None
    used_memory_peak: int | None
    used_memory_rss: int | None
    mem_fragmentation_ratio: float | None
    maxmemory: int | None
    maxmemory_policy: str | None
    keyspace_hits: int
    keyspace_misses: int
    hit_rate: float | None
    evicted_keys: int
    expired_keys: int
    instantaneous_ops_per_sec: int | None
    total_commands_processed: int
    total_connections_received: int
    connected_clients: int | None
    keys: int
    expires: int
    captured_at: float

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON-able)."""
        return asdict(self)


def stats_from_info(info: Mapping[str, Any], *, captured_at: float | None = None) -> RedisStats:
    """Pick the guide's metrics out of a parsed ``INFO`` (see :func:`parse_info`)."""
    hits = int(info.get("keyspace_hits", 0) or 0)
    misses = int(info.get("keyspace_misses", 0) or 0)
    keyspace = info.get("keyspace", {}) or {}
    policy = info.get("maxmemory_policy")
    version = info.get("redis_version")
    return RedisStats(
        redis_version=None if version is None else str(version),
        uptime_s=info.get("uptime_in_seconds"),
        used_memory=info.get("used_memory"),
        used_memory_peak=info.get("used_memory_peak"),
        used_memory_rss=info.get("used_memory_rss"),
        mem_fragmentation_ratio=info.get("mem_fragmentation_ratio"),
        maxmemory=info.get("maxmemory"),
        maxmemory_policy=None if policy is None else str(policy),
        keyspace_hits=hits,
        keyspace_misses=misses,
        hit_rate=hits / (hits + misses) if hits + misses else None,
        evicted_keys=int(info.get("evicted_keys", 0) or 0),
        expired_keys=int(info.get("expired_keys", 0) or 0),
        instantaneous_ops_per_sec=info.get("instantaneous_ops_per_sec"),
        total_commands_processed=int(info.get("total_commands_processed", 0) or 0),
        total_connections_received=int(info.get("total_connections_received", 0) or 0),
        connected_clients=info.get("connected_clients"),
        keys=sum(int(db.get("keys", 0)) for db in keyspace.values()),
        expires=sum(int(db.get("expires", 0)) for db in keyspace.values()),
        captured_at=time.time() if captured_at is None else captured_at,
    )


def info_text(url: str, *, timeout_s: float = 5.0) -> str:
    """The raw text of ``INFO`` from the server at ``url`` (redis-py, unparsed).

    Raises
    ------
    BackendUnavailable
        When the server cannot be reached (the message carries the redacted URL).
    """
    import redis

    # RESP2 and no CLIENT SETINFO on connect (no handshake commands): a snapshot costs exactly
    # one command on the server, which :func:`delta` subtracts.
    client = redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        lib_name=None,
        lib_version=None,
        protocol=2,
    )
    # Keep INFO's raw text: redis-py would parse it into its own dict shape otherwise.
    client.set_response_callback("INFO", lambda resp, **_: resp)
    try:
        raw = client.execute_command("INFO")
    except Exception as exc:
        raise BackendUnavailable(
            "redis", f"{redact_text(url)}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        client.close()
    return raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else str(raw)


def snapshot(url: str, *, timeout_s: float = 5.0) -> RedisStats:
    """``INFO`` of the server at ``url`` as :class:`RedisStats` (one round trip)."""
    return stats_from_info(parse_info(info_text(url, timeout_s=timeout_s)))


def delta(before: RedisStats, after: RedisStats) -> dict[str, Any]:
    """What changed between two snapshots of the same server (a load run, an experiment).

    Counters are differences; ``hit_rate`` is over the run's lookups only; ``ops_per_s`` is
    commands processed per wall-clock second between the snapshots, excluding the first
    snapshot's own ``INFO`` (the second one is not yet counted when it reports); a URL with a
    password or a non-zero db adds its AUTH / SELECT per snapshot.
    A restart between the snapshots (uptime went down) makes counters meaningless: then
    ``restarted`` is True and counters are those of ``after``.
    """
    restarted = (
        before.uptime_s is not None
        and after.uptime_s is not None
        and after.uptime_s < before.uptime_s
    )
    d: dict[str, Any] = {}
    for name in COUNTERS:
        a, b = getattr(after, name), getattr(before, name)
        d[name] = a if restarted else a - b
    if not restarted:
        d["total_commands_processed"] = max(0, d["total_commands_processed"] - 1)
    lookups = d["keyspace_hits"] + d["keyspace_misses"]
    elapsed = max(after.captured_at - before.captured_at, 1e-9)
    d.update(
        {
            "elapsed_s": round(after.captured_at - before.captured_at, 3),
            "hit_rate": d["keyspace_hits"] / lookups if lookups else None,
            "ops_per_s": d["total_commands_processed"] / elapsed,
            "used_memory_before": before.used_memory,
            "used_memory_after": after.used_memory,
            "used_memory_change": (
                after.used_memory - before.used_memory
                if after.used_memory is not None and before.used_memory is not None
                else None
            ),
            "used_memory_peak": after.used_memory_peak,
            "mem_fragmentation_ratio": after.mem_fragmentation_ratio,
            "keys_before": before.keys,
            "keys_after": after.keys,
            "restarted": restarted,
        }
    )
    return d


def key_memory(
    url: str,
    *,
    pattern: str = "*",
    separator: str = ":",
    max_keys: int = 10_000,
    timeout_s: float = 5.0,
) -> Any:
    """Memory by key prefix, like RedisInsight's memory analysis: SCAN + ``MEMORY USAGE`` + ``TTL``.

    Parameters
    ----------
    url
        The server (read-only commands only).
    pattern
        SCAN ``MATCH`` pattern.
    separator
        The prefix is the key up to the first ``separator`` (``emb:msgpack:ab12`` → ``emb``).
    max_keys
        Stop after this many keys (SCAN order; ``sampled`` says whether the scan was cut short).

    Returns
    -------
    DataFrame
        prefix, keys, bytes, mean_bytes, share (of the scanned bytes), with_ttl, sampled.
    """
    import pandas as pd
    import redis

    client = redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        lib_name=None,
        lib_version=None,
        protocol=2,
    )
    rows: dict[str, dict[str, Any]] = {}
    scanned, cut = 0, False
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=pattern, count=500):
            batch.append(key)
            scanned += 1
            if scanned >= max_keys:
                cut = True
                break
        for i in range(0, len(batch), 500):
            chunk = batch[i : i + 500]
            p = client.pipeline(transaction=False)
            for k in chunk:
                p.memory_usage(k, samples=0)
                p.ttl(k)
            res = p.execute()
            for k, mem, ttl in zip(chunk, res[0::2], res[1::2], strict=True):
                name = k.decode(errors="replace")
                prefix = name.split(separator, 1)[0] if separator in name else name
                r = rows.setdefault(
                    prefix, {"prefix": prefix, "keys": 0, "bytes": 0, "with_ttl": 0}
                )
                r["keys"] += 1
                r["bytes"] += int(mem or 0)
                r["with_ttl"] += int(ttl is not None and ttl >= 0)
    except Exception as exc:
        raise BackendUnavailable(
            "redis", f"{redact_text(url)}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        client.close()
    out = pd.DataFrame(list(rows.values()), columns=["prefix", "keys", "bytes", "with_ttl"])
    total = out["bytes"].sum()
    out["mean_bytes"] = out["bytes"] / out["keys"].where(out["keys"] > 0)
    out["share"] = out["bytes"] / total if total else 0.0
    out["sampled"] = cut
    return out.sort_values("bytes", ascending=False).reset_index(drop=True)[
        ["prefix", "keys", "bytes", "mean_bytes", "share", "with_ttl", "sampled"]
    ]


def hit_rate_verdict(hit_rate: float | None) -> str:
    """Pass / warn / fail / unknown against the guide's cache hit-rate target (> 80%, > 60% min)."""
    return goals.get("cache_hit_rate").judge(hit_rate)


def table(stats: RedisStats) -> list[tuple[str, str]]:
    """Human rows (metric, value) for printing: memory in MiB, ratios as percentages."""

    def mib(v: int | None) -> str:
        return "n/a" if v is None else f"{v / 2**20:.2f} MiB"

    hr = stats.hit_rate
    return [
        ("redis_version", str(stats.redis_version)),
        ("used_memory", mib(stats.used_memory)),
        ("used_memory_peak", mib(stats.used_memory_peak)),
        ("used_memory_rss", mib(stats.used_memory_rss)),
        ("mem_fragmentation_ratio", str(stats.mem_fragmentation_ratio)),
        ("maxmemory", "unlimited" if not stats.maxmemory else mib(stats.maxmemory)),
        ("maxmemory_policy", str(stats.maxmemory_policy)),
        ("keys", str(stats.keys)),
        ("keyspace_hits", str(stats.keyspace_hits)),
        ("keyspace_misses", str(stats.keyspace_misses)),
        ("hit_rate", "n/a" if hr is None else f"{hr:.1%} ({hit_rate_verdict(hr)}; target > 80%)"),
        ("evicted_keys", str(stats.evicted_keys)),
        ("expired_keys", str(stats.expired_keys)),
        ("instantaneous_ops_per_sec", str(stats.instantaneous_ops_per_sec)),
        ("total_commands_processed", str(stats.total_commands_processed)),
        ("connected_clients", str(stats.connected_clients)),
    ]
