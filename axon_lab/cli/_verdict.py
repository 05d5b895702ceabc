"""The common end of the experiment commands (fault, soak, profile): verdict line and exit code."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from axon_lab.errors import EXIT_THRESHOLDS


def finish(failed_msg: str, verdict: Mapping[str, Any], sidecar: Path | str, *, show: bool) -> int:
    """Print the verdict and sidecar lines (when ``show``); 99 with a one-line error on a fail.

    ``failed_msg`` completes ``axon-lab: <failed_msg>: <summary>`` on stderr.
    """
    if show:
        print(f"verdict: {verdict['status']}: {verdict['summary']}")
        print(f"sidecar: {sidecar}")
    if verdict["status"] == "fail":
        sys.stderr.write(f"axon-lab: {failed_msg}: {verdict['summary']}\n")
        return EXIT_THRESHOLDS
    return 0
