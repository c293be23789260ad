"""Search, the CLI, ask and eval against a real Chroma server (`chroma run`, from the chromadb wheel); the sync
tests run on it too, through the `store` fixture."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.settings import load_settings
from tests.conftest import SAMPLE_NOTES
from tests.helpers import QUESTIONS, assert_ranks_first, free_port, write_beir_fixture

runner = CliRunner()


@pytest.fixture(scope="module")
def server_sample_index(chroma_server, tmp_path_factory):
    import rag

    home = tmp_path_factory.mktemp("server-sample")
    settings = load_settings(environ={}, cwd=home, home=home, vector_store={"url": chroma_server})
    return settings, rag.ingest([SAMPLE_NOTES], settings)


@pytest.mark.parametrize("question,expected", QUESTIONS[:6])
def test_search_on_a_chroma_server(server_sample_index, question, expected):
    assert_ranks_first(server_sample_index[0], question, expected)


def test_cli_with_chroma_url(chroma_server, notes, home):
    env = {"RAG_HOME": str(home)}
    url = ["--chroma-url", chroma_server, "--collection", "cli-test"]
    assert runner.invoke(app, ["ingest", str(notes), *url], env=env).exit_code == 0
    status = json.loads(runner.invoke(app, ["status", "--json", *url], env=env).stdout)
    assert status["files"] == 4
    hits = json.loads(runner.invoke(app, ["search", "baud rate of the service port", "--json", *url], env=env).stdout)
    assert hits[0]["source"].endswith("calibrate.py")


def test_a_chroma_server_that_is_down_is_one_line(notes, home):
    dead = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["ingest", str(notes), "--chroma-url", dead], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: No Chroma server answers at {dead}; start one with `chroma run")
    assert len(result.stderr.splitlines()) == 1


def test_ask_and_eval_on_a_chroma_server(chroma_server, server_sample_index, home, tmp_path):
    from rag.answering import Assistant

    settings, _ = server_sample_index
    fast = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 8})})
    answer = Assistant(fast, k=2).ask("When does the warranty of the Brandt RO-350 reflow oven end?")
    assert answer.sources[0].metadata["source"].endswith("brandt-ro350-manual.pdf") and answer.answer

    dataset = write_beir_fixture(tmp_path / "fixture")
    result = runner.invoke(app, ["eval", str(dataset), "--json", "--chroma-url", chroma_server], env={"RAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert {r["mode"]: r["mrr_at_10"] for r in json.loads(result.stdout)}["hybrid"] == 1.0
