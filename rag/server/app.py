"""The HTTP app: the native routes, the OpenAI-compatible ones (openai_routes.py), MCP over
streamable HTTP at /mcp (mcp.py) and the web page (static/index.html).

Every request first passes `RequestGuard` (security.py): a Host that names no address of this
server, a foreign Origin, an OPTIONS that is no CORS preflight and an oversized body are refused
before any route runs. Every error is one line of JSON, `{"error": {"message", "type", "code"}}`
(the shape OpenAI clients read), with the status code that says what happened: a client's mistake
is a 4xx, never a 500. With a token, every route but `/health` and the page itself (static HTML
that holds no data and asks for the token) needs `Authorization: Bearer TOKEN`; a named token
(tokens.py) reaches only the collections it has scopes on, and lists only those. No CORS headers
unless origins are configured. Each request is logged with its token's name (security.AccessLog).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from pathlib import Path
from typing import Any, AsyncIterator, Callable, Literal, Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from ingest.loaders import decode_text
from rag.errors import LoadError, RagError
from rag.languages import DEFAULT, page_texts
from rag.server.access import check_token
from rag.server.capacity import ServerBusyError
from rag.server.responses import event_stream, rag_error_body
from rag.server.security import (
    AccessLog, BodyTooLarge, HostRule, RequestGuard, TokenGuard, authorize, content_security_policy, error_response,
    identity_of,
)
from rag.server.service import AnswerOptions, KnowledgeService, ModelTurn, citation_suffix, sources_payload
from rag.server.tokens import TokenKeeper

STATIC = Path(__file__).parent / "static"
# Where the page holds its words in every language (a JSON data block, which no policy runs).
PAGE_TEXTS_MARK = "{{page_texts}}"
# What /api/documents serves a document as: a PDF or an image for the browser to show; anything else
# as plain text, so that no document (an HTML page, an SVG) runs script in the page's origin.
DOCUMENT_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}


def sse(data: Any, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data, ensure_ascii=False)}\n\n"


class SearchRequest(BaseModel):
    """The options of `rag search`, by the same names."""

    query: str
    k: int | None = Field(None, ge=1)
    mode: Literal["hybrid", "dense", "keyword"] | None = None
    where: dict[str, str | int] | None = None
    paths: list[str] | None = None
    mmr: bool = False
    explain: bool = False
    collection: str | None = None


class AskRequest(BaseModel):
    question: str
    history: list[tuple[str, str]] = Field(default_factory=list, description="(question, answer) turns before it.")
    collection: str | None = None
    k: int | None = Field(None, ge=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0)


class IngestRequest(BaseModel):
    paths: list[str] = Field(min_length=1, description="Absolute paths inside serve.ingest_roots on the server's machine.")
    dry_run: bool = False


class _ProgressEvents:
    """An ingest's progress (rag's IngestProgress) as events for the request's event loop: each
    `progress` event says how far the ingest is, against the totals of `start`."""

    def __init__(self, send: Callable[[str | None, Any], None]):
        self.send = send
        self.done = {"files": 0, "chunks": 0, "done_bytes": 0}

    def start(self, total_files: int, total_bytes: int) -> None:
        self.send("start", {"files": total_files, "bytes": total_bytes})

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
        for key, step in (("files", files), ("chunks", chunks), ("done_bytes", done_bytes)):
            self.done[key] += step
        self.send("progress", dict(self.done))

    def finish(self) -> None:
        pass


async def ingest_events(service: KnowledgeService, request: IngestRequest) -> AsyncIterator[str]:
    """SSE for /api/ingest: `start`, `progress` as files are embedded, then the `report` (or an `error`).

    A client that goes away stops the ingest at its next file, and frees the index for the next one.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str | None, Any]] = asyncio.Queue()
    cancelled = threading.Event()

    def send(name: str | None, data: Any) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, (name, data))

    def work() -> None:
        try:
            report = service.ingest(request.paths, _ProgressEvents(send), request.dry_run, cancelled)
            send("report", report.to_dict())
        except Exception as exc:  # reported to the client that asked
            send("error", rag_error_body(exc)[0])
        finally:
            send(None, None)

    # Its own thread, not the model's: answers and searches go on while it embeds.
    threading.Thread(target=work, name="rag-ingest", daemon=True).start()
    try:
        while True:
            name, data = await queue.get()
            if name is None:
                return
            yield sse(data, name)
    finally:
        cancelled.set()


def search_payload(service: KnowledgeService, request: SearchRequest) -> Any:
    """What `rag search --json` prints: the hits, or with explain the mode, the hits and what was dropped."""
    result = service.search(
        request.query, request.collection, k=request.k, mode=request.mode, where=request.where, paths=request.paths,
        mmr=request.mmr or None,
    )
    hits = [hit.to_dict(request.explain) for hit in result.hits]
    if not request.explain:
        return hits
    return {"mode": result.mode, "hits": hits, "dropped": [candidate.to_dict() for candidate in result.dropped]}


async def answer_events(turn: ModelTurn) -> AsyncIterator[str]:
    """SSE for /api/ask: `token` events, then `sources`, `evidence` and the complete `answer`."""
    try:
        async for token in turn.tokens():
            yield sse({"text": token}, "token")
    except Exception as exc:  # the status line is sent: the error travels as an event
        yield sse(rag_error_body(exc)[0], "error")
        return
    answer = turn.stream.answer
    suffix = citation_suffix(answer, bool(turn.stream.state.get("declined")))
    if suffix:
        yield sse({"text": suffix}, "token")
    yield sse(sources_payload(answer), "sources")
    yield sse([quote.to_dict() for quote in answer.evidence], "evidence")
    yield sse({**answer.to_dict(), "answer": answer.answer + suffix}, "answer")


def _page() -> str:
    """The web page with its words in every language rag has texts for ("<" escaped: JSON inside HTML)."""
    words = json.dumps(page_texts(), ensure_ascii=False).replace("<", "\\u003c")
    return (STATIC / "index.html").read_text(encoding="utf-8").replace(PAGE_TEXTS_MARK, words)


def _request_problem(error: dict[str, Any]) -> str:
    """'field: what is wrong' for one error of a request's body."""
    if error["type"] == "json_invalid":
        return f"the body is not valid JSON (at character {error['loc'][-1]}); send a JSON object"
    where = ".".join(str(part) for part in error["loc"] if part != "body") or "body"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


def create_app(
    service: KnowledgeService,
    token: str | None = None,
    cors_origins: Sequence[str] = (),
    host: str = "127.0.0.1",
    tokens: TokenKeeper | None = None,
) -> FastAPI:
    """The app over a loaded service; `token` (admin) and the named `tokens` guard every route but /health and the page.

    `host` is where it listens: requests whose Host header names another machine are refused on
    every route (DNS rebinding), as are those from another site's page; `serve.allowed_hosts`
    names more hosts (a reverse proxy's).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    from rag.server.mcp import mcp_server
    from rag.server.openai_routes import openai_router

    check_token(token)
    serve = service.settings.serve
    # RequestGuard checks Host and Origin for /mcp as for every route; the SDK's own check would refuse a proxy's name.
    mcp_http = mcp_server(service).streamable_http_app(
        streamable_http_path="/mcp", host=host, max_request_body_size=serve.max_body_kb * 1024,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False),
    )
    page = _page()
    page_policy = content_security_policy(page)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with mcp_http.router.lifespan_context(mcp_http):  # the MCP session manager's task group
            yield

    app = FastAPI(title="rag", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)  # no CDN docs page

    @app.exception_handler(RagError)
    async def on_rag_error(request: Request, exc: RagError) -> JSONResponse:
        body, code = rag_error_body(exc)
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, ServerBusyError) else None
        return JSONResponse(body, status_code=code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def on_invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = "; ".join(_request_problem(error) for error in exc.errors())
        return error_response(f"Invalid request: {problems}", "invalid_request_error", 400)

    @app.exception_handler(HTTPException)
    async def on_http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind = "request_too_large" if isinstance(exc, BodyTooLarge) else "invalid_request_error" if exc.status_code < 500 else "server_error"
        return error_response(str(exc.detail), kind, exc.status_code)

    @app.exception_handler(Exception)
    async def on_bug(request: Request, exc: Exception) -> JSONResponse:
        body, code = rag_error_body(exc)
        return JSONResponse(body, status_code=code)

    @app.get("/health")
    async def health() -> dict[str, Any]:
        # async and lock-free: answers at once whatever the model is doing
        return {"status": "ok", **service.gate.health()}

    @app.get("/", include_in_schema=False)
    async def web_page() -> HTMLResponse:
        return HTMLResponse(page)

    default = service.settings.collection

    @app.post("/api/search")
    def search(request: SearchRequest, http: Request) -> Any:  # sync: FastAPI runs it on a worker thread, off the event loop
        authorize(http.scope, request.collection or default, "read")
        return search_payload(service, request)

    @app.post("/api/ask")
    def ask(request: AskRequest, http: Request) -> StreamingResponse:
        authorize(http.scope, request.collection or default, "read")
        # Made before the stream starts: a mistake in the request is a 4xx, not an error event
        options = AnswerOptions(k=request.k, max_tokens=request.max_tokens, temperature=request.temperature)
        service.settings_for(request.collection)
        turn = service.answer_turn(request.question, request.history, request.collection, options)
        return event_stream(answer_events(turn))

    @app.get("/api/status")
    def status(http: Request, collection: str | None = None) -> dict[str, Any]:
        authorize(http.scope, collection or default, "read")
        return service.status(collection)

    @app.get("/api/collections")
    def collections(http: Request) -> list[str]:
        identity = identity_of(http.scope)
        return [name for name in service.collection_names() if identity.allows(name, "read")]

    @app.get("/api/me")
    def me(http: Request) -> dict[str, Any]:
        """Who the request's token is, the collections it may read, and the server's own collection."""
        identity = identity_of(http.scope)
        readable = [name for name in service.collection_names() if identity.allows(name, "read")]
        return {"name": identity.name, "collections": readable, "default": default}

    @app.get("/api/documents")
    def document(source: str, http: Request, collection: str | None = None) -> Response:
        """An indexed document's file (a PDF opens at a cited page in the browser's viewer); a text file
        as the index read it, in UTF-8 whatever its own encoding (CP949, Shift JIS, UTF-16)."""
        authorize(http.scope, collection or default, "read")
        path = service.document(source, collection)
        if media_type := DOCUMENT_TYPES.get(path.suffix.lower()):
            return FileResponse(path, media_type=media_type, content_disposition_type="inline")
        data = path.read_bytes()
        try:
            return PlainTextResponse(decode_text(data))
        except LoadError:  # no text (a .docx, a binary file): downloaded, never shown in the page's origin
            return Response(data, media_type="application/octet-stream")

    @app.post("/api/ingest")
    def ingest(request: IngestRequest, http: Request) -> StreamingResponse:
        authorize(http.scope, default, "write")  # ingest writes the collection the server was started with
        service.check_ingest(request.paths, request.dry_run)  # refused before the stream starts: a 4xx, not an error event
        return event_stream(ingest_events(service, request))

    @app.get("/api/chunks/{chunk_id}")
    def chunk(chunk_id: str, http: Request, collection: str | None = None, language: str = DEFAULT) -> dict[str, Any]:
        authorize(http.scope, collection or default, "read")
        return service.chunk(chunk_id, collection, language)

    app.include_router(openai_router(service))
    app.router.routes.extend(mcp_http.routes)  # MCP over streamable HTTP at /mcp, behind the same guards
    app.add_middleware(TokenGuard, token=token, keeper=tokens)
    if cors_origins:  # outside the token guard: a browser reads a 401 only with the CORS headers on it
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    app.add_middleware(  # the outermost: nothing runs for a request it refuses
        RequestGuard, hosts=HostRule.for_bind(host, serve.allowed_hosts), cors_origins=cors_origins,
        max_body_bytes=serve.max_body_kb * 1024, page_policy=page_policy,
    )
    app.add_middleware(AccessLog)  # outside the guards: refused requests are logged too
    return app
