"""``axon-lab corpus build [--limit N]``: build the embedded context corpus (and load it)."""

from __future__ import annotations

import argparse

from axon_lab import jsonutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build and load the context corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    b = csub.add_parser("build", help="chunk, embed and load the corpus into the stack")
    b.add_argument(
        "--limit", type=int, default=None, help="keep a representative sample of N contexts"
    )
    b.add_argument("--force", action="store_true", help="rebuild even if cached under data/")
    b.add_argument(
        "--no-load", action="store_true", help="only build the artefact; do not load backends"
    )
    b.add_argument("--json", action="store_true", help="print build info as JSON")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from axon_lab import corpus
    from axon_lab.config import get_settings
    from axon_lab.errors import ConfigError

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {args.limit}")
    settings = get_settings()
    info = corpus.build(args.limit, settings=settings, force=args.force, progress=not args.json)
    out = {"build": info}
    if not args.no_load:
        from axon_lab.stack import Stack

        stack = Stack.open(settings)
        try:
            out["load"] = corpus.load_into(stack, args.limit, force=args.force)
        finally:
            stack.close()
    if args.json:
        print(jsonutil.dumps(out))
    else:
        b = out["build"]
        print(
            f"corpus: {b['contexts']} contexts (+{b['heldout']} held out), fingerprint {b['fingerprint']}"
        )
        for ws, n in b["workspaces"].items():
            print(f"  {ws:<16} {n:>6}")
        if "load" in out:
            ld = out["load"]
            print(
                f"loaded: documents {ld['documents_seconds']} s, vectors {ld['vectors_seconds']} s "
                f"(reused={ld['vectors_reused']}), {ld['vector_info']}"
            )
    return 0
