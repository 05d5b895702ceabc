"""Provenance for every artefact: machine, commit (+dirty), versions, parameters, UTC time."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata as md
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from axon_lab.redact import redact

_PACKAGES = (
    "axon_lab",
    "numpy",
    "pandas",
    "qdrant-edge-py",
    "qdrant-client",
    "redis",
    "pymongo",
    "mongomock",
    "fastapi",
    "uvicorn",
    "sentence-transformers",
    "torch",
    "tiktoken",
    "papermill",
    "hdrhistogram",
    "locust",
    "scalene",
)


def utc_now() -> str:
    """Timezone-aware UTC time in ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds")


@lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    """The machine: host, OS, CPU, cores, memory, Python."""
    try:
        import psutil

        mem_gb = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # pragma: no cover - psutil is a dependency
        mem_gb = None
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "node": socket.gethostname(),
        "system": platform.system(),
        "release": platform.release(),
        "machine": platform.machine(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": mem_gb,
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


def machine_id(info: Mapping[str, Any] | None = None) -> str:
    """A short key to tell two machines apart (node, cpu, cores, memory)."""
    info = info or machine_info()
    return f"{info.get('node')}|{info.get('cpu')}|{info.get('cores')}|{info.get('memory_gb')}"


@lru_cache(maxsize=1)
def commit_info() -> dict[str, Any]:
    """The git commit of the checkout that holds axon_lab, and whether it is dirty."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = bool(
            subprocess.run(
                ["git", "status", "--porcelain", "--untracked-files=no"],
                cwd=root,
                capture_output=True,
                text=True,
                timeout=5,
            ).stdout.strip()
        )
        branch = subprocess.run(
            ["git", "rev-parse", "--abbrev-ref", "HEAD"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return {"id": None, "dirty": None, "branch": None}
    return {"id": commit or None, "dirty": dirty if commit else None, "branch": branch or None}


@lru_cache(maxsize=1)
def versions() -> dict[str, str | None]:
    """Installed versions of the packages that shape results."""
    out: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            out[name] = md.version(name)
        except md.PackageNotFoundError:
            out[name] = None
    return out


def corpus_sample() -> dict[str, Any]:
    """The corpus sample and embedding backend in use (``AXON_CORPUS_LIMIT``, ``AXON_EMBEDDING_BACKEND``)."""
    from axon_lab.config import get_settings

    s = get_settings()
    return {
        "sample": "full" if s.corpus_limit is None else s.corpus_limit,
        "embedding_backend": s.embedding_backend,
    }


def collect(parameters: Mapping[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """Provenance block for an artefact; parameters and extras are redacted."""
    block: dict[str, Any] = {
        "created_utc": utc_now(),
        "interpreter": sys.executable,
        "corpus": corpus_sample(),
        "machine": machine_info(),
        "machine_id": machine_id(),
        "commit": commit_info(),
        "versions": versions(),
        "parameters": redact(dict(parameters or {})),
    }
    block.update(redact(extra))
    return block


def machine_warning(
    prov_a: Mapping[str, Any] | None, prov_b: Mapping[str, Any] | None
) -> str | None:
    """A warning when two provenance blocks come from different machines (else ``None``)."""
    if not prov_a or not prov_b:
        return None
    ma, mb = prov_a.get("machine_id"), prov_b.get("machine_id")
    if ma and mb and ma != mb:
        return (
            f"runs come from different machines ({ma} vs {mb}); differences may not be the code's"
        )
    return None
