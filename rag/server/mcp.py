"""The knowledge base as an MCP server (the official `mcp` SDK), for desktop assistants and agents.

Tools: `search` (hits with citations), `ask` (answer, sources, evidence), `get_chunk`, `status` and
`collections`; each chunk is also a resource, `chunk://{chunk_id}`. Over HTTP each call needs the
read scope of its request's token on the collection, and `collections` lists only those it may read;
over stdio the local user may do everything. The tools call the same service as the HTTP
routes, with the same limits, so an answer here is the answer `rag ask` gives. A mistake (a bogus
chunk id, k beyond its bound) is a tool error carrying rag's one-line message, logged without a
traceback; the synchronous tools run on worker threads, never on the event loop.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Literal, TypeVar

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ResourceNotFoundError, ToolError

from rag.errors import RagError
from rag.server.responses import http_message
from rag.server.security import authorize, identity_of
from rag.server.service import AnswerOptions, ChunkNotFoundError, KnowledgeService, citation_suffix, sources_payload
from rag.server.tokens import Identity, MissingScopeError, admin_identity

INSTRUCTIONS = (
    "Search and ask the user's own documents (a local knowledge base). `search` finds passages with their "
    "file and location; `ask` answers with numbered citations [n], the sources and quoted evidence; "
    "`get_chunk` reads one passage and names its neighbours. Answers come in the language of the question."
)
Tool = TypeVar("Tool", bound=Callable[..., Any])
STDIO_NAME = "(stdio)"


def rag_errors_as_tool_errors(tool: Tool) -> Tool:
    """rag's errors reach the client as the tool's error message, as anticipated failures (no traceback)."""

    @functools.wraps(tool)
    def sync_tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return tool(*args, **kwargs)
        except RagError as exc:
            raise ToolError(http_message(exc)) from None

    @functools.wraps(tool)
    async def async_tool(*args: Any, **kwargs: Any) -> Any:
        try:
            return await tool(*args, **kwargs)
        except RagError as exc:
            raise ToolError(http_message(exc)) from None

    return async_tool if inspect.iscoroutinefunction(tool) else sync_tool  # type: ignore[return-value]


def _http_scope(ctx: Context) -> dict[str, Any] | None:
    """The ASGI scope of the HTTP request that carried the call; None over stdio."""
    request = ctx.request_context.request
    return request.scope if request is not None else None


def caller(ctx: Context) -> Identity:
    scope = _http_scope(ctx)
    return identity_of(scope) if scope is not None else admin_identity(STDIO_NAME)


def mcp_server(service: KnowledgeService) -> MCPServer:
    # WARNING: at its default (INFO) the SDK sets up logging for the whole process, a line per request.
    server = MCPServer("rag", instructions=INSTRUCTIONS, log_level="WARNING")

    def permit(ctx: Context, collection: str | None) -> None:
        """MissingScopeError (a tool error) unless the call's token may read `collection`."""
        scope = _http_scope(ctx)
        if scope is not None:
            authorize(scope, collection or service.settings.collection, "read")

    @server.tool()
    @rag_errors_as_tool_errors
    def search(
        ctx: Context, query: str, k: int = 5, mode: Literal["hybrid", "dense", "keyword"] | None = None,
        collection: str | None = None,
    ) -> list[dict[str, Any]]:
        """The passages of the user's documents that best match `query`, best first, with file, location and chunk id."""
        permit(ctx, collection)
        return [hit.to_dict() for hit in service.search(query, collection, k=k, mode=mode).hits]

    @server.tool()
    @rag_errors_as_tool_errors
    async def ask(ctx: Context, question: str, collection: str | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        """Answer `question` from the user's documents: the answer with [n] citations, its sources and evidence."""
        permit(ctx, collection)
        turn = service.answer_turn(question, (), collection, AnswerOptions(max_tokens=max_tokens))
        await turn.text()
        answer = turn.stream.answer
        text = answer.answer + citation_suffix(answer, bool(turn.stream.state.get("declined")))
        return {
            "answer": text,
            "language": answer.language,
            "sources": sources_payload(answer),
            "unsupported": answer.unsupported,
            "retracted": answer.retracted,
            "warnings": answer.warnings,
        }

    @server.tool()
    @rag_errors_as_tool_errors
    def get_chunk(ctx: Context, chunk_id: str, collection: str | None = None) -> dict[str, Any]:
        """One passage by its chunk id: its text, file, location, and the ids of the passages before and after it."""
        permit(ctx, collection)
        return service.chunk(chunk_id, collection)

    @server.tool()
    @rag_errors_as_tool_errors
    def status(ctx: Context, collection: str | None = None) -> dict[str, Any]:
        """What the knowledge base holds: files, chunks, embedding model, last sync, and whether its stores agree."""
        permit(ctx, collection)
        return service.status(collection)

    @server.tool()
    @rag_errors_as_tool_errors
    def collections(ctx: Context) -> list[str]:
        """The collections (knowledge bases) that the other tools' `collection` may name."""
        identity = caller(ctx)
        return [name for name in service.collection_names() if identity.allows(name, "read")]

    @server.resource("chunk://{chunk_id}", mime_type="text/plain")
    def chunk_text(chunk_id: str, ctx: Context) -> str:
        """A passage of the user's documents, by chunk id."""
        try:
            permit(ctx, None)
            return service.chunk(chunk_id)["text"]
        except (ChunkNotFoundError, MissingScopeError) as exc:
            raise ResourceNotFoundError(http_message(exc)) from None

    return server
