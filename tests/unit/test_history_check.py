"""The CI gate on known series: a step is a regression in the metric's bad direction only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from axon_lab.errors import ConfigError
from axon_lab.history.check import check
from axon_lab.history.store import COLUMNS


def _series(values, *, metric="http_req_duration:p95", better="lower", machine="m1", options=None):
    n = len(values)
    return pd.DataFrame(
        {
            "run_id": [f"{machine}-{metric}-{i:03d}" for i in range(n)],
            "created_utc": pd.date_range("2026-11-01", periods=n, freq="h", tz="UTC"),
            "kind": "load",
            "name": "simple",
            "metric": metric,
            "unit": "ms",
            "better": better,
            "value": values,
            "machine": machine,
            "commit": [f"c{i:07d}" for i in range(n)],
            "dirty": False,
            "branch": "main",
            "label": None,
            "report": None,
            "options": options if options is not None else [None] * n,
        },
        columns=list(COLUMNS),
    )


def _noisy(n=60, step_at=None, step=0.10, seed=0):
    rng = np.random.default_rng(seed)
    v = 100 * (1 + 0.05 * rng.standard_normal(n))
    if step_at is not None:
        v[step_at:] *= 1 + step
    return v


def test_a_10pct_step_is_a_regression_at_its_run_and_names_commits_and_options():
    opts = [json.dumps({"l1_cache": True})] * 30 + [json.dumps({"l1_cache": False})] * 30
    f = _series(_noisy(step_at=30), options=opts)
    res = check(f, baseline="last-30")
    assert len(res.regressions) == 1 and not res.improvements
    r = res.regressions[0]
    assert abs(r.run - 30) <= 1 and 0.05 < r.change < 0.2
    assert r.commit_after == f"c{r.run:07d}" and "l1_cache True→False" in r.options_change
    assert r.line().startswith("http_req_duration:p95 [simple @ m1]")
    assert "| `http_req_duration:p95` |" in res.markdown()


def test_shifts_before_the_baseline_are_not_new():
    f = _series(_noisy(step_at=30))
    assert check(f, baseline="last-10").regressions == []
    assert check(f, baseline="c0000020").regressions  # runs after commit c0000020 are new


def test_direction_decides_regression_or_improvement():
    up = _series(_noisy(step_at=30), metric="http_reqs:rate", better="higher")
    res = check(up, baseline="last-30")
    assert res.improvements and not res.regressions
    down = _series(_noisy(step_at=30, step=-0.10), metric="http_reqs:rate", better="higher")
    res = check(down, baseline="last-30")
    assert res.regressions and res.regressions[0].change < 0


def test_flat_series_are_quiet_in_at_least_95_of_100_seeds():
    flagged = sum(bool(check(_series(_noisy(seed=s)), baseline="last-60").regressions)
                  for s in range(100))  # fmt: skip
    assert flagged <= 5


def test_machines_are_separate_series():
    a = _series(_noisy(seed=1), machine="m1")
    b = _series(_noisy(seed=2) * 1.3, machine="m2")  # a faster/slower machine is not a shift
    both = pd.concat([a, b], ignore_index=True)
    res = check(both, baseline="last-60")
    assert res.series == 2 and not res.regressions


def test_unknown_baseline_is_one_line():
    with pytest.raises(ConfigError, match="baseline 'zzz' matches no run"):
        check(_series(_noisy()), baseline="zzz")
    with pytest.raises(ConfigError, match="expected last-N"):
        check(_series(_noisy()), baseline="last-x")
