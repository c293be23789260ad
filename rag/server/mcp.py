"""The knowledge base as an MCP server (the official `mcp` SDK), for desktop assistants and agents.

Tools: `search` (hits with citations), `ask` (answer, sources, evidence), `get_chunk` and `status`;
each chunk is also a resource, `chunk://{chunk_id}`. The tools call the same service as the HTTP
routes, so an answer here is the answer `rag ask` gives.
"""

from __future__ import annotations

from typing import Any, Literal

from mcp.server.mcpserver import MCPServer

from rag.server.service import AnswerOptions, KnowledgeService, citation_suffix, sources_payload

INSTRUCTIONS = (
    "Search and ask the user's own documents (a local knowledge base). `search` finds passages with their "
    "file and location; `ask` answers with numbered citations [n], the sources and quoted evidence; "
    "`get_chunk` reads one passage and names its neighbours."
)


def mcp_server(service: KnowledgeService) -> MCPServer:
    server = MCPServer("rag", instructions=INSTRUCTIONS)

    @server.tool()
    def search(
        query: str, k: int = 5, mode: Literal["hybrid", "dense", "keyword"] | None = None, collection: str | None = None
    ) -> list[dict[str, Any]]:
        """The passages of the user's documents that best match `query`, best first, with file, location and chunk id."""
        return [hit.to_dict() for hit in service.search(query, collection, k=k, mode=mode).hits]

    @server.tool()
    async def ask(question: str, collection: str | None = None, max_tokens: int | None = None) -> dict[str, Any]:
        """Answer `question` from the user's documents: the answer with [n] citations, its sources and evidence."""
        turn = service.answer_turn(question, (), collection, AnswerOptions(max_tokens=max_tokens))
        await turn.text()
        answer = turn.stream.answer
        text = answer.answer + citation_suffix(answer, bool(turn.stream.state.get("declined")))
        return {
            "answer": text,
            "sources": sources_payload(answer),
            "unsupported": answer.unsupported,
        }

    @server.tool()
    def get_chunk(chunk_id: str, collection: str | None = None) -> dict[str, Any]:
        """One passage by its chunk id: its text, file, location, and the ids of the passages before and after it."""
        return service.chunk(chunk_id, collection)

    @server.tool()
    def status(collection: str | None = None) -> dict[str, Any]:
        """What the knowledge base holds: files, chunks, embedding model, last sync, and whether its stores agree."""
        return service.status(collection)

    @server.resource("chunk://{chunk_id}", mime_type="text/plain")
    def chunk_text(chunk_id: str) -> str:
        """A passage of the user's documents, by chunk id."""
        return service.chunk(chunk_id)["text"]

    return server
