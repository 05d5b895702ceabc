"""``axon-lab history add|list|show|export|check|site|summary``: the run history and its CI gate."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from axon_lab import jsonutil
from axon_lab.errors import EXIT_THRESHOLDS, ConfigError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "history",
        help="results across runs: add runs, list, show a metric, check for regressions, site",
        description="The history is a .duckdb file or a directory of Parquet files (one per run, "
        "safe for concurrent writers and CI caches); default: $AXON_HISTORY, else "
        "<data dir>/history.duckdb.",
    )
    p.add_argument("--history", metavar="PATH", help="the history (default: $AXON_HISTORY)")
    hs = p.add_subparsers(dest="history_command", metavar="ACTION", required=True)
    a = hs.add_parser("add", help="add runs: load run dirs, summary.json, sidecars, report dirs")
    a.add_argument("paths", nargs="+", type=Path)
    a.set_defaults(func=_add)
    ls = hs.add_parser("list", help="one line per run (time, kind, name, commit, metrics)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=_list)
    sh = hs.add_parser("show", help="a metric's series and its change points")
    sh.add_argument(
        "metric", help="e.g. http_req_duration:p95, http_reqs:rate, stage.retrieval:p95"
    )
    sh.add_argument("--name", help="scenario or notebook (default: every one)")
    sh.add_argument("--json", action="store_true")
    sh.set_defaults(func=_show)
    ex = hs.add_parser("export", help="every row as Parquet or CSV")
    ex.add_argument("--out", type=Path, required=True, help="FILE.parquet or FILE.csv")
    ex.set_defaults(func=_export)
    ck = hs.add_parser(
        "check",
        help="regressions since a baseline (exit 99 with --fail-on-regression)",
        description="Finds level shifts in every series (metric × scenario × machine) and "
        "reports those at or after the baseline. Exit 99 with --fail-on-regression when a "
        "metric regressed.",
    )
    ck.add_argument(
        "--baseline", default="last-1", help="last-N (the last N runs are new) or a commit/run id"
    )
    ck.add_argument("--metric", action="append", default=[], help="only these metrics")
    ck.add_argument("--min-effect", type=float, default=0.05, help="ignore shifts below (0.05)")
    ck.add_argument("--alpha", type=float, default=0.01, help="significance level (0.01)")
    ck.add_argument("--fail-on-regression", action="store_true")
    ck.add_argument("--markdown", type=Path, metavar="FILE", help="write a PR-comment summary")
    ck.add_argument("--json", action="store_true")
    ck.set_defaults(func=_check)
    st = hs.add_parser("site", help="static HTML dashboard (works from file://)")
    st.add_argument("--out", type=Path, required=True)
    st.set_defaults(func=_site)
    sm = hs.add_parser("summary", help="the guide's 'Document Results' Markdown for two commits")
    sm.add_argument("--from", dest="before", required=True, metavar="REF")
    sm.add_argument("--to", dest="after", required=True, metavar="REF")
    sm.add_argument("--out", type=Path, help="write it here (default: stdout)")
    sm.set_defaults(func=_summary)


def _open(args: argparse.Namespace):  # -> History
    from axon_lab.history import open_history

    return open_history(args.history)


def _warn(h) -> None:
    for e in getattr(h, "errors", []):
        sys.stderr.write(f"axon-lab history: {e}\n")


def _add(args: argparse.Namespace) -> int:
    h = _open(args)
    res = h.add(args.paths)
    print(f"added {len(res.added)} run(s), {len(res.skipped)} already there → {h.location}")
    for e in res.errors:
        sys.stderr.write(f"axon-lab history: {e}\n")
    return 1 if res.errors and not (res.added or res.skipped) else 0


def _list(args: argparse.Namespace) -> int:
    h = _open(args)
    runs = h.runs()
    _warn(h)
    if args.json:
        print(jsonutil.dumps(runs.to_dict("records")))
        return 0
    for r in runs.itertuples():
        commit = (str(r.commit)[:8] if isinstance(r.commit, str) else "-") + (
            "+" if r.dirty is True else ""
        )
        print(f"{r.created_utc:%Y-%m-%d %H:%M} {r.run_id} {r.kind:8} {r.name:20} {commit:9} "
              f"{r.metrics} metrics")  # fmt: skip
    return 0


def _show(args: argparse.Namespace) -> int:
    from axon_lab.history.changepoints import detect

    h = _open(args)
    f = h.frame()
    _warn(h)
    f = f[f["metric"] == args.metric]
    if args.name:
        f = f[f["name"] == args.name]
    if not len(f):
        known = sorted(set(h.frame()["metric"]))[:12]
        raise ConfigError(f"no runs of {args.metric!r}; metrics: {', '.join(known) or 'none'}")
    out = []
    for (name, machine), s in f.sort_values("created_utc").groupby(["name", "machine"]):
        points = detect(s["value"].to_numpy(dtype=float), better=str(s["better"].iloc[0]))
        out.append({"name": name, "machine": machine, "unit": s["unit"].iloc[0],
                    "values": s[["created_utc", "run_id", "commit", "value"]].to_dict("records"),
                    "change_points": [p.to_dict() for p in points]})  # fmt: skip
    if args.json:
        print(jsonutil.dumps(out))
        return 0
    for s in out:
        print(f"{args.metric} [{s['name']} @ {s['machine']}] ({s['unit'] or 'no unit'})")
        marks = {p["index"]: p for p in s["change_points"]}
        for i, v in enumerate(s["values"]):
            mark = marks.get(i)
            note = f"  ← {mark['kind']} {mark['change']:+.1%}" if mark else ""
            print(f"  {v['created_utc']:%Y-%m-%d %H:%M} {str(v['commit'] or '-')[:8]:8} "
                  f"{v['value']:.4g}{note}")  # fmt: skip
    return 0


def _export(args: argparse.Namespace) -> int:
    h = _open(args)
    f = h.frame()
    _warn(h)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".csv":
        f.to_csv(args.out, index=False)
    elif args.out.suffix == ".parquet":
        f.to_parquet(args.out, index=False)
    else:
        raise ConfigError(f"--out {args.out.name}: expected a .parquet or .csv file")
    print(f"{len(f)} rows → {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from axon_lab.history.check import check

    h = _open(args)
    f = h.frame()
    _warn(h)
    res = check(f, baseline=args.baseline, metrics=args.metric or None,
                min_effect=args.min_effect, alpha=args.alpha)  # fmt: skip
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(res.markdown(), encoding="utf-8")
    if args.json:
        print(jsonutil.dumps(res.to_dict()))
    else:
        for s in res.regressions:
            print(f"REGRESSION  {s.line()}")
        for s in res.improvements:
            print(f"improvement {s.line()}")
        print(f"{len(res.regressions)} regression(s), {len(res.improvements)} improvement(s) in "
              f"{res.series} series since {args.baseline}")  # fmt: skip
    if res.regressions and args.fail_on_regression:
        names = "; ".join(
            f"{s.metric} [{s.name}] {s.before:.4g}→{s.after:.4g} ({s.change:+.0%})"
            for s in res.regressions
        )
        sys.stderr.write(f"axon-lab: regressed: {names}\n")
        return EXIT_THRESHOLDS
    return 0


def _site(args: argparse.Namespace) -> int:
    from axon_lab.history.site import build_site

    h = _open(args)
    f = h.frame()
    _warn(h)
    index = build_site(f, args.out)
    print(f"history site → {index}")
    return 0


def _summary(args: argparse.Namespace) -> int:
    from axon_lab.history.summary import document_results

    h = _open(args)
    text = document_results(h.frame(), before=args.before, after=args.after)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
        print(f"results → {args.out}")
    else:
        print(text, end="")
    return 0
