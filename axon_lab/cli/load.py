"""``axon-lab load URL|--scenario NAME [...]``: a load test with thresholds (exit 99 when one fails)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

from axon_lab import jsonutil
from axon_lab.errors import AxonLabError, ConfigError, InputFileError

EPILOG = """\
shapes (one of):
  -c N -d S                        closed loop, N connections for S seconds (autocannon)
  --stages 30s:5,10s:50,1m:50      closed loop, ramping VUs (k6 stages)
  --rate R -d S [--arrival poisson] open loop, R requests/s (wrk2 -R; -c bounds the pool)
  --arrival poisson --stages 10s:100,20s:200   open loop, ramping rate

thresholds (k6 syntax, repeatable; exit 99 when one fails):
  http_req_duration:p(95)<3000  http_req_failed:rate<0.05  stage.retrieval:p(95)<500
  checks:rate>0.99  http_reqs:rate>10  cache.embedding:rate>0.8  schedule_lag:p(99)<5
checks (repeatable): status==200  json:result  header:Server-Timing  body~ok  duration<3000

Without URL the embedded Axon API is started on a free loopback port.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``load`` sub-command."""
    from axon_lab.load.engine import ENGINES
    from axon_lab.load.scenarios import SCENARIOS

    p = sub.add_parser(
        "load",
        help="load test (open/closed loop) with k6-style thresholds",
        description=__doc__,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", nargs="?", help="target URL (default: start the embedded API)")
    p.add_argument(
        "--scenario", metavar="NAME", help=f"guide preset: {', '.join(SCENARIOS.names())}"
    )
    p.add_argument(
        "--scale",
        type=float,
        default=1.0,
        metavar="F",
        help="multiply every duration by F (CI: 0.05)",
    )
    g = p.add_argument_group("shape")
    g.add_argument(
        "-c",
        "--connections",
        type=int,
        metavar="N",
        help="closed loop: connections; open loop: pool bound (default 256)",
    )
    g.add_argument("-d", "--duration", metavar="S", help="duration (30, 30s, 1m30s)")
    g.add_argument(
        "--stages", metavar="SPEC", help="DURATION:TARGET,... (VUs, or req/s with --arrival)"
    )
    g.add_argument("--rate", type=float, metavar="R", help="open loop: requests per second")
    g.add_argument("--arrival", choices=["constant", "poisson"], help="open-loop arrival process")
    g.add_argument("--start", type=float, metavar="X", help="ramping shapes: target at t=0")
    g.add_argument("--think-time", metavar="S", help="closed loop: pause between a VU's requests")
    r = p.add_argument_group("request")
    r.add_argument("-m", "--method", help="HTTP method (default GET, or POST with a body)")
    r.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'")
    r.add_argument("-b", "--body", help="request body (JSON gets Content-Type: application/json)")
    r.add_argument("--body-file", type=Path, metavar="FILE", help="read the body from FILE")
    r.add_argument(
        "--bodies-file",
        type=Path,
        metavar="FILE",
        help="one body per line, used in turn (e.g. varied prompts)",
    )
    r.add_argument("--timeout", default="30s", metavar="S", help="per-request timeout (30s)")
    r.add_argument(
        "--profile",
        default="auto",
        metavar="NAME|FILE",
        help="the target's contract: axon-lab, axon-api, a TOML/JSON profile file, or auto "
        "(default: ask the target's /health once; the embedded API is axon-lab)",
    )
    r.add_argument(
        "--workspace",
        metavar="ID",
        help="workspaceId of the scenario's prompts (the real Axon API needs a UUID)",
    )
    r.add_argument(
        "--pace-rate-limit",
        action="store_true",
        help="read the target's RateLimit-Policy (one request) and send at 90%% of the allowed "
        "rate, at most the remaining budget (a rate-limited deployment cannot be load tested "
        "beyond it: lift the limit for the generator on the target)",
    )
    r.add_argument(
        "--stream",
        action="store_true",
        help='ask for Server-Sent Events ("stream": true) and time them: sse.ttft, sse.itl...',
    )
    r.add_argument(
        "--grace", metavar="S", help="time for in-flight requests after the end (= timeout)"
    )
    v = p.add_argument_group("verdicts")
    v.add_argument("--threshold", action="append", default=[], metavar="EXPR")
    v.add_argument("--check", action="append", default=[], metavar="EXPR")
    v.add_argument(
        "--no-scenario-thresholds",
        action="store_true",
        help="do not add the scenario's expectations as thresholds",
    )
    o = p.add_argument_group("output and safety")
    o.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write summary.json, records.parquet, histograms.json, response_time.hgrm",
    )
    o.add_argument("--name", help="label stored in the summary")
    o.add_argument(
        "--history",
        metavar="PATH",
        help="add the run to this history (.duckdb or a Parquet directory; default "
        "$AXON_HISTORY; needs --out)",
    )
    o.add_argument("--json", action="store_true", help="print summary.json instead of the table")
    o.add_argument("--no-progress", action="store_true", help="no progress bar")
    o.add_argument("--allow-remote", action="store_true", help="allow a non-loopback target")
    o.add_argument(
        "-k", "--insecure", action="store_true", help="https: do not verify the server certificate"
    )
    o.add_argument("--max-requests", type=int, default=None, metavar="N", help="bound on requests")
    o.add_argument("--max-duration", default=None, metavar="S", help="bound on duration (4h)")
    o.add_argument(
        "--engine",
        default="asyncio",
        metavar="NAME",
        help=f"load engine ({', '.join(ENGINES.names())})",
    )
    o.add_argument("--seed", type=int, default=0, help="Poisson arrival seed")
    o.add_argument(
        "--late-ms",
        type=float,
        default=10.0,
        metavar="MS",
        help="a request sent this much after its intended start counts late",
    )
    o.add_argument("--no-uvloop", action="store_true", help="use the stdlib event loop")
    lc = p.add_argument_group("locust engine (--engine locust; closed loop, http)")
    lc.add_argument("--workers", type=int, metavar="N", help="local Locust workers (default 1)")
    lc.add_argument(
        "--master",
        action="store_true",
        help="master only: wait for --expect-workers workers from other machines",
    )
    lc.add_argument("--expect-workers", type=int, metavar="N", help="workers the master waits for")
    lc.add_argument(
        "--master-bind",
        default=None,
        metavar="H",
        help="--master: address to listen on (default 0.0.0.0)",
    )
    lc.add_argument(
        "--worker",
        action="store_true",
        help="run one Locust worker for this scenario against --master-host",
    )
    lc.add_argument("--master-host", metavar="H", help="--worker: the master's address")
    lc.add_argument(
        "--master-port",
        type=int,
        metavar="P",
        help="master port (default 5557 with --master/--worker, a free one for local workers)",
    )
    p.set_defaults(func=_load)


def _body_args(args: argparse.Namespace) -> dict:
    given = [x for x in (args.body, args.body_file, args.bodies_file) if x is not None]
    if len(given) > 1:
        raise ConfigError("give one of --body, --body-file, --bodies-file")
    if args.body is not None:
        return {"body": args.body}
    try:
        if args.body_file is not None:
            return {"body": args.body_file.read_bytes()}
        if args.bodies_file is not None:
            lines = [
                ln for ln in args.bodies_file.read_text(encoding="utf-8").splitlines() if ln.strip()
            ]
            if not lines:
                raise InputFileError(args.bodies_file, "no bodies in file")
            return {"bodies": lines}
    except OSError as exc:
        raise InputFileError(exc.filename or "body file", exc.strerror or str(exc)) from None
    return {}


def runner_kwargs(args: argparse.Namespace, url: str) -> dict:
    """LoadRunner keyword arguments from parsed CLI arguments."""
    from axon_lab.load.http import header_lines
    from axon_lab.load.runner import DEFAULT_MAX_DURATION_S, DEFAULT_MAX_REQUESTS
    from axon_lab.load.shapes import parse_duration, parse_stages

    kw = {
        "url": url,
        "scenario": args.scenario,
        "scale": args.scale,
        "method": args.method,
        "headers": header_lines(args.header),
        "connections": args.connections,
        "duration_s": parse_duration(args.duration) if args.duration else None,
        "stages": parse_stages(args.stages) if args.stages else None,
        "rate": args.rate,
        "arrival": args.arrival,
        "start": args.start,
        "think_time_s": parse_duration(args.think_time) if args.think_time else None,
        "timeout_s": parse_duration(args.timeout),
        "grace_s": parse_duration(args.grace) if args.grace else None,
        "checks": args.check,
        "thresholds": args.threshold,
        "scenario_thresholds": not args.no_scenario_thresholds,
        "out_dir": args.out,
        "name": args.name,
        "allow_remote": args.allow_remote,
        "max_requests": args.max_requests or DEFAULT_MAX_REQUESTS,
        "max_duration_s": parse_duration(args.max_duration)
        if args.max_duration
        else DEFAULT_MAX_DURATION_S,
        "engine": args.engine,
        "seed": args.seed,
        "late_ms": args.late_ms,
        "progress": not args.no_progress and sys.stderr.isatty(),
        "use_uvloop": not args.no_uvloop,
        "insecure": args.insecure,
        "profile": None if args.profile == "auto" else args.profile,
        "workspace": args.workspace,
        "stream": args.stream,
    }
    kw["engine_options"] = _engine_options(args)
    if args.rate is not None and args.think_time:
        raise ConfigError("--think-time applies to the closed loop only (not with --rate)")
    kw.update(_body_args(args))
    return kw


def _engine_options(args: argparse.Namespace) -> dict:
    """``engine_options`` for the locust engine from ``--workers/--master/...``."""
    locust_flags = [
        f
        for f, v in (
            ("--workers", args.workers),
            ("--master", args.master),
            ("--expect-workers", args.expect_workers),
            ("--master-bind", args.master_bind),
            ("--worker", args.worker),
            ("--master-host", args.master_host),
            ("--master-port", args.master_port),
        )
        if v
    ]
    if args.engine != "locust":
        if locust_flags:
            raise ConfigError(f"{', '.join(locust_flags)}: only apply with --engine locust")
        return {}
    if args.worker:
        if not args.master_host:
            raise ConfigError("--worker needs --master-host")
        if args.master or args.workers:
            raise ConfigError("--worker runs one worker; drop --master/--workers")
        # The worker's share of --max-requests is split by the master's worker count.
        return {}
    opts: dict = {}
    if args.master:
        if not args.expect_workers:
            raise ConfigError("--master needs --expect-workers N")
        if args.workers:
            raise ConfigError("--master starts no local workers; drop --workers")
        opts.update(expect_workers=args.expect_workers, master_bind=args.master_bind or "0.0.0.0")
    else:
        if args.expect_workers or args.master_bind or args.master_host:
            raise ConfigError(
                "--expect-workers/--master-bind go with --master, --master-host with --worker"
            )
        opts["workers"] = args.workers or 1
    if args.master_port:
        opts["master_port"] = args.master_port
    return opts


def _run_worker(kwargs: dict, args: argparse.Namespace) -> int:
    """``--worker``: one Locust worker for the same scenario, records sent to the master."""
    from axon_lab.load.locust_engine import DEFAULT_MASTER_PORT, run_worker
    from axon_lab.load.runner import LoadRunner

    if kwargs["url"] is None or args.url is None:
        raise ConfigError("--worker needs the target URL (as seen from this machine)")
    runner = LoadRunner(**kwargs)
    sys.stderr.write(
        f"axon-lab load: locust worker for {runner.target.url} -> master "
        f"{args.master_host}:{args.master_port or DEFAULT_MASTER_PORT}\n"
    )
    return run_worker(
        runner.plan(),
        master_host=args.master_host,
        master_port=args.master_port or DEFAULT_MASTER_PORT,
    )


@contextlib.contextmanager
def _target(url: str | None) -> Iterator[str]:
    """The URL given, or the embedded API started for the duration of the run."""
    if url is not None:
        yield url
        return
    try:
        from axon_lab.api.server import running_server
    except ImportError as exc:  # the API package is someone else's; say what is missing
        raise ConfigError(f"no URL given and the embedded API is unavailable ({exc})") from None
    sys.stderr.write("axon-lab load: starting the embedded Axon API...\n")
    with running_server() as base:
        yield base + "/health"


@contextlib.contextmanager
def _sigterm_stops(runner) -> Iterator[None]:
    """SIGTERM ends the run like Ctrl-C: records kept, summary written, marked incomplete."""
    try:
        old = signal.signal(signal.SIGTERM, lambda *_: runner.stop("terminated (SIGTERM)"))
    except ValueError:  # not the main thread (tests calling main() from a worker)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _record_history(args: argparse.Namespace, result) -> None:
    """Add the run to ``--history`` / ``$AXON_HISTORY`` (needs an output directory)."""
    from axon_lab.history import record_run

    if result.out_dir is None:
        if args.history:
            sys.stderr.write("axon-lab load: --history needs --out (the run must be on disk)\n")
        return
    added = record_run(result.out_dir, args.history)
    if added is not None:
        for e in added.errors:
            sys.stderr.write(f"axon-lab load: history: {e}\n")
        sys.stderr.write(f"axon-lab load: added to the history ({len(added.added)} run)\n")


def _target_options(url: str, profile: object) -> dict:
    """The target's pipeline options, recorded with the run (history names option changes)."""
    from axon_lab.load.profiles import TargetProfile, resolve_profile, target_options

    prof = profile if isinstance(profile, TargetProfile) else resolve_profile(profile or None)  # type: ignore[arg-type]
    opts = target_options(url, prof)
    return {"options": opts} if opts is not None else {}


def _pace(args: argparse.Namespace, kwargs: dict) -> None:
    """Replace the shape by an arrival rate under the target's announced rate limit."""
    from axon_lab.load.profiles import rate_limit_pace, resolve_profile

    if not args.url:
        raise ConfigError("--pace-rate-limit needs a target URL (the embedded API has no limit)")
    if args.rate is not None or args.stages:
        raise ConfigError("--pace-rate-limit sets the rate itself: drop --rate/--stages")
    prof = resolve_profile(kwargs.get("profile") or "axon-lab", args.url)
    pace = rate_limit_pace(args.url, prof)
    if pace is None:
        raise ConfigError("the target announces no RateLimit-Policy: nothing to pace under")
    kwargs["rate"] = pace["rate"]
    kwargs["connections"] = kwargs.get("connections") or 2
    if pace["remaining"] is not None:
        kwargs["max_requests"] = max(1, min(kwargs["max_requests"], pace["remaining"] - 1))
    sys.stderr.write(
        f"axon-lab load: pacing at {pace['rate']:.3g} req/s under RateLimit-Policy "
        f"{pace['policy']} (remaining {pace['remaining']}; at most {kwargs['max_requests']} "
        "requests)\n"
    )


def _load(args: argparse.Namespace) -> int:
    from axon_lab.load.runner import LoadRunner

    # Validate everything we can before starting a server.
    kwargs = runner_kwargs(args, args.url or "http://127.0.0.1:1/health")
    if args.worker:
        kwargs["url"] = args.url
        return _run_worker(kwargs, args)
    LoadRunner(**kwargs)  # bad arguments and remote targets fail here, before any request
    if args.url and args.profile == "auto":
        from axon_lab.load.profiles import detect_or_default

        kwargs["profile"], how = detect_or_default(args.url)
        sys.stderr.write(f"axon-lab load: target profile {kwargs['profile'].name} ({how})\n")
    if args.pace_rate_limit:
        _pace(args, kwargs)
    if args.url:
        kwargs["parameters"] = _target_options(args.url, kwargs.get("profile"))
    LoadRunner(**kwargs)
    with _target(args.url) as url:
        kwargs["url"] = url
        if not args.url:
            kwargs["parameters"] = _target_options(url, kwargs["profile"])
        runner = LoadRunner(**kwargs)
        with _sigterm_stops(runner):
            result = runner.run()
    if args.json:
        print(jsonutil.dumps(result.summary))
    else:
        print(result.table())
        if "locust" in result.summary:
            from axon_lab.load.locust_engine import side_by_side

            print("\nlatency percentiles (ms): ours (exact) vs Locust's (bucketed)")
            print(side_by_side(result.summary))
    if result.out_dir is not None:
        sys.stderr.write(
            f"axon-lab load: wrote summary.json, records.parquet, histograms.json to "
            f"{result.out_dir}\n"
        )
    _record_history(args, result)
    result.raise_for_thresholds()
    if result.interrupted:
        sys.stderr.write(f"axon-lab: {result.summary.get('incomplete_reason') or 'interrupted'}\n")
        return result.exit_code
    if result.incomplete:
        raise AxonLabError(f"run incomplete: {result.summary.get('incomplete_reason')}")
    return 0
