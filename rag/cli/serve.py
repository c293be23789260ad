"""`rag serve` (HTTP, or MCP with --mcp) and `rag mcp`, its other spelling for MCP clients' configs.

`rag serve` is a group as well as a command, so that commands about serving sit under it
(`serve_commands.add_typer(token_commands, name="token")` adds `rag serve token ...`); those
find the settings its options made in `ctx.obj`.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from rag.cli.options import knowledge_base
from rag.settings import Settings

serve_commands = typer.Typer()
commands = typer.Typer()  # `rag mcp`


def serve_mcp(settings: Settings) -> None:
    """MCP over stdin/stdout: what `rag mcp` and `rag serve --mcp` both run."""
    from rag import server

    server.serve_mcp(settings)


@serve_commands.callback(invoke_without_command=True)
@knowledge_base(model=True)
def serve(
    ctx: typer.Context,
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
    if ctx.invoked_subcommand is not None:
        ctx.obj = settings
        return
    if mcp:
        serve_mcp(settings)
        return
    from rag import server

    server.serve(settings, host=host, port=port, token=token, cors_origins=cors_origin or None)


@commands.command(name="mcp")
@knowledge_base(model=True)
def mcp_server(*, settings: Settings) -> None:
    """Serve the knowledge base to an MCP client (a desktop assistant) over stdin/stdout: `rag serve --mcp`."""
    serve_mcp(settings)
