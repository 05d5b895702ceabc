"""``axon-lab redis stats [--url URL] [--delta SECONDS] [--json]``: INFO memory/stats parsed."""

from __future__ import annotations

import argparse
import sys
import time

from axon_lab import jsonutil
from axon_lab.redact import redact_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("redis", help="Redis analysis (INFO memory and stats)")
    rsub = p.add_subparsers(dest="redis_command", metavar="ACTION", required=True)
    st = rsub.add_parser(
        "stats",
        help="used/peak memory, fragmentation, hits, misses, hit rate, evictions, ops/s",
        description="Parse INFO of a Redis server. Without --url: AXON_REDIS_URL, else a lab "
        "redis-server is started (empty, so only useful to check the tooling).",
    )
    st.add_argument(
        "--url", default=None, help="redis://[user:password@]host:port/db (redacted in output)"
    )
    st.add_argument(
        "--delta",
        type=float,
        default=None,
        metavar="SECONDS",
        help="take a second snapshot after SECONDS and report the change (e.g. during a load run)",
    )
    st.add_argument(
        "--keys",
        action="store_true",
        help="also break memory down by key prefix (SCAN + MEMORY USAGE, read-only)",
    )
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_stats)


def _stats(args: argparse.Namespace) -> int:
    from axon_lab.cache import redis_stats
    from axon_lab.config import get_settings
    from axon_lab.errors import ConfigError

    if args.delta is not None and args.delta <= 0:
        raise ConfigError(f"--delta must be > 0 seconds, got {args.delta}")
    url = args.url or get_settings().secret("redis_url")
    server = None
    if url is None:
        from axon_lab.stack import RedisServer

        server = RedisServer().start()
        url = server.url
        sys.stderr.write(
            f"axon-lab: no --url and AXON_REDIS_URL unset: started a lab redis-server at "
            f"{url} (pid {server.pid}; empty, stopped on exit)\n"
        )
    try:
        before = redis_stats.snapshot(url)
        keys = redis_stats.key_memory(url) if args.keys else None
        after = None
        if args.delta is not None:
            time.sleep(args.delta)
            after = redis_stats.snapshot(url)
    finally:
        if server is not None:
            server.stop()
    d: dict = {}
    doc = {
        "url": redact_text(url),
        "lab_owned": server is not None,
        "stats": before.to_dict(),
        "hit_rate_verdict": redis_stats.hit_rate_verdict(before.hit_rate),
    }
    if after is not None:
        d = redis_stats.delta(before, after)
        doc.update(
            {
                "after": after.to_dict(),
                "delta": d,
                "delta_hit_rate_verdict": redis_stats.hit_rate_verdict(d["hit_rate"]),
            }
        )
    if keys is not None:
        doc["keys_by_prefix"] = keys
    if args.json:
        print(jsonutil.dumps(doc))
        return 0
    print(f"redis {redact_text(url)}{' (lab-owned, empty)' if server is not None else ''}")
    for name, value in redis_stats.table(before):
        print(f"  {name:<28}{value}")
    if keys is not None:
        print("memory by key prefix:" if len(keys) else "memory by key prefix: no keys")
        if len(keys):
            print(keys.to_string(index=False))
    if after is not None:
        hr = "n/a" if d["hit_rate"] is None else f"{d['hit_rate']:.1%}"
        print(
            f"over {d['elapsed_s']} s: hits +{d['keyspace_hits']}  misses +{d['keyspace_misses']}  "
            f"hit rate {hr}  evicted +{d['evicted_keys']}  expired +{d['expired_keys']}  "
            f"ops/s {d['ops_per_s']:.1f}  used_memory change {d['used_memory_change']} B"
        )
    return 0
