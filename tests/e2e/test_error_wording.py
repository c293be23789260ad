"""Errors as data, from each edge: the same error raised by the real code reads in the library's
terms to a Python caller, in flags and commands from the command line, and with the library's words
and its status over HTTP (tests/unit/test_error_wording.py checks every error's wordings)."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

import rag
from ingest.index import Index
from rag.cli import app
from rag.cli.errors import cli_wording
from rag.errors import (
    FieldsShorthandError,
    IndexBusyError,
    ModelNotChosenError,
    NoIndexError,
    UnreadScriptsWarning,
)
from rag.server.tokens import NoScopesGivenError, UnknownTokenError, add_token, revoke_token
from tests.conftest import make_settings

runner = CliRunner()


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
    from tests.e2e.test_serve import fast_settings, uvicorn_server

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
