"""``axon-lab bench pipeline|burst|embeddings``: per-stage p50/p95; a cache stampede without/with
coalescing; the embedding backends (speed, and the same neighbours as PyTorch fp32).
"""

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
    e = bsub.add_parser(
        "embeddings",
        help="embedding backends: texts/s per batch strategy, query p50/p95, top-k vs PyTorch",
    )
    e.add_argument(
        "--limit", type=int, default=None, help="a corpus sample of N contexts (default: all)"
    )
    e.add_argument(
        "--backends", default="torch,onnx,onnx-int8", help="comma-separated (default: all three)"
    )
    e.add_argument("--batch-sizes", default="1,8,32", help="comma-separated (default 1,8,32)")
    e.add_argument(
        "--throughput-texts", type=int, default=1000, help="texts per throughput run (1000)"
    )
    e.add_argument("--queries", type=int, default=None, help="held-out queries (default: all)")
    e.add_argument("-k", type=int, default=10, help="neighbours compared (default 10)")
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=_embeddings)


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


def _embeddings(args: argparse.Namespace) -> int:
    import sys

    from axon_lab import embeddings
    from axon_lab.bench import bench_embeddings
    from axon_lab.errors import ConfigError

    backends = tuple(b.strip() for b in args.backends.split(",") if b.strip())
    for b in backends:
        embeddings.check_backend(b)
    try:
        sizes = tuple(int(x) for x in args.batch_sizes.split(",") if x.strip())
    except ValueError:
        raise ConfigError(f"--batch-sizes must be integers, got {args.batch_sizes!r}") from None
    if not sizes or min(sizes) < 1:
        raise ConfigError(f"--batch-sizes must be positive integers, got {args.batch_sizes!r}")
    res = bench_embeddings(
        limit=args.limit,
        backends=backends,
        batch_sizes=sizes,
        throughput_texts=args.throughput_texts,
        queries=args.queries,
        k=args.k,
        on_status=lambda msg: sys.stderr.write(f"bench: {msg}\n"),
    )
    if args.json:
        print(jsonutil.dumps(res))
        return 0
    print(
        f"{res['corpus_texts']} corpus texts, {res['queries']} held-out queries, "
        f"{res['cores']} cores, load {res['load_avg_1m']} at start"
    )
    print(f"{'backend':<10}{'batch':>6} {'order':<7}{'texts/s':>9}")
    for b, row in res["backends"].items():
        for t in row["throughput"]:
            print(f"{b:<10}{t['batch_size']:>6} {t['order']:<7}{t['texts_per_s']:>9.1f}")
    print(
        f"\n{'backend':<10}{'prompt p50/p95 ms':>19}{'chunk p50/p95 ms':>18}"
        f"{'recall@' + str(res['k']) + ' vs torch':>19}{'min':>6}{'full build s':>13}"
    )

    def pair(d: dict | None) -> str:
        if not d or d.get("p50") is None:
            return "-"
        return f"{d['p50']:.1f} / {d['p95']:.1f}"

    for b, row in res["backends"].items():
        build = row.get("full_corpus_build_s", "-")
        print(
            f"{b:<10}{pair(row.get('query_ms')):>19}{pair(row.get('chunk_ms')):>18}"
            f"{row['recall_at_k_vs_torch']:>19.4f}{row['min_query_overlap']:>6.1f}{build!s:>13}"
        )
    print("(full build s: corpus + held-out texts at the best texts/s, embedding only)")
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
