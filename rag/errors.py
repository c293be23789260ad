"""Errors a user can act on, as data: what happened (`problem`) and what to do in the library's
terms (`remedy`); see ingest/errors.py, whose classes are the same ones here, so that
`except rag.errors.RagError` catches them too. The CLI words remedies in flags and picks exit
codes in rag/cli/errors.py; the server picks HTTP statuses in rag/server/responses.py.
"""

from __future__ import annotations

from pathlib import Path

from ingest.errors import (
    IndexBusyError,
    IndexMismatchError,
    IndexTooNewError,
    IngestWarning,
    LoadError,
    MigrationCheckError,
    MigrationSourceInconsistentError,
    MigrationTargetError,
    MigrationTargetNotEmptyError,
    ModelNotFoundError,
    NoIndexError,
    NotADocument,
    RagError,
    RebuildScopeError,
    UnknownVectorStoreError,
    UnreadScriptsWarning,
    UsageError,
    VectorDimensionError,
    VectorsMissingError,
    VectorStoreMismatchError,
)

__all__ = [
    "ConfigError", "FieldsShorthandError", "FormatUnknownError", "IndexBusyError", "IndexMismatchError",
    "IndexTooNewError", "IngestWarning", "JobOutputBusyError", "JobOutputChangedError", "JobOutputExistsError", "JobOutputMismatchError",
    "LoadError", "LocalModelNotFoundError", "MigrationCheckError", "MigrationSourceInconsistentError",
    "MigrationTargetError", "MigrationTargetNotEmptyError", "ModelNotChosenError", "ModelNotFoundError", "ModelNotServedError",
    "NoDocumentsError", "NoIndexError", "NotADocument", "QrelsMismatchError", "RagError", "RebuildScopeError",
    "SourceNotIngestedError", "UnknownVectorStoreError", "UnreadScriptsWarning", "UsageError",
    "VectorDimensionError", "VectorStoreMismatchError", "VectorsMissingError",
]


class ConfigError(UsageError):
    pass


class ModelNotChosenError(ConfigError):
    """A server backend that runs the model llm.model names, with llm.model unset; `server` in words."""

    def __init__(self, server: str):
        self.server = server
        super().__init__(f"No model is chosen for {server}:", "set llm.model to one of the models it has.")


class ModelNotServedError(RagError):
    """llm.model names a model the server at `url` does not have."""

    def __init__(self, url: str, model: str):
        self.url, self.model = url, model
        super().__init__(f"The server at {url} does not serve model {model!r};", "set llm.model to one it serves.")


class LocalModelNotFoundError(ModelNotFoundError):
    """llm.model_path names another app's model (STORE:NAME) that is not there, or not only one.

    `listed_all`: the problem names every model the store has, so there is nothing more to list.
    """

    def __init__(self, problem: str, listed_all: bool):
        self.listed_all = listed_all
        super().__init__(
            problem, "" if listed_all else "rag.backends.local_models.local_models() lists every model rag finds."
        )


class JobOutputExistsError(UsageError):
    """A batch job's output file holds something no unfinished job wrote."""

    def __init__(self, out: Path):
        self.out = out
        super().__init__(
            f"{out} already exists and no unfinished job belongs to it;",
            "pass restart=True to replace it, or write to another file.",
        )


class JobOutputMismatchError(UsageError):
    """A batch job's output file belongs to a job started with other settings (`changed` names them)."""

    def __init__(self, out: Path, changed: str):
        self.out, self.changed = out, changed
        super().__init__(
            f"{out} belongs to a job started with other settings ({changed});",
            "run that job to finish it, or pass restart=True to start this one over.",
        )


class JobOutputChangedError(UsageError):
    """A batch job's output file is shorter than the job left it: records the job counts as written are gone."""

    def __init__(self, path: Path, size: int, committed: int):
        self.path = path
        super().__init__(
            f"{path} is shorter than this job left it ({size} of {committed} bytes): it was cut or deleted since;",
            "pass restart=True to write it again, or write to another file.",
        )


class JobOutputBusyError(UsageError):
    def __init__(self, out: Path):
        self.out = out
        super().__init__(f"Another rag job is writing {out};", "wait for it, or write to another file.")


class FormatUnknownError(UsageError):
    """No format was given and the output file's extension names none."""

    def __init__(self, path: Path, formats: tuple[str, ...]):
        self.path, self.formats = path, formats
        super().__init__(
            f"Cannot tell the format of {path} from its extension;",
            f"pass format={' or '.join(repr(name) for name in formats)}.",
        )


class NoDocumentsError(UsageError):
    """A batch job found an index without a single document to work on."""

    def __init__(self) -> None:
        super().__init__("The index holds no documents yet;", "add some with rag.ingest.")


class SourceNotIngestedError(UsageError):
    """A batch job was given a source that matches no ingested document."""

    def __init__(self, source: str):
        self.source = source
        super().__init__(f"No ingested document matches {source!r};", "ingest it first (rag.ingest), or check the path.")


class FieldsShorthandError(UsageError):
    """A fields shorthand ("name:str, tags:list[str]") that cannot be read; `field` is None when it names none."""

    def __init__(self, field: str | None, types: list[str]):
        self.field, self.types = field, types
        if field is None:
            super().__init__("No fields given:", 'give at least one NAME:TYPE, e.g. fields_schema("name:str").')
        else:
            super().__init__(
                f"Cannot read the field {field!r}: write NAME:TYPE with TYPE one of {', '.join(types)} or list[TYPE],",
                'e.g. fields_schema("name:str, tags:list[str]").',
            )


class QrelsMismatchError(UsageError):
    """The relevance judgements name queries or documents the dataset lacks: another dataset's file."""

    def __init__(self, path: Path, problems: list[str]):
        self.path, self.problems = path, problems
        super().__init__(
            f"{path} judges {' and '.join(problems)}:", "give the qrels file of this dataset (qrels=PATH)."
        )
