"""Reading one recorded explain for a test (skips when it lives only in the absent ../shared)."""

from __future__ import annotations

import pytest

from axon_lab import mongo
from axon_lab.mongo.files import find_fixture


def load(name: str) -> mongo.ExplainSummary:
    """The one explain summary in fixture ``name``; the test skips when the file is absent."""
    path = find_fixture(name)
    if path is None:
        pytest.skip(f"{name} lives only in ../shared/fixtures/mongo, which is absent")
    (s,) = mongo.load_explains(path)
    return s
