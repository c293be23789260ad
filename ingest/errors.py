"""Errors a user can act on, as data: what happened, and what to do in the library's own terms.

`str(error)` is what a Python caller (and an HTTP client) reads: it names settings, arguments and
functions (`rebuild=True`, `rag.ingest`), never a command-line flag. Each edge words the remedy
its own way from the error's fields: the CLI in flags, with an exit code (rag/cli/errors.py), the
server as an HTTP status (rag/server/responses.py).

These are the ones ingest raises; `rag.errors` re-exports them beside those only rag raises.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Self


class RagError(Exception):
    """`problem` says what happened, `remedy` what to do about it (may be empty); str() joins them."""

    def __init__(self, problem: str, remedy: str = ""):
        self.problem = problem
        self.remedy = remedy
        super().__init__(" ".join(part for part in (problem, remedy) if part))


class UsageError(RagError):
    """The caller asked for something that cannot be done as stated."""


def _index_label(index_path: Path | str, collection: str) -> str:
    return f"{index_path}" if collection == "default" else f"{index_path} (collection {collection!r})"


class NoIndexError(RagError):
    """`others` are the collections the index does hold: the caller may have meant one of them.
    `index_path`: the index folder, or the URL (no password) of the database holding the index."""

    def __init__(self, index_path: Path | str, collection: str, others: list[str] | None = None):
        self.index_path, self.collection, self.others = index_path, collection, others or []
        if self.others:
            super().__init__(
                f"No collection {collection!r} in the index at {index_path}; it holds {', '.join(self.others)}.",
                "Choose one with the collection setting (rag.collections lists them), or ingest into this one to "
                "create it.",
            )
        else:
            super().__init__(
                f"No index at {_index_label(index_path, collection)}.", "Ingest documents into it first (rag.ingest)."
            )


# What an index records of the code that made it, not of the settings: no setting gives the old chunks back.
VERSION_KEYS = frozenset({"chunker_version", "keyword_index"})


class IndexMismatchError(RagError):
    """`index_path`: the index folder, or the URL (no password) of the database holding the index;
    `differences`: "KEY OLD, now NEW" each."""

    def __init__(self, index_path: Path | str, differences: list[str]):
        self.index_path, self.differences = index_path, differences
        self.made_by_another_version = all(difference.split(" ", 1)[0] in VERSION_KEYS for difference in differences)
        if self.made_by_another_version:
            super().__init__(
                f"The index at {index_path} was made by another version of rag ({'; '.join(differences)}): "
                "its chunks are not what this one makes.",
                "Ingest with rebuild=True to make them again.",
            )
            return
        super().__init__(
            f"The index at {index_path} was built with other settings ({'; '.join(differences)}).",
            "Ingest with rebuild=True to rebuild it with the current settings, or restore the settings it was "
            "built with.",
        )


def _store_at(url: str) -> str:
    """The store a URL names, in words (the URL has no password: the index never records one)."""
    scheme = url.split("://", 1)[0].lower()
    if scheme in ("http", "https"):
        return f"the Chroma server {url}"
    if scheme in ("postgresql", "postgres"):
        return f"PostgreSQL at {url}"
    return url


class VectorStoreMismatchError(RagError):
    """The settings name another vector store than the one the index keeps its vectors in."""

    def __init__(self, index_path: Path, collection: str, recorded_url: str | None, requested_url: str):
        self.index_path, self.collection = index_path, collection
        self.recorded_url, self.requested_url = recorded_url, requested_url
        index = _index_label(index_path, collection)
        where = (
            f"on disk, not in {_store_at(requested_url)}"
            if recorded_url is None
            else f"in {_store_at(recorded_url)}, not {requested_url}"
        )
        super().__init__(
            f"The index at {index} keeps its vectors {where};",
            "leave vector_store.url unset to use it, or choose another index_dir or collection for a new index "
            "on that server.",
        )


class VectorsMissingError(RagError):
    """The vector store holds none of the chunks the manifest lists: repairing would forget every file.

    `recorded`: the index says where its vectors were written (so pointing it elsewhere is refused).
    """

    def __init__(self, index_path: Path, collection: str, store: str, chunks: int, files: int, recorded: bool):
        self.index_path, self.collection, self.store = index_path, collection, store
        self.chunks, self.files, self.recorded = chunks, files, recorded
        super().__init__(
            f"The index at {_index_label(index_path, collection)} lists {chunks} chunks of {files} files, and "
            f"{store} holds none of them, so there is nothing to repair and nothing was changed:",
            "restore them there, or if they are lost, ingest again with rebuild=True."
            if recorded
            else "if they are in a Chroma server, set vector_store.url to it; if they are lost, ingest again "
            "with rebuild=True.",
        )


class IndexBusyError(RagError):
    """`index_path`: the index folder whose lock is taken, or, for a lock held in a database, the
    collection it guards in words ("the collection 'notes' in PostgreSQL at URL")."""

    def __init__(self, index_path: Path | str):
        self.index_path = index_path
        where = f"the index at {index_path}" if isinstance(index_path, Path) else index_path
        super().__init__(f"Another ingest is writing to {where};", "try again once it has finished.")


class RebuildScopeError(UsageError):
    """A rebuild for new settings would drop files from outside the paths given (`places` names where)."""

    def __init__(self, index_path: Path, differences: list[str], outside: int, places: str):
        self.index_path, self.differences, self.outside, self.places = index_path, differences, outside, places
        super().__init__(
            f"The index at {index_path} was built with other settings ({'; '.join(differences)}), so a rebuild "
            f"embeds the whole collection again, and it holds {outside} files from outside the paths given "
            f"({places}).",
            "Give those paths too, or pass rebuild_all=True to drop them from the collection.",
        )


class UnknownVectorStoreError(UsageError):
    """The settings name a vector store no module provides."""

    def __init__(self, url: str, known: list[str]):
        self.url, self.known = url, known
        super().__init__(f"No vector store is known for {url!r} (vector_store.url);", f"use {'; '.join(known)}.")


class VectorDimensionError(RagError):
    """Vectors of another length than those a collection holds: another embedding model made them."""

    def __init__(self, collection: str, store: str, stored: int, given: int):
        self.collection, self.store, self.stored, self.given = collection, store, stored, given
        super().__init__(
            f"The collection {collection!r} in {store} holds vectors of {stored} dimensions, not {given}: another "
            "embedding model made them.",
            "Ingest with rebuild=True to rebuild it with this one, or restore the model it was built with.",
        )


class MigrationTargetError(UsageError):
    """Where a collection is to be copied names no backend an index can live in."""

    def __init__(self, target: str, known: list[str]):
        self.target, self.known = target, known
        super().__init__(f"{target!r} names no place a collection can be copied to;", f"give {'; or '.join(known)}.")


class MigrationTargetNotEmptyError(RagError):
    """The target of a copy already holds a collection of that name with something in it; the copy
    writes only into an empty one, so that nothing there is overwritten or mixed in."""

    def __init__(self, target: str, collection: str, files: int, chunks: int):
        self.target, self.collection, self.files, self.chunks = target, collection, files, chunks
        held = f"{files} files and {chunks} chunks" if files else f"{chunks} chunks that no file of its manifest lists"
        super().__init__(
            f"There is a collection {collection!r} in {target} already ({held}); nothing was copied.",
            "Copy it to another place.",
        )


class MigrationSourceInconsistentError(RagError):
    """The collection to copy disagrees with itself (an ingest stopped midway): a copy would carry that along."""

    def __init__(self, source: str, collection: str):
        self.source, self.collection = source, collection
        super().__init__(
            f"The collection {collection!r} in {source} is not consistent (an ingest stopped before it finished); "
            "nothing was copied.",
            "Repair it first (rag.repair), then copy it.",
        )


class MigrationCheckError(RagError):
    """The copy, read back, differs from its original (`differences` says how); it is not recorded as built."""

    def __init__(self, target: str, collection: str, differences: list[str]):
        self.target, self.collection, self.differences = target, collection, differences
        super().__init__(
            f"The copy of {collection!r} in {target} differs from its original ({'; '.join(differences)}); "
            "it is left unfinished, so no command uses it.",
            "Copy it again: the copy resumes and checks again.",
        )


class IndexTooNewError(RagError):
    """The index database was written by a newer rag, in a layout this one does not know."""

    def __init__(self, database: Path, version: int, known: int):
        self.database, self.version, self.known = database, version, known
        super().__init__(
            f"The index database {database} has schema version {version}; this rag knows versions up to {known}.",
            "Upgrade rag to open it (an older rag must not write to it).",
        )


class ModelNotFoundError(RagError):
    pass


class LoadError(Exception):
    """One file could not be read; the ingest reports it and carries on with the rest."""


class NotADocument(LoadError):
    """The file is no document at all (a program without an extension): skipped with the reason, not failed."""


class IngestWarning(str):
    """A warning about a whole ingest (IngestReport.warnings), as data like the errors above: `problem`
    and `remedy` in the library's terms, joined as the text itself, so that it stays the plain string
    a caller prints or sends as JSON; an edge words the remedy its own way from the fields."""

    problem: str
    remedy: str

    def __new__(cls, problem: str, remedy: str = "") -> Self:
        warning = super().__new__(cls, " ".join(part for part in (problem, remedy) if part))
        warning.problem, warning.remedy = problem, remedy
        return warning

    def __reduce__(self) -> tuple[Any, ...]:  # pickled as the fields it is made of, not as its text
        return (type(self), (self.problem, self.remedy))


class UnreadScriptsWarning(IngestWarning):
    """Files written in a script the embedding model does not read. `model_choice` says which model
    to set instead; the remedy is that, then a rebuild."""

    model_choice: str

    def __new__(cls, problem: str, model_choice: str) -> Self:
        warning = super().__new__(cls, problem, f"{model_choice}, then ingest again with rebuild=True.")
        warning.model_choice = model_choice
        return warning

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.problem, self.model_choice))
