"""Scale-out figures: one asyncio process vs Locust with 1 and 2 workers (req/s, client CPU, Locust's rounding).

Usage::

    python scripts/bench_locust.py [--users 64] [--duration 10] [--latency none]
                                   [--rounding-latency lognormal:median=150,sigma=0.5]

Starts the test server (``axon_lab.load.testserver``) on loopback. Throughput runs use ``--latency`` (default: answer at
once, so the client is the bottleneck); the rounding run uses a known lognormal distribution and
prints our exact p50/p95/p99 beside Locust's bucketed ones for the same requests.
"""

from __future__ import annotations

import argparse

from axon_lab.load import LoadRunner, side_by_side
from axon_lab.load.testserver import LoadServer


def _cpu(summary: dict) -> str:
    loc = summary.get("locust")
    if loc:
        return f"{loc['client_cpu_pct']:.0f}% (master+workers)"
    pc = (summary.get("client") or {}).get("process_cpu_pct") or {}
    return f"{pc.get('mean', float('nan')):.0f}% (process)"


def main() -> None:
    """Run the comparison and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, default=64)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--latency", default="none")
    ap.add_argument("--rounding-latency", default="lognormal:median=150,sigma=0.5,n=4000")
    a = ap.parse_args()
    configs = [
        ("asyncio, 1 process", "asyncio", {}),
        ("locust, 1 worker", "locust", {"workers": 1}),
        ("locust, 2 workers", "locust", {"workers": 2}),
    ]
    print(f"throughput: {a.users} closed-loop users, {a.duration:g}s, server latency {a.latency}")
    print(f"{'engine':22} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}  client CPU")
    with LoadServer(a.latency) as srv:
        for label, engine, opts in configs:
            res = LoadRunner(
                url=srv.url + "/work",
                connections=a.users,
                duration_s=a.duration,
                engine=engine,
                engine_options=opts,
                progress=False,
            ).run()
            s = res.summary
            print(
                f"{label:22} {s['count']:>9,} {s['rps']:>9,.0f} {s['p50']:>8.2f} {s['p99']:>8.2f}"
                f"  {_cpu(s)}"
            )
    print(f"\nrounding: {a.users} users, server latency {a.rounding_latency}, locust 2 workers")
    with LoadServer(a.rounding_latency) as srv:
        res = LoadRunner(
            url=srv.url + "/work",
            connections=a.users,
            duration_s=a.duration,
            engine="locust",
            engine_options={"workers": 2},
            progress=False,
        ).run()
        print(side_by_side(res.summary))


if __name__ == "__main__":
    main()
