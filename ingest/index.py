"""The index owns all on-disk state of a knowledge base, in one directory:

    INDEX_DIR/chroma/            Chroma PersistentClient (one collection per knowledge base),
                                 unless vector_store.url names a Chroma server
    INDEX_DIR/manifest.sqlite3   what was ingested from where, what built the index, where its
                                 vectors live, and the keyword (FTS5) index of every chunk's text

The manifest records, per collection, the fingerprint of the settings that built it (embedding
model, dimension, chunking), where its vectors are (Chroma on disk, or the URL of the Chroma
server it was created on) and, per source file, its size, mtime, content hash and chunk ids.
Every later command uses the recorded vector store; one pointed at another is refused, since
the manifest and the vectors it lists must be read together. Chroma is opened only when vectors
are read or written, so an unchanged re-sync stays fast.
"""

from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import functools
import json
import os
import re
import sqlite3
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Sequence

from rag.errors import (
    IndexBusyError, IndexMismatchError, NoIndexError, RagError, VectorsMissingError, VectorStoreMismatchError,
)
from rag.settings import Settings

if TYPE_CHECKING:
    import numpy as np
    from chromadb.api.models.Collection import Collection

MANIFEST_FILE = "manifest.sqlite3"
LOCK_FILE = "ingest.lock"
UNFINISHED_PREFIX = "unfinished-ingest."
# Chunk ids per SQL statement: well under SQLite's limit on bound parameters.
_SQL_BATCH = 500
CHROMA_DIR = "chroma"
# The recorded location of vectors kept by Chroma on disk in INDEX_DIR/chroma (else a server's URL).
ON_DISK = "disk"
# In the unfinished-ingest marker: the collection was being dropped for a rebuild.
REBUILDING = "rebuilding"
# The metadata a stored chunk can carry (ingest.chunking and ingest.sync write them): what a filter can name.
CHUNK_METADATA_KEYS = ("source", "page", "heading", "start_line", "end_line", "chunk_index")
# Bump when a change to loading or chunking makes existing chunks differ from what a fresh ingest gives.
CHUNKER_VERSION = 2
KEYWORD_INDEX_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_sync REAL
);
CREATE TABLE IF NOT EXISTS sources (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (collection, path)
);
-- The keyword index: every chunk's text in SQLite FTS5, written in the same transactions as
-- the manifest rows that list the chunks.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (collection, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (collection, source);
-- Where each collection's vectors live, recorded when it is created: 'disk' or a Chroma server's
-- URL. A collection without a row was created before this was recorded (it is on disk).
CREATE TABLE IF NOT EXISTS vector_stores (
    collection TEXT PRIMARY KEY,
    location TEXT NOT NULL
);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_words USING fts5(
    text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""
# FTS5 query syntax is not for users: their words are quoted and OR-ed, and bm25 ranks them.
_WORD = re.compile(r"\w+")
# Words that carry no topic: matched, they only rank chunks by how much filler they hold.
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves""".split()
)


@dataclass
class _StoredCollection:
    fingerprint: dict[str, Any]
    created_at: float
    last_sync: float | None
    vector_store: str | None  # ON_DISK, a server URL, or None: not recorded (an older index)


@dataclass
class SourceRecord:
    path: str
    size: int
    mtime_ns: int
    sha256: str
    chunk_ids: list[str]
    ingested_at: float


@dataclass
class StoredChunk:
    id: str
    text: str
    metadata: dict[str, Any]
    embedding: "np.ndarray | None"


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


def settings_fingerprint(settings: Settings) -> dict[str, Any]:
    """What must stay the same for old and new chunks to be comparable."""
    return {
        "embedding_model": settings.embedding.model,
        "chunk_tokens": settings.chunking.chunk_tokens,
        "overlap_tokens": settings.chunking.overlap_tokens,
        "chunker_version": CHUNKER_VERSION,
        "keyword_index": KEYWORD_INDEX_VERSION,
    }


def fingerprint_differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [
        f"{key} {stored.get(key)!r}, now {current.get(key)!r}"
        for key in sorted(set(stored) | set(current))
        if key != "embedding_dimension" and stored.get(key) != current.get(key)
    ]


def _normalized_url(url: str | None) -> str | None:
    return (url.strip().rstrip("/") or None) if url else None


def paths_matching(paths: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Those of `paths` that match any of the glob patterns."""
    return [path for path in paths if any(fnmatch.fnmatch(path, pattern) for pattern in patterns)]


class Index:
    def __init__(self, settings: Settings):
        self.path = settings.index_path
        self.collection_name = settings.collection
        self.fingerprint = settings_fingerprint(settings)
        stored = self._stored_collection()
        self._built_at_open = stored.created_at if stored else None
        self._location_recorded = bool(stored and stored.vector_store)
        self.server_url = self._vector_store_url(stored, _normalized_url(settings.vector_store.url))

    def _vector_store_url(self, stored: _StoredCollection | None, requested: str | None) -> str | None:
        """The Chroma server to use (None: Chroma on disk): where the collection's vectors are.

        A new collection is created where the settings say. An existing one is used where it was
        created, unless the settings name another place: that is refused, because this manifest
        read with another store's vectors would look broken, and "repairing" it would empty it.
        """
        recorded = stored.vector_store if stored else None
        if recorded is None:  # a new collection, or one from before the record: as the settings say
            return requested
        in_use = None if recorded == ON_DISK else recorded
        if requested is not None and requested != in_use:
            raise VectorStoreMismatchError(self.path, self.collection_name, in_use, requested)
        return in_use

    def vector_store_label(self) -> str:
        """Where this index's vectors are, in words."""
        return f"the Chroma server {self.server_url}" if self.server_url else f"Chroma on disk in {self.path / CHROMA_DIR}"

    # -- manifest -------------------------------------------------------------------------------

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST_FILE

    @functools.cached_property
    def _db(self) -> sqlite3.Connection:
        self.path.mkdir(parents=True, exist_ok=True)
        # Not shared at once: the keyword search may run on a worker thread while this one waits.
        db = sqlite3.connect(self.manifest_path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        return db

    def _stored_collection(self) -> _StoredCollection | None:
        if not self.manifest_path.exists():
            return None
        row = self._db.execute(
            "SELECT fingerprint, created_at, last_sync, vector_stores.location FROM collections "
            "LEFT JOIN vector_stores ON vector_stores.collection = collections.name WHERE name = ?",
            (self.collection_name,),
        ).fetchone()
        return _StoredCollection(json.loads(row[0]), row[1], row[2], row[3]) if row else None

    @contextlib.contextmanager
    def writer_lock(self, wait: bool = True, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold the index's single-writer lock: concurrent ingests would interleave their writes.

        An OS file lock, so it is released when the holder exits, however it exits.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise IndexBusyError(self.path) from None
                if on_wait:
                    on_wait()
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    # -- crash safety ----------------------------------------------------------------------------

    @property
    def _unfinished_marker(self) -> Path:
        return self.path / f"{UNFINISHED_PREFIX}{self.collection_name}"

    def begin_writes(self) -> None:
        self._unfinished_marker.write_text(f"{os.getpid()}\n")

    def end_writes(self) -> None:
        self._unfinished_marker.unlink(missing_ok=True)

    def unfinished(self) -> bool:
        """Whether an ingest stopped (killed, crashed, power lost) before it finished writing."""
        return self._unfinished_marker.exists()

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
        in_keyword_index = self.keyword_chunk_ids() if self.manifest_path.exists() else set()
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
            self._forget_words(found.orphan_words)
        self._delete_chunks(found.orphan_vectors)
        self.end_writes()
        return found

    def _built_at(self) -> float | None:
        stored = self._stored_collection()
        return stored.created_at if stored else None

    def rebuilt_since_opened(self) -> bool:
        """Whether the collection was dropped and built anew (here or elsewhere) since this opened."""
        return self._built_at() != self._built_at_open

    def exists(self) -> bool:
        return self._stored_collection() is not None

    def require(self) -> None:
        """Raise the 'run rag ingest first' error unless the index exists."""
        if not self.exists():
            raise NoIndexError(self.path, self.collection_name)

    def check_fingerprint(self) -> None:
        stored = self._stored_collection()
        if stored is None:
            return
        differences = fingerprint_differences(stored.fingerprint, self.fingerprint)
        if differences:
            raise IndexMismatchError(self.path, differences)

    def check_dimension(self, dimension: int) -> None:
        stored = self._stored_collection()
        if stored is not None and stored.fingerprint.get("embedding_dimension") not in (None, dimension):
            raise IndexMismatchError(
                self.path, [f"embedding_dimension {stored.fingerprint['embedding_dimension']}, now {dimension}"]
            )

    def create(self, embedding_dimension: int) -> None:
        """Record the collection: what builds it, and where its vectors live from now on."""
        fingerprint = {**self.fingerprint, "embedding_dimension": embedding_dimension}
        with self._transaction():
            self._db.execute(
                "INSERT INTO collections (name, fingerprint, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint",
                (self.collection_name, json.dumps(fingerprint, sort_keys=True), time.time()),
            )
            self._db.execute(
                "INSERT OR REPLACE INTO vector_stores (collection, location) VALUES (?, ?)",
                (self.collection_name, self.server_url or ON_DISK),
            )

    def sources(self) -> dict[str, SourceRecord]:
        if not self.manifest_path.exists():
            return {}
        rows = self._db.execute(
            "SELECT path, size, mtime_ns, sha256, chunk_ids, ingested_at FROM sources WHERE collection = ?",
            (self.collection_name,),
        )
        return {
            path: SourceRecord(path, size, mtime_ns, sha256, json.loads(ids), at)
            for path, size, mtime_ns, sha256, ids, at in rows
        }

    def touch_sources(self, records: Iterable[SourceRecord]) -> None:
        """Record a new size/mtime for files whose content did not change."""
        with self._transaction():
            self._db.executemany(
                "UPDATE sources SET size = ?, mtime_ns = ? WHERE collection = ? AND path = ?",
                [(r.size, r.mtime_ns, self.collection_name, r.path) for r in records],
            )

    def mark_synced(self) -> None:
        self._db.execute(
            "UPDATE collections SET last_sync = ? WHERE name = ?", (time.time(), self.collection_name)
        )

    def stats(self) -> IndexStats:
        stored = self._stored_collection()
        if stored is None:
            raise NoIndexError(self.path, self.collection_name)
        files, chunks = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(json_array_length(chunk_ids)), 0) FROM sources WHERE collection = ?",
            (self.collection_name,),
        ).fetchone()
        return IndexStats(files, chunks, stored.fingerprint, stored.created_at, stored.last_sync)

    def _transaction(self):
        return _Transaction(self._db)

    # -- vectors ----------------------------------------------------------------------------------

    @functools.cached_property
    def _client(self):
        import chromadb
        from chromadb.config import Settings as ChromaSettings

        chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
        if self.server_url is None:
            return chromadb.PersistentClient(path=str(self.path / CHROMA_DIR), settings=chroma_settings)
        url = urllib.parse.urlsplit(self.server_url)
        try:
            client = chromadb.HttpClient(
                host=url.hostname or "localhost",
                port=url.port or (443 if url.scheme == "https" else 8000),
                ssl=url.scheme == "https",
                settings=chroma_settings,
            )
            client.heartbeat()
        except Exception as exc:  # chromadb raises several kinds for "nobody answers"
            if self._location_recorded:  # the index's own server: the disk is no alternative
                raise RagError(
                    f"No Chroma server answers at {self.server_url}, where the index at {self.path} keeps its "
                    "vectors; start it with `chroma run --path DIR --port PORT`."
                ) from exc
            raise RagError(
                f"No Chroma server answers at {self.server_url}; start one with `chroma run --path DIR --port PORT` "
                "or unset vector_store.url to use the index on disk."
            ) from exc
        return client

    @functools.cached_property
    def _collection(self) -> "Collection":
        # embedding_function=None: vectors always come from our embedder, never Chroma's default.
        return self._client.get_or_create_collection(
            self.collection_name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}}
        )

    def write_sources(
        self,
        records: Sequence[SourceRecord],
        ids: Sequence[str],
        texts: Sequence[str],
        metadatas: Sequence[dict[str, Any]],
        embeddings: "np.ndarray",
        replaced_ids: Sequence[str],
    ) -> None:
        """Store new chunks, then the manifest rows that point at them, then drop replaced chunks.

        In that order an interruption can leave unreferenced chunks behind, never a manifest row
        pointing at chunks that are missing.
        """
        batch = self._client.get_max_batch_size()
        for start in range(0, len(ids), batch):
            end = start + batch
            self._collection.upsert(
                ids=list(ids[start:end]),
                embeddings=embeddings[start:end],
                documents=list(texts[start:end]),
                metadatas=list(metadatas[start:end]),
            )
        with self._transaction():
            self._db.executemany(
                "INSERT OR REPLACE INTO sources (collection, path, size, mtime_ns, sha256, chunk_ids, ingested_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (self.collection_name, r.path, r.size, r.mtime_ns, r.sha256, json.dumps(r.chunk_ids), r.ingested_at)
                    for r in records
                ],
            )
            self._forget_words([*replaced_ids, *ids])
            for chunk_id, text, metadata in zip(ids, texts, metadatas):
                rowid = self._db.execute(
                    "INSERT INTO chunks (collection, chunk_id, source) VALUES (?, ?, ?)",
                    (self.collection_name, chunk_id, metadata["source"]),
                ).lastrowid
                self._db.execute("INSERT INTO chunk_words (rowid, text) VALUES (?, ?)", (rowid, text))
        self._delete_chunks(replaced_ids)

    def remove_sources(self, records: Sequence[SourceRecord]) -> None:
        chunk_ids = [chunk_id for r in records for chunk_id in r.chunk_ids]
        with self._transaction():
            self._db.executemany(
                "DELETE FROM sources WHERE collection = ? AND path = ?",
                [(self.collection_name, r.path) for r in records],
            )
            self._forget_words(chunk_ids)
        self._delete_chunks(chunk_ids)

    def _forget_words(self, chunk_ids: Sequence[str]) -> None:
        """Drop chunks from the keyword index (inside the caller's transaction)."""
        for start in range(0, len(chunk_ids), _SQL_BATCH):
            batch = list(chunk_ids[start : start + _SQL_BATCH])
            marks = ",".join("?" * len(batch))
            rows = f"SELECT id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})"
            self._db.execute(f"DELETE FROM chunk_words WHERE rowid IN ({rows})", (self.collection_name, *batch))
            self._db.execute(
                f"DELETE FROM chunks WHERE collection = ? AND chunk_id IN ({marks})", (self.collection_name, *batch)
            )

    def keyword_query(self, query: str, k: int, sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches."""
        words = [word for word in _WORD.findall(query.lower()) if word not in _STOPWORDS]
        if not words or sources == []:
            return []
        match = " OR ".join(f'"{word}"' for word in dict.fromkeys(words))
        source_filter = f" AND chunks.source IN ({','.join('?' * len(sources))})" if sources else ""
        rows = self._db.execute(
            "SELECT chunks.chunk_id, -bm25(chunk_words) FROM chunk_words "
            "JOIN chunks ON chunks.id = chunk_words.rowid "
            f"WHERE chunk_words MATCH ? AND chunks.collection = ?{source_filter} ORDER BY bm25(chunk_words) LIMIT ?",
            (match, self.collection_name, *(sources or ()), k),
        )
        return [(chunk_id, score) for chunk_id, score in rows]

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of `chunk_ids` that committed manifest rows list (the keyword table mirrors them).

        Vectors are written before the manifest commits and deleted after it, so Chroma alone can
        hold a file's next or previous chunks for a moment; this is the consistent view.
        """
        if not chunk_ids:
            return set()
        marks = ",".join("?" * len(chunk_ids))
        rows = self._db.execute(
            f"SELECT chunk_id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})",
            (self.collection_name, *chunk_ids),
        )
        return {chunk_id for (chunk_id,) in rows}

    def keyword_chunk_ids(self) -> set[str]:
        rows = self._db.execute("SELECT chunk_id FROM chunks WHERE collection = ?", (self.collection_name,))
        return {chunk_id for (chunk_id,) in rows}

    def _delete_chunks(self, ids: Sequence[str]) -> None:
        batch = self._client.get_max_batch_size()
        for start in range(0, len(ids), batch):
            self._collection.delete(ids=list(ids[start : start + batch]))

    def query(
        self, embedding: Sequence[float], k: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) of the `k` nearest chunks, optionally filtered by metadata."""
        import numpy as np

        result = self._collection.query(
            query_embeddings=[np.asarray(embedding, dtype=np.float32)], n_results=k, where=where or None,
            include=["distances"],
        )
        return [(chunk_id, 1.0 - distance) for chunk_id, distance in zip(result["ids"][0], result["distances"][0])]

    def get_chunks(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        """Text and metadata of each chunk id, and its vector if asked (reading vectors costs time)."""
        if not ids:
            return {}
        include = ["documents", "metadatas", "embeddings"] if vectors else ["documents", "metadatas"]
        result = self._collection.get(ids=list(ids), include=include)
        embeddings = result["embeddings"] if vectors else [None] * len(result["ids"])
        return {
            chunk_id: StoredChunk(chunk_id, text, metadata or {}, embedding)
            for chunk_id, text, metadata, embedding in zip(result["ids"], result["documents"], result["metadatas"], embeddings)
        }

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        if not ids:
            return {}
        result = self._collection.get(ids=list(ids), include=["embeddings"])
        return dict(zip(result["ids"], result["embeddings"]))

    def matching_sources(self, patterns: Sequence[str]) -> list[str]:
        """Ingested source paths that match any of the glob patterns."""
        return paths_matching(self.sources(), patterns)

    def chunk_ids(self) -> set[str]:
        """Every chunk id Chroma holds for this collection (for consistency checks)."""
        return set(self._collection.get(include=[])["ids"])

    def drop(self) -> None:
        """Forget this collection entirely: its vectors and its manifest rows (part of a write:
        between begin_writes and end_writes)."""
        if not self.manifest_path.exists():
            return
        # The vectors go first: killed before the manifest rows, the next ingest must know why they are gone.
        self._unfinished_marker.write_text(f"{os.getpid()}\n{REBUILDING}\n")
        if (self.server_url or (self.path / CHROMA_DIR).exists()) and self.collection_name in {
            c.name for c in self._client.list_collections()
        }:
            self._client.delete_collection(self.collection_name)
            self.__dict__.pop("_collection", None)
        with self._transaction():
            self._db.execute("DELETE FROM sources WHERE collection = ?", (self.collection_name,))
            self._db.execute("DELETE FROM collections WHERE name = ?", (self.collection_name,))
            self._db.execute("DELETE FROM vector_stores WHERE collection = ?", (self.collection_name,))
            self._db.execute(
                "DELETE FROM chunk_words WHERE rowid IN (SELECT id FROM chunks WHERE collection = ?)",
                (self.collection_name,),
            )
            self._db.execute("DELETE FROM chunks WHERE collection = ?", (self.collection_name,))


class _Transaction:
    def __init__(self, db: sqlite3.Connection):
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
