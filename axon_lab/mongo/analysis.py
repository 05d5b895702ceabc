"""MongoDB query analysis: explain plans, profiler and slow-query digests, index advice, live mode.

This is the entry point (notebooks and the CLI import it); the work is done in

* :mod:`~axon_lab.mongo.explain` — any ``explain()`` output → :class:`ExplainSummary`;
* :mod:`~axon_lab.mongo.advice` — Equality → Sort → Range index advice,
  ``$indexStats`` review;
* :mod:`~axon_lab.mongo.workload` — slow-query log / ``system.profile`` digests;
* :mod:`~axon_lab.mongo.live` — the live session on a real server, with the fallback
  to recorded files when the target is the embedded store (mongomock) or not MongoDB;
* :mod:`~axon_lab.mongo.files` — reading and recognising recorded files.

:func:`analyze` is the friendly layer the notebook calls: it runs the live session when the
target is a real server and always analyses the recorded files it can find, returning one
:class:`MongoAnalysis` with tables, the plan to draw, the results to record and a verdict.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from axon_lab.errors import InputFileError
from axon_lab.mongo.advice import (
    IndexAdvice,
    contexts_advice,
    index_stats_report,
)
from axon_lab.mongo.explain import (
    ExplainSummary,
    load_explains,
    plans_table,
    summaries_frame,
)
from axon_lab.mongo.files import default_fixture_dir, read_documents, scan_folder
from axon_lab.mongo.live import (
    LiveReport,
    MongoConnection,
    connect,
    live_shapes,
    run_live,
)
from axon_lab.mongo.workload import (
    Operation,
    digest,
    profiling_status,
    read_profile,
    read_slow_log,
)
from axon_lab.report.summary import figure


def worst_plan(summaries: Sequence[ExplainSummary]) -> ExplainSummary | None:
    """The plan most worth drawing: with execution counts, most flags, then worst selectivity."""
    with_stats = [s for s in summaries if s.verbosity != "queryPlanner"] or list(summaries)
    if not with_stats:
        return None
    return max(
        with_stats,
        key=lambda s: (
            len([f for f in s.flags if not f.startswith("queryPlanner")]),
            s.selectivity or 0.0,
        ),
    )


def recorded_comparison(summaries: Sequence[ExplainSummary]) -> list[tuple[str, ExplainSummary]]:
    """Recorded plans of the same filter on the same collection, slowest first.

    Offline there is no "after" to measure; the largest group of recorded plans sharing
    namespace and parsed filter (with execution counts) shows what different plans cost.
    Labels are the file names.
    """
    groups: dict[tuple[str, str], list[ExplainSummary]] = {}
    for s in summaries:
        if s.verbosity == "queryPlanner" or s.namespace is None:
            continue
        key = (s.namespace, json.dumps(s.parsed_query, sort_keys=True, default=str))
        groups.setdefault(key, []).append(s)
    best = max((g for g in groups.values() if len(g) >= 2), key=len, default=[])
    best = sorted(best, key=lambda s: -(s.execution_time_ms or 0.0))
    return [(Path(str(s.source)).stem if s.source else f"plan {i}", s) for i, s in enumerate(best)]


@dataclass
class FilesAnalysis:
    """Everything read from a folder of recorded files."""

    folder: str | None
    files: dict[str, list[str]] = field(default_factory=dict)
    plans: list[ExplainSummary] = field(default_factory=list)
    operations: list[Operation] = field(default_factory=list)
    profile_status: dict[str, Any] | None = None
    index_stats: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def analyze_files(folder: Path | str | None = None, *, smoke: bool = False) -> FilesAnalysis:
    """Parse every recorded explain, log, profiler and ``$indexStats`` file in ``folder``.

    A file that fails to parse is reported in ``errors`` (one line naming it), not raised, so
    one bad file does not hide the others. ``smoke`` changes nothing here (parsing the
    fixtures takes well under a second) and exists for symmetry with live mode.

    Raises
    ------
    InputFileError
        When ``folder`` is given and is not a folder, or none is given and no fixture folder
        exists.
    """
    if folder in (None, ""):
        folder = default_fixture_dir()
        if folder is None:
            raise InputFileError(
                "fixtures/mongo", "no folder of recorded MongoDB files found; pass fixtures_dir"
            )
    folder = Path(folder)
    kinds = scan_folder(folder)
    out = FilesAnalysis(str(folder), {k: [p.name for p in v] for k, v in kinds.items() if v})
    for p in kinds["explain"]:
        try:
            out.plans.extend(load_explains(p))
        except InputFileError as exc:
            out.errors.append(str(exc))
    for p in kinds["log"]:
        try:
            out.operations.extend(read_slow_log(p).operations)
        except InputFileError as exc:
            out.errors.append(str(exc))
    for p in kinds["profile"]:
        try:
            out.operations.extend(read_profile(p))
        except InputFileError as exc:
            out.errors.append(str(exc))
    for p in kinds["profile_status"]:
        out.profile_status = profiling_status(read_documents(p)[0])
    for p in kinds["index_stats"]:
        out.index_stats[p.stem] = read_documents(p)
    return out


@dataclass
class MongoAnalysis:
    """The notebook's view of one MongoDB analysis (live, or offline on recorded files).

    Attributes
    ----------
    mode
        ``live`` when a real server was analysed, else ``files``.
    target
        :meth:`MongoConnection.to_dict` (URI redacted).
    notes
        What happened that a reader must know (fallback to offline mode, seeding, hints...).
    plans
        Every explain summary (live before/after first, then recorded ones).
    tree_plan
        The plan to draw.
    before_after
        Live: the app query before/after the advised index. Files: recorded plans of one filter.
    shapes
        Query shapes (slow-query log and profiler), sorted by total time: query operations
        only, like ``mloginfo --queries``.
    indexes
        ``$indexStats`` review.
    advice
        The advice for the guide's ``contexts`` query (against live indexes when live).
    live
        The :class:`LiveReport` (``ran=False`` when it fell back).
    commands
        The other commands of the same operations (createIndexes, insert, hello...), digested
        apart from the query shapes.
    """

    mode: str
    target: dict[str, Any]
    notes: list[str]
    plans: list[ExplainSummary]
    tree_plan: ExplainSummary | None
    before_after: Any
    shapes: Any
    indexes: Any
    advice: IndexAdvice
    live: LiveReport | None = None
    files: FilesAnalysis | None = None
    commands: Any = None

    def plans_frame(self):  # -> pandas.DataFrame
        """One row per plan."""
        return summaries_frame(self.plans)

    @property
    def projection(self) -> dict[str, Any] | None:
        """Bytes saved by the app's projection (live only)."""
        return self.live.projection if self.live and self.live.ran else None

    @property
    def pools(self):  # -> pandas.DataFrame | None
        """Pool settings comparison (live with a URI only)."""
        return self.live.pools if self.live and self.live.ran else None

    def verdict(self) -> dict[str, Any]:
        """``{"status", "summary", "numbers"}``: pass/warn on a live after-plan, info offline;
        ``numbers`` are the figures that decide it (the report's summary shows them).
        """
        if self.live is not None and self.live.ran and self.live.after is not None:
            b, a = self.live.before, self.live.after
            good = (
                not a.collscan
                and not a.in_memory_sort
                and (a.selectivity is None or a.selectivity <= 2.0)
            )
            summary = (
                f"live MongoDB {self.target.get('server_version')}: "
                f"{b.plan_summary if b else '?'} → {a.plan_summary}; docs examined "
                f"{b.docs_examined if b else '?'} → {a.docs_examined}; "
                f"{b.execution_time_ms if b else '?'} → {a.execution_time_ms} ms"
            )
            sel = a.selectivity
            numbers = [
                figure(
                    "docs examined per doc returned (after)",
                    sel,
                    target="≤ 2",
                    status=None if sel is None else ("pass" if sel <= 2.0 else "warn"),
                ),
                figure(
                    "collection scans (after)",
                    int(bool(a.collscan)),
                    target="0",
                    status="warn" if a.collscan else "pass",
                ),
                figure(
                    "in-memory sorts (after)",
                    int(bool(a.in_memory_sort)),
                    target="0",
                    status="warn" if a.in_memory_sort else "pass",
                ),
                figure("execution time (after)", a.execution_time_ms, "ms"),
            ]
            return {"status": "pass" if good else "warn", "summary": summary, "numbers": numbers}
        n = len(self.plans)
        coll = sum(s.collscan for s in self.plans)
        sorts = sum(s.in_memory_sort for s in self.plans)
        top = ""
        if self.shapes is not None and len(self.shapes):
            r = self.shapes.iloc[0]
            top = f"; top shape {r['namespace']} {r['operation']} {r['pattern']} {r['total_ms']:.0f} ms"
        why = "offline (embedded store, not MongoDB)" if self.target.get("embedded") else "offline"
        numbers = [
            figure("recorded plans", n),
            figure("collection scans", coll, target="0", status="warn" if coll else "pass"),
            figure("in-memory sorts", sorts, target="0", status="warn" if sorts else "pass"),
        ]
        if self.shapes is not None and len(self.shapes):
            numbers.append(
                figure("top query shape, total time", self.shapes.iloc[0]["total_ms"], "ms")
            )
        return {
            "status": "info",
            "summary": f"{why}: {n} recorded plans, {coll} COLLSCAN, {sorts} in-memory sorts{top}",
            "numbers": numbers,
        }

    def results(self) -> dict[str, Any]:
        """JSON-able results for :func:`axon_lab.report.record`."""
        files = self.files
        return {
            "mode": self.mode,
            "target": self.target,
            "notes": self.notes,
            "counts": {
                "plans": len(self.plans),
                "collscan": sum(s.collscan for s in self.plans),
                "in_memory_sort": sum(s.in_memory_sort for s in self.plans),
                "covered": sum(s.covered for s in self.plans),
                "sharded": sum(s.sharded for s in self.plans),
                "sbe": sum(s.engine == "sbe" for s in self.plans),
                "shapes": 0 if self.shapes is None else len(self.shapes),
                "operations": sum(int(c) for c in self.shapes["count"])
                if self.shapes is not None and len(self.shapes)
                else 0,
                "other_commands": sum(int(c) for c in self.commands["count"])
                if self.commands is not None and len(self.commands)
                else 0,
            },
            "files": None
            if files is None
            else {
                "folder": files.folder,
                "by_kind": files.files,
                "errors": files.errors,
                "profile_status": files.profile_status,
            },
            "tree_plan": None if self.tree_plan is None else self.tree_plan.to_dict(),
            "plans": [s.to_dict(tree=False) for s in self.plans],
            "contexts_advice": self.advice.to_dict(),
            "live": None if self.live is None else self.live.to_dict(),
        }

    def frames(self) -> dict[str, Any]:
        """Tables for the sidecar (Parquet): plans, before_after, shapes, indexes, pools."""
        out = {
            "plans": self.plans_frame(),
            "before_after": self.before_after,
            "shapes": self.shapes,
            "indexes": self.indexes,
        }
        if self.pools is not None and len(self.pools):
            out["pools"] = self.pools
        return {k: v for k, v in out.items() if v is not None and len(v)}


def analyze(
    target: MongoConnection | Any = None,
    *,
    fixtures_dir: str | Path | None = "",
    collection: str = "contexts",
    workspace_id: str = "",
    tier: str = "",
    seed_documents: int = 0,
    keep_index: bool = False,
    pool_threads: int = 16,
    smoke: bool = False,
) -> MongoAnalysis:
    """Run the MongoDB analysis the notebook shows.

    Live (a :class:`MongoConnection` in live mode): the guide's session via :func:`run_live`; its
    before/after table, plans, profiler/log shapes, ``$indexStats`` and pool comparison, plus
    the recorded files in ``fixtures_dir`` if one is given. Offline — files mode, or a target
    that is the embedded store or not a MongoDB server (the note says so; nothing fails) — the
    recorded files in ``fixtures_dir`` (default: the shared fixtures) are the analysis.

    Parameters
    ----------
    smoke
        Fewer query repetitions and a smaller pool comparison (same code path).
    """
    if not isinstance(target, MongoConnection):
        target = connect(target)
    notes: list[str] = []
    live = None
    if target.requested_mode == "live" and not target.live:
        notes.append(f"Offline mode: {target.reason}.")
    if target.live:
        live = run_live(
            target,
            collection=collection,
            workspace_id=workspace_id,
            tier=tier,
            seed=seed_documents,
            keep_index=keep_index,
            repeats=1 if smoke else 3,
            pool_threads=min(pool_threads, 4) if smoke else pool_threads,
            pool_queries=40 if smoke else 400,
        )
        notes.extend(live.notes)
    files: FilesAnalysis | None = None
    ran = live is not None and live.ran
    if not ran or fixtures_dir:  # live: recorded files only when asked for explicitly
        try:
            files = analyze_files(fixtures_dir or None, smoke=smoke)
            notes.extend(files.errors)
        except InputFileError as exc:
            if not ran:
                raise
            notes.append(f"no recorded files analysed ({exc})")
    plans: list[ExplainSummary] = []
    if live is not None and ran:
        plans += [
            s
            for s in (live.before, live.after, live.workspace_before, live.workspace_after)
            if s is not None
        ]
        before_after = live.before_after()
        shapes = live_shapes(live)
        commands = digest(live.profile_operations + live.log_operations, kind="commands")
        indexes = index_stats_report({collection: live.index_stats}) if live.index_stats else None
        advice = live.advice or contexts_advice()
        tree_plan = live.before
    else:
        before_after = plans_table(recorded_comparison(files.plans)) if files else None
        shapes = digest(files.operations) if files else None
        commands = digest(files.operations, kind="commands") if files else None
        indexes = index_stats_report(files.index_stats) if files and files.index_stats else None
        advice = contexts_advice()
        tree_plan = None
    if files is not None:
        plans += files.plans
        if tree_plan is None:
            tree_plan = worst_plan(files.plans)
    return MongoAnalysis(
        mode="live" if ran else "files",
        target=target.to_dict(),
        notes=notes,
        plans=plans,
        tree_plan=tree_plan,
        before_after=before_after,
        shapes=shapes,
        commands=commands,
        indexes=indexes,
        advice=advice,
        live=live,
        files=files,
    )
