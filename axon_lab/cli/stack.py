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


def corpus_status() -> dict[str, object]:
    """The corpus sample in use (``AXON_CORPUS_LIMIT``), its backend and whether it is built."""
    from axon_lab import corpus
    from axon_lab.config import get_settings

    s = get_settings()
    p = corpus.paths(s, s.corpus_limit)
    out: dict[str, object] = {
        "sample": "full" if s.corpus_limit is None else s.corpus_limit,
        "embedding_backend": s.embedding_backend,
        "built": corpus.is_built(p),
    }
    if out["built"]:
        info = jsonutil.read_json(p.build_info, want_object=True)
        out.update(
            contexts=info.get("contexts"),
            built_with=info.get("backend", "torch"),
            fingerprint=info.get("fingerprint"),
        )
    return out


def _status(args: argparse.Namespace) -> int:
    from axon_lab.stack import Stack

    stack = Stack.open()
    try:
        rows = stack.status()
    finally:
        stack.close()
    c = corpus_status()
    if args.json:
        print(jsonutil.dumps({"backends": rows, "corpus": c}))
    else:
        for r in rows:
            mark = "up  " if r["healthy"] else "DOWN"
            pid = f" pid={r['pid']}" if r.get("pid") else ""
            print(f"{mark} {r['name']:<8} {r['kind']:<36} {r['url']}{pid}")
        sample = "full corpus" if c["sample"] == "full" else f"sample of {c['sample']} contexts"
        if c["built"]:
            built = f"built: {c['contexts']} contexts, {c['built_with']} embeddings"
        else:
            limit = "" if c["sample"] == "full" else f" --limit {c['sample']}"
            built = f"not built (run `axon-lab corpus build{limit}`)"
        print(f"corpus   {sample} (AXON_CORPUS_LIMIT), {built}")
    return 0 if all(r["healthy"] for r in rows) else 1
