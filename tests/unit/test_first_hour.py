"""The first hour: the sample asked for is the sample used, the notebook kernel is this
interpreter, an interrupted corpus build is never used, the corpus is shown in provenance."""

from __future__ import annotations

import json
import sys

import pytest

from axon_lab import corpus, embeddings
from axon_lab.config import Settings, get_settings
from axon_lab.errors import InputFileError


@pytest.fixture
def env_settings(monkeypatch, tmp_path):
    """Settings read from the environment (as the CLI does), on a private data dir."""

    def use(**env: str) -> None:
        monkeypatch.setenv("AXON_DATA_DIR", str(tmp_path / "data"))
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        get_settings.cache_clear()

    yield use
    get_settings.cache_clear()


def test_the_notebook_kernel_is_this_interpreter(tmp_path, monkeypatch):
    from jupyter_client.kernelspec import KernelSpecManager

    from axon_lab.report.run import this_interpreter_kernel

    base = this_interpreter_kernel(tmp_path)
    monkeypatch.setenv("JUPYTER_PATH", str(base))
    spec = KernelSpecManager().get_kernel_spec("python3")
    assert spec.argv[0] == sys.executable
    assert this_interpreter_kernel(tmp_path) == base  # stable, rewritten only when it changes


def test_provenance_names_the_interpreter_and_the_sample(env_settings):
    from axon_lab import provenance

    env_settings(AXON_CORPUS_LIMIT="250", AXON_EMBEDDING_BACKEND="onnx")
    block = provenance.collect({})
    assert block["interpreter"] == sys.executable
    assert block["corpus"] == {"sample": 250, "embedding_backend": "onnx"}


def test_a_bad_sample_or_backend_is_refused(env_settings):
    from pydantic import ValidationError

    env_settings(AXON_CORPUS_LIMIT="0")
    with pytest.raises(ValidationError, match="corpus_limit"):
        get_settings()
    env_settings(AXON_CORPUS_LIMIT="", AXON_EMBEDDING_BACKEND="cuda")
    with pytest.raises(ValidationError, match="embedding_backend"):
        get_settings()


@pytest.mark.slow
def test_corpus_limit_env_is_the_cli_default_and_limit_overrides_it(env_settings, capsys):
    from axon_lab.cli import main

    env_settings(AXON_CORPUS_LIMIT="30")
    assert main(["corpus", "build", "--no-load", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)["build"]
    assert info["limit"] == 30 and info["contexts"] == 30 and info["backend"] == "onnx"
    assert main(["corpus", "build", "--no-load", "--json", "--limit", "20"]) == 0
    info = json.loads(capsys.readouterr().out)["build"]
    assert info["limit"] == 20 and info["contexts"] == 20
    # the 20 are among the 30 already embedded: nothing new to compute
    assert info["embedded_texts"] == 0 and info["cached_texts"] == 21
    main(["stack", "status"])  # exit 1 here: nothing was loaded into Qdrant (--no-load)
    assert (
        "sample of 30 contexts (AXON_CORPUS_LIMIT), built: 30 contexts" in capsys.readouterr().out
    )


@pytest.mark.slow
def test_an_interrupted_build_is_never_used(tmp_path):
    s = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", corpus_limit=300)
    # share the exported model, not the vectors: this build has texts to embed
    (s.cache_dir / "models").parent.mkdir(parents=True)
    (s.cache_dir / "models").symlink_to(embeddings.cache_dir() / "models")
    embeddings.onnx_model("onnx")
    calls = {"n": 0}

    def stop_on_second_check() -> bool:
        calls["n"] += 1
        return calls["n"] > 1

    with pytest.raises(InterruptedError):
        corpus.build(300, settings=s, should_stop=stop_on_second_check)
    p = corpus.paths(s, 300)
    assert not corpus.is_built(p)
    with pytest.raises(InputFileError, match=r"not built; run `axon-lab corpus build --limit 300`"):
        corpus.load_frame(300, settings=s, build_if_missing=False)
    kept = len(embeddings.VectorCache("onnx", s.cache_dir))
    assert 100 < kept <= 128  # the first chunk (128 texts, a few repeated), finished, is kept
    info = corpus.build(300, settings=s)  # resumes: only the texts not yet embedded
    assert corpus.is_built(p) and info["contexts"] == 300
    assert info["cached_texts"] + info["embedded_texts"] == 300 + info["heldout"]
    assert info["cached_texts"] >= kept
