"""The same sync and search tests against a real Chroma server (`chroma run`, from the chromadb wheel)."""

from __future__ import annotations

import inspect
import json
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from rag.settings import load_settings
from tests import test_search, test_sync
from tests.conftest import SAMPLE_NOTES, free_port

runner = CliRunner()


@pytest.fixture
def on_server(chroma_server, monkeypatch):
    """Make the sync tests build settings that point at the server.

    Each test home gets its own collection names on the shared server, as each has its own manifest.
    """

    def server_settings(home: Path, **overrides):
        collection = f"{overrides.pop('collection', 'default')}-{zlib.crc32(str(home).encode()):08x}"
        return load_settings(
            environ={}, cwd=home, home=home, collection=collection, vector_store={"url": chroma_server}, **overrides
        )

    monkeypatch.setattr(test_sync, "make_settings", server_settings)
    return server_settings


SYNC_TESTS = [
    test_sync.test_resync_adds_replaces_and_removes_exactly,
    test_sync.test_unchanged_files_are_skipped_and_touch_is_not_a_change,
    test_sync.test_dry_run_reports_the_plan_and_changes_nothing,
    test_sync.test_changed_settings_are_refused_until_rebuild,
    test_sync.test_a_file_that_breaks_keeps_its_previous_chunks,
    test_sync.test_deleting_a_whole_folder_removes_its_chunks_only,
    test_sync.test_collections_are_separate_knowledge_bases,
]


@pytest.mark.parametrize("sync_test", SYNC_TESTS, ids=[t.__name__ for t in SYNC_TESTS])
def test_sync_on_a_chroma_server(on_server, sync_test, notes, home, tmp_path):
    available = {"notes": notes, "home": home, "tmp_path": tmp_path}
    sync_test(**{name: available[name] for name in inspect.signature(sync_test).parameters})


@pytest.fixture(scope="module")
def server_sample_index(chroma_server, tmp_path_factory):
    import rag

    home = tmp_path_factory.mktemp("server-sample")
    settings = load_settings(environ={}, cwd=home, home=home, vector_store={"url": chroma_server})
    return settings, rag.ingest([SAMPLE_NOTES], settings)


@pytest.mark.parametrize("question,expected", test_search.QUESTIONS[:6])
def test_search_on_a_chroma_server(server_sample_index, question, expected):
    test_search.test_search_ranks_the_right_file_first(server_sample_index, question, expected)


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
    from rag.ask import Assistant
    from tests.test_retrieval import write_beir_fixture

    settings, _ = server_sample_index
    fast = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 8})})
    answer = Assistant(fast, k=2).ask("When does the warranty of the Brandt RO-350 reflow oven end?")
    assert answer.sources[0].metadata["source"].endswith("brandt-ro350-manual.pdf") and answer.answer

    dataset = write_beir_fixture(tmp_path / "fixture")
    result = runner.invoke(app, ["eval", str(dataset), "--json", "--chroma-url", chroma_server], env={"RAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert {r["mode"]: r["mrr_at_10"] for r in json.loads(result.stdout)}["hybrid"] == 1.0
