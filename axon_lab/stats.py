"""Percentiles from raw samples with 95% confidence intervals; the difference of two percentiles.

Percentile definition (used everywhere in axon_lab): **nearest rank** — the p-th percentile of
``n`` values is the smallest value ``x`` such that at least ``p``% of the values are ≤ ``x``,
i.e. the ``ceil(p/100·n)``-th smallest value (Hyndman & Fan type 1; NumPy
``method="inverted_cdf"``). It is always an observed value, never an interpolation, and it is
the definition HdrHistogram's ``getValueAtPercentile`` uses, so exact and histogram percentiles
agree to the histogram's resolution.

Confidence intervals for a percentile:

* ``order`` (default) — distribution-free, from order statistics: the number of samples below
  the true quantile is Binomial(n, p), so ``[x_(l), x_(u)]`` with binomial-quantile ranks covers
  it with probability ≥ the confidence level. Needs ``n ≥ ln(α/2)/ln(p)`` samples for the upper
  bound to exist (p95: 72, p99: 368, p99.9: 3,688 at 95%); below that the bound is ``None`` and a
  warning says so.
* ``bootstrap`` — percentile bootstrap, computed exactly and cheaply: the k-th smallest of a
  resample of ``n`` sorted values is ``x[floor(n·U)]`` with ``U ~ Beta(k, n + 1 − k)``, so each
  replicate costs one Beta draw, for any ``n``.

A warning is also given when fewer than 10 samples lie above the percentile (p99 with fewer than
1,000 samples): the interval is then wide and rests on a handful of values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

PERCENTILE_DEFINITION = (
    "nearest-rank: the p-th percentile is the smallest recorded value x such that at least p% of "
    "values are <= x (Hyndman-Fan type 1, numpy method='inverted_cdf', as HdrHistogram)"
)
#: Summary field name → percentile.
QUANTILES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
#: Fields of :func:`describe`, in order (conventions: one summary schema).
STAT_FIELDS: tuple[str, ...] = ("count", "min", "max", "mean", "stddev", *QUANTILES)
#: Fewer samples than this above a percentile triggers a "wide interval" warning.
MIN_TAIL_SAMPLES = 10

Method = Literal["order", "bootstrap"]


def clean(values: Iterable[float] | np.ndarray) -> np.ndarray:
    arr = np.asarray(
        values if isinstance(values, np.ndarray) else list(values), dtype=float
    ).ravel()
    return arr[np.isfinite(arr)]


def rank(n: int, q: float) -> int:
    """1-based nearest rank of percentile ``q`` (0–100) among ``n`` values: ``max(1, ceil(q/100·n))``."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be in [0, 100], got {q}")
    # Round before ceil so 99.9/100*1000 = 999.0000000000001 does not become 1000.
    return max(1, math.ceil(round(q / 100.0 * n, 9)))


def percentile(values: Iterable[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile ``q`` (0–100) of ``values`` (NaN/inf ignored; NaN when empty)."""
    arr = clean(values)
    if arr.size == 0:
        return float("nan")
    k = rank(arr.size, q)
    return float(np.partition(arr, k - 1)[k - 1])


def percentiles(
    values: Iterable[float] | np.ndarray, qs: Mapping[str, float] | Sequence[float] = QUANTILES
) -> dict[Any, float]:
    """Several nearest-rank percentiles at once (one sort); keys as given (names or numbers)."""
    arr = np.sort(clean(values))
    items = qs.items() if isinstance(qs, Mapping) else ((q, q) for q in qs)
    if arr.size == 0:
        return {k: float("nan") for k, _ in items}
    return {k: float(arr[rank(arr.size, q) - 1]) for k, q in items}


def min_samples_for_ci(q: float, confidence: float = 0.95) -> int:
    """Smallest ``n`` for which the order-statistic interval of percentile ``q`` has an upper bound."""
    p = q / 100.0
    if p <= 0:
        return 1
    if p >= 1:
        return math.inf  # type: ignore[return-value]
    alpha = 1.0 - confidence
    return max(1, math.ceil(math.log(alpha / 2) / math.log(p)))


@dataclass(frozen=True)
class PercentileCI:
    """A percentile, its confidence interval and how it was obtained.

    ``low``/``high`` are ``None`` when there are too few samples for that bound.
    """

    q: float
    estimate: float
    low: float | None
    high: float | None
    n: int
    confidence: float
    method: str
    warning: str | None = None

    def as_list(self) -> list[float | None]:
        """``[low, high]`` for JSON summaries."""
        return [self.low, self.high]


def _tail_warning(n: int, q: float, confidence: float) -> str | None:
    need = min_samples_for_ci(q, confidence)
    if n < need:
        return (
            f"too few samples for a {confidence:.0%} CI of p{q:g}: n={n}, need >= {need} "
            "(upper bound unknown)"
        )
    above = n - rank(n, q)
    if above < MIN_TAIL_SAMPLES:
        want = math.ceil(MIN_TAIL_SAMPLES / (1 - q / 100.0)) if q < 100 else n
        return (
            f"only {above} samples above p{q:g} (n={n}); its CI is wide — "
            f"use >= {want} samples for a stable estimate"
        )
    return None


def percentile_ci(
    values: Iterable[float] | np.ndarray,
    q: float,
    *,
    confidence: float = 0.95,
    method: Method = "order",
    n_boot: int = 10_000,
    seed: int | None = 0,
) -> PercentileCI:
    """Nearest-rank percentile ``q`` with a ``confidence`` interval (see the module docstring).

    Parameters
    ----------
    values
        Raw samples (NaN/inf ignored).
    q
        Percentile, 0–100.
    confidence
        Coverage of the interval (0.95 → 95%).
    method
        ``order`` (distribution-free, exact coverage ≥ confidence) or ``bootstrap``.
    n_boot
        Bootstrap replicates.
    seed
        Bootstrap seed.
    """
    arr = np.sort(clean(values))
    n = int(arr.size)
    if n == 0:
        return PercentileCI(q, float("nan"), None, None, 0, confidence, method, "no samples")
    k = rank(n, q)
    est = float(arr[k - 1])
    warning = _tail_warning(n, q, confidence)
    alpha = 1.0 - confidence
    p = q / 100.0
    if method == "order":
        # ranks l, u (1-based) with P(l <= B < u) >= confidence, B ~ Binomial(n, p)
        ks, cdf = binom_cdf(n, p)
        # largest k with F(k) <= α/2 (−1 when none), and smallest k with F(k) >= 1 − α/2
        below = np.nonzero(cdf <= alpha / 2)[0]
        kl = int(ks[below[-1]]) if below.size else -1
        lo_rank = kl + 1
        above = np.nonzero(cdf >= 1 - alpha / 2)[0]
        hi_rank = (int(ks[above[0]]) if above.size else n) + 1
        low = float(arr[lo_rank - 1]) if lo_rank >= 1 else None
        high = float(arr[hi_rank - 1]) if hi_rank <= n else None
    elif method == "bootstrap":
        rng = np.random.default_rng(seed)
        boot = _bootstrap_order_stat(arr, k, n_boot, rng)
        low, high = (
            float(x) for x in np.quantile(boot, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
        )
        if n < min_samples_for_ci(q, confidence):
            high = None  # the bootstrap cannot see above the sample maximum either
    else:
        raise ValueError(f"unknown CI method {method!r}; valid: order, bootstrap")
    return PercentileCI(q, est, low, high, n, confidence, method, warning)


def binom_cdf(n: int, p: float) -> tuple[np.ndarray, np.ndarray]:
    """Binomial(n, p) CDF at ``k = ks`` over the range holding all but ~1e-30 of the mass.

    Exact up to float rounding: the pmf comes from its ratio recurrence in log space (one
    ``lgamma`` call), summed over the whole support for n ≤ 20,000 and over mean ± 14 sd beyond
    (the mass outside is below 1e-40). SciPy is not needed (its import costs seconds).
    """
    if not 0 < p < 1:
        ks = np.arange(n + 1)
        return ks, (np.ones(n + 1) if p <= 0 else (ks >= n).astype(float))
    if n <= 20_000:
        lo, hi = 0, n
    else:
        sd = math.sqrt(n * p * (1 - p))
        lo = max(0, int(n * p - 14 * sd) - 10)
        hi = min(n, int(n * p + 14 * sd) + 10)
    ks = np.arange(lo, hi + 1)
    log_p0 = (
        math.lgamma(n + 1)
        - math.lgamma(lo + 1)
        - math.lgamma(n - lo + 1)
        + lo * math.log(p)
        + (n - lo) * math.log1p(-p)
    )
    steps = np.log((n - ks[:-1]) / (ks[:-1] + 1.0)) + math.log(p) - math.log1p(-p)
    logpmf = np.concatenate([[log_p0], log_p0 + np.cumsum(steps)])
    pmf = np.exp(logpmf - logpmf.max())
    cdf = np.cumsum(pmf) / pmf.sum()
    return ks, cdf


def _bootstrap_order_stat(
    sorted_arr: np.ndarray, k: int, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap replicates of the k-th smallest value (exact, via Beta order statistics)."""
    n = sorted_arr.size
    u = rng.beta(k, n + 1 - k, size=n_boot)
    idx = np.minimum((u * n).astype(np.int64), n - 1)
    return sorted_arr[idx]


def describe(
    values: Iterable[float] | np.ndarray,
    *,
    ci: Sequence[float] = (95.0, 99.0),
    confidence: float = 0.95,
) -> dict[str, Any]:
    """The summary-schema statistics of ``values``.

    Returns ``count, min, max, mean, stddev`` (sample, ddof=1), ``p50, p90, p95, p99, p999``
    (nearest rank), ``ci`` (``{"p95": [low, high], "p99": [...]}``, order-statistic, 95%) and
    ``warnings`` (too few samples). Empty input gives ``count`` 0 and ``None`` elsewhere.
    """
    arr = np.sort(clean(values))
    n = int(arr.size)
    out: dict[str, Any] = dict.fromkeys(STAT_FIELDS)
    out["count"] = n
    out["ci"] = {}
    out["warnings"] = []
    if n == 0:
        return out
    out.update(
        min=float(arr[0]),
        max=float(arr[-1]),
        mean=float(arr.mean()),
        stddev=float(arr.std(ddof=1)) if n > 1 else 0.0,
    )
    for name, q in QUANTILES.items():
        out[name] = float(arr[rank(n, q) - 1])
    for q in ci:
        c = percentile_ci(arr, q, confidence=confidence)
        out["ci"][_qname(q)] = c.as_list()
        if c.warning:
            out["warnings"].append(c.warning)
    return out


def _qname(q: float) -> str:
    for name, value in QUANTILES.items():
        if value == q:
            return name
    return f"p{q:g}".replace(".", "")


@dataclass(frozen=True)
class PercentileDifference:
    """Percentile ``q`` of run B minus run A, with a bootstrap confidence interval.

    ``significant`` is True when the interval excludes zero; ``rel_change`` is ``diff / a``.
    """

    q: float
    a: float
    b: float
    diff: float
    low: float
    high: float
    rel_change: float
    significant: bool
    n_a: int
    n_b: int
    confidence: float
    method: str = "bootstrap"
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        """Plain data."""
        d = asdict(self)
        d["warnings"] = list(self.warnings)
        return d


def diff_percentile(
    a: Iterable[float] | np.ndarray,
    b: Iterable[float] | np.ndarray,
    q: float = 95.0,
    *,
    confidence: float = 0.95,
    n_boot: int = 10_000,
    seed: int | None = 0,
) -> PercentileDifference:
    """Difference of percentile ``q`` between two independent runs (B − A) with a bootstrap CI.

    Each run is resampled independently (exactly, via Beta order statistics); the interval is the
    percentile interval of the replicate differences.
    """
    xa, xb = np.sort(clean(a)), np.sort(clean(b))
    warnings = []
    if xa.size == 0 or xb.size == 0:
        nan = float("nan")
        return PercentileDifference(
            q,
            nan,
            nan,
            nan,
            nan,
            nan,
            nan,
            False,
            int(xa.size),
            int(xb.size),
            confidence,
            warnings=("no samples",),
        )
    for label, arr in (("A", xa), ("B", xb)):
        w = _tail_warning(arr.size, q, confidence)
        if w:
            warnings.append(f"run {label}: {w}")
    rng = np.random.default_rng(seed)
    ka, kb = rank(xa.size, q), rank(xb.size, q)
    ba = _bootstrap_order_stat(xa, ka, n_boot, rng)
    bb = _bootstrap_order_stat(xb, kb, n_boot, rng)
    d = bb - ba
    alpha = 1.0 - confidence
    low, high = (float(x) for x in np.quantile(d, [alpha / 2, 1 - alpha / 2]))
    va, vb = float(xa[ka - 1]), float(xb[kb - 1])
    rel = (vb - va) / va if va else float("nan")
    return PercentileDifference(
        q,
        va,
        vb,
        vb - va,
        low,
        high,
        rel,
        bool(low > 0 or high < 0),
        int(xa.size),
        int(xb.size),
        confidence,
        warnings=tuple(warnings),
    )
