"""Two ingests of one index, and searching while an ingest writes: real processes, real files."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from typer.testing import CliRunner

from rag.cli import app
from tests.conftest import assert_index_consistent, installed_command, make_settings

runner = CliRunner()


def many_notes(folder: Path, count: int) -> Path:
    folder.mkdir()
    for number in range(count):
        (folder / f"note-{number:04d}.txt").write_text(
            f"Note {number}\n\nMeeting {number} decided that widget batch {number * 7} ships on day {number % 28 + 1}. "
            + "The committee reviewed supplier quotes, test results and the packaging plan in detail. " * 6
        )
    return folder


def start_ingest(folder: Path, home: Path, **env: str) -> subprocess.Popen:
    rag_bin = installed_command("rag")
    return subprocess.Popen(
        [rag_bin, "ingest", str(folder)], env={**os.environ, "RAG_HOME": str(home), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_for_lock_holder(home: Path, ingest: subprocess.Popen) -> None:
    """Until the other process holds the writer lock (its lock file exists and it is still running)."""
    deadline = time.monotonic() + 60
    while not (home / "index" / "ingest.lock").exists():
        assert ingest.poll() is None and time.monotonic() < deadline, "the ingest never started"
        time.sleep(0.05)


def test_a_second_ingest_waits_or_fails_clearly_and_nothing_interleaves(home, tmp_path, notes):
    big = many_notes(tmp_path / "big", 400)
    first = start_ingest(big, home)
    wait_for_lock_holder(home, first)

    refused = runner.invoke(app, ["ingest", "--no-wait", str(notes)], env={"RAG_HOME": str(home)})
    assert refused.exit_code == 1
    assert " ".join(refused.stderr.split()) == (
        f"Error: Another ingest is writing to the index at {home / 'index'}; try again once it has finished. "
        "Run without --no-wait to wait for it automatically."
    )

    waited = runner.invoke(app, ["ingest", str(notes)], env={"RAG_HOME": str(home)})
    assert waited.exit_code == 0, waited.output
    assert "waiting for it to finish" in waited.stderr  # it found the lock taken and waited
    assert first.wait(timeout=300) == 0, first.stderr
    settings = make_settings(home)
    assert_index_consistent(settings)
    status = json.loads(runner.invoke(app, ["status", "--json"], env={"RAG_HOME": str(home)}).stdout)
    assert status["files"] == 400 + 4


def test_search_works_while_an_ingest_is_writing(home, tmp_path, notes):
    runner.invoke(app, ["ingest", str(notes)], env={"RAG_HOME": str(home)})
    big = many_notes(tmp_path / "big", 400)
    writer = start_ingest(big, home)
    wait_for_lock_holder(home, writer)
    searches = 0
    while writer.poll() is None and searches < 50:
        result = runner.invoke(
            app, ["search", "What baud rate does the calibration script use?", "--json", "-k", "3"],
            env={"RAG_HOME": str(home)},
        )
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)[0]["source"].endswith("calibrate.py")
        searches += 1
    assert searches > 0, "the ingest ended before a search could run alongside it"
    assert writer.wait(timeout=300) == 0
    assert_index_consistent(make_settings(home))


def test_search_sees_only_what_the_manifest_has_committed(notes, home):
    """Vectors an unfinished ingest wrote ahead of its manifest commit stay out of results."""
    import rag
    from ingest.embedding import LocalEmbeddings
    from ingest.index import Index

    settings = make_settings(home)
    rag.ingest([notes], settings)
    question = "What baud rate does the calibration script use?"
    vector = LocalEmbeddings(settings.embedding, settings.cache_path).encode([question])[0]
    Index(settings).store.add(
        ["uncommitted"], [vector], ["not yet in the manifest"], [{"source": str(notes / "pending.md")}]
    )
    hits = rag.search(question, settings, k=5, mode="dense")
    assert "uncommitted" not in {hit.chunk_id for hit in hits}
    assert hits[0].source.endswith("calibrate.py")
