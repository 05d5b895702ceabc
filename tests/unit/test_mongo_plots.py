"""MongoDB figures: built from summaries and frames, one box per stage, nothing written to disk."""

from __future__ import annotations

import os

import pandas as pd
from matplotlib.figure import Figure

from axon_lab import mongo
from axon_lab.mongo import plots as mp
from axon_lab.mongo.files import find_fixture


def texts(fig: Figure) -> list[str]:
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_plan_tree_has_one_box_per_stage_coloured_by_kind(tmp_path):
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        (s,) = mongo.load_explains(
            find_fixture("v3.2.6_sharded_shard_merge_collscan_and_ixscan.json")
        )
        fig = mp.plan_tree_figure(s)
    finally:
        os.chdir(cwd)
    assert isinstance(fig, Figure) and list(tmp_path.iterdir()) == []
    boxes = texts(fig)
    assert len(boxes) == len(list(s.tree.walk())) == 9
    assert boxes[0].startswith("SHARD_MERGE\nret 22.5k")
    assert "SHARDING_FILTER\n[shard01]\nret 7.04k" in boxes  # the shard named once, at its root
    assert "COLLSCAN\nret 7.04k · docs 315k" in boxes
    colours = {
        t.get_text().split("\n")[0]: t.get_bbox_patch().get_facecolor() for t in fig.axes[0].texts
    }
    from matplotlib.colors import to_rgba

    assert colours["COLLSCAN"] == to_rgba(mp.COLORS["collscan"])
    assert colours["IXSCAN { age: 1 }"] == to_rgba(mp.COLORS["index"])
    assert "v3.2.6_sharded_shard_merge_collscan_and_ixscan" in fig.axes[0].get_title()


def test_plan_tree_marks_sorts_and_unknown_stages():
    (s,) = mongo.load_explains(find_fixture("v3.2.5_find_in_memory_sort_skip_limit.json"))
    sort = next(n for n in s.tree.walk() if n.stage == "SORT")
    assert mp.stage_kind(sort) == "sort"
    u = mongo.parse_explain(
        {
            "queryPlanner": {
                "winningPlan": {"stage": "NEW_STAGE", "inputStage": {"stage": "COLLSCAN"}}
            }
        }
    )
    fig = mp.plan_tree_figure(u, title="unknown")
    assert texts(fig)[0] == "NEW_STAGE" and mp.stage_kind(u.tree) == "unknown"


def test_before_after_and_shape_table_and_pools():
    plans = [
        mongo.load_explains(find_fixture(n))[0]
        for n in ("v3.2.5_find_ixscan_fetch.json", "v3.2.5_find_covered_ixscan_projection.json")
    ]
    frame = mongo.plans_table([("before", plans[0]), ("after", plans[1])])
    fig = mp.before_after_figure(frame)
    assert len(fig.axes) == 3 and [ax.get_title() for ax in fig.axes][0] == "documents examined"
    assert " 192k" in texts(fig) and " 0" in texts(fig)
    shapes = mongo.digest(
        mongo.read_slow_log(find_fixture("slowlog_v6.0.11_and_v6.0.14_hatchet.log")).operations
    )
    tfig = mp.query_shape_table_figure(shapes, top=3)
    cells = [c.get_text().get_text() for c in tfig.axes[0].tables[0].get_celld().values()]
    assert "268" in cells and "testdb.vehicles" in cells and "89" not in cells  # top 3 only
    empty = mp.query_shape_table_figure(pd.DataFrame(columns=list(mongo.DIGEST_COLUMNS)))
    assert "no slow operations" in texts(empty)
    pools = pd.DataFrame(
        [
            {
                "max_pool_size": 10,
                "min_pool_size": 0,
                "threads": 16,
                "p50_ms": 2.0,
                "p95_ms": 9.0,
                "qps": 900.0,
            },
            {
                "max_pool_size": 50,
                "min_pool_size": 10,
                "threads": 16,
                "p50_ms": 1.5,
                "p95_ms": 4.0,
                "qps": 1400.0,
            },
        ]
    )
    pfig = mp.pool_figure(pools)
    assert "16 concurrent threads" in pfig._suptitle.get_text()
    assert "live mode with a URI only" in texts(mp.pool_figure(None))[0]
