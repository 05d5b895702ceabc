"""``axon-lab bench pipeline|burst``: per-stage p50/p95; a cache stampede without/with coalescing."""

from __future__ import annotations

import argparse

from axon_lab import jsonutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks of the embedded stack")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    b = bsub.add_parser("pipeline", help="per-stage latency of the embedded pipeline")
    b.add_argument(
        "--requests", type=int, default=50, help="distinct prompts (each run cold, then warm)"
    )
    b.add_argument(
        "--llm", choices=["off", "simulated"], default="off", help="include the simulated LLM"
    )
    b.add_argument("--workspace", default="test")
    b.add_argument(
        "--baseline", action="store_true", help="the guide's 'before' options (no caches...)"
    )
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_pipeline)
    c = bsub.add_parser(
        "burst", help="cache stampede: identical new prompts at once, without/with coalescing"
    )
    c.add_argument(
        "--size", type=int, default=10, help="identical requests sent at once (default 10)"
    )
    c.add_argument(
        "--bursts", type=int, default=10, help="bursts, each with a new prompt (default 10)"
    )
    c.add_argument(
        "--llm", choices=["off", "simulated"], default="off", help="include the simulated LLM"
    )
    c.add_argument("--workspace", default="test")
    c.add_argument("--json", action="store_true")
    c.set_defaults(func=_burst)


def _pipeline(args: argparse.Namespace) -> int:
    from axon_lab.bench import bench_pipeline
    from axon_lab.pipeline import PipelineOptions

    opts = PipelineOptions.baseline() if args.baseline else PipelineOptions()
    res = bench_pipeline(
        requests=args.requests, llm=args.llm, workspace=args.workspace, options=opts
    )
    if args.json:
        print(jsonutil.dumps(res))
        return 0
    print(
        f"requests={res['requests']} llm={res['llm']} statuses={res['status_counts']} rss={res['rss_mb']}"
    )
    h = res["health_ms"]
    print(f"/health: p50 {h['p50']:.2f} ms  p95 {h['p95']:.2f} ms")
    for phase, stages in res["stages_ms"].items():
        print(f"[{phase}] {'stage':<20}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
        for stage, st in stages.items():
            print(f"        {stage:<20}{st['p50']:>10.2f}{st['p95']:>10.2f}{st['p99']:>10.2f}")
        o = res["overhead_without_llm_ms"].get(phase)
        if o:
            print(
                f"        {'overhead (no LLM)':<20}{o['p50']:>10.2f}{o['p95']:>10.2f}{o['p99']:>10.2f}"
            )
    return 0


def _burst(args: argparse.Namespace) -> int:
    from axon_lab.bench import bench_burst

    res = bench_burst(size=args.size, bursts=args.bursts, llm=args.llm, workspace=args.workspace)
    if args.json:
        print(jsonutil.dumps(res))
        return 0
    print(
        f"{res['bursts']} bursts of {res['size']} identical new prompts at once (llm={res['llm']})"
    )
    print(
        f"{'mode':<14}{'burst p50 ms':>14}{'burst max ms':>14}{'embeddings':>12}{'retrievals':>12}  statuses"
    )
    for mode in ("no_coalesce", "coalesce"):
        m = res[mode]
        print(
            f"{mode:<14}{m['burst_ms']['p50']:>14.1f}{m['burst_ms']['max']:>14.1f}"
            f"{m['embeddings_per_burst']:>12.1f}{m['retrievals_per_burst']:>12.1f}  {m['status_counts']}"
        )
    print("(embeddings / retrievals: computed per burst; the rest shared an in-flight one)")
    return 0
