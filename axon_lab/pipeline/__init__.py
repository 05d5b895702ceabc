"""The Axon pipeline (stages, knobs): ``Pipeline`` over a ``Stack``, configured by ``PipelineOptions``."""

from __future__ import annotations

from axon_lab.pipeline.core import (
    MAX_PROMPT_CHARS,
    Pipeline,
    PromptTooLarge,
    StageResult,
    decode,
    encode,
)
from axon_lab.pipeline.options import LLMOptions, PipelineOptions

__all__ = [
    "LLMOptions",
    "MAX_PROMPT_CHARS",
    "Pipeline",
    "PipelineOptions",
    "PromptTooLarge",
    "StageResult",
    "decode",
    "encode",
]
