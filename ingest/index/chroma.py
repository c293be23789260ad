"""The Chroma vector store: Chroma on disk (PersistentClient in INDEX_DIR/chroma) or a Chroma
server (HttpClient). The only module that knows Chroma's API; chromadb is imported when a
store is first used, so commands that never touch vectors never load it.
"""

from __future__ import annotations

import contextlib
import functools
import re
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Sequence

from ingest.errors import RagError, VectorDimensionError
from ingest.index.store import ChunkFilter, StoredChunk
from ingest.settings import CHROMA_COLLECTION_NAME, SPELT_NAME_PREFIX

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api.models.Collection import Collection
    from chromadb.api.types import Include

CHROMA_DIR = "chroma"
# How Chroma (on disk and as a server) refuses vectors of another length than the collection's.
_DIMENSION_REFUSED = re.compile(r"expecting embedding with dimension of (\d+), got (\d+)")


def chroma_collection_name(collection: str) -> str:
    """The name Chroma knows the collection by: its own, or where Chroma takes none of its letters
    (회의록, 会议记录, Übersicht), spelt in Punycode as a domain name is: xn--3o2bz7yuol."""
    if CHROMA_COLLECTION_NAME.match(collection):
        return collection
    return SPELT_NAME_PREFIX + collection.encode("punycode").decode("ascii")


def chroma_where(chunk_filter: ChunkFilter | None) -> dict[str, Any] | None:
    """The filter in Chroma's `where` syntax (None: no filter)."""
    if chunk_filter is None:
        return None
    conditions = [{key: value} for key, value in chunk_filter.equals.items()]
    if chunk_filter.sources is not None:
        conditions.append({"source": {"$in": chunk_filter.sources}})
    if len(conditions) > 1:
        return {"$and": conditions}
    return conditions[0] if conditions else None


class ChromaStore:
    """One Chroma collection, on disk in `index_path`/chroma or on the server at `url`.

    `recorded`: the index recorded this server as its own (then an unreachable server gets no
    "use the disk instead" hint).
    """

    def __init__(self, collection: str, index_path: Path, url: str | None = None, *, recorded: bool = False):
        self.collection_name = collection
        self._chroma_name = chroma_collection_name(collection)
        self.index_path = index_path
        self.directory = index_path / CHROMA_DIR
        self.url = url
        self.recorded = recorded

    def label(self) -> str:
        return f"the Chroma server {self.url}" if self.url else f"Chroma on disk in {self.directory}"

    @functools.cached_property
    def _client(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if self.url is None:
            return chromadb.PersistentClient(path=str(self.directory), settings=chroma_settings)
        url = urllib.parse.urlsplit(self.url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:  # chromadb raises several kinds for "nobody answers"
            if self.recorded:  # the index's own server: the disk is no alternative
                raise RagError(
                    f"No Chroma server answers at {self.url}, where the index at {self.index_path} keeps its "
                    "vectors; start it with `chroma run --path DIR --port PORT`."
                ) from exc
            raise RagError(
                f"No Chroma server answers at {self.url}; start one with `chroma run --path DIR --port PORT` "
                "or unset vector_store.url to use the index on disk."
            ) from exc
        return client

    @functools.cached_property
    def _collection(self) -> "Collection":
        # embedding_function=None: vectors always come from our embedder, never Chroma's default.
        return self._client.get_or_create_collection(
            self._chroma_name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def add(
        self, ids: Sequence[str], embeddings: Any, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        batch = self._client.get_max_batch_size()
        for start in range(0, len(ids), batch):
            end = start + batch
            with self._same_dimension():
                self._collection.upsert(
                    ids=list(ids[start:end]),
                    embeddings=embeddings[start:end],
                    documents=list(texts[start:end]),
                    metadatas=list(metadatas[start:end]),
                )

    @contextlib.contextmanager
    def _same_dimension(self) -> Iterator[None]:
        """Chroma's refusal of vectors of another length, as the error every store raises for it."""
        from chromadb.errors import InvalidArgumentError

        try:
            yield
        except InvalidArgumentError as exc:
            refused = _DIMENSION_REFUSED.search(str(exc))
            if refused is None:
                raise
            stored, given = int(refused[1]), int(refused[2])
            raise VectorDimensionError(self.collection_name, self.label(), stored, given) from exc

    def delete(self, ids: Sequence[str]) -> None:
        batch = self._client.get_max_batch_size()
        for start in range(0, len(ids), batch):
            self._collection.delete(ids=list(ids[start : start + batch]))

    def get(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        if not ids:
            return {}
        include: Include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        result = self._collection.get(ids=list(ids), include=include)
        texts, metadatas = result["documents"], result["metadatas"]
        assert texts is not None and metadatas is not None, "asked for in include"
        embeddings: Iterable[Any] | None = result["embeddings"] if vectors else [None] * len(result["ids"])
        assert embeddings is not None, "asked for in include"
        return {
            chunk_id: StoredChunk(chunk_id, text, dict(metadata or {}), embedding)
            for chunk_id, text, metadata, embedding in zip(result["ids"], texts, metadatas, embeddings)
        }

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        if not ids:
            return {}
        result = self._collection.get(ids=list(ids), include=["embeddings"])
        embeddings: Iterable[Any] | None = result["embeddings"]
        assert embeddings is not None, "asked for in include"
        return dict(zip(result["ids"], embeddings))

    def query(
        self, embedding: Sequence[float], k: int, chunk_filter: ChunkFilter | None = None
    ) -> list[tuple[str, float]]:
        import numpy as np

        query: list[Any] = [np.asarray(embedding, dtype=np.float32)]
        with self._same_dimension():
            result = self._collection.query(
                query_embeddings=query, n_results=k, where=chroma_where(chunk_filter) or None, include=["distances"],
            )
        distances = result["distances"]
        assert distances is not None, "asked for in include"
        return [(chunk_id, 1.0 - distance) for chunk_id, distance in zip(result["ids"][0], distances[0])]

    def ids(self) -> set[str]:
        return set(self._collection.get(include=[])["ids"])

    def count(self) -> int:
        return self._collection.count()

    def drop(self) -> None:
        # Chroma on disk that was never opened holds nothing: opening it would only create it.
        if (self.url or self.directory.exists()) and self._chroma_name in {
            c.name for c in self._client.list_collections()
        }:
            self._client.delete_collection(self._chroma_name)
            self.__dict__.pop("_collection", None)
