"""What a shared report shows: one judgement per fact, the summary first, no machine-local
names, figures with alt text and readable log ticks, an index with failures first.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from axon_lab import figures, goals
from axon_lab.latency import baseline
from axon_lab.load.scenarios import get_scenario
from axon_lab.load.thresholds import evaluate, parse_threshold
from axon_lab.report import index, run, sidecar, summary

RULE_SYMPTOMS = {
    "p95_ms": "High p95 latency",
    "rps": "Low throughput",
    "error_rate": "High error rate",
}


class _Values:
    """Stands in for RunMetrics: every threshold metric has the value the test gives it."""

    def __init__(self, values: dict[str, float]) -> None:
        self.values = values

    def value(self, metric: str, agg: str):
        return self.values.get(f"{metric}:{agg}"), None

    def rejection_cause(self):
        return None


def _judge_at(scenario: str, p95: float, rps: float, error_rate: float):
    """Thresholds, the overview verdict, the common issues and the summary numbers of one run."""
    sc = get_scenario(scenario)
    ths = [parse_threshold(e, source="scenario") for e in sc.thresholds()]
    metrics = _Values(
        {
            "http_req_duration:p(95)": p95,
            "http_reqs:rate": rps,
            "http_req_failed:rate": error_rate,
        }
    )
    results = evaluate(ths, metrics)
    s = {
        "count": 100,
        "rps": rps,
        "error_rate": error_rate,
        "p50": p95 / 2,
        "p95": p95,
        "p99": p95 * 1.1,
        "ci": {"p95": [p95 * 0.9, p95 * 1.05]},
        "thresholds": [r.to_dict() for r in results],
        "warnings": [],
    }
    table = baseline.overview({scenario: SimpleNamespace(summary=s)})
    issues = baseline.diagnose(
        p50_ms=s["p50"],
        p95_ms=p95,
        p99_ms=s["p99"],
        rps=rps,
        error_rate=error_rate,
        scenario=scenario,
    ).assign(scenario=scenario)
    return results, table, issues, baseline.verdict(table, issues)


@pytest.mark.parametrize("scenario", sorted(goals.SCENARIO_EXPECTATIONS))
@pytest.mark.parametrize("side", ["below", "at", "above"])
def test_thresholds_issues_and_numbers_agree_at_the_boundary(scenario, side):
    exp = goals.SCENARIO_EXPECTATIONS[scenario]
    rules = exp.rules()
    for key, rule in rules.items():
        eps = {"below": -1e-9, "at": 0.0, "above": 1e-9}[side] * max(rule.limit, 1.0)
        values = {"p95_ms": 100.0, "rps": 1000.0, "error_rate": 0.0}
        if exp.max_error_rate == 0 and key != "error_rate":
            values["error_rate"] = 0.0
        values[key] = max(rule.limit + eps, 0.0)
        results, table, issues, verdict = _judge_at(
            scenario, values["p95_ms"], values["rps"], values["error_rate"]
        )
        threshold_ok = next(r.ok for r in results if r.threshold.expr == rule.expr)
        detected = bool(issues.set_index("symptom").loc[RULE_SYMPTOMS[key], "detected"])
        assert threshold_ok is not detected, (scenario, key, side, values[key])
        assert threshold_ok is rule.ok(values[key])
        failed = table.loc[0, "failed_thresholds"]
        assert (rule.expr in failed) is (not threshold_ok)
        label = {"p95_ms": "p95 latency", "rps": "throughput", "error_rate": "error rate"}[key]
        number = next(n for n in verdict["numbers"] if n["name"].endswith(label))
        if not threshold_ok:
            assert number["status"] == "fail"
        else:  # a latency passes only when its CI's upper end does too (as the percentile table)
            ci_ok = key != "p95_ms" or rule.ok(values[key] * 1.05)
            assert number["status"] == ("pass" if ci_ok else "warn")
        if not threshold_ok:
            assert verdict["status"] == "fail" and RULE_SYMPTOMS[key] in verdict["summary"]


def test_the_reported_contradiction_is_gone():
    """10.0 req/s against ``http_reqs:rate>10``: the threshold fails, so low throughput is
    detected, with evidence that names the same rule.
    """
    results, table, issues, verdict = _judge_at("simple", 1500.0, 10.0, 0.0)
    assert not next(r.ok for r in results if r.threshold.metric == "http_reqs")
    row = issues.set_index("symptom").loc["Low throughput"]
    assert row["detected"] and "expected > 10 req/s (missed)" in row["evidence"]
    assert table.loc[0, "status"] == "fail"


def test_a_rate_just_under_the_limit_does_not_read_as_equal():
    issues = baseline.diagnose(p95_ms=1.0, p99_ms=1.0, rps=9.97, error_rate=0.0, scenario="simple")
    assert "9.970 req/s" in issues.set_index("symptom").loc["Low throughput", "evidence"]


def test_timeseries_marks_the_drain_after_the_load_window():
    ts = pd.DataFrame({"t_s": [0.0, 1.0, 2.0, 3.0, 4.0, 5.0], "requests": [9, 10, 10, 11, 2, 1]})
    out = baseline.measured_window(ts, 4.0)
    assert list(out.phase) == ["load"] * 4 + ["drain"] * 2
    assert list(baseline.measured_window(ts, None).phase) == ["load"] * 6


def _doc(**verdict) -> dict:
    return {
        "schema": sidecar.SCHEMA,
        "name": "load_baseline",
        "status": "ok",
        "verdict": {"status": "fail", "summary": "simple: p95 810 ms", **verdict},
        "provenance": {
            "created_utc": "2026-11-30T19:30:44.123+00:00",
            "machine": {"node": "secret-host", "cpu": "AMD EPYC", "cores": 2, "system": "Linux"},
            "commit": {"id": "20708a02c236abcdef", "dirty": True},
            "parameters": {"target_url": "", "scenario": "simple", "smoke": True, "out_dir": "/x"},
        },
        "results": {},
        "frames": {},
        "error": None,
    }


def test_summary_opens_with_the_verdict_numbers_run_and_warnings():
    doc = _doc(
        numbers=[
            summary.figure(
                "p95 latency", 809.56, "ms", target="< 2,000 ms", ci=[700, 900.4], status="pass"
            ),
            summary.figure("error rate", 0.0125, "%", target="< 1%", status="fail"),
        ],
        warnings=["too few samples for a 95% CI of p99", "client-bound run"],
    )
    md = summary.summary_markdown(doc)
    lines = md.splitlines()
    assert lines[0] == "# Summary" and "FAIL" in lines[2] and "simple: p95 810 ms" in lines[2]
    assert "| p95 latency | 810 ms | &lt; 2,000 ms | 700 – 900 | ✅ pass |" in md
    assert "| error rate | 1.25% | &lt; 1% | — | ❌ fail |" in md
    assert "⚠️ too few samples" in md and "client-bound run" in md
    assert "scenario: simple" in md and "embedded Axon" in md and "20708a02c236" in md
    assert "AMD EPYC, 2 cores" in md
    assert "secret-host" not in md and "/x" not in md  # no host name, no local path
    assert summary.summary_line(doc) == "❌ fail — simple: p95 810 ms"


def test_the_summary_cell_goes_first(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Load baseline")])
    run.add_summary(nb, _doc())
    run.add_summary(nb, _doc())  # idempotent
    assert [c.source.splitlines()[0] for c in nb.cells] == ["# Summary", "# Load baseline"]


def test_local_names_are_scrubbed_but_images_are_not(tmp_path):
    host = socket.gethostname()
    out = tmp_path / "run"
    text = (
        f"<p>{out}/x.results.json {Path.home()}/data on {host}</p>"
        f"<img src='data:image/png;base64,AAAA{host}BBBB/rootCC='>"
    )
    clean = run.scrub_local(text, run.local_names(out))
    assert str(out) not in clean and "[run dir]/x.results.json" in clean
    assert str(Path.home()) + "/" not in clean.split("<img")[0]
    assert not re.search(rf"(?<![\w.-]){re.escape(host)}(?![\w-])", clean.split("<img")[0])
    assert f"AAAA{host}BBBB/rootCC=" in clean  # embedded image data untouched


def test_record_shows_what_was_recorded_not_where(tmp_path):
    from IPython.lib.pretty import pretty

    path = sidecar.record("demo", {"a": 1}, out_dir=tmp_path)
    assert isinstance(path, Path) and path.exists() and path.name == "demo.results.json"
    shown = pretty(path) + path._repr_html_()
    assert "demo.results.json" in shown and str(tmp_path) not in shown


def test_index_sorts_failures_first_and_shows_the_summary(tmp_path, monkeypatch):
    def result(name, status, verdict):
        html = tmp_path / name / f"{name}.html"
        html.parent.mkdir()
        html.write_text("x")
        return run.RunResult(
            notebook=name, name=name, status=status, seconds=1.0, executed=html, html=html,
            sidecar=None, verdict=verdict, error="boom" if status == "failed" else None,
        )  # fmt: skip

    results = [
        result("a_pass", "ok", {"status": "pass", "summary": "all good"}),
        result("b_warn", "ok", {"status": "warn", "summary": "close"}),
        result("c_failed", "failed", None),
        result("d_fail", "ok", {"status": "fail", "summary": "p95 too high"}),
    ]
    out = index.write_index(results, tmp_path)
    page = out.read_text()
    order = [m for m in re.findall(r"href='([a-z_]+)/", page)]
    assert order == ["c_failed", "d_fail", "b_warn", "a_pass"]
    assert "p95 too high" in page and "all good" in page
    assert socket.gethostname() not in re.sub(r"<[^>]+>", " ", page).split()


def test_figures_have_alt_text_captions_and_readable_log_ticks():
    fig = Figure()
    ax = fig.subplots()
    ax.hist(np.random.default_rng(0).lognormal(7.5, 0.4, 200), bins=20)
    ax.set_xscale("log")
    ax.set_title("Response time")
    ax.set_xlabel("ms")
    assert figures.alt_text(fig) == "Response time (x: ms)"
    figures.tidy(fig)
    fig.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    assert labels and all(re.fullmatch(r"[\d,.]+k?", t) for t in labels), labels
    assert not any(t.get_text() for t in ax.xaxis.get_minorticklabels())

    @figures.captioned("look for the tail", alt="a histogram")
    def plot() -> Figure:
        return Figure()

    described = plot()
    html = figures.figure_html(described)
    assert "alt='a histogram'" in html and "<figcaption" in html and "look for the tail" in html
    assert figures.alt_text(Figure()) == "figure"  # never empty


@pytest.mark.parametrize(("p95", "expected"), [(2000.0, {"fail"}), (1999.0, {"pass", "warn"})])
def test_percentile_table_judges_p95_by_the_scenario_rule(p95, expected):
    """The percentile table's p95 row fails exactly when the scenario's threshold does."""
    values = np.concatenate([np.linspace(100, 1000, 94), [p95], np.full(5, p95 + 100)])
    records = pd.DataFrame({"response_ms": values, "outcome": "ok"})
    row = baseline.percentile_table(records, scenario="simple").set_index("percentile").loc["p95"]
    assert row["ms"] == p95  # nearest rank: the 95th of 100 samples
    rule = goals.SCENARIO_EXPECTATIONS["simple"].rules()["p95_ms"]
    assert row["status"] in expected and (row["status"] == "fail") is (not rule.ok(p95))


def test_the_distribution_plot_draws_the_lines_the_percentile_table_judges_by():
    """One scenario on the page: its p95 expectation is the target line, not the guide's
    full-orchestration 3 s (which would contradict the table's 2 s for ``simple``)."""
    exp = goals.SCENARIO_EXPECTATIONS["simple"]
    full = goals.get("full_orchestration")
    assert baseline.distribution_lines({"simple": None}) == {
        "target_ms": exp.p95_ms,
        "critical_ms": max(exp.p95_ms, full.critical),
    }
    both = baseline.distribution_lines({"simple": None, "complex": None})
    assert both == {"target_ms": full.target, "critical_ms": full.critical}
