"""``axon-lab corpus build [--limit N]``: build the embedded context corpus (and load it)."""

from __future__ import annotations

import argparse

from axon_lab import jsonutil


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="build and load the context corpus")
    csub = p.add_subparsers(dest="corpus_command", metavar="ACTION", required=True)
    b = csub.add_parser("build", help="chunk, embed and load the corpus into the stack")
    b.add_argument(
        "--limit",
        type=int,
        default=None,
        help="a representative sample of N contexts (default: AXON_CORPUS_LIMIT, else all)",
    )
    b.add_argument(
        "--full", action="store_true", help="the full corpus, whatever AXON_CORPUS_LIMIT says"
    )
    b.add_argument(
        "--backend",
        default=None,
        help="embedding backend: torch, onnx, onnx-int8 (default: AXON_EMBEDDING_BACKEND)",
    )
    b.add_argument("--force", action="store_true", help="rebuild even if cached under data/")
    b.add_argument(
        "--no-load", action="store_true", help="only build the artefact; do not load backends"
    )
    b.add_argument("--json", action="store_true", help="print build info as JSON")
    b.set_defaults(func=_build)


def _build(args: argparse.Namespace) -> int:
    from axon_lab import corpus, embeddings
    from axon_lab.config import get_settings
    from axon_lab.errors import ConfigError

    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be a positive integer, got {args.limit}")
    settings = get_settings()
    limit = None if args.full else args.limit if args.limit is not None else settings.corpus_limit
    if args.backend is not None:
        embeddings.check_backend(args.backend)
        settings = settings.model_copy(update={"embedding_backend": args.backend})
    info = corpus.build(limit, settings=settings, force=args.force, progress=not args.json)
    out = {"build": info}
    if not args.no_load:
        from axon_lab.stack import Stack

        stack = Stack.open(settings)
        try:
            out["load"] = corpus.load_into(stack, limit, force=args.force)
        finally:
            stack.close()
    if args.json:
        print(jsonutil.dumps(out))
    else:
        b = out["build"]
        sample = "full corpus" if b.get("limit") is None else f"sample of {b['limit']}"
        print(
            f"corpus: {b['contexts']} contexts (+{b['heldout']} held out; {sample}), "
            f"fingerprint {b['fingerprint']}, embeddings {b.get('backend', 'torch')}"
        )
        if b.get("embedded_texts") is not None:
            rate = b.get("embed_texts_per_s")
            print(
                f"  embedded {b['embedded_texts']} texts in {b['embed_seconds']} s"
                + (f" ({rate} texts/s)" if rate else "")
                + f", {b['cached_texts']} from the vector cache"
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
