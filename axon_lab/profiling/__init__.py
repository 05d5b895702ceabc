"""Profiling experiments: scalene CPU/memory profiles, resource sampling, soak runs.

Notebooks and the CLI call the names re-exported here (``from axon_lab import profiling``): the
run and the profiled server (:mod:`axon_lab.profiling.server`), scalene's profile
(:mod:`axon_lab.profiling.scalene`), resources and event-loop lag
(:mod:`axon_lab.profiling.resources`). The soak analysis is :mod:`axon_lab.profiling.soak`,
figures are in :mod:`axon_lab.profiling.plots`; the RSS/CPU% sampler is
:class:`axon_lab.samplers.ProcessResourceSampler`.
"""

from __future__ import annotations

from axon_lab.profiling.resources import (
    LAG_LIMIT_MS,
    LEAK_SLOPE_MB_PER_MIN,
    PHASES,
    label_phases,
    lag_summary,
    memory_slope,
    read_lag,
    resource_summary,
    resource_verdicts,
)
from axon_lab.profiling.scalene import (
    HARNESS_FILES,
    PACKAGE_DIR,
    ScaleneProfile,
    flame_layout,
    harness_share,
    is_harness,
    parse_scalene,
    scalene_command,
    scalene_switch,
    top_functions,
    top_lines,
)
from axon_lab.profiling.server import (
    SMOKE,
    ProfileRun,
    effective_parameters,
    run_profile,
    serving_pid,
    summarize,
    verdict,
)

__all__ = [
    "HARNESS_FILES",
    "LAG_LIMIT_MS",
    "LEAK_SLOPE_MB_PER_MIN",
    "PACKAGE_DIR",
    "PHASES",
    "ProfileRun",
    "SMOKE",
    "ScaleneProfile",
    "effective_parameters",
    "flame_layout",
    "harness_share",
    "is_harness",
    "label_phases",
    "lag_summary",
    "memory_slope",
    "parse_scalene",
    "read_lag",
    "resource_summary",
    "resource_verdicts",
    "run_profile",
    "scalene_command",
    "scalene_switch",
    "serving_pid",
    "summarize",
    "top_functions",
    "top_lines",
    "verdict",
]
