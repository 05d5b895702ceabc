"""``axon-lab report [--smoke] --out DIR``: every notebook, plus index.html with a verdict each."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="run every notebook and write index.html")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument(
        "--smoke", action="store_true", help="CI parameters (smoke=True): seconds per notebook"
    )
    p.add_argument("--show-code", action="store_true", help="keep code cells in the HTML")
    p.add_argument(
        "--only", action="append", default=None, help="run only this notebook (repeatable)"
    )
    p.add_argument(
        "--fail-on-verdict",
        action="store_true",
        help="exit 99 when a report's verdict is fail (targets missed)",
    )
    p.add_argument(
        "--history",
        metavar="PATH",
        help="add the report's runs to this history (.duckdb or a Parquet directory; default "
        "$AXON_HISTORY)",
    )
    p.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from axon_lab.report.index import build_report

    results, index, seconds = build_report(
        args.out, smoke=args.smoke, show_code=args.show_code, only=args.only, progress=print
    )
    failed = [r for r in results if r.status == "failed"]
    print(f"{len(results)} notebooks in {seconds:.1f} s; index: {index}")
    from axon_lab.history import record_run

    added = record_run(args.out, args.history)
    if added is not None:
        for e in added.errors:
            sys.stderr.write(f"axon-lab report: history: {e}\n")
        print(f"history: {len(added.added)} run(s) added")
    if not results:
        sys.stderr.write("axon-lab: no notebooks found\n")
        return 1
    if failed:
        sys.stderr.write(
            f"axon-lab: {len(failed)} notebook(s) failed: {', '.join(r.name for r in failed)}\n"
        )
        return 1
    if args.fail_on_verdict and any((r.verdict or {}).get("status") == "fail" for r in results):
        return 99
    return 0
