"""Load metrics (one :class:`~axon_lab.metrics.Metric` each), and k6-style thresholds over them (``http_req_duration:p(95)<3000``).

Metrics (:data:`METRICS`; ``stage.<name>`` and ``cache.<name>`` are families):

==============================  =======  ===========================================================
name                            kind     value
==============================  =======  ===========================================================
``http_req_duration``           trend    response time, ms, from the *intended* start (open loop:
                                         includes waiting for the schedule/a connection, so
                                         coordinated omission cannot hide; closed loop: = service),
                                         of successful responses and timeouts (at the timeout);
                                         error responses are reported apart (k6's
                                         ``expected_response``): a fast 429 never passes a latency
                                         threshold
``http_req_service_duration``   trend    service time, ms, from the actual send
``http_req_waiting``            trend    time to first byte, ms, from the actual send (k6 name)
``http_req_connecting``         trend    TCP connect time, ms, of requests that opened a connection
``schedule_lag``                trend    actual send − intended start, ms
``http_req_failed``             rate     share of requests with status ≥ 400 or no response
``http_req_rejected``           rate     share of responses the target refused (4xx: 400 invalid
                                         body, 401/403 auth, 404, 413, 429 rate limited)
``checks``                      rate     share of passed checks
``http_reqs``                   counter  requests answered or timed out; ``rate`` = per second
``data_received``               counter  response bytes; ``rate`` = bytes per second
``dropped_requests``            counter  scheduled but never sent (open loop)
``late_requests``               counter  sent more than ``late_ms`` after their intended start
``achieved_rate_ratio``         gauge    open loop: requests sent within the schedule window ÷
                                         requests scheduled in it
``stage.<name>``                trend    a stage duration (``Server-Timing`` or the body), ms
``sse.<name>``                  trend    streaming: ``sse.ttft`` (first llm-chunk), ``sse.itl`` (mean
                                         inter-chunk gap), ``sse.<event type>``, ms; ``sse.chunks``
``cache.<name>``                rate     hit rate of a cache named in a cache-status header
==============================  =======  ===========================================================

Every run also checks ``http_req_rejected:rate<0.5``: a run whose responses are mostly refusals
fails with a one-line cause read from the responses (:meth:`RunMetrics.rejection_cause`).

Aggregations: trend ``avg min max med p(N) count``; rate ``rate``; counter ``count rate``;
gauge ``value``. Operators ``< <= > >= == !=``. A threshold on a metric without samples fails
(it never passes vacuously); an unknown metric or aggregation is a :class:`ConfigError` that
lists the valid ones.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from axon_lab.errors import ConfigError
from axon_lab.goals import OPS
from axon_lab.load.records import FAILED_OUTCOMES, LATENCY_OUTCOMES, TIMED_OUTCOMES
from axon_lab.load.servertiming import cache_outcome_kind
from axon_lab.metrics import Metric, declare
from axon_lab.registry import Registry
from axon_lab.stats import percentile

METRICS: Registry[Metric] = declare(
    "metric",
    [
        Metric(
            "http_req_duration",
            "Response time (from intended start)",
            "ms",
            kind="trend",
            column="response_ms",
        ),
        Metric(
            "http_req_service_duration",
            "Service time (from send)",
            "ms",
            kind="trend",
            column="service_ms",
        ),
        Metric("http_req_waiting", "Time to first byte", "ms", kind="trend", column="ttfb_ms"),
        Metric("http_req_connecting", "Connect time", "ms", kind="trend", column="connect_ms"),
        Metric("schedule_lag", "Schedule lag", "ms", kind="trend", column="lag_ms"),
        Metric("http_req_failed", "Failed requests", "ratio", kind="rate"),
        Metric("http_req_rejected", "Refused requests (4xx)", "ratio", kind="rate"),
        Metric("checks", "Checks passed", "ratio", kind="rate", better="higher"),
        Metric("http_reqs", "Requests", "req", kind="counter", better="higher"),
        Metric("data_received", "Data received", "B", kind="counter", better="higher"),
        Metric("dropped_requests", "Dropped requests", "req", kind="counter"),
        Metric("late_requests", "Late requests", "req", kind="counter"),
        Metric(
            "achieved_rate_ratio", "Achieved / target rate", "ratio", kind="gauge", better="higher"
        ),
        Metric("stage.<name>", "Server-Timing stage", "ms", kind="trend"),
        Metric("sse.<name>", "Stream event", "ms", kind="trend"),
        Metric("cache.<name>", "Cache hit rate", "ratio", kind="rate", better="higher"),
    ],
)

AGGREGATIONS: dict[str, tuple[str, ...]] = {
    "trend": ("avg", "min", "max", "med", "p(N)", "count"),
    "rate": ("rate",),
    "counter": ("count", "rate"),
    "gauge": ("value",),
}
_OPS = OPS  # the one set of comparison rules (axon_lab.goals.OPS)
_EXPR = re.compile(
    r"^\s*(?P<metric>[A-Za-z_][\w.\-]*)\s*:\s*(?P<agg>p\(\s*\d+(?:\.\d+)?\s*\)|[a-z]+)\s*"
    r"(?P<op><=|>=|==|!=|<|>)\s*(?P<value>[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(?P<unit>ms|s|%)?\s*$"
)


def get_metric(name: str) -> Metric:
    """The metric called ``name`` (``stage.x``/``cache.x`` resolve to their family)."""
    for family in ("stage", "cache", "sse"):
        if name.startswith(family + ".") and len(name) > len(family) + 1:
            fam = METRICS.get(f"{family}.<name>")
            return replace(fam, name=name, label=f"{fam.label} {name.split('.', 1)[1]}")
    return METRICS.get(name)


@dataclass(frozen=True)
class Threshold:
    """A parsed threshold: ``metric:agg op limit`` (``source``: user, scenario or builtin)."""

    expr: str
    metric: str
    agg: str
    op: str
    limit: float
    source: str = "user"

    @property
    def quantile(self) -> float | None:
        """The N of ``p(N)``, else None."""
        m = re.fullmatch(r"p\(\s*(\d+(?:\.\d+)?)\s*\)", self.agg)
        return float(m.group(1)) if m else None


def parse_threshold(expr: str, *, source: str = "user") -> Threshold:
    """Parse ``metric:agg op value`` (k6 syntax; a trailing ``s`` on a ms trend means seconds).

    Raises :class:`ConfigError` for bad syntax, unknown metrics (listing the valid ones) and
    aggregations that the metric's kind does not have.
    """
    m = _EXPR.match(expr)
    if not m:
        raise ConfigError(
            f"cannot parse threshold {expr!r}; expected METRIC:AGG OP VALUE, "
            "e.g. http_req_duration:p(95)<3000 or http_req_failed:rate<0.05"
        )
    metric = get_metric(m.group("metric"))
    agg = re.sub(r"\s+", "", m.group("agg"))
    valid = AGGREGATIONS[metric.kind]
    ok = agg in valid or (metric.kind == "trend" and re.fullmatch(r"p\(\d+(\.\d+)?\)", agg))
    if not ok:
        raise ConfigError(
            f"{metric.name} is a {metric.kind}: aggregation {agg!r} is not valid; "
            f"valid: {', '.join(valid)}"
        )
    value = float(m.group("value"))
    unit = m.group("unit")
    if unit == "s" and metric.unit == "ms" and agg != "count":
        value *= 1000.0
    elif unit == "%":
        value /= 100.0
    t = Threshold(expr.strip(), metric.name, agg, m.group("op"), value, source)
    q = t.quantile
    if q is not None and not 0 < q <= 100:
        raise ConfigError(f"percentile must be in (0, 100] in {expr!r}")
    return t


@dataclass(frozen=True)
class ThresholdResult:
    """The verdict of one threshold: its observed value, ok, and why it failed."""

    threshold: Threshold
    value: float | None
    ok: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the summary."""
        t = self.threshold
        return {
            "expr": t.expr,
            "metric": t.metric,
            "agg": t.agg,
            "op": t.op,
            "limit": t.limit,
            "source": t.source,
            "value": self.value,
            "ok": self.ok,
            "reason": self.reason,
        }


class RunMetrics:
    """Metric values of a finished (or interrupted) run, computed from its records frame.

    Parameters
    ----------
    frame
        The records (see :mod:`axon_lab.load.records`).
    elapsed_s
        Wall time of the run (start to last response), the denominator of counter rates.
    window_s
        Open loop: the scheduled window (for ``achieved_rate_ratio``).
    scheduled_in_window
        Open loop: requests the schedule placed inside the window.
    rate_window_s
        When the run ended because its shape ran out, the load window: ``http_reqs`` and
        ``data_received`` rates then count what completed within it, per second of it
        (autocannon's convention: the drain of in-flight requests afterwards does not dilute the
        rate). ``None``: per second of ``elapsed_s`` (``max_requests`` runs, stopped runs).
    """

    def __init__(
        self,
        frame,
        *,
        elapsed_s: float,
        window_s: float | None = None,
        scheduled_in_window: int | None = None,
        rate_window_s: float | None = None,
    ) -> None:
        self.frame = frame
        self.elapsed_s = elapsed_s
        self.window_s = window_s
        self.scheduled_in_window = scheduled_in_window
        self.rate_window_s = rate_window_s
        outcome = frame["outcome"].astype(str).to_numpy() if len(frame) else np.array([], dtype=str)
        self._outcome = outcome
        self._timed = np.isin(outcome, TIMED_OUTCOMES)
        self._latency = np.isin(outcome, LATENCY_OUTCOMES)
        self._failed = np.isin(outcome, FAILED_OUTCOMES)
        self._attempted = ~np.isin(outcome, ("dropped", "interrupted"))

    def names(self) -> list[str]:
        """Every metric name with its seen ``stage.*``/``cache.*`` members."""
        fixed = [n for n in METRICS.names() if "<" not in n]
        seen = [c for c in self.frame.columns if c.startswith(("stage.", "cache.", "sse."))]
        return sorted(fixed + seen)

    def trend(self, name: str) -> np.ndarray:
        """The samples of a trend metric (ms)."""
        col = get_metric(name).column or name
        if col not in self.frame.columns:
            return np.array([], dtype=float)
        values = self.frame[col].to_numpy(dtype=float)
        if col in ("response_ms", "service_ms"):
            values = values[self._latency]
        return values[np.isfinite(values)]

    def rate(self, name: str) -> tuple[int, int]:
        """``(numerator, denominator)`` of a rate metric."""
        f = self.frame
        if name == "http_req_failed":
            return int(self._failed.sum()), int(self._attempted.sum())
        if name == "http_req_rejected":
            status = f["status"].to_numpy() if len(f) else np.array([], dtype=int)
            answered = status > 0
            return int(((status >= 400) & (status < 500)).sum()), int(answered.sum())
        if name == "checks":
            passed = int(f["checks_passed"].clip(lower=0).sum()) if len(f) else 0
            failed = int(f["checks_failed"].clip(lower=0).sum()) if len(f) else 0
            return passed, passed + failed
        if name.startswith("cache."):
            if name not in f.columns:
                return 0, 0
            kinds = [cache_outcome_kind(v) for v in f[name].dropna().astype(str)]
            hits = sum(k == "hit" for k in kinds)
            return hits, hits + sum(k == "miss" for k in kinds)
        raise ConfigError(f"{name} is not a rate metric")

    def counter(self, name: str) -> float:
        """The total of a counter metric."""
        f = self.frame
        if name == "http_reqs":
            return float(self._timed.sum())
        if name == "data_received":
            return float(f["bytes"].clip(lower=0).sum()) if len(f) else 0.0
        if name == "dropped_requests":
            return float((self._outcome == "dropped").sum())
        if name == "late_requests":
            return float(f["late"].sum()) if len(f) else 0.0
        raise ConfigError(f"{name} is not a counter metric")

    def per_second(self, name: str) -> tuple[float | None, str | None]:
        """Rate of a counter per second (see ``rate_window_s`` for the basis)."""
        w = self.rate_window_s
        if w is not None and w > 0 and name in ("http_reqs", "data_received") and len(self.frame):
            end = self.frame["end_ns"].to_numpy()
            inside = self._timed & (end >= 0) & (end <= w * 1e9)
            if name == "http_reqs":
                return float(inside.sum()) / w, None
            return float(self.frame["bytes"].to_numpy()[inside].clip(min=0).sum()) / w, None
        if self.elapsed_s <= 0:
            return None, "no elapsed time"
        return self.counter(name) / self.elapsed_s, None

    @property
    def rate_basis(self) -> str:
        """``window`` or ``elapsed``: what the per-second rates are divided by."""
        return "window" if self.rate_window_s else "elapsed"

    def gauge(self, name: str) -> float | None:
        """The value of a gauge metric (None when it does not apply)."""
        if name == "achieved_rate_ratio":
            if not self.scheduled_in_window:
                return None
            sent = self.frame["sent_ns"].to_numpy()
            window_ns = (self.window_s or 0.0) * 1e9
            intended = self.frame["intended_ns"].to_numpy()
            in_window = (sent >= 0) & (sent <= window_ns) & (intended <= window_ns)
            return float(in_window.sum()) / self.scheduled_in_window
        raise ConfigError(f"{name} is not a gauge metric")

    def rate_limit(self) -> dict[str, Any] | None:
        """What the target's rate limiter said: policy, limit, 429 count, the requests answered
        before the first 429, and when the window resets (``None`` without rate-limit headers
        or 429s).
        """
        f = self.frame
        if not len(f):
            return None
        status = f["status"].to_numpy()
        limited = status == 429
        has_headers = any(c.startswith("ratelimit.") for c in f.columns)
        if not limited.any() and not has_headers:
            return None
        order = np.argsort(f["sent_ns"].to_numpy(), kind="stable")
        st_sorted = status[order]
        first = int(np.argmax(st_sorted == 429)) if limited.any() else None
        policy = None
        if "ratelimit.policy" in f.columns:
            vals = f["ratelimit.policy"].dropna()
            policy = str(vals.iloc[-1]) if len(vals) else None
        reset = None
        if limited.any():
            for col in ("ratelimit.retry_after", "ratelimit.reset"):
                if col in f.columns:
                    v = f[col].to_numpy(dtype=float)[order][first]
                    if np.isfinite(v):
                        reset = float(v)
                        break
        limit = None
        if "ratelimit.limit" in f.columns:
            lim = f["ratelimit.limit"].dropna()
            limit = int(lim.iloc[-1]) if len(lim) else None
        remaining = None
        if "ratelimit.remaining" in f.columns:
            rem = f["ratelimit.remaining"].to_numpy(dtype=float)[order]
            rem = rem[np.isfinite(rem)]
            remaining = int(rem[-1]) if rem.size else None
        return {
            "policy": policy,
            "limit": limit,
            "remaining": remaining,
            "limited": int(limited.sum()),
            "answered_before_first_429": first,
            "reset_s": reset,
        }

    def rejection_cause(self) -> str | None:
        """One line naming why the target refused the run's requests (``None`` if it did not).

        ``rate limited: 429 after 100 requests, RateLimit-Policy 100;w=900, resets in 900 s``;
        ``400 VALIDATION_ERROR on 100% of requests: the target rejected the request body``.
        """
        refused, answered = self.rate("http_req_rejected")
        if not refused:
            return None
        f = self.frame
        status = f["status"].to_numpy()
        rejected = (status >= 400) & (status < 500)
        codes = f.loc[rejected, "error"].dropna().astype(str)
        top_status = int(_mode(status[rejected]))
        if top_status == 429:
            rl = self.rate_limit() or {}
            parts = [f"rate limited: 429 after {rl.get('answered_before_first_429')} requests"]
            if rl.get("policy"):
                parts.append(f"RateLimit-Policy {rl['policy']}")
            if rl.get("reset_s") is not None:
                parts.append(f"resets in {rl['reset_s']:g} s")
            return ", ".join(parts) + (
                f" ({int((status == 429).sum()):,} of {answered:,} responses were 429: these "
                "numbers measure the limiter, not the service)"
            )
        share = float((status == top_status).sum()) / answered if answered else 0.0
        top_code = codes[codes.str.startswith(str(top_status))]
        label = top_code.mode().iloc[0] if len(top_code) else str(top_status)
        why = {
            400: "the target rejected the request body",
            401: "the target wants credentials (see the profile's auth_env)",
            403: "the target refused the credentials",
            404: "the target has no such path",
            405: "the target does not accept this method here",
            413: "the request body is too large for the target",
            415: "the target does not accept this content type",
            422: "the target rejected the request body",
        }.get(top_status, "the target refused the requests")
        return f"{label} on {share:.0%} of requests: {why}"

    def value(self, metric: str, agg: str) -> tuple[float | None, str | None]:
        """``(value, reason_if_none)`` of ``metric`` aggregated by ``agg``."""
        m = get_metric(metric)
        if m.kind == "trend":
            x = self.trend(metric)
            if agg == "count":
                return float(x.size), None
            if x.size == 0:
                seen = [c for c in self.frame.columns if c.startswith("stage.")]
                hint = (
                    f" (stages seen: {', '.join(seen) or 'none'})"
                    if metric.startswith("stage.")
                    else ""
                )
                return None, f"no samples{hint}"
            if agg == "avg":
                return float(x.mean()), None
            if agg == "min":
                return float(x.min()), None
            if agg == "max":
                return float(x.max()), None
            if agg == "med":
                return percentile(x, 50), None
            q = Threshold("", metric, agg, "<", 0).quantile
            return percentile(x, q), None  # type: ignore[arg-type]
        if m.kind == "rate":
            num, den = self.rate(metric)
            if den == 0:
                return None, "no samples"
            return num / den, None
        if m.kind == "counter":
            if agg == "count":
                return self.counter(metric), None
            return self.per_second(metric)
        v = self.gauge(metric)
        return v, None if v is not None else "not applicable (no arrival schedule)"


def _mode(values: np.ndarray) -> float:
    """The most common value (the smallest among ties)."""
    vals, counts = np.unique(values, return_counts=True)
    return float(vals[int(np.argmax(counts))])


def _judges_service(t: Threshold) -> bool:
    """Whether ``t`` judges the service's latency or throughput (meaningless on refusals)."""
    if get_metric(t.metric).kind == "trend":
        return t.agg != "count"
    return t.metric in ("http_reqs", "data_received") and t.agg == "rate"


def evaluate(thresholds: Iterable[Threshold], metrics: RunMetrics) -> list[ThresholdResult]:
    """Evaluate ``thresholds``; a missing value fails with its reason.

    When the target refused most requests (``http_req_rejected`` over its limit), latency
    thresholds are not judged: they fail with the refusal's cause, since the few responses
    that got through say nothing about the service under the intended load.
    """
    thresholds = list(thresholds)
    out = []
    refused_cause = None
    for t in thresholds:
        if t.metric == "http_req_rejected":
            value, _ = metrics.value(t.metric, t.agg)
            if value is not None and not _OPS[t.op](value, t.limit):
                refused_cause = metrics.rejection_cause()
    for t in thresholds:
        value, why = metrics.value(t.metric, t.agg)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            out.append(ThresholdResult(t, None, False, why or "no value"))
            continue
        ok = bool(_OPS[t.op](value, t.limit))
        reason = None if ok else f"{t.metric}:{t.agg} = {value:.6g}, wanted {t.op} {t.limit:g}"
        if not ok and t.metric == "http_req_rejected":
            reason = refused_cause or reason
        elif refused_cause and _judges_service(t):
            ok, reason = False, f"not judged: {refused_cause}"
        out.append(ThresholdResult(t, value, ok, reason))
    return out


#: Always checked: a run without a single answered request fails.
BUILTIN_ANY = "http_reqs:count>0"
#: Always checked: a run whose responses are mostly refusals (4xx, 429) fails, naming the cause.
BUILTIN_REJECTED = "http_req_rejected:rate<0.5"
#: Always checked in open loop: the achieved rate may be at most 10% below the target rate.
BUILTIN_RATE = "achieved_rate_ratio:value>=0.9"


def builtin_thresholds(open_loop: bool) -> list[Threshold]:
    """The thresholds every run gets: zero samples fail, mostly refused requests fail (the cause
    named), and in open loop a rate shortfall over 10% fails.
    """
    out = [
        parse_threshold(BUILTIN_ANY, source="builtin"),
        parse_threshold(BUILTIN_REJECTED, source="builtin"),
    ]
    if open_loop:
        out.append(parse_threshold(BUILTIN_RATE, source="builtin"))
    return out
