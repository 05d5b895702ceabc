"""The history as a static site (``axon-lab history site``), and the analysis behind it.

Every series (one metric of one scenario or notebook on one machine, runs in time order) is
searched for level shifts (:func:`axon_lab.history.changepoints.detect`). Its *status* is the
kind of its last change point (``regression`` or ``improvement``), else ``steady``; its
*baseline* is the mean of the segment before that change point, else the mean of all runs but the
latest; *change* is ``(latest - baseline) / baseline``.

:func:`build_site` writes plain HTML that works from ``file://`` (no server, no script, no
network): ``index.html`` (one row per series, regressions first, with an inline SVG sparkline)
and ``series/<slug>.html`` per series (its trend figure as a PNG beside it, the change points,
the runs with their provenance and a link to each run's report). Every link is relative; a run's
``report`` is linked relative to the site's directory (build the site where the reports live),
an absolute path is shown by its file name only. Text is HTML-escaped and free text (options,
labels) goes through :func:`axon_lab.redact.redact_text`.

For notebooks: :func:`select` (metrics, latest runs per series), :func:`changes` (the change
points as a frame), :func:`latest` (the comparison table), :func:`verdict`, :func:`results`, and
:func:`demo_history` (a small synthetic history through the real ingestion, for smoke runs).
"""

from __future__ import annotations

import hashlib
import html
import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from axon_lab import __version__, jsonutil
from axon_lab.errors import ConfigError
from axon_lab.history import plots
from axon_lab.history.changepoints import ChangePoint, detect
from axon_lab.history.check import SERIES_KEY
from axon_lab.history.store import History, metric_info, open_history
from axon_lab.redact import redact_text

__all__ = [
    "CHANGE_COLUMNS",
    "LATEST_COLUMNS",
    "STATUS",
    "build_site",
    "changes",
    "demo_history",
    "latest",
    "results",
    "select",
    "slug",
    "verdict",
]

#: Status word → (symbol, sort rank); regressions first.
STATUS: dict[str, tuple[str, int]] = {
    "regression": ("✗", 0),
    "improvement": ("✓", 1),
    "steady": ("=", 2),
}
CHANGE_COLUMNS: tuple[str, ...] = (
    *SERIES_KEY,
    "unit",
    "better",
    "index",
    "run",
    "created_utc",
    "run_id",
    "commit_before",
    "commit",
    "before",
    "after",
    "change",
    "p_value",
    "kind",
)
LATEST_COLUMNS: tuple[str, ...] = (
    "status",
    "symbol",
    *SERIES_KEY,
    "machine_short",
    "unit",
    "better",
    "runs",
    "latest",
    "baseline",
    "change",
    "change_points",
    "since_run",
    "since_utc",
    "latest_utc",
    "commit",
    "slug",
)
#: Trend figures: 9 × 3.6 inches at this dpi (720 × 288 px).
DPI = 80
_SPARK_POINTS = 120


# --------------------------------------------------------------------------- analysis


@dataclass(frozen=True)
class _Series:
    key: tuple[Any, ...]
    rows: pd.DataFrame  # in time order, index 0..n-1
    points: list[ChangePoint]


def _key_text(key: Sequence[Any]) -> tuple[str, ...]:
    return tuple("" if _missing(v) else str(v) for v in key)


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v))


def select(
    frame: pd.DataFrame, *, metrics: Sequence[str] | None = None, window: int | None = None
) -> pd.DataFrame:
    """History rows of the chosen metrics, the latest ``window`` runs of each series, in time order.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy history rows (:meth:`axon_lab.history.History.frame`).
    metrics : sequence of str, optional
        Metric names (``http_req_duration:p95``); empty or ``None``: all.
    window : int, optional
        Keep the latest ``window`` runs of each series; ``None`` or 0: all.

    Returns
    -------
    pandas.DataFrame
        The rows, sorted by ``created_utc`` (stable), with a fresh index.

    Raises
    ------
    ConfigError
        If a metric is not in the history (the message lists some that are).
    """
    f = frame
    if metrics:
        known = sorted(set(frame["metric"].dropna().astype(str))) if len(frame) else []
        unknown = [m for m in metrics if m not in known]
        if unknown:
            raise ConfigError(
                f"metric {', '.join(map(repr, unknown))} not in the history "
                f"(known: {', '.join(known[:8]) or 'none'}{' ...' if len(known) > 8 else ''})"
            )
        f = f[f["metric"].isin(list(metrics))]
    if window is not None and window < 0:
        raise ConfigError(f"window must be at least 0, not {window}")
    f = f.sort_values("created_utc", kind="stable")
    if window and len(f):
        f = f.groupby(list(SERIES_KEY), sort=False, dropna=False).tail(window)
    return f.reset_index(drop=True)


def _split(frame: pd.DataFrame) -> list[tuple[tuple[Any, ...], pd.DataFrame]]:
    """The series of ``frame`` in (metric, name, machine) order, each in time order."""
    if not len(frame):
        return []
    f = frame.sort_values("created_utc", kind="stable")
    return [
        (tuple(k), rows.reset_index(drop=True))
        for k, rows in f.groupby(list(SERIES_KEY), sort=True, dropna=False)
    ]


def _better(rows: pd.DataFrame) -> str:
    b = rows["better"].iloc[0] if "better" in rows and len(rows) else None
    return b if b in ("lower", "higher") else metric_info(str(rows["metric"].iloc[0])).better


def _analyze(
    frame: pd.DataFrame,
    *,
    min_effect: float,
    alpha: float,
    points: pd.DataFrame | None = None,
) -> list[_Series]:
    """Each series with its change points (detected, or taken from a :func:`changes` frame)."""
    given: dict[tuple[str, ...], list[ChangePoint]] = {}
    if points is not None and len(points):
        fields = ("index", "before", "after", "change", "p_value", "kind")
        for rec in points.to_dict("records"):
            cp = ChangePoint(**{k: rec[k] for k in fields})
            given.setdefault(_key_text([rec[k] for k in SERIES_KEY]), []).append(cp)
    out = []
    for key, rows in _split(frame):
        if points is not None:
            pts = sorted(given.get(_key_text(key), []), key=lambda p: p.index)
        else:
            pts = detect(
                rows["value"].to_numpy(dtype=float),
                better=_better(rows),
                min_effect=min_effect,
                alpha=alpha,
            )
        out.append(_Series(key, rows, pts))
    return out


def _text(v: Any) -> str | None:
    return None if _missing(v) else str(v)


def _changes_frame(series: Sequence[_Series]) -> pd.DataFrame:
    recs = []
    for s in series:
        unit, better = _text(s.rows["unit"].iloc[0]) or "", _better(s.rows)
        for p in s.points:
            i = p.index
            recs.append(
                {
                    **dict(zip(SERIES_KEY, s.key, strict=True)),
                    "unit": unit,
                    "better": better,
                    "index": i,
                    "run": i + 1,
                    "created_utc": s.rows["created_utc"].iloc[i],
                    "run_id": s.rows["run_id"].iloc[i],
                    "commit_before": _text(s.rows["commit"].iloc[i - 1]) if i > 0 else None,
                    "commit": _text(s.rows["commit"].iloc[i]),
                    "before": p.before,
                    "after": p.after,
                    "change": p.change,
                    "p_value": p.p_value,
                    "kind": p.kind,
                }
            )
    return pd.DataFrame(recs, columns=list(CHANGE_COLUMNS))


def changes(frame: pd.DataFrame, *, min_effect: float = 0.05, alpha: float = 0.01) -> pd.DataFrame:
    """The change points of every series of ``frame``, one row each.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy history rows (all of a history, or :func:`select`'s choice).
    min_effect, alpha : float
        Smallest relative change and largest Welch p-value to report
        (:func:`axon_lab.history.changepoints.detect`).

    Returns
    -------
    pandas.DataFrame
        :data:`CHANGE_COLUMNS`: the series key, ``index`` (0-based position in the series of the
        first run after the shift) and ``run`` (the same, 1-based), that run's date, id and
        commit, the commit before it, the segment means ``before``/``after``, ``change``
        (relative), ``p_value`` and ``kind`` (``regression`` or ``improvement``).
    """
    return _changes_frame(_analyze(frame, min_effect=min_effect, alpha=alpha))


def _summary_row(s: _Series) -> dict[str, Any]:
    rows, pts = s.rows, s.points
    values = rows["value"].to_numpy(dtype=float)
    n = values.size
    last = float(values[-1])
    if pts:
        status, baseline = pts[-1].kind, float(pts[-1].before)
        since_run: int | None = pts[-1].index + 1
        since_utc = rows["created_utc"].iloc[pts[-1].index]
    else:
        earlier = values[:-1][np.isfinite(values[:-1])]
        status, baseline = "steady", float(earlier.mean()) if earlier.size else math.nan
        since_run, since_utc = None, pd.NaT
    change = (last - baseline) / abs(baseline) if baseline and math.isfinite(baseline) else math.nan
    metric, name, machine = s.key
    return {
        "status": status,
        "symbol": STATUS[status][0],
        "metric": metric,
        "name": name,
        "machine": machine,
        "machine_short": plots.machine_label(machine),
        "unit": _text(rows["unit"].iloc[0]) or "",
        "better": _better(rows),
        "runs": n,
        "latest": last,
        "baseline": baseline,
        "change": change,
        "change_points": len(pts),
        "since_run": since_run,
        "since_utc": since_utc,
        "latest_utc": rows["created_utc"].iloc[-1],
        "commit": _text(rows["commit"].iloc[-1]),
        "slug": slug(s.key),
    }


def _latest_frame(series: Sequence[_Series]) -> pd.DataFrame:
    out = pd.DataFrame([_summary_row(s) for s in series], columns=list(LATEST_COLUMNS))
    out["since_run"] = out["since_run"].astype("Int64")
    if not len(out):
        return out
    rank = out["status"].map(lambda s: STATUS[s][1])
    size = -out["change"].abs().fillna(-1.0)
    order = np.lexsort(
        (out["machine"].astype(str), out["name"].astype(str), out["metric"].astype(str), size, rank)
    )
    return out.iloc[order].reset_index(drop=True)


def latest(
    frame: pd.DataFrame,
    points: pd.DataFrame | None = None,
    *,
    min_effect: float = 0.05,
    alpha: float = 0.01,
) -> pd.DataFrame:
    """One row per series: the latest run against its baseline, regressions first.

    Parameters
    ----------
    frame : pandas.DataFrame
        Tidy history rows.
    points : pandas.DataFrame, optional
        The series' change points from :func:`changes` (else detected here with ``min_effect``
        and ``alpha``).
    min_effect, alpha : float
        Detection settings when ``points`` is not given.

    Returns
    -------
    pandas.DataFrame
        :data:`LATEST_COLUMNS`. ``status`` is the kind of the series' last change point or
        ``steady``; ``baseline`` the mean of the segment before that change point, or of all
        earlier runs; ``change`` = ``(latest - baseline) / |baseline|``; ``since_run`` /
        ``since_utc`` the first run after the last change point. Sorted by status (regression,
        improvement, steady), then by the size of the change.
    """
    return _latest_frame(_analyze(frame, min_effect=min_effect, alpha=alpha, points=points))


def verdict(table: pd.DataFrame) -> dict[str, str]:
    """``{"status", "summary"}`` of a :func:`latest` table: ``warn`` when a series regressed."""
    if not len(table):
        return {"status": "info", "summary": "no runs in the history"}
    reg = table[table["status"] == "regression"]
    imp = int((table["status"] == "improvement").sum())
    n = len(table)
    if not len(reg):
        return {"status": "pass", "summary": f"no regression in {n} series ({imp} improved)"}
    w = reg.iloc[0]
    change = "" if _missing(w["change"]) else f" {w['change']:+.0%}"
    return {
        "status": "warn",
        "summary": f"{len(reg)} of {n} series regressed (worst: {w['metric']} [{w['name']} @ "
        f"{w['machine_short']}]{change} since run {w['since_run']}); {imp} improved",
    }


def results(table: pd.DataFrame, points: pd.DataFrame) -> dict[str, Any]:
    """The notebook's results: counts, and the regressed and improved series."""
    keep = [
        "metric",
        "name",
        "machine",
        "unit",
        "runs",
        "latest",
        "baseline",
        "change",
        "since_run",
        "since_utc",
        "commit",
    ]
    by = {k: table[table["status"] == k][keep].to_dict("records") for k in STATUS}
    return {
        "series": len(table),
        "change_points": len(points),
        "regressions": by["regression"],
        "improvements": by["improvement"],
        "steady": len(by["steady"]),
    }


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5rem auto;
max-width:1280px;padding:0 1rem;color:#212121}
h1{font-size:1.4rem;margin:.2rem 0}h2{font-size:1.1rem;margin:1.6rem 0 .4rem}
h1 small{font-weight:normal;color:#616161}
.meta{color:#616161;font-size:.85rem}
table{border-collapse:collapse;width:100%;font-size:.85rem}
th,td{border-bottom:1px solid #e0e0e0;padding:.25rem .45rem;text-align:left;vertical-align:top}
th{background:#f5f5f5;position:sticky;top:0}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.regression{color:#c62828}.improvement{color:#2e7d32}.steady{color:#616161}
td.status{white-space:nowrap;font-weight:600}
tr.shift td{background:#fff8e1}
code{font-size:.8rem}td.opts code{word-break:break-all}.nw{white-space:nowrap}
dl{display:grid;grid-template-columns:max-content auto;gap:.1rem 1rem;font-size:.9rem}
dt{color:#616161}dd{margin:0}
figure{margin:1rem 0}figcaption{color:#616161;font-size:.8rem}
img{max-width:100%;height:auto}
a{color:#1565c0}
"""


def _e(v: Any) -> str:
    return html.escape("" if _missing(v) else str(v))


def _num(v: Any) -> str:
    if _missing(v) or not isinstance(v, int | float | np.number):
        return "–"
    x = float(v)
    if not math.isfinite(x):
        return "–"
    return f"{x:,.0f}" if abs(x) >= 1e4 else f"{x:.4g}"


def _pct(v: Any) -> str:
    return "–" if _missing(v) or not math.isfinite(float(v)) else f"{float(v):+.1%}"


def _date(v: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return "" if _missing(v) else pd.Timestamp(v).tz_convert("UTC").strftime(fmt)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        f"{body}\n</body>\n</html>\n"
    )


def slug(key: Sequence[Any]) -> str:
    """File name stem of a series page: readable key plus a hash of the full key (unique)."""
    metric, name, machine = _key_text(key)
    readable = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{metric}--{name}--{plots.machine_label(machine)}")
    digest = hashlib.sha1("\0".join(_key_text(key)).encode()).hexdigest()[:8]
    return f"{readable.strip('-.')[:80]}-{digest}"


def _sparkline_svg(values: np.ndarray, status: str, mark: int | None) -> str:
    """An inline SVG polyline of ``values`` (bucket means when long), the last value dotted."""
    w, h, pad = 120, 24, 2
    v = values[np.isfinite(values)] if values.size else values
    if v.size < 2:
        return ""
    n = v.size
    if n > _SPARK_POINTS:  # bucket means: a step stays a step, the page stays small
        edges = np.linspace(0, n, _SPARK_POINTS + 1).astype(int)
        v = np.add.reduceat(v, edges[:-1]) / np.diff(edges)
    lo, hi = float(v.min()), float(v.max())
    span = hi - lo or 1.0
    xs = np.linspace(pad, w - pad, v.size)
    ys = h - pad - (v - lo) / span * (h - 2 * pad)
    pts = " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))
    color = {"regression": "#c62828", "improvement": "#2e7d32"}.get(status, "#1565c0")
    tick = ""
    if mark is not None and n > 1:
        mx = pad + (w - 2 * pad) * mark / (n - 1)
        tick = f'<line x1="{mx:.1f}" y1="0" x2="{mx:.1f}" y2="{h}" stroke="{color}" stroke-dasharray="2,2"/>'
    return (
        f'<svg width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="sparkline of {n} runs"><title>{n} runs, {lo:.4g} to {hi:.4g}</title>'
        f'{tick}<polyline fill="none" stroke="#607d8b" stroke-width="1" points="{pts}"/>'
        f'<circle cx="{xs[-1]:.1f}" cy="{ys[-1]:.1f}" r="2" fill="{color}"/></svg>'
    )


def _status_cell(status: str) -> str:
    return f'<td class="status {status}">{STATUS[status][0]} {status}</td>'


def _index_html(
    table: pd.DataFrame,
    series: Sequence[_Series],
    frame: pd.DataFrame,
    *,
    min_effect: float,
    alpha: float,
) -> str:
    by_slug = {slug(s.key): s for s in series}
    counts = table["status"].value_counts() if len(table) else pd.Series(dtype=int)
    runs = frame["run_id"].nunique() if len(frame) else 0
    span = (
        f" from {_date(frame['created_utc'].min(), '%Y-%m-%d')} to "
        f"{_date(frame['created_utc'].max(), '%Y-%m-%d')} (UTC)"
        if len(frame)
        else ""
    )
    head = (
        "<h1>Run history</h1>\n"
        f'<p class="meta">{len(table)} series · {runs} runs{span} · change points: Welch '
        f"p &lt; {alpha:g} and |change| ≥ {min_effect:.0%} · axon_lab {_e(__version__)}</p>\n"
        "<p>"
        + " · ".join(
            f'<span class="{k}">{sym} {int(counts.get(k, 0))} {k}</span>'
            for k, (sym, _) in STATUS.items()
        )
        + "</p>\n"
    )
    rows = []
    for r in table.to_dict("records"):
        s = by_slug[r["slug"]]
        mark = s.points[-1].index if s.points else None
        since = (
            ""
            if _missing(r["since_run"])
            else f"run {r['since_run']}, {_date(r['since_utc'], '%Y-%m-%d')}"
        )
        rows.append(
            f"<tr>{_status_cell(r['status'])}"
            f'<td><a href="series/{quote(r["slug"])}.html"><code>{_e(r["metric"])}</code></a></td>'
            f"<td>{_e(r['name'])}</td>"
            f'<td><span title="{_e(r["machine"])}">{_e(r["machine_short"])}</span></td>'
            f"<td>{_e(r['unit'])}</td><td class=num>{r['runs']}</td>"
            f"<td class=num>{_num(r['latest'])}</td><td class=num>{_num(r['baseline'])}</td>"
            f'<td class="num {r["status"]}">{_pct(r["change"])}</td><td>{_e(since)}</td>'
            f"<td>{_sparkline_svg(s.rows['value'].to_numpy(dtype=float), r['status'], mark)}</td>"
            "</tr>"
        )
    if not rows:
        rows.append('<tr><td colspan="11">No runs in the history.</td></tr>')
    table_html = (
        "<table>\n<thead><tr><th>status</th><th>metric</th><th>name</th><th>machine</th>"
        "<th>unit</th><th class=num>runs</th><th class=num>latest</th>"
        "<th class=num>baseline</th><th class=num>change</th><th>since</th><th>trend</th>"
        "</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>\n"
    )
    note = (
        '<p class="meta">A series is one metric of one scenario or notebook on one machine '
        "(runs of different machines are never mixed). Status: the kind of the series' last "
        "change point, else steady. Baseline: the mean of the segment before the last change "
        "point, else of all earlier runs; change = (latest − baseline) / baseline. The sparkline "
        "shows every run (bucket means when long); the dashed tick is the last change point.</p>"
    )
    return _page("Run history", head + table_html + note)


def _report_link(report: Any) -> str:
    """A relative link to a run's report, a web link as is, an absolute path by its name only."""
    text = _text(report)
    if not text or not text.strip():
        return ""
    text = text.strip()
    if re.match(r"^https?://", text, re.I):
        return f'<a href="{_e(redact_text(text))}">report</a>'
    if re.match(r"^([A-Za-z][A-Za-z0-9+.-]*:|[/\\~])", text):  # absolute, file: or C:\
        return _e(re.split(r"[/\\]", text.rstrip("/\\"))[-1])
    return f'<a href="../{quote(text.replace(chr(92), "/"))}">report</a>'


def _alt(s: _Series, row: dict[str, Any]) -> str:
    rows = s.rows
    parts = [
        f"Trend of {row['metric']} for {row['name']} on {row['machine_short']}: "
        f"{row['runs']} runs from {_date(rows['created_utc'].iloc[0], '%Y-%m-%d')} to "
        f"{_date(rows['created_utc'].iloc[-1], '%Y-%m-%d')}, latest {_num(row['latest'])} "
        f"{row['unit']}".rstrip()
        + "."
    ]
    if s.points:
        shifts = "; ".join(
            f"{plots.change_label(p.change, p.kind)} at run {p.index + 1} "
            f"({_num(p.before)} → {_num(p.after)})"
            for p in s.points
        )
        parts.append(f"{len(s.points)} change point{'s' if len(s.points) > 1 else ''}: {shifts}.")
    else:
        parts.append("No change point.")
    return " ".join(parts)


def _series_html(s: _Series, row: dict[str, Any], png: str, alt: str) -> str:
    info = metric_info(str(row["metric"]))
    unit = row["unit"]
    head = (
        '<p><a href="../index.html">← all series</a></p>\n'
        f"<h1><code>{_e(row['metric'])}</code> <small>{_e(row['name'])} @ "
        f"{_e(row['machine_short'])}</small></h1>\n<dl>"
        f"<dt>metric</dt><dd>{_e(info.label)} ({_e(unit or 'no unit')}, {_e(row['better'])} "
        "is better)</dd>"
        f"<dt>scenario / notebook</dt><dd>{_e(row['name'])}</dd>"
        f"<dt>machine</dt><dd><code>{_e(row['machine'])}</code></dd>"
        f'<dt>status</dt><dd class="{row["status"]}">{row["symbol"]} {row["status"]}</dd>'
        f"<dt>latest</dt><dd>{_num(row['latest'])} {_e(unit)} "
        f"(baseline {_num(row['baseline'])}, {_pct(row['change'])})</dd>"
        f"<dt>runs</dt><dd>{row['runs']}</dd></dl>\n"
    )
    fig = (
        f'<figure><img src="{quote(png)}" alt="{_e(alt)}" width="{int(9 * DPI)}" '
        f'height="{int(3.6 * DPI)}"><figcaption>{_e(alt)}</figcaption></figure>\n'
    )
    rows = s.rows
    cps = []
    for p in s.points:
        i = p.index
        commit = _text(rows["commit"].iloc[i])
        cps.append(
            f'<tr><td class=num><a href="#run-{i + 1}">{i + 1}</a></td>'
            f"<td>{_date(rows['created_utc'].iloc[i])}</td>"
            f'<td><code title="{_e(commit)}">{_e((commit or "")[:8])}</code></td>'
            f"<td class=num>{_num(p.before)} → {_num(p.after)}</td>"
            f'<td class="num {_e(p.kind)}">{_pct(p.change)}</td>'
            f"<td class=num>{p.p_value:.2g}</td><td class={_e(p.kind)}>{_e(p.kind)}</td></tr>"
        )
    cp_html = "<h2>Change points</h2>\n" + (
        "<table><thead><tr><th class=num>run</th><th>date (UTC)</th><th>commit</th>"
        f"<th class=num>before → after ({_e(unit)})</th><th class=num>change</th>"
        "<th class=num>p-value</th><th>kind</th></tr></thead><tbody>\n"
        + "\n".join(cps)
        + "\n</tbody></table>\n"
        if cps
        else "<p>No significant level shift.</p>\n"
    )
    shift_at = {p.index: p for p in s.points}
    body = []
    cols = [
        rows[c].tolist()
        for c in (
            "created_utc",
            "value",
            "run_id",
            "commit",
            "branch",
            "dirty",
            "kind",
            "label",
            "options",
            "report",
        )
    ]
    for i in range(len(rows) - 1, -1, -1):  # newest first
        t, v, rid, commit, branch, dirty, kind, label, opts, report = (c[i] for c in cols)
        shift = shift_at.get(i)
        mark = (
            f' <span class="{shift.kind}">← {_e(plots.change_label(shift.change, shift.kind))}</span>'
            if shift
            else ""
        )
        dirty_text = "" if _missing(dirty) else ("yes" if dirty else "no")
        opts_text = redact_text(str(opts)) if _text(opts) else ""
        body.append(
            f'<tr id="run-{i + 1}"{" class=shift" if shift else ""}><td class=num>{i + 1}</td>'
            f"<td class=nw>{_date(t)}</td><td class=num>{_num(v)}{mark}</td>"
            f'<td class=nw><code title="{_e(rid)}">{_e(str(rid)[:8])}</code></td>'
            f'<td class=nw><code title="{_e(commit)}">{_e((_text(commit) or "")[:8])}</code></td>'
            f"<td>{_e(branch)}</td><td>{dirty_text}</td><td>{_e(kind)}</td>"
            f"<td>{_e(redact_text(_text(label) or ''))}</td>"
            f"<td class=opts><code>{_e(opts_text)}</code></td><td>{_report_link(report)}</td></tr>"
        )
    runs_html = (
        f"<h2>Runs ({len(rows)}, newest first)</h2>\n<table><thead><tr><th class=num>run</th>"
        f"<th>date (UTC)</th><th class=num>value ({_e(unit)})</th><th>run id</th>"
        "<th>commit</th><th>branch</th><th>dirty</th><th>kind</th><th>label</th>"
        "<th>options</th><th>report</th></tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table>\n"
    )
    title = f"{row['metric']} · {row['name']} @ {row['machine_short']}"
    return _page(title, head + fig + cp_html + runs_html)


def build_site(
    history_frame: pd.DataFrame,
    out_dir: Path | str,
    *,
    min_effect: float = 0.05,
    alpha: float = 0.01,
) -> Path:
    """Write the static history site into ``out_dir`` and return the path of its ``index.html``.

    Parameters
    ----------
    history_frame : pandas.DataFrame
        Tidy history rows (:meth:`axon_lab.history.History.frame`), all series.
    out_dir : path
        Where to write ``index.html`` and ``series/<slug>.html`` + ``.png`` (created; files of
        an earlier build are overwritten, pages of series no longer present are left).
    min_effect, alpha : float
        Change point settings (:func:`axon_lab.history.changepoints.detect`).

    Returns
    -------
    pathlib.Path
        ``out_dir/index.html``. The pages need no server (open them from ``file://``), use
        relative links only and embed no absolute local path.
    """
    out = Path(out_dir)
    (out / "series").mkdir(parents=True, exist_ok=True)
    series = _analyze(history_frame, min_effect=min_effect, alpha=alpha)
    table = _latest_frame(series)
    by_slug = {slug(s.key): s for s in series}
    for row in table.to_dict("records"):
        s = by_slug[row["slug"]]
        alt = _alt(s, row)
        title = (
            f"{row['metric']} · {row['name']} @ {row['machine_short']}: {row['runs']} runs, "
            f"{len(s.points)} change point{'' if len(s.points) == 1 else 's'}"
        )
        fig = plots.trend(s.rows, s.points, title=title)
        png = f"{row['slug']}.png"
        fig.savefig(out / "series" / png, dpi=DPI, format="png")
        page = _series_html(s, row, png, alt)
        (out / "series" / f"{row['slug']}.html").write_text(page, encoding="utf-8")
    index = out / "index.html"
    index.write_text(
        _index_html(table, series, history_frame, min_effect=min_effect, alpha=alpha),
        encoding="utf-8",
    )
    return index


# --------------------------------------------------------------------------- demo

_DEMO_MACHINES = ("demo-a|Demo CPU 3.0GHz|8|16.0", "demo-b|Demo CPU 2.2GHz|4|8.0")


def demo_history(path: Path | str | None = None, *, runs: int = 40, seed: int = 0) -> History:
    """A small synthetic history written through the real ingestion, for smoke runs and demos.

    ``runs`` commits, one a day, on machine ``demo-a``: per commit a load run (``summary.json``:
    p50/p95/p99, throughput, error rate, context cache hit rate) and a profiling sidecar (server
    RSS); every other commit also a load run on ``demo-b`` (a separate series). The p95 latency
    of ``demo-a`` steps up 10% at the middle commit (where the options turn the L1 cache off) and
    its throughput up 15% at three quarters; the rest is noise (4%, 3%, ...).

    Parameters
    ----------
    path : path, optional
        Directory for the generated run files (``runs/``) and the Parquet history
        (``history/``); default: a new temporary directory (left for the caller to remove).
    runs : int
        Commits (at least 2).
    seed : int
        Noise seed.

    Returns
    -------
    History
        The Parquet history at ``path/history`` holding the runs.
    """
    if runs < 2:
        raise ConfigError(f"demo_history needs at least 2 runs, not {runs}")
    root = Path(path) if path is not None else Path(tempfile.mkdtemp(prefix="axon-history-demo-"))
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2026-01-05T09:00:00Z")
    files: list[Path] = []
    for i in range(runs):
        commit = hashlib.sha1(f"demo commit {i}".encode()).hexdigest()
        when = t0 + pd.Timedelta(days=i, minutes=int(rng.integers(0, 240)))
        l1 = i < runs // 2
        for m, machine in enumerate(_DEMO_MACHINES):
            if m == 1 and i % 2:
                continue
            prov = {
                "created_utc": (when + pd.Timedelta(minutes=30 * m)).isoformat(),
                "machine_id": machine,
                "commit": {"id": commit, "dirty": False, "branch": "main"},
                "parameters": {"options": {"l1_cache": l1 if m == 0 else True}},
            }
            base = 1800.0 if m == 0 else 2300.0
            step = 1.10 if (m == 0 and not l1) else 1.0
            p95 = base * step * (1 + 0.04 * rng.standard_normal())
            rps = 12.0 * (1.15 if (m == 0 and i >= 3 * runs // 4) else 1.0)
            rps *= 1 + 0.03 * rng.standard_normal()
            summary = {
                "schema": "axon_lab.load.summary/1",
                "name": "demo",
                "target": {"scenario": "simple"},
                "provenance": prov,
                "metrics": {"http_req_duration": {"p50": p95 * 0.55, "p95": p95, "p99": p95 * 1.3}},
                "rps": rps,
                "error_rate": max(0.0, 0.004 + 0.001 * rng.standard_normal()),
                "cache": {"context": {"hit_rate": min(1.0, 0.82 + 0.02 * rng.standard_normal())}},
            }
            files.append(
                jsonutil.write_json(root / "runs" / f"{i:03d}-{m}" / "summary.json", summary)
            )
            if m == 0:
                sidecar = {
                    "schema": "axon_lab.results/1",
                    "name": "profiling",
                    "status": "ok",
                    "verdict": {"status": "pass", "summary": "demo"},
                    "provenance": prov,
                    "results": {
                        "resources": [{"rss_max_mb": 950 * (1 + 0.02 * rng.standard_normal())}]
                    },
                    "frames": {},
                    "error": None,
                }
                files.append(
                    jsonutil.write_json(
                        root / "runs" / f"{i:03d}-p" / "profiling.results.json", sidecar
                    )
                )
    h = open_history(root / "history")
    h.add(files)
    return h
