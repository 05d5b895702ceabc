"""Run history: every run's metrics with provenance, change points, a CI gate, a static site.

``open_history(path)`` opens a store (a DuckDB file or a directory of Parquet files, see
:mod:`axon_lab.history.store`); :mod:`axon_lab.history.changepoints` finds level shifts in a
metric's series; :mod:`axon_lab.history.check` is the CI gate.
"""

from __future__ import annotations

from axon_lab.history.store import (
    COLUMNS,
    HISTORY_ENV,
    HISTORY_METRICS,
    AddResult,
    History,
    Run,
    default_location,
    metric_info,
    open_history,
    read_run,
    record_run,
)

__all__ = [
    "COLUMNS",
    "HISTORY_ENV",
    "HISTORY_METRICS",
    "AddResult",
    "History",
    "Run",
    "default_location",
    "metric_info",
    "open_history",
    "read_run",
    "record_run",
]
