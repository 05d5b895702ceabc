"""``axon-lab mongo explain|log|profile|indexes|advise``: MongoDB plan, workload and index analysis.

Thin wrappers over :mod:`axon_lab.mongo`: ``--json`` prints machine-readable output,
otherwise a table. A file that is not what the command reads is a one-line error naming the
file and the problem (exit code 1).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from axon_lab import jsonutil
from axon_lab.errors import ConfigError
from axon_lab.redact import redact, redact_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mongo", help="MongoDB explain plans, slow-query logs, profiler, indexes")
    ms = p.add_subparsers(dest="mongo_command", metavar="ACTION", required=True)

    e = ms.add_parser("explain", help="summarise explain() output files (one summary per plan)")
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--json", action="store_true", help="JSON: a list of summaries with stage trees")
    e.add_argument("--tree", action="store_true", help="also print each plan's stage tree")
    e.set_defaults(func=_explain)

    lg = ms.add_parser(
        "log", help="slow-query shapes from MongoDB 4.4+ JSON logs (like mloginfo --queries)"
    )
    lg.add_argument("files", nargs="+", metavar="FILE")
    lg.add_argument("--json", action="store_true")
    lg.add_argument("--top", type=int, default=0, help="only the N most expensive shapes")
    lg.set_defaults(func=_log)

    pr = ms.add_parser(
        "profile", help="query shapes from system.profile documents (or a profiling status)"
    )
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--top", type=int, default=0, help="only the N most expensive shapes")
    pr.set_defaults(func=_profile)

    ix = ms.add_parser("indexes", help="$indexStats review: unused and redundant prefix indexes")
    ix.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="$indexStats output, one file per collection (the file name labels it)",
    )
    ix.add_argument("--json", action="store_true")
    ix.set_defaults(func=_indexes)

    ad = ms.add_parser("advise", help="an index for a query shape by Equality -> Sort -> Range")
    ad.add_argument(
        "--filter", default="{}", help='query filter as JSON, e.g. \'{"workspaceId": "x"}\''
    )
    ad.add_argument("--sort", default=None, help="sort as JSON, e.g. '{\"confidence\": -1}'")
    ad.add_argument("--projection", default=None, help="projection as JSON")
    ad.add_argument(
        "--index",
        action="append",
        default=[],
        metavar="KEY",
        help="an existing index key as JSON (repeatable), e.g. '{\"workspaceId\": 1}'",
    )
    ad.add_argument(
        "--contexts",
        action="store_true",
        help="the guide's contexts query ({workspaceId, tier} by confidence desc)",
    )
    ad.add_argument("--json", action="store_true")
    ad.set_defaults(func=_advise)


def _print_json(obj: Any) -> None:
    print(jsonutil.dumps(redact(jsonutil.to_jsonable(obj))))


def _print_table(frame: Any, columns: list[str]) -> None:
    import pandas as pd

    if frame is None or not len(frame):
        print("(none)")
        return
    with pd.option_context("display.max_colwidth", 60, "display.width", 250):
        print(redact_text(frame[columns].to_string(index=False)))


def _explain(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    summaries = [s for f in args.files for s in mongo.load_explains(f)]
    if args.json:
        _print_json([s.to_dict() for s in summaries])
        return 0
    frame = mongo.summaries_frame(summaries)
    _print_table(
        frame,
        [
            "source",
            "server_version",
            "engine",
            "command",
            "plan_summary",
            "collscan",
            "in_memory_sort",
            "covered",
            "sharded",
            "n_returned",
            "docs_examined",
            "keys_examined",
            "execution_time_ms",
            "selectivity",
        ],
    )
    for s in summaries:
        if s.flags:
            print(f"{mongo.summaries_frame([s]).source[0]}: {'; '.join(s.flags)}")
        if args.tree:
            _print_tree(s.tree)
    return 0


def _print_tree(node: Any, depth: int = 0) -> None:
    stats = [
        f"{k}={v}"
        for k, v in (
            ("returned", node.n_returned),
            ("docs", node.docs_examined),
            ("keys", node.keys_examined),
            ("ms", node.time_ms),
        )
        if v is not None
    ]
    where = f" [{node.shard}]" if node.shard else ""
    unknown = " (unknown stage)" if not node.known else ""
    print(f"{'  ' * (depth + 1)}{node.label}{unknown}{where} {' '.join(stats)}".rstrip())
    for c in node.children:
        _print_tree(c, depth + 1)


#: The digest's columns shown in the text table (the JSON output has all of them).
_HIDDEN_SHAPE_COLUMNS = ("keys_examined", "examined_per_returned", "collscan", "in_memory_sort")


def _shapes_out(args: argparse.Namespace, ops: list[Any], head: dict[str, Any]) -> int:
    from axon_lab import mongo

    frame = mongo.digest(ops)
    if args.top:
        frame = frame.head(args.top)
    if args.json:
        _print_json({**head, "shapes": frame.to_dict(orient="records")})
        return 0
    for k, v in head.items():
        if k != "files":
            print(f"{k}: {v}")
    _print_table(frame, [c for c in mongo.DIGEST_COLUMNS if c not in _HIDDEN_SHAPE_COLUMNS])
    return 0


def _log(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    reads = [mongo.read_slow_log(f) for f in args.files]
    ops = [op for r in reads for op in r.operations]
    head = {
        "files": [
            {
                "path": r.path,
                "lines": r.lines,
                "json_lines": r.json_lines,
                "slow_queries": len(r.operations),
            }
            for r in reads
        ],
        "slow_queries": len(ops),
    }
    return _shapes_out(args, ops, head)


def _profile(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    ops: list[Any] = []
    status = None
    files = []
    for f in args.files:
        docs = mongo.read_documents(f)
        if len(docs) == 1 and mongo.classify(f) == "profile_status":
            status = mongo.profiling_status(docs[0])
            files.append({"path": f, "profiling_status": status})
            continue
        got = mongo.read_profile(f)
        files.append({"path": f, "operations": len(got)})
        ops += got
    head: dict[str, Any] = {"files": files, "operations": len(ops)}
    if status is not None:
        head["profiling_status"] = status
    return _shapes_out(args, ops, head)


def _indexes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from axon_lab import mongo
    from axon_lab.errors import InputFileError

    colls = {}
    for f in args.files:
        docs = mongo.read_documents(f)
        if not docs or not all(
            isinstance(d, dict) and "accesses" in d and "key" in d for d in docs
        ):
            raise InputFileError(f, "not $indexStats output (objects with name, key, accesses)")
        colls[Path(f).stem] = docs
    frame = mongo.index_stats_report(colls)
    unused = frame[frame.unused].name.tolist()
    redundant = frame[frame.redundant_with.notna()].name.tolist()
    if args.json:
        _print_json(
            {"indexes": frame.to_dict(orient="records"), "unused": unused, "redundant": redundant}
        )
        return 0
    _print_table(
        frame, ["collection", "name", "key", "ops", "since", "unused", "redundant_with", "advice"]
    )
    print(
        f"unused: {', '.join(unused) or 'none'}; redundant prefixes: {', '.join(redundant) or 'none'}"
    )
    return 0


def _json_arg(name: str, text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--{name} is not JSON ({exc.msg}): {text}") from None


def _advise(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    existing = [_json_arg("index", i) for i in args.index]
    if args.contexts:
        advice = mongo.contexts_advice(existing)
    else:
        advice = mongo.advise_index(
            _json_arg("filter", args.filter),
            _json_arg("sort", args.sort),
            _json_arg("projection", args.projection),
            existing,
        )
    if args.json:
        _print_json(advice.to_dict())
        return 0
    print(f"index:  {advice.key_text}")
    print(
        f"status: {'already served by ' + advice.served_by if advice.served_by else 'create it' if advice.needed else 'nothing to index'}"
    )
    print(f"why:    {advice.reason}")
    if advice.redundant_after:
        print(f"then drop (prefixes of it): {', '.join(advice.redundant_after)}")
    for n in advice.notes:
        print(f"note:   {n}")
    return 0
