"""The `rag` command. Each command parses its arguments, calls one library function and prints.

Results go to stdout; progress, warnings and hints go to stderr. Errors are mapped to one line
and an exit code in `main`, the only place that does so.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import select
import sys
from collections import Counter
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable, Optional

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException
from rich.console import Console
from rich.markup import escape

import rag
from ingest.index import CHUNK_METADATA_KEYS
from rag.cli_tokens import add_token_commands
from rag.errors import IndexBusyError, RagError, UsageError
from rag.languages import texts
from rag.settings import Settings, debug_enabled, load_settings

if TYPE_CHECKING:
    from rag.ask import Assistant

DEBUG_HINT = "Set RAG_DEBUG=1 to see the traceback."
# What the command line adds to a library error: the flag that changes the outcome.
CLI_HINTS = {IndexBusyError: "Run without --no-wait to wait for it automatically."}


class _RagGroup(TyperGroup):
    """Maps every error to one line on stderr and its exit code.

    A RagError says what to do; anything else is a bug, shown as its type and message with a hint
    (RAG_DEBUG=1 shows the traceback instead). A reader that closed stdout (`rag search ... | head
    -1`) got what it wanted: that ends quietly.
    """

    def invoke(self, ctx: typer.Context):
        try:
            return super().invoke(ctx)
        except RagError as exc:
            message = " ".join([str(exc), *(hint for kind, hint in CLI_HINTS.items() if isinstance(exc, kind))])
            err.print(f"Error: {escape(message)}")
            _json_error(ctx, message, exc.exit_code)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            err.print("Interrupted.")
            ctx.exit(130)
        except (typer.Exit, typer.Abort, TyperException):  # exits, and usage errors typer shows itself
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_closed():
                _discard_stdout()
                ctx.exit(0)
            if debug_enabled():
                raise
            detail = f": {exc}" if str(exc) else ""
            err.print(f"Error: {type(exc).__name__}{escape(detail)}")
            err.print(DEBUG_HINT)
            _json_error(ctx, f"{type(exc).__name__}{detail}", 1)
            ctx.exit(1)


# ctx.meta is shared by the group's context and the command's, which is gone once its error reaches the group.
JSON_REQUESTED = "rag.json"


def _remember_json(ctx: typer.Context, value: bool) -> bool:
    """--json's callback: lets the group know, when the command fails, that stdout should still get JSON."""
    ctx.meta[JSON_REQUESTED] = value
    return value


def _json_error(ctx: typer.Context, message: str, exit_code: int) -> None:
    """A failing --json command still prints one JSON document on stdout (the error line stays on stderr)."""
    if ctx.meta.get(JSON_REQUESTED):
        try:
            out.print_json(json.dumps({"error": message, "exit_code": exit_code}))
        except (BrokenPipeError, OSError, ValueError, typer.Exit):  # nobody is reading stdout
            pass


def _stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (not some socket's broken pipe)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real file behind stdout
        return False


def _discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail again (Python's docs, signal)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


app = typer.Typer(
    cls=_RagGroup,
    help="Local-first RAG over your own documents. Nothing leaves your machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        # Rich ends the process with exit code 1; the reader closing the pipe is no failure.
        _discard_stdout()
        raise typer.Exit(0)


out = _Stdout(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

IndexOption = Annotated[
    Optional[Path], typer.Option("--index", help="Index directory (default: RAG_HOME/index).", show_default=False)
]
CollectionOption = Annotated[
    Optional[str], typer.Option("--collection", help="Knowledge base name within the index.", show_default=False)
]
ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="Settings file (default: ./rag.toml, then the user config dir).")
]
ChromaUrlOption = Annotated[
    Optional[str],
    typer.Option("--chroma-url", help="Use a Chroma server (e.g. http://localhost:8000) instead of the index on disk.", show_default=False),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of text.", callback=_remember_json)
]


class SearchMode(str, Enum):
    """rag.settings.SearchSettings.mode: typer refuses other values (exit 2) and lists these in --help."""

    hybrid = "hybrid"
    dense = "dense"
    keyword = "keyword"


class PromptStyle(str, Enum):
    """llm.prompt_style: auto, chat, or one of rag.prompting.FAMILIES (a test keeps them equal)."""

    auto = "auto"
    chat = "chat"
    llama2 = "llama2"
    llama3 = "llama3"
    mistral = "mistral"
    gemma = "gemma"
    chatml = "chatml"
    plain = "plain"


class Per(str, Enum):
    document = "document"
    chunk = "chunk"


class SummaryFormat(str, Enum):
    jsonl = "jsonl"
    md = "md"


class ExtractFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


def _value(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


ModeOption = Annotated[
    Optional[SearchMode],
    typer.Option("--mode", help="hybrid (meaning and words, the default), dense (meaning) or keyword (words).", show_default=False),
]


ModelOption = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        help="A GGUF model file; a model another app downloaded (ollama:NAME[:TAG], lmstudio:PUBLISHER/REPO[/FILE], "
        "gpt4all:FILE, hf:ORG/NAME[/FILE]; see rag models --local); or a packaged model: qwen2.5-coder-0.5b-instruct "
        "(the default), gemma-3-270m, smollm2-135m-instruct.",
        show_default=False,
    ),
]
PromptStyleOption = Annotated[
    Optional[PromptStyle],
    typer.Option("--prompt-style", help="auto, chat, or the prompt format of a model family.", show_default=False),
]

KNOWLEDGE_BASE_OPTIONS = {"index": IndexOption, "collection": CollectionOption, "config": ConfigOption, "chroma_url": ChromaUrlOption}
MODEL_OPTIONS = {"model": ModelOption, "prompt_style": PromptStyleOption}


def _is_packaged_model(model: Path) -> bool:
    # Imported only when --model is given: rag.backends costs every other command 0.4 s.
    from rag.backends.packaged_models import PACKAGED_MODELS

    return str(model) in PACKAGED_MODELS and not model.exists()


def command_settings(
    config: Path | None = None,
    *,
    index: Path | None = None,
    collection: str | None = None,
    chroma_url: str | None = None,
    model: Path | None = None,
    prompt_style: PromptStyle | None = None,
    check_model: bool = False,
) -> Settings:
    """The settings the shared options make: each given option is the top layer over env and config file."""
    packaged = model is not None and _is_packaged_model(model)
    model_key = "model" if packaged else "model_path"
    llm = {
        key: value
        for key, value in ((model_key, str(model) if packaged else model), ("prompt_style", _value(prompt_style)))
        if value is not None
    }
    return load_settings(
        config,
        index_dir=index,
        collection=collection,
        vector_store={"url": chroma_url} if chroma_url else None,
        llm=llm or None,
        check_model=check_model,
    )


def knowledge_base(
    *, only: tuple[str, ...] | None = None, model: bool = False, check_model: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the knowledge-base options and hand it the `Settings` they make as `settings`.

    The options (--index, --collection, --config, --chroma-url; `only` names a subset; with model=True
    also --model and --prompt-style) are added to the command's signature after its own, where typer
    finds them, so a command declares only its own options and takes a `settings` parameter instead.
    check_model also refuses settings the embedding model cannot honour, for commands that chunk or
    embed (load_settings(check_model=True)).
    """
    added = {**(MODEL_OPTIONS if model else {}), **{name: KNOWLEDGE_BASE_OPTIONS[name] for name in only or KNOWLEDGE_BASE_OPTIONS}}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        if "settings" not in signature.parameters or set(added) & set(signature.parameters):
            raise TypeError(f"{command.__name__} must take `settings` and none of {', '.join(added)}")
        own = [parameter for parameter in signature.parameters.values() if parameter.name != "settings"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for name, annotation in added.items()
        ]

        @functools.wraps(command)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            options = {name: kwargs.pop(name, None) for name in added}
            config = options.pop("config", None)
            return command(*args, settings=command_settings(config, check_model=check_model, **options), **kwargs)

        parameters = [*own, *shared]
        with_settings.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_settings.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        with_settings.shared_options = tuple(added)  # type: ignore[attr-defined]
        return with_settings

    return decorate


def _with_mode(settings: Settings, mode: SearchMode | None) -> Settings:
    """--mode, the top layer over search.mode (validated on assignment)."""
    if mode is not None:
        settings.search.mode = mode.value
    return settings


def _display_path(path: str) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith("..") else relative


@app.command()
@knowledge_base()
def ingest(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files or folders to ingest (folders recursively).", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the chunks of the files under PATH and ingest them again (other folders' files stay).")
    ] = False,
    rebuild_all: Annotated[
        bool, typer.Option("--all", help="With --rebuild: drop the whole collection, files from other folders too.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every skipped file with its reason, the pages read by OCR, and how chunks were embedded.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Fail at once if another ingest is writing to this index.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="After the sync, keep syncing as files change, one line per change; Ctrl-C stops.")
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Sync documents into the index: add new files, replace changed ones, drop deleted ones."""
    if rebuild_all and not rebuild:
        raise UsageError("--all goes with --rebuild: `rag ingest --rebuild --all PATH...` drops the whole collection first.")
    if watch and (dry_run or as_json):
        raise UsageError("--watch syncs for real and prints lines: it does not go with --dry-run or --json.")
    progress = _RichProgress() if err.is_terminal and not as_json else None
    if watch:
        from ingest.watch import WatchReport
        from rag import api

        def print_sync(watched: WatchReport) -> None:
            report = watched.report
            if watched.initial:
                _print_sync_details(report, verbose)
                out.print(report.summary())
                watched_paths = ", ".join(_display_path(str(path)) for path in paths)
                err.print(f"Watching {escape(watched_paths)} for changes; Ctrl-C stops.")
            else:
                for line in watched.changes(_display_path):
                    err.print(escape(line))
                _print_warnings(report.warnings)

        api.watch(
            paths, settings, on_report=print_sync, rebuild=rebuild, rebuild_all=rebuild_all, progress=progress,
            wait=not no_wait,
            on_wait=lambda: err.print(f"Another ingest is writing to {settings.index_path}; waiting for it to finish…"),
        )
        return
    report = rag.ingest(
        paths, settings, dry_run=dry_run, rebuild=rebuild, rebuild_all=rebuild_all, progress=progress,
        wait=not no_wait,
        on_wait=lambda: err.print(f"Another ingest is writing to {settings.index_path}; waiting for it to finish…"),
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        if dry_run:
            _print_plan(report)
        _print_sync_details(report, verbose)
        out.print(report.summary())
    raise typer.Exit(0 if report.ok else 1)


def _print_plan(report) -> None:
    for verb, items in (("add", report.added), ("update", report.updated)):
        for path in items:
            out.print(f"{verb:<7}{escape(_display_path(path))}")
    for old, new in report.renamed:
        out.print(f"rename {escape(_display_path(old))} -> {escape(_display_path(new))}")
    for path in report.removed:
        out.print(f"remove {escape(_display_path(path))}")
    for path, reason in report.failed:
        out.print(f"fail   {escape(_display_path(path))}: {escape(reason)}")


def _print_sync_details(report, verbose: bool) -> None:
    """To stderr, before a sync's summary: what it skipped and read by OCR, how it embedded (with
    --verbose), what failed (a dry run's plan lists that), and its warnings."""
    _print_skipped(report.skipped, verbose)
    _print_ocr(report.ocr, verbose)
    if verbose and report.embedding_choice:
        err.print("a new collection: its embedding model is {} ({})".format(*map(escape, report.embedding_choice)))
    if verbose and report.embedding_path:
        err.print("{} with {} ({})".format("would embed" if report.dry_run else "embedded", *report.embedding_path))
    if verbose and report.chunks_reused:
        err.print(f"kept the vectors of {report.chunks_reused} chunks whose text was embedded before")
    if not report.dry_run:
        for path, reason in report.failed:
            err.print(f"failed  {escape(_display_path(path))}: {escape(reason)}")
    _print_warnings(report.warnings)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"Warning: {escape(warning)}")


def _print_skipped(skipped: list[tuple[str, str]], verbose: bool) -> None:
    if verbose:
        for path, reason in skipped:
            err.print(f"skipped {escape(_display_path(path))}: {escape(reason)}")
    elif skipped:
        reasons = Counter(reason.split(",")[0].split(" (")[0] for _, reason in skipped)
        listed = ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
        err.print(f"skipped {len(skipped)}: {escape(listed)}; --verbose lists them")


def _print_ocr(ocr: list[tuple[str, str]], verbose: bool) -> None:
    if verbose:
        for path, pages in ocr:
            err.print(f"OCR     {escape(_display_path(path))}: {escape(pages)}")


@app.command()
@knowledge_base()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    k: Annotated[Optional[int], typer.Option("-k", "--top-k", min=1, help="Number of chunks to return.")] = None,
    mode: ModeOption = None,
    where: Annotated[
        Optional[list[str]],
        typer.Option("--where", help="Keep chunks whose metadata has this value: source=PATH, page=2 (repeatable)."),
    ] = None,
    path: Annotated[
        Optional[list[str]], typer.Option("--path", help="Keep sources matching this glob, e.g. 'notes/work/*' (repeatable).")
    ] = None,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify the results (maximal marginal relevance).")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each hit's dense and keyword ranks and scores, and what was dropped.")
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Find the chunks most relevant to QUERY (retrieval only, no language model)."""
    result = rag.search(
        query,
        settings,
        k=k,
        mode=_value(mode),
        where=_parse_where(where or []),
        paths=[os.path.abspath(pattern) for pattern in path or []] or None,
        mmr=mmr or None,
    )
    if as_json:
        payload: object = [hit.to_dict(explain) for hit in result.hits]
        if explain:
            payload = {"mode": result.mode, "hits": payload, "dropped": [c.to_dict() for c in result.dropped]}
        out.print_json(json.dumps(payload))
        return
    if not result.hits:
        err.print("No matching chunks.")
    for hit in result.hits:
        where_label = f"  {hit.location_label}" if hit.location_label else ""
        out.print(f"{hit.rank}. [{hit.score:.3f}] {escape(_display_path(hit.source))}{escape(where_label)}")
        if explain:
            out.print(f"   {_explain_line(hit.explain)}")
        out.print(f"   {escape(hit.snippet())}")
    if explain and result.dropped:
        out.print(f"\nDropped by {result.dropped[0].dropped_by}:")
        for candidate in result.dropped:
            out.print(f"   {candidate.chunk_id[:12]}  {_explain_line(candidate)}")


def _explain_line(candidate) -> str:
    def part(name: str, rank: int | None, score: float | None) -> str:
        return f"{name} #{rank} ({score:.3f})" if rank is not None else f"{name} -"

    return (
        f"{part('dense', candidate.dense_rank, candidate.dense_score)}, "
        f"{part('keyword', candidate.keyword_rank, candidate.keyword_score)}, fused {candidate.fused_score:.3f}"
    )


def _parse_where(conditions: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for condition in conditions:
        key, equals, value = condition.partition("=")
        if not equals or not key:
            raise UsageError(f"--where takes KEY=VALUE, such as source=notes/todo.md or page=2; got {condition!r}.")
        if key not in CHUNK_METADATA_KEYS:
            raise UsageError(f"--where {key}=...: chunks have no {key!r}; use one of: {', '.join(CHUNK_METADATA_KEYS)}.")
        parsed[key] = os.path.abspath(value) if key == "source" else int(value) if value.isdigit() else value
    return parsed


@app.command()
@knowledge_base(check_model=False)
def status(
    check: Annotated[
        bool, typer.Option("--check", help="Verify that the manifest, Chroma and the keyword index agree.")
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Show where the index is, what it holds and what built it; --check verifies it."""
    if check:
        _report_consistency(rag.check(settings), as_json, fixed=False)
        return
    info = rag.status(settings)
    if as_json:
        out.print_json(json.dumps(info.to_dict()))
        return
    rows = [
        ("index", info.index_path),
        ("collection", info.collection),
        ("files", str(info.files)),
        ("chunks", str(info.chunks)),
        ("embedding model", f"{info.embedding_model} ({info.embedding_dimension} dimensions)"),
        ("chunking", f"{info.chunk_tokens} tokens, {info.overlap_tokens} overlap"),
        ("created", info.created_at),
        ("last sync", info.last_sync or "never"),
    ]
    for label, value in rows:
        out.print(f"{label + ':':<17}{escape(value)}")


@app.command()
@knowledge_base(only=("index", "config"), check_model=False)
def collections(
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """List the collections the index holds, with their files, chunks and where their vectors are."""
    from rag.index_status import iso_time

    found = rag.collections(settings)
    if as_json:
        out.print_json(json.dumps([collection.to_dict() for collection in found]))
        return
    if not found:
        err.print(f"No collections in the index at {escape(str(settings.index_path))}. Run `rag ingest PATH` first.")
        return
    for collection in found:
        synced = iso_time(collection.last_sync) or "never"
        out.print(
            f"{escape(collection.name):<20} {collection.files:>6} files {collection.chunks:>8} chunks  "
            f"vectors: {escape(collection.vector_store)}  last sync: {synced}"
        )


TopKOption = Annotated[Optional[int], typer.Option("-k", "--top-k", min=1, help="Chunks to retrieve.", show_default=False)]


def _assistant(settings: Settings, k: int | None, mode: SearchMode | None) -> "Assistant":
    from rag.ask import Assistant

    return Assistant(_with_mode(settings, mode), k=k)


def _print_sources(sources) -> None:
    from rag.chain import source_label

    if not sources:
        return
    out.print("\nSources:")
    for number, doc in enumerate(sources, start=1):
        label = source_label(doc).replace(doc.metadata["source"], _display_path(doc.metadata["source"]), 1)
        similarity = doc.metadata["similarity"]
        relevance = f"  (similarity {similarity:.2f})" if similarity is not None else ""
        out.print(f"  [{number}] {escape(label)}{relevance}")


def _print_checks(answer) -> None:
    """The quoted evidence under an answer, then the grounding check's warning."""
    if answer.evidence:
        out.print("\nEvidence:")
        for quote in answer.evidence:
            where = f" ({quote.location_label})" if quote.location_label else ""
            out.print(f"  [{quote.source_number}] \"{escape(quote.text)}\"{escape(where)}")
    said = texts(answer.language)  # the question's language
    claims = ", ".join(answer.unsupported)
    if answer.grounding.all_unsupported:
        out.print(escape(said.nothing_supported.format(claims=claims)))
    elif answer.unsupported:
        out.print(f"{escape(said.not_in_sources)}: {escape(claims)}")


def _print_answer_footer(answer) -> None:
    _print_checks(answer)
    _print_sources(answer.sources)


def _print_prompt(prompt: str) -> None:
    out.print(f"--- prompt ---\n{escape(prompt)}\n--- answer ---")


def _stream_answer(stream, show_prompt: bool) -> None:
    """Print tokens as they arrive; the prompt first when asked for."""
    prompt_shown = not show_prompt
    for token in stream:
        if not prompt_shown:
            _print_prompt(stream.state["prompt"].to_string())
            prompt_shown = True
        out.print(escape(token), end="")
    out.print()


@app.command()
@knowledge_base(model=True)
def ask(
    question: Annotated[str, typer.Argument(help="Your question, answered from your documents.")],
    k: TopKOption = None,
    mode: ModeOption = None,
    as_json: JsonOption = False,
    show_prompt: Annotated[bool, typer.Option("--show-prompt", help="Print the exact prompt sent to the model.")] = False,
    no_stream: Annotated[bool, typer.Option("--no-stream", help="Print the answer only when it is complete.")] = False,
    *,
    settings: Settings,
) -> None:
    """Answer QUESTION with the local model, from the most relevant chunks, citing them."""
    assistant = _assistant(settings, k, mode)
    if as_json or no_stream:
        answer = assistant.ask(question)
        if as_json:
            payload = answer.to_dict() | ({"prompt": answer.prompt} if show_prompt else {})
            out.print_json(json.dumps(payload))
            return
        if show_prompt:
            _print_prompt(answer.prompt)
        out.print(escape(answer.answer.strip()))
        _print_answer_footer(answer)
        return
    stream = assistant.stream(question)
    _stream_answer(stream, show_prompt)
    _print_answer_footer(stream.answer)


CHAT_HELP = "Ask about your documents. /sources shows the last answer's sources, /reset forgets the conversation, /exit leaves."


@app.command()
@knowledge_base(model=True)
def chat(
    k: TopKOption = None,
    mode: ModeOption = None,
    *,
    settings: Settings,
) -> None:
    """Talk with your documents: follow-up questions keep the conversation's context."""
    from rag.ask import Conversation

    conversation = Conversation(_assistant(settings, k, mode))
    err.print(CHAT_HELP)
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
            _print_sources(conversation.last_sources) if conversation.last_sources else err.print("No sources yet.")
            continue
        if line.startswith("/"):
            err.print(f"Unknown command {line.split()[0]}. {CHAT_HELP}")
            continue
        stream = conversation.stream(line)  # the turn is remembered once its answer is complete
        if stream.standalone_question:
            err.print(f"(searching for: {escape(stream.standalone_question)})")
        try:
            _stream_answer(stream, show_prompt=False)
        except KeyboardInterrupt:
            out.print()
            err.print("(answer stopped)")
            continue
        _print_answer_footer(stream.answer)


@app.command(name="eval")
@knowledge_base(only=("index", "config", "chroma_url"), model=True)
def eval_command(
    data_dir: Annotated[
        Optional[Path],
        typer.Argument(
            help="A BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); with --answers, the folder the "
            "QA file's sources are relative to (default: the configured knowledge base).",
            show_default=False,
        ),
    ] = None,
    answers: Annotated[
        Optional[Path],
        typer.Option("--answers", help="Evaluate answers instead: a QA file (JSONL: id, question, answers, source).", show_default=False),
    ] = None,
    qrels: Annotated[Optional[Path], typer.Option("--qrels", help="Relevance judgements (default: qrels/test.tsv).")] = None,
    mode: Annotated[
        Optional[list[SearchMode]], typer.Option("--mode", help="dense, keyword or hybrid (repeatable; default: all three).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With --answers: one line per question.")] = False,
    k: TopKOption = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Measure retrieval quality (nDCG@10, recall, MRR, latency per mode), or with --answers answer quality."""
    if answers is not None:
        _eval_answers(answers, data_dir, _with_mode(settings, mode[-1] if mode else None), k, verbose, as_json)
        return
    if data_dir is None:
        raise UsageError("Give a BEIR folder to measure retrieval, or --answers QA.jsonl [DOCS_DIR] to measure answers.")
    reports = rag.evaluate(
        data_dir,
        settings,
        modes=[choice.value for choice in mode or []] or None,
        qrels=qrels,
        progress=_RichProgress() if err.is_terminal else None,
    )
    if as_json:
        out.print_json(json.dumps([report.to_dict() for report in reports]))
        return
    out.print(f"{'mode':<9}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}{'p50 ms':>9}{'p95 ms':>9}  queries")
    for r in reports:
        out.print(
            f"{r.mode:<9}{r.ndcg_at_10:>9.4f}{r.recall_at_10:>8.4f}{r.recall_at_100:>8.4f}{r.mrr_at_10:>8.4f}"
            f"{r.latency_p50_ms:>9.1f}{r.latency_p95_ms:>9.1f}  {r.queries}"
        )


ANSWER_METRICS = (
    ("answer accuracy", "accuracy"),
    ("token F1", "f1"),
    ("gold source cited", "gold_cited"),
    ("evidence accuracy", "evidence_accuracy"),
    ("answered when answerable", "answered_when_answerable"),
    ("declined when unanswerable", "declined_when_unanswerable"),
    ("wrong answers flagged", "flagged_when_wrong"),
    ("right answers flagged", "flagged_when_right"),
)


def _eval_answers(qa_file: Path, docs_dir: Path | None, settings: Settings, k: int | None, verbose: bool, as_json: bool) -> None:
    def show(result) -> None:
        if verbose and not as_json:
            verdict = "ok  " if result.correct else "decl" if result.declined else "----" if result.answerable else "ans?"
            flagged = f"  unsupported: {', '.join(result.unsupported)}" if result.unsupported else ""
            out.print(f"{verdict} {result.id:<6} {escape(result.answer[:100])}{escape(flagged)}")

    report = rag.evaluate_answers(
        qa_file, docs_dir, settings, k=k, on_result=show, progress=_RichProgress() if err.is_terminal else None
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict(per_question=verbose)))
        return
    out.print(f"{report.questions} questions ({report.answerable} answerable, {report.unanswerable} not answerable)")
    for label, key in ANSWER_METRICS:
        out.print(f"{label + ':':<28}{getattr(report, key):.3f}")
    out.print(f"{'latency p50 / p95:':<28}{report.latency_p50_ms / 1000:.2f} s / {report.latency_p95_ms / 1000:.2f} s")


SourcesArgument = Annotated[
    Optional[list[str]],
    typer.Argument(
        metavar="[SOURCES]...", help="Ingested files, folders or quoted globs (default: every document).", show_default=False
    ),
]
QueryOption = Annotated[
    Optional[str], typer.Option("--query", help="Work on what best matches this query (its top -k chunks).", show_default=False)
]
OutOption = Annotated[
    Optional[Path],
    typer.Option("--out", help="Write records here; running the same command again continues an unfinished job.", show_default=False),
]
SummaryFormatOption = Annotated[
    Optional[SummaryFormat], typer.Option("--format", help="Output format; default: from --out, else jsonl.", show_default=False)
]
ExtractFormatOption = Annotated[
    Optional[ExtractFormat], typer.Option("--format", help="Output format; default: from --out, else jsonl.", show_default=False)
]
RestartOption = Annotated[bool, typer.Option("--restart", help="Start the job over, discarding what --out holds.")]
ParallelOption = Annotated[
    Optional[int],
    typer.Option(
        "--parallel",
        min=1,
        max=64,
        help="Requests in flight against a server backend (default batch.parallel); records keep their order.",
        show_default=False,
    ),
]


def _with_parallel(settings: Settings, parallel: int | None) -> Settings:
    if parallel is None:
        return settings
    return settings.model_copy(update={"batch": settings.batch.model_copy(update={"parallel": parallel})})


@app.command()
@knowledge_base(model=True)
def summarize(
    sources: SourcesArgument = None,
    combine: Annotated[bool, typer.Option("--all", help="One summary of all the selected documents together.")] = False,
    query: QueryOption = None,
    k: TopKOption = None,
    out_file: OutOption = None,
    fmt: SummaryFormatOption = None,
    restart: RestartOption = False,
    parallel: ParallelOption = None,
    *,
    settings: Settings,
) -> None:
    """Summarize each selected document (map-reduce over its chunks), or all of them with --all."""
    job = rag.summarize(sources or [], _with_parallel(settings, parallel), query=query, k=k, combine=combine)
    _run_job(job, out_file, _value(fmt), restart)


@app.command()
@knowledge_base(model=True)
def extract(
    sources: SourcesArgument = None,
    schema: Annotated[
        Optional[Path], typer.Option("--schema", help="A JSON Schema file that every record follows.", show_default=False)
    ] = None,
    fields: Annotated[
        Optional[str],
        typer.Option("--fields", help='Shorthand for a schema: "name:str, amount:float, tags:list[str]".', show_default=False),
    ] = None,
    per: Annotated[Per, typer.Option("--per", help="One record per document or per chunk.")] = Per.document,
    query: QueryOption = None,
    k: TopKOption = None,
    out_file: OutOption = None,
    fmt: ExtractFormatOption = None,
    restart: RestartOption = False,
    parallel: ParallelOption = None,
    *,
    settings: Settings,
) -> None:
    """Extract structured records (JSON Schema) from each selected document or chunk, with provenance."""
    if (schema is None) == (fields is None):
        raise UsageError('Give the record schema as --schema FILE.json or as --fields "name:str, ..." (one of them).')
    record_schema = schema or rag.fields_schema(fields or "")
    job = rag.extract(record_schema, sources or [], _with_parallel(settings, parallel), per=per.value, query=query, k=k)
    _run_job(job, out_file, _value(fmt), restart)


def _run_job(job, out_file: Path | None, fmt: str | None, restart: bool) -> None:
    """Run a batch job into --out (resumable, by `rag.run_job`) or onto stdout; progress and the summary on stderr."""
    from rag.batch.run import stream_job

    job.on_notice = lambda notice: err.print(escape(notice))
    if out_file is None and restart:
        raise UsageError("--restart applies to a job writing --out FILE.")
    progress = _JobProgress(job) if err.is_terminal else None
    done = Counter()

    def start(done_before: int) -> None:
        if done_before:
            err.print(f"Continuing: {min(done_before, len(job))} of {len(job)} items are already in {out_file}.")
        if progress:
            progress.start(done_before)

    def count(record) -> None:
        done[record.ok] += 1
        if progress:
            progress.advance()

    def print_record(record, text: str) -> None:
        if record.ok:
            out.print(escape(text), end="")
        else:
            err.print(f"failed  {escape(text.strip())}")

    try:
        if out_file is not None:
            result = rag.run_job(job, out_file, format=fmt, restart=restart, on_start=start, on_record=count)
        else:
            start(0)
            result = stream_job(job, print_record, format=fmt, on_record=count)
    except KeyboardInterrupt:
        hint = "; run the same command again to continue" if out_file is not None else ""
        err.print(f"Stopped after {done.total()} items this run{hint}.")
        raise typer.Exit(130)
    finally:
        if progress:
            progress.finish()
    _job_summary(result)
    if result.failed:
        raise typer.Exit(1)


def _job_summary(result) -> None:
    stats = result.stats
    rate = f", {stats.tokens} tokens at {stats.tokens / max(stats.seconds, 1e-9):.1f} tokens/s" if stats else ""
    before = f", {result.done_before} done before" if result.done_before else ""
    err.print(f"{result.kind}: {result.written} written, {result.failed} failed{before} in {result.seconds:.1f} s{rate}.")
    if result.failed and result.errors:
        err.print(f"Failed items, with the model's replies, are in {result.errors}.")


@app.command()
@knowledge_base(only=("config",), check_model=False)
def models(
    all_backends: Annotated[bool, typer.Option("--all", help="Check every backend, not just the configured one.")] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="List the GGUF models Ollama, LM Studio, GPT4All and the Hugging Face cache have on disk, and the "
            "cache's sentence-transformers models (for embedding.model).",
        ),
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Show whether the model backend is reachable or loadable, and which models it has."""
    if local:
        _print_local_models(as_json)
        return
    from rag.backends import BACKENDS, backend_status

    names = list(BACKENDS) if all_backends else [settings.llm.backend]
    statuses = [backend_status(name, settings) for name in names]
    if as_json:
        out.print_json(json.dumps([status.to_dict() for status in statuses]))
    else:
        for status in statuses:
            marker = "*" if status.backend == settings.llm.backend else " "
            state = "ok" if status.ok else "unavailable"
            out.print(f"{marker} {status.backend:<10} {state:<12} {escape(status.where or status.problem)}")
            for model in status.models:
                details = ", ".join(f"{key} {value}" for key, value in model.items() if key != "name" and value != "")
                out.print(f"    {escape(str(model['name']))}  ({escape(details)})")
    configured = next(status for status in statuses if status.backend == settings.llm.backend)
    raise typer.Exit(0 if configured.ok else 1)


def _print_local_models(as_json: bool) -> None:
    """Other apps' models, each under the --model name that runs it; a store that is not there is left out."""
    from rag.backends.local_models import local_embedding_models, local_models, model_stores

    found, embedders = local_models(), local_embedding_models()
    if as_json:
        out.print_json(json.dumps([model.to_dict() for model in found] + [model.to_dict() for model in embedders]))
        return
    if not found:
        looked = ", ".join(str(folder) for store in model_stores() for folder in store.folders)
        err.print(f"No GGUF models found; looked in {escape(looked)}.")
    else:
        width = max(len(model.reference) for model in found)
        for model in found:
            details = [
                _size(model.size), model.architecture, model.quantization,
                f"context {model.context}" if model.context else "", "chat template" if model.chat_template else "",
            ]
            out.print(f"{escape(f'{model.reference:<{width}}')}  {escape(', '.join(detail for detail in details if detail))}")
    if embedders:
        out.print("Embedding models (set embedding.model to the folder, then rag ingest --rebuild):")
        for model in embedders:
            dimension = f", {model.dimension} dimensions" if model.dimension else ""
            out.print(f"  {escape(model.name)}  {escape(model.path)}{dimension}")


def _size(size: float) -> str:
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"


@app.command()
@knowledge_base(check_model=False)
def repair(
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Make the index consistent again after an interrupted ingest (the next ingest does it too)."""
    _report_consistency(rag.repair(settings), as_json, fixed=True)


def _report_consistency(found, as_json: bool, fixed: bool) -> None:
    if as_json:
        out.print_json(json.dumps(found.to_dict()))
    elif found.ok:
        out.print("The index is consistent: the manifest, Chroma and the keyword index agree.")
    else:
        verb = "Fixed" if fixed else "Found"
        if found.unfinished:
            out.print(f"{verb}: an ingest stopped before it finished.")
        out.print(f"{verb}: {len(found.orphan_vectors)} vectors and {len(found.orphan_words)} keyword entries no file lists.")
        out.print(f"{verb}: {len(found.incomplete_sources)} files with chunks missing" + (" (they will be ingested again)." if fixed else "."))
        if not fixed:
            err.print("Run `rag repair`, or just `rag ingest` again: it repairs first.")
    if not fixed and not found.ok:
        raise typer.Exit(1)


@app.command()
@knowledge_base(model=True)
def serve(
    host: Annotated[
        Optional[str],
        typer.Option("--host", help="Address to listen on; anything but loopback needs --token. [default: serve.host, 127.0.0.1]", show_default=False),
    ] = None,
    port: Annotated[
        Optional[int],
        typer.Option("--port", min=1, max=65535, help="Port to listen on. [default: serve.port, 8000]", show_default=False),
    ] = None,
    token: Annotated[
        Optional[str],
        typer.Option("--token", envvar="RAG_SERVER_TOKEN", help="Clients must send `Authorization: Bearer TOKEN`.", show_default=False),
    ] = None,
    cors_origin: Annotated[
        Optional[list[str]],
        typer.Option("--cors-origin", help="Let web pages from this origin call the API (repeatable). [default: serve.cors_origins, none]", show_default=False),
    ] = None,
    mcp: Annotated[bool, typer.Option("--mcp", help="Serve MCP over stdin/stdout instead of HTTP (for a desktop assistant).")] = False,
    *,
    settings: Settings,
) -> None:
    """Serve the knowledge base: an OpenAI-compatible API with citations, native routes, a web page, MCP."""
    from rag import server

    if mcp:
        server.serve_mcp(settings)
    else:
        server.serve(settings, host=host, port=port, token=token, cors_origins=cors_origin or None)


@app.command(name="mcp")
@knowledge_base(model=True)
def mcp_server(*, settings: Settings) -> None:
    """Serve the knowledge base to an MCP client (a desktop assistant) over stdin/stdout: `rag serve --mcp`."""
    from rag import server

    server.serve_mcp(settings)


add_token_commands(app)  # `rag serve token add | list | revoke` (rag/cli_tokens.py)


class _RichProgress:
    """Progress bar on stderr for interactive ingests: files read, chunks embedded, time left.

    The bar measures bytes whose work is done (see IngestProgress), which is what the time
    left is estimated from.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._files = self._chunks = 0
        self._bar = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files, {task.fields[chunks]} chunks embedded"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._task = None

    def start(self, total_files: int, total_bytes: int) -> None:
        self._task = self._bar.add_task("ingest", total=max(total_bytes, 1), files=0, total_files=total_files, chunks=0)
        self._bar.start()

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
        self._files += files
        self._chunks += chunks
        self._bar.update(self._task, advance=done_bytes, files=self._files, chunks=self._chunks)

    def finish(self) -> None:
        self._bar.stop()


class _JobProgress:
    """Progress bar on stderr for interactive batch jobs: items, time left, generation speed."""

    def __init__(self, job) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._total = len(job)
        self._tokens = 0
        self._seconds = 0.0
        self._bar = Progress(
            TextColumn(job.kind),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[speed]}"),
            console=err,
            transient=True,
        )
        self._task = None
        job.on_call = self._on_call

    def start(self, done: int) -> None:
        self._task = self._bar.add_task("job", total=self._total, completed=min(done, self._total), speed="")
        self._bar.start()

    def _on_call(self, call) -> None:
        self._tokens += call.tokens
        self._seconds += call.seconds
        self._bar.update(self._task, speed=f"{self._tokens / max(self._seconds, 1e-9):.1f} tokens/s")

    def advance(self) -> None:
        self._bar.update(self._task, advance=1)

    def finish(self) -> None:
        self._bar.stop()


def main() -> None:
    try:
        app()
    finally:
        _flush_stdout()


def _flush_stdout() -> None:
    """Flush what is left for stdout now, where a closed pipe can still end quietly."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
    except (OSError, ValueError):
        pass
