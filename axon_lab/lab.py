"""The friendly layer for notebooks: one call per cell over the strict library underneath.

A notebook does ``target = start_target(target_url)`` (empty URL = start the embedded Axon in
a subprocess, stopped at exit), then runs scenarios or variants against ``target.url``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from axon_lab import workload
from axon_lab.errors import ConfigError
from axon_lab.load.profiles import (
    PROFILES,
    TargetProfile,
    detect_or_default,
    resolve_profile,
    target_options,
)
from axon_lab.redact import redact_text
from axon_lab.report.sidecar import default_out_dir
from axon_lab.samplers import ServerResourceSampler

#: Smoke runs cap every scenario at this many seconds (through the same code path).
SMOKE_SECONDS = 4.0


def interactive() -> bool:
    """False when ``axon-lab run``/``report`` executes the notebook (no progress bars in HTML)."""
    from axon_lab.report.sidecar import OUT_DIR_ENV

    return OUT_DIR_ENV not in os.environ


class _Status:
    """One line saying what a long cell is doing, updated in place when it is done; shown only
    when a person runs the notebook (a rendered report has no use for it).
    """

    def __init__(self, text: str) -> None:
        self.handle: Any = None
        if not interactive():
            return
        try:
            from IPython import get_ipython
            from IPython.display import display

            if get_ipython() is not None:
                self.handle = display({"text/plain": text}, raw=True, display_id=True)
        except ImportError:  # pragma: no cover - IPython ships with the notebook stack
            self.handle = None

    def done(self, text: str) -> None:
        if self.handle is not None:
            self.handle.update({"text/plain": text}, raw=True)


@dataclass
class AxonTarget:
    """An Axon to test: the embedded one the lab started, or a URL given by the user.

    Attributes
    ----------
    url
        Base URL.
    embedded
        Whether the lab started it.
    profile
        How to talk to it and read its answers (:mod:`axon_lab.load.profiles`).
    workspace
        The ``workspaceId`` its prompts carry (checked against the profile: a UUID for the
        real API).
    """

    url: str
    embedded: bool
    profile: TargetProfile = field(default_factory=lambda: PROFILES.get("axon-lab"))
    workspace: str = "test"
    _stack: contextlib.ExitStack | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        if self.embedded:
            return "embedded Axon (axon_lab, MongoDB stand-in: mongomock)"
        return f"{redact_text(self.url)} (profile {self.profile.name})"

    def set_options(self, options: Any) -> dict[str, Any]:
        """PUT ``PipelineOptions`` on an axon_lab server (before/after experiments)."""
        import httpx

        from axon_lab.pipeline import PipelineOptions

        if not self.profile.options_path:
            raise ConfigError(
                f"{self.label} cannot switch options (profile {self.profile.name} has no options "
                "endpoint): compare two deployments by giving two URLs instead"
            )
        body = options.model_dump() if isinstance(options, PipelineOptions) else dict(options)
        r = httpx.put(f"{self.url}{self.profile.options_path}", json=body, timeout=10)
        if r.status_code == 404:
            raise ConfigError(
                f"{self.label} has no {self.profile.options_path}: switching options needs an "
                "axon_lab server"
            )
        if r.status_code != 200:
            raise ConfigError(f"options rejected: {r.json().get('error', r.text)}")
        return r.json()

    def stop(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = None

    def __repr__(self) -> str:
        return f"<AxonTarget {self.label}>"


def start_target(
    target_url: str = "",
    *,
    profile: str = "auto",
    workspace: str = "",
    timeout_s: float = 300.0,
) -> AxonTarget:
    """``target_url`` if given, else the embedded Axon on a free loopback port.

    ``profile`` (``auto``: detected from the target's ``/health``, which also checks that it
    answers; a name or a profile file otherwise) and ``workspace`` (the profile's default when
    empty; the real API needs a UUID) are checked before any load is sent.
    """
    if target_url:
        url = target_url.rstrip("/")
        if profile in ("", "auto"):
            prof, how = detect_or_default(url)
        else:
            prof, how = resolve_profile(profile, url), "given"
        if how != "detected":  # the detection's GET /health already showed that it answers
            import httpx

            try:
                httpx.get(f"{url}{prof.health_path or '/'}", timeout=10)
            except httpx.HTTPError as exc:
                raise ConfigError(f"target_url {redact_text(url)} does not answer: {exc}") from None
        return AxonTarget(
            url, embedded=False, profile=prof, workspace=prof.check_workspace(workspace)
        )
    from axon_lab.api.server import running_server

    prof = PROFILES.get("axon-lab") if profile in ("", "auto") else resolve_profile(profile)
    ws = prof.check_workspace(workspace)
    stack = contextlib.ExitStack()
    status = _Status("Starting the embedded Axon: backends, corpus, embedding model ...")
    t0 = time.perf_counter()
    url = stack.enter_context(running_server(timeout_s=timeout_s))
    status.done(f"Embedded Axon ready in {time.perf_counter() - t0:.1f} s.")
    target = AxonTarget(url, embedded=True, profile=prof, workspace=ws, _stack=stack)
    atexit.register(target.stop)
    return target


def stop_target(target: AxonTarget | None) -> None:
    """Stop ``target`` if the lab started it (``None``: nothing was started)."""
    if target is not None:
        target.stop()


def scenario_list(scenario: str) -> list[str]:
    """``"all"`` → every guide scenario except the 30-minute sustained one; else a comma list."""
    from axon_lab.load import SCENARIOS

    if scenario == "all":
        return [s for s in SCENARIOS.names() if s != "sustained"]
    names = [s.strip() for s in scenario.split(",") if s.strip()]
    for n in names:
        SCENARIOS.get(n)  # unknown names fail here, listing the valid ones
    return names


def smoke_scale(scenario: str, scale: float, smoke: bool) -> float:
    """In smoke mode, shrink the scenario to at most :data:`SMOKE_SECONDS`."""
    from axon_lab.load import get_scenario

    if not smoke:
        return scale
    dur = get_scenario(scenario).shape.duration_s
    return min(scale, SMOKE_SECONDS / dur)


def run_dir(name: str, *parts: str) -> Path:
    """A run's output directory under the notebook's report directory."""
    return default_out_dir(name).joinpath("runs", *parts)


def run_scenarios(
    target: AxonTarget,
    scenario: str = "simple",
    *,
    scale: float = 1.0,
    smoke: bool = False,
    notebook: str = "load_baseline",
    progress: bool | None = None,
) -> dict[str, Any]:
    """Run one guide scenario, a comma list, or ``all``; each run keeps summary + records on disk."""
    from axon_lab.load import LoadRunner

    out = {}
    for name in scenario_list(scenario):
        runner = LoadRunner(
            url=target.url,
            scenario=name,
            scale=smoke_scale(name, scale, smoke),
            out_dir=run_dir(notebook, name),
            name=name,
            progress=interactive() if progress is None else progress,
            parameters={"target": target.label, "smoke": smoke},
            profile=target.profile,
            workspace=target.workspace,
        )
        out[name] = runner.run()
    return out


def load_run(
    target: AxonTarget,
    *,
    prompts: str = "mix",
    requests_per_prompt: int = 1,
    connections: int = 4,
    duration_s: float = 20.0,
    workspace: str = "",
    notebook: str = "latency_breakdown",
    label: str = "run",
    smoke: bool = False,
    zipf_s: float = 1.1,
    progress: bool | None = None,
    sample_resources: bool = True,
    stream: bool = False,
) -> Any:
    """A closed-loop run over a realistic prompt mix (``distinct``: every prompt new, all caches
    miss; ``mix``: Zipf-like repetition; ``guide``: the guide's single prompt), in the target
    profile's body (``workspace``: the target's when empty). Server RSS/CPU are sampled while it
    runs (``result.resources``) when the profile has a process-metrics endpoint. ``stream``
    asks for Server-Sent Events and times them (``sse.ttft``, ``sse.itl``...).
    """
    from axon_lab.load import LoadRunner

    if smoke:
        duration_s = min(duration_s, SMOKE_SECONDS)
    n = 5000
    if prompts == "distinct":
        texts = workload.distinct_prompts(n)
    elif prompts == "mix":
        texts = workload.zipf_workload(n, s=zipf_s)
    elif prompts == "guide":
        texts = [workload.GUIDE_PROMPTS["baseline"]]
    else:
        raise ConfigError(f"prompts must be distinct, mix or guide, got {prompts!r}")
    prof = target.profile
    bodies = prof.bodies(texts, workspace or target.workspace)
    out = run_dir(notebook, label)
    sample = sample_resources and bool(prof.process_metrics_path)
    sampler = ServerResourceSampler(target.url).start() if sample else None
    try:
        result = LoadRunner(
            url=f"{target.url}{prof.prompt_path}",
            method="POST",
            bodies=bodies,
            connections=connections,
            duration_s=duration_s,
            out_dir=out,
            name=label,
            checks=["status==200", f"json:{prof.ok_json}"]
            if prof.ok_json and not stream
            else ["status==200"],
            progress=interactive() if progress is None else progress,
            parameters={
                "target": target.label,
                "prompts": prompts,
                "smoke": smoke,
                "options": target_options(target.url, prof),
            },
            profile=prof,
            stream=stream,
        ).run()
    finally:
        resources = sampler.stop() if sampler else pd.DataFrame()
    result.resources = resources  # type: ignore[attr-defined]  # server RSS/CPU samples ride along
    if not resources.empty:
        resources.to_parquet(out / "resources.parquet", index=False)
    return result


def load_earlier_run(path: str) -> Any:
    """An earlier run directory (summary.json, records.parquet, resources.parquet if any)."""
    from types import SimpleNamespace

    from axon_lab.load import read_records, read_summary

    p = Path(path)
    res = p / "resources.parquet"
    return SimpleNamespace(
        summary=read_summary(p),
        records=read_records(p),
        resources=pd.read_parquet(res) if res.exists() else pd.DataFrame(),
        out_dir=p,
    )


def options_preset(spec: str) -> Any:
    """``baseline`` (the guide's before), ``optimized`` (defaults) or a JSON object of overrides
    applied to the defaults, e.g. ``{"l1_cache": false}``.
    """
    from axon_lab.pipeline import PipelineOptions

    if spec == "baseline":
        return PipelineOptions.baseline()
    if spec in ("optimized", "default"):
        return PipelineOptions()
    try:
        return PipelineOptions(**json.loads(spec))
    except (json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(
            f"options {spec!r}: expected baseline, optimized or a JSON object ({exc})"
        ) from None
    except ValueError as exc:
        raise ConfigError(f"options {spec!r}: {' '.join(str(exc).split())}") from None


def run_variant(
    target: AxonTarget | None,
    spec: str,
    *,
    label: str,
    notebook: str = "before_after",
    smoke: bool = False,
    profile: str = "auto",
    workspace: str = "",
    **kw: Any,
) -> Any:
    """Run a variant: a path to an earlier run directory is loaded; a URL (``http://...``) is
    another deployment, loaded with the same workload (blue/green, before/after a release);
    otherwise ``spec`` names ``PipelineOptions`` that are set on ``target`` before a
    :func:`load_run`.
    """
    if os.path.isdir(spec):
        return load_earlier_run(spec)
    if spec.startswith(("http://", "https://")):
        other = start_target(spec, profile=profile, workspace=workspace)
        return load_run(other, label=label, notebook=notebook, smoke=smoke, **kw)
    if target is None:
        raise ConfigError(f"variant {spec!r} needs a target to set options on")
    target.set_options(options_preset(spec))
    return load_run(target, label=label, notebook=notebook, smoke=smoke, **kw)


def variant_target(
    target_url: str, before: str, after: str, *, profile: str = "auto", workspace: str = ""
) -> AxonTarget | None:
    """The target options presets are set on, or ``None`` when both variants are URLs or earlier
    runs (then nothing is started).
    """
    presets = [
        v
        for v in (before, after)
        if not os.path.isdir(v) and not v.startswith(("http://", "https://"))
    ]
    if not presets:
        return None
    return start_target(target_url, profile=profile, workspace=workspace)
