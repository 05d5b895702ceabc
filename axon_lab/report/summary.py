"""The summary a shared report opens with: verdict, the numbers that decide it, what was run.

An experiment's ``verdict(...)`` may carry, beside ``status`` and ``summary``:

* ``numbers``: the 3–5 figures that decide the verdict, each made by :func:`figure` (name,
  value, unit, the target it is judged against, its 95% CI, its status);
* ``warnings``: what a reader must know before trusting them (too few samples, a client-bound
  load generator, an incomplete run);
* ``run``: what was run beyond the notebook's parameters (the target's label, its profile...).

``axon-lab run`` puts :func:`summary_markdown` of the sidecar at the top of the HTML, and the
report index shows :func:`summary_line`. Nothing machine-local is shown: the machine is its
CPU, cores and OS, never its host name or a path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from axon_lab.goals import SYMBOLS
from axon_lab.report.tables import MISSING, cell, header, is_missing, number, percent

#: Parameters shown under "what was run" when a notebook declares them (in this order).
RUN_PARAMETERS = (
    "target_url",
    "profile",
    "scenario",
    "before",
    "after",
    "prompts",
    "connections",
    "duration_s",
    "scale",
    "backend",
    "mode",
    "dataset",
    "smoke",
)


def figure(
    name: str,
    value: float | None,
    unit: str = "",
    *,
    target: str | None = None,
    ci: Sequence[float | None] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """One deciding number for a verdict's ``numbers`` (``target``: ``"< 2,000 ms"``)."""
    return {
        "name": name,
        "value": None if is_missing(value) else value,
        "unit": unit,
        "target": target,
        "ci": list(ci) if ci is not None else None,
        "status": status,
    }


def _value(v: Any, unit: str) -> str:
    if is_missing(v):
        return MISSING
    if unit == "%":
        return percent(v)
    text = cell(v)
    return f"{text} {unit}" if unit and text != MISSING else text


def _ci(ci: Sequence[Any] | None, unit: str) -> str:
    if not ci or len(ci) < 2:
        return MISSING
    lo, hi = ci[0], ci[1]
    if is_missing(lo) and is_missing(hi):
        return MISSING
    f = percent if unit == "%" else number
    return f"{f(lo) if not is_missing(lo) else '?'} – {f(hi) if not is_missing(hi) else '?'}"


def _md(text: Any) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")


def _machine(prov: Mapping[str, Any]) -> str:
    m = prov.get("machine") or {}
    cpu = m.get("cpu") or m.get("machine") or "?"
    parts = [str(cpu), f"{m.get('cores', '?')} cores"]
    if m.get("memory_gb"):
        parts.append(f"{m['memory_gb']} GB")
    if m.get("system"):
        parts.append(str(m["system"]))
    if m.get("python"):
        parts.append(f"Python {m['python']}")
    return ", ".join(parts)


def _commit(prov: Mapping[str, Any]) -> str:
    c = prov.get("commit") or {}
    if not c.get("id"):
        return "not a git checkout"
    return f"{str(c['id'])[:12]}" + (" (uncommitted changes)" if c.get("dirty") else "")


def status_of(doc: Mapping[str, Any]) -> str:
    """The report's status: ``fail`` for a failed notebook, else its verdict's status."""
    if doc.get("status") == "failed":
        return "fail"
    return str((doc.get("verdict") or {}).get("status") or "info")


def summary_line(doc: Mapping[str, Any]) -> str:
    """One line: ``❌ fail — simple: p95 810 ms, ...``."""
    st = status_of(doc)
    text = (doc.get("verdict") or {}).get("summary") or doc.get("error") or "no verdict"
    return f"{SYMBOLS.get(st, '')} {st} — {text}"


def what_was_run(doc: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``[(label, value)]``: the notebook's run parameters, the verdict's ``run`` facts, commit
    and machine.
    """
    prov = doc.get("provenance") or {}
    params = prov.get("parameters") or {}
    verdict = doc.get("verdict") or {}
    rows: list[tuple[str, str]] = [("report", str(doc.get("name")))]
    for key in RUN_PARAMETERS:
        if key not in params:
            continue
        v = params[key]
        if key == "target_url" and not v:
            v = "embedded Axon (started on loopback)"
        rows.append((header(key), cell(v) if v != "" else MISSING))
    for key, v in (verdict.get("run") or {}).items():
        rows.append((str(key).replace("_", " "), cell(v)))
    rows.append(("commit", _commit(prov)))
    rows.append(("machine", _machine(prov)))
    if prov.get("created_utc"):
        rows.append(("run at (UTC)", str(prov["created_utc"])[:19].replace("T", " ")))
    return rows


def summary_markdown(doc: Mapping[str, Any]) -> str:
    """The summary block (Markdown) for the top of a report, from its sidecar document."""
    verdict = doc.get("verdict") or {}
    st = status_of(doc)
    lines = [
        "# Summary",
        "",
        f"**{SYMBOLS.get(st, '')} {st.upper()}** — {_md(verdict.get('summary') or doc.get('error') or 'no verdict')}",
        "",
    ]
    nums = [n for n in verdict.get("numbers") or [] if isinstance(n, Mapping)]
    if nums:
        lines += [
            "| figure | value | target | 95% CI | verdict |",
            "|---|---:|---|---:|---|",
        ]
        for n in nums:
            unit = str(n.get("unit") or "")
            s = n.get("status")
            lines.append(
                f"| {_md(n.get('name'))} | {_md(_value(n.get('value'), unit))} | "
                f"{_md(n.get('target') or MISSING)} | {_md(_ci(n.get('ci'), unit))} | "
                f"{SYMBOLS.get(str(s), '') + ' ' + str(s) if s else MISSING} |"
            )
        lines.append("")
    warnings = [str(w) for w in verdict.get("warnings") or [] if w]
    if doc.get("error") and str(doc["error"]) not in str(verdict.get("summary") or ""):
        warnings.insert(0, f"the notebook failed: {doc['error']}")
    if warnings:
        lines.append("**Warnings**")
        lines.append("")
        lines += [f"- ⚠️ {_md(w)}" for w in dict.fromkeys(warnings)]
        lines.append("")
    run = what_was_run(doc)
    lines.append(
        "**What was run:** " + " · ".join(f"{_md(k)}: {_md(v)}" for k, v in run if v != MISSING)
    )
    return "\n".join(lines)
