"""Notebook fixtures: every notebook executed once per session with its smoke parameters."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def smoke_data_dir(tmp_path_factory: pytest.TempPathFactory):
    """The smoke report's AXON_DATA_DIR (its corpus, shards and sweep stores)."""
    return tmp_path_factory.mktemp("report-data")


@pytest.fixture(scope="session")
def smoke_report(tmp_path_factory: pytest.TempPathFactory, smoke_data_dir):
    """Every notebook executed once with smoke parameters, like ``axon-lab report --smoke``.

    Returns ``(results_by_name, out_dir)``; notebook tests check their sidecars from here so
    each notebook runs once per session.
    """
    from axon_lab.report.index import build_report

    out = tmp_path_factory.mktemp("report")
    data = smoke_data_dir
    saved = {k: os.environ.get(k) for k in ("AXON_DATA_DIR", "AXON_CORPUS_LIMIT")}
    os.environ["AXON_DATA_DIR"] = str(data)
    os.environ["AXON_CORPUS_LIMIT"] = "300"
    only = [n for n in os.environ.get(ONLY_ENV, "").split(",") if n.strip()] or None
    try:
        results, index, seconds = build_report(out, smoke=True, only=only)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return _Results({r.name: r for r in results}, only), out


#: ``AXON_TEST_NOTEBOOKS=load_baseline,faults pytest tests/notebooks -k "load_baseline or
#: faults"`` runs only those notebooks in the smoke report (tests of the others skip).
ONLY_ENV = "AXON_TEST_NOTEBOOKS"


class _Results(dict):
    """Results by notebook name; with ``AXON_TEST_NOTEBOOKS`` set, a notebook left out skips."""

    def __init__(self, results, only) -> None:
        super().__init__(results)
        self.only = only

    def __missing__(self, name):
        if self.only is not None:
            pytest.skip(f"{name} not in {ONLY_ENV}")
        raise KeyError(name)
