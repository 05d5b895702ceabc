"""Fault experiments: break a backend under load and measure what users get.

Notebooks and the CLI call the names re-exported here (``from axon_lab import faults``); figures
are in :mod:`axon_lab.faults.plots`.
"""

from __future__ import annotations

from axon_lab.faults.run import (
    BACKENDS,
    EVENTS_NAME,
    HEALTH_NAME,
    MODES,
    PHASES,
    PROCESS_PATH,
    FaultRun,
    FaultTarget,
    HealthSampler,
    LatencyProxy,
    analyze,
    default_prompts,
    phase_table,
    read_fault_run,
    recovery,
    results,
    run_fault,
    start_fault_target,
    timeline,
    verdict,
)

__all__ = [
    "BACKENDS",
    "EVENTS_NAME",
    "FaultRun",
    "FaultTarget",
    "HEALTH_NAME",
    "HealthSampler",
    "LatencyProxy",
    "MODES",
    "PHASES",
    "PROCESS_PATH",
    "analyze",
    "default_prompts",
    "phase_table",
    "read_fault_run",
    "recovery",
    "results",
    "run_fault",
    "start_fault_target",
    "timeline",
    "verdict",
]
