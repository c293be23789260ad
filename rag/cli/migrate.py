"""`rag migrate`: copy a collection to another backend (disk, a Chroma server, PostgreSQL)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

import rag
from rag.cli.console import err, out
from rag.cli.options import JsonOption, knowledge_base
from rag.settings import Settings

commands = typer.Typer()


@commands.command()
@knowledge_base(check_model=False)
def migrate(
    to: Annotated[
        str,
        typer.Option(
            "--to",
            help="Where to copy the collection: postgresql://USER@HOST:PORT/DB (password in ~/.pgpass or PGPASSWORD), "
            "a Chroma server http://HOST:PORT, or a folder for an index on disk.",
            show_default=False,
        ),
    ],
    to_index: Annotated[
        Optional[Path],
        typer.Option(
            "--to-index",
            help="With a Chroma server: the index folder for the copy's manifest and keywords (default: --index's).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Copy a collection (vectors as stored, texts, manifest, keywords, build record) to another backend,
    then check the copy. The original stays; a copy that stopped midway resumes when run again.

    --index, --collection, --chroma-url and --index-url name the collection to copy, as for the other commands."""
    report = rag.migrate(
        settings, to, index_dir=to_index,
        on_progress=None if as_json or not err.is_terminal else _show_progress,
        on_wait=lambda: err.print("Another ingest is writing to the collection or its target; waiting for it to finish…"),
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        out.print(escape(report.summary()))


def _show_progress(done: int, files: int) -> None:
    err.print(f"copied {done} of {files} files", end="\r")
