"""`rag serve`: the knowledge base over HTTP (native and OpenAI-compatible routes, a web page, MCP at
/mcp) and, with `--mcp`, MCP over stdio.

    from rag.server import serve
    serve(settings, host="127.0.0.1", port=8000, token=None)

Loopback by default; any other address needs a token. FastAPI, uvicorn and the MCP SDK are the
`serve` extra, imported only when a server starts.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Sequence

from rag.errors import UsageError
from rag.server.access import check_bind
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
    check_bind(host, token)  # before seconds of loading
    _require_server_packages()
    import uvicorn

    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    service = KnowledgeService(settings)
    try:
        app = create_app(service, token=token, cors_origins=cors_origins, host=host)
        shown = f"[{host}]" if ":" in host else host
        print(f"Serving {settings.index_path} at http://{shown}:{port}/ (OpenAI API at /v1); Ctrl-C stops.", file=sys.stderr)
        uvicorn.run(app, host=host, port=port, log_level="warning")
    finally:
        service.close()


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
