"""What the `rag` command does with bad option values and unexpected errors, before any index is
opened (tests/e2e/test_cli_errors.py: closed pipes, RAG_DEBUG, missing packages, on a real index)."""

from __future__ import annotations

import typing

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import DEBUG_HINT, PromptStyle, SearchMode, app
from rag.settings import SearchSettings

runner = CliRunner()


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


def test_the_choices_are_the_values_the_library_takes():
    from rag.prompting import AUTO, CHAT, FAMILIES

    assert [style.value for style in PromptStyle] == [AUTO, CHAT, *FAMILIES]
    assert {mode.value for mode in SearchMode} == set(typing.get_args(SearchSettings.model_fields["mode"].annotation))


def test_where_on_a_key_chunks_never_have_is_refused_with_the_keys():
    result = runner.invoke(app, ["search", "oven", "--where", "foo=bar"])
    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --where foo=...: chunks have no 'foo'; use one of: source, page, slide, sheet, row, end_row, cell, "
        "end_cell, message, attachment, subject, sender, date, heading, start_line, end_line, chunk_index.\n"
    )


def test_where_on_a_page_or_line_takes_a_whole_number():
    result = runner.invoke(app, ["search", "oven", "--where", "page=abc"])
    assert (result.exit_code, result.stderr) == (2, "Error: --where page=abc: page is a whole number, such as page=2.\n")


def test_an_unexpected_error_is_one_line_and_a_hint(monkeypatch, home):
    def broken(*args, **kwargs):
        raise KeyError("bogus")

    monkeypatch.setattr(rag, "search", broken)
    result = runner.invoke(app, ["search", "oven"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr == f"Error: KeyError: 'bogus'\n{DEBUG_HINT}\n"
    assert DEBUG_HINT == "Set RAG_DEBUG=1 to see the traceback."
    assert result.stdout == ""


def test_a_broken_pipe_that_is_not_stdout_is_an_unexpected_error(monkeypatch, home):
    def broken(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")  # a socket's, say: stdout is fine

    monkeypatch.setattr(rag, "search", broken)
    result = runner.invoke(app, ["search", "oven"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: BrokenPipeError: [Errno 32] Broken pipe\n")


def test_rag_errors_and_exit_codes_are_unchanged(home, tmp_path):
    missing = runner.invoke(app, ["status"], env={"RAG_HOME": str(home)})
    assert missing.exit_code == 1 and missing.stderr.startswith("Error: No index at") and DEBUG_HINT not in missing.stderr
    usage = runner.invoke(app, ["ingest", str(tmp_path / "nope")], env={"RAG_HOME": str(home)})
    assert usage.exit_code == 2 and "Path not found" in usage.stderr
