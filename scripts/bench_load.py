"""Benchmarks of the load engine itself: the largest Poisson rate it sustains, and wrk/autocannon side by side.

Usage::

    python scripts/bench_load.py max-rate [--rates 500,1000,2000] [--duration 10] [--pool 64]
    python scripts/bench_load.py compare [-c 10] [-d 10] [--tools wrk,autocannon] [--repeat 1]

Both start the test server (``axon_lab.load.testserver``) (uvloop, no added latency) on a free loopback port as the
trivial endpoint (``GET /health``) and print a table (``--json FILE`` also writes the figures).

``max-rate``
    Open loop, Poisson arrivals, a rate ladder. A rate *passes* when the schedule lag
    (actual send − intended start) has p99 < 5 ms, ≥ 99% of the scheduled requests left within
    the window, none were dropped and none failed. The result is the largest passing rate.
``compare``
    Closed loop, ``-c`` connections for ``-d`` seconds, the same server measured by
    ``axon_lab.load`` and by ``wrk --latency`` (one thread: one generator thread, like ours) and
    ``autocannon --json`` (one Node process): throughput ratio and p50/p99 agreement (medians over
    ``--repeat`` rounds; autocannon's JSON latencies are whole milliseconds).
    wrk/autocannon that are not installed are skipped (``apt-get install wrk``,
    ``npm install -g autocannon``).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from axon_lab.load import LoadRunner
from axon_lab.load.testserver import LoadServer
from axon_lab.provenance import collect

LAG_LIMIT_MS = 5.0


def _fmt(v: Any, nd: int = 2) -> str:
    if v is None:
        return "–"
    return f"{v:,.{nd}f}" if isinstance(v, float) else str(v)


def run_rate(url: str, rate: float, duration: float, pool: int, uvloop: bool, seed: int) -> dict:
    """One open-loop Poisson run at ``rate``; the figures that decide pass/fail."""
    res = LoadRunner(
        url=url,
        rate=rate,
        arrival="poisson",
        duration_s=duration,
        connections=pool,
        progress=False,
        use_uvloop=uvloop,
        seed=seed,
        timeout_s=10,
    ).run()
    s = res.summary
    lag = s["metrics"]["schedule_lag"]
    svc = s["metrics"]["http_req_service_duration"]
    c = s["client"]
    row = {
        "rate": rate,
        "count": s["count"],
        "errors": s["errors"],
        "dropped": s["requests"]["dropped"],
        "achieved_ratio": s["rate"]["achieved_rate_ratio"],
        "rps": s["rps"],
        "lag_p50_ms": lag["p50"],
        "lag_p99_ms": lag["p99"],
        "lag_max_ms": lag["max"],
        "dispatch_lag_p99_ms": (c.get("dispatch_lag_ms") or {}).get("p99"),
        "loop_lag_p99_ms": c["loop_lag_ms"]["p99"],
        "engine_cpu_pct": c["engine_thread_cpu_pct"]["mean"],
        "machine_cpu_pct": c["machine_cpu_pct"]["mean"],
        "service_p50_ms": svc["p50"],
        "service_p99_ms": svc["p99"],
        "queued": s["requests"]["queued"],
    }
    row["pass"] = bool(
        lag["p99"] is not None
        and lag["p99"] < LAG_LIMIT_MS
        and (row["achieved_ratio"] or 0) >= 0.99
        and row["dropped"] == 0
        and row["errors"] == 0
    )
    return row


def max_rate(args: argparse.Namespace) -> dict:
    """The rate ladder; stops after two consecutive failures."""
    rates = [float(r) for r in args.rates.split(",")]
    rows: list[dict] = []
    with LoadServer("none", uvloop=True) as srv:
        url = srv.url + "/health"
        fails = 0
        for i, rate in enumerate(rates):
            # Best of --repeat runs: on a shared machine other tenants' CPU bursts land in the
            # lag; the best run shows what the generator itself sustains (the median is kept too).
            tries = [
                run_rate(url, rate, args.duration, args.pool, not args.no_uvloop, seed=i * 100 + k)
                for k in range(args.repeat)
            ]
            tries.sort(key=lambda r: (not r["pass"], r["lag_p99_ms"] or float("inf")))
            row = dict(tries[0])
            row["tries"] = len(tries)
            row["lag_p99_ms_all"] = sorted(t["lag_p99_ms"] for t in tries)
            row["machine_cpu_pct_all"] = [t["machine_cpu_pct"] for t in tries]
            rows.append(row)
            print(
                f"  {rate:>7.0f}/s  lag p99 {_fmt(row['lag_p99_ms'])} ms (all runs "
                f"{', '.join(_fmt(x) for x in row['lag_p99_ms_all'])})  achieved "
                f"{_fmt((row['achieved_ratio'] or 0) * 100, 1)}%  engine CPU "
                f"{_fmt(row['engine_cpu_pct'], 0)}%  machine CPU {_fmt(row['machine_cpu_pct'], 0)}%  "
                f"{'PASS' if row['pass'] else 'fail'}",
                flush=True,
            )
            fails = 0 if row["pass"] else fails + 1
            if fails >= 2:
                break
    passing = [r["rate"] for r in rows if r["pass"]]
    return {
        "benchmark": "max-rate",
        "lag_limit_ms": LAG_LIMIT_MS,
        "duration_s": args.duration,
        "pool": args.pool,
        "uvloop": not args.no_uvloop,
        "rows": rows,
        "max_rate": max(passing) if passing else None,
    }


_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}


def run_wrk(url: str, c: int, d: float) -> dict:
    """``wrk -t1 -cC -dD --latency``: req/s and p50/p99 (ms)."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{c}", f"-d{int(d)}s", "--latency", url],
        capture_output=True,
        text=True,
        timeout=d + 60,
    ).stdout
    pct = {
        int(m.group(1)): float(m.group(2)) * _WRK_UNITS[m.group(3)]
        for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "tool": "wrk (1 thread)",
        "rps": rps,
        "p50_ms": pct.get(50),
        "p99_ms": pct.get(99),
        "errors": int(errors.group(1)) if errors else 0,
    }


def run_autocannon(url: str, c: int, d: float) -> dict:
    """``autocannon -c C -d D --json``: req/s and p50/p99 (ms)."""
    proc = subprocess.run(
        ["autocannon", "-c", str(c), "-d", str(int(d)), "--json", url],
        capture_output=True,
        text=True,
        timeout=d + 60,
    )
    doc = json.loads(proc.stdout)
    lat = doc["latency"]
    return {
        "tool": "autocannon",
        "rps": doc["requests"]["total"] / doc["duration"],
        "p50_ms": float(lat["p50"]),
        "p99_ms": float(lat["p99"]),
        "errors": int(doc.get("errors", 0)) + int(doc.get("non2xx", 0)),
    }


def run_ours(url: str, c: int, d: float, uvloop: bool) -> dict:
    """``axon_lab.load`` closed loop with the same connections and duration."""
    res = LoadRunner(url=url, connections=c, duration_s=d, progress=False, use_uvloop=uvloop).run()
    s = res.summary
    svc = s["metrics"]["http_req_service_duration"]
    return {
        "tool": "axon_lab.load",
        "rps": s["rps"],
        "p50_ms": svc["p50"],
        "p99_ms": svc["p99"],
        "errors": s["errors"],
        "engine_cpu_pct": s["client"]["engine_thread_cpu_pct"]["mean"],
        "client_bound": s["client"]["client_bound"],
    }


def compare(args: argparse.Namespace) -> dict:
    """Same server, same connections and duration: each tool in turn, ``--repeat`` rounds."""
    tools = [t for t in args.tools.split(",") if t]
    rows: list[dict] = []
    with LoadServer("none", uvloop=True) as srv:
        url = srv.url + "/health"
        for rnd in range(args.repeat):
            for tool in ["ours", *tools]:
                if tool != "ours" and shutil.which(tool) is None:
                    print(f"  {tool}: not installed, skipped", flush=True)
                    continue
                time.sleep(1.0)  # let the server settle between tools
                if tool == "ours":
                    row = run_ours(url, args.connections, args.duration, not args.no_uvloop)
                elif tool == "wrk":
                    row = run_wrk(url, args.connections, args.duration)
                else:
                    row = run_autocannon(url, args.connections, args.duration)
                row["round"] = rnd
                rows.append(row)
                print(
                    f"  {row['tool']:<16} {row['rps']:>10,.0f} req/s  p50 {_fmt(row['p50_ms'], 3)} ms"
                    f"  p99 {_fmt(row['p99_ms'], 3)} ms",
                    flush=True,
                )
    ours = [r for r in rows if r["tool"] == "axon_lab.load"]
    ratios = {}
    for other in sorted({r["tool"] for r in rows} - {"axon_lab.load"}):
        theirs = [r for r in rows if r["tool"] == other]

        def med(runs: list[dict], key: str) -> float:
            return float(statistics.median(r[key] for r in runs))

        ratios[other] = {
            "throughput_ratio": med(ours, "rps") / med(theirs, "rps"),
            "rps_ours": med(ours, "rps"),
            "rps_theirs": med(theirs, "rps"),
            "p50_ours_ms": med(ours, "p50_ms"),
            "p50_theirs_ms": med(theirs, "p50_ms"),
            "p99_ours_ms": med(ours, "p99_ms"),
            "p99_theirs_ms": med(theirs, "p99_ms"),
        }
    return {
        "benchmark": "compare",
        "connections": args.connections,
        "duration_s": args.duration,
        "rows": rows,
        "vs": ratios,
    }


def main() -> None:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("max-rate", help="largest Poisson rate with schedule-lag p99 < 5 ms")
    m.add_argument("--rates", default="500,1000,1500,2000,2500,3000,4000,5000,6000,8000")
    m.add_argument("--duration", type=float, default=10.0)
    m.add_argument("--pool", type=int, default=64)
    m.add_argument("--repeat", type=int, default=3, help="runs per rate (best one counts)")
    c = sub.add_parser("compare", help="wrk/autocannon side by side (closed loop)")
    c.add_argument("-c", "--connections", type=int, default=10)
    c.add_argument("-d", "--duration", type=float, default=10.0)
    c.add_argument("--tools", default="wrk,autocannon")
    c.add_argument("--repeat", type=int, default=1)
    for sp in (m, c):
        sp.add_argument("--no-uvloop", action="store_true")
        sp.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args()
    print(
        f"{args.cmd}: machine {collect()['machine']['cpu']} × {collect()['machine']['cores']} cores"
    )
    result = max_rate(args) if args.cmd == "max-rate" else compare(args)
    result["provenance"] = collect(vars(args) | {"json": str(args.json)})
    if args.cmd == "max-rate":
        print(
            f"max Poisson rate with schedule-lag p99 < {LAG_LIMIT_MS:g} ms: {result['max_rate']}/s"
        )
    else:
        for tool, v in result["vs"].items():
            print(
                f"vs {tool}: throughput ratio {v['throughput_ratio']:.2f}; p50 {v['p50_ours_ms']:.3f} "
                f"vs {v['p50_theirs_ms']:.3f} ms; p99 {v['p99_ours_ms']:.3f} vs {v['p99_theirs_ms']:.3f} ms"
            )
    if args.json:
        from axon_lab import jsonutil

        jsonutil.write_json(args.json, result)


if __name__ == "__main__":
    main()
