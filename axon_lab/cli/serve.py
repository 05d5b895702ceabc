"""``axon-lab serve``: the embedded Axon API on loopback, backends started on demand."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve the embedded Axon API (stack on demand)")
    p.add_argument("--host", default=None, help="bind address (default 127.0.0.1; loopback only)")
    p.add_argument("--port", type=int, default=None, help="port (default 3000 or AXON_PORT)")
    p.add_argument("--allow-remote", action="store_true", help="allow a non-loopback bind address")
    p.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    from axon_lab.api.server import serve
    from axon_lab.config import get_settings

    s = get_settings()
    serve(
        args.host or s.host,
        args.port or s.port,
        allow_remote=args.allow_remote,
        log_level=s.log_level,
    )
    return 0
