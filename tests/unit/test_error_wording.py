"""Errors as data: one error is said in the library's terms to a Python caller, in flags (with its
exit code) by the command line, and as an HTTP status with the library's words by the server."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

import rag
from ingest.index import Index
from rag.cli import app
from rag.cli.errors import CLI_ERRORS, cli_wording
from rag.errors import (
    FieldsShorthandError,
    FormatUnknownError,
    IndexBusyError,
    IndexMismatchError,
    JobOutputBusyError,
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
    UnreadScriptsWarning,
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
    add_token,
    revoke_token,
)
from tests.conftest import make_settings

runner = CliRunner()
INDEX = Path("/kb/index")
# One of each error whose remedy the command line words in flags.
SAMPLES = {
    NoIndexError: [NoIndexError(INDEX, "default"), NoIndexError(INDEX, "notes", ["work", "personal"])],
    IndexMismatchError: [IndexMismatchError(INDEX, ["chunk_tokens 200, now 100"])],
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


@pytest.mark.fast
def test_every_error_the_cli_words_itself_has_a_sample():
    assert set(SAMPLES) == {kind for kind, wording in CLI_ERRORS.items() if wording.remedy}


@pytest.mark.fast
@pytest.mark.parametrize("error", [error for errors in SAMPLES.values() for error in errors], ids=repr)
def test_the_library_says_what_to_do_in_its_terms_and_the_cli_in_flags(error):
    library = str(error)
    assert library == f"{error.problem} {error.remedy}" and error.remedy
    assert not FLAG_OR_COMMAND.search(library), library

    line, exit_code = cli_wording(error)
    assert line.startswith(f"{error.problem} ") and line != library
    assert FLAG_OR_COMMAND.search(line) and not LIBRARY_TERMS.search(line.removeprefix(error.problem)), line
    assert exit_code == (2 if isinstance(error, UsageError) else 1)


@pytest.mark.fast
def test_an_error_without_cli_wording_keeps_the_library_words_and_its_class_exit_code():
    assert cli_wording(UsageError("Path not found: /nowhere")) == ("Path not found: /nowhere", 2)
    assert cli_wording(RagError("The model server closed the connection.")) == ("The model server closed the connection.", 1)

    class NewKindOfUsage(UsageError):
        pass

    assert cli_wording(NewKindOfUsage("Bad.", "Do this.")) == ("Bad. Do this.", 2)  # its nearest class's entry
    # Every model listed already: nothing more to say, in either words.
    listed = LocalModelNotFoundError("No Ollama model 'x' in /m; it has ollama:a, ollama:b.", listed_all=True)
    assert cli_wording(listed) == (str(listed), 1) and not listed.remedy


@pytest.mark.fast
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


@pytest.mark.fast
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


# -- the same error from each edge, raised by the real code ---------------------------------------


def test_no_index_reads_in_library_terms_from_python_and_in_commands_from_the_cli(home):
    settings = make_settings(home)
    with pytest.raises(NoIndexError) as raised:
        rag.status(settings)
    assert str(raised.value) == f"No index at {home / 'index'}. Ingest documents into it first (rag.ingest)."

    result = runner.invoke(app, ["status"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr == f"Error: No index at {home / 'index'}. Run `rag ingest PATH` first.\n"


def test_a_busy_index_from_python_the_cli_and_http(home, notes):
    from rag.server.app import create_app
    from rag.server.service import KnowledgeService
    from tests.test_serve import fast_settings, uvicorn_server

    settings = fast_settings(make_settings(home, serve={"ingest_roots": [str(notes)]}))
    assert rag.ingest([notes], settings).ok
    library = f"Another ingest is writing to the index at {settings.index_path}; try again once it has finished."
    service = KnowledgeService(settings)
    try:
        with Index(settings).writer_lock(wait=False), uvicorn_server(create_app(service)) as url:
            with pytest.raises(IndexBusyError) as raised:  # a notebook's rag.ingest(..., wait=False)
                rag.ingest([notes], settings, wait=False)
            assert str(raised.value) == library

            cli = runner.invoke(app, ["ingest", "--no-wait", str(notes)], env={"RAG_HOME": str(home)})
            assert cli.exit_code == 1
            assert " ".join(cli.stderr.split()) == f"Error: {library} Run without --no-wait to wait for it automatically."

            http = httpx.post(f"{url}/api/ingest", json={"paths": [str(notes)]}, timeout=60)
            assert http.status_code == 409
            assert http.json()["error"] == {"message": library, "type": "IndexBusyError", "code": 409}
    finally:
        service.close()


def test_a_bad_fields_shorthand_names_the_function_from_python_and_the_flag_from_the_cli(home):
    with pytest.raises(FieldsShorthandError) as raised:
        rag.fields_schema("vendor:str, amount:money")
    assert str(raised.value).endswith('e.g. fields_schema("name:str, tags:list[str]").')

    result = runner.invoke(app, ["extract", "--fields", "vendor:str, amount:money"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Cannot read the field 'amount:money': write NAME:TYPE with TYPE one of ")
    assert result.stderr.endswith('or list[TYPE], e.g. --fields "name:str, tags:list[str]".\n')


def test_token_mistakes_name_functions_from_python_and_commands_from_the_cli(home):
    path = home / "serve-tokens.json"
    with pytest.raises(UnknownTokenError) as raised:
        revoke_token(path, "guest")
    assert str(raised.value) == "No token named 'guest' (tokens: none); revoke one of those."
    with pytest.raises(NoScopesGivenError, match=r"give add_token scopes such as \{'notes': 'read'\}\.$"):
        add_token(path, "guest", {})

    env = {"RAG_HOME": str(home)}
    result = runner.invoke(app, ["serve", "token", "revoke", "guest"], env=env)
    assert result.exit_code == 2
    assert result.stderr == "Error: No token named 'guest' (tokens: none); `rag serve token list` shows them.\n"
    assert runner.invoke(app, ["serve", "token", "add", "guest", "--collection", "notes"], env=env).exit_code == 0
    again = runner.invoke(app, ["serve", "token", "add", "guest", "--collection", "notes"], env=env)
    assert again.exit_code == 2
    assert again.stderr == (
        "Error: A token named 'guest' exists: revoke it first (`rag serve token revoke guest`), or choose another name.\n"
    )


def test_a_missing_local_model_names_the_function_from_python_and_the_command_from_rag_models(home, tmp_path):
    from rag.backends import backend_status

    empty = tmp_path / "ollama-models"
    empty.mkdir()
    environ = {"OLLAMA_MODELS": str(empty), "RAG_LLM__MODEL_PATH": "ollama:nothing"}
    settings = make_settings(home, llm={"model_path": "ollama:nothing"})
    problem = f"No Ollama model 'nothing': {empty} has none."
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OLLAMA_MODELS", str(empty))
        status = backend_status("llamacpp", settings)
    assert status.problem == f"{problem} rag.backends.local_models.local_models() lists every model rag finds."

    result = runner.invoke(app, ["models", "--json"], env={"RAG_HOME": str(home), **environ})
    assert result.exit_code == 1
    assert json.loads(result.stdout)[0]["problem"] == f"{problem} `rag models --local` lists every model rag finds."


def test_an_unchosen_ollama_model_names_the_setting_from_python_and_rag_models_from_the_cli(home):
    from rag.backends import create_llm

    dead = "http://127.0.0.1:9"  # never asked: the missing setting is found first
    settings = make_settings(home, llm={"backend": "ollama", "model": None, "ollama": {"base_url": dead}})
    with pytest.raises(ModelNotChosenError) as raised:
        create_llm(settings)
    assert str(raised.value) == f"No model is chosen for the Ollama server at {dead}: set llm.model to one of the models it has."
    assert cli_wording(raised.value) == (
        f"No model is chosen for the Ollama server at {dead}: set llm.model to one of those `rag models` lists.", 2
    )


def test_the_unread_scripts_warning_says_rebuild_true_to_python_and_the_command_to_the_cli(home, tmp_path):
    from ingest.scripts import ENGLISH_MODEL

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "양자화.md").write_text("# 양자화\n\n양자화는 모델의 가중치를 더 적은 비트로 저장해 메모리를 줄이는 방법입니다.\n")
    settings = make_settings(home, embedding={"model": ENGLISH_MODEL})
    [warning] = rag.ingest([notes], settings).warnings
    assert isinstance(warning, UnreadScriptsWarning)
    assert warning.startswith("1 file written in a script the embedding model ")
    assert warning.endswith("or to a local multilingual sentence-transformers model folder, then ingest again with rebuild=True.")

    result = runner.invoke(
        app, ["ingest", "--rebuild", str(notes)], env={"RAG_HOME": str(home), "RAG_EMBEDDING__MODEL": ENGLISH_MODEL}
    )
    assert result.exit_code == 0, result.output
    line = " ".join(result.stderr.split("Warning: ", 1)[1].split())
    assert line == f"{warning.problem} {warning.model_choice}, then `rag ingest --rebuild PATH...`."
