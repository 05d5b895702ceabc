"""One ``measure()`` span API (perf_counter_ns) feeding one sink; Server-Timing; Prometheus; resources.

Every timed thing in the lab — pipeline stages, backend calls — goes through :func:`measure`.
A span lands in the current request's :class:`Trace` (a context variable, so concurrent
asyncio requests never mix) and in the process-wide :class:`Sink`, which keeps bounded HDR
histograms per span name (memory does not grow with the number of requests).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

# Histograms hold microseconds from 1 us to 1 hour at 3 significant digits (~ 200 KiB each).
_HDR_LOW_US, _HDR_HIGH_US, _HDR_DIGITS = 1, 3_600_000_000, 3


@dataclass
class Span:
    """One timed operation: name, parent, start/end (ns, perf_counter), outcome, error."""

    name: str
    start_ns: int
    end_ns: int = 0
    parent: str | None = None
    outcome: str = "ok"
    error: str | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def duration_ms(self) -> float:
        return (self.end_ns - self.start_ns) / 1e6


@dataclass
class Trace:
    """The spans of one request, in start order."""

    t0_ns: int = field(default_factory=time.perf_counter_ns)
    spans: list[Span] = field(default_factory=list)
    _stack: list[str] = field(default_factory=list)

    def durations_ms(self) -> dict[str, float]:
        """Duration per span name (a repeated name sums)."""
        out: dict[str, float] = {}
        for s in self.spans:
            out[s.name] = out.get(s.name, 0.0) + s.duration_ms
        return out

    def timeline(self) -> list[dict[str, Any]]:
        """Spans relative to the trace start (ms), for async timeline plots."""
        return [
            {
                "name": s.name,
                "parent": s.parent,
                "start_ms": (s.start_ns - self.t0_ns) / 1e6,
                "end_ms": (s.end_ns - self.t0_ns) / 1e6,
                "duration_ms": s.duration_ms,
                "outcome": s.outcome,
            }
            for s in self.spans
        ]


_current: contextvars.ContextVar[Trace | None] = contextvars.ContextVar("axon_trace", default=None)
_parent: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "axon_span_parent", default=None
)


class Sink:
    """Process-wide, bounded aggregation of spans: one HDR histogram + counters per name."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._hist: dict[str, HdrHistogram] = {}
        self._errors: dict[str, int] = {}
        # Exact sums for the mean: HdrHistogram.get_mean_value walks every bucket in Python
        # (~80 ms per histogram of this range), which made /metrics take seconds.
        self._sum_us: dict[str, int] = {}
        self._listeners: list[Any] = []

    def add_listener(self, fn: Any) -> None:
        """Call ``fn(span)`` for every finished span (e.g. Prometheus observation)."""
        self._listeners.append(fn)

    def record(self, span: Span) -> None:
        us = max(_HDR_LOW_US, min(_HDR_HIGH_US, (span.end_ns - span.start_ns) // 1000))
        with self._lock:
            h = self._hist.get(span.name)
            if h is None:
                h = self._hist[span.name] = HdrHistogram(_HDR_LOW_US, _HDR_HIGH_US, _HDR_DIGITS)
            h.record_value(us)
            self._sum_us[span.name] = self._sum_us.get(span.name, 0) + us
            if span.outcome != "ok":
                self._errors[span.name] = self._errors.get(span.name, 0) + 1
        for fn in self._listeners:
            fn(span)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per span name: count, errors, mean (exact), p50, p90, p95, p99, max (ms; HDR, 3 digits)."""
        out = {}
        with self._lock:
            for name, h in sorted(self._hist.items()):
                # One pass over the buckets for all percentiles (one call each is ~4x slower).
                pct = h.get_percentile_to_value_dict([50, 90, 95, 99])
                count = h.get_total_count()
                out[name] = {
                    "count": count,
                    "errors": self._errors.get(name, 0),
                    "mean_ms": self._sum_us.get(name, 0) / count / 1000 if count else 0.0,
                    "p50_ms": pct[50] / 1000,
                    "p90_ms": pct[90] / 1000,
                    "p95_ms": pct[95] / 1000,
                    "p99_ms": pct[99] / 1000,
                    "max_ms": h.get_max_value() / 1000,
                }
        return out

    def reset(self) -> None:
        with self._lock:
            self._hist.clear()
            self._errors.clear()
            self._sum_us.clear()


SINK = Sink()


@contextlib.contextmanager
def trace() -> Iterator[Trace]:
    """Start a new trace for one request; spans measured inside land in it."""
    t = Trace()
    token = _current.set(t)
    ptoken = _parent.set(None)
    try:
        yield t
    finally:
        _parent.reset(ptoken)
        _current.reset(token)


@contextlib.contextmanager
def measure(name: str, *, sink: Sink | None = None, **attrs: Any) -> Iterator[Span]:
    """Time the block as span ``name`` (perf_counter_ns), recording outcome and exception.

    Works in sync and async code (``async with`` is not needed: the block may ``await``).
    Nested ``measure`` calls record their parent, so Server-Timing and timelines can nest.
    """
    span = Span(name=name, start_ns=time.perf_counter_ns(), parent=_parent.get(), attrs=attrs)
    token = _parent.set(name)
    try:
        yield span
    except BaseException as exc:
        span.outcome = "error"
        span.error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        span.end_ns = time.perf_counter_ns()
        _parent.reset(token)
        t = _current.get()
        if t is not None:
            t.spans.append(span)
        (sink or SINK).record(span)


def server_timing(t: Trace, *, total_ms: float | None = None) -> str:
    """``Server-Timing`` header value: ``name;dur=1.23`` per span (W3C Server Timing)."""
    parts = [f"{name};dur={ms:.3f}" for name, ms in t.durations_ms().items()]
    if total_ms is not None:
        parts.append(f"total;dur={total_ms:.3f}")
    return ", ".join(parts)
