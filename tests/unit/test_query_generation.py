"""Search queries from the model (search.queries): what small models really write, parsed; the
queries searched and fused with the question's ranking; `rag search` and `rag ask --queries N`
with the real packaged Gemma 3 270M through llama.cpp."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.errors import UsageError
from rag.query_generation import parse_queries

runner = CliRunner()
REPLIES = json.loads((Path(__file__).parent / "data" / "search_query_replies.json").read_text(encoding="utf-8"))
WARRANTY = "When does the warranty of the Brandt RO-350 reflow oven end?"


@pytest.mark.fast
@pytest.mark.parametrize(
    "record", REPLIES["replies"], ids=[f"{r['model']}-{n}" for n, r in enumerate(REPLIES["replies"])]
)
def test_real_replies_of_the_packaged_models_parse_to_their_queries(record):
    queries = parse_queries(record["reply"], record["question"], record["count"])
    assert queries == record["queries"]
    folded = record["question"].casefold()
    assert all(query.casefold() != folded and query.endswith(("?", "？")) for query in queries)


@pytest.mark.fast
def test_the_recorded_replies_hold_every_shape_small_models_write():
    """The data the test above reads keeps its worth: numbered lists, the question repeated, one
    query written twice, answers instead of queries, and replies with nothing usable."""
    replies = REPLIES["replies"]
    assert {r["model"] for r in replies} == {"qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"}
    assert any(r["reply"].lstrip().startswith("1.") and len(r["queries"]) >= 2 for r in replies)
    assert any(r["question"] in r["reply"] and r["queries"] for r in replies)  # the question repeated, others kept
    assert any("`minikube stop`" in r["reply"] and r["queries"] == [] for r in replies)  # an answer, not queries
    assert sum(1 for r in replies if r["queries"] == []) >= 5


@pytest.mark.fast
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


@pytest.mark.fast
def test_a_query_far_longer_than_the_question_is_a_run_on():
    long_line = "Why " + "really " * 60 + "?"
    assert parse_queries(f"1. {long_line}\n2. Where is the spare key?", "Where is the key?", 3) == ["Where is the spare key?"]


@pytest.mark.fast
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


def _search_json(settings, *arguments: str) -> object:
    result = runner.invoke(app, ["search", *arguments, "--json"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_search_with_queries_from_the_real_model_shows_them_and_fuses_their_hits(sample_index):
    settings, _ = sample_index
    written = _search_json(settings, WARRANTY, "--queries", "2", "-k", "3")
    assert set(written) == {"queries", "hits"}
    queries = written["queries"]
    assert 1 <= len(queries) <= 2, "Gemma 3 270M writes usable queries for this question"
    assert all(query.endswith("?") and query != WARRANTY for query in queries)
    assert written["hits"][0]["source"].endswith("brandt-ro350-manual.pdf")
    # the same fusion as the library's, over the same written queries
    expected = rag.retrieval.search(WARRANTY, settings, 3, generated=queries)
    assert [hit["chunk_id"] for hit in written["hits"]] == [hit.chunk_id for hit in expected]
    assert expected.queries == queries


def test_no_queries_is_the_search_it_always_was(sample_index):
    settings, _ = sample_index
    plain = _search_json(settings, WARRANTY, "-k", "3")
    assert _search_json(settings, WARRANTY, "-k", "3", "--queries", "0") == plain
    assert isinstance(plain, list) and [hit["chunk_id"] for hit in plain] == [
        hit.chunk_id for hit in rag.search(WARRANTY, settings, 3)
    ]
    assert rag.search(WARRANTY, settings, 3).queries == []


def test_verbose_search_lists_the_written_queries(sample_index):
    settings, _ = sample_index
    result = runner.invoke(app, ["search", WARRANTY, "--queries", "2", "-k", "1", "-v"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    queries = rag.search(WARRANTY, settings, 1, queries=2).queries
    assert result.stdout.startswith("Also searched for:\n" + "".join(f"  {query}\n" for query in queries))
    assert "brandt-ro350-manual.pdf" in result.stdout


def test_too_many_queries_is_a_one_line_error(sample_index):
    settings, _ = sample_index
    result = runner.invoke(app, ["search", WARRANTY, "--queries", "9"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 2
    assert "Error: Invalid value for '--queries': Input should be less than or equal to 5" in result.output
    with pytest.raises(UsageError, match=r"^queries must be between 0 and 5 \(the search queries the model writes\); got 9\.$"):
        rag.search(WARRANTY, settings, queries=9)
    with pytest.raises(UsageError, match=r"^queries must be between 0 and 5"):
        rag.retriever(settings).invoke(WARRANTY, queries=-1)


def test_the_retriever_takes_queries_per_call(sample_index):
    settings, _ = sample_index
    retriever = rag.retriever(settings, k=2)
    alone = retriever.invoke(WARRANTY)
    documents, queries = retriever.retrieve(WARRANTY, queries=2)
    assert queries and [doc.id for doc in retriever.invoke(WARRANTY, queries=2)] == [doc.id for doc in documents]
    assert [doc.id for doc in retriever.invoke(WARRANTY)] == [doc.id for doc in alone]  # the call's option only


def test_ask_with_queries_gives_them_in_json(sample_index):
    settings, _ = sample_index
    result = runner.invoke(
        app, ["ask", WARRANTY, "--queries", "2", "-k", "3", "--json"], env={"RAG_HOME": str(settings.home)}
    )
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["queries"] == rag.search(WARRANTY, settings, 3, queries=2).queries != []
    assert answer["sources"][0]["source"].endswith("brandt-ro350-manual.pdf")
