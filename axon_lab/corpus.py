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
import hashlib
import json
import os
import sysconfig
import time
from collections.abc import Iterator
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


def build(
    limit: int | None = None,
    *,
    settings: Settings | None = None,
    force: bool = False,
    progress: bool = False,
) -> dict[str, Any]:
    """Build (or reuse) the embedded corpus artefact and return its build info."""
    from axon_lab import embeddings

    p = paths(settings, limit)
    if not force and p.contexts.exists() and p.build_info.exists():
        return json.loads(p.build_info.read_text())
    t0 = time.perf_counter()
    df = build_frame(limit)
    t1 = time.perf_counter()
    vecs = embeddings.embed(df["content"].tolist(), batch_size=64, progress=progress)
    t2 = time.perf_counter()
    df["embedding"] = list(vecs)
    p.root.mkdir(parents=True, exist_ok=True)
    df.to_parquet(p.contexts, index=False)
    info = manifest(df)
    info.update(
        {
            "limit": limit,
            "chunk_seconds": round(t1 - t0, 2),
            "embed_seconds": round(t2 - t1, 2),
            "embed_texts_per_s": round(len(df) / max(t2 - t1, 1e-9), 1),
        }
    )
    jsonutil.write_json(p.build_info, info)
    return info


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
) -> pd.DataFrame:
    """The embedded corpus frame (columns: id, split, workspaceId, tier, confidence, content,
    metadata (JSON str), embedding (float32 array)); ``split=None`` returns both splits.
    """
    p = paths(settings, limit)
    if not p.contexts.exists():
        if not build_if_missing:
            raise InputFileError(p.contexts, "corpus not built; run `axon-lab corpus build`")
        build(limit, settings=settings)
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
    stack: Any, limit: int | None = None, *, hnsw: Any = None, force: bool = False
) -> dict[str, Any]:
    """Load the corpus into the stack's document store and vector store (batch upserts).

    The vector store is reused when it already holds this corpus (same fingerprint);
    the embedded document store is in-memory, so it is filled on every start.
    Returns timings and counts.
    """
    from axon_lab.stack import VectorPoint

    df = load_frame(limit, settings=stack.settings)
    fp = fingerprint(df)
    out: dict[str, Any] = {"contexts": int(len(df)), "fingerprint": fp}
    t0 = time.perf_counter()
    if force or stack.docs.count() != len(df):
        stack.docs.drop()
        stack.docs.insert_many(documents(df))
        stack.docs.ensure_indexes()
    out["documents_seconds"] = round(time.perf_counter() - t0, 2)

    vs = stack.vectors
    marker = getattr(vs, "path", None)
    marker_file = Path(marker) / "axon_lab.json" if marker is not None else None
    current = None
    if marker_file is not None and marker_file.exists():
        current = json.loads(marker_file.read_text()).get("fingerprint")
    reuse = (
        not force
        and vs.exists()
        and vs.count() == len(df)
        and (marker_file is None or current == fp)
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
            jsonutil.write_json(marker_file, {"fingerprint": fp, "contexts": len(df)})
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
