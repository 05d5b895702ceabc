"""Benchmark the run history: ingest N runs, read them back, run the CI gate, build the site.

    python scripts/bench_history.py                 # 1,000 runs, both stores, 50-metric check
    python scripts/bench_history.py --runs 200 --json out.json

The runs are real load summaries (one short run against the test server, then copies with
their time, commit and values varied), so ingestion parses the same files CI produces. The
check is timed on 50 metrics × N runs (synthetic rows, a 10% step in a tenth of the series).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from axon_lab import jsonutil
from axon_lab.history import open_history
from axon_lab.history.check import check
from axon_lab.history.store import COLUMNS
from axon_lab.load import LoadRunner
from axon_lab.load.testserver import LoadServer


def make_runs(root: Path, n: int) -> list[Path]:
    """``n`` run directories holding varied copies of one real load summary."""
    with LoadServer("constant:ms=2") as srv:
        LoadRunner(url=srv.url + "/work", connections=2, duration_s=0.3, out_dir=root / "seed",
                   progress=False).run()  # fmt: skip
    seed = json.loads((root / "seed" / "summary.json").read_text())
    rng = np.random.default_rng(0)
    paths = []
    t0 = pd.Timestamp("2026-01-01", tz="UTC")
    for i in range(n):
        doc = copy.deepcopy(seed)
        doc["provenance"]["created_utc"] = (t0 + pd.Timedelta(hours=i)).isoformat()
        doc["provenance"]["commit"] = {"id": f"{i:040x}", "dirty": False, "branch": "main"}
        scale = 1 + 0.05 * rng.standard_normal()
        for st in doc["metrics"].values():
            for q in ("p50", "p95", "p99"):
                if isinstance(st.get(q), float):
                    st[q] *= scale
        doc["rps"] = (doc.get("rps") or 100.0) / scale
        d = root / f"run{i:05d}"
        d.mkdir()
        jsonutil.write_json(d / "summary.json", doc)
        paths.append(d)
    return paths


def synthetic_frame(metrics: int, runs: int) -> pd.DataFrame:
    """Tidy rows for ``metrics`` series × ``runs`` runs (a 10% step in every tenth series)."""
    rng = np.random.default_rng(1)
    t = pd.date_range("2026-01-01", periods=runs, freq="h", tz="UTC")
    parts = []
    for m in range(metrics):
        v = 100 * (1 + 0.05 * rng.standard_normal(runs))
        if m % 10 == 0:
            v[runs // 2 :] *= 1.10
        parts.append(pd.DataFrame({
            "run_id": [f"r{i}" for i in range(runs)], "created_utc": t, "kind": "load",
            "name": "simple", "metric": f"stage.s{m}:p95", "unit": "ms", "better": "lower",
            "value": v, "machine": "m", "commit": [f"{i:08x}" for i in range(runs)],
            "dirty": False, "branch": "main", "label": None, "report": None, "options": None,
        }, columns=list(COLUMNS)))  # fmt: skip
    return pd.concat(parts, ignore_index=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--metrics", type=int, default=50)
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        runs = make_runs(root / "runs", a.runs)
        out["make_runs_s"] = time.perf_counter() - t
        for kind, loc in (("parquet", root / "hist"), ("duckdb", root / "h.duckdb")):
            h = open_history(loc)
            t = time.perf_counter()
            res = h.add(runs)
            out[f"{kind}_ingest_s"] = time.perf_counter() - t
            assert len(res.added) == a.runs, res.errors[:3]
            t = time.perf_counter()
            frame = h.frame()
            out[f"{kind}_read_s"] = time.perf_counter() - t
            out[f"{kind}_rows"] = float(len(frame))
        try:
            from axon_lab.history.site import build_site
        except ImportError:
            build_site = None
        if build_site is not None:
            t = time.perf_counter()
            build_site(frame, root / "site")
            out["site_s"] = time.perf_counter() - t
    big = synthetic_frame(a.metrics, a.runs)
    t = time.perf_counter()
    # the steps are at the middle run; detection may place one a run early
    res = check(big, baseline=f"last-{a.runs // 2 + 5}")
    out["check_s"] = time.perf_counter() - t
    out["check_regressions"] = float(len(res.regressions))
    for k, v in out.items():
        print(f"{k:24} {v:10.3f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
