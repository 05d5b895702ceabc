"""Cache experiments: configurations, TTL and eviction, micro-benchmarks, Redis stats, plots.

Notebooks call the functions re-exported here (``from axon_lab import cache``): the pipeline
experiments of :mod:`axon_lab.cache.experiments` and the micro-benchmarks of
:mod:`axon_lab.cache.micro`; :mod:`axon_lab.cache.redis_stats` reads a Redis server's INFO and
memory, and :mod:`axon_lab.cache.plots` draws the frames.
"""

from __future__ import annotations

from axon_lab.cache.experiments import (
    LEVEL_TARGET_MS,
    REDIS_TIMEOUT_S,
    CONFIGS,
    CONFIG_ORDER,
    Run,
    open_stack,
    stack_info,
    SMOKE,
    effective_parameters,
    lab_redis_url,
    config_options,
    expected_levels,
    compare_configurations,
    level_summary,
    level_latency,
    arrivals,
    expected_ttl_hits,
    ttl_experiment,
    ttl_summary,
    eviction_experiment,
    eviction_summary,
    guide_claims,
    verdict,
    corpus_sample,
)
from axon_lab.cache.micro import (
    FORMATS,
    FORMAT_ORDER,
    serialization,
    ROUND_TRIP_METHODS,
    round_trips,
    round_trip_summary,
    analysis_parallelism,
    parallelism_summary,
    embedding_batching,
    token_counts,
    token_error_summary,
    token_counting_cost,
)

__all__ = [
    "CONFIGS",
    "CONFIG_ORDER",
    "FORMATS",
    "FORMAT_ORDER",
    "LEVEL_TARGET_MS",
    "REDIS_TIMEOUT_S",
    "ROUND_TRIP_METHODS",
    "Run",
    "SMOKE",
    "analysis_parallelism",
    "arrivals",
    "compare_configurations",
    "config_options",
    "corpus_sample",
    "effective_parameters",
    "embedding_batching",
    "eviction_experiment",
    "eviction_summary",
    "expected_levels",
    "expected_ttl_hits",
    "guide_claims",
    "lab_redis_url",
    "level_latency",
    "level_summary",
    "open_stack",
    "parallelism_summary",
    "round_trip_summary",
    "round_trips",
    "serialization",
    "stack_info",
    "token_counting_cost",
    "token_counts",
    "token_error_summary",
    "ttl_experiment",
    "ttl_summary",
    "verdict",
]
