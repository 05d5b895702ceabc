"""The guide's performance targets as data (:class:`Goal`), and the one verdict rule every report uses.

A :class:`Goal` is one row of the guide's targets (a value to beat and a critical threshold);
in axon_lab "target" names the Axon deployment under test, never a goal.

Source: ``performance-optimization-guide.md`` — "MVP Performance Targets", "Latency Breakdown
(Target)", the load-test scenarios' "Expected" blocks and autocannon's "Target Interpretation".

Verdicts are judged on the pessimistic end of a confidence interval when one is given:
for ``lower`` metrics the CI upper bound, for ``higher`` metrics the CI lower bound.

* ``pass`` (✅) — that bound meets the target;
* ``warn`` (⚠️) — it misses the target but meets the critical threshold;
* ``fail`` (❌) — it misses the critical threshold;
* ``unknown`` (❔) — no value (no samples).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from axon_lab.metrics import Better, Metric
from axon_lab.registry import Registry

Status = Literal["pass", "warn", "fail", "unknown"]

SYMBOLS: dict[str, str] = {"pass": "✅", "warn": "⚠️", "fail": "❌", "unknown": "❔", "info": "ℹ️"}


@dataclass(frozen=True)
class Goal:
    """One row of the guide's targets: the ``metric`` must be better than ``target`` and never
    worse than ``critical``.

    Attributes
    ----------
    metric
        What is measured (name, label, unit and the better direction).
    target, critical
        The goal and the limit, in the metric's unit.
    stat
        The statistic judged (``p95``, ``rss``, ``rate``...).
    note
        What the guide means when it is not obvious.
    """

    metric: Metric
    target: float
    critical: float
    stat: str = "p95"
    note: str = ""

    @property
    def name(self) -> str:
        return self.metric.name

    @property
    def label(self) -> str:
        return self.metric.label

    @property
    def unit(self) -> str:
        return self.metric.unit

    def judge(self, value: float | None, ci: tuple[float, float] | None = None) -> Status:
        """Verdict for ``value`` (with optional 95% CI), judged on the pessimistic bound."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "unknown"
        bound = value
        if ci is not None and all(c is not None and math.isfinite(c) for c in ci):
            bound = self.metric.pessimistic(*ci)
        if self.metric.beats(bound, self.target):
            return "pass"
        if self.metric.better == "lower":
            return "warn" if bound < self.critical else "fail"
        return "warn" if bound >= self.critical else "fail"


def goal(
    name: str,
    label: str,
    target: float,
    critical: float,
    unit: str,
    *,
    better: Better = "lower",
    stat: str = "p95",
    note: str = "",
) -> Goal:
    """A :class:`Goal` on a new metric (the guide's table rows, a scenario's expectation)."""
    return Goal(Metric(name, label, unit, better), target, critical, stat, note)


GOALS: Registry[Goal] = Registry("goal")


def _t(*args: Any, **kw: Any) -> Goal:
    g = goal(*args, **kw)
    GOALS.register(g.name, g)
    return g


# --- MVP Performance Targets -------------------------------------------------------------
_t("prompt_analysis", "Prompt Analysis", 200, 500, "ms")
_t("context_retrieval", "Context Retrieval", 500, 1000, "ms")
_t("full_orchestration", "Full Orchestration", 3000, 5000, "ms")
_t("health_check", "Health Check", 50, 100, "ms")
_t(
    "memory_usage",
    "Memory Usage",
    2048,
    4096,
    "MB",
    stat="rss",
    note="target is idle RSS (< 2 GB); critical is under load (< 4 GB)",
)
_t(
    "cpu_usage",
    "CPU Usage",
    50,
    80,
    "%",
    stat="mean",
    note="target is normal load (< 50%); critical is peak (< 80%)",
)
_t("throughput", "Throughput", 10, 5, "req/s", better="higher", stat="rps")
_t("database_queries", "Database Queries", 100, 500, "ms")
_t("cache_hit_rate", "Cache Hit Rate", 0.80, 0.60, "ratio", better="higher", stat="rate")

# --- autocannon "Target Interpretation" (p99 acceptable < 5 s, critical > 10 s) -------------
_t("full_orchestration_p99", "Full Orchestration p99", 5000, 10000, "ms", stat="p99")

#: The guide's latency breakdown (ms per stage, of a 3000 ms request).
STAGE_BUDGET_MS: dict[str, float] = {
    "collection": 10,
    "analysis": 200,
    "retrieval": 500,
    "vector_search": 200,
    "document_fetch": 150,
    "rerank": 150,
    "synthesis": 100,
    "injection": 50,
    "llm": 2000,
    "postprocessing": 140,
    "total": 3000,
}
#: Top-level stages in pipeline order (retrieval's parts are nested under it).
STAGES: tuple[str, ...] = (
    "collection",
    "analysis",
    "retrieval",
    "synthesis",
    "injection",
    "llm",
    "postprocessing",
)
RETRIEVAL_PARTS: tuple[str, ...] = ("embed", "vector_search", "document_fetch", "rerank")


#: Comparison operators of every limit rule (k6 threshold syntax), defined once: thresholds,
#: scenario expectations and the common-issues table all judge with these.
OPS: dict[str, Any] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


@dataclass(frozen=True)
class Rule:
    """One limit of a scenario's expectation: ``value op limit`` must hold.

    The same rule is a k6 threshold of the run (:attr:`expr`) and a row of the common-issues
    table (detected when :meth:`ok` is false), so the two cannot disagree at a boundary.
    """

    key: str
    metric: str
    op: str
    limit: float
    unit: str

    @property
    def expr(self) -> str:
        """The k6 threshold expression (``http_reqs:rate>10``)."""
        return f"{self.metric}{self.op}{self.limit:g}"

    def ok(self, value: float | None) -> bool | None:
        """Whether ``value`` meets the rule (``None``: no value, not judged)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return bool(OPS[self.op](value, self.limit))


@dataclass(frozen=True)
class ScenarioExpectation:
    """A load scenario's "Expected" block from the guide."""

    p95_ms: float | None
    min_rps: float | None
    max_error_rate: float

    def rules(self) -> dict[str, Rule]:
        """The expectation as limit rules, keyed ``p95_ms``, ``rps``, ``error_rate``.

        p95 must stay under its limit, throughput must beat its minimum (the guide's
        "> N req/s"), the error rate must stay under its budget (``<= 0`` for a zero budget).
        """
        out: dict[str, Rule] = {}
        if self.p95_ms is not None:
            out["p95_ms"] = Rule("p95_ms", "http_req_duration:p(95)", "<", self.p95_ms, "ms")
        if self.min_rps is not None:
            out["rps"] = Rule("rps", "http_reqs:rate", ">", self.min_rps, "req/s")
        op = "<=" if self.max_error_rate == 0 else "<"
        out["error_rate"] = Rule("error_rate", "http_req_failed:rate", op, self.max_error_rate, "")
        return out


#: "Load Testing → Test Scenarios" expectations.
SCENARIO_EXPECTATIONS: dict[str, ScenarioExpectation] = {
    "health": ScenarioExpectation(p95_ms=50, min_rps=100, max_error_rate=0.0),
    "simple": ScenarioExpectation(p95_ms=2000, min_rps=10, max_error_rate=0.01),
    "complex": ScenarioExpectation(p95_ms=5000, min_rps=5, max_error_rate=0.02),
    "sustained": ScenarioExpectation(p95_ms=3000, min_rps=None, max_error_rate=0.01),
    "spike": ScenarioExpectation(p95_ms=3000, min_rps=None, max_error_rate=0.05),
}

#: "Common Issues" table: symptom -> (cause, solution).
COMMON_ISSUES: dict[str, tuple[str, str]] = {
    "High p95 latency": ("Database slow queries", "Add indexes, optimize queries"),
    "High p99 latency": ("Occasional timeouts", "Increase timeouts, add retries"),
    "Low throughput": ("CPU bottleneck", "Optimize hot functions"),
    "Memory growth": ("Memory leak", "Profile heap, fix leaks"),
    "High error rate": ("Service unavailable", "Add circuit breakers, retries"),
}


def get(name: str) -> Goal:
    """The target called ``name`` (error lists the valid names)."""
    return GOALS.get(name)


def stage_status(stage: str, p95_ms: float | None) -> Status:
    """Verdict of a stage's p95 against its budget (warn up to 2x the budget)."""
    budget = STAGE_BUDGET_MS.get(stage)
    if budget is None or p95_ms is None or (isinstance(p95_ms, float) and math.isnan(p95_ms)):
        return "unknown"
    if p95_ms < budget:
        return "pass"
    return "warn" if p95_ms < 2 * budget else "fail"
