"""`rag serve token add | list | revoke`: the named tokens of `rag serve`, each with scopes per collection.

They sit under `rag serve`, whose options (--config, --index ...) made the settings they get in
`ctx.obj`; they need no server package.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

import rag
from rag.server.tokens import SCOPES, add_token, list_tokens, revoke_token, scoped_collection, tokens_path

commands = typer.Typer(
    help="Named tokens for `rag serve`, each with scopes per collection (read, write, admin).", no_args_is_help=True
)


@commands.command("add")
def add(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Who holds the token; it names them in the server's log.")],
    collection: Annotated[
        list[str], typer.Option("--collection", help="A collection the token may reach (repeatable); * for every one.")
    ],
    scope: Annotated[
        str, typer.Option("--scope", help=f"What it may do there: {', '.join(SCOPES)} (each includes the ones before).")
    ] = "read",
) -> None:
    """Create a token and print it, the only time it is shown; the file keeps its hash."""
    path = tokens_path(ctx.obj)
    token = add_token(path, name, dict.fromkeys(collection, scope))
    collection = [scoped_collection(wanted) for wanted in collection]
    typer.echo(token)
    typer.echo(f"Added {name!r} ({scope} on {', '.join(collection)}) to {path}; a running server accepts it now.", err=True)
    existing = {summary.name for summary in rag.collections(ctx.obj)}
    if unknown := [wanted for wanted in collection if wanted != "*" and wanted not in existing]:
        held = f"it holds {', '.join(sorted(existing))}" if existing else "it holds none yet"
        typer.echo(
            f"Note: the index has no collection {', '.join(map(repr, unknown))} ({held}); the token reaches it once it is made.",
            err=True,
        )


@commands.command("list")
def list_command(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of text.")] = False,
) -> None:
    """The tokens' names, scopes and creation times (never the tokens)."""
    path = tokens_path(ctx.obj)
    tokens = list_tokens(path)
    if as_json:
        typer.echo(json.dumps(tokens, indent=2))
        return
    if not tokens:
        typer.echo(f"No named tokens in {path}; add one with `rag serve token add NAME --collection X --scope read`.", err=True)
    for token in tokens:
        scopes = ", ".join(f"{scope} on {collection}" for collection, scope in token["scopes"].items())
        typer.echo(f"{token['name']}\t{scopes}\t{token['created']}")


@commands.command("revoke")
def revoke(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="The token's name, as `rag serve token list` shows it.")],
) -> None:
    """Remove a token; a running server refuses it from its next request."""
    path = tokens_path(ctx.obj)
    revoke_token(path, name)
    typer.echo(f"Revoked {name!r} in {path}.", err=True)
