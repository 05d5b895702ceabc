"""Secrets and exposure: passwords in URIs never reach an output (API bodies and headers, /metrics, logs, `stack status`, load summaries, sidecars, executed notebooks, HTML); the API and the services it starts bind to loopback only; remote targets are refused."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import nbformat
import pandas as pd
import psutil
import pytest

from axon_lab.errors import ConfigError
from axon_lab.redact import redact_text
from axon_lab.stack import RedisServer

REPO = Path(__file__).resolve().parents[2]
PROCESS = "/api/v1/prompts/process"
# Distinct, greppable secrets, one per place a secret can be configured.
REDIS_PW = "r3disPW-s3cret"
QDRANT_PW = "qdr4ntPW-s3cret"
QDRANT_KEY = "qdr4ntKEY-s3cret"
MONGO_PW = "m0ngoPW-s3cret"
LLM_PW = "llmPW-s3cret"
LLM_KEY = "sk-llmKEY-s3cret"
SECRETS = (REDIS_PW, QDRANT_PW, QDRANT_KEY, MONGO_PW, LLM_PW, LLM_KEY)


def _no_secret(text: str, where: str) -> None:
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"{where} leaks {leaked}"


@pytest.fixture(scope="module")
def redis_pw():
    """A real redis-server that requires a password."""
    with RedisServer(password=REDIS_PW) as srv:
        yield srv


@pytest.fixture(scope="module")
def secret_env(redis_pw):
    # Qdrant and MongoDB point at closed loopback ports: every error path runs, with the secret
    # in the URI the client was given.
    return {
        "AXON_REDIS_URL": redis_pw.url,
        "AXON_QDRANT_URL": f"http://axon:{QDRANT_PW}@127.0.0.1:1",
        "AXON_QDRANT_API_KEY": QDRANT_KEY,
        "AXON_MONGODB_URI": f"mongodb://axon:{MONGO_PW}@127.0.0.1:2/?serverSelectionTimeoutMS=500",
        "AXON_LLM_URL": f"http://axon:{LLM_PW}@127.0.0.1:3/v1",
        "AXON_LLM_API_KEY": LLM_KEY,
    }


def test_api_bodies_headers_metrics_and_logs_never_show_a_password(
    secret_env, lab_settings, caplog, monkeypatch
):
    from fastapi.testclient import TestClient

    from axon_lab.api.app import create_app
    from axon_lab.config import Settings
    from axon_lab.pipeline import LLMOptions, PipelineOptions

    for k, v in secret_env.items():
        monkeypatch.setenv(k, v)
    settings = Settings(data_dir=lab_settings.data_dir)
    opts = PipelineOptions(
        vector_timeout_s=1.0, document_timeout_s=1.0, llm=LLMOptions(median_ms=5.0)
    )
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    with TestClient(create_app(settings, opts, load_corpus=False)) as client:
        h = client.get("/health")
        assert h.status_code == 503 and set(h.json()["down"]) == {"qdrant", "mongodb"}
        assert h.json()["backends"]["redis"]["status"] == "up"  # the password works
        r = client.post(PROCESS, json={"prompt": "How do I read a file?", "workspaceId": "test"})
        assert r.status_code == 503 and r.json()["backend"] == "qdrant"
        for resp in (
            h,
            r,
            client.get("/metrics"),
            client.get("/metrics/prometheus"),
            client.get("/api/v1/options"),
            client.get("/api/v1/faults"),
            client.post(
                PROCESS, content=b'{"prompt": ', headers={"content-type": "application/json"}
            ),
        ):
            seen.append(resp.text + json.dumps(dict(resp.headers)))
        backends = client.get("/metrics").json()["backends"]
        assert backends["qdrant"]["last_error"]  # the client's error text is there, redacted
        stack = client.app.state.stack
        seen.append(
            repr(settings)
            + str(settings.public())
            + stack.cache.url
            + stack.vectors.url
            + stack.docs.url
        )
    _no_secret("\n".join(seen), "API responses")
    _no_secret(
        "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records), "logs"
    )


@pytest.mark.slow
def test_stack_status_text_and_json_are_redacted(secret_env, tmp_path):
    env = {**os.environ, "AXON_DATA_DIR": str(tmp_path), **secret_env}
    runs = [
        subprocess.run(
            [sys.executable, "-m", "axon_lab", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=180,
            cwd=REPO,
        )
        for args in (["stack", "status", "--json"], ["-v", "stack", "status"])
    ]
    _no_secret("\n".join(r.stdout + r.stderr for r in runs), "axon-lab stack status")
    assert "DOWN qdrant" in runs[1].stdout and "redis://:***@127.0.0.1:" in runs[1].stdout
    by = {b["name"]: b for b in json.loads(runs[0].stdout)["backends"]}
    assert by["redis"]["healthy"] and by["redis"]["url"].startswith("redis://:***@127.0.0.1:")
    assert by["qdrant"]["url"] == "http://axon:***@127.0.0.1:1"
    assert by["mongodb"]["url"].startswith("mongodb://axon:***@127.0.0.1:2/")


@pytest.mark.slow  # kills or runs processes for seconds
def test_sidecars_notebooks_html_and_load_summaries_are_redacted(tmp_path, redis_pw):
    from axon_lab.load import LoadRunner
    from axon_lab.load.testserver import LoadServer
    from axon_lab.report import record
    from axon_lab.report.run import run_notebook

    url = redis_pw.url  # redis://:<password>@127.0.0.1:port/0
    # a sidecar written directly
    frame = pd.DataFrame({"n": [1, 2], "target": [url, "plain"], "at": [1.5, 2.5]})
    side = record(
        "leaky",
        {"url": url, "nested": [{"dsn": url}], "password": REDIS_PW},
        parameters={"redis_url": url},
        frames={"runs": frame},
        out_dir=tmp_path / "direct",
    )
    _no_secret(side.read_text(), "sidecar")
    written = pd.read_parquet(tmp_path / "direct" / "leaky.runs.parquet")
    _no_secret(written.to_csv(), "sidecar frame")
    assert written["target"].tolist() == [redact_text(url), "plain"] and written["n"].tolist() == [
        1,
        2,
    ]
    assert frame["target"][0] == url  # the caller's frame is not modified
    # a notebook that prints, logs, displays and finally fails with the URL
    nb = nbformat.v4.new_notebook(
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        }
    )
    nb.cells = [
        nbformat.v4.new_markdown_cell("# leak check"),
        nbformat.v4.new_code_cell(
            'url: str = ""  # a URL with a password', metadata={"tags": ["parameters"]}
        ),
        nbformat.v4.new_code_cell(
            "import logging\nprint('connecting to', url)\n"
            "logging.getLogger('leak').warning('connecting to %s', url)\nurl"
        ),
        nbformat.v4.new_code_cell(
            "from axon_lab.report import record\n"
            "record('leak_nb', {'url': url}, parameters={'url': url}, verdict={'status': 'info', 'summary': url})"
        ),
        nbformat.v4.new_code_cell("raise ConnectionError(f'cannot reach {url}')"),
    ]
    path = tmp_path / "leak_nb.ipynb"
    nbformat.write(nb, path)
    res = run_notebook(path, tmp_path / "out", parameters={"url": url})
    assert res.status == "failed" and "***" in (res.error or "")
    for f in (res.executed, res.html, res.sidecar):
        assert f is not None and f.exists()
        _no_secret(f.read_text(), f.name)
    # a load run whose target URL carries credentials
    with LoadServer("constant:ms=1") as srv:
        target = srv.url.replace("http://", f"http://axon:{LLM_PW}@") + "/health"
        LoadRunner(
            url=target,
            duration_s=0.5,
            connections=1,
            out_dir=tmp_path / "load",
            progress=False,
            parameters={"note": target},
        ).run()
    _no_secret((tmp_path / "load" / "summary.json").read_text(), "load summary.json")


# --- exposure ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def served(lab_settings, tmp_path_factory):
    """``axon-lab serve`` in a subprocess, owning its redis-server (no AXON_REDIS_URL)."""
    from axon_lab import corpus
    from axon_lab.api.server import running_server

    corpus.build(lab_settings.corpus_limit, settings=lab_settings)
    d = tmp_path_factory.mktemp("security-data")
    shutil.copytree(lab_settings.data_dir / "corpus", d / "corpus")
    env = {"AXON_DATA_DIR": str(d), "AXON_CORPUS_LIMIT": str(lab_settings.corpus_limit)}
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AXON_REDIS_URL", raising=False)  # the server must start its own
        with running_server(env=env) as url:
            yield url


def _listening(proc: psutil.Process) -> list[tuple[str, int]]:
    return [
        (c.laddr.ip, c.laddr.port)
        for c in proc.net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN
    ]


@pytest.mark.slow
def test_api_and_its_redis_server_listen_on_loopback_only(served):
    pid = httpx.get(f"{served}/metrics", timeout=10).json()["process"]["pid"]
    api = psutil.Process(pid)
    api_socks = _listening(api)
    port = int(served.rsplit(":", 1)[1])
    assert (("127.0.0.1", port) in api_socks) and all(ip == "127.0.0.1" for ip, _ in api_socks), (
        api_socks
    )
    redis = [c for c in api.children(recursive=True) if "redis-server" in " ".join(c.cmdline())]
    assert len(redis) == 1, "the API owns its redis-server"
    redis_socks = _listening(redis[0])
    assert redis_socks and all(ip == "127.0.0.1" for ip, _ in redis_socks), redis_socks
    health = httpx.get(f"{served}/health", timeout=10).json()
    assert health["backends"]["redis"]["status"] == "up"


def test_serve_refuses_a_non_loopback_address(capsys):
    from axon_lab.api.server import serve
    from axon_lab.cli import main

    with pytest.raises(ConfigError, match="loopback only"):
        serve("0.0.0.0", 3999)
    assert main(["serve", "--host", "0.0.0.0", "--port", "3999"]) == 1
    assert "loopback only" in capsys.readouterr().err


def test_load_tool_refuses_non_loopback_targets_without_allow_remote(capsys):
    from axon_lab.cli import main
    from axon_lab.load import LoadRunner

    assert main(["load", "http://10.9.8.7:3000/health", "-d", "1", "--no-progress"]) == 1
    assert "refusing to load non-loopback target" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="allow_remote"):
        LoadRunner(url="http://192.0.2.1/health", duration_s=1)
    # with the flag the run is allowed (constructed, not sent: no traffic leaves 127.0.0.1 here)
    assert (
        LoadRunner(url="http://192.0.2.1/health", duration_s=1, allow_remote=True).target.host
        == "192.0.2.1"
    )


def test_fault_proxy_refuses_a_non_loopback_upstream(capsys):
    from axon_lab.faults.proxy import _main

    assert _main(["proxy", "--upstream", "10.0.0.1:6379"]) == 1
    assert "non-loopback" in capsys.readouterr().err
