"""Reports: results sidecars, papermill execution, HTML, the report index, provenance."""

from __future__ import annotations

from axon_lab.report.sidecar import SCHEMA, load, load_frame, parameter_values, record
from axon_lab.report.tables import Table, table

__all__ = [
    "SCHEMA",
    "load",
    "load_frame",
    "parameter_values",
    "record",
    "table",
    "Table",
    "run_notebook",
    "build_report",
]


def run_notebook(*args, **kwargs):
    """See :func:`axon_lab.report.run.run_notebook`."""
    from axon_lab.report.run import run_notebook as _run

    return _run(*args, **kwargs)


def build_report(*args, **kwargs):
    """See :func:`axon_lab.report.index.build_report`."""
    from axon_lab.report.index import build_report as _build

    return _build(*args, **kwargs)
