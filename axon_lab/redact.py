"""Redaction of secrets (passwords in URIs, API keys) before anything is printed or saved."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

MASK = "***"

# scheme://user:password@host  -> scheme://user:***@host
_URI_USERINFO = re.compile(
    r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@"
)
# ?password=..., &api_key=..., token=...
_QUERY_SECRET = re.compile(
    r"(?P<key>(?:password|passwd|pwd|api[_-]?key|apikey|token|secret|access[_-]?key)=)(?P<val>[^&\s\"']+)",
    re.IGNORECASE,
)
# Whole names or suffixes after a separator: "password", "auth_token", "api-key" — not "tiktoken",
# "max_tokens" or "tokens".
_SECRET_KEYS = re.compile(
    r"(?:^|[_\-.])(?:password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|access[_-]?key)$",
    re.I,
)


def redact_text(text: str) -> str:
    """Return ``text`` with URI passwords and secret query parameters masked."""
    if not text:
        return text
    text = _URI_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: f"{m['key']}{MASK}", text)


def redact(obj: Any) -> Any:
    """Recursively redact strings in dicts/lists; values under secret-looking keys are masked."""
    if isinstance(obj, str):
        return redact_text(obj)
    if isinstance(obj, Mapping):
        out = {}
        for k, v in obj.items():
            if isinstance(k, str) and _SECRET_KEYS.search(k) and v not in (None, ""):
                out[k] = MASK
            else:
                out[k] = redact(v)
        return out
    if isinstance(obj, list | tuple):
        return type(obj)(redact(v) for v in obj)
    return obj
