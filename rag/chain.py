"""The retrieval chain, made of LangChain runnables:

    question -> retriever -> fit sources to the context window -> number and format them
             -> prompt -> LLM -> output parser

`build_rag_chain` takes every part as an argument, so tests and other commands swap any of them.
The chain's output is a dict: question, language (the question's), sources (Documents), context,
prompt (PromptValue), retrieval_ms and answer; streaming it yields the answer token by token after
the rest. The prompt and what rag itself says (a decline) are in the question's language.
"""

from __future__ import annotations

import os
import time
from operator import itemgetter
from typing import Any, Callable, Generator, Iterator, cast

from langchain_core.callbacks import CallbackManagerForLLMRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import LLM, BaseLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.outputs import GenerationChunk
from langchain_core.prompts import BasePromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables.utils import AddableDict
from langchain_core.runnables import (
    Runnable,
    RunnableGenerator,
    RunnableLambda,
    RunnablePassthrough,
)

from ingest.embedding.embedders import model_tokenizer
from ingest.index.keywords import term_coverage
from ingest.scripts import primary_language, readability
from ingest.text import word_coverage
from rag.errors import RagError, UsageError
from rag.languages import DEFAULT as DEFAULT_LANGUAGE
from rag.languages import detect_language, reply_language, texts
from rag.retrieval import Mode, SearchHit, check_search_options, embedding_model, location_label, search
from rag.settings import MAX_SEARCH_QUERIES, Settings

NO_CONTEXT_ANSWER = texts(DEFAULT_LANGUAGE).no_context


class ContextTooLongError(RagError):
    pass


# What one call of the retriever may set for itself.
CALL_OPTIONS = ("k", "mode", "where", "paths", "queries")


class IndexRetriever(BaseRetriever):
    """The knowledge base as a LangChain retriever, with a relevance gate that asks both retrievers.

    A chunk is used when its meaning is close enough to the question (cosine `min_score`) or
    when it holds most of the question's words (`min_keyword_coverage`): a part number or a rare
    term found by the keyword index is relevant even where the embedding model sees little.
    A question the embedding model cannot read (`max_unread_share` of its letters or more, as
    all-MiniLM-L6-v2 reads Chinese or Korean, or in a language outside `cosine_languages`, as
    Japanese is for it) has a cosine that says nothing, close to every
    chunk in the same script: then only the words count, and a chunk holding `min_unread_coverage`
    of them is passed to the model, with the other chunks among the best `k` from its file; the
    model says when they do not answer the question. `mode`, `where` and `paths` are
    `search`'s (None: search.mode, no filter). `queries`: search queries like the question that
    `write_queries(question, count)` writes (default: the settings' model), each searched too; the
    gate still judges a chunk by the question. `rag.retriever` makes one with the settings' defaults.
    """

    settings: Settings
    k: int
    min_score: float
    min_keyword_coverage: float = 1.0
    min_unread_coverage: float = 1.0
    max_unread_share: float = 1.0
    cosine_languages: tuple[str, ...] = (DEFAULT_LANGUAGE,)
    mode: Mode | None = None
    where: dict[str, Any] | None = None
    paths: list[str] | None = None
    queries: int = 0
    write_queries: Callable[[str, int], list[str]] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, k: int | None = None, **search_options: Any) -> "IndexRetriever":
        """The retriever with the settings' k, queries and relevance gate; `search_options`: mode,
        where, paths, write_queries."""
        check_search_options(k, search_options.get("mode"))
        gate = settings.search
        return cls(
            settings=settings,
            k=k or gate.k,
            queries=gate.queries,
            min_score=gate.min_score,
            min_keyword_coverage=gate.min_keyword_coverage,
            min_unread_coverage=gate.min_unread_coverage,
            max_unread_share=gate.max_unread_share,
            cosine_languages=tuple(primary_language(language) for language in gate.cosine_languages),
            **search_options,
        )

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **options: Any
    ) -> list[Document]:
        """The chunks that pass the gate, at most `k`; `options` (k, mode, where, paths, queries)
        override the retriever's own for this call, as `retriever.invoke(query, k=1)` asks."""
        return self.retrieve(query, **options)[0]

    def retrieve(self, query: str, **options: Any) -> tuple[list[Document], list[str]]:
        """The chunks that pass the gate, and the search queries the model wrote like `query`."""
        if unknown := sorted(set(options) - set(CALL_OPTIONS)):
            raise UsageError(
                f"The retriever takes no option {', '.join(map(repr, unknown))}; it takes {', '.join(CALL_OPTIONS)}."
            )
        chosen = {"k": self.k, "mode": self.mode, "where": self.where, "paths": self.paths, "queries": self.queries, **options}
        generated = self._generated(query, chosen.pop("queries"))
        hits = search(query, self.settings, chosen.pop("k"), generated=generated, **chosen)
        # Keyword-mode hits have no cosine to judge: then the model need not even be looked at.
        readable = any(hit.similarity is not None for hit in hits) and self.readable(query)
        passed = [hit for hit in hits if self.relevant(query, hit, readable)]
        if not readable:
            # The words a chunk shares with the question find the page, but the chunk that answers
            # it (a command under the sentence that names the task) often repeats none of them.
            pages = {hit.source for hit in passed}
            passed = [hit for hit in hits if hit.source in pages]
        return [hit_to_document(hit) for hit in passed], hits.queries

    def _generated(self, query: str, count: int) -> list[str]:
        if not 0 <= count <= MAX_SEARCH_QUERIES:
            raise UsageError(f"queries must be between 0 and {MAX_SEARCH_QUERIES} (the search queries the model writes); got {count}.")
        if not count or not query.strip():
            return []
        if self.write_queries is not None:
            return self.write_queries(query, count)
        from rag.query_generation import write_queries

        return write_queries(query, count, self.settings)

    def readable(self, query: str) -> bool:
        """Whether the embedding model reads enough of `query`, in a language it learnt, for its cosine to mean something."""
        return (
            primary_language(detect_language(query)) in self.cosine_languages
            and readability(query, model_tokenizer(embedding_model(self.settings))).unread_share < self.max_unread_share
        )

    def relevant(self, query: str, hit: SearchHit, readable: bool | None = None) -> bool:
        """Whether `hit` may answer `query`; `readable`: `self.readable(query)`, when known."""
        if hit.similarity is None:
            return True
        readable = self.readable(query) if readable is None else readable
        if readable and hit.similarity >= self.min_score:
            return True
        matched_words = hit.explain is not None and hit.explain.keyword_rank is not None
        if readable:
            return matched_words and word_coverage(query, hit.text) >= self.min_keyword_coverage
        return matched_words and term_coverage(query, hit.text) >= self.min_unread_coverage


def hit_to_document(hit: SearchHit) -> Document:
    return Document(
        page_content=hit.body,
        id=hit.chunk_id,
        metadata={"source": hit.source, "score": hit.score, "similarity": hit.similarity, "rank": hit.rank, **hit.location},
    )


def source_label(document: Document, path: str | None = None, *, in_prompt: bool = False, language: str = DEFAULT_LANGUAGE) -> str:
    """'path (page 2, § Heading, lines 3-9)' for a retrieved chunk; `path`: its path as shown;
    `in_prompt`: as the answer prompt labels it; else in `language`'s words."""
    path = document.metadata["source"] if path is None else path
    where = location_label(document.metadata, in_prompt=in_prompt, language=language)
    return f"{path} ({where})" if where else path


def format_context(sources: list[Document]) -> str:
    """The numbered sources of a prompt, each labelled by its path under the folder they share.

    Where the documents live (a user's home, a checkout's folder) is not in the prompt: it would
    cost tokens, show the model a user's folder names and move a greedy answer when the folder moves.
    """
    return "\n\n".join(
        f"[{number}] {source_label(doc, path, in_prompt=True)}\n{doc.page_content}"
        for number, (doc, path) in enumerate(zip(sources, prompt_paths(sources)), start=1)
    )


def prompt_paths(sources: list[Document]) -> list[str]:
    """Each source's path as the prompt shows it: under the folder the sources share."""
    if not sources:
        return []
    paths = [doc.metadata["source"] for doc in sources]
    shared = os.path.dirname(paths[0]) if len(set(paths)) == 1 else os.path.commonpath(paths)
    return [os.path.relpath(path, shared) for path in paths]


def fit_sources(
    sources: list[Document],
    question: str,
    prompt: BasePromptTemplate,
    count_tokens: Callable[[str], int],
    budget: int,
) -> list[Document]:
    """The leading sources, in rank order, whose prompt still fits in `budget` tokens."""
    # Other parts of the prompt (the quoted sentences) are left empty here: `budget` leaves room for them.
    blanks = {name: "" for name in prompt.input_variables if name not in ("context", "question")}

    def prompt_tokens(kept: list[Document]) -> int:
        return count_tokens(prompt.format_prompt(context=format_context(kept), question=question, **blanks).to_string())

    if prompt_tokens([]) > budget:
        raise ContextTooLongError(
            f"The question is too long for the model's context window ({budget} tokens after the answer "
            "budget); shorten it or raise llm.n_ctx."
        )
    kept: list[Document] = []
    for source in sources:
        if prompt_tokens(kept + [source]) > budget:
            break
        kept.append(source)
    return kept


def _timed(retriever: BaseRetriever) -> Runnable:
    def retrieve(question: str) -> dict[str, Any]:
        started = time.perf_counter()
        if isinstance(retriever, IndexRetriever):  # it also tells what else it searched for
            documents, queries = retriever.retrieve(question)
        else:
            documents, queries = retriever.invoke(question), []
        return {"sources": documents, "queries": queries, "retrieval_ms": (time.perf_counter() - started) * 1000}

    return RunnableLambda(retrieve, name="retrieve")


def build_rag_chain(
    retriever: BaseRetriever,
    prompt: Callable[[str], BasePromptTemplate],
    llm: Runnable,
    fit: Callable[[list[Document], str, str], list[Document]] = lambda sources, question, language: sources,
    parser: Runnable | None = None,
    quotes: Callable[[str, list[Document]], str] | None = None,
    decline: Callable[[str, list[Document], str], str | None] = lambda question, sources, language: None,
    writing: Callable[[str, list[Document]], dict[str, Any]] = lambda language, sources: {},
) -> Runnable:
    """question dict (and the language to answer in, where not `reply_language`'s) -> dict with
    language, sources, prompt and the (streamed) answer.

    `prompt(language)` is the prompt for a question in that language; `quotes(question, sources)`
    fills its {quotes}, where it has one; `decline(question, sources, language)` may answer instead
    of the model (why the sources cannot answer), or return None; `writing(language, sources)` are
    the arguments the model generates an answer in that language from those sources with."""
    parse = parser or StrOutputParser()

    def answer(parts: Iterator[dict[str, Any]]) -> Iterator[AddableDict]:
        # A generator, not a RunnableAssign: that would hand every token across threads.
        state = AddableDict()
        for part in parts:  # the previous step streams its dict in pieces
            state.update(part)
        yield state
        if not state["sources"]:
            yield AddableDict(answer=texts(state["language"]).no_context)
            return
        if declined := decline(state["question"], state["sources"], state["language"]):
            yield AddableDict(declined=True, answer=declined)
            return
        arguments = writing(state["language"], state["sources"])
        generate = (llm.bind(**arguments) if arguments else llm) | parse
        for token in generate.stream(state["prompt"]):
            yield AddableDict(answer=token)

    return (
        RunnablePassthrough.assign(retrieved=itemgetter("question") | _timed(retriever))
        | RunnableLambda(_unpack_retrieval)
        | RunnablePassthrough.assign(language=_reply_language)
        | RunnablePassthrough.assign(sources=lambda state: fit(state["sources"], state["question"], state["language"]))
        | RunnablePassthrough.assign(context=lambda state: format_context(state["sources"]))
        | RunnablePassthrough.assign(quotes=lambda state: quotes(state["question"], state["sources"]) if quotes else "")
        | RunnablePassthrough.assign(prompt=lambda state: prompt(state["language"]).invoke(state))
        | RunnableGenerator(answer, name="answer")
    )


def _unpack_retrieval(state: dict[str, Any]) -> dict[str, Any]:
    retrieved = state["retrieved"]
    return {"question": state["question"], "language": state.get("language"), **retrieved}


def _reply_language(state: dict[str, Any]) -> str:
    return state["language"] or reply_language(state["question"], [source.page_content for source in state["sources"]])


def first_line(chunks: Iterator[str]) -> Iterator[str]:
    """Text up to the end of its first non-blank line: all a base model's answer is worth."""
    started = False
    for chunk in chunks:
        if not started:
            chunk = chunk.lstrip()
            started = bool(chunk)
        line, newline, _ = chunk.partition("\n")
        if line:
            yield line
        if newline and started:
            return


class FirstLineLLM(LLM):
    """A text LLM whose generation ends with the first non-blank line it writes.

    A stop sequence "\n" cannot do this (a model that starts with a newline would stop before
    saying anything), and a parser after the LLM cannot stop it: LangChain reads a step's whole
    input even when the step is done. Closing the inner stream here stops the model itself.
    """

    inner: BaseLLM

    @property
    def _llm_type(self) -> str:
        return f"first-line-{self.inner._llm_type}"

    def _call(self, prompt: str, stop: list[str] | None = None, run_manager=None, **kwargs: Any) -> str:
        return "".join(self._first_line(prompt, stop, **kwargs))

    def _stream(
        self, prompt: str, stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
    ) -> Iterator[GenerationChunk]:
        said_something = False
        for text in self._first_line(prompt, stop, **kwargs):
            chunk = GenerationChunk(text=text)
            if run_manager:
                run_manager.on_llm_new_token(text, chunk=chunk)
            said_something = True
            yield chunk
        if not said_something:  # a model that wrote only blank lines gave an empty answer, not an error
            yield GenerationChunk(text="")

    def _first_line(self, prompt: str, stop: list[str] | None, **kwargs: Any) -> Iterator[str]:
        stream = cast(Generator[str, None, None], self.inner.stream(prompt, stop=stop, **kwargs))
        try:
            yield from first_line(stream)
        finally:
            stream.close()


def build_condense_chain(prompt: BasePromptTemplate, llm: Runnable) -> Runnable:
    """{question, history} -> a standalone question."""
    return prompt | llm | StrOutputParser() | RunnableLambda(lambda text: text.strip())
