"""``axon-lab profile --scenario NAME --out DIR``: the API under scalene while a load scenario drives it.

The module is named ``profiling`` (the verb stays ``profile``) so no module shadows the
standard library's ``profile``.
"""

from __future__ import annotations

import argparse

from axon_lab import jsonutil
from axon_lab.cli._verdict import finish


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile",
        help="profile the embedded API under load (scalene, RSS/CPU%%, event-loop lag)",
        description="Start the embedded API (under scalene unless --profiler none), sample RSS and "
        "CPU%% idle and under a load scenario, record event-loop lag, then write "
        "scalene's JSON, top CPU/memory tables, a flame graph and a results sidecar. "
        "Exit 99 when the guide's memory/CPU targets fail (or, with --soak, a leak is "
        "suspected).",
    )
    p.add_argument(
        "--scenario",
        default=None,
        help="load preset: health, simple, complex, sustained, spike (default simple; "
        "sustained with --soak)",
    )
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--scale", type=float, default=1.0, help="multiply the scenario's durations (CI: 0.05)"
    )
    p.add_argument(
        "--idle", type=float, default=10.0, metavar="SECONDS", help="idle sampling before the load"
    )
    p.add_argument(
        "--profiler",
        choices=["scalene", "none"],
        default=None,
        help="default scalene; none with --soak (no profiler overhead in the memory slope)",
    )
    p.add_argument(
        "--soak",
        action="store_true",
        help="endurance mode: fit the RSS slope under load and fail on a suspected leak",
    )
    p.add_argument("--profile-all", action="store_true", help="let scalene profile libraries too")
    p.add_argument(
        "--profile-startup",
        action="store_true",
        help="profile from process start (default: scalene profiles the load phase only)",
    )
    p.add_argument(
        "--interval", type=float, default=0.5, metavar="SECONDS", help="RSS/CPU sampling period"
    )
    p.add_argument("--top", type=int, default=15, help="rows in the top tables")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_profile)


def _profile(args: argparse.Namespace) -> int:
    from pathlib import Path

    from axon_lab import profiling
    from axon_lab.profiling import plots as plots
    from axon_lab.report import record

    scenario = args.scenario or ("sustained" if args.soak else "simple")
    profiler = args.profiler or ("none" if args.soak else "scalene")
    out = Path(args.out)
    run = profiling.run_profile(
        scenario=scenario,
        out_dir=out,
        scale=args.scale,
        idle_s=args.idle,
        profiler=profiler,
        sample_interval_s=args.interval,
        profile_all=args.profile_all,
        profile_startup=args.profile_startup,
    )
    results = profiling.summarize(run, soak=args.soak, n=args.top)
    verdict = profiling.verdict(results)
    frames = {"resources": run.resources, "event_loop_lag": run.lag}
    figures = {
        "resources": plots.resources(run.resources),
        "event_loop_lag": plots.event_loop_lag(run.lag),
        "memory_fit": plots.memory_fit(run.resources, results["memory_slope"]),
    }
    if run.scalene is not None:
        layout = profiling.flame_layout(run.scalene)
        frames.update(
            {
                "scalene_lines": run.scalene.lines,
                "scalene_functions": run.scalene.functions,
                "flame": layout,
            }
        )
        figures.update(
            {
                "flame": plots.flame(layout),
                "top_functions_cpu": plots.top_functions(
                    results["scalene"]["top_functions_cpu"], by="cpu"
                ),
                "top_lines_memory": plots.top_functions(
                    results["scalene"]["top_lines_memory"], by="memory"
                ),
            }
        )
    sidecar = record(
        "profile",
        results,
        parameters={**run.params, "soak": args.soak},
        frames=frames,
        verdict=verdict,
        out_dir=out,
    )
    for name, fig in figures.items():
        fig.savefig(out / f"{name}.png", dpi=100)
    if args.json:
        print(jsonutil.dumps({"verdict": verdict, "sidecar": str(sidecar), "results": results}))
    else:
        print(f"profile of scenario {scenario!r} ({profiler}) → {out}")
        print(results["verdicts"].to_string(index=False))
        lag = results["event_loop_lag"]
        if len(lag):
            print("event-loop lag:")
            print(lag.to_string(index=False))
        if run.scalene is not None:
            print(
                f"scalene: {results['scalene']['harness_pct']:.0f}% of sampled time outside axon_lab code "
                "(event loop, framework, idle worker threads); top axon_lab functions:"
            )
            print(
                results["scalene"]["top_functions_cpu"][["file", "name", "cpu_pct", "malloc_mb"]]
                .head(10)
                .to_string(index=False)
            )
    return finish("profile targets failed", verdict, sidecar, show=not args.json)
