"""Target profiles: how to talk to a given Axon deployment and how to read its answers, as data.

A :class:`TargetProfile` declares a deployment's contract (convention: speak the target's
language through a declared profile, so a new deployment is a data file, not a code change):

* the prompt request: path, body template (``workspaceId``, ``source``, extra fields), auth
  header whose value comes from an environment variable (never printed or recorded);
* where per-stage timings come from: a ``Server-Timing`` header and/or a JSON object in the
  body (``data.metadata.latency``), with the names mapped to the lab's stage names
  (``postProcessing`` → ``postprocessing``), so they land in the same ``stage.*`` columns;
* cache-status headers, what a good response is (a JSON path present), where an error body
  keeps its code (``error.code``), the rate-limit headers, health and readiness paths.

Built in (:data:`PROFILES`):

``axon-lab``
    the embedded server of this package: ``Server-Timing``, ``X-Axon-Cache``,
    ``/api/v1/options``, any ``workspaceId``.
``axon-api``
    the real Axon API (TypeScript, Express): body validated by zod (``workspaceId`` a UUID,
    ``source`` in ``cli|api|editor|chat``), stage latencies in ``data.metadata.latency`` (integer
    ms, no ``Server-Timing``), errors ``{"success": false, "error": {"code", "message"}}``,
    express-rate-limit draft-6 headers (``RateLimit-Policy: 100;w=900``), ``/health`` with
    ``{"success": true, "data": {"status": "healthy"}}``.

A user profile is a TOML or JSON file with the same fields (:func:`load_profile`), optionally
starting from a built-in one with ``base = "axon-api"``. :func:`resolve_profile` takes a name,
a file or ``auto``: auto-detection asks ``GET /health`` once (on a rate-limited deployment that
request counts against the limit); a target that is not recognisably an Axon gets ``axon-lab``,
whose reading (``Server-Timing``, cache-status headers) suits any HTTP server.
"""

from __future__ import annotations

import json
import math
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from axon_lab.errors import ConfigError, InputFileError
from axon_lab.load.servertiming import CACHE_HEADERS, parse_cache_headers, parse_server_timing
from axon_lab.redact import redact_text
from axon_lab.registry import Registry

#: express-rate-limit's draft-6 headers (``standardHeaders: true``) and Retry-After, recorded per
#: response as numeric ``ratelimit.*`` columns (the policy as text).
RATE_LIMIT_HEADERS: dict[str, str] = {
    "ratelimit-limit": "ratelimit.limit",
    "ratelimit-remaining": "ratelimit.remaining",
    "ratelimit-reset": "ratelimit.reset",
    "retry-after": "ratelimit.retry_after",
}
POLICY_HEADER = "ratelimit-policy"
_POLICY = re.compile(r"^\s*(\d+)\s*;\s*w\s*=\s*(\d+)")


@dataclass(frozen=True)
class TargetProfile:
    """One deployment's HTTP contract, as the load engine and the notebooks use it.

    Attributes
    ----------
    name, description
        Registry name and one line.
    prompt_path
        Path of the prompt-processing endpoint.
    workspace
        Default ``workspaceId`` (``""``: the user must give one).
    workspace_uuid
        Whether ``workspaceId`` must be a UUID (checked before any request is sent).
    source
        The body's ``source`` (a value the target accepts).
    body_extra
        Extra fields merged into every prompt body (e.g. ``{"stream": false}``).
    stage_header
        Header holding ``Server-Timing`` stage durations (``""``: none).
    stage_json
        Dotted JSON path of an object ``{stage: ms}`` in a successful body (``""``: none).
    stage_names
        Target stage name → lab stage name (unmapped names are kept as they are).
    cache_headers
        Headers parsed as cache outcomes (``cache.*`` columns).
    ok_json
        Dotted JSON path present in a good response (the scenarios' body check).
    error_code_json
        Dotted JSON path of the error code in an error body (``error.code``).
    health_path, ready_path
        Health and readiness endpoints (``""``: none).
    options_path
        Endpoint that switches pipeline options (axon_lab servers only; ``""``: none).
    process_metrics_path
        Cheap endpoint with the server's RSS/CPU for samplers (``""``: none; on a rate-limited
        deployment every sample would cost a request of the budget).
    auth_header, auth_env, auth_scheme
        Auth: header name, the environment variable holding the secret, and a scheme word
        put before it (``Bearer``). Nothing is sent when the variable is unset.
    """

    name: str
    description: str = ""
    prompt_path: str = "/api/v1/prompts/process"
    workspace: str = "test"
    workspace_uuid: bool = False
    source: str = "api"
    body_extra: Mapping[str, Any] = field(default_factory=dict)
    stage_header: str = "server-timing"
    stage_json: str = ""
    stage_names: Mapping[str, str] = field(default_factory=dict)
    cache_headers: tuple[str, ...] = CACHE_HEADERS
    ok_json: str = "result"
    error_code_json: str = "error"
    health_path: str = "/health"
    ready_path: str = ""
    options_path: str = ""
    process_metrics_path: str = ""
    auth_header: str = ""
    auth_env: str = ""
    auth_scheme: str = ""

    # -- requests ---------------------------------------------------------------------------------
    def check_workspace(self, workspace: str | None) -> str:
        """The workspace to send (the default when ``None``/empty), or a one-line error."""
        ws = workspace or self.workspace
        if not ws:
            raise ConfigError(
                f"target profile {self.name!r} needs a workspace: give its workspaceId "
                "(--workspace / the notebook's workspace parameter)"
            )
        if self.workspace_uuid:
            try:
                uuid.UUID(ws)
            except ValueError:
                raise ConfigError(
                    f"target profile {self.name!r} needs a UUID workspaceId, got {ws!r} "
                    "(the real Axon API rejects anything else with 400 VALIDATION_ERROR)"
                ) from None
        return ws

    def body(self, prompt: str, workspace: str | None = None) -> dict[str, Any]:
        """The prompt request body for ``prompt`` (workspace checked)."""
        return {
            "prompt": prompt,
            "workspaceId": self.check_workspace(workspace),
            "source": self.source,
            **self.body_extra,
        }

    def bodies(self, prompts: list[str], workspace: str | None = None) -> list[dict[str, Any]]:
        """One body per prompt."""
        ws = self.check_workspace(workspace)
        return [self.body(p, ws) for p in prompts]

    def auth_headers(self) -> dict[str, str]:
        """The auth header with its secret from the environment (empty when not configured)."""
        if not self.auth_header or not self.auth_env:
            return {}
        secret = os.environ.get(self.auth_env, "")
        if not secret:
            return {}
        return {self.auth_header: f"{self.auth_scheme} {secret}".strip()}

    # -- responses --------------------------------------------------------------------------------
    @property
    def reads_body(self) -> bool:
        """Whether reading a successful response needs its body (stages in JSON)."""
        return bool(self.stage_json)

    @property
    def reads_error_body(self) -> bool:
        """Whether reading an error response needs its body (its error code)."""
        return bool(self.error_code_json)

    def stage_sources(self) -> str:
        """Where this profile looks for stage timings, in words (for "no stage timings" notes)."""
        where = []
        if self.stage_header:
            where.append(f"the {self.stage_header} header")
        if self.stage_json:
            where.append(f"the body's {self.stage_json}")
        return " and ".join(where) or "nowhere (the profile declares no stage source)"

    def reader(self) -> ResponseReader:
        """A function ``(status, headers, body) -> ResponseFacts`` for this profile."""
        return ResponseReader(self)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able description for summaries and sidecars (the auth secret never appears)."""
        d = asdict(self)
        d["cache_headers"] = list(self.cache_headers)
        d["auth_configured"] = bool(self.auth_headers())
        return d


@dataclass
class ResponseFacts:
    """What a response says beyond its status: stage timings, cache outcomes, an error code,
    rate-limit numbers (keys are full records column names).
    """

    stages: dict[str, float] | None = None
    caches: dict[str, str] | None = None
    numbers: dict[str, float] | None = None
    texts: dict[str, str] | None = None
    error: str | None = None


class ResponseReader:
    """Reads one response through a :class:`TargetProfile` (called on the engine's loop: cheap)."""

    def __init__(self, profile: TargetProfile) -> None:
        self.profile = profile
        self.stage_header = profile.stage_header.lower()
        self.stage_path = _split(profile.stage_json)
        self.error_path = _split(profile.error_code_json)
        self.names = {k: v for k, v in profile.stage_names.items()}
        self.cache_headers = tuple(h.lower() for h in profile.cache_headers)

    def __call__(
        self, status: int, headers: Mapping[str, str] | None, body: bytes | None
    ) -> ResponseFacts:
        facts = ResponseFacts()
        if headers:
            if self.stage_header:
                st = headers.get(self.stage_header)
                if st:
                    facts.stages = self._rename(parse_server_timing(st))
            for h in self.cache_headers:
                if h in headers:
                    facts.caches = parse_cache_headers(headers, self.cache_headers)
                    break
            numbers: dict[str, float] = {}
            for h, col in RATE_LIMIT_HEADERS.items():
                v = headers.get(h)
                if v is not None:
                    try:
                        numbers[col] = float(v)
                    except ValueError:
                        pass
            if numbers:
                facts.numbers = numbers
            policy = headers.get(POLICY_HEADER)
            if policy:
                facts.texts = {"ratelimit.policy": policy}
        if body and (self.stage_path or (status >= 400 and self.error_path)):
            doc = _json(body)
            if doc is not None:
                if status < 400 and self.stage_path:
                    obj = _get(doc, self.stage_path)
                    if isinstance(obj, Mapping):
                        stages = {
                            str(k): float(v)
                            for k, v in obj.items()
                            if isinstance(v, int | float) and math.isfinite(float(v))
                        }
                        if stages:
                            facts.stages = {**(facts.stages or {}), **self._rename(stages)}
                if status >= 400 and self.error_path:
                    code = _get(doc, self.error_path)
                    if isinstance(code, Mapping):
                        code = code.get("code")
                    if isinstance(code, str) and code:
                        facts.error = f"{status} {code[:60]}"
        return facts

    def complete_event_stages(self, block: bytes) -> dict[str, float] | None:
        """Stage latencies in a stream's ``complete`` event (``data.latency``, as axon_lab's
        server sends them; the real API's event has none), named like the lab's stages.
        """
        doc = _json(block.split(b"data:", 1)[-1]) if b"data:" in block else None
        latency = _get(doc, ("data", "latency")) if isinstance(doc, Mapping) else None
        if not isinstance(latency, Mapping):
            return None
        return {
            self.names.get(str(k), _CAMEL.get(str(k), str(k))): float(v)
            for k, v in latency.items()
            if isinstance(v, int | float)
        } or None

    def _rename(self, stages: dict[str, float]) -> dict[str, float]:
        if not self.names:
            return stages
        return {self.names.get(k, k): v for k, v in stages.items()}


#: The real API's camelCase stage name, for profiles that do not map it themselves.
_CAMEL = {"postProcessing": "postprocessing"}


def _split(path: str) -> tuple[str, ...]:
    return tuple(p for p in path.split(".") if p) if path else ()


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if isinstance(doc, Mapping):
            doc = doc.get(key)
        elif isinstance(doc, list) and key.isdigit() and int(key) < len(doc):
            doc = doc[int(key)]
        else:
            return None
    return doc


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def get_path(doc: Any, path: str) -> Any:
    """The value at dotted ``path`` in a parsed JSON document (``None`` when absent)."""
    return _get(doc, _split(path))


def parse_policy(policy: str | None) -> tuple[int, float] | None:
    """``RateLimit-Policy: 100;w=900`` → ``(100, 900.0)`` (``None`` when absent or unreadable)."""
    if not policy:
        return None
    m = _POLICY.match(policy)
    return (int(m.group(1)), float(m.group(2))) if m else None


# --- the registry ---------------------------------------------------------------------------------
PROFILES: Registry[TargetProfile] = Registry("target profile")
PROFILES.register(
    "axon-lab",
    TargetProfile(
        "axon-lab",
        "the embedded axon_lab server: Server-Timing, X-Axon-Cache, /api/v1/options",
        source="api",
        ok_json="result",
        error_code_json="error",
        options_path="/api/v1/options",
        process_metrics_path="/metrics/process",
    ),
)
PROFILES.register(
    "axon-api",
    TargetProfile(
        "axon-api",
        "the real Axon API: zod-validated body (UUID workspaceId), stage latencies in "
        "data.metadata.latency, express-rate-limit headers",
        workspace="",
        workspace_uuid=True,
        source="api",
        stage_header="",
        stage_json="data.metadata.latency",
        stage_names={"postProcessing": "postprocessing"},
        cache_headers=(),
        ok_json="data.response",
        error_code_json="error.code",
        ready_path="/health/ready",
        auth_header="Authorization",
        auth_env="AXON_API_TOKEN",
        auth_scheme="Bearer",
    ),
)

_FIELDS = {f.name for f in fields(TargetProfile)}


def load_profile(path: str | Path) -> TargetProfile:
    """A profile from a TOML or JSON file (``base = "axon-api"`` starts from a built-in one).

    Unknown keys are an error naming them and the valid ones.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputFileError(p, "no such profile file") from None
    try:
        if p.suffix.lower() == ".json":
            doc = json.loads(text)
        else:
            import tomllib

            doc = tomllib.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputFileError(p, f"not a valid profile ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise InputFileError(p, "a profile is a table of fields")
    doc = dict(doc.get("profile", doc))
    base_name = doc.pop("base", None)
    unknown = sorted(set(doc) - _FIELDS)
    if unknown:
        raise InputFileError(
            p, f"unknown profile field(s) {', '.join(unknown)}; valid: {', '.join(sorted(_FIELDS))}"
        )
    if "cache_headers" in doc:
        doc["cache_headers"] = tuple(doc["cache_headers"])
    doc.setdefault("name", p.stem)
    base = PROFILES.get(base_name) if base_name else TargetProfile(name=doc["name"])
    try:
        return replace(base, **doc)
    except TypeError as exc:
        raise InputFileError(p, f"not a valid profile ({exc})") from None


def target_options(url: str, profile: TargetProfile, *, timeout_s: float = 5.0) -> Any:
    """The pipeline options of the server at ``url`` (any path on it), from the profile's options
    endpoint; ``None`` when it has none or does not answer. Recorded with runs so the history
    can name an options change.
    """
    if not profile.options_path:
        return None
    import httpx

    parts = urlsplit(url)
    try:
        r = httpx.get(f"{parts.scheme}://{parts.netloc}{profile.options_path}", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return r.json() if r.status_code == 200 else None


def rate_limit_pace(
    url: str, profile: TargetProfile, *, share: float = 0.9, timeout_s: float = 5.0
) -> dict[str, Any] | None:
    """A request rate that stays under the target's announced rate limit, from one request to
    its health path (which counts against the limit): ``{"rate", "remaining", "policy",
    "reset_s"}``, or ``None`` when the target announces no ``RateLimit-Policy``.

    The rate is ``share`` of ``limit / window``: with the real API's 100 per 15 minutes that is
    0.1 requests/s, so a one-minute scenario sends about six requests. A real load test of a
    rate-limited deployment needs the limit lifted for the load generator (an API key or an IP
    allow-list on the target); the lab cannot and does not try to bypass it.
    """
    import httpx

    r = httpx.get(
        f"{url.rstrip('/')}{profile.health_path or '/'}",
        timeout=timeout_s,
        headers=profile.auth_headers(),
    )
    policy = parse_policy(r.headers.get("ratelimit-policy"))
    if policy is None:
        return None
    limit, window = policy
    remaining = r.headers.get("ratelimit-remaining")
    reset = r.headers.get("ratelimit-reset")
    return {
        "rate": share * limit / window,
        "remaining": int(remaining) if remaining and remaining.isdigit() else None,
        "policy": r.headers.get("ratelimit-policy"),
        "reset_s": float(reset) if reset and reset.replace(".", "", 1).isdigit() else None,
    }


#: ``/health`` statuses of an embedded Axon that is still starting (``api.startup``).
_STARTING = frozenset({"starting", "building", "loading", "warming"})


class TargetStarting(ConfigError):
    """The target answers ``/health`` with 503 "building": a run now would measure start-up."""


def detect_profile(url: str, *, timeout_s: float = 5.0) -> TargetProfile:
    """The profile of the deployment at ``url``, from one ``GET /health`` (counts against a
    rate limit). The real API answers ``{"success": ..., "data": {...}}``; axon_lab's server
    ``{"status", "backends"}``. Anything else is a one-line error saying how to choose.
    """
    import httpx

    base = url.rstrip("/")
    try:
        r = httpx.get(f"{base}/health", timeout=timeout_s)
    except httpx.HTTPError as exc:
        raise ConfigError(
            f"cannot detect the target profile: GET /health failed ({type(exc).__name__}); "
            f"choose one with --profile ({', '.join(PROFILES.names())} or a file)"
        ) from None
    doc = _json(r.content)
    if isinstance(doc, Mapping):
        if r.status_code == 503 and doc.get("status") in _STARTING:
            prog = doc.get("progress") if isinstance(doc.get("progress"), Mapping) else {}
            pct = f" {prog.get('percent')}%" if prog and prog.get("total") else ""
            raise TargetStarting(
                f"the target at {redact_text(base)} is still starting ({doc['status']}{pct}); "
                "run again when GET /health answers 200"
            )
        if "success" in doc and isinstance(doc.get("data") or doc.get("error"), Mapping):
            return PROFILES.get("axon-api")
        if "backends" in doc or "uptimeSeconds" in doc:
            return PROFILES.get("axon-lab")
    if r.status_code == 429:
        return PROFILES.get("axon-api")  # only the real API rate-limits /health
    raise ConfigError(
        f"cannot detect the target profile from GET /health (HTTP {r.status_code}); choose one "
        f"with --profile ({', '.join(PROFILES.names())} or a TOML/JSON profile file)"
    )


def detect_or_default(url: str) -> tuple[TargetProfile, str]:
    """The detected profile and how it was found; a target whose ``/health`` does not identify
    an Axon (any HTTP server under load) gets ``axon-lab``, the generic reading (Server-Timing,
    cache headers), and the note says so.
    """
    try:
        return detect_profile(url), "detected"
    except TargetStarting:
        raise
    except ConfigError as exc:
        why = str(exc).split(";", 1)[0].removeprefix("cannot detect the target profile")
        return PROFILES.get("axon-lab"), f"not detected{why.rstrip()}; using the generic reading"


def resolve_profile(spec: str | TargetProfile | None, url: str | None = None) -> TargetProfile:
    """A profile from a name, a file path, a profile, ``auto`` (detected at ``url``), or
    ``None``/``""`` (``axon-lab``, the embedded server's contract).
    """
    if isinstance(spec, TargetProfile):
        return spec
    if spec is None or spec == "":
        return PROFILES.get("axon-lab")
    if spec == "auto":
        if url is None:
            raise ConfigError("profile 'auto' needs the target URL to ask its /health")
        return detect_or_default(url)[0]
    if spec in PROFILES.names():
        return PROFILES.get(spec)
    if spec.endswith((".toml", ".json")) or Path(spec).exists():
        return load_profile(spec)
    PROFILES.get(spec)  # the error lists the valid names
    raise AssertionError("unreachable")
