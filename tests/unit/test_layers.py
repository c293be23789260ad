"""The layers of the code: `ingest` (discover, load, chunk, embed, write the index) sits below `rag`
(settings, retrieval, chain, backends, serve, CLI) and never imports it, and no module imports
itself through others.

The graph is read from the source: every import statement at any depth, inside functions and
`if TYPE_CHECKING:` blocks too. A function-level import is a dependency all the same, and one that
closes a cycle fails only when it runs, in whichever order the modules happened to load. `make lint`
checks the one-way rule with import-linter as well.
"""

from __future__ import annotations

import ast
from pathlib import Path


from tests.conftest import REPO

LOWER, UPPER = "ingest", "rag"


def modules_of(root: Path, packages: tuple[str, ...]) -> dict[str, Path]:
    """Dotted module name -> its file, for every module of `packages` under `root`."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def import_graph(root: Path, packages: tuple[str, ...] = (UPPER, LOWER)) -> dict[str, dict[str, int]]:
    """module -> {module of `packages` it imports: line of the first such import}.

    `from a import b` is an import of the module a.b where there is one, else of a; an import of a
    name below a module (`import a.b.c` where c is a class) is one of the module. As in
    import-linter, a package's `__init__` is not counted as imported by importing its submodules.
    """
    modules = modules_of(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges = graph.setdefault(module, {})
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: from the package, one level up per dot after the first
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # a name inside a module: the module
                    target = target.rpartition(".")[0]
                if target and target != module:
                    edges.setdefault(target, node.lineno)
    return graph


def upward_imports(graph: dict[str, dict[str, int]]) -> list[str]:
    """Each import of the upper layer by a module of the lower one, as 'importer -> imported (line N)'."""
    return [
        f"{module} -> {target} (line {line})"
        for module, edges in sorted(graph.items())
        if module.split(".")[0] == LOWER
        for target, line in sorted(edges.items())
        if target.split(".")[0] == UPPER
    ]


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The import cycles: each strongly connected component of more than one module, as the imports
    between its modules (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    components: list[set[str]] = []

    def visit(module: str) -> None:
        index[module] = lowlink[module] = len(index)
        stack.append(module)
        for target in graph.get(module, {}):
            if target not in index:
                visit(target)
                lowlink[module] = min(lowlink[module], lowlink[target])
            elif target in stack:
                lowlink[module] = min(lowlink[module], index[target])
        if lowlink[module] == index[module]:
            component = set()
            while True:
                member = stack.pop()
                component.add(member)
                if member == module:
                    break
            components.append(component)

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return [
        [
            f"{module} -> {target} (line {line})"
            for module in sorted(component)
            for target, line in sorted(graph[module].items())
            if target in component
        ]
        for component in components
        if len(component) > 1
    ]


def test_ingest_never_imports_rag():
    offenders = upward_imports(import_graph(REPO))
    assert not offenders, "ingest must not import rag; move what it needs down into ingest:\n" + "\n".join(offenders)


def test_no_module_imports_itself_through_others():
    found = cycles(import_graph(REPO))
    assert not found, "import cycles; move the piece both sides need to a module of its own:\n" + "\n\n".join(
        "\n".join(cycle) for cycle in found
    )


def test_the_checks_see_imports_in_functions_type_checking_blocks_and_relative_ones(tmp_path):
    files = {
        "ingest/__init__.py": "",
        "ingest/chunks.py": "def split():\n    from rag.settings import Settings\n",
        "ingest/typed.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import rag\n",
        "ingest/clean.py": "import os\nfrom ingest import chunks\n",
        "rag/__init__.py": "",
        "rag/settings.py": "from ingest.clean import os\n",
        "rag/first.py": "def late():\n    from . import second\n",
        "rag/second.py": "from .first import late\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    graph = import_graph(tmp_path)

    assert upward_imports(graph) == ["ingest.chunks -> rag.settings (line 2)", "ingest.typed -> rag (line 3)"]
    assert sorted(cycles(graph)) == [
        [
            "ingest.chunks -> rag.settings (line 2)",
            "ingest.clean -> ingest.chunks (line 2)",
            "rag.settings -> ingest.clean (line 1)",
        ],
        ["rag.first -> rag.second (line 2)", "rag.second -> rag.first (line 1)"],
    ]
