"""The `rag` command without an index: every command found and helped, usage errors and a missing
index said in one line with their exit codes (tests/e2e/test_cli.py runs it on real documents)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from rag.cli import app

runner = CliRunner()


def rag_cli(*args: str, home: Path):
    return runner.invoke(app, list(args), env={"RAG_HOME": str(home)})


# Every command the app registers, found from the app itself: a new command is checked without a list to update.
COMMANDS = typer.main.get_command(app).commands
DOCSTRINGS = {
    command.name or typer.main.get_command_name(command.callback.__name__): inspect.getdoc(command.callback)
    for command in app.registered_commands
}


def test_the_commands_are_found():
    assert {"ingest", "search", "status", "ask", "chat", "eval", "summarize", "extract", "models", "repair"} <= set(COMMANDS)
    assert set(DOCSTRINGS) <= set(COMMANDS) and all(DOCSTRINGS.values()), "every command has a docstring"


def _squashed(text: str) -> str:
    return "".join(text.split())  # help text is wrapped (at spaces and hyphens) to the terminal's width


@pytest.mark.parametrize("command", [[], *([name] for name in sorted(COMMANDS))], ids=lambda c: " ".join(c) or "rag")
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"], prog_name="rag")
    assert result.exit_code == 0, result.output
    assert f"Usage: rag {' '.join(command)}".rstrip() in result.stdout
    assert "--help" in result.stdout
    if not command:
        for name in COMMANDS:
            assert f"  {name} " in result.stdout, f"rag --help does not list {name}"
        return
    name = command[0]
    if name in DOCSTRINGS:
        summary = DOCSTRINGS[name].splitlines()[0]
        assert _squashed(summary) in _squashed(result.stdout), f"rag {name} --help lacks its docstring's first line"
    options = [option for option in COMMANDS[name].params if option.param_type_name == "option" and not option.hidden]
    assert options, f"rag {name} declares no options?"  # typer's own click: isinstance checks would see none
    for option in options:
        assert option.opts[0] in result.stdout, f"rag {name} --help lacks {option.opts[0]}"
    if name in ("ingest", "search", "status", "ask", "chat"):
        assert "--index" in result.stdout and "--collection" in result.stdout


@pytest.mark.parametrize("command", [["search", "anything"], ["status"], ["files"]])
def test_without_an_index_commands_say_to_ingest_first(command, home):
    result = rag_cli(*command, home=home)
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: No index at {home / 'index'}. Run `rag ingest PATH` first."
    assert result.stdout == ""


def test_version_is_the_installed_packages():
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"rag {version('rag')}\n")


def test_a_path_is_shown_on_one_line_whatever_its_name_holds(tmp_path, monkeypatch):
    from rag.cli.console import display_path

    monkeypatch.chdir(tmp_path)
    assert display_path(str(tmp_path / "notes" / "name\nwith newline.txt")) == "notes/name\\nwith newline.txt"
    assert display_path(str(tmp_path / "ünïcødé-名前.md")) == "ünïcødé-名前.md"
    assert display_path("/elsewhere/tab\there.md") == "/elsewhere/tab\\there.md"


def test_usage_errors_exit_2(home, tmp_path):
    missing = rag_cli("ingest", str(tmp_path / "nope"), home=home)
    assert missing.exit_code == 2 and "Path not found" in missing.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftyp")
    nothing = rag_cli("ingest", str(empty), home=home)
    assert nothing.exit_code == 2
    assert "Nothing to ingest" in nothing.stderr and "1 skipped" in nothing.stderr
    bad_collection = rag_cli("status", "--collection", "a", home=home)
    assert bad_collection.exit_code == 2 and "collection" in bad_collection.stderr
