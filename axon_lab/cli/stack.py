"""``axon-lab stack status [--json]``: each backend's kind, url (redacted), pid if owned, health."""

from __future__ import annotations

import argparse

from axon_lab import jsonutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stack", help="the backends (Redis, Qdrant, MongoDB)")
    ssub = p.add_subparsers(dest="stack_command", metavar="ACTION", required=True)
    st = ssub.add_parser("status", help="open every backend and report its health")
    st.add_argument("--json", action="store_true")
    st.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    from axon_lab.stack import Stack

    stack = Stack.open()
    try:
        rows = stack.status()
    finally:
        stack.close()
    if args.json:
        print(jsonutil.dumps({"backends": rows}))
    else:
        for r in rows:
            mark = "up  " if r["healthy"] else "DOWN"
            pid = f" pid={r['pid']}" if r.get("pid") else ""
            print(f"{mark} {r['name']:<8} {r['kind']:<36} {r['url']}{pid}")
    return 0 if all(r["healthy"] for r in rows) else 1
