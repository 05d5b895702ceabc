"""The load runner: one object, keyword-only arguments, same from a notebook, a test or the CLI."""

from __future__ import annotations

import json
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from axon_lab import jsonutil
from axon_lab.errors import (
    EXIT_ERROR,
    EXIT_OK,
    EXIT_THRESHOLDS,
    AxonLabError,
    ConfigError,
    ThresholdsFailed,
)
from axon_lab.load import shapes as _shapes
from axon_lab.load.checks import Check, as_check
from axon_lab.load.engine import ENGINES, EngineOutcome, Plan
from axon_lab.load.hdr import Histogram, write_histograms
from axon_lab.load.http import Endpoint, build_request, is_loopback_host
from axon_lab.load.profiles import TargetProfile, resolve_profile
from axon_lab.load.records import RECORDS_NAME, RecordSink
from axon_lab.load.scenarios import Scenario, for_profile, get_scenario
from axon_lab.load.summary import (
    HGRM_NAME,
    HISTOGRAMS_NAME,
    SUMMARY_NAME,
    build_summary,
    stub_summary,
)
from axon_lab.load.table import render
from axon_lab.load.thresholds import (
    RunMetrics,
    Threshold,
    ThresholdResult,
    builtin_thresholds,
    evaluate,
    parse_threshold,
)

#: Every run is bounded: at most this many requests unless raised explicitly.
DEFAULT_MAX_REQUESTS = 1_000_000
#: ... and at most this long (the guide's longest scenario is 30 minutes).
DEFAULT_MAX_DURATION_S = 4 * 3600.0
#: Closed-loop connections and duration when neither a shape nor a scenario says.
DEFAULT_CONNECTIONS = 10
DEFAULT_DURATION_S = 10.0
#: Open-loop connection-pool bound when not given (wrk2 needs -c; k6 maxVUs).
DEFAULT_POOL = 256
EXIT_INTERRUPTED = 130

BodyLike = str | bytes | Mapping[str, Any] | Sequence[Any] | None


def _streaming(body: BodyLike) -> BodyLike:
    """A JSON object body with ``"stream": true`` (other bodies are left as they are)."""
    if isinstance(body, dict):
        return {**body, "stream": True}
    if isinstance(body, str | bytes):
        try:
            doc = json.loads(body)
        except ValueError:
            return body
        if isinstance(doc, dict):
            return json.dumps({**doc, "stream": True})
    return body


def _body_bytes(body: BodyLike) -> bytes | None:
    if body is None:
        return None
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, separators=(",", ":")).encode("utf-8")


@dataclass
class LoadResult:
    """The outcome of a run: the summary, the raw records, the HDR histograms and the verdicts.

    Attributes
    ----------
    summary
        The ``summary.json`` document (schema in :mod:`axon_lab.load.summary`).
    records
        One row per request (columns in :mod:`axon_lab.load.records`).
    histograms
        ``{metric: Histogram}`` (µs, 3 significant digits), mergeable across runs/workers.
    thresholds
        Every threshold with its observed value and verdict.
    out_dir
        Where the files went (``None`` when the run kept them in memory only).
    """

    summary: dict[str, Any]
    records: Any
    histograms: dict[str, Histogram]
    thresholds: list[ThresholdResult]
    out_dir: Path | None = None
    interrupted: bool = False

    @property
    def passed(self) -> bool:
        """True when every threshold (user, scenario and built-in) passed."""
        return all(t.ok for t in self.thresholds)

    @property
    def incomplete(self) -> bool:
        """True when the run was cut short (Ctrl-C, unreachable target, bound hit, writer error)."""
        return bool(self.summary.get("incomplete"))

    @property
    def failed_thresholds(self) -> list[ThresholdResult]:
        """The thresholds that failed."""
        return [t for t in self.thresholds if not t.ok]

    @property
    def exit_code(self) -> int:
        """99 if a threshold failed, 130 if interrupted, 1 if otherwise incomplete, else 0."""
        if not self.passed:
            return EXIT_THRESHOLDS
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.incomplete:
            return EXIT_ERROR
        return EXIT_OK

    def table(self) -> str:
        """The autocannon/k6-like text report."""
        return render(self.summary)

    def raise_for_thresholds(self) -> None:
        """Raise :class:`ThresholdsFailed` (exit 99) naming the failed thresholds."""
        failed = self.failed_thresholds
        if failed:
            raise ThresholdsFailed(
                "thresholds failed: "
                + "; ".join(f"{t.threshold.expr} ({t.reason})" for t in failed)
            )

    def __repr__(self) -> str:
        s = self.summary
        p95 = s.get("p95")
        return (
            f"<LoadResult {s.get('loop')} loop, {s.get('count', 0)} requests, "
            f"p95={p95 if p95 is None else round(p95, 2)} ms, rps={round(s.get('rps') or 0, 1)}, "
            f"errors={s.get('errors')}, passed={self.passed}"
            f"{', INCOMPLETE' if self.incomplete else ''}>"
        )


class LoadRunner:
    """A configured load test; :meth:`run` executes it and returns a :class:`LoadResult`.

    The shape comes from ``shape``, else from ``scenario``, else from the arguments:
    ``rate`` (or ``arrival``) selects the open loop — ``constant-arrival-rate`` with
    ``duration_s``, or ``ramping-arrival-rate`` with ``stages`` of rates; otherwise the closed
    loop — ``constant-vus`` with ``connections`` for ``duration_s``, or ``ramping-vus`` with
    ``stages`` of VUs.

    Parameters
    ----------
    url
        Target URL. With a ``scenario`` only its scheme/host/port count (the scenario's path is
        used).
    scenario
        A guide preset name (``health``, ``simple``, ``complex``, ``sustained``, ``spike``) or a
        :class:`Scenario`; explicit arguments override its parts.
    scale
        Multiply the scenario's/shape's durations (CI: ``0.05``).
    method, headers, body
        The request. ``body`` may be str, bytes or a JSON-able object; POST when a body is given.
    bodies
        Several bodies used in turn (request ``i`` gets ``bodies[i % len(bodies)]``), e.g. to
        vary prompts for cache experiments.
    shape
        An explicit :class:`~axon_lab.load.shapes.Shape`.
    connections
        Closed loop: connections (VUs). Open loop: the connection-pool bound (wrk2 ``-c``).
    duration_s
        Test duration (fixed shapes).
    stages
        ``[(duration_s, target), ...]``: VUs (closed) or requests/s (open).
    rate
        Open loop: requests per second.
    arrival
        Open loop: ``constant`` (default) or ``poisson``.
    start
        Target at t = 0 of a ramping shape (default: k6's 1 VU / 0 req/s).
    think_time_s
        Closed loop: pause between a VU's requests.
    timeout_s
        Per-request timeout.
    grace_s
        After the shape ends, time allowed for in-flight/queued requests (default: ``timeout_s``).
    checks
        Checks: CLI strings (``status==200``, ``json:result``...), :class:`Check` objects or
        ``(name, fn)`` pairs.
    thresholds
        k6-style expressions (``http_req_duration:p(95)<3000``...).
    scenario_thresholds
        Add the scenario's expectations as thresholds (default True).
    out_dir
        Write ``summary.json``, ``records.parquet``, ``histograms.json``, ``response_time.hgrm``
        here; ``None`` keeps everything in memory.
    name
        A label stored in the summary.
    allow_remote
        Permit a non-loopback target.
    max_requests, max_duration_s
        Hard bounds on every run.
    engine
        ``asyncio`` (the registry :data:`~axon_lab.load.engine.ENGINES` lists others).
    engine_options
        Extra keyword arguments for the engine (e.g. ``{"workers": 2}`` for ``locust``).
    seed
        Poisson arrival seed.
    late_ms
        A request is *late* when sent more than this after its intended start.
    max_backlog
        Open loop: queued requests allowed before new ones are dropped.
    abort_unreachable_s
        Stop the run (incomplete) when every attempt has failed for this long (dead server).
    progress
        Show a progress bar (tqdm; works in Jupyter).
    use_uvloop
        Run the engine's loop on uvloop.
    ssl_context
        TLS settings for ``https`` targets (default: the system's trust store, hostname checked).
    insecure
        Do not verify the server's certificate (curl ``-k``); for self-signed test deployments.
    parameters
        Extra entries for the provenance's parameters.
    profile
        The target's contract (:mod:`axon_lab.load.profiles`): a name (``axon-lab``,
        ``axon-api``), a TOML/JSON profile file, a :class:`TargetProfile`, or ``auto`` (asks the
        target's ``/health`` once). ``None``: ``axon-lab`` (Server-Timing, cache headers). It
        shapes the scenarios' bodies (workspace, source), their body check, the auth header and
        where stage timings are read from.
    workspace
        ``workspaceId`` of the scenarios' bodies (the profile's default when ``None``; the
        real API needs a UUID).
    stream
        Ask for Server-Sent Events (``"stream": true`` in JSON object bodies) and time every
        event: ``sse.ttft`` (time to the first ``llm-chunk``), ``sse.itl`` (mean inter-chunk
        gap per request), ``sse.<event type>``... as trends with the usual percentiles, CIs and
        thresholds (``sse.ttft:p(95)<800``). Body checks on JSON fields are dropped (the body is
        an event stream).
    """

    def __init__(
        self,
        *,
        url: str | None = None,
        scenario: str | Scenario | None = None,
        scale: float = 1.0,
        method: str | None = None,
        headers: Mapping[str, str] | None = None,
        body: BodyLike = None,
        bodies: Sequence[BodyLike] | None = None,
        shape: _shapes.Shape | None = None,
        connections: int | None = None,
        duration_s: float | None = None,
        stages: Sequence[tuple[float, float]] | None = None,
        rate: float | None = None,
        arrival: str | None = None,
        start: float | None = None,
        think_time_s: float | None = None,
        timeout_s: float = 30.0,
        grace_s: float | None = None,
        checks: Sequence[str | Check | tuple[str, Callable[..., bool]]] = (),
        thresholds: Sequence[str] = (),
        scenario_thresholds: bool = True,
        out_dir: Path | str | None = None,
        name: str | None = None,
        allow_remote: bool = False,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        max_duration_s: float = DEFAULT_MAX_DURATION_S,
        engine: str = "asyncio",
        engine_options: Mapping[str, Any] | None = None,
        seed: int | None = 0,
        late_ms: float = 10.0,
        max_backlog: int = 100_000,
        abort_unreachable_s: float = 5.0,
        progress: bool = True,
        use_uvloop: bool = True,
        ssl_context: ssl.SSLContext | None = None,
        insecure: bool = False,
        parameters: Mapping[str, Any] | None = None,
        profile: str | TargetProfile | None = None,
        workspace: str | None = None,
        stream: bool = False,
    ) -> None:
        if url is None:
            raise ConfigError(
                "a target URL is required (the CLI starts the embedded API when none is given)"
            )
        sc = get_scenario(scenario) if isinstance(scenario, str) else scenario
        target = Endpoint.parse(url)
        if not allow_remote and not is_loopback_host(target.host):
            raise ConfigError(
                f"refusing to load non-loopback target {target.host!r} without "
                "allow_remote (--allow-remote): load tests can hurt shared services"
            )
        self.profile = resolve_profile(profile, url)
        self.stream = bool(stream)
        if sc is not None:
            sc = for_profile(sc, self.profile, workspace, stream=self.stream)
        if sc is not None:
            target = target.with_path(sc.path)
        self.target = target
        self.scenario = sc
        self.engine = engine
        self.engine_options = dict(engine_options or {})
        ENGINES.get(engine)  # unknown engine → error listing the valid ones
        # -- request ---------------------------------------------------------------------
        if stream and bodies is not None:
            bodies = [_streaming(b) for b in bodies]
        elif stream and body is not None:
            body = _streaming(body)
        if bodies is not None:
            payload_bodies = [_body_bytes(b) for b in bodies]
            if not payload_bodies:
                raise ConfigError("bodies must not be empty")
        elif body is not None:
            payload_bodies = [_body_bytes(body)]
        elif sc is not None:
            payload_bodies = [sc.body_bytes]
        else:
            payload_bodies = [None]
        self.method = (
            method
            or (sc.method if sc else None)
            or ("POST" if payload_bodies[0] is not None else "GET")
        ).upper()
        self.headers = {**self.profile.auth_headers(), **dict(headers or {})}
        self.payloads = [
            build_request(self.method, target, headers=self.headers, body=b) for b in payload_bodies
        ]
        self.bodies = payload_bodies
        # -- shape -------------------------------------------------------------------------
        self.shape = self._resolve_shape(
            shape, sc, connections, duration_s, stages, rate, arrival, start, think_time_s, scale
        )
        if self.shape.duration_s > max_duration_s:
            raise ConfigError(
                f"run of {self.shape.duration_s:g}s exceeds max_duration_s "
                f"{max_duration_s:g}s (raise it explicitly for longer runs)"
            )
        if max_requests < 1:
            raise ConfigError("max_requests must be >= 1")
        if self.shape.is_open:
            pool = connections if connections is not None else DEFAULT_POOL
        else:
            pool = int(self.shape.peak)
        if pool < 1:
            raise ConfigError("connections must be >= 1")
        self.connections = int(pool)
        if timeout_s <= 0:
            raise ConfigError("timeout must be > 0")
        self.timeout_s = float(timeout_s)
        self.grace_s = float(grace_s if grace_s is not None else timeout_s)
        self.max_requests = int(max_requests)
        self.max_duration_s = float(max_duration_s)
        # -- checks and thresholds ------------------------------------------------------------
        chk = [as_check(c) for c in (checks or (sc.checks if sc else ()))]
        self.checks = tuple(chk)
        th: list[Threshold] = []
        if sc is not None and scenario_thresholds:
            th += [parse_threshold(t, source="scenario") for t in sc.thresholds()]
        th += [parse_threshold(t) for t in thresholds]
        th += builtin_thresholds(self.shape.is_open)
        self.thresholds = th
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.name = name
        self.seed = seed
        self.late_ms = float(late_ms)
        self.max_backlog = int(max_backlog)
        self.abort_unreachable_s = float(abort_unreachable_s)
        self.progress = progress
        self.use_uvloop = use_uvloop
        self.extra_parameters = dict(parameters or {})
        if insecure:
            ssl_context = ssl.create_default_context()
            ssl_context.check_hostname = False
            ssl_context.verify_mode = ssl.CERT_NONE
        self.ssl_context = ssl_context
        self.insecure = insecure
        self._engine: Any = None
        self._stop_reason: str | None = None

    @staticmethod
    def _resolve_shape(
        shape: _shapes.Shape | None,
        sc: Scenario | None,
        connections: int | None,
        duration_s: float | None,
        stages: Sequence[tuple[float, float]] | None,
        rate: float | None,
        arrival: str | None,
        start: float | None,
        think_time_s: float | None,
        scale: float,
    ) -> _shapes.Shape:
        """The shape from the arguments; ``scale`` then multiplies every duration."""
        if arrival is not None and arrival not in _shapes.ARRIVALS:
            raise ConfigError(f"unknown arrival {arrival!r}; valid: {', '.join(_shapes.ARRIVALS)}")
        think = think_time_s if think_time_s is not None else (sc.shape.think_time_s if sc else 0.0)
        s: _shapes.Shape
        if shape is not None:
            s = shape
        elif rate is not None or arrival is not None:  # open loop
            if think_time_s:
                raise ConfigError("think time applies to the closed loop only (not with a rate)")
            arr = arrival or "constant"
            if stages:
                if rate is not None:
                    raise ConfigError("give either a rate or rate stages, not both")
                s = _shapes.ramping_rate(stages, start=start or 0.0, arrival=arr)  # type: ignore[arg-type]
            elif rate is None:
                raise ConfigError("open loop needs a rate (--rate) or rate stages (--stages)")
            else:
                d = duration_s or (sc.shape.duration_s if sc else DEFAULT_DURATION_S)
                s = _shapes.constant_rate(rate, d, arrival=arr)  # type: ignore[arg-type]
        elif stages:
            s = _shapes.ramping_vus(
                stages, start=1.0 if start is None else start, think_time_s=think
            )
        elif sc is not None and sc.shape.executor != "constant-vus":
            if connections is not None or duration_s is not None:
                raise ConfigError(
                    f"scenario {sc.name} ramps through stages; change them with "
                    "stages (--stages), not connections/duration"
                )
            s = replace(sc.shape, think_time_s=think)
        else:
            c = connections or (int(sc.shape.peak) if sc else DEFAULT_CONNECTIONS)
            d = duration_s or (sc.shape.duration_s if sc else DEFAULT_DURATION_S)
            s = _shapes.constant_vus(int(c), d, think_time_s=think)
        return s.scaled(scale) if scale != 1.0 else s

    # -- parameters ---------------------------------------------------------------------------
    def parameters(self) -> dict[str, Any]:
        """The run's parameters (recorded in provenance)."""
        return {
            "url": self.target.url,
            "method": self.method,
            "scenario": self.scenario.name if self.scenario else None,
            "shape": self.shape.to_dict(),
            "connections": self.connections,
            "timeout_s": self.timeout_s,
            "grace_s": self.grace_s,
            "max_requests": self.max_requests,
            "max_duration_s": self.max_duration_s,
            "engine": self.engine,
            "engine_options": self.engine_options,
            "seed": self.seed,
            "late_ms": self.late_ms,
            "max_backlog": self.max_backlog,
            "bodies": len(self.bodies),
            "headers": sorted(self.headers),
            "checks": [c.name for c in self.checks],
            "thresholds": [t.expr for t in self.thresholds if t.source != "builtin"],
            "insecure_tls": self.insecure,
            "profile": self.profile.name,
            "stream": self.stream,
            **self.extra_parameters,
        }

    def plan(self) -> Plan:
        """The engine plan."""
        return Plan(
            target=self.target,
            payloads=self.payloads,
            shape=self.shape,
            connections=self.connections,
            timeout_s=self.timeout_s,
            max_requests=self.max_requests,
            grace_s=self.grace_s,
            late_ms=self.late_ms,
            checks=self.checks,
            keep_body=any(c.needs_body for c in self.checks) or self.profile.reads_body,
            keep_error_body=self.profile.reads_error_body,
            seed=self.seed,
            max_backlog=self.max_backlog,
            abort_unreachable_s=self.abort_unreachable_s,
            ssl_context=self.ssl_context,
            cache_headers=tuple(self.profile.cache_headers),
            reader=self.profile.reader(),
            sse=self.stream,
        )

    def stop(self, reason: str = "stopped") -> None:
        """Ask a running :meth:`run` to stop (thread-safe); the result is marked incomplete."""
        self._stop_reason = reason
        if self._engine is not None:
            self._engine.request_stop(reason)

    # -- run ------------------------------------------------------------------------------------
    def run(self) -> LoadResult:
        """Run the test (blocking). Ctrl-C stops it early and still returns/writes the result.

        Raises
        ------
        BackendUnavailable
            When the target refuses the first connection (nothing was measured).
        """
        tmp: tempfile.TemporaryDirectory[str] | None = None
        if self.out_dir is None:
            tmp = tempfile.TemporaryDirectory(prefix="axon-load-")
            out = Path(tmp.name)
        else:
            out = self.out_dir
            out.mkdir(parents=True, exist_ok=True)
        params = self.parameters()
        target_info = {
            "url": self.target.url,
            "method": self.method,
            "scenario": self.scenario.name if self.scenario else None,
            "engine": self.engine,
            "profile": self.profile.name,
        }
        if tmp is None:
            jsonutil.write_json(
                out / SUMMARY_NAME,
                stub_summary(
                    target=target_info,
                    shape=self.shape.to_dict(),
                    parameters=params,
                    name=self.name,
                ),
            )
        writer_errors: list[BaseException] = []
        sink = RecordSink(out, on_error=writer_errors.append)
        engine = ENGINES.get(self.engine)(
            self.plan(), sink, use_uvloop=self.use_uvloop, **self.engine_options
        )
        self._engine = engine
        if self._stop_reason:
            engine.request_stop(self._stop_reason)
        box: dict[str, Any] = {}

        def work() -> None:
            try:
                box["outcome"] = engine.run()
            except BaseException as exc:  # re-raised on the caller's thread
                box["error"] = exc

        thread = threading.Thread(target=work, name="axon-load-engine", daemon=True)
        interrupted = False
        bar = _Progress(
            self.shape.duration_s, enabled=self.progress, desc=f"load {self.name or 'run'}"
        )
        # Wall-clock bound: the shape, the grace period and a margin; then we pull the plug.
        deadline = time.monotonic() + self.shape.duration_s + self.grace_s + 30.0
        thread.start()
        try:
            while thread.is_alive():
                try:
                    thread.join(0.25)
                    bar.update(engine.progress())
                    if time.monotonic() > deadline:
                        engine.request_stop("wall-clock bound exceeded")
                        deadline = float("inf")
                except KeyboardInterrupt:
                    if interrupted:  # second Ctrl-C: give up waiting
                        raise
                    interrupted = True
                    engine.request_stop("interrupted (Ctrl-C)")
        finally:
            bar.close()
            if thread.is_alive():
                thread.join(5.0)
        frame = sink.close()
        self._engine = None
        # Engine-specific summary blocks (e.g. locust: Locust's own statistics, workers).
        extra = engine.summary_extra() if hasattr(engine, "summary_extra") else {}
        outcome: EngineOutcome | None = box.get("outcome")
        error: BaseException | None = box.get("error")
        try:
            result = self._finish(
                out,
                frame,
                sink,
                outcome,
                error,
                writer_errors,
                params,
                target_info,
                interrupted,
                keep_files=tmp is None,
                extra=extra,
            )
        finally:
            if tmp is not None:
                tmp.cleanup()
        if error is not None:
            raise error
        return result

    def _finish(
        self,
        out: Path,
        frame: Any,
        sink: RecordSink,
        outcome: EngineOutcome | None,
        error: BaseException | None,
        writer_errors: list[BaseException],
        params: dict[str, Any],
        target_info: dict[str, Any],
        interrupted: bool,
        *,
        keep_files: bool,
        extra: Mapping[str, Any] | None = None,
    ) -> LoadResult:
        reason: str | None = None
        if error is not None:
            reason = (
                str(error)
                if isinstance(error, AxonLabError)
                else f"{type(error).__name__}: {error}"
            )
        elif outcome is not None and outcome.stop_reason:
            reason = outcome.stop_reason
        if writer_errors:
            reason = (
                reason + "; " if reason else ""
            ) + f"records writer failed: {writer_errors[0]}"
        if outcome is not None:
            elapsed, window, scheduled = outcome.elapsed_s, outcome.window_s, outcome.scheduled
            started, checks = outcome.started_utc, outcome.checks
        else:
            from axon_lab.provenance import utc_now

            elapsed, window, scheduled, started = 0.0, self.shape.duration_s, 0, utc_now()
            checks = {c.name: {"passes": 0, "fails": 0} for c in self.checks}
        by_window = outcome is not None and outcome.ended_by == "duration"
        metrics = RunMetrics(
            frame,
            elapsed_s=elapsed,
            window_s=window + self.late_ms / 1000.0,
            scheduled_in_window=scheduled if self.shape.is_open else None,
            rate_window_s=window if by_window else None,
        )
        results = evaluate(self.thresholds, metrics)
        if outcome is not None:
            lag = None
            if self.shape.is_open and len(frame):
                unqueued = frame[~frame["queued"] & frame["lag_ms"].notna()]
                lag = (unqueued["lag_ms"] - unqueued["connect_ms"].fillna(0.0)).to_numpy()
            client = outcome.monitor.summary(lag)
        else:
            client = {}
        files = (
            {"records": RECORDS_NAME, "histograms": HISTOGRAMS_NAME, "hgrm": HGRM_NAME}
            if keep_files
            else {}
        )
        summary = build_summary(
            frame,
            metrics=metrics,
            thresholds=results,
            target=target_info,
            shape=self.shape.to_dict(),
            started_utc=started,
            elapsed_s=elapsed,
            window_s=window,
            scheduled=scheduled,
            target_rps=self.shape.mean_rate() if self.shape.is_open else None,
            checks=checks,
            client=client,
            incomplete_reason=reason,
            parameters=params,
            name=self.name,
            files=files,
            engine={
                "name": self.engine,
                "uvloop": self.use_uvloop,
                "peak_vus": outcome.peak_vus if outcome else 0,
                "connections_opened": outcome.connections_opened if outcome else 0,
            },
        )
        summary.update(extra or {})
        hist = sink.histograms
        if keep_files:
            write_histograms(out / HISTOGRAMS_NAME, hist)
            (out / HGRM_NAME).write_text(
                hist["http_req_duration"].percentile_distribution(), encoding="ascii"
            )
            jsonutil.write_json(out / SUMMARY_NAME, summary)
        return LoadResult(
            summary=summary,
            records=frame,
            histograms=hist,
            thresholds=results,
            out_dir=out if keep_files else None,
            interrupted=interrupted or bool(self._stop_reason),
        )


class _Progress:
    """tqdm progress over the shape's duration (tqdm.auto: a live widget in JupyterLab, with
    ``ipywidgets`` installed; a text bar in a terminal).
    """

    def __init__(self, total_s: float, *, enabled: bool, desc: str = "load") -> None:
        self.bar = None
        self.last = 0.0
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(
                    total=round(total_s, 1),
                    unit="s",
                    desc=desc,
                    leave=False,
                    bar_format="{desc} {bar} {n:.0f}/{total:.0f}s {postfix}",
                )
            except Exception:  # no tqdm or no terminal: run without a bar
                self.bar = None

    def update(self, p: Mapping[str, Any]) -> None:
        if self.bar is None:
            return
        t = min(p["elapsed_s"], float(self.bar.total))
        if t > self.last:
            self.bar.update(t - self.last)
            self.last = t
        rps = p["done"] / p["elapsed_s"] if p["elapsed_s"] > 0 else 0.0
        self.bar.set_postfix_str(
            f"{p['done']:,} req · {rps:,.0f}/s · {p['errors']:,} err · "
            f"{p['inflight']} in flight · {p['backlog']} queued",
            refresh=False,
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_load(**kwargs: Any) -> LoadResult:
    """``LoadRunner(**kwargs).run()`` — the one-call form for notebooks."""
    return LoadRunner(**kwargs).run()
