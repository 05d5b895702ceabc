"""``axon-lab soak --duration 10m [--rate R] [URL] --out DIR``: a long steady load; memory slope and latency drift."""

from __future__ import annotations

import argparse
import contextlib
import sys
from pathlib import Path

from axon_lab import jsonutil
from axon_lab.cli._verdict import finish


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``soak`` sub-command."""
    p = sub.add_parser(
        "soak",
        help="soak: steady load for a long time, RSS slope (MB/min) and latency drift",
        description="Drive an axon_lab server (default: the embedded one, started here) at a constant "
        "arrival rate, poll its RSS from /metrics/process, fit the memory slope and the latency "
        "trend. Exit 99 when a leak or latency drift is suspected or requests failed "
        "(runs under 2 minutes are not judged).",
    )
    p.add_argument(
        "url", nargs="?", default=None, help="base URL of an axon_lab server (default: start one)"
    )
    p.add_argument("--duration", default="10m", metavar="S", help="soak length (default 10m)")
    p.add_argument(
        "--rate", type=float, default=5.0, metavar="R", help="requests per second (default 5)"
    )
    p.add_argument(
        "--prompts",
        choices=("distinct", "mix"),
        default="distinct",
        help="distinct: every request new (default); mix: Zipf-like repetition",
    )
    p.add_argument(
        "--interval", type=float, default=2.0, metavar="S", help="RSS sampling period (2 s)"
    )
    p.add_argument(
        "--out",
        type=Path,
        default=Path("reports") / "soak",
        metavar="DIR",
        help="records, RSS samples, sidecar and figures (default reports/soak)",
    )
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback URL")
    p.add_argument("--smoke", action="store_true", help="8 s through the same code path")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_soak)


def _soak(args: argparse.Namespace) -> int:
    from axon_lab.api.server import running_server
    from axon_lab.errors import ConfigError
    from axon_lab.faults import plots as fplots
    from axon_lab.load.http import Endpoint, is_loopback_host
    from axon_lab.load.shapes import parse_duration
    from axon_lab.profiling import plots as pplots
    from axon_lab.profiling import soak
    from axon_lab.report import record

    duration = parse_duration(args.duration)
    if args.url and not args.allow_remote and not is_loopback_host(Endpoint.parse(args.url).host):
        raise ConfigError(
            "refusing a non-loopback URL without --allow-remote: a soak can hurt shared services"
        )
    with contextlib.ExitStack() as stack:
        url = args.url
        if url is None:
            sys.stderr.write("axon-lab soak: starting the embedded Axon API...\n")
            url = stack.enter_context(running_server())
        run = soak.run_soak(
            url,
            duration_s=duration,
            rate=args.rate,
            prompts=args.prompts,
            sample_interval_s=args.interval,
            out_dir=args.out / "runs" / "soak",
            progress=sys.stderr.isatty(),
            smoke=args.smoke,
        )
    results = soak.results(run)
    verdict = soak.verdict(run)
    sidecar = record(
        "soak",
        results,
        parameters=run.params,
        frames={"resources": run.resources, "windows": run.windows},
        verdict=verdict,
        out_dir=args.out,
    )
    pplots.memory_fit(run.resources, run.memory).savefig(args.out / "soak_memory.png", dpi=100)
    fplots.latency_drift(run.windows, run.latency).savefig(args.out / "soak_latency.png", dpi=100)
    if args.json:
        print(jsonutil.dumps({"verdict": verdict, "sidecar": str(sidecar), "results": results}))
    else:
        print(
            f"soak {run.params['duration_s']:g}s at {args.rate:g} req/s: {run.summary.get('count')} requests, "
            f"{run.summary.get('errors')} errors"
        )
    return finish("soak failed", verdict, sidecar, show=not args.json)
