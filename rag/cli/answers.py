"""The commands that answer with the model: ask, chat."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from rag.cli.console import display_path, err, out
from rag.cli.errors import ctrl_c_noticed
from rag.cli.options import (
    JsonOption, ModeOption, QueriesOption, SearchMode, TopKOption, VerboseOption, knowledge_base, with_mode,
)
from rag.cli.search import print_queries
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.answering import Assistant

commands = typer.Typer()


def _assistant(settings: Settings, k: int | None, mode: SearchMode | None) -> "Assistant":
    from rag.answering import Assistant

    return Assistant(with_mode(settings, mode), k=k)


def _print_sources(answer) -> None:
    """The answer's sources, headed in its language."""
    from rag.chain import source_label
    from rag.languages import texts

    if not answer.sources:
        return
    said = texts(answer.language)
    out.print(f"\n{said.sources_label}")
    for number, doc in enumerate(answer.sources, start=1):
        label = source_label(doc, display_path(doc.metadata["source"]), language=answer.language)
        similarity = doc.metadata["similarity"]
        relevance = f"  ({said.similarity_label} {similarity:.2f})" if similarity is not None else ""
        out.print(f"  [{number}] {escape(label)}{relevance}")


def _print_checks(answer) -> None:
    """The quoted evidence under an answer, headed in its language, then the grounding check's warning."""
    from rag.languages import texts
    from rag.retrieval import location_label

    if answer.evidence:
        out.print(f"\n{texts(answer.language).evidence_label}")
        for quote in answer.evidence:
            label = location_label(quote.location, language=answer.language)
            where = f" ({label})" if label else ""
            out.print(f"  [{quote.source_number}] \"{escape(quote.text)}\"{escape(where)}")
    for warning in answer.warnings:
        out.print(escape(warning))


def _print_answer_footer(answer, show_queries: bool = False) -> None:
    _print_checks(answer)
    _print_sources(answer)
    if show_queries:
        out.print()
        print_queries(answer.queries)


def _print_prompt(prompt: str) -> None:
    out.print(f"--- prompt ---\n{escape(prompt)}\n--- answer ---")


def _stream_answer(stream, show_prompt: bool, interrupted: threading.Event) -> None:
    """Print tokens as they arrive; the prompt first when asked for. Stops at the first token after
    a Ctrl-C, even one swallowed while the model loaded (see ctrl_c_noticed)."""
    prompt_shown = not show_prompt
    for token in stream:
        if interrupted.is_set():
            raise KeyboardInterrupt
        if not prompt_shown:
            _print_prompt(stream.state["prompt"].to_string())
            prompt_shown = True
        out.print(escape(token), end="")
    out.print()


@commands.command()
@knowledge_base(model=True)
def ask(
    question: Annotated[str, typer.Argument(help="Your question, answered from your documents.")],
    k: TopKOption = None,
    mode: ModeOption = None,
    as_json: JsonOption = False,
    show_prompt: Annotated[bool, typer.Option("--show-prompt", help="Print the exact prompt sent to the model.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the answer only when it is complete.")] = False,
    queries: QueriesOption = None,
    verbose: VerboseOption = False,
    *,
    settings: Settings,
) -> None:
    """Answer QUESTION with the local model, from the most relevant chunks, citing them."""
    from rag.answering import require_question
    from rag.api import with_queries

    require_question(question)  # before the model loads
    with ctrl_c_noticed() as interrupted:
        assistant = _assistant(with_queries(settings, queries), k, mode)
        show_queries = verbose and assistant.settings.search.queries > 0
        if as_json or no_stream:
            answer = assistant.ask(question)
            if interrupted.is_set():
                raise KeyboardInterrupt
            if as_json:
                payload = answer.to_dict() | ({"prompt": answer.prompt} if show_prompt else {})
                out.print_json(json.dumps(payload))
                return
            if show_prompt:
                _print_prompt(answer.prompt)
            out.print(escape(answer.answer.strip()))
            _print_answer_footer(answer, show_queries)
            return
        stream = assistant.stream(question)
        _stream_answer(stream, show_prompt, interrupted)
    _print_answer_footer(stream.answer, show_queries)


CHAT_HELP = "Ask about your documents. /sources shows the last answer's sources, /reset forgets the conversation, /exit leaves."


@commands.command()
@knowledge_base(model=True)
def chat(
    k: TopKOption = None,
    mode: ModeOption = None,
    *,
    settings: Settings,
) -> None:
    """Talk with your documents: follow-up questions keep the conversation's context."""
    from rag.answering import Conversation

    with ctrl_c_noticed() as interrupted:
        conversation = Conversation(_assistant(settings, k, mode))
        if interrupted.is_set():
            raise KeyboardInterrupt
        err.print(CHAT_HELP)
        _chat_turns(conversation, interrupted)


def _chat_turns(conversation, interrupted: threading.Event) -> None:
    if sys.stdin.isatty():
        with contextlib.suppress(ImportError):  # not on Windows
            import readline  # noqa: F401  input() edits its line (arrows, Home, history), a CJK letter whole
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "").strip()
        except EOFError:
            return
        except KeyboardInterrupt:
            err.print("\n(/exit or Ctrl-D leaves the chat)")
            continue
        if not line:
            continue
        if line in ("/exit", "/quit"):
            return
        if line == "/reset":
            conversation.reset()
            err.print("Conversation forgotten.")
            continue
        if line == "/sources":
            _print_sources(conversation.last_answer) if conversation.last_sources else err.print("No sources yet.")
            continue
        if line.startswith("/"):
            err.print(f"Unknown command {line.split()[0]}. {CHAT_HELP}")
            continue
        interrupted.clear()
        try:
            stream = conversation.stream(line)  # the turn is remembered once its answer is complete
            if stream.standalone_question:
                err.print(f"(searching for: {escape(stream.standalone_question)})")
            _stream_answer(stream, show_prompt=False, interrupted=interrupted)
        except KeyboardInterrupt:
            out.print()
            err.print("(answer stopped)")
            continue
        _print_answer_footer(stream.answer)
