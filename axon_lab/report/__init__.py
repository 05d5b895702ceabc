"""Reports: results sidecars, papermill execution, HTML, the report index, provenance."""

from __future__ import annotations

from axon_lab.report.sidecar import SCHEMA, load, load_frame, record

__all__ = ["SCHEMA", "load", "load_frame", "record"]
