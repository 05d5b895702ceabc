"""The history site and the "Document Results" summary on a synthetic history with a known step."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from axon_lab.errors import ConfigError
from axon_lab.history import plots, site, summary
from axon_lab.history.changepoints import ChangePoint
from axon_lab.history.store import COLUMNS

RUNS, STEP_AT = 40, 20
MACHINE = "ci-a|Test CPU|4|8.0"
# metric, unit, better, level, relative noise
METRICS = [
    ("http_req_duration:p95", "ms", "lower", 1800.0, 0.03),
    ("http_reqs:rate", "req", "higher", 12.0, 0.02),
    ("process.rss_mb", "MB", "lower", 950.0, 0.01),
    ("cache.context:rate", "ratio", "higher", 0.82, 0.01),
    ("http_req_failed:rate", "ratio", "lower", 0.004, 0.05),
]


def _commit(i: int) -> str:
    return f"{i:08x}".ljust(40, "c")


def _history(tmp_path: Path, *, runs: int = RUNS, reps: int = 1) -> pd.DataFrame:
    """Tidy rows: each commit ``reps`` runs of the five metrics on MACHINE; p95 +10% from STEP_AT;
    p95 also on a second machine (no step); one run's report is an absolute local path."""
    rng = np.random.default_rng(1)
    t0 = pd.Timestamp("2026-03-01T08:00:00Z")
    rows = []
    for i in range(runs):
        for r in range(reps):
            run_id = f"{i:04d}{r:02d}".ljust(16, "a")
            base = {
                "run_id": run_id,
                "created_utc": t0 + pd.Timedelta(hours=6 * i, minutes=r),
                "kind": "load",
                "name": "simple",
                "machine": MACHINE,
                "commit": _commit(i),
                "dirty": False,
                "branch": "main",
                "label": "nightly",
                "report": f"runs/{run_id}/report.html",
                "options": json.dumps(
                    {"l1_cache": i < STEP_AT, "redis_url": "redis://lab:hunter2@cache:6379/0"}
                ),
            }
            if i == 3:
                base["report"] = str(tmp_path / "elsewhere" / "report.html")
            for metric, unit, better, level, noise in METRICS:
                v = level * (1 + noise * rng.standard_normal())
                if metric == "http_req_duration:p95" and i >= STEP_AT:
                    v *= 1.10
                rows.append({**base, "metric": metric, "unit": unit, "better": better, "value": v})
            if i % 2 == 0 and r == 0:
                other = {
                    **base,
                    "run_id": f"b{i:04d}".ljust(16, "b"),
                    "machine": "ci-b|Other|2|4.0",
                }
                rows.append(
                    {
                        **other,
                        "metric": "http_req_duration:p95",
                        "unit": "ms",
                        "better": "lower",
                        "value": 2300 * (1 + 0.03 * rng.standard_normal()),
                    }
                )
    f = pd.DataFrame(rows, columns=list(COLUMNS))
    f.loc[f["run_id"] == "000000".ljust(16, "a"), "label"] = "<script>alert(1)</script>"
    return f


@pytest.fixture
def built(tmp_path: Path):
    frame = _history(tmp_path)
    out = tmp_path / "site"
    index = site.build_site(frame, out)
    return frame, out, index


def test_index_lists_the_step_as_a_regression_first(built):
    frame, out, index = built
    assert index == out / "index.html"
    text = index.read_text(encoding="utf-8")
    body = text.split("<tbody>", 1)[1]
    rows = re.findall(r"<tr.*?</tr>", body, flags=re.S)
    assert "http_req_duration:p95" in rows[0] and "✗ regression" in rows[0]
    assert "ci-a" in rows[0] and "+" in rows[0] and "%" in rows[0]
    assert "<svg" in rows[0]  # inline sparkline, no extra request
    # the same metric on another machine is another series, and steady
    other = [r for r in rows if "http_req_duration:p95" in r and "ci-b" in r]
    assert len(other) == 1 and "steady" in other[0]
    # regressions, then improvements, then steady
    status = [re.search(r'class="status (\w+)"', r).group(1) for r in rows]
    rank = [site.STATUS[s][1] for s in status]
    assert rank == sorted(rank) and status.count("regression") == 1


def test_series_page_has_the_trend_image_change_points_and_run_links(built):
    frame, out, index = built
    text = index.read_text(encoding="utf-8")
    href = re.search(r'href="(series/http_req_duration-p95--simple--ci-a-[^"]+\.html)"', text)
    assert href, "no link to the regressed series"
    page = (out / href.group(1)).read_text(encoding="utf-8")
    img = re.search(r'<img src="([^"]+)" alt="([^"]+)"', page)
    assert img and (out / "series" / img.group(1)).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    alt = img.group(2)
    assert "http_req_duration:p95" in alt and "regression" in alt and "run 21" in alt
    assert "<h2>Change points</h2>" in page and f">{STEP_AT + 1}</a>" in page
    assert f'<code title="{_commit(STEP_AT)}">{_commit(STEP_AT)[:8]}</code>' in page
    # each run with a report links it relative to the site; the absolute one is not linked
    assert '<a href="../runs/0039' in page and "report.html" in page
    assert page.count(">report</a>") == RUNS - 1
    # free text is redacted and escaped
    assert "hunter2" not in page and "redis://lab:***@cache" in page


def test_links_are_relative_and_no_local_path_leaks(built, tmp_path):
    frame, out, index = built
    pages = [index, *sorted((out / "series").glob("*.html"))]
    assert len(pages) == 1 + 6  # five metrics on ci-a, p95 on ci-b
    home = str(Path.home())
    for page in pages:
        text = page.read_text(encoding="utf-8")
        assert str(tmp_path) not in text and home not in text, page.name
        assert "file:" not in text and "hunter2" not in text
        assert "<script>" not in text  # the label is escaped
        for link in re.findall(r'(?:href|src)="([^"]+)"', text):
            assert not link.startswith(("/", "\\")) and "://" not in link, link
            if link.startswith(("#", "../runs/")):
                continue  # an anchor; a run's report lives outside the site
            assert (page.parent / link).is_file(), f"{page.name}: broken link {link}"
    assert "&lt;script&gt;" in "".join(p.read_text(encoding="utf-8") for p in pages)


def test_changes_latest_and_verdict_for_the_notebook(tmp_path):
    frame = site.select(_history(tmp_path), metrics=["http_req_duration:p95"], window=30)
    assert frame.groupby("machine")["run_id"].nunique().max() == 30
    points = site.changes(frame)
    assert list(points.columns) == list(site.CHANGE_COLUMNS)
    assert len(points) == 1 and points["kind"].iloc[0] == "regression"
    assert points["run"].iloc[0] == STEP_AT - (RUNS - 30) + 1
    table = site.latest(frame, points)
    assert list(table["status"]) == ["regression", "steady"]
    assert 0.05 < table["change"].iloc[0] < 0.2
    v = site.verdict(table)
    assert v["status"] == "warn" and "1 of 2 series regressed" in v["summary"]
    assert site.results(table, points)["regressions"][0]["metric"] == "http_req_duration:p95"
    assert isinstance(plots.trends(frame, points), Figure)
    with pytest.raises(ConfigError, match="known: http_req_duration:p95"):
        site.select(frame, metrics=["nope:p95"])


def test_figures_are_figures():
    f = pd.DataFrame(
        {
            "created_utc": pd.date_range("2026-01-01", periods=12, freq="D", tz="UTC"),
            "value": [1.0] * 6 + [2.0] * 6,
            "metric": "m",
            "unit": "ms",
        }
    )
    pts = [ChangePoint(6, 1.0, 2.0, 1.0, 0.0, "regression")]
    fig = plots.trend(f, pts, title="m: 12 runs")
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert any("+100% regression" in t for t in texts)
    assert fig.axes[0].get_ylabel() == "m (ms)"
    assert isinstance(plots.sparkline(f["value"]), Figure)
    assert isinstance(plots.trends(f.iloc[:0], None), Figure)


def test_document_results_has_the_five_rows_with_percentages(tmp_path):
    frame = _history(tmp_path, reps=2)
    md = summary.document_results(frame, before=_commit(0)[:8], after=_commit(RUNS - 1)[:10])
    assert md.startswith("## Performance Optimization Results\n")
    assert "**Date**: " in md and "**Version**: axon_lab " in md and "### Changes Made" in md
    rows = [
        line
        for line in md.splitlines()
        if re.match(r"\| (p95|Throughput|Memory|Cache|Error)", line)
    ]
    assert len(rows) == 5
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert re.search(r"\d+(\.\d+)?% (improvement|regression)", cells[3]), row
        assert cells[4].startswith("["), row  # two runs each side: a Welch CI
    assert "regression (↑)" in rows[0] and "n=2/2" in rows[0]
    # one run each: no interval
    one = summary.document_results(frame, before="000000a", after=f"{RUNS - 1:04d}00a")
    assert one.count("n/a (one run each)") == 5


def test_document_results_refs_and_missing_git(tmp_path, monkeypatch):
    frame = _history(tmp_path, runs=8)
    with pytest.raises(ConfigError) as err:
        summary.document_results(frame, before="zz", after=_commit(1))
    msg = str(err.value)
    assert "\n" not in msg and "'zz'" in msg and _commit(7)[:8] in msg

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    md = summary.document_results(frame, before=_commit(0), after=_commit(7))
    assert "### Changes Made\n\nn/a\n" in md


def test_demo_history_goes_through_the_store(tmp_path):
    h = site.demo_history(tmp_path / "demo", runs=12)
    f = h.frame()
    assert not h.errors and f["run_id"].nunique() == 12 * 2 + 6
    assert {m for m, *_ in METRICS} <= set(f["metric"])
    index = site.build_site(f, tmp_path / "demo-site")
    assert "14 series" in index.read_text(encoding="utf-8")


def test_git_subjects_lists_the_commits_between(tmp_path):
    git = ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    try:
        subprocess.run([*git, "init", "-q"], check=True, capture_output=True, timeout=30)
        for msg in ("first", "second: cache the context", "third"):
            subprocess.run(
                [*git, "commit", "-q", "--allow-empty", "-m", msg],
                check=True,
                capture_output=True,
                timeout=30,
            )
    except (OSError, subprocess.SubprocessError):
        pytest.skip("git is not available")
    head = subprocess.run([*git, "rev-parse", "HEAD~2", "HEAD"], capture_output=True, text=True)
    first, last = head.stdout.split()
    assert summary.git_subjects(first, last, cwd=tmp_path) == ["second: cache the context", "third"]
    assert summary.git_subjects("0" * 40, last, cwd=tmp_path) is None  # unknown commit
