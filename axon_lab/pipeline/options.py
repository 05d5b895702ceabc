"""``PipelineOptions``: the guide's optimisation knobs, so before/after experiments are data."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LLMOptions(BaseModel):
    """The LLM stage. ``simulated``: a seeded log-normal latency (no CPU used, like a remote
    call); ``openai``: a real OpenAI-compatible endpoint (``AXON_LLM_URL``); ``off``: skipped,
    to measure pipeline overhead alone.

    Streaming (``"stream": true`` requests, ``Pipeline.process_stream``): the simulated LLM
    splits its text into at most ``stream_chunks`` pieces at word boundaries; the first arrives
    after ``ttft_share`` of the drawn latency (time to first token), the others evenly over
    the rest, the last one exactly at the drawn latency, so a streamed request takes as long as
    a non-streamed one with the same draw. These two fields change nothing without streaming.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["simulated", "openai", "off"] = "simulated"
    median_ms: float = Field(
        800.0, gt=0, description="median latency of the simulated LLM (p95 ~ 1.4 s)"
    )
    sigma: float = Field(
        0.35, ge=0, le=3, description="log-normal shape (p95 = median*exp(1.645*sigma))"
    )
    per_output_token_ms: float = Field(0.0, ge=0, description="extra latency per generated token")
    output_tokens: int = Field(120, ge=1, le=4096)
    seed: int = 0
    timeout_s: float = Field(30.0, gt=0)
    stream_chunks: int = Field(
        20,
        ge=1,
        le=4096,
        description="streaming, simulated LLM: at most this many llm-chunk events "
        "(fewer when the text has fewer words)",
    )
    ttft_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="streaming, simulated LLM: share of the drawn latency before the first "
        "chunk (time to first token); the rest is spread evenly over the other chunks",
    )


class PipelineOptions(BaseModel):
    """Every knob the guide discusses; defaults are the guide's "after" (optimised) state.

    Use :meth:`baseline` for the guide's "before" state.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    parallel_analysis: bool = Field(True, description="intent / task type / entities concurrently")
    analysis_cache: bool = Field(True, description="cache analysis results in Redis (1 h)")
    analysis_cache_ttl_s: int = Field(3600, ge=1)
    l1_cache: bool = Field(True, description="in-memory LRU for retrieved contexts")
    l1_max_entries: int = Field(100, ge=1)
    l1_ttl_s: float = Field(60.0, gt=0)
    l2_cache: bool = Field(True, description="Redis cache for retrieved contexts")
    context_cache_ttl_s: int = Field(
        3600, ge=1, description="guide: 300 s (before) vs 3600 s (after)"
    )
    embedding_cache: bool = Field(True, description="cache query embeddings in Redis (24 h)")
    embedding_cache_ttl_s: int = Field(86_400, ge=1)
    serialization: Literal["json", "msgpack"] = Field(
        "msgpack", description="embedding cache encoding"
    )
    coalesce: bool = Field(
        True,
        description="concurrent identical cache misses share one embedding "
        "and one store retrieval (no cache stampede)",
    )
    projection: bool = Field(
        True, description="fetch only content/metadata/confidence from MongoDB"
    )
    batch_embedding: bool = Field(True, description="embed re-rank candidates in one batch")
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] | None = Field(
        None,
        description="torch (eager PyTorch fp32), onnx (ONNX Runtime fp32), onnx-int8 (int8 "
        "weights); None = the lab's default (AXON_EMBEDDING_BACKEND)",
    )
    rerank: Literal["score", "embedding"] = Field(
        "score",
        description="score: vector score x confidence x tier; embedding: re-embed candidates",
    )
    search_limit: int = Field(20, ge=1, le=200)
    hnsw_ef: int | None = Field(128, ge=1, description="Qdrant search ef (None = server default)")
    exact_search: bool = False
    top_k: int = Field(8, ge=1, le=100, description="contexts kept after re-ranking")
    token_counter: Literal["tiktoken", "chars4"] = "tiktoken"
    context_token_budget: int = Field(1500, ge=1)
    # -- reliability: per-backend timeouts and retries, circuit breaker, in-flight bound ----------
    vector_timeout_s: float = Field(2.0, gt=0, description="vector search: timeout per attempt")
    vector_retries: int = Field(
        1, ge=0, le=5, description="vector search: extra attempts after an error or timeout"
    )
    document_timeout_s: float = Field(2.0, gt=0, description="document fetch: timeout per attempt")
    document_retries: int = Field(
        1, ge=0, le=5, description="document fetch: extra attempts after an error or timeout"
    )
    redis_timeout_s: float = Field(
        0.25, gt=0, le=30, description="Redis: socket timeout per command"
    )
    redis_retries: int = Field(
        0, ge=0, le=3, description="Redis: extra attempts (a cache miss is cheaper than a retry)"
    )
    retry_backoff_s: float = Field(
        0.05, ge=0, le=10, description="wait before retry n is n times this"
    )
    breaker_failures: int = Field(
        5, ge=1, le=1000, description="consecutive failures that open a store's circuit"
    )
    breaker_cooldown_s: float = Field(
        1.0, gt=0, le=300, description="an open circuit fails fast this long, then one probe call"
    )
    backend_max_inflight: int = Field(
        8,
        ge=1,
        le=64,
        description="store calls in flight per backend; beyond that fail fast (a hung store cannot take every thread)",
    )
    llm: LLMOptions = Field(default_factory=LLMOptions)

    @field_validator("hnsw_ef")
    @classmethod
    def _ef_vs_limit(cls, v: int | None, info) -> int | None:
        limit = info.data.get("search_limit", 20)
        if v is not None and v < limit:
            raise ValueError(f"hnsw_ef ({v}) must be >= search_limit ({limit})")
        return v

    @classmethod
    def baseline(cls, **overrides: object) -> PipelineOptions:
        """The guide's "before": sequential analysis, no caches, no projection, JSON, chars/4,
        no request coalescing.
        """
        base = dict(
            parallel_analysis=False,
            analysis_cache=False,
            l1_cache=False,
            l2_cache=False,
            embedding_cache=False,
            serialization="json",
            projection=False,
            batch_embedding=False,
            token_counter="chars4",
            context_cache_ttl_s=300,
            coalesce=False,
        )
        base.update(overrides)
        return cls(**base)

    def backend_policies(self) -> dict[str, dict[str, object]]:
        """Timeouts, retries and the worst-case time to an answer per backend (``/metrics``).

        ``deadline_s`` bounds how long a request can wait on the backend before it gets its
        answer or a 503: every attempt timing out plus the backoff between attempts. Redis
        failures are never errors: the request goes on without the cache (``on_failure``).
        """

        def policy(timeout: float, retries: int, on_failure: str) -> dict[str, object]:
            backoff = self.retry_backoff_s * retries * (retries + 1) / 2
            return {
                "timeout_s": timeout,
                "retries": retries,
                "retry_backoff_s": self.retry_backoff_s,
                "deadline_s": round(timeout * (retries + 1) + backoff, 3),
                "breaker_failures": self.breaker_failures,
                "breaker_cooldown_s": self.breaker_cooldown_s,
                "max_inflight": self.backend_max_inflight,
                "on_failure": on_failure,
            }

        return {
            "redis": {
                **policy(
                    self.redis_timeout_s, self.redis_retries, "degrade: serve without the cache"
                ),
                "breaker_failures": 1,
                "max_inflight": None,
            },
            "qdrant": policy(self.vector_timeout_s, self.vector_retries, "503 naming the backend"),
            "mongodb": policy(
                self.document_timeout_s, self.document_retries, "503 naming the backend"
            ),
        }

    def fingerprint(self) -> str:
        """Short hash of the options that change retrieved contexts (part of cache keys)."""
        keys = ("search_limit", "hnsw_ef", "exact_search", "top_k", "rerank", "projection")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]
