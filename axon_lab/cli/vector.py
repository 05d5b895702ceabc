"""``axon-lab vector sweep|upsert-bench``: HNSW grid sweeps and batch-vs-single upsert timing."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from axon_lab import jsonutil
from axon_lab.errors import ConfigError, ThresholdsFailed

FILTERED_COLUMNS = [
    "payload_index",
    "workspace",
    "selectivity",
    "subset_points",
    "below_full_scan",
    "hnsw_ef",
    "exact",
    "recall",
    "returned",
    "p50_ms",
    "p95_ms",
    "qps_1",
]


def _list(kind: Callable[[str], Any], name: str) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        try:
            values = [kind(v.strip()) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{name}: expected a comma-separated list, got {text!r}"
            ) from None
        if not values:
            raise argparse.ArgumentTypeError(f"{name}: empty list")
        return values

    return parse


def _dataset_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--dataset",
        choices=("corpus", "synthetic"),
        default="corpus",
        help="real corpus embeddings (queries: held-out texts) or synthetic clusters",
    )
    p.add_argument(
        "--size",
        type=int,
        default=None,
        help="points: corpus sample limit (default: full corpus) or synthetic size (default 10000)",
    )
    p.add_argument(
        "--queries",
        type=int,
        default=None,
        help="number of queries (default: all held-out texts; synthetic 500)",
    )
    p.add_argument("--seed", type=int, default=0, help="synthetic dataset seed")
    p.add_argument(
        "--smoke", action="store_true", help="tiny dataset and grid: seconds, same code path"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON on stdout")
    p.add_argument(
        "--out", default=None, help="write a results sidecar (JSON + Parquet frames) into DIR"
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vector", help="HNSW tuning: recall vs latency sweeps, filtered search, upserts"
    )
    vsub = p.add_subparsers(dest="vector_command", metavar="ACTION", required=True)

    s = vsub.add_parser(
        "sweep",
        help="sweep m x ef_construct x hnsw_ef: recall@k, latency, QPS, build",
        description="Build each (m, ef_construct) once on Qdrant Edge (or the server at "
        "AXON_QDRANT_URL), measure recall@k against exact numpy ground truth, latency "
        "percentiles and QPS at every hnsw_ef, then recommend the cheapest config that "
        "meets the target. Exit 99 when none does.",
    )
    _dataset_args(s)
    s.add_argument(
        "--m", type=_list(int, "--m"), default=[8, 16, 32], help="HNSW m values (default 8,16,32)"
    )
    s.add_argument(
        "--ef-construct",
        type=_list(int, "--ef-construct"),
        default=[64, 128, 256],
        help="ef_construct values (default 64,128,256)",
    )
    s.add_argument(
        "--hnsw-ef",
        type=_list(int, "--hnsw-ef"),
        default=[16, 32, 64, 128, 256],
        help="search hnsw_ef values, each >= k (default 16,32,64,128,256)",
    )
    s.add_argument(
        "--full-scan-threshold",
        type=_list(int, "--full-scan-threshold"),
        default=[10_000],
        help="full_scan_threshold values in KB (default 10000, Qdrant's)",
    )
    s.add_argument(
        "--quantization",
        type=_list(str, "--quantization"),
        default=["none"],
        help="none and/or int8 (default none)",
    )
    s.add_argument(
        "--oversampling",
        type=_list(float, "--oversampling"),
        default=[1.0, 2.0],
        help="int8 search oversampling values, with rescoring (default 1,2)",
    )
    s.add_argument("--k", type=int, default=10, help="neighbours per query (recall@k; default 10)")
    s.add_argument(
        "--clients", type=int, default=2, help="concurrent clients (threads) for QPS (default 2)"
    )
    s.add_argument(
        "--max-search-threads",
        type=int,
        default=None,
        help="Qdrant Edge search pool size (default: one per CPU)",
    )
    s.add_argument(
        "--target-recall", type=float, default=0.95, help="recall@k to reach (default 0.95)"
    )
    s.add_argument(
        "--budget-ms",
        type=float,
        default=None,
        help="p95 search latency budget in ms (default: the guide's 200 ms vector-search budget)",
    )
    s.add_argument(
        "--goal-recall",
        type=float,
        default=0.99,
        help="stretch goal reported beside the recommendation: recall@k (default 0.99) ...",
    )
    s.add_argument(
        "--goal-p95-ms", type=float, default=5.0, help="... at p95 under this (default 5 ms)"
    )
    s.add_argument(
        "--no-filtered",
        dest="filtered",
        action="store_false",
        help="skip the filtered-search study",
    )
    s.add_argument(
        "--selectivity",
        type=_list(float, "--selectivity"),
        default=[0.01, 0.1, 0.5],
        help="target filter selectivities (nearest workspace is used; default 0.01,0.1,0.5)",
    )
    s.add_argument(
        "--payload-index",
        type=_list(str, "--payload-index"),
        default=["before", "none"],
        help="payload index modes for the filtered study: before,after,none (default before,none)",
    )
    s.set_defaults(func=_sweep)

    f = vsub.add_parser(
        "filtered",
        help="filtered search at several selectivities, with/without payload index",
        description="One build per payload-index mode (before the HNSW build, after, "
        "none); recall@k against the exact filtered top-k and latency per workspace "
        "(selectivity) and hnsw_ef, next to the unfiltered case.",
    )
    _dataset_args(f)
    f.add_argument("--m", type=int, default=16, help="HNSW m (default 16)")
    f.add_argument("--ef-construct", type=int, default=128, help="HNSW ef_construct (default 128)")
    f.add_argument(
        "--hnsw-ef",
        type=_list(int, "--hnsw-ef"),
        default=[32, 64, 128],
        help="search hnsw_ef values (default 32,64,128)",
    )
    f.add_argument(
        "--full-scan-threshold", type=int, default=10_000, help="full_scan_threshold, KB"
    )
    f.add_argument("--k", type=int, default=10, help="neighbours per query (default 10)")
    f.add_argument(
        "--selectivity",
        type=_list(float, "--selectivity"),
        default=[0.01, 0.1, 0.5],
        help="target selectivities (nearest workspace is used; default 0.01,0.1,0.5)",
    )
    f.add_argument(
        "--payload-index",
        type=_list(str, "--payload-index"),
        default=["before", "none"],
        help="payload index modes: before,after,none (default before,none)",
    )
    f.add_argument(
        "--max-seconds",
        type=float,
        default=15.0,
        help="cap per setting (>= 50 queries are always run; default 15 s)",
    )
    f.set_defaults(func=_filtered)

    u = vsub.add_parser("upsert-bench", help="time N single-point upserts against one batch of N")
    _dataset_args(u)
    u.add_argument(
        "--n", type=int, default=50, help="contexts per measurement (default 50, the guide's)"
    )
    u.add_argument("--repeats", type=int, default=20, help="measurements per mode (default 20)")
    u.set_defaults(func=_upsert_bench)


def _progress(args: argparse.Namespace) -> Callable[[str], None] | None:
    if args.quiet or args.json:
        return None
    return lambda msg: print(msg, file=sys.stderr, flush=True)


def _dataset(args: argparse.Namespace):
    from axon_lab import vector

    if args.size is not None and args.size < 1:
        raise ConfigError(f"--size must be a positive integer, got {args.size}")
    if args.queries is not None and args.queries < 1:
        raise ConfigError(f"--queries must be a positive integer, got {args.queries}")
    return vector.load_dataset(
        args.dataset, size=args.size, n_queries=args.queries, seed=args.seed, smoke=args.smoke
    )


def _params(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k != "func"}


def _sweep(args: argparse.Namespace) -> int:
    import pandas as pd

    from axon_lab import vector

    if args.clients < 1:
        raise ConfigError(f"--clients must be >= 1, got {args.clients}")
    budget = vector.BUDGET_MS if args.budget_ms is None else args.budget_ms
    g = vector.grid(
        m=args.m,
        ef_construct=args.ef_construct,
        hnsw_ef=args.hnsw_ef,
        full_scan_threshold=args.full_scan_threshold,
        quantization=args.quantization,
        oversampling=args.oversampling,
        k=args.k,
        smoke=args.smoke,
    )
    say = _progress(args)
    data = _dataset(args)
    if say:
        say(f"{data.name}: {data.n} points x {data.dim}, {len(data.queries)} queries")
    res = vector.sweep(
        data, g, clients=args.clients, max_search_threads=args.max_search_threads, progress=say
    )
    rec = vector.recommend(res.frame, target_recall=args.target_recall, budget_ms=budget)
    goal = vector.recommend(res.frame, target_recall=args.goal_recall, budget_ms=args.goal_p95_ms)
    table = vector.table(res.frame, rec)
    results: dict[str, Any] = {
        "recommendation": rec,
        "goal": goal,
        "table": vector.records(table),
        "warnings": list(res.warnings),
        "meta": res.meta,
    }
    frames: dict[str, pd.DataFrame] = {"sweep": res.frame}
    if args.filtered:
        filt = vector.filtered_study_for(
            data,
            rec,
            g,
            selectivities=args.selectivity,
            payload_index=args.payload_index,
            max_search_threads=args.max_search_threads,
            progress=say,
        )
        frames["filtered"] = filt.frame
        results["filtered_warnings"] = list(filt.warnings)
        results["filtered"] = vector.records(filt.frame[FILTERED_COLUMNS])
    verdict = vector.verdict(rec, goal)
    if args.out:
        from axon_lab.report import record

        path = record(
            "vector_sweep",
            results,
            parameters=_params(args),
            frames=frames,
            verdict=verdict,
            out_dir=args.out,
        )
        if say:
            say(f"wrote {path}")
    if args.json:
        print(jsonutil.dumps({"verdict": verdict, **results}))
    else:
        _print_sweep(results, verdict, table, frames.get("filtered"))
    if rec["status"] != "ok":
        raise ThresholdsFailed(verdict["summary"])
    return 0


def _print_sweep(
    results: dict[str, Any], verdict: dict[str, str], table: Any, filtered: Any
) -> None:
    import pandas as pd

    with pd.option_context(
        "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format
    ):
        print(table.to_string(index=False))
        if filtered is not None:
            print()
            print(filtered[FILTERED_COLUMNS].to_string(index=False))
    rec = results["recommendation"]
    print()
    if rec["status"] == "ok":
        mg = rec["margin"]
        print(
            f"recommended: {rec['config']} hnsw_ef={rec['hnsw_ef']}  recall@k {rec['recall']:.4f} "
            f"(+{mg['recall']:.4f} over {rec['target_recall']}), p95 {rec['p95_ms']:.3f} ms "
            f"({mg['budget_share']:.2%} of {rec['budget_ms']:g} ms), {rec['qps_1']:.0f} QPS 1 client, "
            f"{rec['qps_n']:.0f} QPS N clients"
        )
    goal = results["goal"]
    if goal["status"] == "ok":
        print(
            f"goal (recall {goal['target_recall']} at p95 < {goal['budget_ms']:g} ms): {goal['config']} "
            f"hnsw_ef={goal['hnsw_ef']}  recall@k {goal['recall']:.4f}, p95 {goal['p95_ms']:.3f} ms, "
            f"{goal['qps_1']:.0f} QPS 1 client, {goal['qps_n']:.0f} QPS N clients"
        )
    else:
        print(f"goal: {goal['reason']}")
    ex = rec.get("exact")
    if ex:
        print(
            f"exact search: recall {ex['recall']:.4f}, p95 {ex['p95_ms']:.3f} ms, {ex['qps_1']:.0f} QPS"
        )
    for w in [*results["warnings"], *results.get("filtered_warnings", [])]:
        print(f"warning: {w}")
    print(f"verdict: {verdict['status']}: {verdict['summary']}")


def _filtered(args: argparse.Namespace) -> int:
    from axon_lab import vector

    say = _progress(args)
    data = _dataset(args)
    if say:
        say(f"{data.name}: {data.n} points x {data.dim}, {len(data.queries)} queries")
    res = vector.filtered_study(
        data,
        m=args.m,
        ef_construct=args.ef_construct,
        hnsw_ef=args.hnsw_ef,
        k=args.k,
        selectivities=args.selectivity,
        payload_index=args.payload_index,
        full_scan_threshold=args.full_scan_threshold,
        max_seconds=args.max_seconds,
        progress=say,
    )
    results = {
        "filtered": vector.records(res.frame[FILTERED_COLUMNS]),
        "warnings": list(res.warnings),
        "meta": res.meta,
    }
    verdict = {
        "status": "info",
        "summary": f"filtered search on {data.n} points, "
        f"payload index {','.join(args.payload_index)}",
    }
    if args.out:
        from axon_lab.report import record

        record(
            "vector_filtered",
            results,
            parameters=_params(args),
            frames={"filtered": res.frame},
            verdict=verdict,
            out_dir=args.out,
        )
    if args.json:
        print(jsonutil.dumps(results))
    else:
        import pandas as pd

        with pd.option_context(
            "display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format
        ):
            print(res.frame[FILTERED_COLUMNS + ["build_s", "truncated"]].to_string(index=False))
        for w in res.warnings:
            print(f"warning: {w}")
    return 0


def _upsert_bench(args: argparse.Namespace) -> int:
    from axon_lab import vector

    data = _dataset(args)
    res = vector.upsert_bench(data, n=args.n, repeats=args.repeats)
    summary = res.meta["summary"]
    if args.out:
        from axon_lab.report import record

        record(
            "vector_upsert_bench",
            {"summary": summary},
            parameters=_params(args),
            frames={"upserts": res.frame},
            out_dir=args.out,
            verdict={"status": "info", "summary": _upsert_line(summary)},
        )
    if args.json:
        print(jsonutil.dumps(summary))
    else:
        print(_upsert_line(summary))
    return 0


def _upsert_line(s: dict[str, Any]) -> str:
    return (
        f"{s['n']} contexts on {s['backend']}: one call each {s['single_p50_ms']:.2f} ms (p50), "
        f"one batch {s['batch_p50_ms']:.2f} ms: {s['reduction']:.0%} less "
        f"(x{s['speedup']:.1f}; the guide claims ~{s['guide_claim_reduction']:.0%}); "
        f"{s['repeats']} repeats"
    )
