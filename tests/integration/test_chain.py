"""The chain's parts swap freely: here langchain-core's shipped fake LLM stands in for the model,
so these tests pin the chain's own behaviour (retrieval, fitting, streaming order, parsing)."""

from __future__ import annotations

import pytest
from langchain_core.documents import Document
from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.language_models.fake import FakeListLLM, FakeStreamingListLLM
from langchain_core.retrievers import BaseRetriever

from rag.chain import IndexRetriever, first_line, build_rag_chain, fit_sources, format_context, source_label
from rag.prompting import text_prompt
from tests.conftest import SAMPLE_NOTES


@pytest.mark.fast
def testfirst_line_skips_leading_blank_lines_and_stops_at_the_next_newline():
    assert list(first_line(iter(["\n", "\n Hello", " world\nmore", "never read"]))) == ["Hello", " world"]
    assert list(first_line(iter(["  ", "\n"]))) == []


def test_chain_streams_sources_before_the_answer_tokens(sample_index):
    settings, _ = sample_index
    retriever = IndexRetriever(settings=settings, k=2, min_score=0.3)
    llm = FakeStreamingListLLM(responses=["It ends on 4 October 2025 [1]."])
    chain = build_rag_chain(retriever, lambda language: text_prompt("llama2", "qa", language), llm)
    chunks = list(chain.stream({"question": "When does the Brandt RO-350 warranty end?"}))
    first_answer = next(i for i, chunk in enumerate(chunks) if "answer" in chunk)
    before = {key for chunk in chunks[:first_answer] for key in chunk}
    assert {"language", "sources", "prompt", "context", "retrieval_ms"} <= before
    assert "".join(c["answer"] for c in chunks if "answer" in c) == "It ends on 4 October 2025 [1]."
    state = {k: v for c in chunks for k, v in c.items() if k != "answer"}
    assert state["sources"][0].metadata["source"] == str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
    assert state["prompt"].to_string().startswith("[INST] <<SYS>>\n")
    assert str(SAMPLE_NOTES) not in state["prompt"].to_string()


class FakeRetriever(BaseRetriever):
    """The same pages for every question."""

    pages: list[str]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return [Document(page_content=page, metadata={"source": f"/notes/{number}.md"}) for number, page in enumerate(self.pages)]


class RecordingFakeLLM(FakeListLLM):
    """FakeListLLM that keeps the generation arguments of each call."""

    arguments: list[dict] = []

    def _call(self, prompt, stop=None, run_manager=None, **kwargs):
        self.arguments.append({"stop": stop, **kwargs})
        return super()._call(prompt, stop, run_manager, **kwargs)


@pytest.mark.fast
@pytest.mark.parametrize("page,language", [("部署完成後，Pod 需要等待大約三十秒。", "zh-Hant"), ("部署完成后，Pod 需要等待大约三十秒。", "zh")])
def test_the_model_answers_with_the_arguments_for_the_language_its_sources_decide(page, language):
    asked = []

    def writing(language: str, sources: list[Document]) -> dict:
        asked.append((language, [source.page_content for source in sources]))
        return {"kept_to": language}

    llm = RecordingFakeLLM(responses=["三十秒。"], arguments=[])
    chain = build_rag_chain(FakeRetriever(pages=[page]), lambda language: text_prompt("plain", "qa", language), llm, writing=writing)
    state = {k: v for chunk in chain.stream({"question": "Pod 要等多久？"}) for k, v in chunk.items() if k != "answer"}
    assert state["language"] == language and asked == [(language, [page])]
    assert llm.arguments == [{"stop": None, "kept_to": language}]


@pytest.mark.fast
def test_the_prompt_labels_sources_by_their_path_under_the_folder_they_share():
    def chunk(path: str, **location: object) -> Document:
        return Document(page_content="text", metadata={"source": path, **location})

    manual, runbook = "/home/ana/notes/work/vendors/manual.pdf", "/home/ana/notes/home/runbook.md"
    assert format_context([chunk(manual, page=2), chunk(runbook)]) == (
        "[1] work/vendors/manual.pdf (page 2)\ntext\n\n[2] home/runbook.md\ntext"
    )
    assert format_context([chunk(manual, page=2), chunk(manual, page=3)]) == (
        "[1] manual.pdf (page 2)\ntext\n\n[2] manual.pdf (page 3)\ntext"
    )
    assert format_context([]) == ""


@pytest.mark.fast
def test_a_single_line_is_line_n_for_the_reader_and_a_range_in_the_prompt_as_measured():
    runbook = "/home/ana/notes/home/runbook.md"

    def chunk(**location: object) -> Document:
        return Document(page_content="text", metadata={"source": runbook, **location})

    one_line = chunk(heading="Keys", start_line=5, end_line=5)
    assert source_label(one_line, "home/runbook.md") == "home/runbook.md (§ Keys, line 5)"
    assert format_context([one_line]) == "[1] runbook.md (§ Keys, lines 5-5)\ntext"
    assert source_label(chunk(start_line=5, end_line=9)) == f"{runbook} (lines 5-9)"


def test_fit_keeps_sources_in_rank_order_until_the_budget(sample_index):
    settings, _ = sample_index
    sources = IndexRetriever(settings=settings, k=5, min_score=0.0).invoke("reflow oven")
    prompt = text_prompt("plain", "qa")
    words = lambda text: len(text.split())  # noqa: E731 - any counter will do for the rule itself
    full = words(prompt.format(context=format_context(sources[:3]), question="q"))
    kept = fit_sources(sources, "q", prompt, words, budget=full)
    assert kept == sources[:3]
