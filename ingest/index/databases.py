"""Which database holds a collection's manifest and keyword index: the factory the Index opens
them with, as `stores.py` opens its vector store.

No `index.url` is SQLite in the index folder; otherwise the URL's scheme names the backend. A new
backend is one module implementing `IndexDatabase` (ingest/index/database.py) and one line in
`DATABASES`.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ingest.errors import UsageError
from ingest.index.database import IndexDatabase
from ingest.index.postgres import POSTGRES_SCHEMES
from ingest.index.postgres_index import PostgresDatabase
from ingest.index.sqlite_database import SqliteDatabase
from ingest.index.store import url_without_password


@dataclass(frozen=True)
class DatabaseKind:
    schemes: tuple[str, ...]  # URL schemes that choose it; () for the one used without a URL
    described: str  # how a user chooses it, for the message naming every kind
    open: Callable[[Path, str, str | None], IndexDatabase]  # (index folder, collection, URL)


def _sqlite(index_path: Path, collection: str, url: str | None) -> IndexDatabase:
    return SqliteDatabase(index_path, collection)


def _postgres(index_path: Path, collection: str, url: str | None) -> IndexDatabase:
    return PostgresDatabase(str(url), collection)  # chosen by its scheme: never None


DATABASES = (
    DatabaseKind((), "no URL for SQLite in the index folder", _sqlite),
    DatabaseKind(POSTGRES_SCHEMES, "postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector", _postgres),
)


def database_kind(url: str | None) -> DatabaseKind:
    """The kind of database at `url` (None: SQLite in the index folder); a UsageError naming the known ones if none."""
    scheme = urllib.parse.urlsplit(url).scheme.lower() if url else None
    for kind in DATABASES:
        if (scheme in kind.schemes) if url else not kind.schemes:
            return kind
    raise UsageError(
        f"index.url {url_without_password(url or '')!r} names no database rag can keep an index in;",
        f"give {'; or '.join(kind.described for kind in DATABASES)}.",
    )


def open_database(index_path: Path, collection: str, url: str | None) -> IndexDatabase:
    """The manifest and keyword index of `collection`: in PostgreSQL at `url`, or SQLite in `index_path`."""
    return database_kind(url).open(index_path, collection, url)
