"""Atlas Search and Vector Search: index definitions, search stages and advice.

The ``listSearchIndexes`` reply is Datadog's recording (BSD-3-Clause, in tests/fixtures/mongo).
No recorded ``$search`` / ``$vectorSearch`` / ``$rankFusion`` explain under a licence that lets
the project copy it was found (see "Gaps" in tests/fixtures/mongo/README.md), so the explains
and the vector index definition here are built by hand, in the shape mongod explains a search
(``$_internalSearchMongotRemote`` or ``$vectorSearch``, then ``$_internalSearchIdLookup``); they
test how the parser reads that shape, and none of their numbers is a recording.
"""

from __future__ import annotations

import copy
import json

from axon_lab import mongo
from axon_lab.mongo.files import find_fixture, read_documents

DD_INDEXES = "searchIndexes_datadog_list_search_indexes.json"
#: A hand-written vector index definition (createSearchIndexes form).
VECTOR_INDEX = {
    "name": "vec_idx",
    "type": "vectorSearch",
    "definition": {
        "fields": [
            {"type": "vector", "path": "embedding", "numDimensions": 4, "similarity": "cosine"},
            {"type": "filter", "path": "year"},
        ]
    },
}
#: A hand-built 8.x-shaped explain: $vectorSearch, its id lookup, then a $match.
VECTOR_EXPLAIN = {
    "explainVersion": "1",
    "stages": [
        {
            "$vectorSearch": {
                "index": "vec_idx",
                "path": "embedding",
                "queryVector": [0.1, 0.2, 0.3, 0.4],
                "numCandidates": 50,
                "limit": 10,
                "filter": {"year": {"$gte": 2000}},
                "explain": {"metadata": {"mongotVersion": "0.0.0", "lucene": {"totalDocs": 7}}},
            },
            "nReturned": 10,
            "executionTimeMillisEstimate": 3,
        },
        {
            "$_internalSearchIdLookup": {"totalDocsExamined": 10, "totalKeysExamined": 10},
            "nReturned": 10,
            "executionTimeMillisEstimate": 4,
        },
        {"$match": {"genre": {"$eq": "drama"}}, "nReturned": 2, "executionTimeMillisEstimate": 4},
    ],
    "serverInfo": {"version": "8.0.0"},
    "command": {"aggregate": "c", "pipeline": [], "cursor": {}},
}


def test_list_search_indexes_reply_is_read():
    defs = mongo.search_index_definitions(read_documents(find_fixture(DD_INDEXES)))
    assert list(defs) == ["cast_fullplot_genres_title"]
    d = defs["cast_fullplot_genres_title"]
    assert d["type"] == "search" and d["filter_paths"] == [] and d["vector_paths"] == []
    assert d["definition"]["mappings"]["dynamic"] is True
    reply = {"cursor": {"firstBatch": [VECTOR_INDEX]}, "ok": 1}
    got = mongo.search_index_definitions(reply)["vec_idx"]
    assert (got["type"], got["vector_paths"], got["filter_paths"]) == (
        "vectorSearch",
        ["embedding"],
        ["year"],
    )


def test_vector_search_stage_id_lookup_and_advice():
    s = mongo.parse_explain(copy.deepcopy(VECTOR_EXPLAIN))
    assert (s.command, s.server_version, s.search_indexes) == ("aggregate", "8.0.0", ["vec_idx"])
    (row,) = s.search
    assert (row["stage"], row["kind"], row["index"], row["path"]) == (
        "$vectorSearch",
        "vectorSearch",
        "vec_idx",
        "embedding",
    )
    assert (row["limit"], row["num_candidates"], row["exact"], row["filter_fields"]) == (
        10,
        50,
        False,
        ["year"],
    )
    assert (row["mongot_version"], row["lucene_docs"], row["docs_examined"]) == ("0.0.0", 7, 10)
    assert (s.docs_examined, s.keys_examined) == (10, 10)
    assert s.advice[0].startswith("$vectorSearch on vec_idx: numCandidates 50 is 5x limit 10")
    assert any(a.startswith("$match on genre after $vectorSearch (vec_idx)") for a in s.advice)
    # Against the index definitions: year is a filter field, genre (not pre-filtered) is not
    # asked about; an index that is not among the definitions is said so.
    defs = mongo.search_index_definitions([VECTOR_INDEX])
    assert not any("not indexed" in a for a in mongo.search_advice(s, defs))
    d = copy.deepcopy(VECTOR_EXPLAIN)
    d["stages"][0]["$vectorSearch"]["filter"] = {"$and": [{"year": 1}, {"genre": "x"}]}
    advice = mongo.search_advice(mongo.parse_explain(d), defs)
    assert any(
        a.startswith("$vectorSearch on vec_idx pre-filters on genre, not indexed")
        and '{type: "filter", path: "genre"}' in a
        for a in advice
    )
    other = mongo.search_index_definitions(read_documents(find_fixture(DD_INDEXES)))
    assert any("not among the given search indexes" in a for a in mongo.search_advice(s, other))


def test_cli_search_indexes_option(capsys, tmp_path):
    from axon_lab.cli import main

    plan = tmp_path / "vector.json"
    plan.write_text(json.dumps(VECTOR_EXPLAIN))
    indexes = tmp_path / "indexes.json"
    indexes.write_text(json.dumps([VECTOR_INDEX]))
    assert main(["mongo", "explain", str(plan), "--search-indexes", str(indexes), "--json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)
    assert s["search_indexes"] == ["vec_idx"] and s["search"][0]["num_candidates"] == 50
    # The recorded listSearchIndexes reply is accepted beside a recorded find explain.
    collscan = find_fixture("v3.2.3_find_collscan.json")
    rc = main(
        ["mongo", "explain", str(collscan), "--search-indexes", str(find_fixture(DD_INDEXES))]
    )
    assert rc == 0 and "COLLSCAN" in capsys.readouterr().out
    # An explain is not a list of search index definitions.
    rc = main(["mongo", "explain", str(plan), "--search-indexes", str(collscan)])
    assert rc == 1 and "no search index definitions" in capsys.readouterr().err
