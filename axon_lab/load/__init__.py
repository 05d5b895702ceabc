"""The load engine: open/closed loop runners, shapes and scenarios as data, exact percentiles, thresholds.

Library first — the CLI (``axon-lab load``), tests and notebooks all do::

    from axon_lab.load import LoadRunner, constant_rate

    result = LoadRunner(url="http://127.0.0.1:3000/health", rate=200, duration_s=10,
                        arrival="poisson", thresholds=["http_req_duration:p(95)<50"]).run()
    result.summary["p95"], result.records, result.passed, print(result.table())

Main names
----------
:class:`LoadRunner`, :func:`run_load`, :class:`LoadResult`
    Configure and run; the result holds ``summary`` (schema in :mod:`.summary`), ``records``
    (one row per request, columns in :mod:`.records`), ``histograms`` and ``thresholds``.
:class:`Shape`, :func:`constant_vus`, :func:`ramping_vus`, :func:`constant_rate`, :func:`ramping_rate`
    Load shapes as data (``stages=[(duration_s, target)]``); :data:`SHAPES` registry.
:data:`SCENARIOS`, :func:`get_scenario`
    The guide's presets (health, simple, complex, sustained, spike).
:data:`METRICS`, :func:`parse_threshold`, :func:`parse_check`
    Metrics declared once; k6-style thresholds and checks.
:func:`read_records`, :func:`read_summary`, :func:`read_histograms`
    Read a run directory back (also a killed run's partial records).
"""

from axon_lab.load.checks import Check, parse_check
from axon_lab.load.engine import ENGINES, AsyncioEngine, EngineOutcome, Plan
from axon_lab.load.hdr import Histogram, merge_histograms, read_histograms, write_histograms
from axon_lab.load.locust_engine import LocustEngine, side_by_side
from axon_lab.load.records import OUTCOMES, read_records
from axon_lab.load.runner import LoadResult, LoadRunner, run_load
from axon_lab.load.scenarios import SCENARIOS, Scenario, get_scenario
from axon_lab.load.servertiming import parse_cache_headers, parse_server_timing
from axon_lab.load.shapes import (
    SHAPES,
    Shape,
    constant_rate,
    constant_vus,
    parse_duration,
    parse_stages,
    ramping_rate,
    ramping_vus,
)
from axon_lab.load.summary import SCHEMA as SUMMARY_SCHEMA
from axon_lab.load.summary import read_summary
from axon_lab.load.table import render as render_table
from axon_lab.load.thresholds import METRICS, Metric, Threshold, ThresholdResult, parse_threshold

__all__ = [
    "ENGINES",
    "METRICS",
    "OUTCOMES",
    "SCENARIOS",
    "SHAPES",
    "SUMMARY_SCHEMA",
    "AsyncioEngine",
    "Check",
    "EngineOutcome",
    "Histogram",
    "LoadResult",
    "LoadRunner",
    "LocustEngine",
    "Metric",
    "Plan",
    "Scenario",
    "Shape",
    "Threshold",
    "ThresholdResult",
    "constant_rate",
    "constant_vus",
    "get_scenario",
    "merge_histograms",
    "parse_cache_headers",
    "parse_check",
    "parse_duration",
    "parse_server_timing",
    "parse_stages",
    "parse_threshold",
    "ramping_rate",
    "ramping_vus",
    "read_histograms",
    "read_records",
    "read_summary",
    "render_table",
    "run_load",
    "side_by_side",
    "write_histograms",
]
