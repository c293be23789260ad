"""`rag.watch` and `rag ingest --watch`, driven by real file changes: real embedder, Chroma on disk."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest

import rag
from ingest.index import Index
from ingest.sync import IngestReport
from ingest.watch import WatchReport, _Relevance
from rag import api
from rag.errors import UsageError
from tests.conftest import assert_index_consistent, installed_command, make_settings
from tests.helpers import ctrl_c_reaches_it

# Short, so each change is synced soon; a burst written in one go is still well inside it.
QUIET_MS = 150
# Long enough for a sync on a busy machine; a report that never comes fails the test.
REPORT_TIMEOUT_S = 60


class Watching:
    """`rag.watch` in a thread; each sync's report (or the error that ended the watch) is queued."""

    def __init__(self, paths: list[Path], settings: rag.Settings):
        self.settings = settings
        self.stop = threading.Event()
        self._reports: queue.Queue[WatchReport | BaseException] = queue.Queue()
        self._thread = threading.Thread(target=self._watch, args=(paths,), daemon=True)
        self._thread.start()

    def _watch(self, paths: list[Path]) -> None:
        try:
            api.watch(paths, self.settings, on_report=self._reports.put, stop_event=self.stop, quiet_ms=QUIET_MS)
        except BaseException as exc:  # the test thread raises it
            self._reports.put(exc)

    def next_report(self) -> WatchReport:
        report = self._reports.get(timeout=REPORT_TIMEOUT_S)
        if isinstance(report, BaseException):
            raise report
        return report

    def next_change(self) -> IngestReport:
        """The report of the next sync that changed something; syncs between must have changed nothing."""
        while True:
            watched = self.next_report()
            if watched.changes():
                self.check_index()
                return watched.report

    def check_index(self) -> None:
        assert rag.check(self.settings).ok
        assert_index_consistent(self.settings)

    def close(self) -> None:
        self.stop.set()
        self._thread.join(timeout=10)
        assert not self._thread.is_alive(), "the watch did not stop when its stop event was set"


@pytest.fixture
def watching() -> Iterator[Callable[[list[Path], rag.Settings], Watching]]:
    started: list[Watching] = []

    def start(paths: list[Path], settings: rag.Settings) -> Watching:
        started.append(Watching(paths, settings))
        return started[-1]

    yield start
    for watch in started:
        watch.close()


def sources(settings: rag.Settings) -> dict[str, int]:
    return {path: len(record.chunk_ids) for path, record in Index(settings).sources().items()}


def top_source(settings: rag.Settings, query: str) -> str:
    return rag.search(query, settings, k=1)[0].source


def test_watch_follows_creates_changes_renames_and_deletes(home, tmp_path, watching):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / ".gitignore").write_text("*.log\ndrafts/\n")
    heron = folder / "heron.md"
    heron.write_text("# Pond\n\nThe heron count at the mill pond was 41 in May.\n")
    settings = make_settings(home)
    watch = watching([folder], settings)

    first = watch.next_report()
    assert first.initial and first.report.added == [str(heron)]

    quince = folder / "quince.md"
    quince.write_text("# Quince paste\n\nQuince paste must simmer for four hours.\n")
    report = watch.next_change()
    assert report.added == [str(quince)]
    assert top_source(settings, "how long does quince paste simmer") == str(quince)

    quince.write_text("# Quince paste\n\nQuince paste must simmer for five hours with lemon peel.\n")
    report = watch.next_change()
    assert report.updated == [str(quince)] and not report.added
    assert "lemon peel" in rag.search("quince paste lemon peel", settings, k=1)[0].text
    chunks_before_rename = sources(settings)[str(quince)]

    membrillo = folder / "membrillo.md"
    quince.rename(membrillo)
    report = watch.next_change()
    assert report.renamed == [(str(quince), str(membrillo))] and report.chunks_added == 0
    assert sources(settings).get(str(membrillo)) == chunks_before_rename and str(quince) not in sources(settings)
    assert top_source(settings, "quince paste lemon peel") == str(membrillo)

    # What an editor writes beside a file it saves, and files the .gitignore excludes, with one real change.
    (folder / ".membrillo.md.swp").write_bytes(b"b0VIM 9.0")
    (folder / "membrillo.md~").write_text("an editor's backup copy")
    (folder / "4913").write_text("vim's write probe")
    (folder / "4913").unlink()
    (folder / ".#membrillo.md").write_text("emacs lock")
    (folder / "server.log").write_text("GET /quince 200")
    (folder / "drafts").mkdir()
    (folder / "drafts" / "unfinished.md").write_text("# Draft\n\nNot ready to be found.\n")
    plum = folder / "plum.md"
    plum.write_text("# Plums\n\nThe greengage tree gave eleven kilos of plums.\n")
    report = watch.next_change()
    assert report.added == [str(plum)]
    assert set(sources(settings)) == {str(heron), str(membrillo), str(plum)}

    stored_chunks = Index(settings).sources()[str(membrillo)].chunk_ids
    membrillo.unlink()
    report = watch.next_change()
    assert report.removed == [str(membrillo)]
    assert str(membrillo) not in sources(settings)
    assert not set(stored_chunks) & Index(settings).chunk_ids()
    assert all(hit.source != str(membrillo) for hit in rag.search("quince paste lemon peel", settings, k=3))


def test_a_burst_of_changes_is_one_sync_with_a_line_per_change(home, tmp_path, watching):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "first.md").write_text("The first note.\n")
    settings = make_settings(home)
    watch = watching([folder], settings)
    watch.next_report()

    burst = [folder / f"note-{number}.md" for number in range(5)]
    for number, path in enumerate(burst):
        path.write_text(f"# Note {number}\n\nBatch {number} of widgets ships on day {number + 3}.\n")
    (folder / "first.md").write_text("The first note, edited.\n")
    watched = watch.next_report()
    assert watched.report.added == sorted(map(str, burst)) and watched.report.updated == [str(folder / "first.md")]
    assert watched.changes(lambda path: os.path.relpath(path, folder)) == [
        *(f"added note-{number}.md (1 chunk)" for number in range(5)),
        "updated first.md (1 chunk)",
    ]
    watch.check_index()


def test_searches_and_other_ingests_work_while_watching(home, tmp_path, watching):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "first.md").write_text("# Boats\n\nThe rowing boat needs new oarlocks before summer.\n")
    settings = make_settings(home)
    watch = watching([folder], settings)
    watch.next_report()

    searched, failures, stop_searching = [], [], threading.Event()

    def search_until_stopped() -> None:
        while not stop_searching.is_set():
            try:
                searched.append(rag.search("rowing boat oarlocks", settings, k=1)[0].source)
            except Exception as exc:  # the assertion below names it
                failures.append(exc)

    searcher = threading.Thread(target=search_until_stopped)
    searcher.start()
    try:
        for number in range(3):
            (folder / f"log-{number}.md").write_text(f"# Log {number}\n\nDay {number}: the jib was patched again.\n")
            assert watch.next_change().added == [str(folder / f"log-{number}.md")]
    finally:
        stop_searching.set()
        searcher.join()
    assert not failures and searched and set(searched) == {str(folder / "first.md")}

    # Between syncs the writer lock is free: another ingest of the index need not wait.
    other = tmp_path / "other"
    other.mkdir()
    (other / "tides.md").write_text("High tide on Saturday is at 06:40.\n")
    assert rag.ingest([other], settings, wait=False).added == [str(other / "tides.md")]


def test_a_watched_file_syncs_alone_and_an_empty_folder_waits_for_its_first_document(home, tmp_path, watching):
    folder = tmp_path / "notes"
    folder.mkdir()
    todo = folder / "todo.md"
    todo.write_text("Buy twine.\n")
    settings = make_settings(home)
    watch = watching([todo], settings)
    assert watch.next_report().report.added == [str(todo)]
    (folder / "beside.md").write_text("Not watched.\n")
    todo.write_text("Buy twine and sandpaper.\n")
    assert watch.next_change().updated == [str(todo)]
    assert set(sources(settings)) == {str(todo)}

    empty = tmp_path / "inbox"
    empty.mkdir()
    inbox_settings = make_settings(home, collection="inbox")
    inbox = watching([empty], inbox_settings)
    assert inbox.next_report().report == IngestReport()
    (empty / "first.md").write_text("The first document in the inbox.\n")
    assert inbox.next_change().added == [str(empty / "first.md")]


def test_a_deleted_watched_folder_stops_the_watch_with_one_line(home, tmp_path, watching):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("Alpha.\n")
    watch = watching([folder], make_settings(home))
    watch.next_report()
    shutil.rmtree(folder)
    with pytest.raises(UsageError, match=r"^Stopped watching: .*notes was deleted or moved \(its files stay in the index\)\.$"):
        watch.next_report()


@pytest.mark.fast
def test_only_changes_a_sync_would_act_on_wake_the_watch(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    single = tmp_path / "single.md"
    single.write_text("x")
    settings = make_settings(folder / "rag-home")  # the index inside a watched folder
    relevance = _Relevance([folder, single], settings)

    def touched(*names: str) -> list[Path]:
        return relevance.roots_touched(str(tmp_path / name) for name in names)

    assert touched("notes/a.md", "notes/sub/b.txt", "notes/.gitignore", "notes/sub/.ragignore") == [folder]
    assert touched("notes") == [folder]  # the folder itself (deleted, say)
    for name in ("notes/.a.md.swp", "notes/a.md~", "notes/4913", "notes/.#a.md", "notes/#a.md#",
                 "notes/a.md___jb_tmp___", "notes/.hidden.md", "notes/.git/index", "notes/rag-home/index/manifest.sqlite3",
                 "beside.md", "notesmore/a.md"):
        assert touched(name) == [], name
    assert touched("single.md", "notes/a.md") == [folder, single]


@pytest.mark.fast
def test_a_watch_report_has_a_line_per_change():
    report = IngestReport(
        added=["/n/a.md"], updated=["/n/b.md"], removed=["/n/c.md"], renamed=[("/n/d.md", "/n/e.md")],
        failed=[("/n/f.pdf", "not a PDF")],
    )
    watched = WatchReport(report, {"/n/a.md": 1, "/n/b.md": 3, "/n/e.md": 2})
    assert watched.changes(lambda path: path.removeprefix("/n/")) == [
        "added a.md (1 chunk)", "updated b.md (3 chunks)", "renamed d.md -> e.md", "removed c.md", "failed f.pdf: not a PDF",
    ]


def test_cli_watch_prints_a_line_per_change_and_stops_cleanly_on_ctrl_c(home, tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.md").write_text("# Alpha\n\nThe alpha note.\n")
    watcher = subprocess.Popen(
        [installed_command("rag"), "ingest", "--watch", "-v", "notes"], cwd=tmp_path,
        env={**os.environ, "RAG_HOME": str(home)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=ctrl_c_reaches_it,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in watcher.stderr], daemon=True).start()

    def wait_for_line(expected: str) -> None:
        deadline = time.monotonic() + REPORT_TIMEOUT_S
        seen = []
        while (line := lines.get(timeout=max(deadline - time.monotonic(), 0.1))) != expected:
            seen.append(line)
        assert "Traceback" not in "\n".join(seen), seen

    try:
        wait_for_line("embedded with float32-onnx (a query or a small ingest)")  # -v: as a one-shot ingest says
        wait_for_line("Watching notes for changes; Ctrl-C stops.")
        (folder / "b.md").write_text("# Beta\n\nThe beta note, added while watching.\n")
        wait_for_line("added notes/b.md (1 chunk)")
        watcher.send_signal(signal.SIGINT)
        assert watcher.wait(timeout=REPORT_TIMEOUT_S) in (0, 130)  # a bound for a loaded machine, not a timing
        wait_for_line("Interrupted.")
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    stdout = watcher.stdout.read()
    assert stdout.startswith("Synced: 1 added") and "Traceback" not in stdout
    assert "b.md" in {Path(path).name for path in sources(make_settings(home))}
