"""The manifest and the keyword index in SQLite: one file in the index folder
(INDEX_DIR/manifest.sqlite3, see manifest.py, keywords.py and schema.py), and an OS file lock
beside it for the single writer of the whole folder."""

from __future__ import annotations

import contextlib
import fcntl
import functools
import sqlite3
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ingest.errors import IndexBusyError
from ingest.index.keywords import KeywordIndex
from ingest.index.manifest import MANIFEST_FILE, Manifest
from ingest.index.schema import connect

LOCK_FILE = "ingest.lock"


class SqliteDatabase:
    """A collection's manifest and keyword index in the index folder's SQLite file, opened at its first use."""

    writes_with_vectors = False

    def __init__(self, index_path: Path, collection: str):
        self.path = index_path
        self.manifest = Manifest(lambda: self._db, collection)
        self.keywords = KeywordIndex(lambda: self._db, collection)

    @property
    def file(self) -> Path:
        return self.path / MANIFEST_FILE

    @functools.cached_property
    def _db(self) -> sqlite3.Connection:
        self.path.mkdir(parents=True, exist_ok=True)
        return connect(self.file)

    def exists(self) -> bool:
        return self.file.exists()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        """Close the SQLite connection if it was opened; a long-lived process opens no file per request."""
        db = self.__dict__.pop("_db", None)
        if db is not None:
            db.close()

    @contextlib.contextmanager
    def writer_lock(
        self, wait: bool = True, on_wait: Callable[[], None] | None = None, folders: Sequence[Path] | None = None
    ) -> Iterator[None]:
        """An OS file lock on the index folder, so it is released when the holder exits, however it exits.
        One writer at a time, whatever `folders` it writes: Chroma on disk and SQLite take one."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    raise self.busy_error() from None
                if on_wait:
                    on_wait()
                fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def busy_error(self) -> IndexBusyError:
        return IndexBusyError(self.path)

    def writer_busy(self, folders: Sequence[Path] | None = None) -> bool:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK_FILE, "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(lock, fcntl.LOCK_UN)
            return False
