"""``PipelineOptions``: the guide's optimisation knobs, so before/after experiments are data."""

from __future__ import annotations

import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LLMOptions(BaseModel):
    """The LLM stage. ``simulated``: a seeded log-normal latency (no CPU used, like a remote
    call); ``openai``: a real OpenAI-compatible endpoint (``AXON_LLM_URL``); ``off``: skipped,
    to measure pipeline overhead alone."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Literal["simulated", "openai", "off"] = "simulated"
    median_ms: float = Field(800.0, gt=0, description="median latency of the simulated LLM (p95 ~ 1.4 s)")
    sigma: float = Field(0.35, ge=0, le=3, description="log-normal shape (p95 = median*exp(1.645*sigma))")
    per_output_token_ms: float = Field(0.0, ge=0, description="extra latency per generated token")
    output_tokens: int = Field(120, ge=1, le=4096)
    seed: int = 0
    timeout_s: float = Field(30.0, gt=0)


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
    context_cache_ttl_s: int = Field(3600, ge=1, description="guide: 300 s (before) vs 3600 s (after)")
    embedding_cache: bool = Field(True, description="cache query embeddings in Redis (24 h)")
    embedding_cache_ttl_s: int = Field(86_400, ge=1)
    serialization: Literal["json", "msgpack"] = Field("msgpack", description="embedding cache encoding")
    projection: bool = Field(True, description="fetch only content/metadata/confidence from MongoDB")
    batch_embedding: bool = Field(True, description="embed re-rank candidates in one batch")
    rerank: Literal["score", "embedding"] = Field(
        "score", description="score: vector score x confidence x tier; embedding: re-embed candidates")
    search_limit: int = Field(20, ge=1, le=200)
    hnsw_ef: int | None = Field(128, ge=1, description="Qdrant search ef (None = server default)")
    exact_search: bool = False
    top_k: int = Field(8, ge=1, le=100, description="contexts kept after re-ranking")
    token_counter: Literal["tiktoken", "chars4"] = "tiktoken"
    context_token_budget: int = Field(1500, ge=1)
    vector_timeout_s: float = Field(2.0, gt=0)
    document_timeout_s: float = Field(2.0, gt=0)
    llm: LLMOptions = Field(default_factory=LLMOptions)

    @field_validator("hnsw_ef")
    @classmethod
    def _ef_vs_limit(cls, v: int | None, info) -> int | None:  # noqa: ANN001
        limit = info.data.get("search_limit", 20)
        if v is not None and v < limit:
            raise ValueError(f"hnsw_ef ({v}) must be >= search_limit ({limit})")
        return v

    @classmethod
    def baseline(cls, **overrides: object) -> PipelineOptions:
        """The guide's "before": sequential analysis, no caches, no projection, JSON, chars/4."""
        base = dict(parallel_analysis=False, analysis_cache=False, l1_cache=False, l2_cache=False,
                    embedding_cache=False, serialization="json", projection=False,
                    batch_embedding=False, token_counter="chars4", context_cache_ttl_s=300)
        base.update(overrides)
        return cls(**base)  # type: ignore[arg-type]

    def fingerprint(self) -> str:
        """Short hash of the options that change retrieved contexts (part of cache keys)."""
        keys = ("search_limit", "hnsw_ef", "exact_search", "top_k", "rerank", "projection")
        blob = json.dumps({k: getattr(self, k) for k in keys}, sort_keys=True)
        return hashlib.sha1(blob.encode()).hexdigest()[:10]
