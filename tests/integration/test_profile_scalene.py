"""Profiling analysis: scalene JSON from a real scalene run, resource sampling, lag, memory slope."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from axon_lab import profiling
from axon_lab.errors import ConfigError, InputFileError
from axon_lab.samplers import ProcessResourceSampler

PROGRAM = textwrap.dedent("""
    import time


    def burn(n):
        total = 0
        for i in range(n):
            total += i * i
        return total


    def hoard(n):
        return [bytearray(4096) for _ in range(n)]


    def main():
        kept = []
        t_end = time.perf_counter() + 1.0
        while time.perf_counter() < t_end:
            burn(500_000)
            kept.append(hoard(2_000))
        return kept


    main()
""")


@pytest.fixture(scope="module")
def scalene_profile(tmp_path_factory):
    """A real ``scalene run`` of a small program that burns CPU in one function and allocates in another.

    The two are balanced so that each holds a clear share on a busy machine too (measured with a
    second core spinning: burn ~40 % CPU, hoard ~16 % CPU and ~125 MB allocated); with a 5:1
    allocation-heavy mix, burn fell to 7.7 % on CI under load.
    """
    d = tmp_path_factory.mktemp("scalene")
    prog = d / "prog.py"
    prog.write_text(PROGRAM)
    out = d / "out.json"
    cmd = [sys.executable, "-m", "scalene", "run", "--memory", "-o", str(out), str(prog)]
    res = subprocess.run(cmd, cwd=d, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return profiling.parse_scalene(out)


@pytest.mark.slow
def test_parse_real_scalene_run(scalene_profile) -> None:
    p = scalene_profile
    assert p.meta["memory"] is True and p.meta["elapsed_s"] > 0.5
    assert {"burn", "hoard"} <= set(p.functions.name)  # main() itself is under scalene's 1% cut-off
    cpu = profiling.top_functions(p, by="cpu")
    assert cpu.name.iloc[0] in {"burn", "hoard"} and cpu.cpu_pct.iloc[0] > 10
    burn = p.functions.set_index("name").loc["burn"]
    assert burn.cpu_pct > 10 and burn.malloc_mb == 0
    mem = profiling.top_lines(p, by="memory")
    assert "bytearray(4096)" in mem.source.iloc[0] and mem.malloc_mb.iloc[0] > 10
    growth = profiling.top_lines(p, by="growth")
    assert len(growth) and (growth.growth_mb > 0).all()
    # burn's loop lines carry one region's figures: collapsed into one row, not double counted
    rows = p.lines[(p.lines.source.str.contains("total")) & (p.lines.cpu_pct > 0)]
    assert len(rows) <= 2
    assert (p.lines.groupby("file").cpu_pct.sum() <= 100.5).all()
    assert len(p.memory) > 0 and p.memory.footprint_mb.max() > 10
    assert profiling.harness_share(p) == 0 and profiling.harness_share(None) is None
    with pytest.raises(ConfigError, match="valid: cpu, memory, peak, growth"):
        profiling.top_lines(p, by="wall")


@pytest.mark.slow
def test_flame_layout_shares(scalene_profile) -> None:
    layout = profiling.flame_layout(scalene_profile, min_share=0.0)
    assert len(layout) and (layout.width > 0).all() and (layout.x0 + layout.width <= 1 + 1e-9).all()
    roots = layout[layout.depth == 0]
    assert roots.width.sum() == pytest.approx(1.0)
    assert layout.label.str.contains("burn").any()
    for r in layout[layout.depth > 0].itertuples():  # every box lies inside its parent
        parent = layout[
            (layout.depth == r.depth - 1)
            & (layout.x0 <= r.x0 + 1e-9)
            & (layout.x0 + layout.width >= r.x0 + r.width - 1e-9)
        ]
        assert len(parent)
    from axon_lab.profiling import plots as plots

    fig = plots.flame(layout)
    assert fig.axes and len(fig.axes[0].patches) == len(layout)


def test_parse_rejects_non_scalene(tmp_path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"hello": 1}')
    with pytest.raises(InputFileError, match="not a scalene profile"):
        profiling.parse_scalene(bad)
    with pytest.raises(InputFileError, match="no such file"):
        profiling.parse_scalene(tmp_path / "missing.json")


def test_resource_sampler_sees_a_growing_child() -> None:
    code = "import time\nx = []\nfor _ in range(15):\n    x.append(bytearray(8 * 2**20))\n    time.sleep(0.1)\ntime.sleep(0.5)\n"
    proc = subprocess.Popen([sys.executable, "-c", code])
    sampler = ProcessResourceSampler(proc.pid, interval_s=0.1).start()
    sampler.phase = "load"
    proc.wait(timeout=30)
    time.sleep(0.1)
    frame = sampler.stop()
    assert len(frame) >= 5 and set(frame.phase) <= {"startup", "load"}
    assert frame.rss_mb.max() - frame.rss_mb.min() > 60  # ~120 MB allocated in steps
    assert (frame.cpu_pct >= 0).all()


def _frame(minutes: float, slope: float, noise: float = 0.5, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(0, minutes * 60, 1.0)
    idle = pd.DataFrame(
        {"t_s": np.arange(-10, 0, 1.0), "phase": "idle", "rss_mb": 500.0, "cpu_pct": 2.0}
    )
    load = pd.DataFrame(
        {
            "t_s": t,
            "phase": "load",
            "rss_mb": 600 + slope * t / 60 + rng.normal(0, noise, t.size),
            "cpu_pct": 40 + rng.normal(0, 5, t.size),
        }
    )
    return pd.concat([idle, load], ignore_index=True)


def test_memory_slope_flags_a_leak_only_when_it_is_one() -> None:
    leak = profiling.memory_slope(_frame(5, slope=8.0))
    assert (
        leak["slope_mb_per_min"] == pytest.approx(8.0, abs=0.3) and leak["leak_suspected"] is True
    )
    flat = profiling.memory_slope(_frame(5, slope=0.0))
    assert abs(flat["slope_mb_per_min"]) < 0.3 and flat["leak_suspected"] is False
    short = profiling.memory_slope(_frame(0.5, slope=30.0))
    assert short["slope_mb_per_min"] > 20 and short["leak_suspected"] is None


def test_resource_verdicts_against_the_guide_targets() -> None:
    v = profiling.resource_verdicts(_frame(1, slope=0.0)).set_index("metric")
    assert v.loc["memory idle (max RSS)", "status"] == "pass"
    assert v.loc["CPU normal (mean under load)", "status"] == "pass"  # ~40% of a core
    hot = _frame(1, slope=0.0).assign(cpu_pct=95.0, rss_mb=4500.0)
    v = profiling.resource_verdicts(hot).set_index("metric")
    assert v.loc["memory under load (max RSS)", "status"] == "fail"
    assert v.loc["CPU peak (p95 under load)", "status"] == "fail"
    assert (
        v.loc["memory idle (max RSS)", "status"] == "fail"
    )  # 4.5 GB idle is past the 4 GB critical


def test_lag_file_and_phases(tmp_path) -> None:
    f = tmp_path / "lag.csv"
    f.write_text("100.0,0.5\n101.0,0.7\n102.0,25.0\n103.0,40.0\nbroken\n")
    lag = profiling.label_phases(profiling.read_lag(f), {"idle": 100.0, "load": 102.0})
    assert lag.phase.tolist() == ["idle", "idle", "load", "load"]
    s = profiling.lag_summary(lag).set_index("phase")
    assert s.loc["idle", "status"] == "pass" and s.loc["load", "status"] == "warn"
    assert s.loc["load", "share_over_10ms"] == 1.0
