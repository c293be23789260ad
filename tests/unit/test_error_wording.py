"""Errors as data: one error is said in the library's terms to a Python caller, in flags (with its
exit code) by the command line, and as an HTTP status with the library's words by the server."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rag.cli.errors import CLI_ERRORS, cli_wording
from rag.errors import (
    FieldsShorthandError,
    FormatUnknownError,
    IndexBusyError,
    IndexMismatchError,
    JobOutputBusyError,
    JobOutputChangedError,
    JobOutputExistsError,
    JobOutputMismatchError,
    LocalModelNotFoundError,
    MigrationCheckError,
    MigrationSourceInconsistentError,
    MigrationTargetError,
    MigrationTargetNotEmptyError,
    ModelNotChosenError,
    ModelNotServedError,
    NoDocumentsError,
    NoIndexError,
    QrelsMismatchError,
    RagError,
    RebuildScopeError,
    SourceNotIngestedError,
    UnknownVectorStoreError,
    UsageError,
    VectorDimensionError,
    VectorsMissingError,
    VectorStoreMismatchError,
)
from rag.server.tokens import (
    MissingScopeError,
    NoScopesGivenError,
    TokenExistsError,
    UnknownTokenError,
)

INDEX = Path("/kb/index")
# One of each error whose remedy the command line words in flags.
SAMPLES = {
    NoIndexError: [NoIndexError(INDEX, "default"), NoIndexError(INDEX, "notes", ["work", "personal"])],
    IndexMismatchError: [IndexMismatchError(INDEX, ["chunk_tokens 200, now 100"]), IndexMismatchError(INDEX, ["chunker_version 5, now 6"])],
    VectorStoreMismatchError: [
        VectorStoreMismatchError(INDEX, "default", None, "http://127.0.0.1:8000"),
        VectorStoreMismatchError(INDEX, "notes", "http://127.0.0.1:8000", "http://127.0.0.1:8001"),
    ],
    VectorsMissingError: [
        VectorsMissingError(INDEX, "default", "Chroma on disk", 12, 3, recorded=True),
        VectorsMissingError(INDEX, "default", "Chroma on disk", 12, 3, recorded=False),
    ],
    IndexBusyError: [IndexBusyError(INDEX)],
    RebuildScopeError: [RebuildScopeError(INDEX, ["chunk_tokens 200, now 100"], 4, "/notes/a.md")],
    JobOutputExistsError: [JobOutputExistsError(Path("out.jsonl"))],
    JobOutputMismatchError: [JobOutputMismatchError(Path("out.jsonl"), "selection")],
    JobOutputBusyError: [JobOutputBusyError(Path("out.jsonl"))],
    JobOutputChangedError: [JobOutputChangedError(Path("out.jsonl"), 10, 20)],
    FormatUnknownError: [FormatUnknownError(Path("out.txt"), ("jsonl", "csv", "md"))],
    QrelsMismatchError: [QrelsMismatchError(Path("qrels/test.tsv"), ["1 queries queries.jsonl lacks (q9)"])],
    NoDocumentsError: [NoDocumentsError()],
    SourceNotIngestedError: [SourceNotIngestedError("invoices/*.md")],
    FieldsShorthandError: [FieldsShorthandError("amount:money", ["str", "int"]), FieldsShorthandError(None, ["str"])],
    UnknownVectorStoreError: [UnknownVectorStoreError("ftp://files/x", ["http://HOST:PORT for a Chroma server"])],
    VectorDimensionError: [VectorDimensionError("notes", "Chroma on disk", 384, 512)],
    MigrationTargetError: [MigrationTargetError("ftp://files/kb", ["a folder for an index on disk"])],
    MigrationTargetNotEmptyError: [
        MigrationTargetNotEmptyError("PostgreSQL at postgresql://rag@db/kb", "notes", 3, 12),
        MigrationTargetNotEmptyError("the index at /kb/index", "notes", 0, 12),
    ],
    MigrationSourceInconsistentError: [MigrationSourceInconsistentError("the index at /kb/index", "notes")],
    MigrationCheckError: [MigrationCheckError("PostgreSQL at postgresql://rag@db/kb", "notes", ["the manifests differ"])],
    ModelNotChosenError: [ModelNotChosenError("the Ollama server at http://127.0.0.1:11434")],
    ModelNotServedError: [ModelNotServedError("http://127.0.0.1:8080/v1", "llama3")],
    LocalModelNotFoundError: [
        LocalModelNotFoundError("No Ollama model 'tiny': /home/me/.ollama/models has none.", listed_all=False),
    ],
    NoScopesGivenError: [NoScopesGivenError()],
    TokenExistsError: [TokenExistsError("alice")],
    UnknownTokenError: [UnknownTokenError("guest", ["alice", "bob"])],
}
FLAG_OR_COMMAND = re.compile(r"(?<![\w-])--[a-z]|`rag [a-z]")
LIBRARY_TERMS = re.compile(r"\w=\w|rag\.\w")


def test_every_error_the_cli_words_itself_has_a_sample():
    assert set(SAMPLES) == {kind for kind, wording in CLI_ERRORS.items() if wording.remedy}


@pytest.mark.parametrize("error", [error for errors in SAMPLES.values() for error in errors], ids=repr)
def test_the_library_says_what_to_do_in_its_terms_and_the_cli_in_flags(error):
    library = str(error)
    assert library == f"{error.problem} {error.remedy}" and error.remedy
    assert not FLAG_OR_COMMAND.search(library), library

    line, exit_code = cli_wording(error)
    assert line.startswith(f"{error.problem} ") and line != library
    assert FLAG_OR_COMMAND.search(line) and not LIBRARY_TERMS.search(line.removeprefix(error.problem)), line
    assert exit_code == (2 if isinstance(error, UsageError) else 1)


def test_an_error_without_cli_wording_keeps_the_library_words_and_its_class_exit_code():
    assert cli_wording(UsageError("Path not found: /nowhere")) == ("Path not found: /nowhere", 2)
    assert cli_wording(RagError("The model server closed the connection.")) == ("The model server closed the connection.", 1)

    class NewKindOfUsage(UsageError):
        pass

    assert cli_wording(NewKindOfUsage("Bad.", "Do this.")) == ("Bad. Do this.", 2)  # its nearest class's entry
    # Every model listed already: nothing more to say, in either words.
    listed = LocalModelNotFoundError("No Ollama model 'x' in /m; it has ollama:a, ollama:b.", listed_all=True)
    assert cli_wording(listed) == (str(listed), 1) and not listed.remedy


def test_the_server_answers_each_error_with_the_status_of_its_nearest_class():
    from rag.server.responses import rag_error_body, status_of
    from rag.server.service import ChunkNotFoundError, IngestOffError, UnknownCollectionError

    expected = {
        NoIndexError(INDEX, "default"): 404,
        ChunkNotFoundError("abc"): 404,
        UnknownCollectionError("nope", ["default"]): 404,  # a UsageError, but its own entry comes first
        IngestOffError(): 403,
        IndexBusyError(INDEX): 409,
        RebuildScopeError(INDEX, ["chunk_tokens 200, now 100"], 4, "/notes/a.md"): 400,
        JobOutputExistsError(Path("out.jsonl")): 400,
        UsageError("Bad."): 400,
        IndexMismatchError(INDEX, ["chunk_tokens 200, now 100"]): 500,
    }
    for error, status in expected.items():
        assert status_of(error) == status, error
        body, code = rag_error_body(error)
        assert code == status and body["error"]["message"] == str(error)


def test_a_token_without_the_scope_names_add_token_to_python_and_the_owners_command_to_http():
    from rag.server.responses import HTTP_REMEDIES, rag_error_body

    error = MissingScopeError("reader", "write", "notes")
    problem = "The token 'reader' lacks the write scope on the collection 'notes':"
    assert str(error) == f"{problem} the server's owner can issue one that has it (add_token with the scopes {{'notes': 'write'}})."
    body, code = rag_error_body(error)
    assert code == 403 and body["error"]["message"] == (
        f"{problem} the server's owner can issue one that has it (`rag serve token add NAME --collection notes --scope write`)."
    )
    for kind in HTTP_REMEDIES:  # the server words a remedy only where the library's would not do
        assert kind in SERVER_SAMPLES
    assert not FLAG_OR_COMMAND.search(str(error)) and FLAG_OR_COMMAND.search(body["error"]["message"])


SERVER_SAMPLES = {MissingScopeError}

