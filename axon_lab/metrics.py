"""One metric declaration (name, label, unit, which direction is better) for every table in the lab.

A :class:`Metric` says what a number is and whether more of it is good. Each table of metrics is
a :class:`~axon_lab.registry.Registry` of them, made with :func:`declare`:

* load metrics and thresholds (k6 names: ``http_req_duration`` ...):
  :data:`axon_lab.load.thresholds.METRICS`;
* the guide's before/after "Measuring Success" rows: :data:`axon_lab.latency.compare.MEASURES`;
* HNSW sweep columns: :data:`axon_lab.vector.METRICS`;
* the guide's performance targets: every :class:`axon_lab.goals.Goal` holds its metric.

The direction rules (what counts as an improvement, which end of a confidence interval is the
pessimistic one, whether a value beats a limit) live here once, on :class:`Metric`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from axon_lab.registry import Registry

Better = Literal["lower", "higher"]
#: k6's metric types: ``trend`` (a distribution), ``rate`` (a share), ``counter``, ``gauge``.
Kind = Literal["trend", "rate", "counter", "gauge"]


@dataclass(frozen=True)
class Metric:
    """What a number is: its ``name``, axis/table ``label``, ``unit`` and the ``better`` direction.

    Attributes
    ----------
    name
        The key in frames, summaries and thresholds.
    label
        Human label for tables and axes.
    unit
        Unit of the values (``ms``, ``req/s``, ``ratio``, ``""`` for dimensionless).
    better
        ``lower`` (latency, errors) or ``higher`` (throughput, recall, hit rate).
    kind
        k6's metric type, which decides the valid threshold aggregations.
    column
        The records column a load ``trend`` is computed from, when it differs from ``name``.
    """

    name: str
    label: str
    unit: str
    better: Better = "lower"
    kind: Kind = "gauge"
    column: str | None = None

    def improved(self, diff: float) -> bool:
        """Whether a change of ``diff`` (after − before) is an improvement."""
        return diff < 0 if self.better == "lower" else diff > 0

    def beats(self, value: float, limit: float) -> bool:
        """Whether ``value`` is strictly better than ``limit``."""
        return value < limit if self.better == "lower" else value > limit

    def pessimistic(self, low: float, high: float) -> float:
        """The worse end of a confidence interval ``[low, high]`` for this direction."""
        return max(low, high) if self.better == "lower" else min(low, high)


def declare(kind: str, metrics: Iterable[Metric]) -> Registry[Metric]:
    """A table of metrics: a registry of ``kind`` (used in its errors) keyed by metric name."""
    table: Registry[Metric] = Registry(kind)
    for m in metrics:
        table.register(m.name, m)
    return table
