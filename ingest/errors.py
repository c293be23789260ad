"""Errors a user can act on. Each carries the one line the CLI prints and its exit code.

These are the ones ingest raises; `rag.errors` re-exports them beside those only rag raises.
"""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    exit_code = 1


class UsageError(RagError):
    """The command was asked for something that cannot be done as stated."""

    exit_code = 2


def _index_label(index_path: Path, collection: str) -> str:
    return f"{index_path}" if collection == "default" else f"{index_path} (collection {collection!r})"


class NoIndexError(RagError):
    def __init__(self, index_path: Path, collection: str, others: list[str] | None = None):
        if others:
            names = ", ".join(others)
            super().__init__(
                f"No collection {collection!r} in the index at {index_path}; it holds {names}. "
                "Pass --collection NAME (`rag collections` lists them), or run `rag ingest PATH` to create it."
            )
        else:
            super().__init__(f"No index at {_index_label(index_path, collection)}. Run `rag ingest PATH` first.")


class IndexMismatchError(RagError):
    def __init__(self, index_path: Path, differences: list[str]):
        super().__init__(
            f"The index at {index_path} was built with other settings ({'; '.join(differences)}). "
            "Run `rag ingest --rebuild PATH...` to rebuild it with the current settings, "
            "or restore the settings it was built with."
        )


class VectorStoreMismatchError(RagError):
    """The command names another vector store than the one the index keeps its vectors in."""

    def __init__(self, index_path: Path, collection: str, recorded_url: str | None, requested_url: str):
        index = _index_label(index_path, collection)
        where = (
            f"on disk, not in the Chroma server {requested_url}"
            if recorded_url is None
            else f"in the Chroma server {recorded_url}, not {requested_url}"
        )
        super().__init__(
            f"The index at {index} keeps its vectors {where}; run without --chroma-url or vector_store.url to use it, "
            "or give another --index or --collection for a new index on that server."
        )


class VectorsMissingError(RagError):
    """The vector store holds none of the chunks the manifest lists: repairing would forget every file."""

    def __init__(self, index_path: Path, collection: str, store: str, chunks: int, files: int, recorded: bool):
        elsewhere = (
            "restore them there, or if they are lost, run `rag ingest --rebuild PATH...`"
            if recorded  # the index says where they were written: pointing it elsewhere is refused
            else "if they are in a Chroma server, give its --chroma-url; if they are lost, run `rag ingest --rebuild PATH...`"
        )
        super().__init__(
            f"The index at {_index_label(index_path, collection)} lists {chunks} chunks of {files} files, and "
            f"{store} holds none of them, so there is nothing to repair and nothing was changed: {elsewhere}."
        )


class IndexBusyError(RagError):
    def __init__(self, index_path: Path):
        super().__init__(f"Another ingest is writing to the index at {index_path}; try again once it has finished.")


class UnknownVectorStoreError(UsageError):
    """The settings name a vector store no module provides."""

    def __init__(self, url: str, known: list[str]):
        super().__init__(
            f"No vector store is known for {url!r} (vector_store.url or --chroma-url); use {'; '.join(known)}."
        )


class VectorDimensionError(RagError):
    """Vectors of another length than those a collection holds: another embedding model made them."""

    def __init__(self, collection: str, store: str, stored: int, given: int):
        super().__init__(
            f"The collection {collection!r} in {store} holds vectors of {stored} dimensions, not {given}: another "
            "embedding model made them. Run `rag ingest --rebuild PATH...` to rebuild it with this one, "
            "or restore the model it was built with."
        )


class IndexTooNewError(RagError):
    """The index database was written by a newer rag, in a layout this one does not know."""

    def __init__(self, database: Path, version: int, known: int):
        super().__init__(
            f"The index database {database} has schema version {version}; this rag knows versions up to {known}. "
            "Upgrade rag to open it (an older rag must not write to it)."
        )


class ModelNotFoundError(RagError):
    pass


class LoadError(Exception):
    """One file could not be read; the ingest reports it and carries on with the rest."""


class NotADocument(LoadError):
    """The file is no document at all (a program without an extension): skipped with the reason, not failed."""
