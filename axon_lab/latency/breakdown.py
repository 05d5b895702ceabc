"""Where the time goes: per-stage distributions against the guide's budget, waterfalls, timelines.

Input is a load run's records frame (``stage.<name>`` columns parsed from ``Server-Timing``)
or any frame with those columns. Percentiles are numpy's linear interpolation (type 7).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from axon_lab.goals import RETRIEVAL_PARTS, STAGE_BUDGET_MS, STAGES, stage_status
from axon_lab.load.profiles import PROFILES, TargetProfile

#: Every stage in display order: the seven top-level stages, retrieval's parts, then total.
ORDER: tuple[str, ...] = (*STAGES[:3], *RETRIEVAL_PARTS, *STAGES[3:], "total")


def stage_frame(records: pd.DataFrame) -> pd.DataFrame:
    """Long frame (request, stage, ms) from ``stage.<name>`` columns of successful requests."""
    ok = records
    if "outcome" in records.columns:
        ok = records[records["outcome"].astype(str).isin(["ok", "0"])]
    cols = [c for c in ok.columns if c.startswith("stage.")]
    if not cols:
        return pd.DataFrame(columns=["request", "stage", "ms"])
    long = (
        ok[cols]
        .reset_index(names="request")
        .melt(id_vars="request", var_name="stage", value_name="ms")
    )
    long["stage"] = long["stage"].str.removeprefix("stage.")
    return long.dropna(subset=["ms"]).reset_index(drop=True)


def stage_table(records: pd.DataFrame) -> pd.DataFrame:
    """Per stage: count, mean, p50, p95, p99, max (ms), the guide's budget, verdict and share of total."""
    long = stage_frame(records)
    rows = []
    total_mean = (
        long.loc[long.stage == "total", "ms"].mean() if (long.stage == "total").any() else np.nan
    )
    names = [s for s in ORDER if s in set(long.stage)] + sorted(set(long.stage) - set(ORDER))
    for stage in names:
        v = long.loc[long.stage == stage, "ms"].to_numpy(dtype=float)
        p95 = float(np.percentile(v, 95))
        budget = STAGE_BUDGET_MS.get(stage)
        rows.append(
            {
                "stage": stage,
                "count": int(v.size),
                "mean_ms": float(v.mean()),
                "p50_ms": float(np.percentile(v, 50)),
                "p95_ms": p95,
                "p99_ms": float(np.percentile(v, 99)),
                "max_ms": float(v.max()),
                "budget_ms": budget,
                "budget_used": p95 / budget if budget else np.nan,
                "status": stage_status(stage, p95) if budget else "info",
                "share_of_total": float(v.mean() / total_mean)
                if total_mean and stage != "total"
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def pick_requests(
    records: pd.DataFrame, quantiles: tuple[float, ...] = (0.5, 0.95)
) -> dict[str, int]:
    """Index of the request whose total is nearest each quantile ("typical" = p50, "p95" ...)."""
    if "stage.total" in records.columns:
        total = records["stage.total"]
    else:
        total = records["service_ms"]
    total = total.dropna()
    out = {}
    for q in quantiles:
        target = float(np.quantile(total.to_numpy(), q))
        label = "typical" if q == 0.5 else f"p{round(q * 100):d}"
        out[label] = int((total - target).abs().idxmin())
    return out


def waterfall(records: pd.DataFrame, index: int) -> pd.DataFrame:
    """One request's top-level stages laid end to end (start, duration) in pipeline order.

    Stages run sequentially in Axon, so the offsets are cumulative; the remainder up to
    ``total`` is shown as ``(unaccounted)``: framework and network time outside the stages.
    """
    row = records.loc[index]
    start, rows = 0.0, []
    for stage in STAGES:
        ms = row.get(f"stage.{stage}")
        if ms is None or pd.isna(ms):
            continue
        rows.append(
            {
                "stage": stage,
                "start_ms": start,
                "duration_ms": float(ms),
                "budget_ms": STAGE_BUDGET_MS.get(stage),
            }
        )
        start += float(ms)
    total = row.get("stage.total")
    if total is not None and not pd.isna(total) and total > start:
        rows.append(
            {
                "stage": "(unaccounted)",
                "start_ms": start,
                "duration_ms": float(total) - start,
                "budget_ms": None,
            }
        )
    return pd.DataFrame(rows)


def timeline_frame(timeline: list[dict[str, Any]]) -> pd.DataFrame:
    """A request's spans (from ``metadata.timeline``) as a frame with a lane per concurrent span."""
    df = pd.DataFrame(timeline)
    if df.empty:
        return df
    df = df.sort_values(["start_ms", "end_ms"]).reset_index(drop=True)
    df["depth"] = [_depth(df, i) for i in range(len(df))]
    return df


def _depth(df: pd.DataFrame, i: int) -> int:
    parent, depth, seen = df.loc[i, "parent"], 0, 0
    names = dict(zip(df["name"], df["parent"], strict=False))
    while parent is not None and isinstance(parent, str) and seen < 20:
        depth += 1
        parent = names.get(parent)
        seen += 1
    return depth


def fetch_timeline(
    base_url: str,
    prompt: str,
    workspace_id: str = "",
    *,
    profile: TargetProfile | None = None,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """POST one prompt with ``X-Axon-Trace: 1`` and return its timeline and stage timings.

    A deployment that does not return ``metadata.timeline`` gets a sequential timeline
    reconstructed from its stage timings (``Server-Timing`` or the body, as ``profile`` says;
    top-level stages only, concurrency not visible). A refused request (e.g. 429) gives an empty
    timeline and a ``note`` naming the status, never an exception.
    """
    import httpx

    prof = profile or PROFILES.get("axon-lab")
    r = httpx.post(
        f"{base_url.rstrip('/')}{prof.prompt_path}",
        timeout=timeout_s,
        json=prof.body(prompt, workspace_id or None),
        headers={"X-Axon-Trace": "1", **prof.auth_headers()},
    )
    facts = prof.reader()(r.status_code, {k.lower(): v for k, v in r.headers.items()}, r.content)
    if r.status_code >= 400:
        why = facts.error or f"HTTP {r.status_code}"
        return {
            "timeline": [],
            "server_timing": {},
            "reconstructed": True,
            "note": f"the traced request was refused ({why}): no timeline",
        }
    timing = facts.stages or {}
    try:
        doc = r.json()
    except ValueError:
        doc = {}
    tl = doc.get("metadata", {}).get("timeline") if isinstance(doc, dict) else None
    reconstructed = tl is None
    if tl is None:
        tl, start = [], 0.0
        for stage in STAGES:
            if stage in timing:
                tl.append(
                    {
                        "name": stage,
                        "parent": None,
                        "start_ms": start,
                        "end_ms": start + timing[stage],
                        "duration_ms": timing[stage],
                        "outcome": "ok",
                    }
                )
                start += timing[stage]
    note = (
        "" if tl else f"no stage timings in the traced response (looked in {prof.stage_sources()})"
    )
    return {"timeline": tl, "server_timing": timing, "reconstructed": reconstructed, "note": note}


def stage_note(table: pd.DataFrame, run: Any, profile: TargetProfile | None = None) -> str:
    """One line when the run has no stage timings (which sources were looked in), else ``""``."""
    if len(table):
        return ""
    prof = profile or PROFILES.get("axon-lab")
    n = run.summary.get("requests", {}).get("ok", 0)
    return (
        f"no stage timings in {n} successful responses: looked in {prof.stage_sources()} "
        f"(profile {prof.name}); the other results below still hold"
    )


#: Stream figures in display order (``sse.*`` columns of :func:`axon_lab.load.engine.sse_numbers`).
STREAM_ORDER: tuple[str, ...] = (
    "start", "analysis", "retrieval", "context", "llm-start", "ttft", "itl", "itl_max",
    "llm-end", "complete", "chunks", "chunks_per_s",
)  # fmt: skip


def stream_table(run: Any) -> pd.DataFrame:
    """Per stream figure: count, p50, p95, p99, max (ms from the send; ``chunks`` is a count,
    ``chunks_per_s`` a rate); empty when the run did not stream (``stream=False``).
    """
    m = run.summary.get("metrics", {})
    rows = []
    for name in STREAM_ORDER:
        st = m.get(f"sse.{name}")
        if st and st.get("count"):
            rows.append(
                {
                    "figure": name,
                    "count": st["count"],
                    **{f"{q}_ms": st.get(q) for q in ("p50", "p95", "p99", "max")},
                }
            )
    return pd.DataFrame(rows, columns=["figure", "count", "p50_ms", "p95_ms", "p99_ms", "max_ms"])


def waterfalls_for(records: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Waterfalls of the typical (p50) and the p95 request."""
    return {label: waterfall(records, idx) for label, idx in pick_requests(records).items()}


def verdict(table: pd.DataFrame) -> dict[str, Any]:
    """One-line verdict: stages over budget, and the non-LLM overhead at p95; the deciding
    numbers are the total and the stages that use most of their budget, each against it.
    """
    from axon_lab.report.summary import figure

    if not len(table):
        return {"status": "info", "summary": "no stage timings: nothing to judge per stage"}
    over = table[(table.status.isin(["warn", "fail"])) & (table.stage != "total")]
    status = "fail" if (over.status == "fail").any() else ("warn" if len(over) else "pass")
    t = table.set_index("stage")
    parts = []
    if "total" in t.index:
        parts.append(f"total p95 {t.loc['total', 'p95_ms']:.0f} ms")
    if "llm" in t.index:
        parts.append(f"LLM p95 {t.loc['llm', 'p95_ms']:.0f} ms")
    parts.append("stages over budget: " + (", ".join(over.stage) if len(over) else "none"))
    judged = table[table.budget_ms.notna()]
    top = pd.concat(
        [
            judged[judged.stage == "total"],
            judged[judged.stage != "total"].sort_values("budget_used", ascending=False).head(4),
        ]
    )
    numbers = [
        figure(
            f"{r.stage} p95",
            r.p95_ms,
            "ms",
            target=f"< {r.budget_ms:,.0f} ms (budget)",
            status=r.status,
        )
        for r in top.itertuples()
    ]
    return {"status": status, "summary": "; ".join(parts), "numbers": numbers}


def results(
    table: pd.DataFrame, run: Any, timeline: dict[str, Any] | None = None
) -> dict[str, Any]:
    """JSON-able results for the sidecar."""
    return {
        "stages": table.to_dict("records"),
        "profile": run.summary.get("target", {}).get("profile"),
        "stream": stream_table(run).to_dict("records"),
        "requests": run.summary.get("count"),
        "rps": run.summary.get("rps"),
        "p95_ms": run.summary.get("p95"),
        "error_rate": run.summary.get("error_rate"),
        "timeline_reconstructed": (timeline or {}).get("reconstructed"),
        "timeline_spans": len((timeline or {}).get("timeline") or []),
    }
