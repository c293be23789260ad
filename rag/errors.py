"""Errors a user can act on. Each carries the one line the CLI prints and its exit code."""

from __future__ import annotations

from pathlib import Path


class RagError(Exception):
    exit_code = 1


class UsageError(RagError):
    """The command was asked for something that cannot be done as stated."""

    exit_code = 2


class ConfigError(UsageError):
    pass


class NoIndexError(RagError):
    def __init__(self, index_path: Path, collection: str):
        where = f"{index_path}" if collection == "default" else f"{index_path} (collection {collection!r})"
        super().__init__(f"No index at {where}. Run `rag ingest PATH` first.")


class IndexMismatchError(RagError):
    def __init__(self, index_path: Path, differences: list[str]):
        super().__init__(
            f"The index at {index_path} was built with other settings ({'; '.join(differences)}). "
            "Run `rag ingest --rebuild PATH...` to rebuild it with the current settings, "
            "or restore the settings it was built with."
        )


class IndexBusyError(RagError):
    def __init__(self, index_path: Path):
        super().__init__(
            f"Another `rag ingest` is writing to the index at {index_path}; "
            "wait for it to finish, or run without --no-wait to wait automatically."
        )


class ModelNotFoundError(RagError):
    pass


class LoadError(Exception):
    """One file could not be read; the ingest reports it and carries on with the rest."""
