"""Atlas Search and Vector Search stages of an aggregate explain, and advice on them.

An aggregate that starts with ``$search``, ``$searchMeta`` or ``$vectorSearch`` is explained by
mongod as the stages it runs: ``$_internalSearchMongotRemote`` (or ``$vectorSearch`` itself)
asks mongot, the search process, for ids and scores; ``$_internalSearchIdLookup`` then reads
each document by ``_id`` (from 8.0 its explain carries ``totalDocsExamined`` and
``totalKeysExamined``). Hybrid search (``$rankFusion``, ``$scoreFusion``) adds the second
pipeline as a ``$unionWith`` whose ``pipeline`` is explained stage by stage.

:func:`mongot_info` reads one mongot stage: the search or vector index, the operator, the
``path``/``limit``/``numCandidates``/``exact``/``filter`` of a vector search, and what mongot
reported (its version, the Lucene document count, and ``mongot_query_ms``, the sum of the
``context``, ``match`` and ``score`` times of the top-level Lucene query).
:func:`search_advice` turns the search stages of a summary into advice: ``numCandidates``
well below 20 × ``limit``, a ``$match`` right after the search that mongot could have applied,
and (given the index definitions, :func:`search_index_definitions`) pre-filter fields of a
``$vectorSearch`` that the vector index does not declare as ``filter`` fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # explain imports this module; the summary type is for annotations only
    from axon_lab.mongo.explain import ExplainSummary, PlanNode

#: Stages that ask mongot (user-facing and the internal names mongod explains).
MONGOT_STAGES = frozenset(
    {
        "$search",
        "$searchMeta",
        "$vectorSearch",
        "$_internalSearchMongotRemote",
        "$_internalSearchMongotRemoteMeta",
    }
)
#: The stage that reads the documents mongot returned, by ``_id``.
ID_LOOKUP = "$_internalSearchIdLookup"
SEARCH_STAGES = MONGOT_STAGES | {ID_LOOKUP}
#: Atlas Vector Search guidance: ``numCandidates`` at least 20 times ``limit`` for good recall.
CANDIDATES_PER_RESULT = 20
#: Keys of a ``$search`` spec that are options, not the operator.
_SEARCH_OPTIONS = frozenset(
    {
        "index",
        "highlight",
        "count",
        "returnStoredSource",
        "returnScope",
        "scoreDetails",
        "sort",
        "tracking",
        "concurrent",
        "searchAfter",
        "searchBefore",
    }
)


def _num(value: Any) -> int | float | None:
    from axon_lab.mongo.explain import number

    return number(value)


def _section(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """``doc[key]`` when it is a document, else an empty one."""
    value = doc.get(key)
    return value if isinstance(value, Mapping) else {}


def _ms(section: Any) -> float | None:
    """``millisElapsed`` of a mongot stats section."""
    if isinstance(section, Mapping):
        v = _num(section.get("millisElapsed"))
        return None if v is None else float(v)
    return None


def filter_fields(flt: Any) -> list[str]:
    """Field paths a filter names (``$and``/``$or``/``$nor`` flattened), in order, once each."""
    out: list[str] = []

    def visit(f: Any) -> None:
        if isinstance(f, Mapping):
            for k, v in f.items():
                if k in ("$and", "$or", "$nor") and isinstance(v, list):
                    for sub in v:
                        visit(sub)
                elif isinstance(k, str) and not k.startswith("$") and k not in out:
                    out.append(k)

    visit(flt)
    return out


def mongot_info(stage: str, spec: Any) -> dict[str, Any]:
    """What one mongot stage of an explain says (see the module docstring).

    Returns
    -------
    dict
        ``kind`` (``search``, ``searchMeta`` or ``vectorSearch``), ``index`` (``default`` when
        the query names none, as Atlas does), ``operator``, for vector search ``path``,
        ``limit``, ``num_candidates``, ``exact`` and ``filter_fields``, and from mongot's own
        explain ``mongot_query_ms``, ``mongot_collect_ms``, ``mongot_version``, ``lucene_docs``.
    """
    spec = spec if isinstance(spec, Mapping) else {}
    query: Mapping[str, Any] = spec
    if isinstance(spec.get("mongotQuery"), Mapping):
        query = spec["mongotQuery"]
        if len(query) == 1 and isinstance(next(iter(query.values())), Mapping):
            (k, v), *_ = query.items()  # {"$search": {...}} form of some servers
            if k in ("$search", "$searchMeta", "$vectorSearch"):
                query = v
    explain = _section(spec, "explain")
    meta = _section(explain, "metadata")
    vector = stage == "$vectorSearch" or "queryVector" in query or "numCandidates" in query
    kind = "vectorSearch" if vector else "searchMeta" if stage.endswith("Meta") else "search"
    index = query.get("index") or meta.get("indexName") or "default"
    info: dict[str, Any] = {"kind": kind, "index": str(index)}
    if vector:
        info["operator"] = "knn"
        info["path"] = query.get("path")
        info["limit"] = _num(query.get("limit"))
        info["num_candidates"] = _num(query.get("numCandidates"))
        info["exact"] = bool(query.get("exact"))
        info["filter"] = query.get("filter")
        info["filter_fields"] = filter_fields(query.get("filter"))
    else:
        ops = [k for k in query if k not in _SEARCH_OPTIONS and not str(k).startswith("$")]
        info["operator"] = ops[0] if ops else None
    stats = _section(_section(explain, "query"), "stats")
    parts = [_ms(stats.get(k)) for k in ("context", "match", "score")]
    known = [p for p in parts if p is not None]
    info["mongot_query_ms"] = round(sum(known), 6) if known else None
    info["mongot_collect_ms"] = _ms(_section(explain, "collectors").get("allCollectorStats"))
    info["mongot_version"] = meta.get("mongotVersion")
    info["lucene_docs"] = _num(_section(meta, "lucene").get("totalDocs"))
    return info


def id_lookup_info(spec: Any) -> dict[str, Any]:
    """``$_internalSearchIdLookup`` statistics (8.0+): documents and keys examined, filtered."""
    spec = spec if isinstance(spec, Mapping) else {}
    return {
        "docs_examined": _num(spec.get("totalDocsExamined")),
        "keys_examined": _num(spec.get("totalKeysExamined")),
        "filtered": _num(spec.get("numDocsFilteredByIdLookup")),
        "limit": _num(spec.get("limit")),
    }


def search_rows(tree: PlanNode) -> list[dict[str, Any]]:
    """One row per mongot stage of a plan tree (pre-order), with the documents its id lookup
    examined when the lookup reported them.
    """
    rows: list[dict[str, Any]] = []
    for n in tree.walk():
        info = n.details.get("search")
        if n.stage in MONGOT_STAGES and isinstance(info, Mapping):
            rows.append(
                {
                    "stage": n.stage,
                    **info,
                    "n_returned": n.n_returned,
                    "time_ms": n.time_ms,
                    "docs_examined": n.details.get("id_lookup_docs_examined"),
                }
            )
    return rows


# ---- index definitions and advice ----------------------------------------------------------


def search_index_definitions(docs: Any) -> dict[str, dict[str, Any]]:
    """Search index definitions by name, from ``listSearchIndexes`` / ``$listSearchIndexes``
    output (``latestDefinition``), ``createSearchIndexes`` specs (``definition``) or a reply
    with ``cursor.firstBatch``.

    Returns
    -------
    dict
        ``{name: {"type": "search" | "vectorSearch", "filter_paths": [...],
        "vector_paths": [...], "definition": {...}}}``.
    """
    if isinstance(docs, Mapping):
        cur = docs.get("cursor")
        if isinstance(cur, Mapping) and isinstance(cur.get("firstBatch"), list):
            docs = cur["firstBatch"]
        elif isinstance(docs.get("indexes"), list):
            docs = docs["indexes"]
        else:
            docs = [docs]
    out: dict[str, dict[str, Any]] = {}
    for d in docs if isinstance(docs, Iterable) else []:
        if not isinstance(d, Mapping) or not d.get("name"):
            continue
        definition = d.get("latestDefinition") or d.get("definition") or {}
        fields = definition.get("fields") if isinstance(definition, Mapping) else None
        fields = fields if isinstance(fields, list) else []
        typ = d.get("type") or ("vectorSearch" if fields else "search")
        out[str(d["name"])] = {
            "type": str(typ),
            "filter_paths": [
                str(f.get("path"))
                for f in fields
                if isinstance(f, Mapping) and f.get("type") == "filter"
            ],
            "vector_paths": [
                str(f.get("path"))
                for f in fields
                if isinstance(f, Mapping) and f.get("type") == "vector"
            ],
            "definition": definition,
        }
    return out


def _match_after_search(tree: PlanNode) -> list[tuple[str, dict[str, Any], list[str]]]:
    """``$match`` stages fed directly by a search (its id lookup or the mongot stage)."""
    found = []
    for n in tree.walk():
        if n.stage != "$match" or not n.children:
            continue
        src = n.children[0]
        if src.stage == ID_LOOKUP and src.children:
            src = src.children[0]
        info = src.details.get("search")
        if src.stage in MONGOT_STAGES and isinstance(info, Mapping):
            found.append((src.stage, dict(info), filter_fields(n.details.get("spec"))))
    return found


def search_advice(
    summary: ExplainSummary, definitions: Mapping[str, Mapping[str, Any]] | None = None
) -> list[str]:
    """Advice on the search stages of one plan (empty when it has none).

    Parameters
    ----------
    summary
        A parsed explain.
    definitions
        Search index definitions (:func:`search_index_definitions`); without them the
        pre-filter fields of a ``$vectorSearch`` are listed for checking, not judged.
    """
    out: list[str] = []
    for row in summary.search:
        if row.get("kind") != "vectorSearch":
            continue
        idx, limit, cand = row.get("index"), row.get("limit"), row.get("num_candidates")
        if (
            not row.get("exact")
            and isinstance(limit, int | float)
            and isinstance(cand, int | float)
            and limit > 0
            and cand < CANDIDATES_PER_RESULT * limit
        ):
            out.append(
                f"$vectorSearch on {idx}: numCandidates {cand:g} is {cand / limit:.3g}x limit "
                f"{limit:g}; Atlas Vector Search recommends at least {CANDIDATES_PER_RESULT}x "
                "limit for accurate approximate (HNSW) results"
            )
        fields = list(row.get("filter_fields") or [])
        if not fields:
            continue
        if definitions is None:
            out.append(
                f"$vectorSearch on {idx} pre-filters on {', '.join(fields)}: each must be "
                'indexed as {type: "filter"} in the vector index'
            )
            continue
        d = definitions.get(str(idx))
        if d is None:
            out.append(
                f"$vectorSearch uses index {idx}, which is not among the given search indexes "
                f"({', '.join(sorted(definitions)) or 'none'})"
            )
            continue
        missing = [f for f in fields if f not in d.get("filter_paths", [])]
        if missing:
            add = ", ".join(f'{{type: "filter", path: "{f}"}}' for f in missing)
            out.append(
                f"$vectorSearch on {idx} pre-filters on {', '.join(missing)}, not indexed as "
                f"filter field{'s' if len(missing) > 1 else ''} of {idx}: the query fails "
                f"until the index definition adds {add}"
            )
    for _stage, info, fields in _match_after_search(summary.tree):
        what = ", ".join(fields) or "documents"
        if info.get("kind") == "vectorSearch":
            out.append(
                f"$match on {what} after $vectorSearch ({info.get('index')}) filters the "
                f"{info.get('limit')} nearest results after the search, so fewer come back: "
                f"move the condition into $vectorSearch.filter and index {what} as filter "
                "fields"
            )
        else:
            out.append(
                f"$match on {what} after $search ({info.get('index')}) runs on mongod over "
                "every document mongot matched (each read by _id): filter inside the search "
                "instead (compound.filter with range/equals/in on indexed fields)"
            )
    return out


def union_pipeline(spec: Any) -> Sequence[Any] | None:
    """The explained sub-pipeline of a ``$unionWith`` stage (``None`` when it has none)."""
    if isinstance(spec, Mapping) and isinstance(spec.get("pipeline"), list):
        stages = spec["pipeline"]
        if stages and all(isinstance(s, Mapping) for s in stages):
            return stages
    return None
