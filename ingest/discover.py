"""Find the files to ingest under the paths a user gave, honouring ignore files.

Only `stat` is used here: deciding what to skip must not read file contents, so an unchanged
re-sync never opens a file.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

from ingest.loaders import loader_for
from rag.settings import IngestSettings


@dataclass(frozen=True)
class Candidate:
    path: str  # absolute, as the user's path spells it (symlinks inside the root are not resolved)
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    candidates: list[Candidate] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


@dataclass
class _IgnoreRules:
    base: str
    spec: pathspec.GitIgnoreSpec

    def matches(self, path: str, is_dir: bool) -> bool:
        relative = os.path.relpath(path, self.base).replace(os.sep, "/")
        return self.spec.match_file(relative + "/" if is_dir else relative)


def discover(roots: list[Path], settings: IngestSettings) -> Discovery:
    found = Discovery()
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    for root in roots:
        if root.is_dir():
            _walk(str(root), settings.ignore_files, max_bytes, found)
        else:  # a file named explicitly is taken even if hidden or ignored
            _consider(str(root), str(root.parent), max_bytes, found)
    return found


def _walk(root: str, ignore_files: list[str], max_bytes: int, found: Discovery) -> None:
    rules_by_dir: dict[str, list[_IgnoreRules]] = {}
    for directory, subdirs, files in os.walk(root, topdown=True, followlinks=False):
        inherited = rules_by_dir.get(os.path.dirname(directory), []) if directory != root else []
        rules = inherited + _read_ignore_rules(directory, ignore_files)
        rules_by_dir[directory] = rules

        def ignored(name: str, is_dir: bool) -> bool:
            path = os.path.join(directory, name)
            return any(rule.matches(path, is_dir) for rule in rules)

        kept_dirs = []
        for name in sorted(subdirs):
            path = os.path.join(directory, name)
            if name.startswith("."):
                found.skipped.append((path, "hidden folder"))
            elif os.path.islink(path):
                found.skipped.append((path, "symlinked folder (not followed)"))
            elif not ignored(name, True):
                kept_dirs.append(name)
        subdirs[:] = kept_dirs
        for name in sorted(files):
            path = os.path.join(directory, name)
            if name.startswith("."):
                found.skipped.append((path, "hidden file"))
            elif not ignored(name, False):
                _consider(path, root, max_bytes, found)


def _consider(path: str, root: str, max_bytes: int, found: Discovery) -> None:
    if loader_for(Path(path)) is None:
        found.skipped.append((path, f"unsupported file type {Path(path).suffix or '(no extension)'}"))
        return
    if os.path.islink(path):
        target = os.path.realpath(path)
        if os.path.commonpath([target, os.path.realpath(root)]) != os.path.realpath(root):
            found.skipped.append((path, f"symlink to {target}, outside the ingested folder"))
            return
    try:
        stat = os.stat(path)
    except OSError as exc:
        found.skipped.append((path, f"cannot stat: {exc.strerror or exc}"))
        return
    if stat.st_size > max_bytes:
        found.skipped.append(
            (path, f"larger than max_file_mb ({stat.st_size / 1048576:.1f} MB); raise ingest.max_file_mb to include it")
        )
        return
    found.candidates.append(Candidate(path, stat.st_size, stat.st_mtime_ns))


def _read_ignore_rules(directory: str, ignore_files: list[str]) -> list[_IgnoreRules]:
    rules = []
    for name in ignore_files:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                spec = pathspec.GitIgnoreSpec.from_lines(fh)
            rules.append(_IgnoreRules(directory, spec))
    return rules
