"""`make lint`'s layer, dependency and type checks bite: lint-imports refuses an `import rag` inside
`ingest`, deptry refuses an import no dependency declares, and mypy reports a type error in a module
it checks and not in one listed as not yet typed.

Each runs on a copy made here, with the project's own pyproject.toml, so that what they find is
what the planted mistake caused."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path


from tests.conftest import REPO

BIN = Path(sys.executable).parent
MISTYPED = 'def count() -> int:\n    return "three"\n'


def run(tool: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=600,
        # lint-imports imports the packages it checks: the copy's, not the installed project's.
        env={"NO_COLOR": "1", "PATH": "", "PYTHONPATH": str(cwd)},
    )


def test_lint_imports_refuses_ingest_importing_rag(tmp_path):
    for package in ("rag", "ingest"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    clean = run("lint-imports", tmp_path, "--no-cache")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (tmp_path / "ingest" / "planted.py").write_text("def late():\n    import rag.settings\n")
    planted = run("lint-imports", tmp_path, "--no-cache")
    assert planted.returncode == 1
    assert "ingest sits below rag: it never imports rag BROKEN" in planted.stdout
    assert "ingest.planted -> rag.settings (l.2)" in planted.stdout


def test_deptry_refuses_an_import_no_dependency_declares(tmp_path):
    for folder in ("rag", "ingest", "prompts", "tests", "bench"):
        shutil.copytree(REPO / folder, tmp_path / folder, ignore=shutil.ignore_patterns("__pycache__", "*.toml", "*.jsonl"))
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    clean = run("deptry", tmp_path, ".", "--no-ansi")
    assert clean.returncode == 0, clean.stdout + clean.stderr

    (tmp_path / "ingest" / "planted.py").write_text("import leftpad\n")
    planted = run("deptry", tmp_path, ".", "--no-ansi")
    assert planted.returncode == 1
    assert "ingest/planted.py:1:8: DEP001 'leftpad' imported but missing from the dependency definitions" in planted.stderr


def test_mypy_reports_a_type_error_in_any_module_of_either_package(tmp_path):
    shutil.copy(REPO / "pyproject.toml", tmp_path)
    for package in ("ingest", "rag"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "ingest" / "errors.py").write_text(MISTYPED)
    (tmp_path / "rag" / "retrieval.py").write_text(MISTYPED)
    found = run("mypy", tmp_path, "--cache-dir", str(tmp_path / ".mypy_cache"))
    assert found.returncode == 1
    error = 'error: Incompatible return value type (got "str", expected "int")  [return-value]'
    assert sorted(found.stdout.splitlines()[:2]) == [f"ingest/errors.py:2: {error}", f"rag/retrieval.py:2: {error}"]

    for module in ("ingest/errors.py", "rag/retrieval.py"):
        (tmp_path / module).write_text(MISTYPED.replace('"three"', "3"))
    assert run("mypy", tmp_path, "--cache-dir", str(tmp_path / ".mypy_cache")).returncode == 0


def test_no_module_is_excused_from_type_checking():
    overrides = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    assert [override["module"] for override in overrides if override.get("ignore_errors")] == []
