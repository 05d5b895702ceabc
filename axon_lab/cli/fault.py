"""``axon-lab fault --backend redis|qdrant|mongodb --mode stop|pause|latency --at S --for S``: a fault injected into a load run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from axon_lab import jsonutil
from axon_lab.cli._verdict import finish
from axon_lab.errors import ConfigError

EPILOG = """\
How the fault is made:
  redis    stop: SIGKILL, restarted (empty) on the same port when the fault ends
           pause: SIGSTOP / SIGCONT; latency: a loopback TCP proxy holds Axon's bytes
  qdrant, mongodb (in-process stores of the embedded Axon): a wrapper in the pipeline's
           store guard; stop refuses calls, pause hangs them, latency delays them
The embedded Axon is started with fault injection on, its own redis-server and the proxy.
Exit 0 when the service degraded as it should and recovered, 99 when not, 1 on errors.
--analyze DIR re-reads a fault run directory (also one whose process was killed).
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``fault`` sub-command."""
    from axon_lab.faults import BACKENDS, MODES

    p = sub.add_parser(
        "fault",
        help="fault experiment: stop/pause/slow a lab-owned backend during a load run",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--backend", choices=BACKENDS, default="redis", help="what to break (default redis)"
    )
    p.add_argument("--mode", choices=MODES, default="stop", help="how (default stop)")
    p.add_argument(
        "--at", default="10s", metavar="S", help="fault starts S after the load (default 10s)"
    )
    p.add_argument(
        "--for", dest="for_", default="10s", metavar="S", help="fault lasts S (default 10s)"
    )
    p.add_argument("--duration", default="40s", metavar="S", help="load run length (default 40s)")
    p.add_argument(
        "--latency-ms", type=float, default=200.0, metavar="MS", help="latency mode: added ms (200)"
    )
    p.add_argument(
        "--rate", type=float, default=5.0, metavar="R", help="open loop: requests/s (default 5)"
    )
    p.add_argument(
        "-c", "--connections", type=int, default=64, metavar="N", help="connection-pool bound (64)"
    )
    p.add_argument(
        "--prompts",
        choices=("mix", "distinct", "guide"),
        default=None,
        help="prompt mix (default: mix for redis, distinct for the stores)",
    )
    p.add_argument("--timeout", default="15s", metavar="S", help="client timeout per request (15s)")
    p.add_argument(
        "--options",
        default=None,
        metavar="JSON",
        help='PipelineOptions overrides, e.g. \'{"vector_timeout_s": 0.5, "vector_retries": 0}\'',
    )
    p.add_argument(
        "--max-error-rate",
        type=float,
        default=None,
        metavar="F",
        help="fail (99) when the error rate during the fault reaches F (default: 0.01 for "
        "redis stop/pause, none for the stores, whose faults give 503s)",
    )
    p.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="records, health samples, events, sidecar and figures (default reports/faults)",
    )
    p.add_argument(
        "--analyze",
        type=Path,
        default=None,
        metavar="DIR",
        help="do not run: analyze an earlier (or killed) fault run directory",
    )
    p.add_argument(
        "--smoke", action="store_true", help="9 s (fault at 2.5 s for 2.5 s), same code path"
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=_fault)


def _options(spec: str | None) -> dict | None:
    if spec is None:
        return None
    try:
        doc = json.loads(spec)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--options is not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ConfigError("--options must be a JSON object of PipelineOptions fields")
    from pydantic import ValidationError

    from axon_lab.pipeline import PipelineOptions

    try:
        PipelineOptions(**doc)
    except ValidationError as exc:
        e = exc.errors()[0]
        raise ConfigError(f"--options: {'.'.join(map(str, e['loc']))}: {e['msg']}") from None
    return doc


def _fault(args: argparse.Namespace) -> int:
    from axon_lab import faults
    from axon_lab.faults import plots as plots
    from axon_lab.load.shapes import parse_duration
    from axon_lab.report import record

    if args.analyze is not None:
        run = faults.read_fault_run(args.analyze)
        out = args.analyze
    else:
        at_s, for_s, dur = (
            parse_duration(args.at),
            parse_duration(args.for_),
            parse_duration(args.duration),
        )
        options = _options(args.options)
        out = args.out or Path("reports") / "faults"
        run_out = out / "runs" / f"{args.backend}-{args.mode}"
        sys.stderr.write("axon-lab fault: starting the embedded Axon (fault injection on)...\n")
        with faults.start_fault_target(options=options, log_path=None) as target:
            run = faults.run_fault(
                target,
                backend=args.backend,
                mode=args.mode,
                at_s=at_s,
                for_s=for_s,
                duration_s=dur,
                latency_ms=args.latency_ms,
                rate=args.rate,
                connections=args.connections,
                prompts=args.prompts,
                timeout_s=parse_duration(args.timeout),
                out_dir=run_out,
                progress=sys.stderr.isatty(),
                smoke=args.smoke,
            )
    verdict = faults.verdict(run, max_error_rate=args.max_error_rate)
    timeline = faults.timeline(run)
    sidecar = record(
        "faults",
        faults.results(run),
        parameters={**run.plan, "smoke": run.plan.get("smoke", False)},
        frames={"phases": run.phases, "timeline": timeline},
        verdict=verdict,
        out_dir=out,
    )
    plots.fault_timeline(run.records, timeline, run.health, run.fault).savefig(
        out / "fault_timeline.png", dpi=100
    )
    plots.phase_comparison(run.phases).savefig(out / "fault_phases.png", dpi=100)
    if args.json:
        print(
            jsonutil.dumps(
                {"verdict": verdict, "sidecar": str(sidecar), "results": faults.results(run)}
            )
        )
    else:
        cols = [
            "phase",
            "requests",
            "error_rate",
            "server_errors",
            "status_503",
            "timeouts",
            "degraded_share",
            "p50_ms",
            "p95_ms",
            "p99_ms",
            "max_ms",
        ]
        print(run.phases[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        rec = run.recovery
        print(
            f"fault {run.fault['start_s'] or 0:.2f}s → {run.fault['end_s'] or 0:.2f}s (restored "
            f"{run.fault.get('restored_s') or 0:.2f}s); detection {_s(rec['detection_s'])}; recovery "
            f"{_s(rec['recovery_s'])} (/health {_s(rec['health_recovery_s'])}, latency "
            f"{_s(rec.get('latency_recovery_s'))})"
        )
    return finish("fault experiment failed", verdict, sidecar, show=not args.json)


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}s"
