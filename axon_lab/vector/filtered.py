"""Filtered HNSW search (``workspaceId`` = w) at several selectivities and payload-index modes."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from axon_lab.config import Settings, get_settings
from axon_lab.errors import ConfigError
from axon_lab.vector.datasets import Dataset
from axon_lab.vector.recall import ground_truth
from axon_lab.vector.sweeps import (
    DEFAULT_FULL_SCAN_KB,
    PAYLOAD_INDEX_MODES,
    SWEEP_INDEXING_KB,
    BuildConfig,
    Grid,
    SweepResult,
    _meta,
    _tidy,
    brute_force_warnings,
    build_index,
    check_hnsw_ef,
    evaluate,
    full_scan_points,
    sweep_stores,
)


def pick_workspaces(
    dataset: Dataset, selectivities: Sequence[float] = (0.01, 0.1, 0.5)
) -> pd.DataFrame:
    """For each target selectivity, the workspace whose share is closest (duplicates dropped)."""
    shares = dataset.shares()
    picked = []
    for target in selectivities:
        i = int((shares.share - target).abs().idxmin())
        picked.append({"target": float(target), **shares.loc[i].to_dict()})
    return pd.DataFrame(picked).drop_duplicates("workspace").reset_index(drop=True)


def filtered_study(
    dataset: Dataset,
    *,
    m: int = 16,
    ef_construct: int = 128,
    hnsw_ef: Sequence[int] = (32, 64, 128),
    k: int = 10,
    selectivities: Sequence[float] = (0.01, 0.1, 0.5),
    payload_index: Sequence[str] = ("before", "none"),
    full_scan_threshold: int = DEFAULT_FULL_SCAN_KB,
    clients: int = 1,
    indexing_threshold_kb: int = SWEEP_INDEXING_KB,
    max_search_threads: int | None = None,
    warmup: int = 10,
    max_seconds: float | None = 15.0,
    settings: Settings | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepResult:
    """Filtered search (``workspaceId`` = w) at several selectivities, per payload-index mode.

    One build per ``payload_index`` mode (``before`` the HNSW build, ``after`` it, or ``none``);
    for each picked workspace (:func:`pick_workspaces`) and the unfiltered case, recall@k
    against the exact filtered top-k and latency at every ``hnsw_ef``, plus exact search.
    Subsets under the full-scan threshold are flagged (``below_full_scan``) and warned about:
    Qdrant answers them by exact scan when it can estimate their size (payload index).
    A filter without a payload index can cost a payload scan per query (hundreds of ms at
    200k points), so each setting runs at most ``max_seconds`` (at least 50 queries; see
    :func:`~axon_lab.vector.sweeps.evaluate`) and no batch pass.
    """
    for ef in hnsw_ef:
        check_hnsw_ef(ef, k)
    bad = [x for x in payload_index if x not in PAYLOAD_INDEX_MODES]
    if bad:
        raise ConfigError(
            f"payload_index must be among {', '.join(PAYLOAD_INDEX_MODES)}, got {bad}"
        )
    s = settings or get_settings()
    say = progress or (lambda _msg: None)
    picked = pick_workspaces(dataset, selectivities)
    thr = full_scan_points(full_scan_threshold, dataset.dim)
    cases: list[tuple[str | None, float, float, np.ndarray]] = [
        (None, 1.0, 1.0, ground_truth(dataset.vectors, dataset.queries, k)[0])
    ]
    for r in picked.itertuples(index=False):
        rows_ws = np.flatnonzero(dataset.workspace == r.workspace)
        cases.append(
            (
                str(r.workspace),
                float(r.target),
                float(r.share),
                ground_truth(dataset.vectors, dataset.queries, k, rows=rows_ws)[0],
            )
        )
    out: list[dict[str, Any]] = []
    notes: list[str] = []
    with sweep_stores(s, max_search_threads=max_search_threads) as open_store:
        for mode in payload_index:
            cfg = BuildConfig(m, ef_construct, full_scan_threshold, "none", mode)
            store = open_store(f"filtered-{cfg.label}")
            try:
                say(f"build {cfg.label} on {dataset.n} points ...")
                b = build_index(
                    store,
                    dataset,
                    cfg,
                    payload_fields=("workspaceId",),
                    indexing_threshold_kb=indexing_threshold_kb,
                )
                sizes = {
                    f"workspaceId={ws}": int(round(share * dataset.n))
                    for ws, _t, share, _ in cases
                    if ws is not None
                }
                w = brute_force_warnings(
                    b,
                    full_scan_threshold_kb=full_scan_threshold,
                    dim=dataset.dim,
                    subsets=sizes,
                    emit=mode == payload_index[0],
                )
                if mode == payload_index[0]:
                    notes.extend(w)
                for ws, target, share, truth in cases:
                    size = int(round(share * dataset.n))
                    base = {
                        "config": cfg.label,
                        "m": m,
                        "ef_construct": ef_construct,
                        "full_scan_threshold": full_scan_threshold,
                        "payload_index": mode,
                        "workspace": ws or "(all)",
                        "filtered": ws is not None,
                        "target": target,
                        "selectivity": share,
                        "subset_points": size,
                        "below_full_scan": size < thr,
                        "k": k,
                        "build_s": b["build_s"],
                        "optimize_s": b["optimize_s"],
                    }
                    ev = evaluate(
                        store,
                        dataset,
                        truth,
                        k=k,
                        exact=True,
                        workspace=ws,
                        clients=clients,
                        warmup=warmup,
                        batch=False,
                        max_seconds=max_seconds,
                    )
                    out.append({**base, "hnsw_ef": None, "exact": True, **ev})
                    for ef in hnsw_ef:
                        ev = evaluate(
                            store,
                            dataset,
                            truth,
                            k=k,
                            hnsw_ef=ef,
                            workspace=ws,
                            clients=clients,
                            warmup=warmup,
                            batch=False,
                            max_seconds=max_seconds,
                        )
                        out.append({**base, "hnsw_ef": ef, "exact": False, **ev})
                        say(
                            f"  {mode} {ws or '(all)'} hnsw_ef={ef}: recall {ev['recall']:.4f}, "
                            f"p95 {ev['p95_ms']:.3f} ms"
                        )
            finally:
                store.drop()
                store.close()
    frame = _tidy(pd.DataFrame(out), dataset, s)
    return SweepResult(
        frame,
        notes,
        _meta(
            dataset,
            s,
            m=m,
            ef_construct=ef_construct,
            k=k,
            full_scan_threshold=full_scan_threshold,
            full_scan_points=thr,
            payload_index=list(payload_index),
        ),
    )


#: The build the filtered study uses when no configuration was recommended.
DEFAULT_FILTERED_BUILD = (16, 128)


def filtered_study_for(
    dataset: Dataset,
    recommendation: Mapping[str, Any],
    g: Grid,
    *,
    selectivities: Sequence[float] = (0.01, 0.1, 0.5),
    payload_index: Sequence[str] = ("before", "none"),
    **kw: Any,
) -> SweepResult:
    """:func:`filtered_study` on the recommended build (``m``, ``ef_construct``; m=16/128 when
    nothing was recommended) at the grid's ``hnsw_ef`` values, ``k`` and first full-scan threshold.
    """
    if recommendation.get("status") == "ok":
        m, efc = int(recommendation["m"]), int(recommendation["ef_construct"])
    else:
        m, efc = DEFAULT_FILTERED_BUILD
    return filtered_study(
        dataset,
        m=m,
        ef_construct=efc,
        hnsw_ef=g.hnsw_ef,
        k=g.k,
        selectivities=selectivities,
        payload_index=payload_index,
        full_scan_threshold=g.full_scan_threshold[0],
        **kw,
    )
