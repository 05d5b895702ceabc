"""Settings every test shares: nothing is downloaded (offline model and tokenizer).

Fixtures live in the conftest of the folder that uses them: ``integration/`` (the embedded
Axon over a real redis-server and Qdrant Edge), ``notebooks/`` (the smoke report).
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

#: Fixtures that build the embedded Axon's corpus (embedding ~400 texts, ~30 s on 2 cores) or
#: run every notebook: a test that uses one is slow, whatever its own body costs.
SLOW_FIXTURES = frozenset({"api_client", "lab_settings", "smoke_report"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use a slow session fixture ``slow``; tests under notebooks/ ``notebook``."""
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
        if "notebooks" in item.path.parts:
            item.add_marker(pytest.mark.notebook)
            item.add_marker(pytest.mark.slow)
