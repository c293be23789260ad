"""The manifest and the keyword index as the Index facade sees them: small protocols, one backend
per module, chosen by `databases.py` as `stores.py` chooses the vector store.

A backend keeps, per collection, the build record (what settings built it, where its vectors
are), one row per source file, and the keyword index of every chunk's text; the facade says when
a transaction begins and ends and which writer holds the collection. The SQLite backend
(sqlite_database.py) keeps them in a file in the index folder; the PostgreSQL one
(postgres_index.py) in the database that also holds the vectors, so one transaction covers a
file's vectors too (`writes_with_vectors`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterable, Protocol, Sequence

from ingest.errors import IndexBusyError


@dataclass
class StoredCollection:
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
    # The machine that wrote it, where the index records that (PostgreSQL, which many machines share);
    # None for a record about to be written, which takes the writing machine's name. Not compared:
    # two records of the same file with the same chunks are equal whoever wrote them.
    ingested_by: str | None = field(default=None, compare=False)


@dataclass
class Writer:
    """A machine that wrote files of a collection: how many files are as it last wrote them, and when
    it last wrote one."""

    host: str
    files: int
    last_write: float


class ManifestTables(Protocol):
    """One collection's build record and source rows. Writes run inside the caller's transaction
    unless said otherwise."""

    def collection_record(self) -> StoredCollection | None: ...

    def record_collection(self, fingerprint: dict[str, Any], location: str, created_at: float | None = None) -> None:
        """What builds the collection, and where its vectors live. Its creation time is kept, or
        `created_at` when given (a copied collection keeps its original's)."""
        ...

    def sources(self) -> dict[str, SourceRecord]: ...

    def touch_sources(self, records: Iterable[SourceRecord]) -> None: ...

    def put_sources(self, records: Sequence[SourceRecord]) -> None: ...

    def delete_sources(self, records: Sequence[SourceRecord]) -> None: ...

    def mark_synced(self, at: float | None = None) -> None:
        """Record the time of this sync, or `at` (its own statement, outside any transaction)."""
        ...

    def writers(self) -> list[Writer]:
        """The machines that wrote the collection's files, where the backend records them (else empty)."""
        ...

    def all_collections(self) -> list[tuple[str, int, int, str | None, float | None]]:
        """(name, files, chunks, vector-store location, last sync) of every collection of the index."""
        ...

    def counts(self) -> tuple[int, int]:
        """(files, chunks) the manifest lists."""
        ...

    def forget_collection(self) -> None: ...


class KeywordTables(Protocol):
    """One collection's chunks in the keyword index. Writes run inside the caller's transaction."""

    def add(self, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]) -> None: ...

    def forget(self, chunk_ids: Sequence[str]) -> None: ...

    def forget_collection(self) -> None: ...

    def query(
        self, query: str, k: int, sources: Sequence[str] | None = None, as_simplified: bool = True
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches; `as_simplified`:
        whether the index reads traditional Chinese as simplified (see keywords.index_text)."""
        ...

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of `chunk_ids` in the keyword index."""
        ...

    def chunk_ids(self) -> set[str]: ...


class IndexDatabase(Protocol):
    """Where one collection's manifest and keyword index live, and its writers' lock.

    Connecting waits until the first use; `exists()` says whether there is anything to read
    without making it.
    """

    @property
    def manifest(self) -> ManifestTables: ...

    @property
    def keywords(self) -> KeywordTables: ...

    # Whether the vector store's writes join this database's transactions (the vectors are in it):
    # then a file's vectors, keywords and manifest row commit together and no crash needs a repair.
    writes_with_vectors: bool

    def exists(self) -> bool:
        """Whether the database has been made (a missing one reads as empty)."""
        ...

    def transaction(self) -> ContextManager[None]:
        """One transaction: committed when the block ends, rolled back if it raises."""
        ...

    def writer_lock(
        self, wait: bool, on_wait: Callable[[], None] | None, folders: Sequence[Path] | None = None
    ) -> ContextManager[None]:
        """Hold the writer's lock (IndexBusyError when taken and not `wait`), released when its
        holder ends, however it ends: of the whole collection, or where the backend lets writers of
        different places write at once, of the files under `folders` only."""
        ...

    def writer_busy(self, folders: Sequence[Path] | None = None) -> bool:
        """Whether another writer holds a lock this one would wait for, at this moment."""
        ...

    def busy_error(self) -> IndexBusyError:
        """The error that says another writer holds the lock, naming what it guards."""
        ...

    def close(self) -> None:
        """Let go of connections opened for this index."""
        ...
