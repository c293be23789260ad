"""Which vector store holds a collection: the factory the Index opens its store with.

A store is chosen by where the settings say the vectors are (`vector_store.url`, or the location
the index recorded when the collection was made): no URL is Chroma on disk in the index folder,
and otherwise the URL's scheme names the store. A new store is one module implementing
`VectorStore` (ingest/index/store.py) and one line in `STORES`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ingest.errors import UnknownVectorStoreError
from ingest.index.chroma import ChromaStore
from ingest.index.memory import MEMORY_SCHEME, MemoryStore
from ingest.index.postgres import POSTGRES_SCHEMES, PostgresStore
from ingest.index.store import VectorStore
from ingest.settings import IndexSettings


@dataclass(frozen=True)
class StoreLocation:
    """What a store is opened with: the collection, the index folder, and the URL (None: on disk).

    `recorded`: the index recorded this location as its own (a store may then drop hints about
    using another one).
    """

    collection: str
    index_path: Path
    url: str | None
    recorded: bool = False


@dataclass(frozen=True)
class StoreKind:
    schemes: tuple[str, ...]  # URL schemes that choose it; () for the store used without a URL
    described: str  # how a user chooses it, for the message naming every kind
    open: Callable[[StoreLocation], VectorStore]


def _chroma(location: StoreLocation) -> VectorStore:
    return ChromaStore(location.collection, location.index_path, location.url, recorded=location.recorded)


def _memory(location: StoreLocation) -> VectorStore:
    return MemoryStore(location.collection, str(location.url))  # chosen by its scheme: never None


def _postgres(location: StoreLocation) -> VectorStore:
    return PostgresStore(location.collection, str(location.url))  # chosen by its scheme: never None


STORES = (
    StoreKind((), "no URL for Chroma on disk in the index folder", _chroma),
    StoreKind(("http", "https"), "http://HOST:PORT for a Chroma server", _chroma),
    StoreKind((MEMORY_SCHEME,), f"{MEMORY_SCHEME}://NAME for this process's memory (notebooks, tests)", _memory),
    StoreKind(POSTGRES_SCHEMES, "postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector", _postgres),
)


def store_kind(url: str | None) -> StoreKind:
    """The kind of store at `url` (None: the default on disk); UnknownVectorStoreError if none is known."""
    scheme = urllib.parse.urlsplit(url).scheme.lower() if url else None
    for kind in STORES:
        if (scheme in kind.schemes) if url else not kind.schemes:
            return kind
    raise UnknownVectorStoreError(url or "", [kind.described for kind in STORES])


def open_store(settings: IndexSettings, url: str | None, *, recorded: bool = False) -> VectorStore:
    """The vector store of the settings' collection at `url` (None: Chroma on disk in the index folder).

    `url` is where the collection's vectors are, which the Index decides from the settings and its
    own record. The store connects at its first operation, not here.
    """
    return store_kind(url).open(StoreLocation(settings.collection, settings.index_path, url, recorded))
