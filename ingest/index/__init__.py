"""The index owns all on-disk state of a knowledge base, in one directory:

    INDEX_DIR/chroma/            Chroma PersistentClient (one collection per knowledge base),
                                 unless vector_store.url names another store (a Chroma server,
                                 PostgreSQL)
    INDEX_DIR/manifest.sqlite3   what was ingested from where, what built the index, where its
                                 vectors live, and the keyword (FTS5) index of every chunk's text

The manifest records, per collection, the fingerprint of the settings that built it (embedding
model, dimension, chunking), where its vectors are (Chroma on disk, or the URL of the store it
was created in, without a password: a Chroma server, PostgreSQL, this process's memory) and, per source file, its size, mtime,
content hash and chunk ids. Every later command uses the recorded vector store (`stores.py`
opens it); one pointed at another is refused, since the manifest and the vectors it lists must
be read together. The store is opened only when vectors are read or written, so an unchanged
re-sync stays fast.

With `index.url = "postgresql://..."` all of it (vectors, manifest, build record, keyword
index) is in that PostgreSQL database instead, shared by every process that names it, and a
file's vectors, keywords and manifest row commit in one transaction.

This module is the facade, `Index`: the writer lock, the unfinished-ingest marker, the write
order (vectors, then the manifest and keywords in one transaction, then deletes), the
consistency check and its repair, the fingerprint, and the recorded vector-store location. The
parts it composes:

    database.py   the protocols of the manifest, the keyword index and the database holding them
    databases.py  the factory that opens that database (one line per backend)
    sqlite_database.py  the SQLite one in the index folder, with its file lock:
      schema.py     the SQLite database's tables and their numbered migrations
      manifest.py   the SQLite manifest (collections, sources, vector-store locations)
      keywords.py   the FTS5 keyword index, in the same database, and rag's analysis of text for it
    postgres_index.py  the PostgreSQL one: manifest and BM25 keyword index beside the vectors
    store.py      the vector-store protocol and the chunk filter
    stores.py     the factory that opens the store a location names (one line per kind of store)
    chroma.py     the Chroma store (on disk or a server): the only module that imports chromadb
    memory.py     the in-memory store (numpy), for notebooks and tests
    postgres.py   the PostgreSQL store (pgvector): the only module that imports psycopg
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Sequence

from ingest.chunking.metadata import CHUNK_METADATA_KEYS
from ingest.errors import (
    IndexBusyError, IndexMismatchError, NoIndexError, UsageError, VectorsMissingError, VectorStoreMismatchError,
)
from ingest.index.chroma import CHROMA_DIR, ChromaStore
from ingest.index.database import SourceRecord, StoredCollection, Writer
from ingest.index.databases import open_database
from ingest.index.keywords import KEYWORD_INDEX_VERSION
from ingest.index.manifest import MANIFEST_FILE, paths_matching, source_patterns
from ingest.index.memory import MemoryStore
from ingest.index.sqlite_database import LOCK_FILE
from ingest.index.store import ChunkFilter, StoredChunk, VectorStore, url_without_password
from ingest.index.stores import open_store
from ingest.scripts import AUTO_MODEL, MULTILINGUAL_MODEL
from ingest.settings import IndexSettings

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "CHROMA_DIR", "CHUNKER_VERSION", "CHUNK_METADATA_KEYS", "KEYWORD_INDEX_VERSION", "LOCK_FILE", "MANIFEST_FILE",
    "ON_DISK", "REBUILDING", "UNFINISHED_PREFIX", "ChromaStore", "ChunkFilter", "Consistency", "Index", "IndexStats",
    "MemoryStore", "SourceRecord", "StoredChunk", "StoredCollection", "VectorStore", "Writer", "fingerprint_differences",
    "index_location", "open_store", "paths_matching", "settings_fingerprint", "source_patterns",
]

UNFINISHED_PREFIX = "unfinished-ingest."
# The recorded location of vectors kept by Chroma on disk in INDEX_DIR/chroma (else a server's URL).
ON_DISK = "disk"
# In the unfinished-ingest marker: the collection was being dropped for a rebuild.
REBUILDING = "rebuilding"
# The longest file name most file systems take.
MAX_FILE_NAME_BYTES = 255
# Chunks read back from the vector store at a time when the keyword index is analysed again.
KEYWORD_BATCH = 500
# Bump when a change to loading or chunking makes existing chunks differ from what a fresh ingest gives.
CHUNKER_VERSION = 5


@dataclass
class IndexStats:
    files: int
    chunks: int
    fingerprint: dict[str, Any]
    created_at: float
    last_sync: float | None


@dataclass
class Consistency:
    unfinished: bool
    orphan_vectors: list[str]  # chunk ids in Chroma that no manifest row lists
    orphan_words: list[str]  # chunk ids in the keyword index that no manifest row lists
    incomplete_sources: list[str]  # files whose listed chunks are not all stored

    @property
    def ok(self) -> bool:
        return not (self.unfinished or self.orphan_vectors or self.orphan_words or self.incomplete_sources)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.__dict__}


def settings_fingerprint(settings: IndexSettings) -> dict[str, Any]:
    """What must stay the same for old and new chunks to be comparable."""
    model = settings.embedding.model
    return {
        "embedding_model": model,
        # Decided with the embedding model and the documents' language: None until a new collection has read them.
        "chunk_tokens": None if settings.chunking.waits_for_documents(model) else settings.chunking.tokens_for(model),
        "overlap_tokens": settings.chunking.overlap_tokens,
        "chunker_version": CHUNKER_VERSION,
        "keyword_index": KEYWORD_INDEX_VERSION,
    }


# What the record says of the collection beside its settings: its vectors' length, and the language
# of its documents when a chunk size waited for them.
RECORDED_FACTS = ("embedding_dimension", "language")


def _older_keyword_index(recorded: dict[str, Any]) -> bool:
    # An index from before the version was recorded has none.
    return (recorded.get("keyword_index") or 0) < KEYWORD_INDEX_VERSION


def fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{key} {stored.get(key)!r}, now {current.get(key)!r}"
        for key in sorted(set(stored) | set(current))
        if key not in RECORDED_FACTS and stored.get(key) != current.get(key)
    ]


def _normalized_url(url: str | None) -> str | None:
    return (url.strip().rstrip("/") or None) if url else None


def index_location(settings: IndexSettings) -> str:
    """Where the settings keep the index, in words: the folder on this machine, or the database that
    holds all of it (no password)."""
    database_url = _normalized_url(settings.index.url)
    return f"PostgreSQL at {url_without_password(database_url)}" if database_url else str(settings.index_path)


def _vectors_url(database_url: str | None, vector_store_url: str | None) -> str | None:
    """Where the settings put the vectors: in the database index.url names, if it names one (refused:
    a vector_store.url naming another place), else where vector_store.url says."""
    if database_url is None:
        return vector_store_url
    if vector_store_url is not None and url_without_password(vector_store_url) != url_without_password(database_url):
        raise UsageError(
            f"index.url puts everything of a collection in {url_without_password(database_url)}, vectors included; "
            f"vector_store.url names {url_without_password(vector_store_url)}.",
            "Leave vector_store.url (or --chroma-url) out, or give the same URL.",
        )
    return database_url


@dataclass
class CollectionSummary:
    name: str
    files: int
    chunks: int
    vector_store: str  # "disk" or the URL of the store (a Chroma server)
    last_sync: float | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Index:
    def __init__(self, settings: IndexSettings):
        self.path = settings.index_path
        self.collection_name = settings.collection
        self.fingerprint = settings_fingerprint(settings)
        self._chunking = settings.chunking
        database_url = _normalized_url(settings.index.url)
        self.database_label = index_location(settings) if database_url else None
        # What errors about the whole index name: its folder, or the database holding it.
        self._named_in_errors: Path | str = url_without_password(database_url) if database_url else self.path
        requested_vectors = _vectors_url(database_url, _normalized_url(settings.vector_store.url))
        # One database holds both; it is opened at its first use, like the vector store.
        self._database = open_database(self.path, self.collection_name, database_url)
        self._manifest = self._database.manifest
        self._keywords = self._database.keywords
        stored = self._stored_collection()
        self._adopt_recorded(stored)
        self._built_at_open = stored.created_at if stored else None
        self._location_recorded = bool(stored and stored.vector_store)
        self.store_url = self._vector_store_url(stored, requested_vectors)
        # The vectors. Opened at their first use: commands that read only the manifest never touch them.
        self.store: VectorStore = open_store(settings, self.store_url, recorded=self._location_recorded)

    def _vector_store_url(self, stored: StoredCollection | None, requested: str | None) -> str | None:
        """The store to use (None: Chroma on disk; else its URL): where the collection's vectors are.

        A new collection is created where the settings say. An existing one is used where it was
        created, unless the settings name another place: that is refused, because this manifest
        read with another store's vectors would look broken, and "repairing" it would empty it.
        """
        recorded = stored.vector_store if stored else None
        if recorded is None:  # a new collection, or one from before the record: as the settings say
            return requested
        in_use = None if recorded == ON_DISK else recorded
        if requested is None:  # the recorded URL: a password comes from ~/.pgpass or the environment
            return in_use
        # The record holds no password: the settings' URL names the same store with or without one.
        if url_without_password(requested) != in_use:
            raise VectorStoreMismatchError(self.path, self.collection_name, in_use, url_without_password(requested))
        return requested

    def location(self) -> str:
        """Where the index is, in words: its folder on this machine, or the database that holds all of
        it (no password)."""
        return self.database_label or str(self.path)

    def vector_store_label(self) -> str:
        """Where this index's vectors are, in words."""
        return self.store.label()

    # -- manifest and keyword index (one database) -----------------------------------------------

    def close(self) -> None:
        """Close the database connection if it was opened; a long-lived process opens none per request."""
        self._database.close()

    def __enter__(self) -> "Index":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _transaction(self) -> ContextManager[None]:
        return self._database.transaction()

    def _writes(self) -> ContextManager[None]:
        """Around a write of vectors and rows: one transaction where the vectors are in the same database."""
        return self._database.transaction() if self._database.writes_with_vectors else contextlib.nullcontext()

    def _stored_collection(self) -> StoredCollection | None:
        if not self._database.exists():
            return None
        return self._manifest.collection_record()

    def writer_lock(
        self, wait: bool = True, on_wait: Callable[[], None] | None = None, folders: Sequence[Path] | None = None
    ) -> ContextManager[None]:
        """Hold the writer's lock: of the whole collection, or of the files under `folders` only.

        An OS file lock on the index folder (one writer, whatever its folders), or locks held in
        PostgreSQL, where writers of folders apart write at once: either is released when the
        holder exits, however it exits.
        """
        return self._database.writer_lock(wait, on_wait, folders)

    def writer_busy(self, folders: Sequence[Path] | None = None) -> bool:
        """Whether another ingest holds a lock this one (of `folders`, or of all) would wait for at
        this moment (it may take it a moment later)."""
        return self._database.writer_busy(folders)

    def busy_error(self) -> IndexBusyError:
        """The error saying that another ingest holds the writer lock, naming the folder or database."""
        return self._database.busy_error()

    # -- crash safety ----------------------------------------------------------------------------

    @property
    def _unfinished_marker(self) -> Path:
        marker = f"{UNFINISHED_PREFIX}{self.collection_name}"
        if len(marker.encode()) > MAX_FILE_NAME_BYTES:  # a long name (a Hangul letter is 3 bytes): by its digest
            marker = f"{UNFINISHED_PREFIX}{hashlib.sha256(self.collection_name.encode()).hexdigest()}"
        return self.path / marker

    def begin_writes(self) -> None:
        if not self._database.writes_with_vectors:  # else each write is whole or absent: nothing to repair
            self._unfinished_marker.write_text(f"{os.getpid()}\n")

    def end_writes(self) -> None:
        self._unfinished_marker.unlink(missing_ok=True)

    def unfinished(self) -> bool:
        """Whether an ingest stopped (killed, crashed, power lost) before it finished writing."""
        return not self._database.writes_with_vectors and self._unfinished_marker.exists()

    def _rebuild_unfinished(self) -> bool:
        """Whether the unfinished ingest was a rebuild, which drops the vectors before the manifest rows."""
        try:
            return REBUILDING in self._unfinished_marker.read_text().split()
        except OSError:
            return False

    def problems(self) -> Consistency:
        """What disagrees between the manifest, Chroma and the keyword index.

        Raises VectorsMissingError when the vector store holds none of the chunks the manifest
        lists: no crash leaves that, and no repair can fix it.
        """
        return self._problems(self.sources())

    def _problems(self, records: dict[str, SourceRecord]) -> Consistency:
        listed = {chunk_id for record in records.values() for chunk_id in record.chunk_ids}
        in_chroma = self.chunk_ids()
        if listed and not listed & in_chroma and not self._rebuild_unfinished():
            # Writes go vectors first, and deletes come after the manifest's: a store that holds
            # none of the listed chunks is the wrong one, or lost; forgetting every file is no fix.
            raise VectorsMissingError(
                self.path, self.collection_name, self.vector_store_label(), len(listed), len(records),
                recorded=self._location_recorded,
            )
        in_keyword_index = self.keyword_chunk_ids() if self._database.exists() else set()
        incomplete = sorted(
            path
            for path, record in records.items()
            if not set(record.chunk_ids) <= in_chroma or not set(record.chunk_ids) <= in_keyword_index
        )
        return Consistency(
            unfinished=self.unfinished(),
            orphan_vectors=sorted(in_chroma - listed),
            orphan_words=sorted(in_keyword_index - listed),
            incomplete_sources=incomplete,
        )

    def reconcile(self) -> Consistency:
        """Make the three stores agree again: drop what no manifest row lists, and forget files
        whose chunks are not all there (the next ingest reads them again).

        Refused (VectorsMissingError) when the vector store holds none of the listed chunks.
        """
        records = self.sources()
        found = self._problems(records)
        self.remove_sources([records[path] for path in found.incomplete_sources])
        with self._transaction():
            self._keywords.forget(found.orphan_words)
        self.store.delete(found.orphan_vectors)
        self.end_writes()
        return found

    # -- what built the collection ------------------------------------------------------------------

    def _built_at(self) -> float | None:
        stored = self._stored_collection()
        return stored.created_at if stored else None

    def rebuilt_since_opened(self) -> bool:
        """Whether the collection was dropped and built anew (here or elsewhere) since this opened."""
        return self._built_at() != self._built_at_open

    def exists(self) -> bool:
        return self._stored_collection() is not None

    def require(self) -> StoredCollection:
        """What built the collection; the 'run rag ingest first' error if it does not exist."""
        stored = self._stored_collection()
        if stored is None:
            raise NoIndexError(self._named_in_errors, self.collection_name, [c.name for c in self.collections()])
        return stored

    def collections(self) -> list[CollectionSummary]:
        """Every collection the index directory holds (this one or not), by name."""
        if not self._database.exists():
            return []
        return [
            CollectionSummary(name, files, chunks, location or ON_DISK, last_sync)
            for name, files, chunks, location, last_sync in self._manifest.all_collections()
        ]

    def settings_differences(self) -> list[str]:
        """How the settings that built the collection differ from the current ones (empty: they agree).

        A keyword index made by an older analysis is no difference: the next ingest analyses it
        again in place (`update_keyword_index`), and until then it is read as it is."""
        stored = self._stored_collection()
        self._adopt_recorded(stored)
        if stored is None:
            return []
        recorded = stored.fingerprint
        if _older_keyword_index(recorded):
            recorded = {**recorded, "keyword_index": KEYWORD_INDEX_VERSION}
        return fingerprint_differences(recorded, self.fingerprint)

    def keyword_index_outdated(self) -> bool:
        """Whether an older rag's analysis made the collection's keyword index (see `update_keyword_index`)."""
        stored = self._stored_collection()
        return stored is not None and _older_keyword_index(stored.fingerprint)

    def keyword_chunks_outdated(self) -> int:
        """How many chunks `update_keyword_index` would analyse again now."""
        return self._manifest.counts()[1] if self.keyword_index_outdated() else 0

    def update_keyword_index(self, wait: bool = True, on_wait: Callable[[], None] | None = None) -> int:
        """Analyse every chunk's text again where an older rag's analysis made the collection's keyword
        index (KEYWORD_INDEX_VERSION): in place, from the texts the vector store keeps, so nothing is
        embedded again. Under the writer's lock, in one transaction. Returns how many chunks were
        analysed: 0 when the index was up to date."""
        if not self.keyword_index_outdated():
            return 0
        with self.writer_lock(wait, on_wait), self._transaction():
            stored = self._stored_collection()
            if stored is None or not _older_keyword_index(stored.fingerprint):  # another writer did it meanwhile
                return 0
            listed = [(path, chunk_id) for path, record in self._manifest.sources().items() for chunk_id in record.chunk_ids]
            self._keywords.forget_collection()
            analysed = 0
            for start in range(0, len(listed), KEYWORD_BATCH):
                batch = listed[start : start + KEYWORD_BATCH]
                chunks = self.store.get([chunk_id for _, chunk_id in batch])
                # A chunk whose vector is missing stays out, as its file's other chunks will: the
                # consistency check finds the file incomplete and the next ingest reads it again.
                present = [(path, chunk_id) for path, chunk_id in batch if chunk_id in chunks]
                self._keywords.add(
                    [chunk_id for _, chunk_id in present], [chunks[chunk_id].text for _, chunk_id in present],
                    [path for path, _ in present],
                )
                analysed += len(present)
            self._manifest.record_collection(
                {**stored.fingerprint, "keyword_index": KEYWORD_INDEX_VERSION}, self._store_location()
            )
        return analysed

    def _adopt_recorded(self, stored: StoredCollection | None) -> None:
        """What a new collection decides from its documents (the model for "auto", the chunk size
        for the documents' language), as the collection records it once it exists (an ingest that
        waited for another may find it made meanwhile)."""
        if stored is None:
            return
        recorded = stored.fingerprint
        if self.fingerprint["embedding_model"] == AUTO_MODEL:
            self.fingerprint["embedding_model"] = recorded["embedding_model"]
        if self.fingerprint["chunk_tokens"] is None:
            if "language" in recorded or recorded["embedding_model"] != MULTILINGUAL_MODEL:
                self.choose_embedding_model(self.fingerprint["embedding_model"], recorded.get("language"))
            else:  # made before the language was recorded: the multilingual model's size was one for all
                self.fingerprint["chunk_tokens"] = recorded["chunk_tokens"]

    @property
    def embedding_model(self) -> str:
        """The model the collection's vectors are made with; "auto" for a collection not yet made."""
        if self.fingerprint["embedding_model"] == AUTO_MODEL:
            self._adopt_recorded(self._stored_collection())
        return self.fingerprint["embedding_model"]

    @property
    def chunk_tokens(self) -> int | None:
        """The size of the collection's chunks; None for a new collection whose documents decide it."""
        if self.fingerprint["chunk_tokens"] is None:
            self._adopt_recorded(self._stored_collection())
        return self.fingerprint["chunk_tokens"]

    def choose_embedding_model(self, model: str, language: str | None) -> None:
        """Make a new collection with `model` (what "auto" chose, or the one set) for documents in
        `language`, and chunks of the size those get unless a size is set."""
        self.fingerprint["embedding_model"] = model
        self.fingerprint["language"] = language
        if self._chunking.chunk_tokens is None:
            self.fingerprint["chunk_tokens"] = self._chunking.tokens_for(model, language)

    def check_fingerprint(self) -> None:
        differences = self.settings_differences()
        if differences:
            raise IndexMismatchError(self._named_in_errors, differences)

    def check_dimension(self, dimension: int) -> None:
        stored = self._stored_collection()
        if stored is not None and stored.fingerprint.get("embedding_dimension") not in (None, dimension):
            difference = f"embedding_dimension {stored.fingerprint['embedding_dimension']}, now {dimension}"
            raise IndexMismatchError(self._named_in_errors, [difference])

    def build_record(self) -> StoredCollection | None:
        """What built the collection, when, and where its vectors are; None if it does not exist."""
        return self._stored_collection()

    def record_build(self, record: StoredCollection) -> None:
        """Record the collection as `record` says another copy of it was built (its settings and its
        times), with its vectors where this index keeps them: what makes a copied collection exist."""
        with self._transaction():
            self._manifest.record_collection(
                # Its keyword index is made here, by this rag's analysis.
                {**record.fingerprint, "keyword_index": KEYWORD_INDEX_VERSION},
                self._store_location(),
                created_at=record.created_at,
            )
        if record.last_sync is not None:
            self._manifest.mark_synced(record.last_sync)

    def _store_location(self) -> str:
        """Where the vectors are, as the build record says it: ON_DISK or the store's URL (no password)."""
        return url_without_password(self.store_url) if self.store_url else ON_DISK

    def create(self, embedding_dimension: int) -> None:
        """Record the collection: what builds it, and where its vectors live from now on."""
        with self._transaction():
            self._manifest.record_collection(
                {**self.fingerprint, "embedding_dimension": embedding_dimension}, self._store_location()
            )

    # -- sources ------------------------------------------------------------------------------------

    def sources(self) -> dict[str, SourceRecord]:
        if not self._database.exists():
            return {}
        return self._manifest.sources()

    def touch_sources(self, records: Iterable[SourceRecord]) -> None:
        """Record a new size/mtime for files whose content did not change."""
        with self._transaction():
            self._manifest.touch_sources(records)

    def mark_synced(self) -> None:
        self._manifest.mark_synced()

    def forget_chunks(self, vector_ids: Sequence[str], keyword_ids: Sequence[str]) -> None:
        """Drop chunks that no manifest row lists: these from the keyword index, those from the vector store."""
        with self._writes():
            with self._transaction():
                self._keywords.forget(keyword_ids)
            self.store.delete(vector_ids)

    def writers(self) -> list[Writer]:
        """Which machines wrote the collection's files, how many and when last, where that is recorded."""
        if not self._database.exists():
            return []
        return self._manifest.writers()

    def stats(self) -> IndexStats:
        stored = self.require()
        files, chunks = self._manifest.counts()
        return IndexStats(files, chunks, stored.fingerprint, stored.created_at, stored.last_sync)

    def matching_sources(self, patterns: Sequence[str]) -> list[str]:
        """Ingested source paths that match any of the glob patterns."""
        return paths_matching(self.sources(), patterns)

    # -- writes: vectors, then manifest and keywords, then deletes -------------------------------

    def write_sources(
        self,
        records: Sequence[SourceRecord],
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        embeddings: "np.ndarray",
        replaced_ids: Sequence[str],
        superseded: Sequence[SourceRecord] = (),
    ) -> None:
        """Store new chunks, then the manifest rows that point at them, then drop replaced chunks.

        `superseded`: sources whose rows go in the same transaction, as the old path of a renamed
        file does (their chunks are among `replaced_ids`). In that order an interruption can leave
        unreferenced chunks behind, never a manifest row pointing at chunks that are missing; with
        the vectors in the same database all of it is one transaction.
        """
        with self._writes():
            self.store.add(ids, embeddings, texts, metadatas)
            with self._transaction():
                self._manifest.delete_sources(superseded)
                self._manifest.put_sources(records)
                self._keywords.forget([*replaced_ids, *ids])
                self._keywords.add(ids, texts, [metadata["source"] for metadata in metadatas])
            # A file ingested again with the same content gets the same chunk ids: those stay.
            written = set(ids)
            self.store.delete([chunk_id for chunk_id in replaced_ids if chunk_id not in written])

    def remove_sources(self, records: Sequence[SourceRecord]) -> None:
        chunk_ids = [chunk_id for r in records for chunk_id in r.chunk_ids]
        with self._writes():
            with self._transaction():
                self._manifest.delete_sources(records)
                self._keywords.forget(chunk_ids)
            self.store.delete(chunk_ids)

    def drop(self) -> None:
        """Forget this collection entirely: its vectors and its manifest rows (part of a write:
        between begin_writes and end_writes)."""
        if not self._database.exists():
            return
        with self._writes():
            if not self._database.writes_with_vectors:
                # The vectors go first: killed before the manifest rows, the next ingest must know why they are gone.
                self._unfinished_marker.write_text(f"{os.getpid()}\n{REBUILDING}\n")
            self.store.drop()
            with self._transaction():
                self._manifest.forget_collection()
                self._keywords.forget_collection()

    # -- reads ----------------------------------------------------------------------------------------

    def keyword_query(self, query: str, k: int, sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches. An index an
        older rag made is searched as that rag read text (traditional Chinese as written) until the
        next ingest analyses it again."""
        return self._keywords.query(query, k, sources, as_simplified=not self.keyword_index_outdated())

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of `chunk_ids` that committed manifest rows list (the keyword table mirrors them).

        Vectors are written before the manifest commits and deleted after it, so Chroma alone can
        hold a file's next or previous chunks for a moment; this is the consistent view.
        """
        return self._keywords.listed(chunk_ids)

    def keyword_chunk_ids(self) -> set[str]:
        return self._keywords.chunk_ids()

    def query(
        self, embedding: Sequence[float], k: int, chunk_filter: ChunkFilter | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the `k` nearest chunks, optionally filtered by metadata."""
        return self.store.query(embedding, k, chunk_filter)

    def get_chunks(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        """Text and metadata of each chunk id, and its vector if asked (reading vectors costs time)."""
        return self.store.get(ids, vectors=vectors)

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        return self.store.get_vectors(ids)

    def chunk_ids(self) -> set[str]:
        """Every chunk id the vector store holds for this collection (for consistency checks)."""
        return self.store.ids()
