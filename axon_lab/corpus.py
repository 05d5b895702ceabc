"""The context corpus: real offline text (the Python standard library), chunked,
assigned to workspaces, embedded with all-MiniLM-L6-v2 and loaded with batch upserts.

Sources: every module/class/function docstring, every block comment of two or more lines,
and the language-reference topics of ``pydoc_data`` (the text of ``help()``).

Deterministic: the same Python version gives the same chunks, ids and assignments (hashes,
never random state). Artefacts go under ``<data_dir>/corpus/`` (git-ignored); the committed
``data/corpus-manifest.json`` describes a full build.

Workspaces (share of chunks, so filtered search can be studied at several selectivities):
``test`` ~68% (the guide's ``workspaceId``; > 10k contexts), ``acme-analytics`` ~13%,
``acme-platform`` ~10%, ``acme-docs`` ~8%, ``acme-tiny`` ~1%. About 5% of chunks are held out (``split ==
"heldout"``): real texts that are not corpus members, used as queries for recall studies.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import logging
import os
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from axon_lab import jsonutil
from axon_lab.config import Settings, get_settings
from axon_lab.errors import InputFileError

WORKSPACES: dict[str, float] = {
    "test": 0.68,
    "acme-analytics": 0.13,
    "acme-platform": 0.10,
    "acme-docs": 0.08,
    "acme-tiny": 0.01,
}
TIERS: dict[str, float] = {"workspace": 0.5, "project": 0.3, "global": 0.2}
HELDOUT_SHARE = 0.05
CHUNK_CHARS = 320
MIN_CHARS = 60
SCHEMA_VERSION = 1
log = logging.getLogger("axon_lab.corpus")
_SKIP_DIRS = {"site-packages", "dist-packages", "idlelib", "turtledemo", "__pycache__", "lib2to3"}


def _h(*parts: object) -> float:
    """A stable fraction in [0, 1) from the parts (sha1; not Python's salted hash)."""
    d = hashlib.sha1("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(d[:8], "big") / 2**64


def _pick(frac: float, weights: dict[str, float]) -> str:
    acc = 0.0
    for name, w in weights.items():
        acc += w
        if frac < acc:
            return name
    return next(reversed(weights))


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _iter_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for f in sorted(filenames):
            if f.endswith(".py"):
                yield Path(dirpath) / f


def _chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split on paragraphs, packing them up to ``size`` chars (long paragraphs are cut on words)."""
    paras = [p.strip() for p in text.split("\n\n") if p.strip()]
    out: list[str] = []
    cur = ""
    for p in paras:
        while len(p) > size:
            cut = p.rfind(" ", 0, size)
            cut = cut if cut > size // 2 else size
            if cur:
                out.append(cur)
                cur = ""
            out.append(p[:cut].strip())
            p = p[cut:].strip()
        if cur and len(cur) + 2 + len(p) > size:
            out.append(cur)
            cur = p
        else:
            cur = f"{cur}\n\n{p}" if cur else p
    if cur:
        out.append(cur)
    return [c for c in out if len(c) >= MIN_CHARS]


def _comment_blocks(text: str) -> Iterator[tuple[int, str]]:
    """Runs of two or more ``#`` comment lines that read as prose (line number, text)."""
    block: list[str] = []
    start = 0
    for n, line in enumerate([*text.splitlines(), ""], 1):
        s = line.strip()
        if s.startswith("#") and not s.startswith("#!") and "coding" not in s[:20]:
            if not block:
                start = n
            block.append(s.lstrip("#").strip())
            continue
        if len(block) >= 2:
            txt = " ".join(b for b in block if b)
            if len(txt) >= 120 and sum(c.isalpha() for c in txt) > 0.6 * len(txt):
                yield start, txt
        block = []


def iter_texts(root: Path | None = None) -> Iterator[dict[str, Any]]:
    """Every text of the corpus sources, in a stable order (path, module, qualname, kind, lineno, text)."""
    root = root or stdlib_root()
    for path in _iter_files(root):
        rel = path.relative_to(root).as_posix()
        source = path.read_text(encoding="utf-8", errors="replace")
        module = rel[:-3].replace("/", ".").removesuffix(".__init__")
        if rel == "pydoc_data/topics.py":
            from pydoc_data.topics import topics

            for name in sorted(topics):
                yield {
                    "path": rel,
                    "module": "reference",
                    "qualname": name,
                    "kind": "reference",
                    "lineno": 1,
                    "text": topics[name],
                }
            continue
        try:
            tree = ast.parse(source)
        except (SyntaxError, ValueError):
            continue
        stack: list[tuple[ast.AST, str]] = [(tree, "")]
        while stack:
            node, prefix = stack.pop(0)
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    stack.append((child, f"{prefix}{child.name}."))
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                kind = {ast.Module: "module", ast.ClassDef: "class"}.get(type(node), "function")
                yield {
                    "path": rel,
                    "module": module,
                    "qualname": prefix.rstrip(".") or module,
                    "kind": kind,
                    "lineno": getattr(node, "lineno", 1),
                    "text": doc,
                }
        for lineno, txt in _comment_blocks(source):
            yield {
                "path": rel,
                "module": module,
                "qualname": f"{module}:{lineno}",
                "kind": "comment",
                "lineno": lineno,
                "text": txt,
            }


def build_frame(limit: int | None = None, root: Path | None = None) -> pd.DataFrame:
    """All chunks as a frame (no embeddings): id, split, workspaceId, tier, confidence, content, metadata.

    ``limit`` keeps a deterministic, representative sample of ``limit`` corpus chunks (ranked
    by a hash), plus held-out chunks in proportion; ids are those of the full corpus.
    """
    df = _full_frame(str(root or stdlib_root())).copy()
    if limit is not None:
        corpus = df[df.split == "corpus"].nsmallest(limit, "_rank")
        held = df[df.split == "heldout"].nsmallest(max(1, int(limit * HELDOUT_SHARE)), "_rank")
        df = pd.concat([corpus, held]).sort_values("id")
    return df.drop(columns="_rank").reset_index(drop=True)


@lru_cache(maxsize=2)
def _full_frame(root: str) -> pd.DataFrame:
    """Chunk every source text once per process (parsing the standard library takes seconds)."""
    rows = []
    for d in iter_texts(Path(root)):
        for i, chunk in enumerate(_chunks(d["text"])):
            heading = {
                "module": d["module"],
                "reference": f"Python reference: {d['qualname']}",
                "comment": f"{d['module']} (comment)",
            }.get(d["kind"], f"{d['module']}.{d['qualname']}")
            content = f"{heading}: {chunk}" if i == 0 else chunk
            rows.append(
                {
                    "content": content,
                    "workspaceId": _pick(_h("ws", d["path"], d["qualname"], i), WORKSPACES),
                    "tier": _pick(_h("tier", d["path"], d["qualname"], i), TIERS),
                    "confidence": round(0.3 + 0.7 * _h("conf", d["path"], d["qualname"], i), 3),
                    "split": "heldout"
                    if _h("split", d["path"], d["qualname"], i) < HELDOUT_SHARE
                    else "corpus",
                    "metadata": json.dumps(
                        {
                            "source": "python-stdlib",
                            "path": d["path"],
                            "module": d["module"],
                            "qualname": d["qualname"],
                            "kind": d["kind"],
                            "lineno": d["lineno"],
                            "chunk": i,
                        },
                        sort_keys=True,
                    ),
                    "_rank": _h("rank", d["path"], d["qualname"], i),
                }
            )
    df = pd.DataFrame(rows)
    df.insert(0, "id", np.arange(len(df), dtype=np.int64))
    return df


@dataclass
class CorpusPaths:
    """Where the built corpus artefacts live under a data dir."""

    root: Path

    @property
    def contexts(self) -> Path:
        return self.root / "contexts.parquet"

    @property
    def build_info(self) -> Path:
        return self.root / "build.json"


def paths(settings: Settings | None = None, limit: int | None = None) -> CorpusPaths:
    s = settings or get_settings()
    name = "full" if limit is None else f"limit-{limit}"
    return CorpusPaths(s.data_dir / "corpus" / name)


def fingerprint(df: pd.DataFrame) -> str:
    """Content hash of the corpus (ids, assignments, texts)."""
    h = hashlib.sha256()
    for col in ("id", "workspaceId", "tier", "confidence", "split", "content"):
        h.update(pd.util.hash_pandas_object(df[col], index=False).values.tobytes())
    return h.hexdigest()[:16]


class BuildProgress:
    """What a corpus build is doing, for a terminal bar, a notebook widget, a server log and
    ``/health``: stage, texts ready of total, texts/s and an ETA (thread-safe snapshot).
    """

    def __init__(self, *, log_every_s: float = 5.0, bar: bool = False) -> None:
        self.stage = "starting"
        self.phase = "building"  # then "loading" (filling the stores)
        self.total = 0
        self.done = 0
        self.cached = 0
        self.started = time.monotonic()
        self._embed_started: float | None = None
        self._embed_base = 0
        self._log_every_s = log_every_s
        self._last_log = 0.0
        self._bar_wanted = bar
        self._bar: Any = None
        self._lock = threading.Lock()

    def set_stage(self, stage: str) -> None:
        with self._lock:
            self.stage = stage
        log.info("corpus: %s", stage)

    def update(self, done: int, total: int) -> None:
        """Called by the embedder with texts ready (cached ones count at once)."""
        with self._lock:
            if self._embed_started is None:
                self._embed_started, self._embed_base, self.cached = time.monotonic(), done, done
            self.done, self.total, self.stage = done, total, "embedding"
        if self._bar_wanted:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(
                    total=total,
                    initial=done,
                    unit="text",
                    desc="embedding corpus",
                    smoothing=0.1,
                    dynamic_ncols=True,
                )
            else:
                self._bar.update(done - self._bar.n)
        now = time.monotonic()
        if self._bar is None and (now - self._last_log >= self._log_every_s or done >= total):
            self._last_log = now
            snap = self.snapshot()
            log.warning(
                "corpus: embedded %d/%d texts (%d from the cache), %s texts/s, ETA %s",
                snap["done"],
                snap["total"],
                snap["cached"],
                snap["texts_per_s"] if snap["texts_per_s"] is not None else "-",
                _eta_text(snap["eta_s"]),
            )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def snapshot(self) -> dict[str, Any]:
        """``{stage, done, total, cached, percent, texts_per_s, eta_s, elapsed_s}``."""
        with self._lock:
            rate = eta = None
            if self._embed_started is not None:
                dt = time.monotonic() - self._embed_started
                computed = self.done - self._embed_base
                if dt > 0.5 and computed > 0:
                    rate = computed / dt
                    eta = (self.total - self.done) / rate
            return {
                "stage": self.stage,
                "done": self.done,
                "total": self.total,
                "cached": self.cached,
                "percent": round(100.0 * self.done / self.total, 1) if self.total else 0.0,
                "texts_per_s": round(rate, 1) if rate is not None else None,
                "eta_s": round(eta, 1) if eta is not None else None,
                "elapsed_s": round(time.monotonic() - self.started, 1),
            }


def _eta_text(eta_s: float | None) -> str:
    if eta_s is None:
        return "-"
    m, sec = divmod(int(round(eta_s)), 60)
    return f"{m} min {sec:02d} s" if m else f"{sec} s"


def build(
    limit: int | None = None,
    *,
    settings: Settings | None = None,
    force: bool = False,
    progress: bool | BuildProgress = False,
    backend: str | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Build (or reuse) the embedded corpus artefact and return its build info.

    Vectors come from the on-disk cache where it has them (``embeddings.VectorCache``), so a
    rebuild, another ``limit`` or another split embeds only new texts. ``progress`` is a
    :class:`BuildProgress` (shared with ``/health``) or ``True`` for a bar on the terminal (a
    widget in a notebook); either way the log gets a line every few seconds. ``should_stop``
    is checked between chunks (the build then raises ``InterruptedError``): nothing half
    written is ever used, because the artefact is written under a temporary name and renamed,
    and ``build.json`` (what marks it built) is written last.
    """
    from axon_lab import embeddings

    s = settings or get_settings()
    p = paths(s, limit)
    b = embeddings.check_backend(backend or s.embedding_backend)
    if not force and is_built(p):
        info = jsonutil.read_json(p.build_info, want_object=True)
        if info.get("backend", "torch") == b:
            return info
    prog = progress if isinstance(progress, BuildProgress) else BuildProgress(bar=bool(progress))
    try:
        t0 = time.perf_counter()
        prog.set_stage("chunking the sources")
        df = build_frame(limit)
        t1 = time.perf_counter()
        prog.set_stage(f"loading the {b} embedding model (the first use exports it, ~15 s)")
        embeddings.model(b)
        prog.set_stage(f"embedding {len(df)} texts ({b})")
        vecs, hits = embeddings.embed_cached(
            df["content"].tolist(),
            backend=b,
            cache=embeddings.VectorCache(b, s.cache_dir),
            on_progress=prog.update,
            should_stop=should_stop,
        )
        t2 = time.perf_counter()
    finally:
        prog.close()
    prog.set_stage("writing the corpus")
    df["embedding"] = list(vecs)
    p.root.mkdir(parents=True, exist_ok=True)
    p.build_info.unlink(missing_ok=True)  # not built until the new artefact is complete
    tmp = p.contexts.with_name(f".{p.contexts.name}.{os.getpid()}.tmp")
    try:
        df.to_parquet(tmp, index=False)
        os.replace(tmp, p.contexts)
    finally:
        tmp.unlink(missing_ok=True)
    computed = len(df) - hits
    info = manifest(df)
    info.update(
        {
            "limit": limit,
            "backend": b,
            "chunk_seconds": round(t1 - t0, 2),
            "embed_seconds": round(t2 - t1, 2),
            "embedded_texts": computed,
            "cached_texts": hits,
            "embed_texts_per_s": round(computed / (t2 - t1), 1) if computed else None,
        }
    )
    jsonutil.write_json(p.build_info, info)
    return info


def is_built(p: CorpusPaths) -> bool:
    """A complete artefact: the frame and, written after it, its build info."""
    return p.contexts.exists() and p.build_info.exists()


def manifest(df: pd.DataFrame) -> dict[str, Any]:
    """Counts and fingerprint of a corpus frame (what the committed manifest records)."""
    import platform

    from axon_lab import embeddings

    corpus = df[df.split == "corpus"]
    return {
        "schema_version": SCHEMA_VERSION,
        "source": "Python standard library: docstrings, block comments, pydoc topics; chunked at "
        f"{CHUNK_CHARS} chars on paragraphs",
        "python": platform.python_version(),
        "model": embeddings.MODEL_NAME,
        "dim": embeddings.DIM,
        "fingerprint": fingerprint(df),
        "contexts": int(len(corpus)),
        "heldout": int((df.split == "heldout").sum()),
        "workspaces": {
            k: int(v) for k, v in corpus.workspaceId.value_counts().sort_index().items()
        },
        "tiers": {k: int(v) for k, v in corpus.tier.value_counts().sort_index().items()},
    }


def load_frame(
    limit: int | None = None,
    *,
    settings: Settings | None = None,
    split: str | None = "corpus",
    build_if_missing: bool = True,
    progress: bool | BuildProgress = True,
) -> pd.DataFrame:
    """The embedded corpus frame (columns: id, split, workspaceId, tier, confidence, content,
    metadata (JSON str), embedding (float32 array)); ``split=None`` returns both splits.
    """
    p = paths(settings, limit)
    if not is_built(p):
        if not build_if_missing:
            hint = f" --limit {limit}" if limit is not None else ""
            raise InputFileError(p.contexts, f"corpus not built; run `axon-lab corpus build{hint}`")
        log.warning("corpus not built yet under %s: building it now", p.root)
        build(limit, settings=settings, progress=progress)
    try:
        df = pd.read_parquet(p.contexts)
    except Exception as exc:
        raise InputFileError(
            p.contexts, f"unreadable corpus artefact ({exc}); rebuild with --force"
        ) from None
    df["embedding"] = [np.asarray(v, dtype=np.float32) for v in df["embedding"]]
    return df if split is None else df[df.split == split].reset_index(drop=True)


def documents(df: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """MongoDB documents for a corpus frame (``_id`` = context id)."""
    for r in df.itertuples(index=False):
        yield {
            "_id": int(r.id),
            "workspaceId": r.workspaceId,
            "tier": r.tier,
            "confidence": float(r.confidence),
            "content": r.content,
            "metadata": json.loads(r.metadata),
        }


def load_into(
    stack: Any,
    limit: int | None = None,
    *,
    hnsw: Any = None,
    force: bool = False,
    progress: bool | BuildProgress = True,
    should_stop: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Load the corpus into the stack's document store and vector store (batch upserts).

    Builds the corpus first when it is not built (with ``progress``; ``should_stop`` as for
    :func:`build`). The vector store is reused when it already holds this corpus (same
    fingerprint, recorded only once the index is built); the embedded document store is
    in-memory, so it is filled on every start. Returns timings and counts.
    """
    from axon_lab.stack import VectorPoint

    prog = progress if isinstance(progress, BuildProgress) else None
    if not is_built(paths(stack.settings, limit)):
        build(limit, settings=stack.settings, progress=progress, should_stop=should_stop)
    df = load_frame(limit, settings=stack.settings)
    if prog is not None:
        prog.phase = "loading"
        prog.set_stage(f"loading {len(df)} contexts into the stores")
    fp = fingerprint(df)
    built = jsonutil.read_json(paths(stack.settings, limit).build_info, want_object=True)
    backend = str(built.get("backend", "torch"))
    out: dict[str, Any] = {"contexts": int(len(df)), "fingerprint": fp, "backend": backend}
    t0 = time.perf_counter()
    if force or stack.docs.count() != len(df):
        stack.docs.drop()
        stack.docs.insert_many(documents(df))
        stack.docs.ensure_indexes()
    out["documents_seconds"] = round(time.perf_counter() - t0, 2)

    vs = stack.vectors
    marker = getattr(vs, "path", None)
    marker_file = Path(marker) / "axon_lab.json" if marker is not None else None
    current: dict[str, Any] = {}
    if marker_file is not None and marker_file.exists():
        with contextlib.suppress(InputFileError):  # a damaged marker: load again
            current = jsonutil.read_json(marker_file, want_object=True)
    reuse = (
        not force
        and vs.exists()
        and vs.count() == len(df)
        and (
            marker_file is None
            or (current.get("fingerprint") == fp and current.get("backend", "torch") == backend)
        )
    )
    t1 = time.perf_counter()
    if not reuse:
        if vs.exists():
            vs.drop()
            if marker is not None:  # reopen the (now empty) Edge path
                vs.__init__(marker, vs.collection)
        vs.ensure_collection(int(len(df.embedding.iloc[0])), hnsw or stack_hnsw(stack.settings))
        points = [
            VectorPoint(
                int(r.id),
                r.embedding,
                {"workspaceId": r.workspaceId, "tier": r.tier, "confidence": float(r.confidence)},
            )
            for r in df.itertuples(index=False)
        ]
        vs.upsert(points, batch_size=1000)
        vs.optimize()
        if marker_file is not None:
            # Written last: a load stopped before this point is never taken as complete.
            jsonutil.write_json(
                marker_file, {"fingerprint": fp, "backend": backend, "contexts": len(df)}
            )
    out["vectors_seconds"] = round(time.perf_counter() - t1, 2)
    out["vectors_reused"] = reuse
    out["vector_info"] = vs.info()
    return out


def stack_hnsw(settings: Settings) -> Any:
    from axon_lab.stack import HnswParams

    return HnswParams(
        m=settings.hnsw_m,
        ef_construct=settings.hnsw_ef_construct,
        full_scan_threshold=settings.full_scan_threshold_kb,
        indexing_threshold=settings.indexing_threshold_kb,
    )
