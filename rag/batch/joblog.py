"""A batch job's output file, its errors file and its state file, kept so that the same command
run again continues where an interrupted run stopped, and no item is written twice.

Each record is appended and flushed to disk before the state file (SQLite) commits it with the
files' new lengths; on reopening, anything past the committed lengths (a record written when the
run died) is cut off, and the committed items are skipped.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping

from rag.errors import JobOutputBusyError, JobOutputChangedError, JobOutputExistsError, JobOutputMismatchError, UsageError

_SCHEMA = """
CREATE TABLE IF NOT EXISTS job (fingerprint TEXT NOT NULL, out_size INTEGER NOT NULL, errors_size INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS items (key TEXT PRIMARY KEY, ok INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS replies (prompt TEXT PRIMARY KEY, reply TEXT NOT NULL);
"""


def errors_path(out: Path) -> Path:
    """Named after the whole output name, as the state file is: `a.jsonl` and `a.csv` are two jobs."""
    return out.with_name(f"{out.name}.errors.jsonl")


def state_path(out: Path) -> Path:
    return out.with_name(f"{out.name}.job")


class JobLog:
    """Open with `JobLog(out, fingerprint, restart=...)`; `done` holds the items already written."""

    def __init__(self, out: Path, fingerprint: dict[str, Any], *, restart: bool = False, header: str = ""):
        if out.is_dir():
            raise UsageError(f"{out} is a folder; the output is a file: name one inside it, or another.")
        self.out = out
        self.errors = errors_path(out)
        self.state = state_path(out)
        if not restart:
            self._require_no_other_output()  # a refusal leaves no lock file behind; checked again under the lock
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            self._lock = self._take_lock()
        except OSError as exc:
            raise UsageError(f"Cannot write {out}: {exc.strerror or exc}; choose a file you may write.") from None
        try:
            self._open(fingerprint, restart, header)
        except BaseException:
            if hasattr(self, "_db"):
                self._db.close()
            self._lock.close()
            raise

    def _open(self, fingerprint: dict[str, Any], restart: bool, header: str) -> None:
        out = self.out
        if restart:
            for path in (out, self.errors, self.state):
                path.unlink(missing_ok=True)
        else:
            self._require_no_other_output()
        # Replies are stored from the worker threads of a parallel job too; `_db_lock` takes them in turn.
        self._db = sqlite3.connect(self.state, isolation_level=None, check_same_thread=False)
        self._db_lock = threading.Lock()
        self._db.executescript(_SCHEMA)
        wanted = json.dumps(fingerprint, sort_keys=True)
        row = self._db.execute("SELECT fingerprint, out_size, errors_size FROM job").fetchone()
        if row is None:
            self._db.execute("INSERT INTO job VALUES (?, 0, 0)", (wanted,))
            row = (wanted, 0, 0)
        if row[0] != wanted:
            changed = ", ".join(_differences(json.loads(row[0]), fingerprint))
            raise JobOutputMismatchError(out, changed)
        self._out = _reopen(out, row[1])
        self._errors = _reopen(self.errors, row[2])
        self.done = {key for (key,) in self._db.execute("SELECT key FROM items")}
        self.done_before = len(self.done)
        if header and row[1] == 0:
            self._out.write(header.encode())
            self._commit(lambda: None)

    def _require_no_other_output(self) -> None:
        """Refuse an output or errors file that holds something when no job state belongs to them."""
        if not self.state.exists():
            for path in (self.out, self.errors):
                if path.exists() and path.stat().st_size:
                    raise JobOutputExistsError(path)

    def _take_lock(self) -> Any:
        lock = open(self.out.with_name(f"{self.out.name}.lock"), "a+")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise JobOutputBusyError(self.out) from None
        return lock

    @property
    def replies(self) -> MutableMapping[str, str]:
        """The model's replies by prompt, kept with the job (see BatchModel.generate)."""
        return _Replies(self._db, self._db_lock)

    def write(self, key: str, text: str, ok: bool) -> None:
        (self._out if ok else self._errors).write(text.encode())
        self._commit(lambda: self._db.execute("INSERT INTO items VALUES (?, ?)", (key, int(ok))))
        self.done.add(key)

    def _commit(self, record: Callable[[], Any]) -> None:
        for handle in (self._out, self._errors):
            handle.flush()
            os.fsync(handle.fileno())
        with self._db_lock:
            self._db.execute("BEGIN IMMEDIATE")
            record()
            self._db.execute("UPDATE job SET out_size = ?, errors_size = ?", (self._out.tell(), self._errors.tell()))
            self._db.execute("COMMIT")

    def close(self) -> None:
        self._out.close()
        self._errors.close()
        self._db.close()
        self._lock.close()
        if self.errors.exists() and not self.errors.stat().st_size:
            self.errors.unlink()

    def __enter__(self) -> "JobLog":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


class _Replies(MutableMapping[str, str]):
    def __init__(self, db: sqlite3.Connection, lock: threading.Lock):
        self._db = db
        self._lock = lock

    def _run(self, sql: str, *parameters: str) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def __getitem__(self, prompt: str) -> str:
        rows = self._run("SELECT reply FROM replies WHERE prompt = ?", prompt)
        if not rows:
            raise KeyError(prompt)
        return rows[0][0]

    def __setitem__(self, prompt: str, reply: str) -> None:
        self._run("INSERT OR REPLACE INTO replies VALUES (?, ?)", prompt, reply)

    def __delitem__(self, prompt: str) -> None:
        self._run("DELETE FROM replies WHERE prompt = ?", prompt)

    def __iter__(self) -> Iterator[str]:
        return iter([prompt for (prompt,) in self._run("SELECT prompt FROM replies")])

    def __len__(self) -> int:
        return self._run("SELECT COUNT(*) FROM replies")[0][0]


def _reopen(path: Path, committed: int) -> io.BufferedWriter:
    """The file for appending, cut back to the length the state file committed. One shorter than
    that was cut or deleted since: the items the state file counts as written are not all there."""
    size = path.stat().st_size if path.exists() else 0
    if size < committed:
        raise JobOutputChangedError(path, size, committed)
    handle = open(path, "ab")
    handle.truncate(committed)
    handle.seek(committed)
    return handle


def _differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    return [key for key in sorted(set(stored) | set(current)) if stored.get(key) != current.get(key)]

