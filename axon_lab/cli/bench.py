"""``axon-lab bench pipeline --requests N [--llm off|simulated] --json``: per-stage p50/p95."""

from __future__ import annotations

import argparse

from axon_lab import jsonutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks of the embedded stack")
    bsub = p.add_subparsers(dest="bench_command", metavar="WHAT", required=True)
    b = bsub.add_parser("pipeline", help="per-stage latency of the embedded pipeline")
    b.add_argument("--requests", type=int, default=50, help="distinct prompts (each run cold, then warm)")
    b.add_argument("--llm", choices=["off", "simulated"], default="off", help="include the simulated LLM")
    b.add_argument("--workspace", default="test")
    b.add_argument("--baseline", action="store_true", help="the guide's 'before' options (no caches...)")
    b.add_argument("--json", action="store_true")
    b.set_defaults(func=_pipeline)


def _pipeline(args: argparse.Namespace) -> int:
    from axon_lab.bench import bench_pipeline
    from axon_lab.pipeline import PipelineOptions

    opts = PipelineOptions.baseline() if args.baseline else PipelineOptions()
    res = bench_pipeline(requests=args.requests, llm=args.llm, workspace=args.workspace, options=opts)
    if args.json:
        print(jsonutil.dumps(res))
        return 0
    print(f"requests={res['requests']} llm={res['llm']} statuses={res['status_counts']} rss={res['rss_mb']}")
    h = res["health_ms"]
    print(f"/health: p50 {h['p50']:.2f} ms  p95 {h['p95']:.2f} ms")
    for phase, stages in res["stages_ms"].items():
        print(f"[{phase}] {'stage':<20}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
        for stage, st in stages.items():
            print(f"        {stage:<20}{st['p50']:>10.2f}{st['p95']:>10.2f}{st['p99']:>10.2f}")
        o = res["overhead_without_llm_ms"].get(phase)
        if o:
            print(f"        {'overhead (no LLM)':<20}{o['p50']:>10.2f}{o['p95']:>10.2f}{o['p99']:>10.2f}")
    return 0
