"""Datasets for the HNSW experiments: clustered synthetic embeddings and the real corpus."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from axon_lab.config import Settings, get_settings
from axon_lab.errors import ConfigError
from axon_lab.registry import Registry
from axon_lab.stack.vector import VectorPoint

#: Workspaces of the synthetic dataset and their shares (selectivities 50%, 10%, 1%).
SYNTHETIC_WORKSPACES: dict[str, float] = {"w50": 0.50, "w10": 0.10, "w01": 0.01, "rest": 0.39}
SYNTHETIC_TIERS: dict[str, float] = {"workspace": 0.5, "project": 0.3, "global": 0.2}


@dataclass
class Dataset:
    """Vectors to index plus queries that are not members.

    Attributes
    ----------
    name
        ``corpus`` or ``synthetic``.
    vectors
        ``(n, dim)`` float32, unit norm (cosine = dot product).
    ids
        Point ids (int64), one per row.
    workspace, tier
        Payload values per row (the filter fields).
    queries
        ``(q, dim)`` float32, unit norm.
    info
        How it was made (source, seed, sizes).
    """

    name: str
    vectors: np.ndarray
    ids: np.ndarray
    workspace: np.ndarray
    tier: np.ndarray
    queries: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    _order: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        """Number of points."""
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        """Vector dimension."""
        return int(self.vectors.shape[1])

    def rows(self, ids: Sequence[int] | np.ndarray) -> np.ndarray:
        """Row indices of point ``ids`` (-1 for an id that is not in the dataset)."""
        if self._order is None:
            self._order = np.argsort(self.ids, kind="stable")
        ids = np.asarray(ids, dtype=np.int64)
        if ids.size == 0:
            return np.empty(0, dtype=np.int64)
        sorted_ids = self.ids[self._order]
        pos = np.clip(np.searchsorted(sorted_ids, ids), 0, len(sorted_ids) - 1)
        out = self._order[pos]
        return np.where(sorted_ids[pos] == ids, out, -1).astype(np.int64)

    def points(
        self, start: int = 0, stop: int | None = None, *, id_offset: int = 0
    ) -> list[VectorPoint]:
        """Rows ``start:stop`` as points with payload ``workspaceId`` and ``tier``."""
        stop = self.n if stop is None else min(stop, self.n)
        return [
            VectorPoint(
                int(self.ids[i]) + id_offset,
                self.vectors[i],
                {"workspaceId": str(self.workspace[i]), "tier": str(self.tier[i])},
            )
            for i in range(start, stop)
        ]

    def shares(self) -> pd.DataFrame:
        """Points and share of the dataset per workspace (largest first)."""
        ws, counts = np.unique(self.workspace, return_counts=True)
        df = pd.DataFrame({"workspace": ws, "points": counts, "share": counts / max(self.n, 1)})
        return df.sort_values("points", ascending=False).reset_index(drop=True)

    def describe(self) -> pd.DataFrame:
        """A one-row summary (name, points, dim, queries, workspaces, source)."""
        return pd.DataFrame(
            [
                {
                    "dataset": self.name,
                    "points": self.n,
                    "dim": self.dim,
                    "queries": len(self.queries),
                    "workspaces": int(len(np.unique(self.workspace))),
                    **{k: v for k, v in self.info.items() if isinstance(v, str | int | float)},
                }
            ]
        )


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1, norms)


def synthetic_dataset(
    n: int,
    *,
    n_queries: int = 500,
    dim: int = 384,
    clusters: int | None = None,
    latent_dim: int = 32,
    spread: float = 0.5,
    noise: float = 0.02,
    seed: int = 0,
    workspaces: Mapping[str, float] = SYNTHETIC_WORKSPACES,
    chunk: int = 20_000,
) -> Dataset:
    """A clustered set that behaves like sentence embeddings and scales to millions of points.

    Points are Gaussian clusters (uneven sizes, Dirichlet weights) in a ``latent_dim``-dimensional
    space, mapped into ``dim`` dimensions by a random orthonormal basis, plus isotropic
    ``noise``, then normalised. A low intrinsic dimension is what makes real embeddings
    searchable by HNSW; pure high-dimensional noise would not be. Queries come from the same
    distribution with another random stream, so they are not members. Workspaces and tiers are
    assigned independently of the clusters, as in the corpus (hash-assigned).

    Parameters
    ----------
    n
        Points (generated in chunks of ``chunk`` rows, so 200k+ fits in memory easily).
    n_queries
        Queries.
    clusters
        Number of clusters (default ``max(8, sqrt(n) / 2)``).
    spread, noise
        Within-cluster standard deviation (latent space) and ambient noise.
    seed
        Everything is a function of the seed.
    """
    if n < 1 or n_queries < 1:
        raise ConfigError(
            f"synthetic dataset needs n >= 1 and n_queries >= 1, got {n}, {n_queries}"
        )
    rng = np.random.default_rng(seed)
    c = clusters or max(8, int(math.sqrt(n) / 2))
    centers = rng.standard_normal((c, latent_dim))
    weights = rng.dirichlet(np.ones(c))
    basis = np.linalg.qr(rng.standard_normal((dim, latent_dim)))[0]

    def draw(m: int, r: np.random.Generator) -> np.ndarray:
        out = np.empty((m, dim), dtype=np.float32)
        for s in range(0, m, chunk):
            k = min(chunk, m - s)
            z = centers[r.choice(c, size=k, p=weights)] + spread * r.standard_normal(
                (k, latent_dim)
            )
            out[s : s + k] = _unit(z @ basis.T + noise * r.standard_normal((k, dim)))
        return out

    vectors = draw(n, rng)
    queries = draw(n_queries, np.random.default_rng(seed + 1))
    pr = np.random.default_rng(seed + 2)
    names = list(workspaces)
    p = np.asarray([workspaces[k] for k in names], dtype=float)
    ws = np.asarray(names, dtype=object)[pr.choice(len(names), size=n, p=p / p.sum())]
    tiers = list(SYNTHETIC_TIERS)
    tp = np.asarray(list(SYNTHETIC_TIERS.values()))
    tier = np.asarray(tiers, dtype=object)[pr.choice(len(tiers), size=n, p=tp / tp.sum())]
    return Dataset(
        "synthetic",
        vectors,
        np.arange(n, dtype=np.int64),
        ws,
        tier,
        queries,
        info={
            "source": "synthetic clustered (latent Gaussian clusters, random orthonormal map, noise)",
            "seed": seed,
            "clusters": c,
            "latent_dim": latent_dim,
            "spread": spread,
            "noise": noise,
        },
    )


def corpus_dataset(
    limit: int | None = None, *, n_queries: int | None = None, settings: Settings | None = None
) -> Dataset:
    """The real corpus embeddings; queries are the held-out texts (real, not corpus members).

    ``limit`` selects the representative sample ``axon_lab.corpus`` builds (embedded on first
    use, ~100 texts/s); ``None`` is the full corpus.
    """
    from axon_lab import corpus

    df = corpus.load_frame(limit, settings=settings, split=None)
    c = df[df.split == "corpus"].reset_index(drop=True)
    h = df[df.split == "heldout"].reset_index(drop=True)
    if n_queries is not None:
        h = h.head(n_queries)
    if len(c) == 0 or len(h) == 0:
        raise ConfigError(
            f"corpus (limit={limit}) has {len(c)} contexts and {len(h)} held-out queries"
        )
    return Dataset(
        "corpus",
        _unit(np.stack(c.embedding.to_numpy())),
        c.id.to_numpy(np.int64),
        c.workspaceId.to_numpy(object),
        c.tier.to_numpy(object),
        _unit(np.stack(h.embedding.to_numpy())),
        info={
            "source": "axon_lab corpus (Python stdlib texts, all-MiniLM-L6-v2)",
            "fingerprint": corpus.fingerprint(df),
            "limit": -1 if limit is None else limit,
        },
    )


DATASETS: Registry[Callable[..., Dataset]] = Registry("vector dataset")
DATASETS.register("corpus", corpus_dataset)
DATASETS.register("synthetic", synthetic_dataset)

#: Sizes used when ``smoke`` is set: seconds, same code path.
SMOKE_SYNTHETIC_SIZE = 2000
SMOKE_QUERIES = 100
SMOKE_CORPUS_LIMIT = 300


def load_dataset(
    name: str,
    *,
    size: int | None = None,
    n_queries: int | None = None,
    seed: int = 0,
    smoke: bool = False,
    settings: Settings | None = None,
) -> Dataset:
    """A dataset by name: ``corpus`` (``size`` = corpus sample limit, None = full) or ``synthetic``.

    ``size`` and ``n_queries`` of 0 mean the default, like None (notebook parameters are ints).

    With ``smoke`` the dataset is small (synthetic: 2,000 points and 100 queries; corpus: the
    ``AXON_CORPUS_LIMIT`` sample, default 300) so a notebook finishes in seconds.
    """
    factory = DATASETS.get(name)
    s = settings or get_settings()
    size, n_queries = size or None, n_queries or None
    if name == "synthetic":
        n = size or 10_000
        q = n_queries or 500
        if smoke:
            n, q = min(n, SMOKE_SYNTHETIC_SIZE), min(q, SMOKE_QUERIES)
        return factory(n, n_queries=q, seed=seed)
    limit = size
    if smoke:
        cap = s.corpus_limit or SMOKE_CORPUS_LIMIT
        limit = cap if size is None else min(size, cap)
    return factory(limit, n_queries=n_queries, settings=s)
