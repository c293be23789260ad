"""What the `rag` command does with bad option values, unexpected errors, closed pipes and missing packages."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import typing

import pytest
from typer.testing import CliRunner

import rag
from ingest.index import CHUNK_METADATA_KEYS, Index
from rag.cli import DEBUG_HINT, PromptStyle, SearchMode, app
from rag.settings import SearchSettings
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


# -- option values ---------------------------------------------------------------------------------


@pytest.mark.fast
@pytest.mark.parametrize(
    "args,option",
    [
        (["search", "oven", "--mode", "bogus"], "--mode"),
        (["eval", "somewhere", "--mode", "Hybrid"], "--mode"),
        (["ask", "oven", "--mode", "meaning"], "--mode"),
        (["chat", "--mode", "both"], "--mode"),
        (["extract", "--fields", "a:str", "--per", "page"], "--per"),
        (["summarize", "--format", "csv"], "--format"),
        (["extract", "--fields", "a:str", "--format", "md"], "--format"),
        (["ask", "oven", "--prompt-style", "alpaca"], "--prompt-style"),
        (["summarize", "--prompt-style", "Llama3"], "--prompt-style"),
    ],
)
def test_a_bad_choice_is_a_usage_error_naming_the_choices(args, option, home):
    result = runner.invoke(app, args, env={"RAG_HOME": str(home)})
    assert result.exit_code == 2, result.output
    assert f"Invalid value for '{option}'" in result.stderr and "is not one of" in result.stderr
    assert "Traceback" not in result.output
    assert not (home / "index").exists()  # refused before anything was opened


@pytest.mark.fast
@pytest.mark.parametrize(
    "command,listed",
    [
        (["search"], "hybrid|dense|keyword"),
        (["ask"], "hybrid|dense|keyword"),
        (["eval"], "hybrid|dense|keyword"),
        (["extract"], "document|chunk"),
        (["extract"], "jsonl|csv"),
        (["summarize"], "jsonl|md"),
        (["chat"], "auto|chat|llama2|llama3|mistral|gemma|chatml|plain"),
    ],
)
def test_help_lists_the_choices(command, listed):
    result = runner.invoke(app, [*command, "--help"], prog_name="rag")
    assert result.exit_code == 0
    assert listed in result.stdout


@pytest.mark.fast
def test_the_choices_are_the_values_the_library_takes():
    from rag.prompting import AUTO, CHAT, FAMILIES

    assert [style.value for style in PromptStyle] == [AUTO, CHAT, *FAMILIES]
    assert {mode.value for mode in SearchMode} == set(typing.get_args(SearchSettings.model_fields["mode"].annotation))


def test_a_good_choice_still_works(small_index):
    _, env = small_index
    result = runner.invoke(app, ["search", "baud rate of the service port", "--mode", "keyword", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"source"' in result.stdout


# -- --where -----------------------------------------------------------------------------------------


@pytest.mark.fast
def test_where_on_a_key_chunks_never_have_is_refused_with_the_keys():
    result = runner.invoke(app, ["search", "oven", "--where", "foo=bar"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --where foo=...: chunks have no 'foo'; use one of: source, page, slide, sheet, row, end_row, cell, "
        "end_cell, message, attachment, subject, sender, date, heading, start_line, end_line, chunk_index.\n"
    )


def test_the_where_keys_are_those_chunks_carry(small_index):
    settings, env = small_index
    index = Index(settings)
    carried = {key for chunk in index.get_chunks(sorted(index.chunk_ids())).values() for key in chunk.metadata}
    # The five files give the locations of text, PDF and code; tests/test_formats.py those of the other formats.
    assert {"source", "page", "heading", "start_line", "end_line", "chunk_index"} <= carried <= set(CHUNK_METADATA_KEYS)
    for condition in ("page=1", "start_line=1", "chunk_index=0"):
        result = runner.invoke(app, ["search", "oven", "--where", condition, "--json"], env=env)
        assert result.exit_code == 0 and result.stdout.startswith("["), result.output


# -- unexpected errors ---------------------------------------------------------------------------------


@pytest.mark.fast
def test_an_unexpected_error_is_one_line_and_a_hint(monkeypatch, home):
    def broken(*args, **kwargs):
        raise KeyError("bogus")

    monkeypatch.setattr(rag, "search", broken)
    result = runner.invoke(app, ["search", "oven"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr == f"Error: KeyError: 'bogus'\n{DEBUG_HINT}\n"
    assert DEBUG_HINT == "Set RAG_DEBUG=1 to see the traceback."
    assert result.stdout == ""


@pytest.mark.fast
def test_a_broken_pipe_that_is_not_stdout_is_an_unexpected_error(monkeypatch, home):
    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")  # a socket's, say: stdout is fine

    monkeypatch.setattr(rag, "search", broken)
    result = runner.invoke(app, ["search", "oven"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: BrokenPipeError: [Errno 32] Broken pipe\n")


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


@pytest.mark.fast
def test_rag_errors_and_exit_codes_are_unchanged(home, tmp_path):
    missing = runner.invoke(app, ["status"], env={"RAG_HOME": str(home)})
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: No index at") and DEBUG_HINT not in missing.stderr
    usage = runner.invoke(app, ["ingest", str(tmp_path / "nope")], env={"RAG_HOME": str(home)})
    assert usage.exit_code == 2 and "Path not found" in usage.stderr


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
