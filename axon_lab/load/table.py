"""An autocannon/k6-like text report of a load summary (box tables, checks, thresholds)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

_ROWS = (
    ("http_req_duration", "Response time"),
    ("http_req_service_duration", "Service time"),
    ("http_req_waiting", "TTFB"),
    ("schedule_lag", "Schedule lag"),
    ("http_req_connecting", "Connect"),
)
_COLS = (
    ("min", "min"),
    ("p50", "p50"),
    ("p90", "p90"),
    ("p95", "p95"),
    ("p99", "p99"),
    ("p999", "p99.9"),
    ("max", "max"),
    ("mean", "avg"),
    ("stddev", "stdev"),
)


def _num(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        if abs(v) >= 1000:
            return f"{v:,.0f}"
        if abs(v) >= 100:
            return f"{v:.1f}"
        return f"{v:.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _ci(ci: Sequence[Any]) -> str:
    lo, hi = (ci or [None, None])[:2]
    return f"{_num(lo) if lo is not None else '?'}–{_num(hi) if hi is not None else '?'}"


def box(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A box-drawn table (autocannon style); the first column is left-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        parts = [
            f" {str(c):<{w}} " if i == 0 else f" {str(c):>{w}} "
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "│" + "│".join(parts) + "│"

    def rule(left: str, mid: str, right: str) -> str:
        return left + mid.join("─" * (w + 2) for w in widths) + right

    out = [rule("┌", "┬", "┐"), line(header), rule("├", "┼", "┤")]
    out += [line(r) for r in rows]
    out.append(rule("└", "┴", "┘"))
    return "\n".join(out)


def _bytes(n: int) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000.0  # type: ignore[assignment]
    return f"{n} B"


def render(summary: Mapping[str, Any]) -> str:
    """The report of ``summary`` as text (latency table, Req/Sec, counts, checks, thresholds)."""
    s = summary
    out: list[str] = []
    tgt = s.get("target", {})
    shape = s.get("shape", {})
    loop = s.get("loop", "closed")
    out.append(
        f"Running {shape.get('duration_s', 0):g}s test @ {tgt.get('method', 'GET')} "
        f"{tgt.get('url')}" + (f"  [scenario {tgt['scenario']}]" if tgt.get("scenario") else "")
    )
    out.append(
        f"{loop} loop · {shape.get('executor')} · stages {shape.get('stages')}"
        + (f" · {shape.get('arrival')} arrivals" if loop == "open" else "")
        + f" · engine {tgt.get('engine', 'asyncio')}"
    )
    out.append("")
    metrics = s.get("metrics", {})
    rows = []
    for key, label in _ROWS:
        st = metrics.get(key)
        if not st or not st.get("count"):
            continue
        if key == "schedule_lag" and loop == "closed" and (st.get("p99") or 0) < 1:
            continue  # closed loop sends at once: the row says nothing
        ci = (st.get("ci") or {}).get("p99") or [None, None]
        rows.append([label, *[_num(st.get(k)) for k, _ in _COLS], _ci(ci), f"{st['count']:,}"])
    if rows:
        out.append(box(["Latency (ms)", *[h for _, h in _COLS], "p99 95% CI", "n"], rows))
    stage_rows = []
    for key, st in metrics.items():
        if key.startswith("stage.") and st.get("count"):
            stage_rows.append(
                [
                    key[6:],
                    *[_num(st.get(k)) for k in ("p50", "p90", "p95", "p99", "max", "mean")],
                    f"{st['count']:,}",
                ]
            )
    if stage_rows:
        out.append(box(["Stages (ms)", "p50", "p90", "p95", "p99", "max", "avg", "n"], stage_rows))
    sse_rows = [
        [
            key[4:],
            *[_num(st.get(k)) for k in ("p50", "p90", "p95", "p99", "max", "mean")],
            f"{st['count']:,}",
        ]
        for key, st in metrics.items()
        if key.startswith("sse.") and st.get("count")
    ]
    if sse_rows:
        out.append(
            box(["Stream (ms; chunks: n)", "p50", "p90", "p95", "p99", "max", "avg", "n"], sse_rows)
        )
    ps = s.get("throughput", {}).get("per_second", {})
    if ps.get("count"):
        out.append(
            box(
                ["Stat", "1%", "2.5%", "50%", "97.5%", "Avg", "Stdev", "Min"],
                [
                    [
                        "Req/Sec",
                        *[
                            _num(ps.get(k), 1)
                            for k in ("p1", "p2_5", "p50", "p97_5", "mean", "stddev", "min")
                        ],
                    ]
                ],
            )
        )
    req = s.get("requests", {})
    out.append("")
    err_rate = s.get("error_rate")
    out.append(
        f"{s.get('count', 0):,} requests in {s.get('elapsed_s', 0):.1f}s, "
        f"{_bytes(req.get('bytes_received', 0))} read · {_num(s.get('rps'), 1)} req/s · "
        f"{s.get('errors', 0):,} errors ({(err_rate or 0) * 100:.2f}%)"
    )
    sc = req.get("status_counts", {})
    if sc:
        out.append("status " + ", ".join(f"{k}: {v:,}" for k, v in sc.items()))
    rej = s.get("rejected") or {}
    if rej.get("cause"):
        out.append(f"refused: {rej['cause']}")
    rl = s.get("rate_limit") or {}
    if rl.get("policy") or rl.get("limited"):
        out.append(
            f"rate limit: policy {rl.get('policy') or '?'}, {rl.get('limited', 0):,} × 429, "
            f"remaining {rl.get('remaining') if rl.get('remaining') is not None else '?'}"
        )
    extra = {
        k: req.get(k, 0)
        for k in ("timeouts", "connect_errors", "io_errors", "protocol_errors", "interrupted")
    }
    if any(extra.values()):
        out.append(" · ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in extra.items() if v))
    if loop == "open":
        r = s.get("rate", {})
        ratio = r.get("achieved_rate_ratio")
        out.append(
            f"arrivals: target {_num(r.get('target_rps'), 1)}/s, achieved "
            f"{_num(r.get('achieved_rps'), 1)}/s ({(ratio or 0) * 100:.1f}% on schedule) · "
            f"late {req.get('late', 0):,} · queued {req.get('queued', 0):,} · "
            f"dropped {req.get('dropped', 0):,}"
        )
    cache = s.get("cache", {})
    if cache:
        out.append(
            "cache: "
            + ", ".join(
                f"{k} hit {v['hit_rate'] * 100:.1f}%" if v.get("hit_rate") is not None else f"{k} –"
                for k, v in cache.items()
            )
        )
    ch = s.get("checks", {})
    if ch.get("by_name"):
        out.append("")
        for name, c in ch["by_name"].items():
            mark = "✓" if not c["fails"] else "✗"
            out.append(f"  {mark} {name:<30} ✓ {c['passes']:,} / ✗ {c['fails']:,}")
        out.append(f"  checks: {(ch.get('rate') or 0) * 100:.2f}% passed")
    th = s.get("thresholds", [])
    if th:
        out.append("")
        out.append("thresholds:")
        for t in th:
            mark = "✓" if t["ok"] else "✗"
            val = _num(t["value"], 3) if t["value"] is not None else "–"
            why = "" if t["ok"] else f"  ← {t['reason']}"
            tag = "" if t["source"] == "user" else f" [{t['source']}]"
            out.append(f"  {mark} {t['expr']}{tag}  (= {val}){why}")
    cl = s.get("client", {})
    if cl:
        lag = cl.get("loop_lag_ms", {}) or {}
        cpu = cl.get("engine_thread_cpu_pct", {}) or {}
        line = (
            f"generator: loop lag p99 {_num(lag.get('p99'))} ms · engine thread CPU "
            f"{_num(cpu.get('mean'), 0)}% avg / {_num(cpu.get('max'), 0)}% max"
        )
        d = cl.get("dispatch_lag_ms")
        if d and d.get("count"):
            line += f" · dispatch lag p99 {_num(d.get('p99'))} ms"
        out.append("")
        out.append(line)
        if cl.get("client_bound"):
            out.append("⚠ client-bound: " + "; ".join(cl.get("reasons", [])))
    for w in s.get("warnings", []):
        if not w.startswith("client-bound"):
            out.append(f"note: {w}")
    if s.get("incomplete"):
        out.append(f"⚠ INCOMPLETE: {s.get('incomplete_reason')}")
    verdict = "PASSED" if s.get("passed") else "FAILED"
    out.append(f"thresholds {verdict}")
    return "\n".join(out)
