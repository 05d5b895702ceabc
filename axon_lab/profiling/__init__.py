"""Profiling experiments: scalene CPU/memory profiles, resource sampling, soak runs.

Notebooks and the CLI call the names re-exported here (``from axon_lab import profiling``); the
soak analysis is :mod:`axon_lab.profiling.soak`, figures are in :mod:`axon_lab.profiling.plots`.
"""

from __future__ import annotations

from axon_lab.profiling.scalene import (
    LAG_LIMIT_MS,
    LEAK_SLOPE_MB_PER_MIN,
    PACKAGE_DIR,
    PHASES,
    SMOKE,
    ProfileRun,
    ResourceSampler,
    ScaleneProfile,
    effective_parameters,
    flame_layout,
    harness_share,
    is_harness,
    label_phases,
    lag_summary,
    memory_slope,
    parse_scalene,
    read_lag,
    resource_summary,
    resource_verdicts,
    run_profile,
    scalene_command,
    scalene_switch,
    serving_pid,
    summarize,
    top_functions,
    top_lines,
    verdict,
)

__all__ = [
    "LAG_LIMIT_MS",
    "LEAK_SLOPE_MB_PER_MIN",
    "PACKAGE_DIR",
    "PHASES",
    "ProfileRun",
    "ResourceSampler",
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
