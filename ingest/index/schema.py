"""The index database's layout, as numbered migrations applied in order when it is opened.

The manifest (manifest.py) and the keyword index (keywords.py) share one SQLite file; its
`PRAGMA user_version` says how many of `MIGRATIONS` it has had. Opening it applies the missing
ones in one transaction, and refuses a file of a version this code does not know (a newer rag
wrote it). A change to the layout is one more step at the end of the list; a step once released
is never edited, since files out there have had it.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Callable

from ingest.errors import IndexTooNewError
from ingest.index import keywords, manifest


def _run_script(script: str) -> Callable[[sqlite3.Connection], None]:
    """A step running `script`'s statements one by one: executescript would commit the open transaction."""

    def run(db: sqlite3.Connection) -> None:
        statement = ""
        for piece in script.split(";"):
            statement += piece + ";"
            if sqlite3.complete_statement(statement):
                db.execute(statement)
                statement = ""

    return run


# (what it does, the step). Step 1 is the layout of the files made before they were numbered: its
# CREATE IF NOT EXISTS adds only what an older file lacks (the vector-store record, the keyword index).
MIGRATIONS: tuple[tuple[str, Callable[[sqlite3.Connection], None]], ...] = (
    ("the manifest's tables and the keyword index", _run_script(manifest.SCHEMA + keywords.SCHEMA)),
    ("the texts of a keyword index from before CJK bigrams indexed again", keywords.move_unsegmented),
)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(db: sqlite3.Connection) -> int:
    return db.execute("PRAGMA user_version").fetchone()[0]


def connect(path: Path) -> sqlite3.Connection:
    """The index database at `path` (made if missing), migrated to the layout this code knows."""
    # Not shared at once: the keyword search may run on a worker thread while this one waits.
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        if schema_version(db) > SCHEMA_VERSION:  # before anything writes to it
            raise IndexTooNewError(path, schema_version(db), SCHEMA_VERSION)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        migrate(db, path)
    except BaseException:
        db.close()
        raise
    return db


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Apply the migrations `db` has not had, in one transaction (another process may be doing it too)."""
    if schema_version(db) == SCHEMA_VERSION:  # the usual open reads the header and takes no lock
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        version = schema_version(db)
        if version > SCHEMA_VERSION:
            raise IndexTooNewError(path, version, SCHEMA_VERSION)
        for _, step in MIGRATIONS[version:]:
            step(db)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
