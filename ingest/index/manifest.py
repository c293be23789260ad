"""The sync manifest, in SQLite (INDEX_DIR/manifest.sqlite3): per collection, the fingerprint of
the settings that built it and where its vectors live; per source file, its size, mtime,
content hash and chunk ids.

The keyword index (ingest/index/keywords.py) lives in the same database, so one transaction
commits a file's manifest row and its words together; `SqliteDatabase` (sqlite_database.py) opens
the connection (`ingest.index.schema.connect`, which migrates the tables) and the Index facade says
when transactions begin and end.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ingest.index.database import SourceRecord, StoredCollection, Writer
from ingest.text import composed

MANIFEST_FILE = "manifest.sqlite3"

SCHEMA = """
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
-- Where each collection's vectors live, recorded when it is created: 'disk' or a Chroma server's
-- URL. A collection without a row was created before this was recorded (it is on disk).
CREATE TABLE IF NOT EXISTS vector_stores (
    collection TEXT PRIMARY KEY,
    location TEXT NOT NULL
);
"""


def paths_matching(paths: Iterable[str], patterns: Sequence[str]) -> list[str]:
    """Those of `paths` that match any of the glob patterns, however each spells its accented or
    Hangul letters: macOS gives file names decomposed (NFD), a keyboard types them composed."""
    typed = [composed(pattern) for pattern in patterns]
    return [path for path in paths if any(fnmatch.fnmatch(composed(path), pattern) for pattern in typed)]


def source_patterns(arguments: Sequence[str], ingested: Sequence[str]) -> list[str]:
    """Glob patterns (absolute) for SOURCES arguments: a file, a folder, or a glob."""
    patterns = []
    files = {composed(source) for source in ingested}
    for argument in arguments:
        if glob.has_magic(argument):
            patterns.append(os.path.abspath(os.path.expanduser(argument)))
            continue
        path = str(Path(argument).expanduser().resolve())
        patterns.append(glob.escape(path) if composed(path) in files else glob.escape(path.rstrip("/")) + "/*")
    return patterns


class CollectionTables:
    """One collection's rows in the index's SQLite file; `connection` returns the shared
    connection, opened at its first use (see `ingest.index.schema.connect`)."""

    def __init__(self, connection: Callable[[], sqlite3.Connection], collection: str):
        self._connection = connection
        self.collection = collection

    @property
    def db(self) -> sqlite3.Connection:
        return self._connection()


class Manifest(CollectionTables):
    """One collection's rows (`ManifestTables`). Writes run inside the caller's transaction unless said otherwise."""

    def collection_record(self) -> StoredCollection | None:
        row = self.db.execute(
            "SELECT fingerprint, created_at, last_sync, vector_stores.location FROM collections "
            "LEFT JOIN vector_stores ON vector_stores.collection = collections.name WHERE name = ?",
            (self.collection,),
        ).fetchone()
        return StoredCollection(json.loads(row[0]), row[1], row[2], row[3]) if row else None

    def record_collection(self, fingerprint: dict[str, Any], location: str, created_at: float | None = None) -> None:
        """What builds the collection, and where its vectors live; its creation time is kept unless given."""
        self.db.execute(
            "INSERT INTO collections (name, fingerprint, created_at) VALUES (?, ?, ?) "
            "ON CONFLICT(name) DO UPDATE SET fingerprint = excluded.fingerprint, "
            "created_at = coalesce(?, collections.created_at)",
            (self.collection, json.dumps(fingerprint, sort_keys=True), created_at or time.time(), created_at),
        )
        self.db.execute(
            "INSERT OR REPLACE INTO vector_stores (collection, location) VALUES (?, ?)", (self.collection, location)
        )

    def sources(self) -> dict[str, SourceRecord]:
        rows = self.db.execute(
            "SELECT path, size, mtime_ns, sha256, chunk_ids, ingested_at FROM sources WHERE collection = ?",
            (self.collection,),
        )
        return {
            path: SourceRecord(path, size, mtime_ns, sha256, json.loads(ids), at)
            for path, size, mtime_ns, sha256, ids, at in rows
        }

    def touch_sources(self, records: Iterable[SourceRecord]) -> None:
        self.db.executemany(
            "UPDATE sources SET size = ?, mtime_ns = ? WHERE collection = ? AND path = ?",
            [(r.size, r.mtime_ns, self.collection, r.path) for r in records],
        )

    def put_sources(self, records: Sequence[SourceRecord]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO sources (collection, path, size, mtime_ns, sha256, chunk_ids, ingested_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (self.collection, r.path, r.size, r.mtime_ns, r.sha256, json.dumps(r.chunk_ids), r.ingested_at)
                for r in records
            ],
        )

    def delete_sources(self, records: Sequence[SourceRecord]) -> None:
        self.db.executemany(
            "DELETE FROM sources WHERE collection = ? AND path = ?", [(self.collection, r.path) for r in records]
        )

    def mark_synced(self, at: float | None = None) -> None:
        """Record the time of this sync, or `at` (its own statement, outside any transaction)."""
        self.db.execute("UPDATE collections SET last_sync = ? WHERE name = ?", (at or time.time(), self.collection))

    def writers(self) -> list[Writer]:
        """None recorded: the index folder is written by the machine it is on."""
        return []

    def all_collections(self) -> list[tuple[str, int, int, str | None, float | None]]:
        """(name, files, chunks, vector-store location, last sync) of every collection of the index."""
        return self.db.execute(
            "SELECT name, COUNT(sources.path), COALESCE(SUM(json_array_length(sources.chunk_ids)), 0), "
            "vector_stores.location, collections.last_sync FROM collections "
            "LEFT JOIN sources ON sources.collection = collections.name "
            "LEFT JOIN vector_stores ON vector_stores.collection = collections.name "
            "GROUP BY collections.name ORDER BY collections.name"
        ).fetchall()

    def counts(self) -> tuple[int, int]:
        """(files, chunks) the manifest lists."""
        files, chunks = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(json_array_length(chunk_ids)), 0) FROM sources WHERE collection = ?",
            (self.collection,),
        ).fetchone()
        return files, chunks

    def forget_collection(self) -> None:
        self.db.execute("DELETE FROM sources WHERE collection = ?", (self.collection,))
        self.db.execute("DELETE FROM collections WHERE name = ?", (self.collection,))
        self.db.execute("DELETE FROM vector_stores WHERE collection = ?", (self.collection,))
