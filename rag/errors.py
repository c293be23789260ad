"""Errors a user can act on. Each carries the one line the CLI prints and its exit code.

Those ingest raises are defined in `ingest.errors` (ingest never imports rag) and are the same
classes here, so `except rag.errors.RagError` catches them too.
"""

from __future__ import annotations

from ingest.errors import (
    IndexBusyError,
    IndexMismatchError,
    IndexTooNewError,
    LoadError,
    ModelNotFoundError,
    NoIndexError,
    NotADocument,
    RagError,
    UnknownVectorStoreError,
    UsageError,
    VectorDimensionError,
    VectorsMissingError,
    VectorStoreMismatchError,
)

__all__ = [
    "ConfigError", "IndexBusyError", "IndexMismatchError", "IndexTooNewError", "LoadError", "ModelNotFoundError",
    "NoIndexError", "NotADocument", "RagError", "UnknownVectorStoreError", "UsageError", "VectorDimensionError",
    "VectorStoreMismatchError", "VectorsMissingError",
]


class ConfigError(UsageError):
    pass
