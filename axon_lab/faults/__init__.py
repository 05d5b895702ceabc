"""Fault experiments: break a backend under load and measure what users get.

Notebooks and the CLI call the names re-exported here (``from axon_lab import faults``): the
run (:mod:`axon_lab.faults.run`), its analysis (:mod:`axon_lab.faults.analysis`) and the Redis
latency proxy (:mod:`axon_lab.faults.proxy`); figures are in :mod:`axon_lab.faults.plots`.
"""

from __future__ import annotations

from axon_lab.faults.analysis import (
    PHASES,
    FaultRun,
    analyze,
    phase_table,
    recovery,
    results,
    timeline,
    verdict,
)
from axon_lab.faults.proxy import LatencyProxy
from axon_lab.faults.run import (
    BACKENDS,
    EVENTS_NAME,
    HEALTH_NAME,
    MODES,
    PROCESS_PATH,
    FaultTarget,
    default_prompts,
    read_fault_run,
    run_fault,
    start_fault_target,
)

__all__ = [
    "BACKENDS",
    "EVENTS_NAME",
    "FaultRun",
    "FaultTarget",
    "HEALTH_NAME",
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
