"""Soak analysis: the memory slope and latency drift fits flag a leak or drift, stay quiet on flat series, and refuse to judge short runs (the short soak itself runs in test_faults.py, on the shared server)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from axon_lab.profiling import soak


def _resources(
    minutes: float, mb_per_min: float, *, noise_mb: float = 2.0, every_s: float = 2.0
) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    t = np.arange(0.0, minutes * 60, every_s)
    rss = 600.0 + mb_per_min * t / 60 + rng.normal(0, noise_mb, t.size)
    return pd.DataFrame({"t_s": t, "rss_mb": rss, "cpu_percent": 10.0})


def _records(minutes: float, start_ms: float, end_ms: float, *, rate: float = 4.0) -> pd.DataFrame:
    rng = np.random.default_rng(2)
    t = np.arange(0.0, minutes * 60, 1 / rate)
    base = start_ms + (end_ms - start_ms) * t / t[-1]
    ms = base * rng.lognormal(0, 0.2, t.size)
    ns = (t * 1e9).astype(np.int64)
    return pd.DataFrame(
        {
            "intended_ns": ns,
            "sent_ns": ns,
            "end_ns": ns + (ms * 1e6).astype(np.int64),
            "response_ms": ms,
            "status": 200,
            "outcome": "ok",
        }
    )


def test_a_growing_rss_is_a_suspected_leak_with_the_right_slope():
    m = soak.memory_fit(_resources(10, 3.0))
    assert m["slope_mb_per_min"] == pytest.approx(3.0, abs=0.3)
    lo, hi = m["ci95"]
    assert lo < 3.0 < hi and lo > 0
    assert m["leak_suspected"] is True and m["minutes"] > 8


def test_a_flat_rss_is_not_a_leak():
    m = soak.memory_fit(_resources(10, 0.0))
    assert abs(m["slope_mb_per_min"]) < 0.3 and m["leak_suspected"] is False


def test_a_short_run_is_fitted_but_not_judged():
    m = soak.memory_fit(_resources(1, 20.0))
    assert m["slope_mb_per_min"] > 10 and m["leak_suspected"] is None


def test_rising_latency_is_drift_and_flat_latency_is_not():
    rec = _records(5, 100.0, 300.0)
    lat = soak.latency_drift(rec, soak.latency_windows(rec))
    assert lat["ratio"] > 2 and lat["p50_slope_ms_per_min"] > 20 and lat["drift_suspected"] is True
    flat = _records(5, 100.0, 100.0)
    lat = soak.latency_drift(flat, soak.latency_windows(flat))
    assert lat["ratio"] == pytest.approx(1.0, abs=0.25) and lat["drift_suspected"] is False


def test_drift_is_judged_on_the_servers_own_time_when_it_reports_one():
    rec = _records(5, 100.0, 400.0)  # the client saw it slow down...
    rec["stage.total"] = 80.0 + np.random.default_rng(3).normal(
        0, 5, len(rec)
    )  # ...the server did not
    run = soak.analyze(rec, _resources(5, 0.0).assign(phase="load"), {"errors": 0}, {})
    assert (
        run.latency["drift_suspected"] is True and run.latency["server"]["drift_suspected"] is False
    )
    assert soak.verdict(run)["status"] == "pass"
    assert {"server_p50_ms", "server_p95_ms"} <= set(run.windows.columns)


def test_leveling_off_growth_has_a_flat_second_half():
    res = _resources(10, 0.0, noise_mb=0.3)
    res["rss_mb"] += 60 * (1 - np.exp(-res["t_s"] / 60))  # +60 MB in the first minutes, then flat
    m = soak.memory_fit(res)
    assert m["slope_mb_per_min"] > 1.5 * abs(m["second_half"]["slope_mb_per_min"])
    assert abs(m["second_half"]["slope_mb_per_min"]) < 0.3


def test_windows_count_errors_and_leave_them_out_of_the_percentiles():
    rec = _records(2, 100.0, 100.0)
    rec.loc[rec.index[:10], ["status", "response_ms"]] = [503, 5.0]
    w = soak.latency_windows(rec, window_s=30.0)
    assert w["requests"].sum() == len(rec) and w["errors"].sum() == 10
    assert w["p50_ms"].min() > 50  # the fast 503s are not latency samples


def test_verdicts():
    def run(res: pd.DataFrame, rec: pd.DataFrame, errors: int = 0) -> soak.SoakRun:
        return soak.analyze(
            rec,
            res.assign(phase="load"),
            {"errors": errors, "count": len(rec)},
            {"duration_s": 600},
        )

    assert soak.verdict(run(_resources(10, 0.0), _records(10, 100, 100)))["status"] == "pass"
    leak = soak.verdict(run(_resources(10, 5.0), _records(10, 100, 100)))
    assert leak["status"] == "fail" and leak["summary"].startswith("LEAK SUSPECTED")
    assert soak.verdict(run(_resources(10, 0.0), _records(10, 100, 400)))["summary"].startswith(
        "LATENCY DRIFT"
    )
    assert (
        soak.verdict(run(_resources(10, 0.0), _records(10, 100, 100), errors=3))["status"] == "fail"
    )
    short = soak.verdict(run(_resources(1, 0.0), _records(1, 100, 100)))
    assert short["status"] == "info" and "not judged" in short["summary"]


def test_soak_cli_refuses_a_remote_target(capsys):
    from axon_lab.cli import main

    assert main(["soak", "http://10.9.8.7:3000", "--duration", "1s"]) == 1
    assert "non-loopback" in capsys.readouterr().err
