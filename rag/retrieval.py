"""Retrieval only: rank stored chunks by similarity to a query."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ingest.index import Index
from rag.errors import UsageError
from rag.settings import Settings

SNIPPET_CHARS = 240


@dataclass
class SearchHit:
    rank: int
    score: float  # cosine similarity, 1.0 is identical
    source: str
    text: str
    chunk_id: str
    location: dict[str, Any] = field(default_factory=dict)

    @property
    def location_label(self) -> str:
        parts = []
        if "page" in self.location:
            parts.append(f"page {self.location['page']}")
        if "heading" in self.location:
            parts.append(f"§ {self.location['heading']}")
        if "start_line" in self.location:
            parts.append(f"lines {self.location['start_line']}-{self.location['end_line']}")
        return ", ".join(parts)

    @property
    def body(self) -> str:
        """The chunk text without the heading path that was prefixed for embedding."""
        heading = self.location.get("heading")
        if heading and self.text.startswith(heading):
            return self.text[len(heading) :].lstrip("\n")
        return self.text

    def snippet(self, width: int = SNIPPET_CHARS) -> str:
        flat = " ".join(self.body.split())
        return flat if len(flat) <= width else flat[: width - 1].rsplit(" ", 1)[0] + "…"

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank,
            "score": round(self.score, 4),
            "source": self.source,
            "location": self.location,
            "chunk_id": self.chunk_id,
            "text": self.body,
        }


LOCATION_KEYS = ("page", "heading", "start_line", "end_line")


def search(query: str, settings: Settings, k: int | None = None) -> list[SearchHit]:
    if not query.strip():
        raise UsageError("The query is empty: give some words to search for.")
    index = Index(settings)
    index.require()
    index.check_fingerprint()
    from ingest.embedding import LocalEmbeddings

    embedder = LocalEmbeddings(settings.embedding)
    vector = embedder.embed_query(query)
    index.check_dimension(len(vector))
    stored = index.query(vector, k or settings.search.k)
    return [
        SearchHit(
            rank=rank,
            score=1.0 - chunk.distance,
            source=chunk.metadata.get("source", ""),
            text=chunk.text,
            chunk_id=chunk.id,
            location={key: chunk.metadata[key] for key in LOCATION_KEYS if key in chunk.metadata},
        )
        for rank, chunk in enumerate(stored, start=1)
    ]
