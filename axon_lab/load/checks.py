"""k6-style response checks (status, JSON field present, header, body, duration) counted as a rate."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from axon_lab.errors import ConfigError

try:  # orjson is several times faster on the hot path when it is there
    import orjson as _orjson

    _loads: Callable[[bytes], Any] = _orjson.loads
except ImportError:  # pragma: no cover
    _loads = json.loads


class CheckResponse:
    """What a check sees: status, headers (lower-case names), body and timings (ms)."""

    __slots__ = ("status", "headers", "body", "service_ms", "response_ms", "_json", "_parsed")

    def __init__(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        service_ms: float,
        response_ms: float,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.service_ms = service_ms
        self.response_ms = response_ms
        self._parsed = False
        self._json: Any = None

    def json(self) -> Any:
        """The body parsed as JSON (``None`` when it is not JSON); parsed once."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = _loads(self.body)
            except ValueError:
                self._json = None
        return self._json


@dataclass(frozen=True)
class Check:
    """A named predicate over a response; ``needs_body`` asks the client to keep bodies.

    Parameters
    ----------
    name
        Shown in tables and summaries (k6 style: ``status is 200``).
    fn
        ``fn(response) -> bool``; an exception counts as a failed check.
    needs_body
        True when ``fn`` reads the body.
    """

    name: str
    fn: Callable[[CheckResponse], bool]
    needs_body: bool = False

    def __call__(self, r: CheckResponse) -> bool:
        try:
            return bool(self.fn(r))
        except Exception:
            return False


def _json_path(doc: Any, path: str) -> tuple[bool, Any]:
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif (
            isinstance(cur, list)
            and part.lstrip("-").isdigit()
            and -len(cur) <= int(part) < len(cur)
        ):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
}
_CMP = re.compile(r"^(status|duration|response_time)\s*(<=|>=|==|!=|<|>)\s*(\d+(?:\.\d+)?)$")

CHECK_SYNTAX = (
    "status==200 | status<400 | status in 200,201 | duration<3000 (ms, from send) | "
    "response_time<3000 (ms, from intended start) | json:FIELD[.SUB] | "
    "header:NAME | body~REGEX"
)


def parse_check(expr: str) -> Check:
    """A check from its CLI form (see :data:`CHECK_SYNTAX`).

    ``status==200`` → "status is 200"; ``json:result`` → "response has result" (the field is
    present and not null); ``header:Server-Timing``; ``body~"ok"``; ``duration<3000``.
    """
    e = expr.strip()
    m = _CMP.match(e)
    if m:
        field, op, num = m.group(1), m.group(2), float(m.group(3))
        cmp = _OPS[op]
        if field == "status":
            code = int(num)
            name = f"status is {code}" if op == "==" else f"status {op} {code}"
            return Check(name, lambda r: cmp(r.status, code))
        attr = "service_ms" if field == "duration" else "response_ms"
        return Check(f"{field} {op} {num:g}ms", lambda r: cmp(getattr(r, attr), num))
    m = re.match(r"^status\s+in\s+([\d,\s]+)$", e)
    if m:
        codes = frozenset(int(c) for c in m.group(1).replace(" ", "").split(",") if c)
        return Check(f"status in {','.join(map(str, sorted(codes)))}", lambda r: r.status in codes)
    if e.startswith("json:") and len(e) > 5:
        path = e[5:].strip()

        def has_field(r: CheckResponse) -> bool:
            ok, val = _json_path(r.json(), path)
            return ok and val is not None

        return Check(f"response has {path}", has_field, needs_body=True)
    if e.startswith("header:") and len(e) > 7:
        hname = e[7:].strip().lower()
        return Check(f"has header {e[7:].strip()}", lambda r: hname in r.headers)
    if e.startswith("body~") and len(e) > 5:
        try:
            rx = re.compile(e[5:].strip().strip('"').encode())
        except re.error as exc:
            raise ConfigError(f"bad check regex {e[5:]!r}: {exc}") from None
        return Check(
            f"body matches {e[5:].strip()}",
            lambda r: rx.search(r.body) is not None,
            needs_body=True,
        )
    raise ConfigError(f"cannot parse check {expr!r}; use {CHECK_SYNTAX}")


def as_check(obj: str | Check | tuple[str, Callable[[CheckResponse], bool]]) -> Check:
    """Accept a :class:`Check`, a CLI string or a ``(name, fn)`` pair (fn may read the body)."""
    if isinstance(obj, Check):
        return obj
    if isinstance(obj, str):
        return parse_check(obj)
    if isinstance(obj, tuple) and len(obj) == 2 and callable(obj[1]):
        return Check(str(obj[0]), obj[1], needs_body=True)
    raise ConfigError(f"not a check: {obj!r}")
