"""Index advice by the Equality → Sort → Range rule, and ``$indexStats`` review (unused, redundant).

For a query shape (filter, sort, projection) :func:`advise_index` proposes one compound index:
fields matched by equality first (they pin the scan to one contiguous key range), then the
sort keys in sort order and direction (the index then yields documents already sorted, so no
blocking in-memory SORT), then range fields (a range before the sort key would split the
sorted order into one run per range value and force a sort). It says whether an existing
index already serves the shape and which existing indexes become redundant prefixes once the
advised one exists. For the guide's ``contexts`` query (``{workspaceId, tier}`` sorted by
``confidence`` descending) the advice is ``{workspaceId: 1, tier: 1, confidence: -1}``.

:func:`index_stats_report` reads ``$indexStats`` output: indexes with zero operations since the
server started counting, and indexes whose key is a prefix of another index's key on the same
collection (the longer one serves every query the shorter one does).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from axon_lab.mongo.explain import format_key, number

Key = list[tuple[str, Any]]

#: Operators that bound a field to one value (or a few: ``$in`` explodes into point ranges).
EQUALITY_OPS = frozenset({"$eq", "$in"})
#: Operators that make a range (or cannot use tight bounds).
RANGE_OPS = frozenset(
    {
        "$gt",
        "$gte",
        "$lt",
        "$lte",
        "$ne",
        "$nin",
        "$regex",
        "$exists",
        "$type",
        "$not",
        "$elemMatch",
        "$all",
        "$size",
        "$mod",
        "$geoWithin",
        "$geoIntersects",
        "$near",
        "$nearSphere",
        "$bitsAllSet",
        "$bitsAnySet",
        "$bitsAllClear",
        "$bitsAnyClear",
    }
)
#: The guide's app query on ``contexts``.
CONTEXTS_FILTER = {"workspaceId": "test", "tier": "workspace"}
CONTEXTS_SORT = {"confidence": -1}
CONTEXTS_PROJECTION = {"content": 1, "metadata": 1, "confidence": 1}
#: The name the guide gives that index.
GUIDE_INDEX_NAME = "workspace_tier_confidence_idx"


def sort_pairs(sort: Any) -> Key:
    """A sort spec (dict, list of pairs, ``"field"``) as ``[(field, direction)]``."""
    if sort is None:
        return []
    if isinstance(sort, str):
        return [(sort, 1)]
    if isinstance(sort, Mapping):
        items = list(sort.items())
    else:
        items = [tuple(p) if isinstance(p, list | tuple) else (p, 1) for p in sort]
    out: Key = []
    for k, v in items:
        n = number(v)
        out.append((str(k), int(n) if n is not None and n in (1, -1) else v))
    return out


def key_pairs(key: Any) -> Key:
    """An index key (dict, list of pairs, or mongod's ``"{ a: 1, b: -1 }"`` text) as pairs."""
    if isinstance(key, str):
        body = key.strip().strip("{}").strip()
        out: Key = []
        for part in filter(None, (p.strip() for p in body.split(","))):
            name, _, val = part.rpartition(":")
            val = val.strip().strip('"')
            try:
                out.append((name.strip(), int(float(val))))
            except ValueError:
                out.append((name.strip(), val))
        return out
    return sort_pairs(key)


def is_literal_value(v: Any) -> bool:
    if isinstance(v, Mapping):
        return not any(isinstance(k, str) and k.startswith("$") for k in v) or set(v) <= {
            "$oid",
            "$date",
            "$numberLong",
            "$numberInt",
            "$numberDouble",
            "$numberDecimal",
            "$binary",
            "$uuid",
            "$timestamp",
        }
    return True


def classify_filter(flt: Any) -> tuple[list[str], list[str], list[str]]:
    """Split a filter into equality fields, range fields and notes (in filter order).

    ``$and`` is flattened; ``$or``/``$nor``/``$expr``/``$text`` clauses cannot be served by one
    compound index and are reported in the notes. A field with both an equality and a range
    condition counts as equality.
    """
    eq: list[str] = []
    rng: list[str] = []
    notes: list[str] = []

    def visit(f: Any) -> None:
        if not isinstance(f, Mapping):
            return
        for k, v in f.items():
            if k == "$and" and isinstance(v, list):
                for sub in v:
                    visit(sub)
            elif k in ("$or", "$nor"):
                notes.append(f"{k} clauses need an index per clause; not covered by this advice")
            elif isinstance(k, str) and k.startswith("$"):
                notes.append(f"{k} cannot use index bounds")
            elif is_literal_value(v) or (isinstance(v, Mapping) and set(v) <= EQUALITY_OPS):
                if isinstance(v, Mapping) and "$in" in v:
                    notes.append(
                        f"{k}: $in is an equality per value; with a sort the server "
                        "merges one sorted run per value"
                    )
                if k not in eq:
                    eq.append(k)
            elif isinstance(v, Mapping):
                ops = set(v)
                if ops & EQUALITY_OPS and "$eq" in ops:
                    if k not in eq:
                        eq.append(k)
                elif k not in rng:
                    rng.append(k)
                    if "$regex" in ops:
                        pat = v.get("$regex")
                        if not (isinstance(pat, str) and pat.startswith("^")):
                            notes.append(f"{k}: an unanchored $regex scans every key of the index")

    visit(flt)
    rng = [r for r in rng if r not in eq]
    return eq, rng, notes


def normalize_indexes(existing: Any) -> list[dict[str, Any]]:
    """Existing indexes in any common form as ``[{"name", "key": [(field, dir)], "unique",
    "sparse", "partial", "ttl"}]``.

    Accepts ``listIndexes``/``getIndexes`` documents, ``$indexStats`` documents (``spec`` used
    when present), pymongo's ``index_information()`` dict, or bare key patterns.
    """
    out: list[dict[str, Any]] = []
    if existing is None:
        return out
    if isinstance(existing, Mapping) and "key" in existing:
        items: Iterable[Any] = [existing]
    elif isinstance(existing, Mapping) and all(
        isinstance(v, Mapping) and "key" in v for v in existing.values()
    ):
        items = [{"name": k, **v} for k, v in existing.items()]
    else:
        items = existing
    for i, ix in enumerate(items):
        if isinstance(ix, Mapping) and "key" in ix:
            spec: Mapping[str, Any] = ix["spec"] if isinstance(ix.get("spec"), Mapping) else ix
            key = key_pairs(ix["key"])
            name = str(ix.get("name") or "_".join(f"{k}_{v}" for k, v in key))
            out.append(
                {
                    "name": name,
                    "key": key,
                    "unique": bool(spec.get("unique")),
                    "sparse": bool(spec.get("sparse")),
                    "partial": "partialFilterExpression" in spec,
                    "ttl": "expireAfterSeconds" in spec,
                }
            )
        else:
            key = key_pairs(ix)
            out.append(
                {
                    "name": "_".join(f"{k}_{v}" for k, v in key) or f"index{i}",
                    "key": key,
                    "unique": False,
                    "sparse": False,
                    "partial": False,
                    "ttl": False,
                }
            )
    return out


def default_name(key: Key) -> str:
    """Mongod's default index name: ``workspaceId_1_tier_1_confidence_-1``."""
    return "_".join(f"{k}_{v}" for k, v in key)


def _dirs_compatible(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Two direction lists give the same order forwards or backwards (all equal / all flipped)."""
    if not all(isinstance(x, int) for x in list(a) + list(b)):
        return False
    return list(a) == list(b) or list(a) == [-x for x in b]


def is_prefix(short: Key, long: Key) -> bool:
    """Whether index ``short`` is a prefix of ``long`` (same fields, compatible directions).

    A single-field index is a prefix of any index starting with that field (it can be walked
    in either direction).
    """
    if not short or len(short) > len(long):
        return False
    if [k for k, _ in short] != [k for k, _ in long[: len(short)]]:
        return False
    return _dirs_compatible([d for _, d in short], [d for _, d in long[: len(short)]])


def serves(key: Key, equality: Sequence[str], sort: Key, rng: Sequence[str]) -> bool:
    """Whether an index with ``key`` serves the shape: equality fields first (any order), then
    the sort keys in order (directions all equal or all reversed), then the range fields.
    """
    fields = [k for k, _ in key]
    n_eq = len(equality)
    if set(fields[:n_eq]) != set(equality):
        return False
    pos = n_eq
    if sort:
        part = key[pos : pos + len(sort)]
        if [k for k, _ in part] != [k for k, _ in sort]:
            return False
        if not _dirs_compatible([d for _, d in part], [d for _, d in sort]):
            return False
        pos += len(sort)
    if rng and set(fields[pos : pos + len(rng)]) != set(rng):
        return False
    return bool(equality or sort or rng)


@dataclass
class IndexAdvice:
    """A compound index for one query shape, and why.

    Attributes
    ----------
    key
        The advised key as ``[(field, direction)]``, Equality → Sort → Range.
    equality, sort, range
        The fields in each role (sort with its direction).
    reason
        One paragraph saying why the fields are in this order.
    served_by
        Name of an existing index that already serves the shape (then nothing to create).
    redundant_after
        Existing indexes that are a prefix of the advised key: droppable once it exists.
    covers_projection
        Whether the advised index alone can answer the query (projection inside the key,
        ``_id`` excluded).
    notes
        Caveats ($or, unanchored regex, $in with sort...).
    """

    key: Key
    equality: list[str]
    sort: Key
    range: list[str]
    reason: str
    served_by: str | None = None
    redundant_after: list[str] = field(default_factory=list)
    covers_projection: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def key_dict(self) -> dict[str, Any]:
        """The key as an ordered dict (what ``createIndex`` takes)."""
        return dict(self.key)

    @property
    def key_text(self) -> str:
        """``{ workspaceId: 1, tier: 1, confidence: -1 }``."""
        return format_key(self.key)

    @property
    def name(self) -> str:
        """Mongod's default name for the key."""
        return default_name(self.key)

    @property
    def needed(self) -> bool:
        """Whether an index should be created (there is a key and nothing serves it yet)."""
        return bool(self.key) and self.served_by is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (key as an ordered object and as text)."""
        return {
            "key": self.key_dict,
            "key_text": self.key_text,
            "name": self.name,
            "equality": self.equality,
            "sort": dict(self.sort),
            "range": self.range,
            "reason": self.reason,
            "served_by": self.served_by,
            "redundant_after": self.redundant_after,
            "needed": self.needed,
            "covers_projection": self.covers_projection,
            "notes": self.notes,
        }

    def __str__(self) -> str:
        state = (
            f"already served by {self.served_by}"
            if self.served_by
            else "create it"
            if self.key
            else "nothing to index"
        )
        return f"{self.key_text}: {state}. {self.reason}"


def _reason(eq: list[str], srt: Key, rng: list[str]) -> str:
    parts = []
    if eq:
        parts.append(
            f"equality on {', '.join(eq)} first: exact matches pin the scan to one "
            "contiguous range of keys"
        )
    if srt:
        parts.append(
            f"the sort key{'s' if len(srt) > 1 else ''} {format_key(srt)} in sort order: "
            "the index returns documents already sorted, so no blocking in-memory SORT"
        )
    if rng:
        s = "s" if len(rng) > 1 else ""
        parts.append(
            f"the range field{s} {', '.join(rng)} last: a range before the sort key "
            "would break the index order and force a sort"
            if srt
            else f"the range field{s} {', '.join(rng)}: bounds on the remaining keys"
        )
    if not parts:
        return "The filter and sort name no field, so no index can narrow this query."
    text = "; then ".join(parts)
    return text[0].upper() + text[1:] + " (Equality → Sort → Range)."


def advise_index(
    filter: Any = None, sort: Any = None, projection: Any = None, existing: Any = None
) -> IndexAdvice:
    """A compound index for a query shape by Equality → Sort → Range, with the reason.

    Parameters
    ----------
    filter
        The query filter (values are ignored; operators decide the role of each field).
    sort
        The sort spec (``{"confidence": -1}`` or ``[("confidence", -1)]``).
    projection
        The projection (to say whether the advised index would cover the query).
    existing
        Existing indexes (see :func:`normalize_indexes`) to check against.

    Returns
    -------
    IndexAdvice

    Examples
    --------
    >>> advise_index({"workspaceId": "w", "tier": "t"}, {"confidence": -1}).key_text
    '{ workspaceId: 1, tier: 1, confidence: -1 }'
    """
    eq, rng, notes = classify_filter(filter or {})
    srt = [(k, d) for k, d in sort_pairs(sort) if k not in eq]  # an equality field is constant
    rng_after = [r for r in rng if r not in {k for k, _ in srt}]
    key: Key = (
        [(k, 1) for k in eq]
        + [(k, d if d in (1, -1) else 1) for k, d in srt]
        + [(k, 1) for k in rng_after]
    )
    advice = IndexAdvice(
        key=key,
        equality=eq,
        sort=srt,
        range=rng_after,
        reason=_reason(eq, srt, rng_after),
        notes=notes,
    )
    if isinstance(projection, Mapping) and projection:
        incl = {k for k, v in projection.items() if k != "_id" and v not in (0, False)}
        id_excluded = projection.get("_id") in (0, False)
        advice.covers_projection = bool(incl) and id_excluded and incl <= {k for k, _ in key}
    for ix in normalize_indexes(existing):
        if advice.served_by is None and serves(ix["key"], eq, srt, rng_after):
            advice.served_by = ix["name"]
        elif (
            key
            and ix["name"] != "_id_"
            and not ix["unique"]
            and not ix["partial"]
            and not ix["sparse"]
            and not ix["ttl"]
            and ix["key"] != key
            and is_prefix(ix["key"], key)
        ):
            advice.redundant_after.append(ix["name"])
    if advice.served_by:
        advice.redundant_after = [n for n in advice.redundant_after if n != advice.served_by]
    return advice


def contexts_advice(existing: Any = None) -> IndexAdvice:
    """The advice for the guide's ``contexts`` query (``{workspaceId, tier}`` by confidence desc)."""
    return advise_index(CONTEXTS_FILTER, CONTEXTS_SORT, CONTEXTS_PROJECTION, existing)


# ---- $indexStats ---------------------------------------------------------------------------


def _index_stats_docs(doc: Any) -> list[Mapping[str, Any]]:
    """``$indexStats`` documents from a list, an aggregate reply or one document."""
    if isinstance(doc, Mapping) and isinstance(doc.get("cursor"), Mapping):
        c = doc["cursor"]
        return list(c.get("firstBatch") or c.get("nextBatch") or [])
    if isinstance(doc, Mapping):
        return [doc]
    return [d for d in doc if isinstance(d, Mapping)]


def _iso(value: Any) -> str | None:
    """A ``since`` timestamp as ISO text (Extended JSON ``$date`` millis or ISO string)."""
    import datetime as dt

    if isinstance(value, Mapping):
        value = value.get("$date", value)
        if isinstance(value, Mapping):  # {"$date": {"$numberLong": "..."}}
            value = number(value)
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value / 1000, dt.UTC).isoformat(timespec="milliseconds")
    return None if value is None else str(value)


def index_stats_report(collections: Mapping[str, Any]):  # -> pandas.DataFrame
    """Review ``$indexStats`` output: usage per index, unused ones, redundant prefixes.

    Parameters
    ----------
    collections
        ``{collection label: $indexStats documents}`` (one ``$indexStats`` run per collection;
        on a sharded cluster, one document per index per shard: operations are summed).

    Returns
    -------
    pandas.DataFrame
        One row per index: ``collection, name, key, ops, since, hosts, unused, redundant_with,
        advice``. ``unused`` means zero operations since ``since`` (the counters restart with
        the server, so a young ``since`` proves little); ``_id_`` is never flagged (it cannot
        be dropped). ``redundant_with`` names an index whose key starts with this one's key
        (unique, sparse, partial and TTL indexes are kept: they do more than serve queries).
    """
    import pandas as pd

    rows = []
    for coll, raw in collections.items():
        docs = _index_stats_docs(raw)
        merged: dict[str, dict[str, Any]] = {}
        for d in docs:
            name = str(d.get("name"))
            acc: Mapping[str, Any] = d["accesses"] if isinstance(d.get("accesses"), Mapping) else {}
            ops = number(acc.get("ops")) or 0
            since = _iso(acc.get("since"))
            host = d.get("shard") or d.get("host")
            m = merged.setdefault(name, {"doc": d, "ops": 0, "since": since, "hosts": []})
            m["ops"] += int(ops)
            if host and host not in m["hosts"]:
                m["hosts"].append(str(host))
        norm = {ix["name"]: ix for ix in normalize_indexes([m["doc"] for m in merged.values()])}
        for name, m in merged.items():
            ix = norm[name]
            redundant = None
            protected = name == "_id_" or ix["unique"] or ix["sparse"] or ix["partial"] or ix["ttl"]
            if not protected:
                for other in norm.values():
                    if (
                        other["name"] != name
                        and len(other["key"]) > len(ix["key"])
                        and is_prefix(ix["key"], other["key"])
                    ):
                        redundant = other["name"]
                        break
            unused = m["ops"] == 0 and name != "_id_"
            advice = (
                "drop: prefix of " + redundant
                if redundant
                else "review: unused since " + str(m["since"])
                if unused
                else "keep"
            )
            rows.append(
                {
                    "collection": coll,
                    "name": name,
                    "key": format_key(ix["key"]),
                    "ops": m["ops"],
                    "since": None if m["since"] is None else str(m["since"]),
                    "hosts": ", ".join(m["hosts"]),
                    "unused": unused,
                    "redundant_with": redundant,
                    "advice": advice,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "collection",
            "name",
            "key",
            "ops",
            "since",
            "hosts",
            "unused",
            "redundant_with",
            "advice",
        ],
    )
