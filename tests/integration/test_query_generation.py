"""Search queries from the model (search.queries) on the sample index: `rag search` and `rag ask
--queries N` with the real packaged Gemma 3 270M through llama.cpp, the written queries searched and
fused with the question's ranking."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.errors import UsageError

runner = CliRunner()
WARRANTY = "When does the warranty of the Brandt RO-350 reflow oven end?"


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
