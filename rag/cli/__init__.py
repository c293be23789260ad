"""The `rag` command. Each command parses its arguments, calls one library function and prints.

Results go to stdout; progress, warnings and hints go to stderr. Errors become one line and an
exit code in `RagGroup` (rag/cli/errors.py), by the one table that words them for the command line.

Each module below holds a group of commands on a `typer.Typer` of its own; a new one takes one
`app.add_typer` line here (a sub-app of `rag serve` one line on `serve.serve_commands`).
"""

from __future__ import annotations

from typing import Annotated

import typer

from rag.cli import answers, batch, evaluate, index, migrate, models, search, serve, tokens
from rag.cli.console import display_path, flush_stdout
from rag.cli.errors import DEBUG_HINT, RagGroup
from rag.cli.options import KNOWLEDGE_BASE_OPTIONS, MODEL_OPTIONS, PromptStyle, SearchMode, knowledge_base

__all__ = [
    "DEBUG_HINT", "KNOWLEDGE_BASE_OPTIONS", "MODEL_OPTIONS", "PromptStyle", "SearchMode", "app", "display_path",
    "knowledge_base", "main",
]

app = typer.Typer(
    cls=RagGroup,
    help="Local-first RAG over your own documents. Nothing leaves your machine.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        typer.echo(f"rag {version('rag')}")
        raise typer.Exit()


@app.callback()
def _options(
    _version: Annotated[
        bool, typer.Option("--version", help="Print rag's version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    pass


app.add_typer(index.commands)  # ingest, status, files, collections, repair
app.add_typer(migrate.commands)
app.add_typer(search.commands)
app.add_typer(answers.commands)  # ask, chat
app.add_typer(evaluate.commands)
app.add_typer(batch.commands)  # summarize, extract
app.add_typer(models.commands)
serve.serve_commands.add_typer(tokens.commands, name="token")  # rag serve token add | list | revoke
app.add_typer(serve.serve_commands, name="serve")
app.add_typer(serve.commands)  # mcp


def main() -> None:
    try:
        app()
    finally:
        flush_stdout()
