"""``axon-lab report``: run every notebook and write ``index.html`` with a one-line verdict each."""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from axon_lab import jsonutil, provenance
from axon_lab.goals import SYMBOLS
from axon_lab.redact import redact_text
from axon_lab.report.run import RunResult, notebook_parameters, run_notebook, scrub_local

NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
#: Smoke runs use a small, representative corpus sample unless AXON_CORPUS_LIMIT is set, so a
#: fresh clone does not embed the full corpus (~16k texts) just to check the notebooks run.
SMOKE_CORPUS_LIMIT = "300"


def notebooks(directory: Path | None = None) -> list[Path]:
    """The workbench's notebooks, in name order (checkpoints excluded)."""
    d = directory or NOTEBOOK_DIR
    return sorted(p for p in d.glob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def smoke_parameters(path: Path) -> dict[str, Any]:
    """``smoke=True`` when the notebook declares it (every notebook must)."""
    return {"smoke": True} if "smoke" in notebook_parameters(path) else {}


#: Index order: what needs attention first.
STATUS_ORDER = {"fail": 0, "warn": 1, "unknown": 2, "info": 3, "pass": 4}


def result_status(r: RunResult) -> str:
    """``fail`` for a notebook that failed, else its verdict's status (``info`` without one)."""
    return "fail" if r.status == "failed" else str((r.verdict or {}).get("status") or "info")


def sort_results(results: Sequence[RunResult]) -> list[RunResult]:
    """Failures first, then warnings, unknowns, infos and passes; by name within each."""
    return sorted(results, key=lambda r: (STATUS_ORDER.get(result_status(r), 2), r.name))


def write_index(
    results: Sequence[RunResult], out_dir: Path, *, title: str = "axon_lab reports"
) -> Path:
    """``index.html`` linking each report with its status, verdict and run time; plus index.json."""
    prov = provenance.collect()
    rows = []
    for r in sort_results(results):
        status = result_status(r)
        v = r.verdict or {}
        summary = v.get("summary") or (r.error or "")
        rows.append(
            f"<tr class='{html.escape(status)}'><td>{SYMBOLS.get(status, '')} {html.escape(status)}</td>"
            f"<td><a href='{html.escape(r.html.relative_to(out_dir).as_posix())}'>{html.escape(r.name)}</a></td>"
            f"<td>{html.escape(r.status)}</td><td>{html.escape(scrub_local(redact_text(summary)))}</td>"
            f"<td style='text-align:right'>{r.seconds:.1f} s</td></tr>"
        )
    commit = prov["commit"]
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:2em;max-width:70em}}
table{{border-collapse:collapse;width:100%}} td,th{{border-bottom:1px solid #ddd;padding:.4em .6em;text-align:left}}
tr.fail td{{background:#fff0f0}} tr.warn td{{background:#fffbe6}} tr.pass td{{background:#f0fff0}}
td:first-child,td:last-child{{white-space:nowrap}}
footer{{color:#666;font-size:.85em;margin-top:2em}}
</style></head><body>
<h1>{html.escape(title)}</h1>
<table><thead><tr><th></th><th>report</th><th>run</th><th>verdict</th><th>time</th></tr></thead>
<tbody>
{chr(10).join(rows)}
</tbody></table>
<p>Failures first, then warnings; each line is the report's verdict.</p>
<footer>Generated {html.escape(prov["created_utc"][:19].replace("T", " "))} UTC on
{html.escape(str(prov["machine"]["cpu"]))}, {prov["machine"]["cores"]} cores —
commit {html.escape(str(commit["id"])[:12])}{" (dirty)" if commit["dirty"] else ""}</footer>
</body></html>
"""
    out = out_dir / "index.html"
    out.write_text(page, encoding="utf-8")
    jsonutil.write_json(
        out_dir / "index.json",
        {
            "provenance": prov,
            "reports": [
                {
                    "name": r.name,
                    "status": r.status,
                    "seconds": r.seconds,
                    "verdict": r.verdict,
                    "error": r.error,
                    "html": r.html.relative_to(out_dir).as_posix(),
                    "sidecar": r.sidecar.relative_to(out_dir).as_posix() if r.sidecar else None,
                }
                for r in sort_results(results)
            ],
        },
    )
    return out


def build_report(
    out_dir: Path | str,
    *,
    smoke: bool = False,
    show_code: bool = False,
    only: Sequence[str] | None = None,
    directory: Path | None = None,
    progress: Any = None,
) -> tuple[list[RunResult], Path, float]:
    """Run every notebook (smoke parameters if asked) into ``out_dir/<name>/`` and index them."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    for nb in notebooks(directory):
        if only and nb.stem not in only:
            continue
        if progress:
            progress(f"running {nb.stem} ...")
        params = smoke_parameters(nb) if smoke else {}
        env = (
            {"AXON_CORPUS_LIMIT": os.environ.get("AXON_CORPUS_LIMIT") or SMOKE_CORPUS_LIMIT}
            if smoke
            else {}
        )
        r = run_notebook(nb, out / nb.stem, parameters=params, show_code=show_code, env=env)
        if progress:
            progress(f"  {r.status} in {r.seconds:.1f} s" + (f": {r.error}" if r.error else ""))
        results.append(r)
    index = write_index(results, out)
    return results, index, time.perf_counter() - t0
