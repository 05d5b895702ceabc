"""Embedding backends (real models, offline), the on-disk vector cache, build progress."""

from __future__ import annotations

import numpy as np
import pytest

from axon_lab import embeddings
from axon_lab.corpus import BuildProgress
from axon_lab.errors import ConfigError

TEXTS = [
    "How does the bisect module keep a list sorted?",
    "x",
    "Return a new list containing all items from the iterable in ascending order. A custom "
    "key function can be supplied to customize the sort order, and the reverse flag can be "
    "set to request the result in descending order.",
    "asyncio event loop: run_until_complete and the task scheduling it does",
    "The assert statement is a convenient way to insert debugging assertions into a program.",
]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1)


def test_onnx_backends_give_the_pytorch_vectors():
    ref = embeddings.embed(TEXTS, backend="torch")
    fp32 = embeddings.embed(TEXTS, backend="onnx")
    int8 = embeddings.embed(TEXTS, backend="onnx-int8")
    for v in (ref, fp32, int8):
        assert v.shape == (len(TEXTS), embeddings.DIM) and v.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert _cos(fp32, ref).min() > 0.9999  # the same model, exported
    assert _cos(int8, ref).min() > 0.97  # int8 weights: close, not equal
    # and still the nearest neighbour of each text among the others
    assert (np.argmax(int8 @ ref.T, axis=1) == np.arange(len(TEXTS))).all()


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_sorted_batches_keep_the_input_order(backend):
    batched = embeddings.embed(TEXTS, batch_size=2, backend=backend, sort=True)
    one_by_one = np.stack([embeddings.embed_one(t, backend) for t in TEXTS])
    assert _cos(batched, one_by_one).min() > 0.9999


@pytest.mark.parametrize("sort", [True, False])
def test_onnx_batches_of_equal_token_counts_give_each_text_its_own_vector(sort):
    """Many texts of one token count (batched together, on both cores) among others."""
    same = [f"cache entry {w} keeps the answer" for w in ("red", "blue", "green", "black", "white")]
    texts = [t for pair in zip(same * 2, TEXTS * 2, strict=True) for t in pair][::-1]
    enc = embeddings.model("onnx").tokenizer.encode_batch(same)
    assert len({len(e.ids) for e in enc}) == 1  # the case under test: one token count
    batched = embeddings.embed(texts, batch_size=3, backend="onnx", sort=sort)
    one_by_one = np.stack([embeddings.embed_one(t, "onnx") for t in texts])
    assert _cos(batched, one_by_one).min() > 0.9999
    assert _cos(batched[:1], batched[1:2])[0] < 0.99  # neighbours differ: rows not swapped


def test_unknown_backend_is_one_line_naming_the_choices():
    with pytest.raises(ConfigError) as err:
        embeddings.embed(["a"], backend="tensorflow")
    msg = str(err.value)
    assert "tensorflow" in msg and "onnx-int8" in msg and "\n" not in msg


def test_pipeline_options_validate_the_backend():
    from pydantic import ValidationError

    from axon_lab.pipeline import PipelineOptions

    assert PipelineOptions(embedding_backend="torch").embedding_backend == "torch"
    assert PipelineOptions().embedding_backend is None  # the lab's default
    with pytest.raises(ValidationError):
        PipelineOptions(embedding_backend="gpu")


def test_vector_cache_embeds_only_new_texts_and_survives_a_stop(tmp_path):
    cache = embeddings.VectorCache("onnx", tmp_path)
    calls = {"n": 0}

    def stop_after_first_chunk() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(InterruptedError):
        embeddings.embed_cached(
            TEXTS, backend="onnx", cache=cache, chunk=2, should_stop=stop_after_first_chunk
        )
    parts = list(cache.dir.glob("part-*.npz"))
    assert len(parts) == 1 and not list(cache.dir.glob(".*tmp"))  # one finished part, no debris

    fresh = embeddings.VectorCache("onnx", tmp_path)  # a new process reads it from disk
    assert len(fresh) == 2
    seen: list[tuple[int, int]] = []
    vecs, hits = embeddings.embed_cached(
        TEXTS,
        backend="onnx",
        cache=fresh,
        chunk=2,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert hits == 2 and seen[0] == (2, 5) and seen[-1] == (5, 5)
    direct = embeddings.embed(TEXTS, backend="onnx")
    assert _cos(vecs, direct).min() > 0.9999
    again, hits = embeddings.embed_cached(TEXTS, backend="onnx", cache=fresh)
    assert hits == len(TEXTS) and np.array_equal(again, vecs)
    # another backend never reads these vectors
    assert len(embeddings.VectorCache("onnx-int8", tmp_path)) == 0


def test_vector_cache_skips_a_damaged_part_and_compacts(tmp_path):
    cache = embeddings.VectorCache("onnx", tmp_path)
    for i in range(5):
        v = np.full((1, embeddings.DIM), i, dtype=np.float32)
        cache.add([embeddings.text_key(f"t{i}")], v)
    (cache.dir / "part-0-damaged.npz").write_bytes(b"not a zip")
    reread = embeddings.VectorCache("onnx", tmp_path)
    got, missing = reread.get([embeddings.text_key(f"t{i}") for i in range(6)])
    assert missing == [5] and got[3, 0] == 3.0
    reread.compact(max_parts=2)
    assert len(list(reread.dir.glob("part-*.npz"))) == 1
    assert len(embeddings.VectorCache("onnx", tmp_path)) == 5


def test_build_progress_reports_rate_and_eta():
    p = BuildProgress()
    p.update(100, 1000)  # 100 came from the cache
    snap = p.snapshot()
    assert snap["done"] == 100 and snap["cached"] == 100 and snap["percent"] == 10.0
    assert snap["texts_per_s"] is None and snap["eta_s"] is None  # nothing computed yet
    p._embed_started -= 10.0  # ten seconds later...
    p.update(600, 1000)  # ...500 texts computed
    snap = p.snapshot()
    assert snap["texts_per_s"] == pytest.approx(50.0, rel=0.05)
    assert snap["eta_s"] == pytest.approx(8.0, rel=0.05)
