"""Analysis: statistics, MongoDB plans and logs, HNSW sweeps, caches and Redis, profiler output."""
