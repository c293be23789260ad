"""The vector store as the index sees it: a small protocol, and the chunk filter it queries with.

The Index facade (ingest/index/__init__.py) writes and reads vectors only through these
operations, so a store is one module implementing them (ingest/index/chroma.py is the one there
is). The manifest, not the store, says which chunks exist: a store may hold a few more for a
moment (written ahead of a manifest commit) or fewer (lost); Index.problems() compares the two.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, Sequence

if TYPE_CHECKING:
    import numpy as np


def url_without_password(url: str) -> str:
    """`url` with no password in it (neither user:password@ nor ?password=): what labels, messages and
    the index's record of where its vectors are show of a store's URL."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        credentials, host = netloc.rsplit("@", 1)
        netloc = f"{credentials.split(':', 1)[0]}@{host}"
    query = urllib.parse.urlencode(
        [(key, value) for key, value in urllib.parse.parse_qsl(parts.query, keep_blank_values=True) if key != "password"]
    )
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


@dataclass
class StoredChunk:
    id: str
    text: str
    metadata: dict[str, Any]
    embedding: "np.ndarray | None"


@dataclass
class ChunkFilter:
    """Metadata equality (`{"source": "/abs/file.md"}`, `{"page": 2}`) and allowed sources (from globs)."""

    equals: dict[str, Any] = field(default_factory=dict)
    sources: list[str] | None = None

    @property
    def empty(self) -> bool:
        return not self.equals and self.sources is None

    @property
    def impossible(self) -> bool:
        return self.sources == [] or ("source" in self.equals and self.sources is not None
                                      and self.equals["source"] not in self.sources)

    def keyword_sources(self) -> list[str] | None:
        if "source" in self.equals:
            return [self.equals["source"]]
        return self.sources

    def accepts(self, metadata: dict[str, Any]) -> bool:
        if self.sources is not None and metadata.get("source") not in self.sources:
            return False
        return all(metadata.get(key) == value for key, value in self.equals.items())


class VectorStore(Protocol):
    """One collection's chunks: id, vector (unit length; similarity is cosine), text and metadata.

    Opening the store (a client, a directory on disk, a connection to a server) waits until an
    operation needs it, so commands that only read the manifest never touch it.
    """

    def label(self) -> str:
        """Where the vectors are, in words (for messages)."""
        ...

    def add(
        self, ids: Sequence[str], embeddings: Any, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        """Store these chunks; an id already there gets the new vector, text and metadata values.

        (Chroma keeps metadata keys the new chunk lacks; an id never comes back with other keys,
        since it is made of its file's path, content hash and position.)
        """
        ...

    def delete(self, ids: Sequence[str]) -> None:
        """Drop these chunks (ids not there are ignored)."""
        ...

    def get(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        """Text and metadata of those of `ids` that are stored, and their vectors if asked."""
        ...

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        """The vectors alone of those of `ids` that are stored."""
        ...

    def query(
        self, embedding: Sequence[float], k: int, chunk_filter: ChunkFilter | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the `k` nearest chunks that pass the filter, nearest first."""
        ...

    def ids(self) -> set[str]:
        """Every chunk id stored."""
        ...

    def count(self) -> int:
        """How many chunks are stored."""
        ...

    def drop(self) -> None:
        """Delete the whole collection, if the store has it."""
        ...
