"""The in-memory vector store: a collection's chunks in numpy arrays, for notebooks and tests.

`vector_store.url = "memory://NAME"` chooses it. Every store opened with the same NAME and
collection in one process shares the chunks (an ingest and the searches after it open their own
Index), and nothing outlives the process: the manifest on disk then lists chunks a later
process cannot find, which `rag status --check` reports rather than repairs.

Similarity is cosine, a query filter keeps what `ChunkFilter.accepts` accepts (Chroma's `where`
for the filters rag builds: equality of metadata values, and the source among allowed ones), and
a collection keeps the dimension of its first vectors until it is dropped, as Chroma's does.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from ingest.errors import VectorDimensionError
from ingest.index.store import ChunkFilter, StoredChunk

if TYPE_CHECKING:
    import numpy as np

MEMORY_SCHEME = "memory"


@dataclass
class _Collection:
    dimension: int | None = None
    vectors: dict[str, "np.ndarray"] = field(default_factory=dict)  # unit length
    texts: dict[str, str] = field(default_factory=dict)
    metadatas: dict[str, dict[str, Any]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # searches may run on worker threads


# (memory://NAME, collection) -> its chunks, for the life of the process.
_COLLECTIONS: dict[tuple[str, str], _Collection] = {}
_COLLECTIONS_LOCK = threading.Lock()


class MemoryStore:
    """One collection of the in-memory space `url` (memory://NAME)."""

    def __init__(self, collection: str, url: str):
        self.collection_name = collection
        self.url = url

    def label(self) -> str:
        return f"the memory of this process ({self.url})"

    @property
    def _collection(self) -> _Collection:
        with _COLLECTIONS_LOCK:
            return _COLLECTIONS.setdefault((self.url, self.collection_name), _Collection())

    def _unit_rows(self, embeddings: Any, expected: int | None) -> "np.ndarray":
        import numpy as np

        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if expected is not None and rows.shape[1] != expected:
            raise VectorDimensionError(self.collection_name, self.label(), expected, rows.shape[1])
        norms = np.linalg.norm(rows, axis=1, keepdims=True)
        return rows / np.where(norms == 0, 1, norms)

    def add(
        self, ids: Sequence[str], embeddings: Any, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if not ids:
            return
        collection = self._collection
        with collection.lock:
            rows = self._unit_rows(embeddings, collection.dimension)
            collection.dimension = rows.shape[1]
            for chunk_id, row, text, metadata in zip(ids, rows, texts, metadatas):
                collection.vectors[chunk_id] = row
                collection.texts[chunk_id] = text
                collection.metadatas[chunk_id] = dict(metadata)

    def delete(self, ids: Sequence[str]) -> None:
        collection = self._collection
        with collection.lock:
            for chunk_id in ids:
                collection.vectors.pop(chunk_id, None)
                collection.texts.pop(chunk_id, None)
                collection.metadatas.pop(chunk_id, None)

    def get(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        collection = self._collection
        with collection.lock:
            return {
                chunk_id: StoredChunk(
                    chunk_id, collection.texts[chunk_id], dict(collection.metadatas[chunk_id]),
                    collection.vectors[chunk_id].copy() if vectors else None,
                )
                for chunk_id in ids
                if chunk_id in collection.texts
            }

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        collection = self._collection
        with collection.lock:
            return {chunk_id: collection.vectors[chunk_id].copy() for chunk_id in ids if chunk_id in collection.vectors}

    def query(
        self, embedding: Sequence[float], k: int, chunk_filter: ChunkFilter | None = None
    ) -> list[tuple[str, float]]:
        import numpy as np

        collection = self._collection
        with collection.lock:
            query = self._unit_rows(embedding, collection.dimension)[0]
            candidates = [
                chunk_id for chunk_id, metadata in collection.metadatas.items()
                if chunk_filter is None or chunk_filter.accepts(metadata)
            ]
            if not candidates:
                return []
            similarities = np.stack([collection.vectors[chunk_id] for chunk_id in candidates]) @ query
        nearest = np.argsort(-similarities, kind="stable")[:k]
        return [(candidates[i], float(similarities[i])) for i in nearest]

    def ids(self) -> set[str]:
        collection = self._collection
        with collection.lock:
            return set(collection.texts)

    def count(self) -> int:
        return len(self._collection.texts)

    def drop(self) -> None:
        with _COLLECTIONS_LOCK:
            _COLLECTIONS.pop((self.url, self.collection_name), None)
