"""Every module imports on its own, and nothing heavy is imported where none is needed (the import
graph itself, one-way and acyclic, is checked in test_layers.py).

Each check runs in a fresh interpreter: in this one, conftest has already imported `rag`, which
would hide a module that only imports after another.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import REPO, SAMPLE_NOTES, installed_command

PACKAGES = ("rag", "ingest", "prompts")


def _modules() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


MODULES = _modules()


def _python(code: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env={**os.environ, **env}, capture_output=True, text=True, timeout=300
    )


@pytest.mark.fast
def test_every_module_is_found():
    assert {"rag", "rag.api", "rag.cli", "rag.backends.llamacpp", "rag.batch.jobs", "ingest.index", "prompts"} <= set(MODULES)


@pytest.mark.fast
def test_each_module_imports_first_in_a_fresh_interpreter():
    # One interpreter per module, as many at once as there are cores: the fast tier stays fast.
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        results = dict(zip(MODULES, pool.map(lambda module: _python(f"import {module}"), MODULES)))
    assert {module: result.stderr for module, result in results.items() if result.returncode} == {}


@pytest.mark.fast
def test_errors_do_not_load_langchain_or_the_api():
    result = _python(
        "import json, sys, rag.errors; "
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in ('langchain_core', 'langchain', 'chromadb') "
        "or m in ('rag.api', 'ingest.sync'))))"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


@pytest.mark.fast
def test_the_lazy_package_still_offers_its_api_and_goes_offline():
    result = _python(
        "import os, rag; "
        "assert os.environ['HF_HUB_OFFLINE'] == '1'; "
        "from rag import search, Assistant, evaluate_answers; "
        "import pathlib, rag.answering; "  # no submodule shares a name with the function it would hide
        "package = pathlib.Path(rag.__file__).parent; "
        "assert [n for n in rag.__all__ if (package / n).is_dir() or (package / f'{n}.py').exists()] == [], rag.__all__; "
        "assert rag.ask.__module__ == 'rag.api'; "
        "assert sorted(rag.__all__) == sorted(rag._EXPORTS), rag.__all__; "
        "assert all(callable(getattr(rag, name)) for name in rag.__all__), rag.__all__; "
        "assert set(rag.__all__) <= set(dir(rag)); "
        "print(rag.ingest.__module__, rag.Assistant.__module__, rag.RagError.__module__)",
        HF_HUB_OFFLINE="0",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["rag.api", "rag.answering", "ingest.errors"]  # rag.errors re-exports it
    assert "rag" in _python("import rag; rag.no_such_thing").stderr  # AttributeError, not a silent None


@pytest.mark.fast
def test_ingest_imported_without_rag_goes_offline_too():
    result = _python(
        "import os, sys, ingest.index; "
        "assert 'rag' not in sys.modules, sorted(m for m in sys.modules if m.split('.')[0] == 'rag'); "
        "print(os.environ['HF_HUB_OFFLINE'], os.environ['LANGCHAIN_TRACING_V2'])",
        HF_HUB_OFFLINE="0", LANGCHAIN_TRACING_V2="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "false"]


# The installed `rag` script is `rag.cli:main`; run it the same way, and look at what it loaded on the way out.
_RUN_CLI_AND_REPORT = """
import atexit, json, sys
heavy = ("torch", "sentence_transformers")
atexit.register(lambda: print("LOADED " + json.dumps([m for m in heavy if m in sys.modules]), file=sys.stderr))
sys.argv = ["rag", *json.loads(sys.argv[1])]
from rag.cli import main
main()
"""


def test_search_loads_neither_torch_nor_sentence_transformers(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    for name in ("work/tools/calibrate.py", "personal/recipes/cardamom-buns.md"):
        (docs / name.rsplit("/", 1)[-1]).write_bytes((SAMPLE_NOTES / name).read_bytes())
    env = {**os.environ, "RAG_HOME": str(tmp_path / "home")}
    ingest = subprocess.run([installed_command("rag"), "ingest", str(docs)], env=env, capture_output=True, text=True, timeout=300)
    assert ingest.returncode == 0, ingest.stderr

    search = subprocess.run(
        [sys.executable, "-c", _RUN_CLI_AND_REPORT, json.dumps(["search", "baud rate of the service port", "--json"])],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)[0]["source"].endswith("calibrate.py")
    loaded = [line for line in search.stderr.splitlines() if line.startswith("LOADED ")]
    assert loaded == ["LOADED []"], search.stderr
