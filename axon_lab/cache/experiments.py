"""Cache experiments on the real pipeline and a lab-owned redis-server: levels, TTL, eviction, the guide's claims.

The micro-benchmarks (serialization, round trips, parallel analysis, batch embedding, token
counting) are in :mod:`axon_lab.cache.micro`.

Every experiment that touches Redis flushes it and sets its config (``CONFIG SET maxmemory``),
so they refuse a Redis the lab does not own: open the stack with :func:`open_stack`, which
always starts its own ``redis-server`` (Qdrant and MongoDB follow the settings).

Each experiment returns data (a :class:`Run` of frames, or a frame); ``*_summary`` functions
turn runs into one row per configuration. Percentiles are numpy's linear interpolation
(type 7). Pipeline runs use the pipeline's own spans (``measure()``); micro-benchmarks
(encode/decode, Redis round trips, token counters) time loops with ``perf_counter_ns``
directly, because a span per microsecond operation would cost more than the operation.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import math
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import goals, workload
from axon_lab.cache import redis_stats
from axon_lab.config import Settings, get_settings
from axon_lab.errors import ConfigError
from axon_lab.pipeline import LLMOptions, Pipeline, PipelineOptions
from axon_lab.redact import redact_text
from axon_lab.registry import Registry
from axon_lab.stack import Cache, Stack

#: The guide's per-level latency expectations for a context lookup (ms): L1 memory, L2 Redis,
#: L3 database + vector search ("Context Cache" section).
LEVEL_TARGET_MS: dict[str, float] = {"L1": 1.0, "L2": 10.0, "L3": 500.0}
_LEVEL_OF = {"l1-hit": "L1", "l2-hit": "L2", "miss": "L3", "off": "L3"}
#: Redis client timeout for experiments: generous, so a slow moment on a shared machine is
#: not silently counted as a miss (the pipeline's cache never raises; errors are reported).
REDIS_TIMEOUT_S = 2.0

#: Context-cache configurations (the guide's multi-level cache): which levels are on.
CONFIGS: Registry[dict[str, bool]] = Registry("cache configuration")
CONFIGS.register("none", {"l1_cache": False, "l2_cache": False})
CONFIGS.register("l1", {"l1_cache": True, "l2_cache": False})
CONFIGS.register("l2", {"l1_cache": False, "l2_cache": True})
CONFIGS.register("l1+l2", {"l1_cache": True, "l2_cache": True})
CONFIG_ORDER: tuple[str, ...] = ("none", "l1", "l2", "l1+l2")


@dataclasses.dataclass
class Run:
    """An experiment's data: one row per request, one row of Redis ``INFO`` deltas per variant,
    and the parameters that produced them.
    """

    requests: pd.DataFrame
    redis: pd.DataFrame
    params: dict[str, Any] = dataclasses.field(default_factory=dict)


# --- the stack and the event loop ---------------------------------------------------------------
def open_stack(settings: Settings | None = None, *, corpus_limit: int | None = None) -> Stack:
    """A stack for cache experiments: a lab-owned redis-server, the corpus loaded, the model warm.

    Parameters
    ----------
    settings
        Lab settings (default: from the environment). ``AXON_REDIS_URL`` is ignored on
        purpose: the experiments flush and reconfigure Redis.
    corpus_limit
        Contexts to load (default: ``settings.corpus_limit``; None = the full corpus).

    Returns
    -------
    Stack
        Close it with ``stack.close()`` (stops the redis-server).
    """
    from axon_lab import corpus

    s = settings or get_settings()
    update: dict[str, Any] = {"redis_url": None}
    if corpus_limit is not None:
        update["corpus_limit"] = corpus_limit
    s = s.model_copy(update=update)
    stack = Stack.open(s, redis_timeout_s=REDIS_TIMEOUT_S)
    try:
        corpus.load_into(stack, s.corpus_limit)
        Pipeline(stack).warm_up()
    except BaseException:
        stack.close()
        raise
    return stack


def stack_info(stack: Stack) -> dict[str, Any]:
    """What the experiments run on: Redis (lab-owned, redacted URL, version), stores, corpus size."""
    st = redis_stats.snapshot(lab_redis_url(stack))
    return {
        "redis": {
            "url": redact_text(lab_redis_url(stack)),
            "version": st.redis_version,
            "pid": stack.redis_server.pid if stack.redis_server else None,
            "lab_owned": True,
        },
        "vectors": {
            "kind": stack.vectors.kind,
            "url": stack.vectors.url,
            "points": stack.vectors.count(),
        },
        "documents": {"kind": stack.docs.kind, "url": stack.docs.url, "count": stack.docs.count()},
        "corpus_limit": stack.settings.corpus_limit,
    }


#: Smoke values (CI): every experiment through the same code path in a few seconds.
SMOKE: dict[str, Any] = {
    "requests": 60,
    "ttl_duration_s": 900.0,
    "ttl_mean_interval_s": 20.0,
    "eviction_requests": 120,
    "eviction_universe": 60,
    "eviction_budget_kb": 96,
    "serialization_entries": 50,
    "round_trip_repeats": 30,
    "parallel_prompts": 3,
    "parallel_repeats": 1,
    "embedding_texts": 8,
    "count_texts": 100,
}


def effective_parameters(
    *, smoke: bool = False, corpus_limit: int = 0, **params: Any
) -> dict[str, Any]:
    """A notebook's parameters with the smoke values applied (``corpus_limit`` 0 = from settings)."""
    out = {**params, **{k: v for k, v in SMOKE.items() if smoke and k in params}, "smoke": smoke}
    out["corpus_limit"] = corpus_limit or None
    return out


def lab_redis_url(stack: Stack) -> str:
    """URL of the stack's lab-owned redis-server (ConfigError for a Redis the lab does not own)."""
    server = stack.redis_server
    if server is None or server.pid is None:
        raise ConfigError(
            "cache experiments flush and reconfigure Redis, so they only run on a "
            "lab-owned redis-server: open the stack with axon_lab.cache.experiments.open_stack()"
        )
    return server.url


def _admin(stack: Stack) -> Any:
    import redis

    return redis.Redis.from_url(
        lab_redis_url(stack), socket_timeout=10, protocol=2, lib_name=None, lib_version=None
    )


def _flush(stack: Stack) -> None:
    r = _admin(stack)
    try:
        r.flushdb()
    finally:
        r.close()


def _run(coro: Any) -> Any:
    """Run a coroutine to completion from sync code, also inside Jupyter (whose loop is running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(1) as ex:
        return ex.submit(asyncio.run, coro).result()


@contextlib.asynccontextmanager
async def _pipeline(stack: Stack, options: PipelineOptions):
    # A fresh Redis client per run: redis.asyncio connections belong to the loop that made them.
    cache = Cache(lab_redis_url(stack), timeout_s=REDIS_TIMEOUT_S)
    pipe = Pipeline(dataclasses.replace(stack, cache=cache), options)
    pipe.refresh_workspaces()
    try:
        yield pipe
    finally:
        await cache.close()


def config_options(
    config: str,
    *,
    side_caches: bool = False,
    l1_max_entries: int = 100,
    l1_ttl_s: float = 60.0,
    context_cache_ttl_s: int = 3600,
    llm: str = "off",
    **overrides: Any,
) -> PipelineOptions:
    """``PipelineOptions`` for a context-cache configuration.

    Parameters
    ----------
    config
        ``none``, ``l1``, ``l2`` or ``l1+l2`` (see :data:`CONFIGS`).
    side_caches
        Also use the Redis analysis and embedding caches (off by default so that the
        configurations differ only in the context cache).
    llm
        LLM stage mode; ``off`` by default (the LLM does not touch the caches).
    """
    flags = CONFIGS.get(config)
    return PipelineOptions(
        **flags,
        analysis_cache=side_caches,
        embedding_cache=side_caches,
        l1_max_entries=l1_max_entries,
        l1_ttl_s=l1_ttl_s,
        context_cache_ttl_s=context_cache_ttl_s,
        llm=LLMOptions(mode=llm),
        **overrides,
    )


def _row(res: Any, **extra: Any) -> dict[str, Any]:
    lat = res.body["metadata"]["latency"]
    ctx = res.cache.get("context")
    return {
        **extra,
        "context": ctx,
        "level": _LEVEL_OF.get(ctx),
        "analysis": res.cache.get("analysis"),
        "embedding": res.cache.get("embedding"),
        "retrieval_ms": lat.get("retrieval"),
        "analysis_ms": lat.get("analysis"),
        "embed_ms": lat.get("embed"),
        "total_ms": lat.get("total"),
    }


def _redis_row(
    before: redis_stats.RedisStats, after: redis_stats.RedisStats, errors: int, **extra: Any
) -> dict[str, Any]:
    d = redis_stats.delta(before, after)
    return {
        **extra,
        "keyspace_hits": d["keyspace_hits"],
        "keyspace_misses": d["keyspace_misses"],
        "keyspace_hit_rate": d["hit_rate"],
        "evicted_keys": d["evicted_keys"],
        "expired_keys": d["expired_keys"],
        "commands": d["total_commands_processed"],
        "used_memory_before": d["used_memory_before"],
        "used_memory_after": d["used_memory_after"],
        "used_memory_peak": d["used_memory_peak"],
        "keys_after": d["keys_after"],
        # the configuration the run ran under (measuring may change it afterwards)
        "maxmemory": before.maxmemory,
        "maxmemory_policy": before.maxmemory_policy,
        "cache_errors": errors,
    }


def _pct(v: Any, q: float) -> float:
    a = np.asarray(v, dtype=float)
    a = a[~np.isnan(a)]
    return float(np.percentile(a, q)) if a.size else math.nan


# --- configurations: none / L1 / L2 / L1+L2 -----------------------------------------------------
def expected_levels(
    prompts: Sequence[str], config: str, *, l1_max_entries: int = 100
) -> dict[str, int]:
    """Predicted lookups per result for a workload, by simulating the L1 LRU and an unbounded L2.

    Assumes nothing expires during the run (L1 TTL 60 s, L2 TTL 1 h) and that Redis evicts
    nothing; keys are the whitespace-normalised prompt, as in the pipeline.
    """
    flags = CONFIGS.get(config)
    l1_on, l2_on = flags["l1_cache"], flags["l2_cache"]
    l1: OrderedDict[str, None] = OrderedDict()
    l2: set[str] = set()
    counts = {"l1-hit": 0, "l2-hit": 0, "miss": 0, "off": 0}

    def l1_set(key: str) -> None:
        l1[key] = None
        l1.move_to_end(key)
        while len(l1) > l1_max_entries:
            l1.popitem(last=False)

    for prompt in prompts:
        key = " ".join(prompt.split())
        if l1_on and key in l1:
            l1.move_to_end(key)
            counts["l1-hit"] += 1
            continue
        if l2_on and key in l2:
            counts["l2-hit"] += 1
            if l1_on:
                l1_set(key)
            continue
        counts["miss" if (l1_on or l2_on) else "off"] += 1
        if l1_on:
            l1_set(key)
        if l2_on:
            l2.add(key)
    return counts


def compare_configurations(
    stack: Stack,
    prompts: Sequence[str],
    *,
    configs: Sequence[str] = CONFIG_ORDER,
    workspace: str = "test",
    side_caches: bool = False,
    l1_max_entries: int = 100,
    l1_ttl_s: float = 60.0,
) -> Run:
    """Run the same prompt sequence through the pipeline once per cache configuration.

    Redis is flushed and L1 is new before each configuration, so every one starts cold.

    Parameters
    ----------
    stack
        From :func:`open_stack` (lab-owned Redis).
    prompts
        The workload, in order (e.g. :func:`axon_lab.workload.zipf_workload`).
    configs
        Names from :data:`CONFIGS`.
    workspace
        Workspace of every request (must exist in the corpus, else retrieval is skipped).
    side_caches, l1_max_entries, l1_ttl_s
        See :func:`config_options`.

    Returns
    -------
    Run
        ``requests``: config, i, prompt, context (l1-hit / l2-hit / miss / off), level
        (L1 / L2 / L3), retrieval_ms, total_ms...; ``redis``: INFO deltas per config.
    """
    for c in configs:
        CONFIGS.get(c)

    async def go() -> Run:
        rows, rrows = [], []
        for config in configs:
            _flush(stack)
            opts = config_options(
                config, side_caches=side_caches, l1_max_entries=l1_max_entries, l1_ttl_s=l1_ttl_s
            )
            before = redis_stats.snapshot(lab_redis_url(stack))
            async with _pipeline(stack, opts) as pipe:
                for i, prompt in enumerate(prompts):
                    res = await pipe.process(prompt, workspace, "cache-experiment")
                    rows.append(_row(res, config=config, i=i, prompt=prompt))
                errors = pipe.stack.cache.errors
            rrows.append(
                _redis_row(
                    before, redis_stats.snapshot(lab_redis_url(stack)), errors, config=config
                )
            )
        return Run(
            pd.DataFrame(rows),
            pd.DataFrame(rrows),
            {
                "configs": list(configs),
                "workspace": workspace,
                "side_caches": side_caches,
                "l1_max_entries": l1_max_entries,
                "l1_ttl_s": l1_ttl_s,
                "requests": len(prompts),
            },
        )

    return _run(go())


def level_summary(run: Run) -> pd.DataFrame:
    """Per configuration: hits per level, hit rates, the prediction, latency and the target verdict.

    ``l1_hit_rate`` = L1 hits / lookups; ``l2_hit_rate`` = L2 hits / lookups that reached L2;
    ``hit_rate`` = (L1 + L2 hits) / lookups, judged against the guide's > 80% (> 60% minimum).
    ``expected_*`` come from :func:`expected_levels` on the same prompts.
    """
    df = run.requests[run.requests["context"] != "skip"]
    rows = []
    for config, g in df.groupby("config", sort=False):
        n = len(g)
        l1 = int((g.context == "l1-hit").sum())
        l2 = int((g.context == "l2-hit").sum())
        flags = CONFIGS.get(str(config))
        cached = flags["l1_cache"] or flags["l2_cache"]
        exp = expected_levels(
            g.sort_values("i").prompt.tolist(),
            str(config),
            l1_max_entries=int(run.params.get("l1_max_entries", 100)),
        )
        hit_rate = (l1 + l2) / n if (n and cached) else None
        rows.append(
            {
                "config": config,
                "requests": n,
                "l1_hits": l1,
                "l2_hits": l2,
                "misses": n - l1 - l2,
                "l1_hit_rate": l1 / n if (n and flags["l1_cache"]) else None,
                "l2_hit_rate": l2 / (n - l1) if (n - l1 and flags["l2_cache"]) else None,
                "hit_rate": hit_rate,
                "expected_l1_hits": exp["l1-hit"],
                "expected_l2_hits": exp["l2-hit"],
                "status": goals.get("cache_hit_rate").judge(hit_rate) if cached else "info",
                "total_p50_ms": _pct(g.total_ms, 50),
                "total_p95_ms": _pct(g.total_ms, 95),
                "retrieval_mean_ms": float(g.retrieval_ms.mean()),
            }
        )
    out = pd.DataFrame(rows)
    if len(run.redis):
        out = out.merge(
            run.redis[["config", "keyspace_hit_rate", "cache_errors"]], on="config", how="left"
        )
    return out


def level_latency(run: Run) -> pd.DataFrame:
    """Retrieval-stage latency by the level that served it (L1, L2, L3), per configuration.

    ``status``: pass if p95 is under the guide's level expectation (:data:`LEVEL_TARGET_MS`),
    warn under twice that, fail above.
    """
    rows = []
    df = run.requests.dropna(subset=["level"])
    for (config, level), g in df.groupby(["config", "level"], sort=False):
        p95 = _pct(g.retrieval_ms, 95)
        target = LEVEL_TARGET_MS[str(level)]
        status = "pass" if p95 < target else ("warn" if p95 < 2 * target else "fail")
        rows.append(
            {
                "config": config,
                "level": level,
                "count": len(g),
                "mean_ms": float(g.retrieval_ms.mean()),
                "p50_ms": _pct(g.retrieval_ms, 50),
                "p95_ms": p95,
                "p99_ms": _pct(g.retrieval_ms, 99),
                "max_ms": float(g.retrieval_ms.max()),
                "target_ms": target,
                "status": status,
            }
        )
    return (
        pd.DataFrame(rows).sort_values(["config", "level"], key=_config_key).reset_index(drop=True)
    )


def _config_key(s: pd.Series) -> pd.Series:
    if s.name == "config":
        return s.map(lambda c: CONFIG_ORDER.index(c) if c in CONFIG_ORDER else len(CONFIG_ORDER))
    return s


# --- TTL: 300 s vs 3600 s, with time scaled ------------------------------------------------------
def arrivals(duration_s: float, mean_interval_s: float, *, seed: int = 0) -> np.ndarray:
    """Poisson arrival times (simulated seconds) in ``[0, duration_s)``."""
    if duration_s <= 0 or mean_interval_s <= 0:
        raise ConfigError("duration_s and mean_interval_s must be > 0")
    rng = np.random.default_rng(seed)
    n = int(duration_s / mean_interval_s * 1.5) + 10
    t = np.cumsum(rng.exponential(mean_interval_s, size=n))
    return t[t < duration_s]


def expected_ttl_hits(times_s: Sequence[float], prompts: Sequence[str], ttl_s: float) -> np.ndarray:
    """Cache-aside with a TTL: a hit when the key was written less than ``ttl_s`` ago.

    Keys are written on a miss only (a hit does not refresh the TTL), as in the pipeline.
    """
    written: dict[str, float] = {}
    out = np.zeros(len(prompts), dtype=bool)
    for i, (t, p) in enumerate(zip(times_s, prompts, strict=True)):
        key = " ".join(p.split())
        if key in written and t - written[key] < ttl_s:
            out[i] = True
        else:
            written[key] = t
    return out


def ttl_experiment(
    stack: Stack,
    *,
    ttls_s: Sequence[int] = (300, 3600),
    time_scale: float = 300.0,
    duration_s: float = 7200.0,
    mean_interval_s: float = 20.0,
    universe: int = 40,
    zipf_s: float = 1.1,
    seed: int = 0,
    workspace: str = "test",
) -> Run:
    """The guide's TTL advice (300 s "thrashing" vs 3600 s) on the real redis-server, time scaled.

    Redis expires keys in real time, so the experiment compresses time: arrival times and TTLs
    are both divided by ``time_scale`` (300 → 1 s real TTL, 3600 → 12 s), and requests are
    paced in real time to the scaled Poisson schedule. Redis' expiry behaves the same at any
    scale (millisecond resolution); what is not scaled is request processing time (tens of ms),
    which the frame reports as ``lag_s`` (simulated seconds behind schedule). Each TTL runs the
    same arrivals and prompts, L2 only (L1 off: its own 60 s TTL would mask Redis' TTL).

    Returns
    -------
    Run
        ``requests``: ttl_s, effective_ttl_s, i, t_s (scheduled, simulated), actual_t_s, lag_s,
        prompt, context, miss_kind (cold / expired), expected_hit (predicted from the actual
        times)...; ``redis``: INFO deltas per TTL
        (``expired_keys`` shows Redis doing the expiring).
    """
    if time_scale <= 0:
        raise ConfigError(f"time_scale must be > 0, got {time_scale}")
    scaled = {ttl: round(ttl / time_scale) for ttl in ttls_s}
    too_short = [t for t, s in scaled.items() if s < 1]
    if too_short:
        raise ConfigError(
            f"TTL {too_short} s / time_scale {time_scale} is under 1 s (Redis SET EX "
            "needs whole seconds); lower time_scale"
        )
    times = arrivals(duration_s, mean_interval_s, seed=seed)
    universe_prompts = tuple(workload.distinct_prompts(universe))
    prompts = workload.zipf_workload(len(times), s=zipf_s, prompts=universe_prompts, seed=seed)

    async def go() -> Run:
        rows, rrows = [], []
        for ttl in ttls_s:
            _flush(stack)
            opts = config_options("l2", context_cache_ttl_s=scaled[ttl])
            eff = scaled[ttl] * time_scale
            before = redis_stats.snapshot(lab_redis_url(stack))
            seen: set[str] = set()
            run_rows = []
            async with _pipeline(stack, opts) as pipe:
                t0 = time.perf_counter()
                for i, (t_sim, prompt) in enumerate(zip(times, prompts, strict=True)):
                    wait = t0 + t_sim / time_scale - time.perf_counter()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    actual = (time.perf_counter() - t0) * time_scale
                    res = await pipe.process(prompt, workspace, "ttl-experiment")
                    row = _row(
                        res,
                        ttl_s=ttl,
                        effective_ttl_s=eff,
                        i=i,
                        t_s=float(t_sim),
                        actual_t_s=actual,
                        lag_s=max(0.0, actual - float(t_sim)),
                        prompt=prompt,
                    )
                    hit = row["context"] == "l2-hit"
                    row["miss_kind"] = None if hit else ("expired" if prompt in seen else "cold")
                    seen.add(prompt)
                    run_rows.append(row)
                errors = pipe.stack.cache.errors
            # The prediction uses the times requests really started (after any lag), so it
            # checks Redis' expiry, not the pacing.
            expected = expected_ttl_hits([r["actual_t_s"] for r in run_rows], prompts, eff)
            for r, e in zip(run_rows, expected, strict=True):
                r["expected_hit"] = bool(e)
            rows.extend(run_rows)
            rrows.append(
                _redis_row(before, redis_stats.snapshot(lab_redis_url(stack)), errors, ttl_s=ttl)
            )
        return Run(
            pd.DataFrame(rows),
            pd.DataFrame(rrows),
            {
                "ttls_s": list(ttls_s),
                "time_scale": time_scale,
                "duration_s": duration_s,
                "mean_interval_s": mean_interval_s,
                "universe": universe,
                "zipf_s": zipf_s,
                "seed": seed,
                "requests": len(times),
            },
        )

    return _run(go())


def ttl_summary(run: Run) -> pd.DataFrame:
    """Per TTL: hit rate (measured and predicted), cold vs expired misses, Redis expirations."""
    rows = []
    for ttl, g in run.requests.groupby("ttl_s", sort=False):
        n = len(g)
        hits = int((g.context == "l2-hit").sum())
        rows.append(
            {
                "ttl_s": ttl,
                "effective_ttl_s": float(g.effective_ttl_s.iloc[0]),
                "requests": n,
                "hits": hits,
                "hit_rate": hits / n if n else None,
                "expected_hit_rate": float(g.expected_hit.mean()) if n else None,
                "cold_misses": int((g.miss_kind == "cold").sum()),
                "expired_misses": int((g.miss_kind == "expired").sum()),
                "max_lag_s": float(g.lag_s.max()) if n else 0.0,
                "status": goals.get("cache_hit_rate").judge(hits / n if n else None),
            }
        )
    out = pd.DataFrame(rows)
    if len(run.redis):
        out = out.merge(
            run.redis[["ttl_s", "expired_keys", "cache_errors"]], on="ttl_s", how="left"
        )
    return out


# --- maxmemory + eviction policy under memory pressure ------------------------------------------
def eviction_experiment(
    stack: Stack,
    *,
    policies: Sequence[str | None] = (None, "allkeys-lru"),
    budget_kb: int = 1024,
    universe: int = 400,
    requests: int = 1200,
    zipf_s: float = 1.1,
    seed: int = 0,
    workspace: str = "test",
) -> Run:
    """Redis under memory pressure: ``maxmemory`` + eviction policy set by ``CONFIG SET``.

    For each policy (``None`` or ``"none"`` = no cap, the reference), Redis is flushed, ``maxmemory`` is set
    to the empty server's ``used_memory`` plus ``budget_kb`` and the policy applied; then a
    Zipf workload over ``universe`` distinct prompts runs with every Redis cache on (context,
    analysis, embedding: they compete for memory as in production) and L1 off. Redis' LRU is
    approximate (it samples ``maxmemory-samples`` keys). The server's config is restored
    (no cap, ``noeviction``) afterwards.

    Returns
    -------
    Run
        ``requests``: policy, i, prompt, context...; ``redis``: per policy maxmemory,
        evicted_keys, keyspace hit rate, used_memory_peak, keys left, cache_errors (writes
        refused, e.g. OOM under ``noeviction``), and ``keys_<prefix>`` / ``bytes_<prefix>``
        left per cache (``emb``, ``analysis``, ``ctx``).
    """
    if budget_kb < 1:
        raise ConfigError(f"budget_kb must be >= 1, got {budget_kb}")
    policies = [None if p in (None, "", "none", "no cap") else p for p in policies]
    prompts = workload.zipf_workload(
        requests, s=zipf_s, prompts=tuple(workload.distinct_prompts(universe)), seed=seed
    )

    async def go() -> Run:
        rows, rrows = [], []
        admin = _admin(stack)
        try:
            for policy in policies:
                admin.flushdb()
                admin.config_set("maxmemory", 0)
                admin.config_set("maxmemory-policy", "noeviction")
                base = redis_stats.snapshot(lab_redis_url(stack))
                cap = 0
                if policy is not None:
                    cap = int(base.used_memory or 0) + budget_kb * 1024
                    admin.config_set("maxmemory-policy", policy)
                    admin.config_set("maxmemory", cap)
                label = policy or "no cap"
                before = redis_stats.snapshot(lab_redis_url(stack))
                async with _pipeline(stack, config_options("l2", side_caches=True)) as pipe:
                    for i, prompt in enumerate(prompts):
                        res = await pipe.process(prompt, workspace, "eviction-experiment")
                        rows.append(_row(res, policy=label, i=i, prompt=prompt))
                    errors = pipe.stack.cache.errors
                # Stop evicting before measuring: under the cap, the measuring connections'
                # own buffers would evict keys between the key count and the per-prefix scan.
                admin.config_set("maxmemory-policy", "noeviction")
                after = redis_stats.snapshot(lab_redis_url(stack))
                row = _redis_row(
                    before, after, errors, policy=label, budget_bytes=cap and budget_kb * 1024
                )
                # Which caches survived: keys and bytes left per key prefix (emb, analysis, ctx).
                for r in redis_stats.key_memory(lab_redis_url(stack)).itertuples():
                    row[f"keys_{r.prefix}"], row[f"bytes_{r.prefix}"] = int(r.keys), int(r.bytes)
                rrows.append(row)
        finally:
            admin.config_set("maxmemory", 0)
            admin.config_set("maxmemory-policy", "noeviction")
            admin.flushdb()
            admin.close()
        return Run(
            pd.DataFrame(rows),
            pd.DataFrame(rrows),
            {
                "policies": [p or "no cap" for p in policies],
                "budget_kb": budget_kb,
                "universe": universe,
                "requests": requests,
                "zipf_s": zipf_s,
                "seed": seed,
            },
        )

    return _run(go())


def eviction_summary(run: Run) -> pd.DataFrame:
    """Per policy: context hit rate, Redis keyspace hit rate, evictions, memory, write errors."""
    rows = []
    for policy, g in run.requests.groupby("policy", sort=False):
        n = len(g)
        hits = int((g.context == "l2-hit").sum())
        rows.append(
            {
                "policy": policy,
                "requests": n,
                "context_hit_rate": hits / n if n else None,
                "embedding_hit_rate": float((g.embedding == "hit").mean()),
                "analysis_hit_rate": float((g.analysis == "hit").mean()),
                "status": goals.get("cache_hit_rate").judge(hits / n if n else None),
                "total_p50_ms": _pct(g.total_ms, 50),
            }
        )
    out = pd.DataFrame(rows)
    return (
        out.merge(run.redis.drop(columns=["commands"]), on="policy", how="left")
        if len(run.redis)
        else out
    )


# --- the guide's claims ---------------------------------------------------------------------------
def _claim_status(measured: float | None, claimed: float, floor: float) -> str:
    """confirmed: at least 90% of the claimed figure; partly: better than ``floor`` (a gain, but
    smaller); refuted: no gain.
    """
    if measured is None or (isinstance(measured, float) and math.isnan(measured)):
        return "unknown"
    if measured >= 0.9 * claimed:
        return "confirmed"
    return "partly" if measured > floor else "refuted"


def guide_claims(
    *,
    serialization: pd.DataFrame | None = None,
    round_trips: pd.DataFrame | None = None,
    parallelism: pd.DataFrame | None = None,
    batching: pd.DataFrame | None = None,
    levels: pd.DataFrame | None = None,
    batch_size: int = 32,
) -> pd.DataFrame:
    """The guide's figures next to the measured ones, each confirmed / partly / refuted.

    Parameters
    ----------
    serialization
        From :func:`serialization` (claim: msgpack ~30% smaller than JSON).
    round_trips
        From :func:`round_trip_summary` (claim: pipelining 3 GETs ~66% less latency; the
        smallest key count is used).
    parallelism
        From :func:`parallelism_summary` (claim: parallel analysis 3x faster; one row per variant).
    batching
        From :func:`embedding_batching` (claim: "latency / batch_size", i.e. a speedup equal to
        the batch size, judged at ``batch_size``).
    levels
        From :func:`level_summary` (target: hit rate > 80%).
    """
    rows = []
    if serialization is not None and {"json", "msgpack"} <= set(serialization.format):
        s = serialization.set_index("format")
        red = 1 - s.loc["msgpack", "bytes_per_entry"] / s.loc["json", "bytes_per_entry"]
        rows.append(
            {
                "claim": "MessagePack embedding cache ~30% smaller than JSON",
                "guide": 0.30,
                "measured": red,
                "unit": "size reduction",
                "status": _claim_status(red, 0.30, 0.0),
            }
        )
    if round_trips is not None and len(round_trips):
        n = int(round_trips["keys"].min())
        r = round_trips[(round_trips["keys"] == n) & (round_trips.method == "pipeline")]
        red = float(r.reduction_vs_sequential.iloc[0]) if len(r) else math.nan
        rows.append(
            {
                "claim": f"Pipelining {n} GETs: ~66% less latency",
                "guide": 0.66,
                "measured": red,
                "unit": "latency reduction (p50)",
                "status": _claim_status(red, 0.66, 0.0),
            }
        )
    if parallelism is not None:
        for r in parallelism.itertuples():
            rows.append(
                {
                    "claim": f"Parallel analysis steps 3x faster ({r.variant})",
                    "guide": 3.0,
                    "measured": r.speedup,
                    "unit": "speedup (p50)",
                    "status": _claim_status(r.speedup, 3.0, 1.0),
                }
            )
    if batching is not None and len(batching):
        sp = batching.loc[batching.batch_size == batch_size, "speedup"]
        val = float(sp.iloc[0]) if len(sp) else math.nan
        rows.append(
            {
                "claim": f"Batch embedding: latency / batch_size (batch {batch_size})",
                "guide": float(batch_size),
                "measured": val,
                "unit": "speedup vs one at a time",
                "status": _claim_status(val, float(batch_size), 1.0),
            }
        )
    if levels is not None:
        for r in levels.itertuples():
            if r.hit_rate is None or (isinstance(r.hit_rate, float) and math.isnan(r.hit_rate)):
                continue
            rows.append(
                {
                    "claim": f"Cache hit rate > 80% ({r.config})",
                    "guide": 0.80,
                    "measured": r.hit_rate,
                    "unit": "hit rate",
                    "status": {"pass": "confirmed", "warn": "partly"}.get(r.status, "refuted"),
                }
            )
    return pd.DataFrame(rows, columns=["claim", "guide", "measured", "unit", "status"])


def verdict(claims: pd.DataFrame, levels: pd.DataFrame | None = None) -> dict[str, Any]:
    """One-line verdict for a report: the best configuration's hit rate against the target."""
    if levels is None or levels.hit_rate.dropna().empty:
        n = int((claims.status == "confirmed").sum())
        return {"status": "info", "summary": f"{n}/{len(claims)} guide claims confirmed"}
    best = levels.dropna(subset=["hit_rate"]).sort_values("hit_rate").iloc[-1]
    status = {"pass": "pass", "warn": "warn"}.get(str(best.status), "fail")
    n = int((claims.status == "confirmed").sum())
    from axon_lab.report.summary import figure

    numbers = [
        figure(
            f"hit rate, {r.config}",
            r.hit_rate,
            "%",
            target="> 80%",
            status=str(r.status) if str(r.status) in ("pass", "warn", "fail") else None,
        )
        for r in levels.dropna(subset=["hit_rate"]).itertuples()
    ][:4]
    numbers.append(figure("guide claims confirmed", n, f"of {len(claims)}"))
    return {
        "status": status,
        "summary": f"best hit rate {best.hit_rate:.0%} ({best.config}; target > 80%); "
        f"{n}/{len(claims)} guide claims confirmed",
        "numbers": numbers,
    }


def corpus_sample(stack: Stack, n: int, *, seed: int = 0) -> pd.DataFrame:
    """``n`` corpus rows (content, embedding) of the stack's corpus, sampled reproducibly."""
    from axon_lab import corpus

    df = corpus.load_frame(stack.settings.corpus_limit, settings=stack.settings)
    return df.sample(n=min(n, len(df)), random_state=seed).reset_index(drop=True)
