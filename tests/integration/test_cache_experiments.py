"""Cache experiments on the real pipeline and a lab-owned redis-server: known workloads give known hits."""

from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from axon_lab import cache, workload
from axon_lab.cache import redis_stats
from axon_lab.errors import ConfigError


@pytest.fixture(scope="module")
def stack(lab_settings, tmp_path_factory):
    """A cache-experiment stack on its own data dir, reusing the session's small corpus artefact
    (embedding it again would cost a minute; sharing the Qdrant shard with other tests' open
    stores would not be safe)."""
    from axon_lab import corpus

    corpus.build(lab_settings.corpus_limit, settings=lab_settings)
    src = corpus.paths(lab_settings, lab_settings.corpus_limit).root
    settings = lab_settings.model_copy(update={"data_dir": tmp_path_factory.mktemp("cache-data")})
    dst = corpus.paths(settings, settings.corpus_limit).root
    shutil.copytree(src, dst)
    st = cache.open_stack(settings)
    yield st
    st.close()


# --- pure accounting -------------------------------------------------------------------------------
def test_expected_levels_for_n_distinct_prompts_repeated_k_times() -> None:
    n, k = 8, 3
    prompts = workload.distinct_prompts(n) * k
    assert cache.expected_levels(prompts, "none") == {
        "l1-hit": 0,
        "l2-hit": 0,
        "miss": 0,
        "off": n * k,
    }
    assert cache.expected_levels(prompts, "l1")["l1-hit"] == n * (k - 1)
    assert cache.expected_levels(prompts, "l2")["l2-hit"] == n * (k - 1)
    both = cache.expected_levels(prompts, "l1+l2")
    assert (both["l1-hit"], both["l2-hit"], both["miss"]) == (n * (k - 1), 0, n)
    # Round-robin over more prompts than L1 holds: LRU always evicts the next one, L2 serves.
    small = cache.expected_levels(prompts, "l1+l2", l1_max_entries=n // 2)
    assert (small["l1-hit"], small["l2-hit"], small["miss"]) == (0, n * (k - 1), n)
    with pytest.raises(ConfigError, match="valid: l1, l1\\+l2, l2, none"):
        cache.expected_levels(prompts, "l3")


def test_expected_ttl_hits_does_not_refresh_on_hit() -> None:
    got = cache.expected_ttl_hits([0, 100, 250, 310, 320], ["a"] * 5, 300)
    # written at 0; hits at 100, 250; expired at 310 (rewritten); hit at 320
    assert got.tolist() == [False, True, True, False, True]


# --- real pipeline + real redis-server ---------------------------------------------------------------
def test_hit_accounting_matches_the_known_workload(stack) -> None:
    n, k = 8, 3
    prompts = workload.distinct_prompts(n) * k
    run = cache.compare_configurations(stack, prompts)
    s = cache.level_summary(run).set_index("config")
    assert (s.cache_errors == 0).all()
    assert s.loc["none", ["l1_hits", "l2_hits", "misses"]].tolist() == [0, 0, n * k]
    assert s.loc["l1", ["l1_hits", "l2_hits", "misses"]].tolist() == [n * (k - 1), 0, n]
    assert s.loc["l2", ["l1_hits", "l2_hits", "misses"]].tolist() == [0, n * (k - 1), n]
    assert s.loc["l1+l2", ["l1_hits", "l2_hits", "misses"]].tolist() == [n * (k - 1), 0, n]
    assert (s.l1_hits == s.expected_l1_hits).all() and (s.l2_hits == s.expected_l2_hits).all()
    assert s.loc["l2", "hit_rate"] == pytest.approx((k - 1) / k)
    # Redis saw exactly the L2 lookups: hits for repeats, misses for first sight.
    r = run.redis.set_index("config")
    assert r.loc["l2", ["keyspace_hits", "keyspace_misses"]].tolist() == [n * (k - 1), n]
    assert r.loc["l1+l2", ["keyspace_hits", "keyspace_misses"]].tolist() == [0, n]
    assert r.loc["none", "commands"] == 0 and r.loc["l1", "commands"] == 0
    lat = cache.level_latency(run)
    assert set(lat.level) == {"L1", "L2", "L3"} and (lat.p50_ms > 0).all()
    # A small L1 under round-robin: every repeat is an L2 hit (LRU evicts what comes next).
    run2 = cache.compare_configurations(stack, prompts, configs=("l1+l2",), l1_max_entries=n // 2)
    s2 = cache.level_summary(run2).iloc[0]
    assert (s2.l1_hits, s2.l2_hits, s2.misses) == (0, n * (k - 1), n)


def test_eviction_under_small_maxmemory_with_allkeys_lru(stack) -> None:
    run = cache.eviction_experiment(
        stack, policies=("allkeys-lru",), budget_kb=64, universe=40, requests=80, seed=1
    )
    s = cache.eviction_summary(run).iloc[0]
    assert s.policy == "allkeys-lru" and s.maxmemory_policy == "allkeys-lru"
    assert s.evicted_keys > 0
    assert s.cache_errors == 0  # allkeys-lru makes room instead of refusing writes
    assert s.keys_emb + s.keys_analysis + s.keys_ctx == s.keys_after
    after = redis_stats.snapshot(cache.lab_redis_url(stack))
    assert after.maxmemory == 0 and after.maxmemory_policy == "noeviction" and after.keys == 0


def test_ttl_experiment_expires_short_ttls_only(stack) -> None:
    run = cache.ttl_experiment(
        stack,
        ttls_s=(300, 3600),
        time_scale=300,
        duration_s=900,
        mean_interval_s=15,
        universe=4,
        seed=2,
    )
    s = cache.ttl_summary(run).set_index("ttl_s")
    assert s.loc[300, "effective_ttl_s"] == 300 and s.loc[3600, "effective_ttl_s"] == 3600
    assert s.loc[3600, "expired_misses"] == 0
    assert s.loc[300, "expired_misses"] > 0 and s.loc[300, "expired_keys"] > 0
    assert s.loc[3600, "hit_rate"] > s.loc[300, "hit_rate"]
    with pytest.raises(ConfigError, match="under 1 s"):
        cache.ttl_experiment(stack, ttls_s=(60,), time_scale=300)


def test_serialization_sizes_are_exact(stack) -> None:
    vecs = np.stack(cache.corpus_sample(stack, 20).embedding)
    f = cache.serialization(vecs, repeats=1, stack=stack).set_index("format")
    assert f.loc["msgpack", "bytes_per_entry"] == 3 + 384 * 9  # array16 header + float64 each
    assert f.loc["msgpack-f32", "bytes_per_entry"] == 3 + 384 * 5
    assert f.loc["raw-f32", "bytes_per_entry"] == 384 * 4
    assert f.loc["json", "bytes_per_entry"] > f.loc["msgpack", "bytes_per_entry"]
    assert (f.max_abs_error == 0).all()  # every format round-trips the float32 values exactly
    assert (f.redis_bytes_per_entry >= f.bytes_per_entry).all()


def test_round_trips_and_claims_table(stack) -> None:
    frame = cache.round_trips(stack, key_counts=(3,), repeats=20, warmup=2)
    assert len(frame) == 60 and set(frame.method) == set(cache.ROUND_TRIP_METHODS)
    summary = cache.round_trip_summary(frame)
    assert summary.loc[summary.method == "sequential", "reduction_vs_sequential"].iloc[0] == 0
    claims = cache.guide_claims(round_trips=summary)
    assert claims.claim.iloc[0].startswith("Pipelining 3 GETs")
    assert claims.status.iloc[0] in {"confirmed", "partly", "refuted"}


def test_token_counts_chars4_is_ceil_len_over_4() -> None:
    frame = cache.token_counts(["Hello", "How do I parse JSON with a custom decoder in Python?"])
    assert frame.chars4.tolist() == [math.ceil(5 / 4), math.ceil(52 / 4)]
    assert (frame.cl100k > 0).all()
    summary = cache.token_error_summary(frame)
    assert summary["texts"] == 2 and -1 < summary["mean_rel_error"] < 2


def test_experiments_refuse_a_redis_the_lab_does_not_own(stack) -> None:
    import dataclasses

    foreign = dataclasses.replace(stack, redis_server=None)
    with pytest.raises(ConfigError, match="lab-owned"):
        cache.compare_configurations(foreign, ["x"])
