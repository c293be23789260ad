"""`rag serve`: the knowledge base over HTTP (native and OpenAI-compatible routes, a web page, MCP at
/mcp) and, with `--mcp`, MCP over stdio.

    from rag.server import serve
    serve(settings, host="127.0.0.1", port=8000, token=None)

Loopback by default; any other address needs a token, the server's own or named ones in the
tokens file (tokens.py, `rag serve token add`). FastAPI, uvicorn and the MCP SDK are the
`serve` extra, imported only when a server starts.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import socket
import sys
from typing import Sequence

from rag.errors import UsageError
from rag.server.access import check_bind
from rag.server.tokens import TokenKeeper, tokens_path
from rag.settings import Settings

INSTALL_HINT = "pip install 'rag[serve]'"
SERVER_PACKAGES = ("fastapi", "uvicorn", "mcp")


def _require_server_packages() -> None:
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise UsageError(f"rag serve needs {', '.join(missing)}, which is not installed: {INSTALL_HINT}")


def serve(
    settings: Settings,
    host: str | None = None,
    port: int | None = None,
    token: str | None = None,
    cors_origins: Sequence[str] | None = None,
) -> None:
    """Load the knowledge base and the model once, then serve HTTP until interrupted; what is not
    given comes from `settings.serve`."""
    host = host or settings.serve.host
    port = port or settings.serve.port
    cors_origins = settings.serve.cors_origins if cors_origins is None else cors_origins
    # Named tokens once the tokens file exists: even emptied later, it keeps every request needing one.
    path = tokens_path(settings)
    keeper = TokenKeeper(path) if path.exists() else None
    check_bind(host, token, named_tokens=keeper is not None)  # before seconds of loading
    _require_server_packages()
    import uvicorn

    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    with contextlib.closing(_listening_socket(host, port)) as listening:
        service = KnowledgeService(settings)
        try:
            app = create_app(service, token=token, cors_origins=cors_origins, host=host, tokens=keeper)
            shown = f"[{host}]" if ":" in host else host
            print(f"Serving {settings.index_path} at http://{shown}:{port}/ (OpenAI API at /v1); Ctrl-C stops.", file=sys.stderr)
            capacity = service.gate.capacity
            print(f"Answers at once: {capacity.parallel} ({capacity.reason}), {capacity.queue} more may wait.", file=sys.stderr)
            if keeper is not None:
                print(f"Named tokens from {path}.", file=sys.stderr)
            _log_requests()
            uvicorn.Server(uvicorn.Config(app, log_level="warning")).run(sockets=[listening])
        finally:
            service.close()


def _listening_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads: a port in use is one line at once, not
    uvicorn's error after seconds of loading."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    except socket.gaierror as exc:
        raise UsageError(f"Cannot serve on {host}: {exc.strerror}; give --host an address of this machine.") from None
    listening = socket.socket(family, socket.SOCK_STREAM)
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does: a restart reuses the port at once
    try:
        listening.bind((host, port))
    except OSError as exc:
        listening.close()
        raise UsageError(f"Cannot serve on {host}:{port}: {exc.strerror}; stop what uses it or choose another --port.") from None
    return listening


def _log_requests() -> None:
    """The access log (security.AccessLog) on stderr, a line per request, beside uvicorn's warnings."""
    from rag.server.security import ACCESS_LOG

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(logging.INFO)
    ACCESS_LOG.propagate = False


def serve_mcp(settings: Settings) -> None:
    """Serve the MCP tools over stdin/stdout, for a desktop assistant that starts `rag serve --mcp`."""
    _require_server_packages()
    from rag.server.mcp import mcp_server
    from rag.server.service import KnowledgeService

    service = KnowledgeService(settings)
    try:
        mcp_server(service).run("stdio")
    finally:
        service.close()
