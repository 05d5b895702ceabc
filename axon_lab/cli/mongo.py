"""``axon-lab mongo explain|log|profile|indexes|advise``: MongoDB plan, workload and index analysis.

Thin wrappers over :mod:`axon_lab.mongo`: ``--json`` prints machine-readable output,
otherwise a table. Every file is read on its own: a file that is not what the command reads is
one line on stderr naming the file and the problem, the results of the other files are still
printed, and the exit status is 1 when any file failed (0 when all were read).

Output into a pipe that closes early (``axon-lab mongo explain ... --json | head``) ends
quietly: no traceback, the rest of the output is dropped and the exit status is 141 (128 +
SIGPIPE, what ``cat``/``grep`` report in the same place, visible only under
``set -o pipefail``).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any

from axon_lab import jsonutil
from axon_lab.errors import EXIT_ERROR, EXIT_OK, AxonLabError, ConfigError
from axon_lab.redact import redact, redact_text

#: Exit status when stdout is a pipe that closed before the output was written (128 + SIGPIPE).
EXIT_PIPE_CLOSED = 141


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # not a real file (tests capture stdout)
        pass


def _pipe_safe(func: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run a handler; a closed output pipe ends it quietly with :data:`EXIT_PIPE_CLOSED`."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            rc = func(args)
            sys.stdout.flush()
        except BrokenPipeError:
            _silence_stdout()
            return EXIT_PIPE_CLOSED
        return rc

    return run


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("mongo", help="MongoDB explain plans, slow-query logs, profiler, indexes")
    ms = p.add_subparsers(dest="mongo_command", metavar="ACTION", required=True)

    e = ms.add_parser("explain", help="summarise explain() output files (one summary per plan)")
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--json", action="store_true", help="JSON: a list of summaries with stage trees")
    e.add_argument("--tree", action="store_true", help="also print each plan's stage tree")
    e.add_argument(
        "--search-indexes",
        metavar="FILE",
        help="listSearchIndexes output: check $vectorSearch pre-filter fields against it",
    )
    e.set_defaults(func=_pipe_safe(_explain))

    lg = ms.add_parser(
        "log",
        help="slow-query shapes from MongoDB 4.4+ JSON logs (like mloginfo --queries), "
        "other commands apart",
    )
    lg.add_argument("files", nargs="+", metavar="FILE")
    lg.add_argument("--json", action="store_true")
    lg.add_argument("--top", type=int, default=0, help="only the N most expensive shapes")
    lg.set_defaults(func=_pipe_safe(_log))

    pr = ms.add_parser(
        "profile", help="query shapes from system.profile documents (or a profiling status)"
    )
    pr.add_argument("files", nargs="+", metavar="FILE")
    pr.add_argument("--json", action="store_true")
    pr.add_argument("--top", type=int, default=0, help="only the N most expensive shapes")
    pr.set_defaults(func=_pipe_safe(_profile))

    ix = ms.add_parser("indexes", help="$indexStats review: unused and redundant prefix indexes")
    ix.add_argument(
        "files",
        nargs="+",
        metavar="FILE",
        help="$indexStats output, one file per collection (the file name labels it)",
    )
    ix.add_argument("--json", action="store_true")
    ix.set_defaults(func=_pipe_safe(_indexes))

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
    ad.set_defaults(func=_pipe_safe(_advise))


def _print_json(obj: Any) -> None:
    print(jsonutil.dumps(redact(jsonutil.to_jsonable(obj))))


def _print_table(frame: Any, columns: list[str]) -> None:
    import pandas as pd

    if frame is None or not len(frame):
        print("(none)")
        return
    with pd.option_context("display.max_colwidth", 60, "display.width", 250):
        print(redact_text(frame[columns].to_string(index=False)))


def _each(files: list[str], read: Callable[[str], Any]) -> tuple[list[tuple[str, Any]], int]:
    """``read`` every file; a file that fails is one line on stderr and is left out.

    Returns the ``(file, result)`` pairs that were read and the number that failed.
    """
    done: list[tuple[str, Any]] = []
    failed = 0
    for f in files:
        try:
            done.append((f, read(f)))
        except AxonLabError as exc:
            sys.stderr.write(f"axon-lab: {redact_text(str(exc))}\n")
            failed += 1
    return done, failed


def _status(failed: int) -> int:
    return EXIT_ERROR if failed else EXIT_OK


def _explain(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    definitions = None
    if args.search_indexes:
        definitions = mongo.search_index_definitions(mongo.read_documents(args.search_indexes))
        if not definitions:
            raise ConfigError(
                f"{args.search_indexes}: no search index definitions "
                "(listSearchIndexes output: objects with name and latestDefinition)"
            )
    done, failed = _each(args.files, mongo.load_explains)
    summaries = [s for _, got in done for s in got]
    if definitions is not None:
        for s in summaries:
            s.advice = mongo.search_advice(s, definitions)
    if not summaries:
        return _status(failed)
    if args.json:
        _print_json([s.to_dict() for s in summaries])
        return _status(failed)
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
    for i, s in enumerate(summaries):
        name = frame.source[i]
        if s.flags:
            print(f"{name}: {'; '.join(s.flags)}")
        for a in s.advice:
            print(redact_text(f"{name}: advice: {a}"))
        if args.tree:
            _print_tree(s.tree)
    return _status(failed)


def _node_stats(node: Any) -> list[str]:
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
    info = node.details.get("search")
    if isinstance(info, dict):
        for k, label in (
            ("num_candidates", "numCandidates"),
            ("limit", "limit"),
            ("mongot_query_ms", "mongot_ms"),
        ):
            if info.get(k) is not None:
                stats.append(f"{label}={info[k]:g}")
        if info.get("filter_fields"):
            stats.append("filter=" + ",".join(info["filter_fields"]))
    return stats


def _print_tree(node: Any, depth: int = 0) -> None:
    where = f" [{node.shard}]" if node.shard else ""
    unknown = " (unknown stage)" if not node.known else ""
    line = f"{'  ' * (depth + 1)}{node.label}{unknown}{where} {' '.join(_node_stats(node))}"
    print(redact_text(line.rstrip()))
    for c in node.children:
        _print_tree(c, depth + 1)


#: The digest's columns shown in the text table (the JSON output has all of them).
_HIDDEN_SHAPE_COLUMNS = ("keys_examined", "examined_per_returned", "collscan", "in_memory_sort")


def _shapes_out(
    args: argparse.Namespace,
    ops: list[Any],
    head: dict[str, Any],
    notes: list[str],
    status: int,
) -> int:
    from axon_lab import mongo

    frame = mongo.digest(ops)
    commands = mongo.digest(ops, kind="commands")
    if args.top:
        frame, commands = frame.head(args.top), commands.head(args.top)
    if args.json:
        _print_json(
            {
                **head,
                "shapes": frame.to_dict(orient="records"),
                "commands": commands.to_dict(orient="records"),
            }
        )
        return status
    for n in notes:
        print(redact_text(n))
    print(f"query shapes ({head['queries']} operations):")
    _print_table(frame, [c for c in mongo.DIGEST_COLUMNS if c not in _HIDDEN_SHAPE_COLUMNS])
    print(f"other commands ({head['other_commands']} operations):")
    _print_table(commands, list(mongo.COMMAND_COLUMNS))
    return status


def _log(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    done, failed = _each(args.files, mongo.read_slow_log)
    if not done:
        return _status(failed)
    reads = [r for _, r in done]
    ops = [op for r in reads for op in r.operations]
    files = []
    notes = []
    for r in reads:
        files.append(
            {
                "path": r.path,
                "lines": r.lines,
                "json_lines": r.json_lines,
                "skipped": r.skipped,
                "text_lines": r.text_lines,
                "malformed": r.malformed,
                "truncated": r.truncated,
                "slow_queries": len(r.operations),
                "queries": r.queries,
                "other_commands": r.commands,
                "internal": r.internal,
            }
        )
        line = (
            f"{r.path}: {r.lines} lines, {len(r.operations)} slow-query lines "
            f"({r.queries} queries, {r.commands} other commands"
            + (f", {r.internal} internal-thread lines (attr.type none)" if r.internal else "")
            + ")"
        )
        if r.skipped_text():
            line += f"; {r.skipped_text()}"
        notes.append(line)
    head = {
        "files": files,
        "slow_queries": len(ops),
        "queries": len(mongo.digest_operations(ops, "queries")),
        "other_commands": len(mongo.digest_operations(ops, "commands")),
        "skipped_lines": sum(r.skipped for r in reads),
    }
    return _shapes_out(args, ops, head, notes, _status(failed))


def _read_profile_file(f: str) -> tuple[dict[str, Any], list[Any], Any]:
    from axon_lab import mongo

    docs = mongo.read_documents(f)
    if len(docs) == 1 and mongo.kind_of(docs[0]) == "profile_status":
        status = mongo.profiling_status(docs[0])
        return {"path": f, "profiling_status": status}, [], status
    got = mongo.read_profile(f)
    return {"path": f, "operations": len(got)}, got, None


def _profile(args: argparse.Namespace) -> int:
    from axon_lab import mongo

    done, failed = _each(args.files, _read_profile_file)
    if not done:
        return _status(failed)
    ops: list[Any] = [op for _, (_, got, _) in done for op in got]
    status = next((st for _, (_, _, st) in done if st is not None), None)
    head: dict[str, Any] = {
        "files": [info for _, (info, _, _) in done],
        "operations": len(ops),
        "queries": len(mongo.digest_operations(ops, "queries")),
        "other_commands": len(mongo.digest_operations(ops, "commands")),
    }
    notes = [f"operations: {len(ops)}"]
    if status is not None:
        head["profiling_status"] = status
        notes.append(f"profiling_status: {status}")
    return _shapes_out(args, ops, head, notes, _status(failed))


def _read_index_stats(f: str) -> list[Any]:
    from axon_lab import mongo
    from axon_lab.errors import InputFileError

    docs = mongo.read_documents(f)
    if not docs or not all(isinstance(d, dict) and "accesses" in d and "key" in d for d in docs):
        raise InputFileError(f, "not $indexStats output (objects with name, key, accesses)")
    return docs


def _indexes(args: argparse.Namespace) -> int:
    from pathlib import Path

    from axon_lab import mongo

    done, failed = _each(args.files, _read_index_stats)
    if not done:
        return _status(failed)
    colls = {Path(f).stem: docs for f, docs in done}
    frame = mongo.index_stats_report(colls)
    unused = frame[frame.unused].name.tolist()
    redundant = frame[frame.redundant_with.notna()].name.tolist()
    if args.json:
        _print_json(
            {"indexes": frame.to_dict(orient="records"), "unused": unused, "redundant": redundant}
        )
        return _status(failed)
    _print_table(
        frame, ["collection", "name", "key", "ops", "since", "unused", "redundant_with", "advice"]
    )
    print(
        f"unused: {', '.join(unused) or 'none'}; redundant prefixes: {', '.join(redundant) or 'none'}"
    )
    return _status(failed)


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
