"""Index advice by Equality → Sort → Range, and the ``$indexStats`` review."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from axon_lab import mongo
from axon_lab.mongo.files import find_fixture, read_documents


def test_the_guides_contexts_query_gets_the_guides_index():
    a = mongo.contexts_advice()
    assert a.key == [("workspaceId", 1), ("tier", 1), ("confidence", -1)]
    assert a.key_text == "{ workspaceId: 1, tier: 1, confidence: -1 }"
    assert a.name == "workspaceId_1_tier_1_confidence_-1"
    assert (a.equality, a.sort, a.range) == (["workspaceId", "tier"], [("confidence", -1)], [])
    assert a.needed and a.served_by is None
    assert "Equality on workspaceId, tier first" in a.reason
    assert "no blocking in-memory SORT" in a.reason and "(Equality → Sort → Range)" in a.reason


def test_existing_indexes_serve_it_or_become_redundant_prefixes():
    existing = [
        {"name": "_id_", "key": {"_id": 1}},
        {"name": "workspaceId_1", "key": {"workspaceId": 1}},
        {"name": "ws_tier", "key": {"workspaceId": 1, "tier": 1}},
    ]
    a = mongo.contexts_advice(existing)
    assert a.needed and a.redundant_after == ["workspaceId_1", "ws_tier"]
    # Equality fields in any order, sort direction reversed as a whole, extra trailing key.
    served = mongo.contexts_advice(
        {
            "workspace_tier_confidence_idx": {
                "key": [("tier", 1), ("workspaceId", -1), ("confidence", 1), ("content", 1)]
            }
        }
    )
    assert served.served_by == "workspace_tier_confidence_idx" and not served.needed
    # Sort key before the equality fields does not serve it.
    assert (
        mongo.contexts_advice([{"confidence": -1, "workspaceId": 1, "tier": 1}]).served_by is None
    )
    # mongod's planSummary text is understood as a key.
    assert mongo.advise_index({"a": 1}, None, None, ["{ a: 1, b: -1 }"]).served_by == "a_1_b_-1"
    # Unique indexes are kept even when they are a prefix.
    u = mongo.contexts_advice([{"name": "u", "key": {"workspaceId": 1}, "unique": True}])
    assert u.redundant_after == []


def test_esr_order_with_ranges_regex_in_and_or():
    a = mongo.advise_index({"age": {"$gt": 63}, "status": "A"}, {"name": 1})
    assert a.key == [("status", 1), ("name", 1), ("age", 1)]
    assert "range field age last" in a.reason
    b = mongo.advise_index({"$and": [{"w": "x"}, {"score": {"$gte": 1, "$lt": 5}}]})
    assert b.key == [("w", 1), ("score", 1)]
    c = mongo.advise_index({"tags": {"$in": ["a", "b"]}, "name": {"$regex": "x"}}, [("ts", -1)])
    assert c.key == [("tags", 1), ("ts", -1), ("name", 1)]
    assert any("$in" in n for n in c.notes) and any("unanchored $regex" in n for n in c.notes)
    d = mongo.advise_index({"$or": [{"a": 1}, {"b": 2}]})
    assert d.key == [] and not d.needed and "$or clauses" in d.notes[0]
    assert "no field" in d.reason
    # A sort on an equality field is constant: not repeated in the key.
    e = mongo.advise_index({"w": "x"}, {"w": 1, "c": -1})
    assert e.key == [("w", 1), ("c", -1)]
    # Range field that is also the sort key serves both, once.
    f = mongo.advise_index({"w": "x", "c": {"$gt": 0.5}}, {"c": -1})
    assert f.key == [("w", 1), ("c", -1)]


def test_covering_projection():
    a = mongo.advise_index({"color": "Red"}, {"brand": -1}, {"_id": 0, "color": 1, "brand": 1})
    assert a.key == [("color", 1), ("brand", -1)] and a.covers_projection
    assert not mongo.advise_index({"color": "Red"}, None, {"color": 1}).covers_projection


fields = st.sampled_from(["a", "b", "c", "d", "e"])


@given(
    eq=st.lists(fields, unique=True, max_size=3),
    rng=st.lists(fields, unique=True, max_size=3),
    srt=st.lists(st.tuples(fields, st.sampled_from([1, -1])), unique_by=lambda t: t[0], max_size=2),
)
def test_advised_key_always_serves_its_own_shape(eq, rng, srt):
    flt = {f: "v" for f in eq}
    flt.update({f: {"$gt": 1} for f in rng if f not in eq})
    a = mongo.advise_index(flt, srt)
    fields_in_key = [k for k, _ in a.key]
    assert len(fields_in_key) == len(set(fields_in_key))  # no field twice
    assert fields_in_key[: len(a.equality)] == a.equality
    if a.key:
        assert mongo.advise_index(flt, srt, existing=[a.key_dict]).served_by is not None


def test_index_stats_of_recorded_replies():
    frame = mongo.index_stats_report(
        {
            "bar": read_documents(find_fixture("indexStats_datadog_bar.json")),
            "foo": read_documents(find_fixture("indexStats_datadog_foo.json")),
        }
    )
    assert frame[["collection", "name", "ops"]].values.tolist() == [
        ["bar", "_id_", 12],
        ["foo", "_id_", 1243],
    ]
    assert frame.since.tolist() == [
        "2020-09-16T13:14:05.088+00:00",
        "2020-09-16T13:14:04.923+00:00",
    ]
    assert frame.hosts.tolist() == ["07611b1ad97a:27018"] * 2
    assert not frame.unused.any() and frame.redundant_with.isna().all()
    assert frame.advice.tolist() == ["keep", "keep"]


def _ix(name, key, ops, **spec):
    return {
        "name": name,
        "key": key,
        "host": "h:27017",
        "accesses": {"ops": ops, "since": {"$date": "2024-01-01T00:00:00Z"}},
        "spec": {"key": key, **spec},
    }


def test_index_stats_unused_and_redundant_prefixes():
    docs = [
        _ix("_id_", {"_id": 1}, 0),
        _ix("workspaceId_1", {"workspaceId": -1}, 40),
        _ix("workspace_tier_confidence_idx", {"workspaceId": 1, "tier": 1, "confidence": -1}, 900),
        _ix("tier_1", {"tier": 1}, 0),
        _ix("email_1", {"email": 1}, 0, unique=True),
        _ix("email_1_name_1", {"email": 1, "name": 1}, 3),
    ]
    # A sharded cluster reports one document per shard: operations add up.
    docs.append({**_ix("tier_1", {"tier": 1}, 0), "shard": "shard02"})
    f = mongo.index_stats_report({"contexts": {"cursor": {"firstBatch": docs}}}).set_index("name")
    assert f.loc["workspaceId_1", "redundant_with"] == "workspace_tier_confidence_idx"
    assert f.loc["workspaceId_1", "advice"] == "drop: prefix of workspace_tier_confidence_idx"
    assert bool(f.loc["tier_1", "unused"]) and f.loc["tier_1", "hosts"] == "h:27017, shard02"
    assert f.loc["tier_1", "advice"].startswith("review: unused since 2024-01-01")
    assert not f.loc["_id_", "unused"]  # never flag _id_
    assert pd.isna(f.loc["email_1", "redundant_with"])  # unique: enforces a constraint
    assert f.loc["workspace_tier_confidence_idx", "advice"] == "keep"


@pytest.mark.parametrize(
    ("short", "long", "expected"),
    [
        ([("a", 1)], [("a", -1), ("b", 1)], True),
        ([("a", 1), ("b", -1)], [("a", -1), ("b", 1), ("c", 1)], True),
        ([("a", 1), ("b", 1)], [("a", 1), ("b", -1)], False),
        ([("b", 1)], [("a", 1), ("b", 1)], False),
        ([("a", "hashed")], [("a", "hashed"), ("b", 1)], False),
    ],
)
def test_is_prefix(short, long, expected):
    assert mongo.is_prefix(short, long) is expected
