"""What an index holds and what built it."""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any, Sequence

from ingest.index import Index, paths_matching, source_patterns
from rag.settings import Settings


@dataclass
class IndexStatus:
    index_path: str  # the index folder on this machine, whether or not the index is kept there
    index: str  # where the index is: that folder, or the database that holds all of it (no password)
    collection: str
    files: int
    chunks: int
    embedding_model: str
    embedding_dimension: int | None
    chunk_tokens: int
    overlap_tokens: int
    created_at: str
    last_sync: str | None
    # The machines whose ingests wrote the files, where the index records that (PostgreSQL): host,
    # files (those whose current version it wrote) and when it last wrote one; most recent first.
    writers: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def iso_time(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def status(settings: Settings) -> IndexStatus:
    with Index(settings) as index:
        stats = index.stats()
        location, writers = index.location(), index.writers()
    fingerprint = stats.fingerprint
    return IndexStatus(
        index_path=str(settings.index_path),
        index=location,
        collection=settings.collection,
        files=stats.files,
        chunks=stats.chunks,
        embedding_model=fingerprint.get("embedding_model", "?"),
        embedding_dimension=fingerprint.get("embedding_dimension"),
        chunk_tokens=fingerprint.get("chunk_tokens", 0),
        overlap_tokens=fingerprint.get("overlap_tokens", 0),
        created_at=iso_time(stats.created_at) or "",
        last_sync=iso_time(stats.last_sync),
        writers=[
            {"host": writer.host, "files": writer.files, "last_write": iso_time(writer.last_write)} for writer in writers
        ],
    )


@dataclass
class IndexedFile:
    """A file the collection holds, as its last ingest read it."""

    path: str
    size: int  # bytes
    chunks: int
    ingested_at: str
    ingested_by: str | None  # the machine, where the index records it (PostgreSQL)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def files(settings: Settings, paths: Sequence[str] | None = None) -> list[IndexedFile]:
    """The files the collection holds, by path; `paths`: only those under these folders, or these
    files, or matching these globs, as a batch job's SOURCES."""
    with Index(settings) as index:
        index.require()
        records = index.sources()
    chosen = paths_matching(records, source_patterns(paths, list(records))) if paths else records
    return [
        IndexedFile(record.path, record.size, len(record.chunk_ids), iso_time(record.ingested_at) or "", record.ingested_by)
        for record in (records[path] for path in sorted(chosen))
    ]
