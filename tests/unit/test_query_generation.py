"""Search queries from the model (search.queries): what small models really write, parsed, and how
the queries' rankings are fused with the question's (tests/integration/test_query_generation.py runs
them through the real model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rag.query_generation import parse_queries

REPLIES = json.loads((Path(__file__).parents[1] / "data" / "search_query_replies.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    "record", REPLIES["replies"], ids=[f"{r['model']}-{n}" for n, r in enumerate(REPLIES["replies"])]
)
def test_real_replies_of_the_packaged_models_parse_to_their_queries(record):
    queries = parse_queries(record["reply"], record["question"], record["count"])
    assert queries == record["queries"]
    folded = record["question"].casefold()
    assert all(query.casefold() != folded and query.endswith(("?", "？")) for query in queries)


def test_the_recorded_replies_hold_every_shape_small_models_write():
    """The data the test above reads keeps its worth: numbered lists, the question repeated, one
    query written twice, answers instead of queries, and replies with nothing usable."""
    replies = REPLIES["replies"]
    assert {r["model"] for r in replies} == {"qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"}
    assert any(r["reply"].lstrip().startswith("1.") and len(r["queries"]) >= 2 for r in replies)
    assert any(r["question"] in r["reply"] and r["queries"] for r in replies)  # the question repeated, others kept
    assert any("`minikube stop`" in r["reply"] and r["queries"] == [] for r in replies)  # an answer, not queries
    assert sum(1 for r in replies if r["queries"] == []) >= 5


@pytest.mark.parametrize(
    "reply,expected",
    [
        ("1. Where is the spare key?\n2) Who has a key?\n(3) Is there a key box?", ["Where is the spare key?", "Who has a key?", "Is there a key box?"]),
        ("- **\"Where is the spare key?\"**\n* 'Who has a key?'\n• “Is there a key box?”", ["Where is the spare key?", "Who has a key?", "Is there a key box?"]),
        ("Here are three search queries:\n\n1. Where is the spare key?", ["Where is the spare key?"]),
        ("1. Where is the spare key? 2. Who has a key? 3. Is there a key box?", ["Where is the spare key?", "Who has a key?", "Is there a key box?"]),
        ("Query 1: Where is the spare key?\nQuery 2: WHERE IS THE SPARE KEY?", ["Where is the spare key?"]),
        ("1. Where is the key?\n2. where is the key ?\n3. Where is the spare key?", ["Where is the spare key?"]),
        ("1．钥匙放在哪里？\n2、备用钥匙在哪里？", ["钥匙放在哪里？", "备用钥匙在哪里？"]),
        ("The key is under the mat.", []),
        ("1. 2. 3. 4. 5. 6. 7. 8.", []),
        ("", []),
        ("1000000000000000000000000000", []),
        ("1. A?\n2. B?\n3. C?\n4. D?", ["A?", "B?", "C?"]),
    ],
)
def test_the_shapes_of_a_reply(reply, expected):
    assert parse_queries(reply, "Where is the key?", 3) == expected


def test_a_query_far_longer_than_the_question_is_a_run_on():
    long_line = "Why " + "really " * 60 + "?"
    assert parse_queries(f"1. {long_line}\n2. Where is the spare key?", "Where is the key?", 3) == ["Where is the spare key?"]


def test_the_question_outweighs_each_of_its_other_wordings():
    from rag.retrieval import Candidate, fuse_queries
    from rag.settings import SearchSettings

    def ranking(*scores: tuple[str, float]) -> dict[str, Candidate]:
        return {chunk_id: Candidate(chunk_id, fused_score=score) for chunk_id, score in scores}

    question, first, second = ranking(("a", 1.0), ("b", 0.0)), ranking(("b", 1.0), ("c", 0.0)), ranking(("c", 1.0), ("b", 0.5))
    # min-max within each ranking, then the question's weighs 1 and each other wording query_weight
    fused = fuse_queries([question, first, second], "hybrid", SearchSettings(query_weight=0.5))
    assert fused == pytest.approx({"a": 1.0, "b": 0.0 + 0.5 + 0.0, "c": 0.0 + 0.5})
    alone = fuse_queries([question, first], "hybrid", SearchSettings(query_weight=0.5))
    assert max(alone, key=alone.__getitem__) == "a"  # a chunk only the question ranks first stays first
    rrf = fuse_queries([question, first], "hybrid", SearchSettings(fusion="rrf", rrf_k=60, query_weight=0.5))
    assert rrf == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 0.5 / 61, "c": 0.5 / 62})

