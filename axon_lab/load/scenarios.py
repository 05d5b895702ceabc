"""The guide's load-test scenarios as presets: health, simple, complex, sustained, spike.

Source: ``performance-optimization-guide.md`` → "Load Testing → Test Scenarios" (autocannon
commands and their "Expected" blocks, which live in ``axon_lab.goals.SCENARIO_EXPECTATIONS``)
and the k6 ``spike-test.js`` stages. The spike test's script shows only its stages; its request,
checks and one-second think time are taken from the guide's ``load-test.js`` (the only k6 script
the guide gives), whose thresholds it also shares.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace

from axon_lab.errors import ConfigError
from axon_lab.goals import SCENARIO_EXPECTATIONS, ScenarioExpectation
from axon_lab.load.profiles import TargetProfile
from axon_lab.load.shapes import Shape, constant_vus, ramping_vus
from axon_lab.registry import Registry

PROCESS_PATH = "/api/v1/prompts/process"


@dataclass(frozen=True)
class Scenario:
    """A preset: request, shape, checks and the guide's expectations as thresholds.

    Parameters
    ----------
    name
        Registry name (``--scenario``).
    description
        One line, with the guide command it mirrors.
    method, path, body
        The request (``body`` is JSON-serialised; ``None`` for GET).
    shape
        Load shape (closed loop in every guide scenario).
    checks
        Check expressions (see :func:`axon_lab.load.checks.parse_check`).
    expectation
        The guide's "Expected" block (:data:`axon_lab.goals.SCENARIO_EXPECTATIONS`).
    extra_thresholds
        Thresholds beyond those derived from the expectation.
    """

    name: str
    description: str
    method: str
    path: str
    body: dict | None
    shape: Shape
    checks: tuple[str, ...] = ()
    expectation: ScenarioExpectation | None = None
    extra_thresholds: tuple[str, ...] = field(default_factory=tuple)

    @property
    def body_bytes(self) -> bytes | None:
        """The body as the guide writes it (compact JSON)."""
        return None if self.body is None else json.dumps(self.body, separators=(",", ":")).encode()

    def thresholds(self) -> list[str]:
        """Threshold expressions from the guide's expectations (k6 syntax)."""
        out: list[str] = []
        e = self.expectation
        if e is not None:
            out.extend(rule.expr for rule in e.rules().values())
        out.extend(self.extra_thresholds)
        return out

    def scaled(self, factor: float) -> Scenario:
        """The scenario with its durations multiplied by ``factor`` (``--scale``; CI uses ~0.05)."""
        if not factor > 0:
            raise ConfigError(f"scale must be > 0, got {factor}")
        return replace(self, shape=self.shape.scaled(factor))


def for_profile(
    sc: Scenario, profile: TargetProfile, workspace: str | None = None, *, stream: bool = False
) -> Scenario:
    """The scenario as the target profile's deployment accepts it: its prompt in the profile's
    body (``workspaceId`` checked, e.g. a UUID for the real API; ``source`` from the profile's
    enum), its health path, and the body check on the profile's good-response field. With
    ``stream``, the body asks for Server-Sent Events and JSON body checks are dropped.
    """
    if sc.body is not None:
        body = profile.body(str(sc.body.get("prompt", "")), workspace)
        path = profile.prompt_path if sc.path == PROCESS_PATH else sc.path
    else:
        body, path = None, (profile.health_path if sc.path == "/health" else sc.path)
    checks = tuple(
        f"json:{profile.ok_json}" if c == "json:result" and profile.ok_json else c
        for c in sc.checks
    )
    if stream and body is not None:
        body = {**body, "stream": True}
        checks = tuple(c for c in checks if not c.startswith("json:"))
    return replace(sc, body=body, path=path or sc.path, checks=checks)


SCENARIOS: Registry[Scenario] = Registry("scenario")

_POST_CHECKS = ("status==200", "json:result")

for _sc in (
    Scenario(
        "health",
        "Health check baseline: autocannon -c 50 -d 60 /health",
        "GET",
        "/health",
        None,
        constant_vus(50, 60),
        checks=("status==200",),
        expectation=SCENARIO_EXPECTATIONS["health"],
    ),
    Scenario(
        "simple",
        "Simple prompt, light load: autocannon -c 10 -d 60 POST process",
        "POST",
        PROCESS_PATH,
        {"prompt": "Hello", "workspaceId": "test", "source": "api"},
        constant_vus(10, 60),
        checks=_POST_CHECKS,
        expectation=SCENARIO_EXPECTATIONS["simple"],
    ),
    Scenario(
        "complex",
        "Complex prompt, heavy load: autocannon -c 5 -d 120 POST process",
        "POST",
        PROCESS_PATH,
        {
            "prompt": "Analyze this TypeScript codebase and suggest improvements to the architecture",
            "workspaceId": "test",
            "source": "api",
        },
        constant_vus(5, 120),
        checks=_POST_CHECKS,
        expectation=SCENARIO_EXPECTATIONS["complex"],
    ),
    Scenario(
        "sustained",
        "Sustained load (endurance): autocannon -c 10 -d 1800 POST process",
        "POST",
        PROCESS_PATH,
        {"prompt": "test", "workspaceId": "test", "source": "api"},
        constant_vus(10, 1800),
        checks=_POST_CHECKS,
        expectation=SCENARIO_EXPECTATIONS["sustained"],
    ),
    Scenario(
        "spike",
        "Spike 5 → 50 → 5 users: k6 spike-test.js stages, load-test.js requests",
        "POST",
        PROCESS_PATH,
        {"prompt": "What is TypeScript?", "workspaceId": "test", "source": "api"},
        ramping_vus([(30, 5), (10, 50), (60, 50), (30, 5)], start=1, think_time_s=1.0),
        checks=(*_POST_CHECKS, "duration<3000"),
        expectation=SCENARIO_EXPECTATIONS["spike"],
    ),
):
    SCENARIOS.register(_sc.name, _sc)


def get_scenario(name: str, *, scale: float = 1.0) -> Scenario:
    """The preset called ``name`` (error lists the valid ones), durations scaled by ``scale``."""
    sc = SCENARIOS.get(name)
    return sc.scaled(scale) if scale != 1.0 else sc
