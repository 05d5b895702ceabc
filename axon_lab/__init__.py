"""axon_lab: a Jupyter-based performance workbench for the Axon prompt-orchestration service."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
