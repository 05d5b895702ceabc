"""``bench_pipeline``: per-stage latency of the embedded Axon, through its HTTP handlers, in-process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import psutil

from axon_lab import workload
from axon_lab.config import Settings, get_settings
from axon_lab.pipeline import LLMOptions, PipelineOptions


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "p99": None, "max": None}
    a = np.asarray(values, dtype=float)
    # Percentiles: linear interpolation between closest ranks (numpy's default, type 7).
    return {
        "count": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "max": float(a.max()),
    }


@contextlib.asynccontextmanager
async def _in_process_api(
    settings: Settings, options: PipelineOptions, *, timeout_s: float = 5.0
) -> AsyncIterator[tuple[Any, Any]]:
    """The embedded API app (started: lifespan run) and an httpx client calling its handlers."""
    import httpx

    from axon_lab.api.app import create_app

    app = create_app(settings, options)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://axon.local", timeout=timeout_s
        ) as client:
            yield app, client


async def _bench(
    settings: Settings,
    options: PipelineOptions,
    requests: int,
    health_requests: int,
    workspace: str,
) -> dict[str, Any]:
    proc = psutil.Process(os.getpid())
    async with _in_process_api(settings, options) as (_, client):
        idle_rss = proc.memory_info().rss
        health = []
        for _ in range(health_requests):
            t0 = time.perf_counter()
            r = await client.get("/health")
            health.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
        phases: dict[str, dict[str, list[float]]] = {}
        statuses: dict[int, int] = {}
        cache_results: dict[str, dict[str, int]] = {}
        # cold: every prompt distinct (all caches miss); warm: the same prompts again.
        bodies = workload.prompt_bodies(
            workload.distinct_prompts(requests), workspace, source="bench"
        )
        for phase in ("cold", "warm"):
            per: dict[str, list[float]] = {}
            for body in bodies:
                r = await client.post("/api/v1/prompts/process", json=body)
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code != 200:
                    continue
                meta = r.json()["metadata"]
                for stage, ms in meta["latency"].items():
                    per.setdefault(stage, []).append(ms)
                for c, res in meta["cache"].items():
                    d = cache_results.setdefault(f"{phase}.{c}", {})
                    d[res] = d.get(res, 0) + 1
            phases[phase] = per
        load_rss = proc.memory_info().rss
    stages = {phase: {k: _stats(v) for k, v in per.items()} for phase, per in phases.items()}
    overhead = {}
    for phase, per in phases.items():
        total, llm = (
            np.asarray(per.get("total", [])),
            np.asarray(per.get("llm", [0.0] * len(per.get("total", [])))),
        )
        if total.size:
            overhead[phase] = _stats(list(total - llm))
    return {
        "requests": requests,
        "workspace": workspace,
        "llm": options.llm.mode,
        "health_ms": _stats(health),
        "stages_ms": stages,
        "overhead_without_llm_ms": overhead,
        "status_counts": statuses,
        "cache": cache_results,
        "rss_mb": {"idle": round(idle_rss / 2**20, 1), "after_load": round(load_rss / 2**20, 1)},
    }


def bench_pipeline(
    *,
    requests: int = 50,
    llm: str = "off",
    health_requests: int = 200,
    workspace: str = "test",
    options: PipelineOptions | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Run ``requests`` distinct prompts (cold) then the same again (warm) through the API handlers.

    Returns per-stage count/mean/p50/p95/p99/max in ms, the pipeline overhead without the LLM
    stage, /health latency, and RSS idle vs after load (MB).
    """
    if requests < 1:
        from axon_lab.errors import ConfigError

        raise ConfigError(f"--requests must be >= 1, got {requests}")
    options = options or PipelineOptions()
    options = options.model_copy(
        update={"llm": LLMOptions(**{**options.llm.model_dump(), "mode": llm})}
    )
    return asyncio.run(
        _bench(settings or get_settings(), options, requests, health_requests, workspace)
    )


async def _bench_burst(
    settings: Settings, options: PipelineOptions, size: int, bursts: int, workspace: str
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    prompts = workload.distinct_prompts(bursts)
    # A burst queues its requests behind one another's embeddings: allow for it.
    async with _in_process_api(settings, options, timeout_s=120.0) as (app, client):
        for coalesce in (False, True):
            app.state.pipeline.set_options(options.model_copy(update={"coalesce": coalesce}))
            walls: list[float] = []
            computed = {"embedding": 0, "context": 0}
            outcomes: dict[str, dict[str, int]] = {}
            statuses: dict[int, int] = {}
            # A new prompt per burst (the caches miss), sent `size` times at once.
            bodies = workload.prompt_bodies(
                [f"{p} [burst coalesce={coalesce}]" for p in prompts], workspace, source="bench"
            )
            for body in bodies:
                t0 = time.perf_counter()
                rs = await asyncio.gather(
                    *(client.post("/api/v1/prompts/process", json=body) for _ in range(size))
                )
                walls.append((time.perf_counter() - t0) * 1000)
                for r in rs:
                    statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                    if r.status_code != 200:
                        continue
                    for c, res in r.json()["metadata"]["cache"].items():
                        d = outcomes.setdefault(c, {})
                        d[res] = d.get(res, 0) + 1
                        if c in computed and res in ("miss", "off", "degraded"):
                            computed[c] += 1
            out["coalesce" if coalesce else "no_coalesce"] = {
                "burst_ms": _stats(walls),
                "status_counts": statuses,
                "cache": outcomes,
                "embeddings_per_burst": computed["embedding"] / bursts,
                "retrievals_per_burst": computed["context"] / bursts,
            }
    return {"size": size, "bursts": bursts, "workspace": workspace, "llm": options.llm.mode, **out}


def bench_burst(
    *,
    size: int = 10,
    bursts: int = 10,
    llm: str = "off",
    workspace: str = "test",
    options: PipelineOptions | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Cache stampede: ``bursts`` times, ``size`` identical new prompts at once, without and with
    request coalescing. Returns per mode the burst wall time (ms) and how many embeddings and
    store retrievals each burst computed (``size`` without coalescing, 1 with it).
    """
    from axon_lab.errors import ConfigError

    if size < 1 or bursts < 1:
        raise ConfigError(f"--size and --bursts must be >= 1, got {size} and {bursts}")
    options = options or PipelineOptions()
    options = options.model_copy(
        update={"llm": LLMOptions(**{**options.llm.model_dump(), "mode": llm})}
    )
    return asyncio.run(_bench_burst(settings or get_settings(), options, size, bursts, workspace))


def bench_embeddings(
    *,
    limit: int | None = None,
    backends: tuple[str, ...] = ("torch", "onnx", "onnx-int8"),
    batch_sizes: tuple[int, ...] = (1, 8, 32),
    throughput_texts: int = 1000,
    queries: int | None = None,
    latency_queries: int = 200,
    k: int = 10,
    settings: Settings | None = None,
    on_status: Any = None,
) -> dict[str, Any]:
    """The embedding backends side by side: speed and, against PyTorch fp32, the same answers.

    - throughput: texts/s on ``throughput_texts`` corpus chunks for every backend, batch size
      and batch order (``sorted``: texts of like length together: PyTorch sorts by length,
      ONNX batches texts of one token count, unpadded; ``input``: in corpus order, padded),
      after a warm-up; the model load is not timed;
    - query latency: one prompt at a time (the request path; the workload's prompts), and one
      held-out chunk at a time (up to 320 characters), p50/p95 in ms;
    - quality: every corpus chunk and held-out query embedded with each backend (vectors from
      the on-disk cache where present), exact top-``k`` neighbours of each query, and their
      overlap with the top-``k`` that PyTorch fp32 vectors give (recall@k, mean over queries).

    ``limit`` takes a sample of the corpus (``None``: all of it, 831 held-out queries).
    """
    from axon_lab import corpus, embeddings

    s = settings or get_settings()
    say = on_status or (lambda msg: None)
    df = corpus.build_frame(limit)
    docs = df[df.split == "corpus"]["content"].tolist()
    held = df[df.split == "heldout"]["content"].tolist()
    if queries is not None:
        held = held[:queries]
    sample = docs[:throughput_texts]
    prompts = workload.distinct_prompts(latency_queries)
    out: dict[str, Any] = {
        "corpus_texts": len(docs),
        "queries": len(held),
        "k": k,
        "throughput_texts": len(sample),
        "cores": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "backends": {},
    }
    neighbours: dict[str, np.ndarray] = {}
    for b in (b for b in ("torch", *backends) if b in embeddings.BACKENDS):
        if b in out["backends"]:
            continue
        say(f"{b}: loading")
        t0 = time.perf_counter()
        m = embeddings.model(b)
        row: dict[str, Any] = {"load_s": round(time.perf_counter() - t0, 2), "throughput": []}
        m.encode(sample[:16], 8)  # warm-up
        if b in backends:
            for bs in batch_sizes:
                for order in ("sorted", "input"):
                    if bs == 1 and order == "input":
                        continue  # the same thing for single texts
                    say(f"{b}: {len(sample)} texts, batch {bs}, {order} order")
                    t1 = time.perf_counter()
                    m.encode(sample, bs, sort=order == "sorted")
                    dt = time.perf_counter() - t1
                    row["throughput"].append(
                        {
                            "batch_size": bs,
                            "order": order,
                            "texts_per_s": round(len(sample) / dt, 1),
                        }
                    )
            # the request path: one prompt at a time (the workload's prompts), and one held-out
            # chunk at a time (longer texts: up to 320 characters)
            for key, texts in (("query_ms", prompts), ("chunk_ms", held[:latency_queries])):
                lat = []
                for q in texts:
                    t1 = time.perf_counter()
                    m.encode([q], 1)
                    lat.append((time.perf_counter() - t1) * 1000)
                st = _stats(lat)
                row[key] = {"p50": st["p50"], "p95": st["p95"], "count": st["count"]}
        say(f"{b}: embedding {len(docs)} corpus texts for the quality check (cached ones reused)")
        cache = embeddings.VectorCache(embeddings.check_backend(b), s.cache_dir)
        dvec, hits = embeddings.embed_cached(docs, backend=b, cache=cache)
        row["corpus_vectors_from_cache"] = hits
        qvec = np.stack([m.encode([q], 1)[0] for q in held])  # one at a time, as a request does
        sims = qvec @ dvec.T
        neighbours[b] = np.argsort(-sims, axis=1)[:, :k]
        out["backends"][b] = row
    ref = neighbours["torch"]
    for name, nn in neighbours.items():
        overlap = [len(set(a) & set(r)) / k for a, r in zip(nn, ref, strict=True)]
        out["backends"][name]["recall_at_k_vs_torch"] = round(float(np.mean(overlap)), 4)
        out["backends"][name]["min_query_overlap"] = round(float(np.min(overlap)), 2)
    for row in out["backends"].values():
        if row["throughput"]:
            best = max(row["throughput"], key=lambda r: r["texts_per_s"])
            row["best"] = best
            row["full_corpus_build_s"] = round((len(docs) + len(held)) / best["texts_per_s"], 1)
    return out
