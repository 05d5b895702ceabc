"""Reading one recorded explain for a test (skips when an SSPL file of ../shared is not here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from axon_lab import mongo
from axon_lab.mongo.files import SHARED_FIXTURES, find_fixture, repo_root


def fixture_path(name: str) -> Path:
    """Recorded file ``name`` from tests/fixtures/mongo or ../shared/fixtures/mongo.

    The test skips when it is in neither: saying whether the shared folder is absent (as in a
    checkout without ../shared) or present without that file.
    """
    path = find_fixture(name)
    if path is None:
        shared = repo_root() / SHARED_FIXTURES
        if not shared.is_dir():
            pytest.skip(
                f"{name}: not in tests/fixtures/mongo, and ../shared/fixtures/mongo is absent"
            )
        pytest.skip(f"{name}: in neither tests/fixtures/mongo nor ../shared/fixtures/mongo")
    return path


def load(name: str) -> mongo.ExplainSummary:
    """The one explain summary in fixture ``name`` (see :func:`fixture_path` for the skips)."""
    (s,) = mongo.load_explains(fixture_path(name))
    return s
