"""What the `rag` command does with good option values on a real index, unexpected errors in a real
process, closed pipes and missing packages (tests/unit/test_cli_errors.py: bad option values and
unexpected errors in process)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import rag
from ingest.index import CHUNK_METADATA_KEYS, Index
from rag.cli import DEBUG_HINT, app
from tests.conftest import SAMPLE_NOTES, installed_command, make_settings
from tests.helpers import free_port

runner = CliRunner()
FILES = [
    "work/tools/calibrate.py",
    "personal/recipes/cardamom-buns.md",
    "work/calls/phone-log-2024-04.txt",
    "work/vendors/brandt-ro350-manual.pdf",
    "work/intranet/office-it-essentials.html",
]


@pytest.fixture(scope="module")
def small_index(tmp_path_factory):
    """(settings, env) of an index of a few files of every kind of location (lines, headings, pages)."""
    docs = tmp_path_factory.mktemp("docs")
    for name in FILES:
        shutil.copy2(SAMPLE_NOTES / name, docs / name.rsplit("/", 1)[-1])
    home = tmp_path_factory.mktemp("home")
    settings = make_settings(home)
    assert rag.ingest([docs], settings).ok
    return settings, {"RAG_HOME": str(home)}


# -- a good option value ------------------------------------------------------------------------------


def test_a_good_choice_still_works(small_index):
    _, env = small_index
    result = runner.invoke(app, ["search", "baud rate of the service port", "--mode", "keyword", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"source"' in result.stdout


# -- --where -----------------------------------------------------------------------------------------


def test_the_where_keys_are_those_chunks_carry(small_index):
    settings, env = small_index
    index = Index(settings)
    carried = {key for chunk in index.get_chunks(sorted(index.chunk_ids())).values() for key in chunk.metadata}
    # The five files give the locations of text, PDF and code; tests/integration/test_formats.py those of the other formats.
    assert {"source", "page", "heading", "start_line", "end_line", "chunk_index"} <= carried <= set(CHUNK_METADATA_KEYS)
    for condition in ("page=1", "start_line=1", "chunk_index=0"):
        result = runner.invoke(app, ["search", "oven", "--where", condition, "--json"], env=env)
        assert result.exit_code == 0 and result.stdout.startswith("["), result.output


# -- unexpected errors ---------------------------------------------------------------------------------


_BROKEN_SEARCH = """
import sys
import rag
def broken(*args, **kwargs):
    raise KeyError("bogus")
rag.search = broken
sys.argv = ["rag", "search", "oven"]
from rag.cli import main
main()
"""


@pytest.mark.parametrize("debug", ["1", ""])
def test_rag_debug_shows_the_traceback(home, debug):
    env = {**os.environ, "RAG_HOME": str(home), "RAG_DEBUG": debug}
    result = subprocess.run([sys.executable, "-c", _BROKEN_SEARCH], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    if debug:
        assert "Traceback (most recent call last)" in result.stderr and result.stderr.endswith("KeyError: 'bogus'\n")
        assert DEBUG_HINT not in result.stderr
    else:
        assert result.stderr == f"Error: KeyError: 'bogus'\n{DEBUG_HINT}\n"


# -- a closed pipe -------------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True], ids=["text", "json"])
def test_a_closed_stdout_ends_quietly_with_exit_0(small_index, as_json):
    """`rag search ... | head -1`: the reader is gone before rag writes (closed here before it starts)."""
    _, env = small_index
    command = [installed_command("rag"), "search", "baud rate of the service port", "-k", "5", *(["--json"] * as_json)]
    search = subprocess.Popen(command, env={**os.environ, **env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    search.stdout.close()
    stderr = search.stderr.read().decode()
    assert search.wait(timeout=120) == 0, stderr
    assert stderr == ""


def test_head_1_takes_the_first_line(small_index):
    _, env = small_index
    shell = f"'{installed_command('rag')}' search 'baud rate of the service port' -k 5 | head -1; exit ${{PIPESTATUS[0]}}"
    result = subprocess.run(["bash", "-c", shell], env={**os.environ, **env}, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("1. [") and result.stdout.count("\n") == 1
    assert result.stderr == ""


# -- a missing optional package ---------------------------------------------------------------------------


GPT4ALL_HINT = "The gpt4all backend needs a package that is not installed (gpt4all): pip install 'rag[gpt4all]'"


@pytest.fixture
def without_gpt4all(monkeypatch):
    # As if the gpt4all package were not installed: LangChain's GPT4All imports it when a model is made.
    monkeypatch.setitem(sys.modules, "gpt4all", None)


def test_models_all_lists_every_backend_with_gpt4all_missing(without_gpt4all, home):
    env = {"RAG_HOME": str(home), "RAG_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}"}
    result = runner.invoke(app, ["models", "--all"], env=env)
    assert result.exit_code == 0, result.output  # the configured backend (llamacpp) is fine
    assert re.findall(r"^[* ] (\w+)", result.stdout, re.M) == ["llamacpp", "ollama", "gpt4all", "llamafile", "openai"]
    gpt4all = [line for line in result.stdout.splitlines() if re.match(r"^[* ] gpt4all ", line)]
    assert len(gpt4all) == 1
    assert re.fullmatch(r"  gpt4all\s+unavailable\s+" + re.escape(GPT4ALL_HINT), gpt4all[0]), gpt4all[0]
    assert result.stderr == ""


def test_asking_with_gpt4all_missing_is_the_install_hint(without_gpt4all, small_index):
    _, env = small_index
    result = runner.invoke(app, ["ask", "What is the baud rate?"], env={**env, "RAG_LLM__BACKEND": "gpt4all"})
    assert result.exit_code == 1
    assert result.stderr == f"Error: {GPT4ALL_HINT}\n"

