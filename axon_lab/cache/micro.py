"""Cache micro-benchmarks: embedding serialization, Redis round trips, parallel analysis, batch embedding, token counting.

They time loops with ``perf_counter_ns`` directly, because a span per microsecond operation
would cost more than the operation. Experiments that touch Redis need the lab-owned
redis-server of :func:`axon_lab.cache.experiments.open_stack`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import embeddings, tokens
from axon_lab.cache import redis_stats
from axon_lab.cache.experiments import (
    REDIS_TIMEOUT_S,
    _admin,
    _flush,
    _pct,
    _pipeline,
    _run,
    lab_redis_url,
)
from axon_lab.config import child_env
from axon_lab.errors import ConfigError
from axon_lab.pipeline import LLMOptions, PipelineOptions, decode, encode
from axon_lab.registry import Registry
from axon_lab.stack import Stack


# --- serialization: JSON vs MessagePack for 384-d embeddings -------------------------------------
def _msgpack_f32(v: list[float]) -> bytes:
    import msgpack

    return msgpack.packb(v, use_single_float=True)


#: Embedding-cache encodings: name → (encode(list of float) → bytes, decode(bytes) → sequence).
FORMATS: Registry[tuple[Callable[[list[float]], bytes], Callable[[bytes], Any]]] = Registry(
    "serialization format"
)
FORMATS.register("json", (lambda v: encode(v, "json"), lambda b: decode(b, "json")))
FORMATS.register("msgpack", (lambda v: encode(v, "msgpack"), lambda b: decode(b, "msgpack")))
FORMATS.register("msgpack-f32", (_msgpack_f32, lambda b: decode(b, "msgpack")))
FORMATS.register(
    "raw-f32",
    (
        lambda v: np.asarray(v, dtype=np.float32).tobytes(),
        lambda b: np.frombuffer(b, dtype=np.float32),
    ),
)
FORMAT_ORDER: tuple[str, ...] = ("json", "msgpack", "msgpack-f32", "raw-f32")


def _loop_us(fn: Callable[[Any], Any], items: Sequence[Any], repeats: int) -> float:
    """Median over ``repeats`` of the mean time per item (µs) of ``fn`` over ``items``."""
    per = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for x in items:
            fn(x)
        per.append((time.perf_counter_ns() - t0) / 1e3 / len(items))
    return float(np.median(per))


def serialization(
    vectors: np.ndarray | Sequence[np.ndarray] | pd.Series,
    *,
    formats: Sequence[str] = FORMAT_ORDER,
    repeats: int = 5,
    stack: Stack | None = None,
) -> pd.DataFrame:
    """Bytes per entry and encode/decode time of each embedding encoding.

    Parameters
    ----------
    vectors
        (n, d) embeddings, or a sequence of 1-d vectors (e.g. the corpus frame's ``embedding``
        column, 384-d float32). Encoded as the pipeline does:
        a list of Python floats (``json`` = ``JSON.stringify``-like shortest repr of each double).
    formats
        Names from :data:`FORMATS`: ``json`` and ``msgpack`` are the pipeline's; ``msgpack-f32``
        (single floats) and ``raw-f32`` (numpy bytes) are further options.
    repeats
        Timing repeats (the median of the per-repeat means is reported).
    stack
        With a lab stack, each encoding is also stored in Redis and ``redis_bytes_per_entry``
        reports the server's ``used_memory`` growth per key (value + key + Redis overhead).

    Returns
    -------
    DataFrame
        format, entries, bytes_per_entry, size_vs_json (fraction of JSON's size),
        encode_us, decode_us, max_abs_error (round trip vs the float32 source),
        redis_bytes_per_entry.
    """
    vecs = (
        np.stack([np.asarray(v, dtype=np.float32) for v in vectors])
        if len(vectors)
        else np.zeros((0, 0))
    )
    if vecs.ndim != 2 or not len(vecs):
        raise ConfigError("vectors must be a non-empty 2-D array")
    lists = [[float(x) for x in v] for v in vecs]
    rows = []
    admin = _admin(stack) if stack is not None else None
    url = lab_redis_url(stack) if stack is not None else ""
    try:
        for name in formats:
            enc, dec = FORMATS.get(name)
            blobs = [enc(v) for v in lists]
            back = np.asarray([np.asarray(dec(b), dtype=np.float64) for b in blobs])
            row = {
                "format": name,
                "entries": len(blobs),
                "dim": vecs.shape[1],
                "bytes_per_entry": float(np.mean([len(b) for b in blobs])),
                "encode_us": _loop_us(enc, lists, repeats),
                "decode_us": _loop_us(dec, blobs, repeats),
                "max_abs_error": float(np.max(np.abs(back - vecs.astype(np.float64)))),
                "redis_bytes_per_entry": None,
            }
            if admin is not None:
                admin.flushdb()
                before = redis_stats.snapshot(url)
                p = admin.pipeline(transaction=False)
                for i, b in enumerate(blobs):
                    p.set(f"emb:{name}:{i:08d}", b)
                p.execute()
                after = redis_stats.snapshot(url)
                row["redis_bytes_per_entry"] = (
                    (after.used_memory or 0) - (before.used_memory or 0)
                ) / len(blobs)
                admin.flushdb()
            rows.append(row)
    finally:
        if admin is not None:
            admin.close()
    out = pd.DataFrame(rows)
    json_bytes = out.loc[out.format == "json", "bytes_per_entry"]
    out["size_vs_json"] = (
        out.bytes_per_entry / float(json_bytes.iloc[0]) if len(json_bytes) else np.nan
    )
    return out


# --- Redis round trips: sequential GETs vs pipeline vs MGET --------------------------------------
ROUND_TRIP_METHODS: tuple[str, ...] = ("sequential", "pipeline", "mget")


def round_trips(
    stack: Stack,
    *,
    key_counts: Sequence[int] = (3, 10, 50),
    repeats: int = 300,
    value_bytes: int = 3459,
    warmup: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """Latency of fetching N keys: N awaited GETs, one pipeline, one MGET (redis.asyncio, as the pipeline).

    Methods are interleaved in a shuffled order on every repeat so that drift on a shared
    machine hits them alike. Values default to the size of a msgpack 384-d embedding.
    The server is on loopback: the round trip saved is a loopback one (tens of µs), not a
    network one, so this is the lower bound of the guide's saving.

    Returns
    -------
    DataFrame
        One row per timed call: keys, method, repeat, us.
    """
    import redis.asyncio as aredis

    url = lab_redis_url(stack)
    rng = np.random.default_rng(seed)
    value = rng.bytes(value_bytes)

    async def go() -> list[dict[str, Any]]:
        client = aredis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S)
        rows: list[dict[str, Any]] = []
        try:
            await client.flushdb()
            for n in key_counts:
                keys = [f"rt:{n}:{i}" for i in range(n)]
                await client.mset({k: value for k in keys})

                async def sequential(keys: list[str] = keys) -> None:
                    for k in keys:
                        await client.get(k)

                async def pipelined(keys: list[str] = keys) -> None:
                    async with client.pipeline(transaction=False) as p:
                        for k in keys:
                            p.get(k)
                        await p.execute()

                async def mget(keys: list[str] = keys) -> None:
                    await client.mget(keys)

                fns = {"sequential": sequential, "pipeline": pipelined, "mget": mget}
                for rep in range(-warmup, repeats):
                    for m in rng.permutation(ROUND_TRIP_METHODS):
                        t0 = time.perf_counter_ns()
                        await fns[str(m)]()
                        us = (time.perf_counter_ns() - t0) / 1e3
                        if rep >= 0:
                            rows.append({"keys": n, "method": str(m), "repeat": rep, "us": us})
            await client.flushdb()
        finally:
            await client.aclose()
        return rows

    return pd.DataFrame(_run(go()))


def round_trip_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per key count and method: p50, p95, mean (µs) and the p50 reduction vs sequential GETs."""
    rows = []
    for (n, m), g in frame.groupby(["keys", "method"], sort=False):
        rows.append(
            {
                "keys": n,
                "method": m,
                "calls": len(g),
                "p50_us": _pct(g.us, 50),
                "p95_us": _pct(g.us, 95),
                "mean_us": float(g.us.mean()),
            }
        )
    out = pd.DataFrame(rows)
    seq = out[out.method == "sequential"].set_index("keys")["p50_us"]
    out["reduction_vs_sequential"] = 1 - out.p50_us / out["keys"].map(seq)
    order = {m: i for i, m in enumerate(ROUND_TRIP_METHODS)}
    return out.sort_values(
        ["keys", "method"], key=lambda s: s.map(order) if s.name == "method" else s
    ).reset_index(drop=True)


# --- parallel vs sequential analysis steps --------------------------------------------------------
_STEPS = ("analysis.intent", "analysis.task_type", "analysis.entities")


def _steps_wall_ms(timeline: list[dict[str, Any]]) -> tuple[float, float]:
    spans = [s for s in timeline if s["name"] in _STEPS]
    if not spans:
        return math.nan, math.nan
    wall = max(s["end_ms"] for s in spans) - min(s["start_ms"] for s in spans)
    return wall, sum(s["duration_ms"] for s in spans)


def analysis_parallelism(
    stack: Stack,
    prompts: Sequence[str],
    *,
    repeats: int = 3,
    workspace: str = "test",
    simulated_io_ms: Sequence[float] = (20.0,),
) -> pd.DataFrame:
    """Sequential vs parallel (``asyncio.gather``) analysis steps: intent, task type, entities.

    ``variant == "pipeline"``: the real pipeline with ``parallel_analysis`` off/on (analysis
    cache off; embedding cache and L1 warm, so the steps are what differs); the time is the wall
    time from the first step's start to the last step's end (from the request's spans).
    ``variant == "io NN ms"``: the same three step functions, each preceded by an
    ``await asyncio.sleep(NN ms)`` standing for a remote call, the situation the guide's
    "3x faster" assumes. Modes alternate on every repeat.

    Returns
    -------
    DataFrame
        variant, mode (sequential / parallel), repeat, prompt, steps_ms, steps_sum_ms, analysis_ms.
    """
    from axon_lab.pipeline import analyzer

    async def go() -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        base = dict(
            analysis_cache=False,
            embedding_cache=True,
            l1_cache=True,
            l2_cache=False,
            llm=LLMOptions(mode="off"),
        )
        _flush(stack)
        pipes = {}
        async with contextlib.AsyncExitStack() as es:
            for mode, par in (("sequential", False), ("parallel", True)):
                pipes[mode] = await es.enter_async_context(
                    _pipeline(stack, PipelineOptions(parallel_analysis=par, **base))
                )
            for p in prompts:  # warm the embedding cache and both L1s
                for pipe in pipes.values():
                    await pipe.process(p, workspace, "parallel-analysis")
            for rep in range(repeats):
                order = ("sequential", "parallel") if rep % 2 == 0 else ("parallel", "sequential")
                for p in prompts:
                    for mode in order:
                        res = await pipes[mode].process(p, workspace, "parallel-analysis")
                        wall, total = _steps_wall_ms(res.timeline)
                        rows.append(
                            {
                                "variant": "pipeline",
                                "mode": mode,
                                "repeat": rep,
                                "prompt": p,
                                "steps_ms": wall,
                                "steps_sum_ms": total,
                                "analysis_ms": res.body["metadata"]["latency"].get("analysis"),
                            }
                        )
        vecs = {p: embeddings.embed_one(p) for p in prompts}
        for io_ms in simulated_io_ms:

            async def step(fn: Callable[..., Any], *args: Any, io_ms: float = io_ms) -> Any:
                await asyncio.sleep(io_ms / 1000)
                return fn(*args)

            for rep in range(repeats):
                for p in prompts:
                    calls: list[tuple[Any, ...]] = [
                        (analyzer.classify_intent, p, vecs[p]),
                        (analyzer.identify_task_type, p),
                        (analyzer.extract_entities, p, frozenset()),
                    ]
                    for mode in (
                        ("sequential", "parallel") if rep % 2 == 0 else ("parallel", "sequential")
                    ):
                        t0 = time.perf_counter_ns()
                        if mode == "parallel":
                            await asyncio.gather(*(step(*c) for c in calls))
                        else:
                            for c in calls:
                                await step(*c)
                        ms = (time.perf_counter_ns() - t0) / 1e6
                        rows.append(
                            {
                                "variant": f"io {io_ms:g} ms",
                                "mode": mode,
                                "repeat": rep,
                                "prompt": p,
                                "steps_ms": ms,
                                "steps_sum_ms": math.nan,
                                "analysis_ms": math.nan,
                            }
                        )
        return rows

    return pd.DataFrame(_run(go()))


def parallelism_summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per variant: sequential and parallel p50/p95 of the steps' wall time and the p50 speedup."""
    rows = []
    for variant, g in frame.groupby("variant", sort=False):
        s, p = g[g["mode"] == "sequential"].steps_ms, g[g["mode"] == "parallel"].steps_ms
        rows.append(
            {
                "variant": variant,
                "samples": len(s),
                "sequential_p50_ms": _pct(s, 50),
                "parallel_p50_ms": _pct(p, 50),
                "sequential_p95_ms": _pct(s, 95),
                "parallel_p95_ms": _pct(p, 95),
                "speedup": _pct(s, 50) / _pct(p, 50),
            }
        )
    return pd.DataFrame(rows)


# --- single vs batch embedding --------------------------------------------------------------------
def embedding_batching(
    texts: Sequence[str], *, batch_sizes: Sequence[int] = (1, 8, 32, 64), repeats: int = 1
) -> pd.DataFrame:
    """Embedding ``texts`` one at a time (the guide's "loop with await") vs in batches.

    Batch size 1 is a loop of :func:`axon_lab.embeddings.embed_one`; larger sizes call
    :func:`axon_lab.embeddings.embed` with that ``batch_size``. The model is warmed first.

    Returns
    -------
    DataFrame
        batch_size, repeat, texts, total_ms, ms_per_text, texts_per_s, speedup (vs batch 1, by
        the median total over repeats).
    """
    texts = list(texts)
    if not texts:
        raise ConfigError("embedding_batching needs at least one text")
    embeddings.embed(texts[:2])
    rows = []
    for rep in range(repeats):
        for b in batch_sizes:
            t0 = time.perf_counter_ns()
            if b == 1:
                for t in texts:
                    embeddings.embed_one(t)
            else:
                embeddings.embed(texts, batch_size=b)
            ms = (time.perf_counter_ns() - t0) / 1e6
            rows.append(
                {
                    "batch_size": b,
                    "repeat": rep,
                    "texts": len(texts),
                    "total_ms": ms,
                    "ms_per_text": ms / len(texts),
                    "texts_per_s": len(texts) / (ms / 1000),
                }
            )
    out = pd.DataFrame(rows)
    med = out.groupby("batch_size").total_ms.median()
    single = med.get(1, np.nan)
    out["speedup"] = single / out.batch_size.map(med)
    return out


# --- token counting: chars/4 vs tiktoken ---------------------------------------------------------
def token_counts(texts: Sequence[str]) -> pd.DataFrame:
    """Per text: characters, the tiktoken cl100k count (``cl100k``), the guide's ``ceil(len/4)``
    (``chars4``), and the error.

    ``rel_error = (chars4 - cl100k) / cl100k``: negative means chars/4 underestimates (a
    context budget computed with it would overflow). Column names avoid the word "token":
    :func:`axon_lab.redact.redact` masks values under keys that contain it.
    """
    rows = []
    for t in texts:
        tk = tokens.count_tiktoken(t)
        c4 = tokens.count_chars4(t)
        rows.append(
            {
                "chars": len(t),
                "cl100k": tk,
                "chars4": c4,
                "error": c4 - tk,
                "rel_error": (c4 - tk) / tk if tk else math.nan,
                "chars_per_cl100k": len(t) / tk if tk else math.nan,
            }
        )
    return pd.DataFrame(rows)


def token_error_summary(frame: pd.DataFrame) -> dict[str, Any]:
    """Distribution of chars/4's relative error: mean, median, p5, p95, within ±10%, underestimates."""
    e = frame.rel_error.dropna().to_numpy(dtype=float)
    tk, c4 = int(frame.cl100k.sum()), int(frame.chars4.sum())
    return {
        "texts": int(len(frame)),
        "mean_rel_error": float(e.mean()),
        "median_rel_error": float(np.median(e)),
        "p5_rel_error": float(np.percentile(e, 5)),
        "p95_rel_error": float(np.percentile(e, 95)),
        "mean_abs_rel_error": float(np.abs(e).mean()),
        "share_within_10pct": float((np.abs(e) <= 0.10).mean()),
        "share_underestimated": float((e < 0).mean()),
        "cl100k_total": tk,
        "chars4_total": c4,
        "total_rel_error": (c4 - tk) / tk if tk else None,
        "chars_per_cl100k": float(frame.chars.sum() / tk) if tk else None,
    }


def token_counting_cost(
    texts: Sequence[str], *, repeats: int = 3, encoder_load: bool = True
) -> pd.DataFrame:
    """Cost per text of each counter (µs), and tiktoken's encoder load time in a fresh process.

    The encoder load is what the guide's "cache encoder to avoid re-initialization" saves; it
    is timed in a new interpreter because this one already holds the cached encoder.
    """
    texts = list(texts)
    tokens.count_tiktoken("warm up")
    chars = sum(len(t) for t in texts)
    rows = []
    for name in ("chars4", "tiktoken"):
        fn = tokens.TOKEN_COUNTERS.get(name)
        us = _loop_us(fn, texts, repeats)
        rows.append(
            {
                "counter": name,
                "texts": len(texts),
                "us_per_text": us,
                "us_per_1k_chars": us * len(texts) / chars * 1000 if chars else math.nan,
                "encoder_load_ms": 0.0 if name == "chars4" else None,
            }
        )
    if encoder_load:
        code = (
            "import time, json; from axon_lab import tokens; t = time.perf_counter(); tokens.encoding(); "
            "print(json.dumps((time.perf_counter() - t) * 1000))"
        )
        res = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=120,
            env=child_env(),
        )
        if res.returncode == 0:
            rows[1]["encoder_load_ms"] = float(json.loads(res.stdout.strip().splitlines()[-1]))
    return pd.DataFrame(rows)
