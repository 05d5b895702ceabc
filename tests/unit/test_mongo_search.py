"""Atlas Search and Vector Search explains: plan nodes named by their index, id-lookup counts,
the ``$unionWith`` of hybrid search in the tree, and advice.

The three explains are recorded on Atlas (6.0.24 and 8.1.2) by the Compass team (SSPL: they
live in ``../shared/fixtures/mongo`` and these tests skip when it is absent); the
``listSearchIndexes`` reply is Datadog's recording (BSD-3-Clause, in the project).
"""

from __future__ import annotations

import copy
import json

import pytest

from axon_lab import mongo
from axon_lab.mongo.files import SHARED_FIXTURES, find_fixture, read_documents, repo_root

SHARED = repo_root() / SHARED_FIXTURES
HYBRID = "v8.1.2_agg_rankfusion_search_unionwith_vectorsearch.json"
SEARCH = "v6.0.24_agg_atlas_search_match_group_sort.json"
#: The vector index the hybrid explain queried, as recorded next to it in the same source
#: (``createSearchIndex`` call of case E3 in Compass's explain-plan eval cases).
HYBRID_VECTOR_INDEX = {
    "name": "movies_vector_index",
    "type": "vectorSearch",
    "definition": {
        "fields": [
            {
                "type": "vector",
                "path": "plot_embedding_voyage_3_large",
                "numDimensions": 2048,
                "similarity": "cosine",
            }
        ]
    },
}


def doc(name: str) -> dict:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"{name} lives only in ../shared/fixtures/mongo, which is absent")
    return json.loads(path.read_text())


def test_hybrid_search_nodes_indexes_counts_and_union_subpipeline():
    s = mongo.parse_explain(doc(HYBRID), source=HYBRID)
    text, vector = s.search
    assert (text["stage"], text["kind"], text["index"], text["operator"]) == (
        "$_internalSearchMongotRemote",
        "search",
        "movies_text_index",
        "text",
    )
    assert (text["n_returned"], text["docs_examined"], text["time_ms"]) == (978, 978, 95)
    assert text["mongot_query_ms"] == pytest.approx(7.405105 + 2.222915 + 2.493474)
    assert (vector["stage"], vector["kind"], vector["index"]) == (
        "$vectorSearch",
        "vectorSearch",
        "movies_vector_index",
    )
    assert (vector["path"], vector["limit"], vector["num_candidates"], vector["exact"]) == (
        "plot_embedding_voyage_3_large",
        50,
        100,
        False,
    )
    assert (vector["n_returned"], vector["docs_examined"]) == (50, 50)
    assert vector["mongot_query_ms"] == pytest.approx(2.936576 + 0.006359 + 0.009441)
    assert (vector["mongot_version"], vector["lucene_docs"]) == ("1.49.5", 3483)
    # The $unionWith node: first child the text pipeline, second its explained sub-pipeline.
    union = next(n for n in s.tree.walk() if n.stage == "$unionWith")
    assert union.label == "$unionWith embedded_movies" and union.n_returned == 1028
    main, sub = union.children
    assert [n.stage for n in main.walk()][-2:] == [
        "$_internalSearchIdLookup",
        "$_internalSearchMongotRemote",
    ]
    assert [n.stage for n in sub.walk()][-2:] == ["$_internalSearchIdLookup", "$vectorSearch"]
    leaf = list(sub.walk())[-1]
    assert leaf.label == "$vectorSearch movies_vector_index"
    rows = mongo.stage_rows(s)
    assert rows.stage.tolist().count("$_internalSearchIdLookup") == 2
    assert rows[rows.stage == "$_internalSearchIdLookup"].docs_examined.tolist() == [978, 50]
    json.dumps(s.to_dict(), default=str)


def test_search_advice_on_recorded_plans():
    hybrid = mongo.parse_explain(doc(HYBRID))
    assert hybrid.advice == [
        "$vectorSearch on movies_vector_index: numCandidates 100 is 2x limit 50; Atlas Vector "
        "Search recommends at least 20x limit for accurate approximate (HNSW) results"
    ]
    search = mongo.parse_explain(doc(SEARCH))
    (advice,) = search.advice
    assert advice.startswith("$match on price, accommodates after $search (airbnb_search_index)")
    assert "compound.filter" in advice


def test_vector_pre_filter_fields_are_checked_against_the_index_definition():
    """The recorded hybrid plan with a pre-filter added to its ``$vectorSearch`` (the recorded
    query had none): ``genres`` is not a filter field of the recorded index, ``year`` is once
    the definition declares it.
    """
    d = copy.deepcopy(doc(HYBRID))
    union = next(st for st in d["stages"] if "$unionWith" in st)
    vs = union["$unionWith"]["pipeline"][0]["$vectorSearch"]
    vs["filter"] = {"$and": [{"genres": {"$in": ["Sci-Fi"]}}, {"year": {"$gte": 2000}}]}
    s = mongo.parse_explain(d)
    assert s.search[1]["filter_fields"] == ["genres", "year"]
    assert any("pre-filters on genres, year: each must be indexed" in a for a in s.advice)
    with_year = copy.deepcopy(HYBRID_VECTOR_INDEX)
    with_year["definition"]["fields"].append({"type": "filter", "path": "year"})
    defs = mongo.search_index_definitions([with_year])
    assert defs["movies_vector_index"]["filter_paths"] == ["year"]
    advice = mongo.search_advice(s, defs)
    assert any(
        a.startswith("$vectorSearch on movies_vector_index pre-filters on genres, not indexed")
        and '{type: "filter", path: "genres"}' in a
        for a in advice
    )
    assert not any("year," in a for a in advice)
    # An index that is not among the definitions is said so.
    other = mongo.search_index_definitions(
        read_documents(find_fixture("searchIndexes_datadog_list_search_indexes.json"))
    )
    assert any("not among the given search indexes" in a for a in mongo.search_advice(s, other))


def test_list_search_indexes_reply_is_read():
    defs = mongo.search_index_definitions(
        read_documents(find_fixture("searchIndexes_datadog_list_search_indexes.json"))
    )
    assert list(defs) == ["cast_fullplot_genres_title"]
    d = defs["cast_fullplot_genres_title"]
    assert d["type"] == "search" and d["filter_paths"] == [] and d["vector_paths"] == []
    assert d["definition"]["mappings"]["dynamic"] is True
    reply = {"cursor": {"firstBatch": [HYBRID_VECTOR_INDEX]}, "ok": 1}
    assert mongo.search_index_definitions(reply)["movies_vector_index"]["vector_paths"] == [
        "plot_embedding_voyage_3_large"
    ]


def test_cli_tree_and_search_indexes_option(capsys, tmp_path):
    from axon_lab.cli import main

    path = SHARED / HYBRID
    if not path.is_file():
        pytest.skip("../shared/fixtures/mongo is absent")
    rc = main(["mongo", "explain", str(path), "--tree"])
    out = capsys.readouterr().out
    assert rc == 0
    assert (
        "$_internalSearchMongotRemote movies_text_index, $vectorSearch movies_vector_index" in out
    )
    assert "advice: $vectorSearch on movies_vector_index: numCandidates 100 is 2x limit 50" in out
    assert "$unionWith embedded_movies returned=1028" in out
    assert (
        "$vectorSearch movies_vector_index returned=50 ms=25 numCandidates=100 limit=50 "
        "mongot_ms=2.95238" in out
    )
    assert "$_internalSearchIdLookup returned=50 docs=50 keys=50 ms=27" in out
    defs = tmp_path / "indexes.json"
    defs.write_text(json.dumps([HYBRID_VECTOR_INDEX]))
    assert main(["mongo", "explain", str(path), "--search-indexes", str(defs), "--json"]) == 0
    (s,) = json.loads(capsys.readouterr().out)
    assert s["search_indexes"] == ["movies_text_index", "movies_vector_index"]
    assert s["search"][1]["num_candidates"] == 100
    rc = main(["mongo", "explain", str(path), "--search-indexes", str(SHARED / SEARCH)])
    err = capsys.readouterr().err
    assert rc == 1 and "no search index definitions" in err
