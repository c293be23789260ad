"""What the CLI does, from Python: resumable batch jobs (`rag.run_job`), a chat (`rag.Conversation`),
and the knowledge base as LangChain pieces (`rag.retriever`, `rag.embeddings`) in a chain of one's own.

Batch jobs run the real packaged Gemma 3 270M; the chat and the chain use langchain-core's fake
LLM, so that what the model says, and so what is asked next, is known."""

from __future__ import annotations

import json
import re

import pytest
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import InMemoryVectorStore
from pydantic import Field

import rag
from rag.errors import UsageError
from tests.helpers import INVOICES, write_files
from tests.conftest import REPO, make_settings

DOCUMENTS = {
    **INVOICES,
    "lab/oven.md": """# Reflow oven

The Brandt RO-350 reflow oven was bought in March 2023. Its warranty ends on 31 March 2026;
after that, repairs are billed by the hour.
""",
}
QUESTION = "Who is the billing contact for invoice INV-2024-031?"
FOLLOW_UP = "And what is the amount due on it?"
STANDALONE = "What is the amount due on invoice INV-2024-031?"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(settings, folder): the small corpus ingested into its own index; settings for quick generation."""
    folder = tmp_path_factory.mktemp("library-corpus")
    write_files(folder, DOCUMENTS)
    settings = make_settings(
        tmp_path_factory.mktemp("library-home"),
        llm={"n_ctx": 1024, "max_tokens": 32},
        batch={"max_tokens": 48, "temperature": 0.0},
    )
    rag.ingest([folder], settings)
    return settings, folder


class RecordingLLM(FakeListLLM):
    """langchain-core's fake LLM, keeping every prompt it was given."""

    prompts: list[str] = Field(default_factory=list)

    def _call(self, prompt, stop=None, run_manager=None, **kwargs):
        self.prompts.append(prompt)
        return super()._call(prompt, stop, run_manager, **kwargs)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- rag.run_job ----------------------------------------------------------------------------------


def test_run_job_continues_a_stopped_job_and_does_each_item_exactly_once(corpus, tmp_path):
    settings, folder = corpus
    out = tmp_path / "dates.jsonl"
    schema = rag.fields_schema("date:str")
    invoices = sorted(str(folder / name) for name in DOCUMENTS if name.startswith("invoices/"))
    everything = sorted(str(folder / name) for name in DOCUMENTS)

    def plan():
        job = rag.extract(schema, [str(folder)], settings)
        job.on_notice = None
        return job

    seen: list[str] = []

    def stop_after_one(record) -> None:
        seen.append(record.key)
        raise KeyboardInterrupt  # as Ctrl-C would, right after the first record is written

    with pytest.raises(KeyboardInterrupt):
        rag.run_job(plan(), out, on_record=stop_after_one)
    assert [record["source"] for record in lines(out)] == seen and len(seen) == 1

    started: list[int] = []
    result = rag.run_job(plan(), out, on_start=started.append, on_record=lambda record: seen.append(record.key))
    assert started == [1]
    assert sorted(seen) == everything, "every item exactly once, over both runs"
    assert sorted(record["source"] for record in lines(out)) == everything
    assert (result.kind, result.total, result.written, result.failed, result.done_before) == ("extract", 3, 2, 0, 1)
    assert result.ok and result.out == out and result.errors is None and result.seconds > 0
    assert result.stats is not None and result.stats.calls >= 2 and result.stats.tokens > 0

    finished = out.read_text()
    again = rag.run_job(plan(), out, on_record=lambda record: seen.append(record.key))
    assert (again.written, again.failed, again.done_before, again.stats) == (0, 0, 3, None)
    assert out.read_text() == finished and len(seen) == 3, "a finished job has nothing left to do"

    subset = rag.extract(schema, [str(folder / "invoices")], settings)
    subset.on_notice = None
    with pytest.raises(UsageError, match=r"belongs to a job started with other settings \(selection\)"):
        rag.run_job(subset, out)
    restarted = rag.run_job(subset, out, restart=True)
    assert (restarted.written, restarted.done_before) == (2, 0)
    assert sorted(record["source"] for record in lines(out)) == invoices


def test_run_job_takes_the_format_from_the_file_or_as_given(corpus, tmp_path):
    settings, folder = corpus
    source = str(folder / "invoices/nordic-2024-04.md")
    summary = rag.run_job(rag.summarize([source], settings), tmp_path / "summary.txt", format="md")
    assert summary.written == 1
    assert (tmp_path / "summary.txt").read_text().startswith(f"## {source}\n\n")
    with pytest.raises(UsageError, match="rag summarize writes jsonl or md, not 'csv'"):
        rag.run_job(rag.summarize([source], settings), tmp_path / "summary.csv")
    assert not (tmp_path / "summary.csv").exists()


# -- rag.Conversation -----------------------------------------------------------------------------


def test_a_conversation_keeps_its_history_and_condenses_follow_ups(corpus):
    settings, folder = corpus
    llm = RecordingLLM(
        responses=["Maria Lind [1].", STANDALONE, "1250 EUR [1].", "Which company sent invoice INV-2024-031?", "Acme Tools [1]."]
    )
    chat = rag.Conversation(rag.Assistant(settings, llm=llm))
    acme = str(folder / "invoices/acme-2024-03.md")

    first = chat.ask(QUESTION)
    assert first.answer == "Maria Lind [1]." and first.standalone_question is None
    assert chat.history == [(QUESTION, "Maria Lind [1].")]
    assert chat.last_sources and chat.last_sources[0].metadata["source"] == acme

    stream = chat.stream(FOLLOW_UP)
    assert stream.standalone_question == STANDALONE  # the follow-up, rewritten with the history
    condense_prompt = llm.prompts[1]
    assert QUESTION in condense_prompt and "Maria Lind [1]." in condense_prompt and FOLLOW_UP in condense_prompt
    assert "".join(stream) == "1250 EUR [1]." == stream.answer.answer
    assert STANDALONE in llm.prompts[2]  # what was searched for and asked
    assert chat.history == [(QUESTION, "Maria Lind [1]."), (FOLLOW_UP, "1250 EUR [1].")]
    assert chat.last_sources == stream.answer.sources and chat.last_sources[0].metadata["source"] == acme

    stopped = iter(chat.stream("Who sent it?"))
    assert next(stopped)
    stopped.close()  # an answer stopped part way is no turn of the conversation
    assert len(chat.history) == 2

    chat.reset()
    assert chat.history == [] and chat.last_sources == []
    assert chat.stream(QUESTION).standalone_question is None  # nothing to condense with any more


# -- the knowledge base as LangChain pieces ------------------------------------------------------


def documented_chain_snippet() -> str:
    text = (REPO / "docs" / "python-api.md").read_text()
    [snippet] = [block for block in re.findall(r"```python\n(.*?)```", text, re.S) if "rag.retriever(" in block]
    return snippet


def test_the_documented_chain_runs_on_the_retriever_and_embeddings(corpus, capsys):
    settings, folder = corpus
    llm = RecordingLLM(responses=["On 31 March 2026."])
    namespace = {"rag": rag, "settings": settings, "llm": llm}
    exec(documented_chain_snippet(), namespace)
    printed = capsys.readouterr().out
    assert "On 31 March 2026." in printed
    [prompt] = llm.prompts
    assert "Its warranty ends on 31 March 2026" in prompt  # the retriever's chunk reached the model
    assert isinstance(namespace["retriever"], rag.IndexRetriever) and isinstance(namespace["retriever"], BaseRetriever)


def test_the_retriever_has_searchs_options_and_the_relevance_gate(corpus):
    settings, folder = corpus
    retriever = rag.retriever(settings)
    assert (retriever.k, retriever.min_score, retriever.mode) == (settings.search.k, settings.search.min_score, None)
    invoices = rag.retriever(settings, k=5, mode="keyword", paths=[str(folder / "invoices/*")])
    documents = invoices.invoke("invoice amount due")
    assert {doc.metadata["source"] for doc in documents} == {
        str(folder / name) for name in DOCUMENTS if name.startswith("invoices/")
    }
    oven = str(folder / "lab/oven.md")
    found = rag.retriever(settings, where={"source": oven}).invoke("When does the oven warranty end?")
    assert found and {doc.metadata["source"] for doc in found} == {oven}
    assert rag.retriever(settings).invoke("What is the capital of Peru?") == []  # nothing relevant: nothing


def test_the_embeddings_are_a_langchain_embeddings_of_the_index_model(corpus):
    settings, folder = corpus
    embeddings = rag.embeddings(settings)
    assert embeddings is rag.embeddings(settings)  # loaded once, shared with search
    vector = embeddings.embed_query("reflow oven")
    assert len(vector) == rag.status(settings).embedding_dimension
    assert abs(sum(x * x for x in vector) - 1) < 1e-4
    store = InMemoryVectorStore.from_texts(list(DOCUMENTS.values()), embedding=embeddings)
    [best] = store.as_retriever(search_kwargs={"k": 1}).invoke("When does the oven warranty end?")
    assert best.page_content == DOCUMENTS["lab/oven.md"]
