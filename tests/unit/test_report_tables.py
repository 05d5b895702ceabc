"""The table formatting helper every notebook shows its frames with (axon_lab.report.tables)."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest

from axon_lab import report
from axon_lab.report.tables import MISSING, header, number, percent, table


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (809.559266, "810"),
        (1234.5678, "1,235"),
        (12.345, "12.3"),
        (1.23456, "1.23"),
        (0.012345, "0.0123"),
        (0.5, "0.5"),
        (0.0, "0"),
        (10.0, "10"),
        (49, "49"),
        (1234567, "1,234,567"),
        (np.int64(7), "7"),
        (np.float64(0.001234), "0.00123"),
        (-42.42, "-42.4"),
        (math.inf, "∞"),
        (None, MISSING),
        (math.nan, MISSING),
        (pd.NA, MISSING),
        (True, "yes"),
    ],
)
def test_numbers_have_three_significant_digits(value, text):
    assert number(value) == text


def test_percent_and_headers():
    assert percent(0.0123) == "1.23%"
    assert percent(0) == "0%"
    assert percent(1.0) == "100%"
    assert percent(0.9996) == "99.96%"  # never rounds up to a full 100%
    assert percent(None) == MISSING
    assert header("p95_ms") == "p95 (ms)"
    assert header("error_rate") == "error rate (%)"
    assert header("rps") == "rps (req/s)"
    assert header("duration_s") == "duration (s)"
    assert header("rss_mb") == "rss (MB)"
    assert header("cpu_pct") == "cpu (%)"
    assert header("scenario") == "scenario"
    assert header("ci_low", {"ci_low": "ms"}) == "ci low (ms)"
    assert header("zipf_s") == "zipf s"  # an exponent, not seconds


def test_frame_is_formatted_for_people():
    frame = pd.DataFrame(
        {
            "scenario": ["simple", "spike"],
            "rps": [10.0, 9.754],
            "error_rate": [0.0, 0.0125],
            "p95_ms": [809.559266, np.nan],
            "incomplete": [False, True],
            "verdict": ["❌", "✅"],
            "status": ["fail", "pass"],
            "note": [None, "x"],
        }
    )
    t = table(frame)
    assert t.headers == [
        "scenario",
        "rps (req/s)",
        "error rate (%)",
        "p95 (ms)",
        "incomplete",
        "verdict",
        "note",
    ]  # no index column; status folded into the verdict
    assert t.rows[0] == ["simple", "10", "0%", "810", "no", "❌ fail", MISSING]
    assert t.rows[1] == ["spike", "9.75", "1.25%", MISSING, "yes", "✅ pass", "x"]
    html = t._repr_html_()
    assert "<th>p95 (ms)</th>" in html and "NaN" not in html and "None" not in html
    assert "<td class='num'>810</td>" in html
    assert "809.559266" not in html and "False" not in html
    assert "overflow-x:auto" in html  # wide tables scroll inside their box, cells wrap
    text = repr(t)
    assert text.splitlines()[0].startswith("scenario") and "810" in text
    assert t.frame is frame  # the raw numbers stay available


def test_status_words_units_from_attrs_and_labelled_index():
    frame = pd.DataFrame({"ms": [12.34], "ci_high": [15.0], "status": ["warn"]})
    frame.attrs["units"] = {"ms": "ms", "ci_high": "ms"}
    frame.attrs["caption"] = "what to look for"
    t = table(frame)
    assert t.headers == ["ms (ms)", "ci high (ms)", "status"]
    assert t.rows == [["12.3", "15", "⚠️ warn"]]
    assert "<caption>what to look for</caption>" in t.to_html()
    labelled = pd.DataFrame({"v": [1.5]}, index=pd.Index(["a"], name="name"))
    assert table(labelled).headers == ["name", "v"]


def test_mappings_lists_scalars_and_dataclasses():
    t = table({"p95_ms": 809.56, "hit_rate": 0.8123, "cpu_pct": 45.2, "nested": {"a": 0.5}})
    assert t.rows == [
        ["p95", "810 ms"],
        ["hit rate", "81.2%"],
        ["cpu", "45.2%"],
        ["nested", "a: 0.5"],
    ]
    assert table([]).rows == [] and table([]).to_html() == "<p>none</p>"
    # an empty table says what the reader should conclude, in HTML and in text
    assert table([], empty="No warnings.").to_html() == "<p>No warnings.</p>"
    assert table([], empty="No warnings.").to_text() == "No warnings."
    no_rows = table(pd.DataFrame({"p95_ms": []}), empty="no runs yet")
    assert no_rows.headers and "<td colspan='1'>no runs yet</td>" in no_rows.to_html()
    assert table(["first warning", "second"]).rows == [["first warning"], ["second"]]
    assert table(12.345).rows == [["12.3"]]

    @dataclasses.dataclass
    class Stats:
        used_memory: int = 123456
        keyspace_hit_rate: float = 0.5

    assert table(Stats()).rows == [["used memory", "123,456"], ["keyspace hit rate", "50%"]]


def test_commits_and_times_are_short():
    frame = pd.DataFrame(
        {
            "commit": ["f159235e29aacd267b1566889c6d92490411490e"],
            "created_utc": ["2026-01-05T12:24:00+00:00"],
            "when": [pd.Timestamp("2026-01-05 12:24:00")],
        }
    )
    assert table(frame).rows == [["f159235e29aa", "2026-01-05 12:24:00", "2026-01-05 12:24:00"]]


def test_long_frames_are_cut_with_a_note():
    t = table(pd.DataFrame({"x": range(300)}), max_rows=10)
    assert len(t.rows) == 10 and t.notes == ["first 10 of 300 rows shown"]


def test_report_exports_the_helper():
    assert report.table is table
    with pytest.raises(KeyError, match="no column"):
        table(pd.DataFrame({"a": [1]}), columns=["b"])
