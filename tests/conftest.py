"""Settings every test shares: nothing is downloaded (offline model and tokenizer).

Fixtures live in the conftest of the folder that uses them: ``integration/`` (the embedded
Axon over a real redis-server and Qdrant Edge), ``notebooks/`` (the smoke report).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
