"""The friendly layer for notebooks: one call per cell over the strict library underneath.

A notebook does ``target = start_target(target_url)`` (empty URL = start the embedded Axon in
a subprocess, stopped at exit), then runs scenarios or variants against ``target.url``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from axon_lab import workload
from axon_lab.errors import ConfigError
from axon_lab.redact import redact_text
from axon_lab.report.sidecar import default_out_dir
from axon_lab.samplers import ServerResourceSampler

#: Smoke runs cap every scenario at this many seconds (through the same code path).
SMOKE_SECONDS = 4.0


def interactive() -> bool:
    """False when ``axon-lab run``/``report`` executes the notebook (no progress bars in HTML)."""
    from axon_lab.report.sidecar import OUT_DIR_ENV

    return OUT_DIR_ENV not in os.environ


@dataclass
class AxonTarget:
    """An Axon to test: the embedded one the lab started, or a URL given by the user."""

    url: str
    embedded: bool
    _stack: contextlib.ExitStack | None = field(default=None, repr=False)

    @property
    def label(self) -> str:
        return (
            "embedded Axon (axon_lab, MongoDB stand-in: mongomock)"
            if self.embedded
            else redact_text(self.url)
        )

    def set_options(self, options: Any) -> dict[str, Any]:
        """PUT ``PipelineOptions`` on an axon_lab server (before/after experiments)."""
        import httpx

        from axon_lab.pipeline import PipelineOptions

        body = options.model_dump() if isinstance(options, PipelineOptions) else dict(options)
        r = httpx.put(f"{self.url}/api/v1/options", json=body, timeout=10)
        if r.status_code == 404:
            raise ConfigError(
                f"{self.label} has no /api/v1/options: switching options needs an axon_lab server"
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


def start_target(target_url: str = "", *, timeout_s: float = 300.0) -> AxonTarget:
    """``target_url`` if given (checked to answer), else the embedded Axon on a free loopback port."""
    if target_url:
        import httpx

        try:
            httpx.get(f"{target_url.rstrip('/')}/health", timeout=10)
        except httpx.HTTPError as exc:
            raise ConfigError(
                f"target_url {redact_text(target_url)} does not answer: {exc}"
            ) from None
        return AxonTarget(target_url.rstrip("/"), embedded=False)
    from axon_lab.api.server import running_server

    stack = contextlib.ExitStack()
    url = stack.enter_context(running_server(timeout_s=timeout_s))
    target = AxonTarget(url, embedded=True, _stack=stack)
    atexit.register(target.stop)
    return target


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
    workspace: str = "test",
    notebook: str = "latency_breakdown",
    label: str = "run",
    smoke: bool = False,
    zipf_s: float = 1.1,
    progress: bool | None = None,
    sample_resources: bool = True,
) -> Any:
    """A closed-loop run over a realistic prompt mix (``distinct``: every prompt new, all caches
    miss; ``mix``: Zipf-like repetition; ``guide``: the guide's single prompt). Server RSS/CPU are
    sampled from ``/metrics/process`` while it runs (``result.resources``).
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
    bodies = workload.prompt_bodies(texts, workspace)
    out = run_dir(notebook, label)
    sampler = ServerResourceSampler(target.url).start() if sample_resources else None
    try:
        result = LoadRunner(
            url=f"{target.url}/api/v1/prompts/process",
            method="POST",
            bodies=bodies,
            connections=connections,
            duration_s=duration_s,
            out_dir=out,
            name=label,
            checks=["status==200", "json:result"],
            progress=interactive() if progress is None else progress,
            parameters={"target": target.label, "prompts": prompts, "smoke": smoke},
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
    target: AxonTarget,
    spec: str,
    *,
    label: str,
    notebook: str = "before_after",
    smoke: bool = False,
    **kw: Any,
) -> Any:
    """Run a variant: a path to an earlier run directory is loaded; otherwise ``spec`` names
    ``PipelineOptions`` that are set on the server before a :func:`load_run`.
    """
    if os.path.isdir(spec):
        return load_earlier_run(spec)
    target.set_options(options_preset(spec))
    return load_run(target, label=label, notebook=notebook, smoke=smoke, **kw)
