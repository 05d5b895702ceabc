"""Parse ``Server-Timing`` and cache-status response headers into per-stage numbers."""

from __future__ import annotations

from collections.abc import Mapping

#: Response headers read as cache outcomes, in this order (lower-case).
CACHE_HEADERS: tuple[str, ...] = ("x-axon-cache", "x-cache", "cache-status", "cf-cache-status")


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    parts, buf, quoted, escaped = [], [], False, False
    for ch in value:
        if escaped:
            buf.append(ch)
            escaped = False
        elif ch == "\\" and quoted:
            buf.append(ch)
            escaped = True
        elif ch == '"':
            quoted = not quoted
            buf.append(ch)
        elif ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def parse_server_timing(value: str) -> dict[str, float]:
    """``Server-Timing`` (W3C) → ``{name: dur_ms}``.

    ``collection;dur=0.4, analysis;dur=12.1, cache;desc="a, b";dur=3`` gives
    ``{"collection": 0.4, "analysis": 12.1, "cache": 3.0}``. Quoted ``desc`` values may hold
    commas and semicolons. Entries without a ``dur`` (or with a bad one) are skipped; a name
    that appears twice has its durations summed (one request, one total per stage).
    """
    out: dict[str, float] = {}
    if not value:
        return out
    # Fast path for the common unquoted case; the careful splitter handles quoted descs.
    entries = value.split(",") if '"' not in value else _split_outside_quotes(value, ",")
    for entry in entries:
        params = entry.split(";") if '"' not in entry else _split_outside_quotes(entry, ";")
        name = params[0].strip()
        if not name:
            continue
        for p in params[1:]:
            key, _, val = p.partition("=")
            if key.strip().lower() == "dur":
                try:
                    dur = float(val.strip().strip('"'))
                except ValueError:
                    break
                out[name] = out.get(name, 0.0) + dur
                break
    return out


def parse_cache_header(name: str, value: str) -> dict[str, str]:
    """One cache header → ``{cache_name: outcome}``.

    * ``X-Axon-Cache: context=l1-hit, embedding=miss`` → ``{"context": "l1-hit", "embedding": "miss"}``
    * ``Cache-Status: ExampleCache; hit, CDN; fwd=uri-miss`` (RFC 9211) →
      ``{"ExampleCache": "hit", "CDN": "uri-miss"}``
    * ``X-Cache: HIT from proxy`` → ``{"x-cache": "hit"}`` (the header name is the cache name)
    """
    out: dict[str, str] = {}
    value = value.strip()
    if not value:
        return out
    if name == "cache-status":
        for member in _split_outside_quotes(value, ","):
            params = [p.strip() for p in member.split(";")]
            if not params[0]:
                continue
            outcome = "other"
            for p in params[1:]:
                k, _, v = p.partition("=")
                k = k.strip().lower()
                if k == "hit":
                    outcome = "hit"
                elif k == "fwd":
                    outcome = v.strip().strip('"').lower() or "miss"
            out[params[0].strip('"')] = outcome
        return out
    if "=" in value:
        for pair in value.split(","):
            k, sep, v = pair.partition("=")
            if sep and k.strip():
                out[k.strip()] = v.strip().lower()
        return out
    out[name] = value.split()[0].lower()
    return out


def parse_cache_headers(
    headers: Mapping[str, str], names: tuple[str, ...] = CACHE_HEADERS
) -> dict[str, str]:
    """Every cache outcome found in ``headers`` (lower-case names) → ``{cache_name: outcome}``."""
    out: dict[str, str] = {}
    for h in names:
        v = headers.get(h)
        if v:
            out.update(parse_cache_header(h, v))
    return out


def cache_outcome_kind(outcome: str) -> str:
    """Classify an outcome as ``hit``, ``miss`` or ``other`` (``off``, ``skip``, ``bypass``...).

    Anything containing "hit" (``l1-hit``, ``TCP_HIT``, ``stale-hit``...) is a hit; anything
    containing "miss" or being ``expired``/``uri-miss``/``stale`` is a miss. The hit rate is
    ``hit / (hit + miss)``; ``other`` outcomes (cache switched off, skipped) are left out.
    """
    o = outcome.lower()
    if "hit" in o:
        return "hit"
    if "miss" in o or o in ("expired", "stale", "revalidated", "uri-miss", "vary-miss", "partial"):
        return "miss"
    return "other"
