"""The HTTP surface of Axon: ``create_app()`` (FastAPI), ``serve()``, ``running_server()``."""

from __future__ import annotations

from axon_lab.api.server import is_loopback, running_server, serve

__all__ = ["create_app", "is_loopback", "running_server", "serve"]


def create_app(*args, **kwargs):
    """See :func:`axon_lab.api.app.create_app` (imported lazily: FastAPI is heavy)."""
    from axon_lab.api.app import create_app as _create

    return _create(*args, **kwargs)
