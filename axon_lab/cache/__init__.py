"""Cache experiments: configurations, TTL and eviction, micro-benchmarks, Redis stats, plots.

Notebooks call the functions re-exported here (``from axon_lab import cache``): the pipeline
experiments of :mod:`axon_lab.cache.experiments` and the micro-benchmarks of
:mod:`axon_lab.cache.micro`; :mod:`axon_lab.cache.redis_stats` reads a Redis server's INFO and
memory, and :mod:`axon_lab.cache.plots` draws the frames.
"""

from __future__ import annotations

from axon_lab.cache.experiments import (
    CONFIG_ORDER,
    CONFIGS,
    LEVEL_TARGET_MS,
    REDIS_TIMEOUT_S,
    SMOKE,
    Run,
    arrivals,
    compare_configurations,
    config_options,
    corpus_sample,
    effective_parameters,
    eviction_experiment,
    eviction_summary,
    expected_levels,
    expected_ttl_hits,
    guide_claims,
    lab_redis_url,
    level_latency,
    level_summary,
    open_stack,
    stack_info,
    ttl_experiment,
    ttl_summary,
    verdict,
)
from axon_lab.cache.micro import (
    FORMAT_ORDER,
    FORMATS,
    ROUND_TRIP_METHODS,
    analysis_parallelism,
    embedding_batching,
    parallelism_summary,
    round_trip_summary,
    round_trips,
    serialization,
    token_counting_cost,
    token_counts,
    token_error_summary,
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
