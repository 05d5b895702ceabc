"""``axon-lab run NOTEBOOK [-p NAME VALUE ...] --out DIR [--show-code]``: papermill + sidecar + HTML."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute a notebook with papermill and render HTML")
    p.add_argument("notebook", help="path to the notebook (.ipynb)")
    p.add_argument(
        "-p",
        "--parameter",
        nargs=2,
        action="append",
        metavar=("NAME", "VALUE"),
        default=[],
        help="a notebook parameter (repeatable); values are converted to the declared type",
    )
    p.add_argument(
        "--out", required=True, help="output directory (executed notebook, HTML, sidecar)"
    )
    p.add_argument("--show-code", action="store_true", help="keep code cells in the HTML")
    p.add_argument("--timeout", type=int, default=1800, help="per-cell timeout in seconds")
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from axon_lab.report.run import run_notebook

    params = dict(args.parameter)
    r = run_notebook(
        args.notebook, args.out, parameters=params, show_code=args.show_code, timeout_s=args.timeout
    )
    v = r.verdict or {}
    print(f"{r.name}: {r.status} in {r.seconds:.1f} s; html {r.html}; sidecar {r.sidecar}")
    if v:
        print(f"verdict: {v.get('status')} — {v.get('summary')}")
    if r.error:
        sys.stderr.write(f"axon-lab: {r.name} failed: {r.error}\n")
        return 1
    return 0
