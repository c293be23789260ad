"""How the routes answer, native and OpenAI-compatible alike: an error as one JSON body with the
status code that says what happened, an event stream that reaches the reader as it is written, and
work that stops when the client goes away."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, AsyncIterator, Awaitable, Callable, TypeVar

from fastapi import Request
from fastapi.responses import Response, StreamingResponse

from rag.errors import IndexBusyError, NoIndexError, RagError, UsageError
from rag.server.capacity import ServerBusyError
from rag.server.security import error_body
from rag.server.service import ChunkNotFoundError, DocumentNotIndexedError, IngestOffError, OutsideRootsError, UnknownCollectionError
from rag.server.tokens import MissingScopeError

T = TypeVar("T")


# The HTTP status of each error a client can act on; an error takes the entry of its nearest class.
# The body carries the library's own message (its remedy names settings and arguments, not flags).
HTTP_STATUSES: dict[type[RagError], int] = {
    UnknownCollectionError: 404,
    ChunkNotFoundError: 404,
    DocumentNotIndexedError: 404,
    NoIndexError: 404,
    IngestOffError: 403,
    OutsideRootsError: 403,
    MissingScopeError: 403,
    ServerBusyError: 503,
    IndexBusyError: 409,
    UsageError: 400,
    RagError: 500,
}


# Remedies a client of the server acts on otherwise than a Python caller, in its words (the library's
# otherwise): a token's holder cannot call add_token, the server's owner runs the command.
HTTP_REMEDIES: dict[type[RagError], Callable[[Any], str]] = {
    MissingScopeError: lambda error: (
        "the server's owner can issue one that has it "
        f"(`rag serve token add NAME --collection {error.collection} --scope {error.scope}`)."
    ),
}


def status_of(exc: RagError) -> int:
    return next(HTTP_STATUSES[kind] for kind in type(exc).__mro__ if kind in HTTP_STATUSES)


def http_message(exc: RagError) -> str:
    """What the error body says: the problem, and the remedy in the server's words where it has its own."""
    remedy = next((HTTP_REMEDIES[kind] for kind in type(exc).__mro__ if kind in HTTP_REMEDIES), None)
    return " ".join(part for part in (exc.problem, remedy(exc)) if part) if remedy else str(exc)


def rag_error_body(exc: BaseException) -> tuple[dict[str, Any], int]:
    """An exception as the error body and status code; anything but a RagError is a bug, named by its type."""
    if isinstance(exc, RagError):
        code = status_of(exc)
        return error_body(http_message(exc), type(exc).__name__, code), code
    detail = f": {exc}" if str(exc) else ""
    return error_body(f"{type(exc).__name__}{detail}", "internal_error", 500), 500


async def until_disconnected(request: Request, work: Awaitable[T]) -> T | Response:
    """`work`'s result; cancelled as soon as the client goes away (a generation then stops at its next token).

    For a client that left, the response is an empty 499 (nginx's "client closed request") that nobody reads.
    """
    task = asyncio.ensure_future(work)

    async def client_gone() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    watcher = asyncio.ensure_future(client_gone())
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return Response(status_code=499)
    return task.result()


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    # no-cache and no proxy buffering: each token should reach the reader as it is generated
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
