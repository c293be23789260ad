"""Answer questions from the knowledge base with the configured local model.

    assistant = Assistant(settings)
    stream = assistant.stream("When does the oven warranty end?")
    for token in stream:
        print(token, end="")
    print(stream.answer.sources)
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel, BaseLLM
from langchain_core.prompts import BasePromptTemplate

from ingest.index import Index
from ingest.index.keywords import cjk_terms
from ingest.scripts import primary_language
from ingest.text import fold, stems
from rag.backends import backend_errors, context_window, count_tokens, create_llm, writing_in
from rag.chain import FirstLineLLM, IndexRetriever, build_condense_chain, build_rag_chain, fit_sources, prompt_paths
from rag.languages import DEFAULT as DEFAULT_LANGUAGE
from rag.languages import possible_languages, quotes_headers, run_on_stops, texts
from rag.prompting import select_prompt
from rag.query_generation import QueryWriter
from rag.evidence import Evidence, expected_kind, quote_evidence
from rag.grounding import CITATION, QUOTE_LINE, Grounding, check_grounding, unmentioned
from rag.retrieval import embed_texts, location_of, mentioned_anywhere, opening_names
from rag.errors import UsageError
from rag.settings import Settings

if TYPE_CHECKING:
    import numpy as np

# Turns of chat history shown to the condense prompt; older turns rarely matter and cost context.
HISTORY_TURNS = 4
# Sentences quoted again before the question (qa_quotes), and the most prompt tokens kept for them.
# The model reads them as hints, so a runner-up needs less of the best one's score than a quote
# shown as evidence does: the answer is often the second or third sentence.
PROMPT_QUOTES = 3
PROMPT_RUNNER_UP_SHARE = 0.6
QUOTES_RESERVE_TOKENS = 320
# An answer that holds nothing but this much of the question, or all of it, repeats it.
REPEATED_SHARE = 0.5


@dataclass
class Answer:
    question: str
    answer: str
    sources: list[Document]
    prompt: str
    prompt_family: str
    standalone_question: str | None = None
    # The question's (or, where its letters do not tell, its sources'): the prompt, a decline and the labels are in it.
    language: str = DEFAULT_LANGUAGE
    timings: dict[str, float] = field(default_factory=dict)
    evidence: list[Evidence] = field(default_factory=list)
    grounding: Grounding = field(default_factory=Grounding)
    # The answer's facts of the kind the question asked for, when no source has them: the answer
    # then ends by saying the documents do not say so (in the question's language).
    retracted: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)  # search queries the model wrote, searched besides the question

    @property
    def unsupported(self) -> list[str]:
        """Numbers, dates, codes, names and citations of the answer that no source contains."""
        return self.grounding.unsupported

    @property
    def warnings(self) -> list[str]:
        """What the grounding check says under the answer, in the question's language: the facts no
        source has, and those only sources about something else hold (a retracted answer's own text
        names the facts it was retracted for)."""
        grounding = self.grounding
        return texts(self.language).warnings(
            grounding.shown([claim for claim in grounding.unsupported if claim not in self.retracted]),
            grounding.all_unsupported and not self.retracted,
            grounding.shown([claim for claim in grounding.off_subject if claim not in self.retracted]),
            grounding.subject,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "language": self.language,
            "standalone_question": self.standalone_question,
            "queries": self.queries,
            "answer": self.answer,
            "sources": [
                {
                    "number": number,
                    "source": doc.metadata["source"],
                    "score": round(doc.metadata["score"], 4),
                    "similarity": doc.metadata["similarity"] and round(doc.metadata["similarity"], 4),
                    "location": location_of(doc.metadata),
                    "chunk_id": doc.id,
                }
                for number, doc in enumerate(self.sources, start=1)
            ],
            "evidence": [quote.to_dict() for quote in self.evidence],
            "unsupported": self.unsupported,
            "retracted": self.retracted,
            "warnings": self.warnings,
            "prompt_family": self.prompt_family,
            "timings": {key: round(value, 2) for key, value in self.timings.items()},
        }


class AnswerStream:
    """Iterate for answer tokens as they are generated; `answer` is complete afterwards."""

    def __init__(self, chunks: Iterator[dict[str, Any]], question: str, standalone: str | None, assistant: "Assistant"):
        self._chunks = chunks
        self._question = question
        self.standalone_question = standalone
        self._assistant = assistant
        self._started = time.perf_counter()
        self.state: dict[str, Any] = {}
        self.answer: Answer | None = None

    def __iter__(self) -> Iterator[str]:
        first_token_at = None
        pieces: list[str] = []
        for token in until_run_on(without_echoed_quotes(self._tokens()), self._run_on_markers):
            first_token_at = first_token_at or time.perf_counter()
            pieces.append(token)
            yield token
        finished = time.perf_counter()
        text = "".join(pieces)
        sources = self.state.get("sources", [])
        self.answer = Answer(
            question=self._question,
            answer=text,
            sources=sources,
            prompt=self.state["prompt"].to_string() if "prompt" in self.state else "",
            prompt_family=self._assistant.qa.family,
            standalone_question=self.standalone_question,
            language=self.state.get("language", DEFAULT_LANGUAGE),
            queries=self.state.get("queries", []),
            timings=self._timings(text, first_token_at, finished),
        )
        question = self.standalone_question or self._question
        said = None
        if sources:
            self.answer.evidence, self.answer.grounding = self._assistant.check(question, text, sources)
            self.answer.timings["evidence_ms"] = (time.perf_counter() - finished) * 1000
            self.answer.retracted = self.answer.grounding.unsupported_answer(expected_kind(question))
            if self.answer.retracted:
                grounding = self.answer.grounding
                said = texts(self.answer.language).retraction(
                    grounding.shown(self.answer.retracted), grounding.shown(grounding.unsupported), grounding.subject
                )
        if repeats_question(text, question) or repeats_question(text, self._question):
            said = texts(self.answer.language).repeated_question
            if best := next(iter(self.answer.evidence), None):
                said = texts(self.answer.language).repeated_question_quote.format(quote=best.cited)
        if quote := cited_quote(text, self.answer.evidence):
            said = texts(self.answer.language).cited_only.format(quote=quote.cited)
        if said:
            self.answer.answer = f"{text.rstrip()}\n\n{said}"
            yield self.answer.answer[len(text) :]

    def _run_on_markers(self) -> tuple[str, ...]:
        # A model copying a source's header may give it another source's number.
        paths = prompt_paths(self.state.get("sources", []))
        headers = (f"\n[{number}] {path}" for number in range(1, len(paths) + 1) for path in dict.fromkeys(paths))
        return (*run_on_stops(), *headers)

    def _tokens(self) -> Iterator[str]:
        for chunk in self._chunks:
            token = chunk.pop("answer", None)
            self.state.update(chunk)
            if token:
                yield token

    def _timings(self, text: str, first_token_at: float | None, finished: float) -> dict[str, float]:
        timings = {"retrieval_ms": self.state.get("retrieval_ms", 0.0), "total_ms": (finished - self._started) * 1000}
        if first_token_at is not None and self.state.get("sources") and not self.state.get("declined"):
            generated = self._assistant.count_tokens(text) - self._assistant.count_tokens("")
            timings["first_token_ms"] = (first_token_at - self._started) * 1000
            timings["tokens"] = generated
            timings["tokens_per_s"] = generated / max(finished - first_token_at, 1e-9)
        return timings


class Assistant:
    """The question-answering pipeline for one knowledge base and one model."""

    def __init__(self, settings: Settings, llm: BaseLanguageModel | None = None, k: int | None = None):
        with Index(settings) as index:
            index.require()  # fail before spending seconds on loading a model
        self.settings = settings
        self._embedded: tuple[list[str], Any] = ([], None)
        self.llm = llm or create_llm(settings)
        style = settings.llm.prompt_style
        self.qa = select_prompt(self.llm, settings.llm.qa_prompt, style)  # its family and stops hold in every language
        self._qa_prompts: dict[str, BasePromptTemplate] = {DEFAULT_LANGUAGE: self.qa.prompt}
        self.condense = select_prompt(self.llm, "condense", style)
        # A text model continuing a chat template may write the next turn itself; a chat model's
        # server ends the turn (and OpenAI's takes at most four stop sequences).
        run_ons = run_on_stops() if isinstance(self.llm, BaseLLM) else ()
        stop = list(dict.fromkeys([*self.qa.stop, *run_ons, *settings.llm.stop]))
        answering = FirstLineLLM(inner=self.llm) if self.qa.first_line_only else self.llm
        generator = answering.bind(stop=stop) if stop else answering
        retriever = IndexRetriever.from_settings(settings, k, write_queries=QueryWriter(self.llm, style).write)
        budget = context_window(self.llm, settings.llm.n_ctx) - settings.llm.max_tokens
        quoting = "quotes" in self.qa.prompt.input_variables
        self.quotes_budget = min(QUOTES_RESERVE_TOKENS, budget // 4) if quoting else 0
        self.chain = build_rag_chain(
            retriever, self.qa_prompt, generator, fit=partial(self._fit, budget=budget - self.quotes_budget),
            quotes=self._prompt_quotes if quoting else None, decline=self._unmentioned,
            writing=self._writing,
        )
        condense_stop = [*self.condense.stop, *settings.llm.stop]
        condensing = FirstLineLLM(inner=self.llm) if isinstance(self.llm, BaseLLM) else self.llm
        condenser = condensing.bind(stop=condense_stop) if condense_stop else condensing
        self.condense_chain = build_condense_chain(self.condense.prompt, condenser)

    def count_tokens(self, text: str) -> int:
        return count_tokens(self.llm, text)

    def qa_prompt(self, language: str) -> BasePromptTemplate:
        """The answer prompt for a question in `language`: its labels, and the language to answer in."""
        if language not in self._qa_prompts:
            chosen = select_prompt(self.llm, self.settings.llm.qa_prompt, self.settings.llm.prompt_style, language)
            self._qa_prompts[language] = chosen.prompt
        return self._qa_prompts[language]

    def _fit(self, sources: list[Document], question: str, language: str, budget: int) -> list[Document]:
        return fit_sources(sources, question, prompt=self.qa_prompt(language), count_tokens=self.count_tokens, budget=budget)

    def _writing(self, language: str, sources: list[Document]) -> dict[str, Any]:
        # A letter its sources write is the answer's to quote: a Hong Kong page's 户, a simplified name.
        return writing_in(self.llm, language, "".join(source.page_content for source in sources))

    def _prompt_quotes(self, question: str, sources: list[Document]) -> str:
        """The sentences that best match the question, for the prompt: "[n] sentence" lines."""
        quotes = quote_evidence(
            question, "", sources, self._embed, max_quotes=PROMPT_QUOTES, runner_up_share=PROMPT_RUNNER_UP_SHARE
        )
        lines: list[str] = []
        for quote in quotes:  # as many as the room kept for them holds
            line = quote.cited
            if self.count_tokens("\n".join(lines + [line])) > self.quotes_budget:
                break
            lines.append(line)
        return "\n".join(lines)

    def _unmentioned(self, question: str, sources: list[Document], language: str) -> str | None:
        """The answer when the question asks about a code or name that no source mentions and the
        knowledge base holds nowhere; one it holds in passages not retrieved is no invention."""
        missing = unmentioned(question, [checkable_text(doc) for doc in sources])
        missing = [name for name in missing if not mentioned_anywhere(name, self.settings)]
        return texts(language).unmentioned_answer(missing) if missing else None

    def check(self, question: str, answer: str, sources: list[Document]) -> tuple[list[Evidence], Grounding]:
        """The quoted evidence for `answer` and its grounding check against `sources`."""
        evidence = quote_evidence(question, answer, sources, self._embed)
        titles = [source_title(doc) for doc in sources]
        paths = [doc.metadata["source"] for doc in sources]
        opened: dict[str, bool] = {}  # sources often share a file: its opening is read once

        def page_opens_with(number: int, terms: list[str]) -> bool:
            if paths[number] not in opened:
                opened[paths[number]] = opening_names(paths[number], terms, self.settings)
            return opened[paths[number]]

        grounding = check_grounding(answer, [checkable_text(doc) for doc in sources], question, titles, page_opens_with)
        return evidence, grounding

    def _embed(self, texts: list[str]) -> "np.ndarray":
        """Embeddings of `texts`; the prompt's quotes and the answer's evidence embed the same sentences."""
        if self._embedded[0] != texts:
            self._embedded = (texts, embed_texts(texts, self.settings))
        return self._embedded[1]

    def standalone_question(self, question: str, history: Sequence[tuple[str, str]]) -> str:
        """Rewrite a follow-up ("and when does it end?") so retrieval can understand it alone."""
        turns = "\n".join(f"User: {q}\nAssistant: {a}" for q, a in history[-HISTORY_TURNS:])
        rewritten = self._condense(question, turns)
        if resolves_follow_up(rewritten, question, history):
            return rewritten
        # A small model often answers instead, or repeats the follow-up as it was: then the last
        # question and the follow-up together are what retrieval and the model get.
        return f"{history[-1][0]} {question}"

    def _condense(self, question: str, turns: str) -> str:
        with backend_errors(self.settings):
            return self.condense_chain.invoke({"question": question, "history": turns})

    def stream(self, question: str, history: Sequence[tuple[str, str]] = ()) -> AnswerStream:
        require_question(question)
        standalone = self.standalone_question(question, history) if history else None
        chunks = self._explained(self.chain.stream({"question": standalone or question, "language": follow_up_language(question, standalone)}))
        return AnswerStream(chunks, question, standalone, self)

    def _explained(self, chunks: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        with backend_errors(self.settings):
            yield from chunks

    def ask(self, question: str, history: Sequence[tuple[str, str]] = ()) -> Answer:
        return complete(self.stream(question, history))


def require_question(question: str) -> None:
    """Refuse a blank question before any work is done for it."""
    if not question.strip():
        raise UsageError("The question is empty: ask something about your documents.")


def repeats_question(answer: str, question: str) -> bool:
    """Whether `answer` only says `question` again, whole or most of it (its letters and digits,
    citations left out): a small model given a question its sources do not answer sometimes
    writes it back. A short answer the question happens to hold ("kind") is no repetition."""

    def letters(text: str) -> str:
        return "".join(char for char in fold(CITATION.sub("", text)) if char.isalnum())

    said, asked = letters(answer), letters(question)
    return bool(said) and said in asked and len(said) >= REPEATED_SHARE * len(asked)


def cited_quote(answer: str, evidence: list[Evidence]) -> Evidence | None:
    """For an answer that is nothing but a source's number ("[1]"), the evidence quoted from that
    source (the sentence that best matches the question): a small model sometimes points to the
    sentence that answers instead of saying it."""
    cited = {int(number) for number in CITATION.findall(answer)}
    if not cited or CITATION.sub("", answer).strip(" .,;:、，。\n"):
        return None
    return next((quote for quote in evidence if quote.source_number in cited), None)


def without_echoed_quotes(tokens: Iterator[str]) -> Iterator[str]:
    """`tokens`, less an opening that repeats the prompt's quoted sentences with their header
    ("The sentences of the sources that best match the question are: [1] ..."), as a model
    sometimes does before it answers. Tokens pass on as they come once the opening is not that."""
    held = ""
    for token in tokens:
        held += token
        opening = fold(held)
        if any(header.startswith(opening) for header in quotes_headers()):
            continue  # it may still become the header
        first_line, newline, rest = held.lstrip().partition("\n")
        if not any(fold(first_line).startswith(header) for header in quotes_headers()):
            yield held
            break
        if not newline:
            continue
        lines = rest.split("\n")
        while len(lines) > 1 and (not lines[0].strip() or QUOTE_LINE.match(lines[0])):
            lines.pop(0)
        if len(lines) > 1 or (lines[0].strip() and not QUOTE_LINE.match(lines[0]) and not _could_be_quote(lines[0])):
            yield "\n".join(lines)
            break
        held = first_line + "\n" + "\n".join(lines)
    else:
        if held:
            yield held  # only the header and quotes came: better those than nothing
        return
    yield from tokens


def until_run_on(tokens: Iterator[str], markers: Callable[[], Sequence[str]] = run_on_stops) -> Iterator[str]:
    """`tokens` up to a new line that opens a turn of the model's own invention ("\nQuestion: ...")
    or copies a source's header from the prompt ("\n[2] notes/badges.md (§ Badges ..."): the
    `markers`, asked for at the first token, when the prompt's sources are known.

    A text model is stopped at a turn by its stop sequences; a chat model's server takes few
    (OpenAI's four), and a source's header is no fixed text, so what gets through ends here, and
    generation with it."""
    held = ""
    stops: Sequence[str] | None = None
    for token in tokens:
        stops = markers() if stops is None else stops
        held += token
        cut = min((held.find(marker) for marker in stops if marker in held), default=-1)
        if cut >= 0:
            if held[:cut]:
                yield held[:cut]
            return
        # Hold back only a tail that may still become a marker: a new line and what follows it.
        pending = next(
            (at for at in range(len(held)) if held[at] == "\n" and any(m.startswith(held[at:]) for m in stops)),
            len(held),
        )
        if pending:
            yield held[:pending]
            held = held[pending:]
    if held:
        yield held


def _could_be_quote(line: str) -> bool:
    """Whether an unfinished line may still turn out to be a quote ("[", "[1", "[1]")."""
    return bool(re.fullmatch(r"\s*\[?\d*\]?", line))


def complete(stream: "AnswerStream | ConversationStream") -> Answer:
    """The answer of a stream, read to its end."""
    for _ in stream:
        pass
    assert stream.answer is not None
    return stream.answer


def source_title(document: Document) -> str:
    """A source's file name and heading path: what says which document it is."""
    return "\n".join([Path(document.metadata["source"]).name, document.metadata.get("heading", "")])


def checkable_text(document: Document) -> str:
    """What a source says, for the grounding check: its file's name and heading path count too."""
    return "\n".join([source_title(document), document.page_content])


class Conversation:
    """A chat with the knowledge base, as `rag chat` holds it: follow-ups are read with the turns before.

        chat = Conversation(Assistant(settings))
        chat.ask("When does the oven warranty end?").answer
        stream = chat.stream("and the door gasket?")   # condensed with the history into a standalone question
        for token in stream:
            print(token, end="")
        chat.last_answer, chat.history                 # the last complete Answer; (question, answer) turns
        chat.reset()                                   # forget the conversation

    A turn is remembered once its answer is complete; an answer stopped part way is forgotten.
    """

    def __init__(self, assistant: Assistant):
        self.assistant = assistant
        self.history: list[tuple[str, str]] = []
        self.last_answer: Answer | None = None

    @property
    def last_sources(self) -> list[Document]:
        return self.last_answer.sources if self.last_answer else []

    def stream(self, question: str) -> "ConversationStream":
        return ConversationStream(self.assistant.stream(question, self.history), self)

    def ask(self, question: str) -> Answer:
        return complete(self.stream(question))

    def reset(self) -> None:
        self.history, self.last_answer = [], None

    def remember(self, answer: Answer) -> None:
        self.history.append((answer.question, answer.answer.strip()))
        self.last_answer = answer


class ConversationStream:
    """An `AnswerStream` whose complete answer becomes a turn of its conversation."""

    def __init__(self, stream: AnswerStream, conversation: Conversation):
        self._stream = stream
        self._conversation = conversation

    def __iter__(self) -> Iterator[str]:
        yield from self._stream
        assert self._stream.answer is not None
        self._conversation.remember(self._stream.answer)

    @property
    def answer(self) -> Answer | None:
        return self._stream.answer

    @property
    def standalone_question(self) -> str | None:
        return self._stream.standalone_question

    @property
    def state(self) -> dict[str, Any]:
        return self._stream.state


def follow_up_language(question: str, standalone: str | None) -> str | None:
    """The language to answer `question` in: its own, as a standalone question made of it may hold
    the previous one in another language; but the standalone's, where the follow-up's letters leave
    it among theirs ("那 Service 呢？" after a traditional Chinese question). None where neither
    tells (`possible_languages`): the chain answers in its sources' (`reply_language`)."""
    possible = possible_languages(question)
    if len(possible) == 1:
        return possible[0]
    conversation = possible_languages(standalone) if standalone is not None else ()
    return conversation[0] if len(conversation) == 1 and conversation[0] in possible else None


def resolves_follow_up(rewritten: str, question: str, history: Sequence[tuple[str, str]]) -> bool:
    """Whether a condensed question is one, in the follow-up's language (the answer's), and names
    something of the conversation the follow-up did not: a word, or a pair of CJK letters."""
    rewritten = rewritten.strip()
    if not rewritten.endswith(("?", "？")) or any(rewritten == answer.strip() for _, answer in history):
        return False
    if not {primary_language(language) for language in possible_languages(rewritten)} & {
        primary_language(language) for language in possible_languages(question)
    }:
        return False

    def terms(text: str) -> set[str]:
        return stems(text) | cjk_terms(text)

    said = terms(" ".join(" ".join(turn) for turn in history))
    return bool((terms(rewritten) - terms(question)) & said)
