"""How an error reaches the user of the command line: one line on stderr and an exit code.

A library error (rag.errors) carries what happened and what to do in the library's terms; the
table below is the one place that says it in the command line's: the flags and commands that do
it, and the exit code. Anything else is a bug, shown as its type and message with a hint
(RAG_DEBUG=1 shows the traceback instead).
"""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import typer
from rich.markup import escape
from typer.core import TyperGroup
from typer.exceptions import TyperException

from rag.cli.console import discard_stdout, err, out, stdout_closed
from rag.errors import (
    FieldsShorthandError,
    FormatUnknownError,
    IndexBusyError,
    IndexMismatchError,
    IngestWarning,
    JobOutputBusyError,
    JobOutputChangedError,
    JobOutputExistsError,
    JobOutputMismatchError,
    LocalModelNotFoundError,
    MigrationCheckError,
    MigrationSourceInconsistentError,
    MigrationTargetError,
    MigrationTargetNotEmptyError,
    ModelNotChosenError,
    ModelNotServedError,
    NoDocumentsError,
    NoIndexError,
    QrelsMismatchError,
    RagError,
    RebuildScopeError,
    SourceNotIngestedError,
    UnknownVectorStoreError,
    UnreadScriptsWarning,
    UsageError,
    VectorDimensionError,
    VectorsMissingError,
    VectorStoreMismatchError,
)
from rag.server.tokens import NoScopesGivenError, TokenExistsError, UnknownTokenError
from rag.settings import debug_enabled

DEBUG_HINT = "Set RAG_DEBUG=1 to see the traceback."
REBUILD = "run `rag ingest --rebuild PATH...`"


@dataclass(frozen=True)
class CliWording:
    """An error's exit code, and its remedy in flags (None: the library's remedy says it already)."""

    exit_code: int
    remedy: Callable[[Any], str] | None = None


# Each error takes the entry of its nearest class.
CLI_ERRORS: dict[type[RagError], CliWording] = {
    NoIndexError: CliWording(1, lambda error: (
        "Pass --collection NAME (`rag collections` lists them), or run `rag ingest PATH` to create it."
        if error.others else "Run `rag ingest PATH` first."
    )),
    IndexMismatchError: CliWording(1, lambda error: (
        "Run `rag ingest --rebuild PATH...` to make them again."
        if error.made_by_another_version else
        "Run `rag ingest --rebuild PATH...` to rebuild it with the current settings, "
        "or restore the settings it was built with."
    )),
    VectorStoreMismatchError: CliWording(1, lambda _: (
        "run without --chroma-url or vector_store.url to use it, "
        "or give another --index or --collection for a new index on that server."
    )),
    VectorsMissingError: CliWording(1, lambda error: (
        f"restore them there, or if they are lost, {REBUILD}."
        if error.recorded else f"if they are in a Chroma server, give its --chroma-url; if they are lost, {REBUILD}."
    )),
    IndexBusyError: CliWording(1, lambda _: (
        "try again once it has finished. Run without --no-wait to wait for it automatically."
    )),
    RebuildScopeError: CliWording(2, lambda _: "Give those paths too, or add --all to drop them from the collection."),
    JobOutputExistsError: CliWording(2, lambda _: "add --restart to replace it, or choose another --out."),
    JobOutputMismatchError: CliWording(2, lambda _: (
        "run that command to finish it, or add --restart to start this one over."
    )),
    JobOutputChangedError: CliWording(2, lambda _: "add --restart to write it again, or choose another --out."),
    JobOutputBusyError: CliWording(2, lambda _: "wait for it, or choose another --out."),
    FormatUnknownError: CliWording(2, lambda error: f"add --format {', '.join(error.formats[:-1])} or {error.formats[-1]}."),
    QrelsMismatchError: CliWording(2, lambda _: "give the qrels file of this dataset (--qrels)."),
    NoDocumentsError: CliWording(2, lambda _: "add some with `rag ingest PATH`."),
    SourceNotIngestedError: CliWording(2, lambda _: (
        "`rag ingest` it first, or check the path (a glob needs quotes so the shell leaves it alone)."
    )),
    FieldsShorthandError: CliWording(2, lambda error: (
        'e.g. --fields "name:str, tags:list[str]".' if error.field else 'give at least one NAME:TYPE, e.g. --fields "name:str".'
    )),
    UnknownVectorStoreError: CliWording(2, lambda error: f"give --chroma-url (or vector_store.url) as {'; '.join(error.known)}."),
    VectorDimensionError: CliWording(1, lambda _: (
        "Run `rag ingest --rebuild PATH...` to rebuild it with this one, or restore the model it was built with."
    )),
    MigrationTargetError: CliWording(2, lambda error: f"give --to as {'; or '.join(error.known)}."),
    MigrationTargetNotEmptyError: CliWording(1, lambda _: "Give another --to (with a Chroma server, another --to-index)."),
    MigrationSourceInconsistentError: CliWording(1, lambda _: "Run `rag repair` with the same options, then migrate."),
    MigrationCheckError: CliWording(1, lambda _: (
        "Run the same `rag migrate` again: it resumes, rewrites what is missing or different, and checks again."
    )),
    ModelNotChosenError: CliWording(2, lambda _: "set llm.model to one of those `rag models` lists."),
    ModelNotServedError: CliWording(1, lambda _: "`rag models` lists the ones it has."),
    LocalModelNotFoundError: CliWording(1, lambda error: "" if error.listed_all else (
        "`rag models --local` lists every model rag finds."
    )),
    NoScopesGivenError: CliWording(2, lambda _: "give --collection NAME --scope read."),
    TokenExistsError: CliWording(2, lambda error: (
        f"revoke it first (`rag serve token revoke {error.name}`), or choose another name."
    )),
    UnknownTokenError: CliWording(2, lambda _: "`rag serve token list` shows them."),
    UsageError: CliWording(2),
    RagError: CliWording(1),
}


# A warning about a whole ingest, its remedy in commands (the library's words otherwise).
CLI_WARNINGS: dict[type[IngestWarning], Callable[[Any], str]] = {
    UnreadScriptsWarning: lambda warning: f"{warning.model_choice}, then `rag ingest --rebuild PATH...`.",
}


def cli_warning(warning: str) -> str:
    """The line the command line prints for one of a report's warnings."""
    kind = next((kind for kind in type(warning).__mro__ if kind in CLI_WARNINGS), None)
    if kind is None or not isinstance(warning, IngestWarning):
        return warning
    return f"{warning.problem} {CLI_WARNINGS[kind](warning)}"


def cli_wording(error: RagError) -> tuple[str, int]:
    """The line the command line prints for `error`, and its exit code."""
    wording = next(CLI_ERRORS[kind] for kind in type(error).__mro__ if kind in CLI_ERRORS)
    remedy = wording.remedy(error) if wording.remedy else error.remedy
    return " ".join(part for part in (error.problem, remedy) if part), wording.exit_code


# ctx.meta is shared by the group's context and the command's, which is gone once its error reaches the group.
JSON_REQUESTED = "rag.json"


def remember_json(ctx: typer.Context, value: bool) -> bool:
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


class RagGroup(TyperGroup):
    """The `rag` command group: maps every error its commands raise to one line on stderr and its exit code.

    A reader that closed stdout (`rag search ... | head -1`) got what it wanted: that ends quietly.
    """

    # typer hands its groups its own Context, a click Context with more: the narrower type is right here.
    def invoke(self, ctx: typer.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except RagError as exc:
            message, exit_code = cli_wording(exc)
            err.print(f"Error: {escape(message)}")
            _json_error(ctx, message, exit_code)
            ctx.exit(exit_code)
        except KeyboardInterrupt:
            err.print("Interrupted.")
            ctx.exit(130)
        except (typer.Exit, typer.Abort, TyperException):  # exits, and usage errors typer shows itself
            raise
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and stdout_closed():
                discard_stdout()
                ctx.exit(0)
            if debug_enabled():
                raise
            detail = f": {exc}" if str(exc) else ""
            err.print(f"Error: {type(exc).__name__}{escape(detail)}")
            err.print(DEBUG_HINT)
            _json_error(ctx, f"{type(exc).__name__}{detail}", 1)
            ctx.exit(1)


@contextlib.contextmanager
def ctrl_c_noticed() -> Iterator[threading.Event]:
    """Ctrl-C raises KeyboardInterrupt as always, and is also noted in the event yielded: one that
    lands in llama.cpp's log callback (while the model loads) is swallowed by ctypes, and the
    command would run on as if no key had been pressed."""
    noticed = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    if previous is signal.SIG_IGN:  # started in the background by a shell: Ctrl-C is not ours to take
        yield noticed
        return

    def interrupt(signum, frame):
        noticed.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    try:
        yield noticed
    finally:
        signal.signal(signal.SIGINT, previous)
