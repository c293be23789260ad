"""`rag serve token add | list | revoke`: the named tokens of `rag serve`, each with scopes per collection.

The commands are their own typer app; `add_token_commands` makes `rag serve token ...` reach them
while `rag serve` itself stays the command that serves. They need no server package.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import click
import typer
from typer.core import TyperCommand

from rag.server.tokens import SCOPES, add_token, list_tokens, revoke_token, tokens_path
from rag.settings import load_settings

app = typer.Typer(
    name="token",
    help="Named tokens for `rag serve`, each with scopes per collection (read, write, admin).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="Settings file (default: ./rag.toml, then the user config dir).")
]


def _path(config: Path | None) -> Path:
    """serve.tokens_file, by default HOME/serve-tokens.json."""
    return tokens_path(load_settings(config))


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Who holds the token; it names them in the server's log.")],
    collection: Annotated[
        list[str], typer.Option("--collection", help="A collection the token may reach (repeatable); * for every one.")
    ],
    scope: Annotated[
        str, typer.Option("--scope", help=f"What it may do there: {', '.join(SCOPES)} (each includes the ones before).")
    ] = "read",
    config: ConfigOption = None,
) -> None:
    """Create a token and print it, the only time it is shown; the file keeps its hash."""
    path = _path(config)
    token = add_token(path, name, dict.fromkeys(collection, scope))
    typer.echo(token)
    typer.echo(f"Added {name!r} ({scope} on {', '.join(collection)}) to {path}; a running server accepts it now.", err=True)


@app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")] = False,
    config: ConfigOption = None,
) -> None:
    """The tokens' names, scopes and creation times (never the tokens)."""
    path = _path(config)
    tokens = list_tokens(path)
    if as_json:
        typer.echo(json.dumps(tokens, indent=2))
        return
    if not tokens:
        typer.echo(f"No named tokens in {path}; add one with `rag serve token add NAME --collection X --scope read`.", err=True)
    for token in tokens:
        scopes = ", ".join(f"{scope} on {collection}" for collection, scope in token["scopes"].items())
        typer.echo(f"{token['name']}\t{scopes}\t{token['created']}")


@app.command("revoke")
def revoke(
    name: Annotated[str, typer.Argument(help="The token's name, as `rag serve token list` shows it.")],
    config: ConfigOption = None,
) -> None:
    """Remove a token; a running server refuses it from its next request."""
    path = _path(config)
    revoke_token(path, name)
    typer.echo(f"Revoked {name!r} in {path}.", err=True)


class _ServeWithTokenCommands(TyperCommand):
    """`rag serve` as it is, and `rag serve token ...` handed to this module's commands."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any):
        if args[:1] == ["token"]:
            tokens = typer.main.get_command(app)
            return tokens.make_context(f"{info_name} token", args[1:], parent=parent, **extra)
        return super().make_context(info_name, args, parent=parent, **extra)

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_epilog(ctx, formatter)
        formatter.write_paragraph()
        formatter.write_text("Tokens: `rag serve token add NAME --collection X --scope read`, `list`, `revoke NAME`.")


def add_token_commands(main: typer.Typer) -> None:
    """Give the `serve` command of the main CLI its `token` subcommands."""
    for command in main.registered_commands:
        name = command.name or (command.callback.__name__ if command.callback else None)
        if name == "serve":
            command.cls = _ServeWithTokenCommands
            return
    raise RuntimeError("the main CLI has no serve command to give token subcommands")
