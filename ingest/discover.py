"""Find the files to ingest under the paths a user gave, honouring ignore files.

Only `stat` is used here: deciding what to skip must not read file contents, so an unchanged
re-sync never opens a file. Whole folders that hold no documents (build output, caches,
installed dependencies) are skipped at the folder, as one entry, not file by file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

import pathspec

from ingest.loaders import loader_for
from ingest.settings import IngestSettings

# Folder names that hold what tools generate or install, never documents someone wrote.
# Names editors give the files they write beside the one being saved: vim's swap files, its
# `4913` write probe and `~` backups, Emacs' `.#` locks and `#autosave#` files, JetBrains' copies.
EDITOR_TEMP_FILE = re.compile(r"\.sw[a-z]$|~$|^\.#|^#.*#$|^4913$|___jb_(tmp|old)___$")
GENERATED_FOLDERS = frozenset({"__pycache__", "node_modules", "bower_components", "site-packages", "htmlcov"})
GENERATED_FOLDER_SUFFIXES = (".egg-info",)
# A file inside a folder that marks the whole folder as generated: a Python virtualenv, a cache.
GENERATED_FOLDER_MARKERS = ("pyvenv.cfg", "CACHEDIR.TAG")
# Names of build output only beside a project file: a documentation section is often called "build".
BUILD_OUTPUT_FOLDERS = frozenset({"build", "dist", "target", "_build"})
PROJECT_FILES = (
    "pyproject.toml", "setup.py", "setup.cfg", "package.json", "Cargo.toml", "pom.xml", "build.gradle",
    "build.gradle.kts", "CMakeLists.txt", "meson.build", "Makefile", "conf.py",
)


@dataclass(frozen=True)
class Candidate:
    path: str  # absolute, as the user's path spells it (symlinks inside the root are not resolved)
    size: int
    mtime_ns: int


@dataclass
class Discovery:
    """The files to read, and those left out with the reason. A file is listed once, even where the
    folders given hold one another (or one folder is given twice), and under its first name where
    it has two (a symlink to it, a folder given by a symlink as well as by its own path)."""

    candidates: list[Candidate] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)  # path as shown: reason
    empty: set[str] = field(default_factory=set)  # skipped files of zero bytes: their text is gone
    _taken: dict[tuple[int, int], str] = field(default_factory=dict, init=False, repr=False)  # (device, inode): path

    def skip(self, path: str, reason: str) -> None:
        self.skipped.setdefault(shown_path(path), reason)

    def take(self, candidate: Candidate, stat: os.stat_result) -> None:
        identity = (stat.st_dev, stat.st_ino)
        first = self._taken.get(identity)
        if first is None:
            self._taken[identity] = candidate.path
            self.candidates.append(candidate)
        elif first != candidate.path:
            kept, dropped = first, candidate.path
            if os.path.islink(first) and not os.path.islink(candidate.path):  # the file's own name, not a link's
                self._taken[identity] = kept = candidate.path
                dropped = first
                self.candidates = [candidate if taken.path == first else taken for taken in self.candidates]
            self.skip(dropped, f"the same file as {shown_path(kept)}")


def shown_path(path: str) -> str:
    """`path` as it can be printed: bytes of a name that are not UTF-8 as escapes (`caf\\xe9.md`)."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


@dataclass
class _IgnoreRules:
    """One ignore file: its patterns in file order, one per line (blank lines are kept as comments)."""

    base: str
    label: str  # the ignore file, as the reason names it
    spec: pathspec.GitIgnoreSpec

    def verdict(self, path: str, is_dir: bool) -> str | None | Literal[False]:
        """The reason `path` is ignored, False when a `!pattern` keeps it, None when no line matches."""
        relative = os.path.relpath(path, self.base).replace(os.sep, "/")
        result = self.spec.check_file(relative + "/" if is_dir else relative)
        if result.include is None or result.index is None:
            return None
        if not result.include:
            return False
        pattern = cast(str, self.spec.patterns[result.index].pattern)  # the file is read as text
        return f"ignored by {self.label} (line {result.index + 1}: {pattern})"


def discover(roots: list[Path], settings: IngestSettings) -> Discovery:
    found = Discovery()
    max_bytes = int(settings.max_file_mb * 1024 * 1024)
    for root in roots:
        if not os.path.lexists(root):  # gone since it was ingested: its files leave the index
            continue
        if root.is_dir():
            _walk(str(root), settings, max_bytes, found)
        else:  # a file named explicitly is taken even if hidden or ignored
            _consider(str(root), str(root.parent), settings, max_bytes, found)
    return found


def _walk(root: str, settings: IngestSettings, max_bytes: int, found: Discovery) -> None:
    rules_by_dir: dict[str, list[_IgnoreRules]] = {}
    for directory, subdirs, files in os.walk(root, topdown=True, followlinks=False):
        inherited = rules_by_dir.get(os.path.dirname(directory), []) if directory != root else []
        rules = inherited + _read_ignore_rules(directory, root, settings.ignore_files)
        rules_by_dir[directory] = rules

        def ignored(name: str, is_dir: bool) -> str | None:
            # As git does: the ignore file nearest the path decides, and in it the last matching line.
            path = os.path.join(directory, name)
            for rule in reversed(rules):
                verdict = rule.verdict(path, is_dir)
                if verdict is not None:
                    return verdict or None
            return None

        kept_dirs = []
        for name in sorted(subdirs):
            path = os.path.join(directory, name)
            if name.startswith("."):
                found.skip(path, "hidden folder")
            elif os.path.islink(path):
                found.skip(path, "symlinked folder (not followed)")
            elif reason := ignored(name, True) or _build_folder(path, name):
                found.skip(path, reason)
            else:
                kept_dirs.append(name)
        subdirs[:] = kept_dirs
        for name in sorted(files):
            path = os.path.join(directory, name)
            if name.startswith("."):
                found.skip(path, "hidden file")
            elif EDITOR_TEMP_FILE.search(name):
                found.skip(path, "an editor's backup or temporary file")
            elif reason := ignored(name, False):
                found.skip(path, reason)
            else:
                _consider(path, root, settings, max_bytes, found)


def _build_folder(path: str, name: str) -> str | None:
    """Why the folder holds no documents (None: it may), judged by its name and the files in and beside it."""
    what: str | None
    if name in GENERATED_FOLDERS or name.endswith(GENERATED_FOLDER_SUFFIXES):
        what = name
    elif name in BUILD_OUTPUT_FOLDERS and (
        project := next((f for f in PROJECT_FILES if os.path.isfile(os.path.join(path, os.pardir, f))), None)
    ):
        what = f"{name} beside {project}"
    else:
        what = next((f for f in GENERATED_FOLDER_MARKERS if os.path.isfile(os.path.join(path, f))), None)
        if what is None:
            return None
    return f"build or dependency folder ({what}); give it as a PATH to ingest it"


def _consider(path: str, root: str, settings: IngestSettings, max_bytes: int, found: Discovery) -> None:
    if shown_path(path) != path:
        found.skip(path, "its name is not UTF-8, which the index stores names in; rename the file to ingest it")
        return
    # By name alone (a file without a suffix is taken as text): its content is judged when it is read.
    if loader_for(Path(path), settings.loaders) is None:
        found.skip(path, f"unsupported file type {Path(path).suffix}")
        return
    if os.path.islink(path):
        target = os.path.realpath(path)
        if os.path.commonpath([target, os.path.realpath(root)]) != os.path.realpath(root):
            found.skip(path, f"symlink to {target}, outside the ingested folder")
            return
    try:
        stat = os.stat(path)
    except OSError as exc:
        found.skip(path, f"cannot stat: {exc.strerror or exc}")
        return
    if stat.st_size == 0:
        found.skip(path, "empty file")
        found.empty.add(path)
        return
    if stat.st_size > max_bytes:
        found.skip(path, f"larger than max_file_mb ({stat.st_size / 1048576:.1f} MB); raise ingest.max_file_mb to include it")
        return
    found.take(Candidate(path, stat.st_size, stat.st_mtime_ns), stat)


def _read_ignore_rules(directory: str, root: str, ignore_files: list[str]) -> list[_IgnoreRules]:
    rules = []
    for name in ignore_files:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                # A blank line would yield no pattern; as a comment it keeps pattern i on line i + 1.
                lines = [line.rstrip("\n") or "#" for line in fh]
            label = os.path.relpath(path, root).replace(os.sep, "/")
            rules.append(_IgnoreRules(directory, label, pathspec.GitIgnoreSpec.from_lines(lines)))
    return rules
