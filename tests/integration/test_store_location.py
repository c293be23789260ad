"""The index remembers where its vectors live, and nothing deletes manifest entries because a store looks empty.

Against a real Chroma server (`chroma run`, from the chromadb wheel) and Chroma on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.index import CHROMA_DIR, MANIFEST_FILE, REBUILDING, UNFINISHED_PREFIX, Index
from rag.cli import app
from tests.conftest import assert_index_consistent, installed_command, make_settings
from tests.helpers import free_port, running_server

runner = CliRunner()
QUESTION = "baud rate of the service port"


def collection_for(home: Path) -> str:
    """Each test's index has its own manifest, so it gets its own collection on the shared server."""
    return f"kb-{zlib.crc32(str(home).encode()):08x}"


def cli(home: Path, *args: str):
    return runner.invoke(app, [*args, "--collection", collection_for(home)], env={"RAG_HOME": str(home)})


def cli_process(home: Path, *args: str):
    """`rag` in a process of its own: Chroma keeps a store open per process, so removing one under
    this process would not look like a store that is gone."""
    done = subprocess.run(
        [installed_command("rag"), *args, "--collection", collection_for(home)],
        env={**os.environ, "RAG_HOME": str(home)}, capture_output=True, text=True, timeout=300,
    )
    return _Result(done.returncode, done.stdout, done.stderr)


class _Result:
    def __init__(self, exit_code: int, stdout: str, stderr: str):
        self.exit_code, self.stdout, self.stderr, self.output = exit_code, stdout, stderr, stdout + stderr


def listed_files(home: Path) -> dict[str, list[str]]:
    """The manifest's files and chunk ids (read from SQLite only, never opening Chroma)."""
    settings = make_settings(home, collection=collection_for(home))
    return {path: record.chunk_ids for path, record in Index(settings).sources().items()}


def stored(home: Path, url: str | None) -> tuple[dict[str, list[str]], set[str]]:
    """(files and their chunk ids in the manifest, chunk ids in the vector store at `url`)."""
    settings = make_settings(home, collection=collection_for(home), vector_store={"url": url})
    index = Index(settings)
    return {path: record.chunk_ids for path, record in index.sources().items()}, index.chunk_ids()


def one_line_error(result, exit_code: int = 1) -> str:
    assert result.exit_code == exit_code, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    assert len(result.stderr.splitlines()) == 1, result.stderr
    return result.stderr


@pytest.fixture
def on_server(chroma_server, notes, home):
    """An index whose vectors were ingested into the Chroma server."""
    ingested = cli(home, "ingest", str(notes), "--chroma-url", chroma_server)
    assert ingested.exit_code == 0, ingested.output
    files, vectors = stored(home, chroma_server)
    assert len(files) == 4 and vectors == {chunk for ids in files.values() for chunk in ids}
    return files, vectors


def test_every_command_uses_the_server_the_index_was_made_on(chroma_server, on_server, notes, home):
    status = cli(home, "status", "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.stdout)["files"] == 4

    check = cli(home, "status", "--check")
    assert check.exit_code == 0, check.output
    assert check.stdout.startswith("The index is consistent")

    search = cli(home, "search", QUESTION, "--json")
    assert search.exit_code == 0, search.output
    assert json.loads(search.stdout)[0]["source"].endswith("calibrate.py")

    repair = cli(home, "repair")
    assert repair.exit_code == 0 and repair.stdout.startswith("The index is consistent"), repair.output

    (notes / "work" / "tools" / "calibrate.py").write_text("SERIAL_BAUD = 115200\n")
    resync = cli(home, "ingest", str(notes))
    assert resync.exit_code == 0 and "1 updated" in resync.stdout, resync.output

    same_url_spelled_otherwise = cli(home, "status", "--check", "--chroma-url", chroma_server + "/")
    assert same_url_spelled_otherwise.exit_code == 0, same_url_spelled_otherwise.output

    assert not (home / "index" / CHROMA_DIR).exists()  # nothing ever opened a store on disk
    files, vectors = stored(home, chroma_server)
    assert len(files) == 4 and vectors == {chunk for ids in files.values() for chunk in ids}


@pytest.mark.parametrize("command", [["status"], ["status", "--check"], ["search", QUESTION], ["repair"], ["ingest", "NOTES"]])
def test_another_server_is_refused_and_nothing_is_deleted(chroma_server, on_server, notes, home, command):
    other = f"http://127.0.0.1:{free_port()}"
    args = [str(notes) if arg == "NOTES" else arg for arg in command]
    error = one_line_error(cli(home, *args, "--chroma-url", other))
    assert error.startswith(
        f"Error: The index at {home / 'index'} (collection {collection_for(home)!r}) keeps its vectors in the "
        f"Chroma server {chroma_server}, not {other}; run without --chroma-url"
    ), error
    assert stored(home, chroma_server) == on_server


@pytest.mark.parametrize("command", [["status", "--check"], ["search", QUESTION], ["repair"], ["ingest", "NOTES"]])
def test_an_index_on_disk_refuses_a_server(chroma_server, notes, home, command):
    assert cli(home, "ingest", str(notes)).exit_code == 0
    before = stored(home, None)
    args = [str(notes) if arg == "NOTES" else arg for arg in command]
    error = one_line_error(cli(home, *args, "--chroma-url", chroma_server))
    assert f"keeps its vectors on disk, not in the Chroma server {chroma_server}; run without --chroma-url" in error
    assert stored(home, None) == before


def forget_where_the_vectors_are(home: Path) -> None:
    """What an index made before the location was recorded looks like."""
    with sqlite3.connect(home / "index" / MANIFEST_FILE) as db:
        db.execute("DELETE FROM vector_stores")


def test_repair_never_empties_the_manifest_of_an_old_index_made_on_a_server(chroma_server, on_server, home):
    """The issue's data loss: an index made with --chroma-url before the location was recorded,
    checked and repaired without it."""
    forget_where_the_vectors_are(home)
    check = one_line_error(cli(home, "status", "--check"))
    assert "chunks of 4 files" in check
    assert "holds none of them" in check and "give its --chroma-url" in check
    repair = one_line_error(cli(home, "repair"))
    assert "nothing was changed" in repair
    files, _ = stored(home, None)
    assert files == on_server[0]  # every file still listed
    assert stored(home, chroma_server) == on_server  # and every vector still on the server

    # Without a record, the server it names is used, as before.
    with_url = cli(home, "status", "--check", "--chroma-url", chroma_server)
    assert with_url.exit_code == 0 and with_url.stdout.startswith("The index is consistent"), with_url.output


def test_repair_refuses_when_the_vectors_on_disk_are_gone(notes, home):
    assert cli_process(home, "ingest", str(notes)).exit_code == 0
    before = listed_files(home)
    shutil.rmtree(home / "index" / CHROMA_DIR)
    error = one_line_error(cli_process(home, "repair"))
    assert f"Chroma on disk in {home / 'index' / CHROMA_DIR} holds none of them" in error
    assert "rag ingest --rebuild PATH..." in error
    assert listed_files(home) == before
    # An unfinished ingest is reconciled by the next one first: refused the same way.
    (home / "index" / f"{UNFINISHED_PREFIX}{collection_for(home)}").write_text("12345\n")
    assert "holds none of them" in one_line_error(cli_process(home, "ingest", str(notes)))
    assert listed_files(home) == before
    rebuilt = cli_process(home, "ingest", "--rebuild", str(notes))
    assert rebuilt.exit_code == 0 and rebuilt.stdout.startswith("Synced: 4 added"), rebuilt.output


def test_a_rebuild_killed_after_dropping_the_vectors_is_completed_by_the_next_ingest(notes, home):
    """drop() deletes the vectors before the manifest rows: a rebuild killed in between leaves a
    manifest whose store is empty, and the marker says why; the next ingest re-reads every file."""
    assert cli_process(home, "ingest", str(notes)).exit_code == 0
    shutil.rmtree(home / "index" / CHROMA_DIR)  # as if delete_collection ran and then the process died
    (home / "index" / f"{UNFINISHED_PREFIX}{collection_for(home)}").write_text(f"12345\n{REBUILDING}\n")
    resumed = cli_process(home, "ingest", str(notes))
    assert resumed.exit_code == 0 and resumed.stdout.startswith("Synced: 4 added"), resumed.output
    assert_index_consistent(make_settings(home, collection=collection_for(home)))


def test_an_index_records_its_store_when_created_and_keeps_it_through_a_rebuild(chroma_server, on_server, notes, home):
    rebuilt = cli(home, "ingest", "--rebuild", str(notes))  # no URL: rebuilt where it is
    assert rebuilt.exit_code == 0, rebuilt.output
    files, vectors = stored(home, chroma_server)
    assert len(files) == 4 and vectors == {chunk for ids in files.values() for chunk in ids}
    assert not (home / "index" / CHROMA_DIR).exists()


def test_the_index_says_when_its_own_server_is_down(notes, home, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [installed_command("chroma"), "run", "--path", str(tmp_path / "data"), "--host", "127.0.0.1", "--port", str(port)]
    with running_server(command, f"{url}/api/v2/heartbeat"):
        assert cli(home, "ingest", str(notes), "--chroma-url", url).exit_code == 0
    error = one_line_error(cli(home, "status", "--check"))
    assert error == (
        f"Error: No Chroma server answers at {url}, where the index at {home / 'index'} keeps its vectors; "
        "start it with `chroma run --path DIR --port PORT`.\n"
    )
    assert not (home / "index" / CHROMA_DIR).exists()
