"""MongoDB analysis: explain plans, profiler and slow-query digests, index advice, live mode.

Notebooks and the CLI call the names re-exported here (``from axon_lab import mongo``):

* :mod:`~axon_lab.mongo.explain` — any ``explain()`` output → :class:`ExplainSummary`;
* :mod:`~axon_lab.mongo.search` — Atlas Search / Vector Search stages and their advice;
* :mod:`~axon_lab.mongo.advice` — Equality → Sort → Range index advice, ``$indexStats`` review;
* :mod:`~axon_lab.mongo.workload` — slow-query log / ``system.profile`` digests;
* :mod:`~axon_lab.mongo.live` — the live session on a real server;
* :mod:`~axon_lab.mongo.files` — reading and recognising recorded files;
* :mod:`~axon_lab.mongo.analysis` — the friendly layer the notebook calls;
* :mod:`~axon_lab.mongo.plots` — figures.
"""

from __future__ import annotations

from axon_lab.mongo.advice import (
    CONTEXTS_FILTER,
    CONTEXTS_PROJECTION,
    CONTEXTS_SORT,
    GUIDE_INDEX_NAME,
    IndexAdvice,
    advise_index,
    contexts_advice,
    index_stats_report,
    is_prefix,
    key_pairs,
    normalize_indexes,
    serves,
)
from axon_lab.mongo.analysis import (
    MongoAnalysis,
    analyze,
    analyze_files,
    recorded_comparison,
    worst_plan,
)
from axon_lab.mongo.explain import (
    ExplainSummary,
    PlanNode,
    format_key,
    load_explains,
    parse_explain,
    plain,
    plans_table,
    stage_rows,
    summaries_frame,
)
from axon_lab.mongo.files import (
    classify,
    default_fixture_dir,
    kind_of,
    read_documents,
    scan_folder,
)
from axon_lab.mongo.live import (
    LiveReport,
    MongoConnection,
    compare_pools,
    connect,
    is_embedded,
    live_shapes,
    measure_projection,
    run_live,
)
from axon_lab.mongo.search import search_advice, search_index_definitions
from axon_lab.mongo.workload import (
    COMMAND_COLUMNS,
    DIGEST_COLUMNS,
    QUERY_OPERATIONS,
    LogRead,
    Operation,
    digest,
    digest_operations,
    filter_shape,
    profiling_status,
    read_profile,
    read_slow_log,
)

__all__ = [
    "COMMAND_COLUMNS",
    "CONTEXTS_FILTER",
    "CONTEXTS_PROJECTION",
    "CONTEXTS_SORT",
    "DIGEST_COLUMNS",
    "ExplainSummary",
    "GUIDE_INDEX_NAME",
    "IndexAdvice",
    "LiveReport",
    "LogRead",
    "MongoAnalysis",
    "MongoConnection",
    "Operation",
    "PlanNode",
    "QUERY_OPERATIONS",
    "advise_index",
    "analyze",
    "analyze_files",
    "classify",
    "compare_pools",
    "connect",
    "contexts_advice",
    "default_fixture_dir",
    "digest",
    "digest_operations",
    "filter_shape",
    "format_key",
    "index_stats_report",
    "is_embedded",
    "is_prefix",
    "key_pairs",
    "kind_of",
    "live_shapes",
    "load_explains",
    "measure_projection",
    "normalize_indexes",
    "parse_explain",
    "plain",
    "plans_table",
    "profiling_status",
    "read_documents",
    "read_profile",
    "read_slow_log",
    "recorded_comparison",
    "run_live",
    "scan_folder",
    "search_advice",
    "search_index_definitions",
    "serves",
    "stage_rows",
    "summaries_frame",
    "worst_plan",
]
