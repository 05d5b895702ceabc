"""The Axon pipeline (stages, knobs): ``Pipeline`` over a ``Stack``, configured by ``PipelineOptions``."""

from __future__ import annotations

from axon_lab.pipeline.core import (
    MAX_PROMPT_CHARS,
    STREAM_LATENCY_KEYS,
    Pipeline,
    PromptTooLarge,
    StageResult,
    check_prompt,
    chunk_offsets_ms,
    decode,
    encode,
    split_chunks,
    stream_error_message,
    stream_event,
)
from axon_lab.pipeline.options import LLMOptions, PipelineOptions

__all__ = [
    "LLMOptions",
    "MAX_PROMPT_CHARS",
    "STREAM_LATENCY_KEYS",
    "Pipeline",
    "PipelineOptions",
    "PromptTooLarge",
    "StageResult",
    "check_prompt",
    "chunk_offsets_ms",
    "decode",
    "encode",
    "split_chunks",
    "stream_error_message",
    "stream_event",
]
