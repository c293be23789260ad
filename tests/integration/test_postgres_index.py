"""The whole index in PostgreSQL (`index.url`), shared by processes as by machines: real `rag`
processes against a real PostgreSQL with pgvector (tests/postgres_server.py), the real MiniLM.

Each process has a home of its own, as another machine would: nothing of the index is in it."""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import subprocess
import time
import zlib
from pathlib import Path

import psycopg
import pytest
from typer.testing import CliRunner

import rag
from ingest.errors import UsageError
from ingest.index import UNFINISHED_PREFIX, Index, SourceRecord
from ingest.index.postgres_index import _FOLDER_LOCK
from rag.cli import app
from tests.conftest import assert_index_consistent, installed_command, make_settings
from tests.helpers import SAMPLE_NOTES
from tests.postgres_server import PASSWORD
from tests.integration.test_concurrency import many_notes

runner = CliRunner()


def collection_of(path: Path, name: str = "shared") -> str:
    """A collection name of this test's own on the session's server."""
    return f"{name}-{zlib.crc32(str(path).encode()):08x}"


def start_ingest(folder: Path, home: Path, url: str, collection: str, **env: str) -> subprocess.Popen:
    """`rag ingest FOLDER` in a process of its own, with a home of its own: another machine."""
    return subprocess.Popen(
        [installed_command("rag"), "ingest", str(folder)],
        env={**os.environ, "RAG_HOME": str(home), "RAG_INDEX__URL": url, "RAG_COLLECTION": collection, **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finished(ingest: subprocess.Popen, timeout: float = 600) -> str:
    """The ingest's stderr, once it has exited 0."""
    stdout, stderr = ingest.communicate(timeout=timeout)
    assert ingest.returncode == 0, stderr
    return stderr


def drop(settings) -> None:
    with Index(settings) as index, index.writer_lock():
        index.drop()


def test_a_serving_process_sees_an_ingest_made_by_another_process_at_its_next_search(postgres_server, tmp_path, notes):
    collection = collection_of(tmp_path)
    replica = make_settings(tmp_path / "replica-home", collection=collection, index={"url": postgres_server})
    finished(start_ingest(notes, tmp_path / "machine-a", postgres_server, collection))
    try:
        # This process keeps its index open between searches, as `rag serve` does.
        hits = rag.search("What oven temperature are the cardamom buns baked at?", replica, k=1)
        assert hits.hits[0].source == str(notes / "personal/recipes/cardamom-buns.md")
        ferry = tmp_path / "harbour" / "ferry.md"
        ferry.parent.mkdir()
        ferry.write_text("# Ferry\n\nThe early harbour ferry to Saltholm leaves pier 9 at 06:40 on weekdays.\n")
        assert rag.search("When does the ferry to Saltholm leave?", replica, k=1).hits[0].source != str(ferry)

        finished(start_ingest(ferry.parent, tmp_path / "machine-b", postgres_server, collection))
        for mode in ("hybrid", "keyword", "dense"):
            hits = rag.search("When does the ferry to Saltholm leave?", replica, k=1, mode=mode)
            assert hits.hits[0].source == str(ferry), mode
        assert Index(replica).stats().files == 5
        assert not (tmp_path / "replica-home" / "index").exists()  # nothing of the index is on this machine
    finally:
        drop(replica)


def writer_locks(url: str) -> list[tuple[int, str, bool]]:
    """(process id, mode, granted) of every folder lock of rag's writers the server holds or has asked for."""
    with psycopg.connect(url, autocommit=True) as connection:
        return connection.execute(
            "SELECT pid, mode, granted FROM pg_locks WHERE locktype = 'advisory' AND classid = %s AND objsubid = 2",
            (_FOLDER_LOCK,),
        ).fetchall()


def watched_locks(url: str, ingests: list[subprocess.Popen]) -> list[list[tuple[int, str, bool]]]:
    """The writers' folder locks, seen every few milliseconds until every ingest has exited."""
    seen = []
    while any(ingest.poll() is None for ingest in ingests):
        seen.append(writer_locks(url))
        time.sleep(0.02)
    return seen


def seeded_collection(tmp_path: Path, url: str) -> str:
    """A collection of this test's own, made by a first ingest: the ingest that makes a collection
    records what builds it, and so holds all of it."""
    seed = tmp_path / "seed"
    seed.mkdir()
    (seed / "seed.md").write_text("# Seed\n\nThe seed note makes the collection before the folders arrive.\n")
    collection = collection_of(tmp_path)
    finished(start_ingest(seed, tmp_path / "home-seed", url, collection))
    return collection


def test_two_processes_ingesting_different_folders_into_one_collection_at_once_both_land(postgres_server, tmp_path):
    folders = {"personal": tmp_path / "personal", "work": tmp_path / "work"}
    for name, folder in folders.items():
        shutil.copytree(SAMPLE_NOTES / name, folder)
    collection = seeded_collection(tmp_path, postgres_server)
    ingests = [start_ingest(folder, tmp_path / f"home-{name}", postgres_server, collection) for name, folder in folders.items()]
    seen = watched_locks(postgres_server, ingests)
    errors = [finished(ingest) for ingest in ingests]
    # Each locked its own folder, and they wrote at once: neither waited for the other.
    assert not any("waiting" in error.lower() for error in errors), errors
    assert any(len({pid for pid, mode, granted in locks if mode == "ExclusiveLock" and granted}) == 2 for locks in seen)
    assert not any(not granted for locks in seen for _, _, granted in locks)

    settings = make_settings(tmp_path / "reader", collection=collection, index={"url": postgres_server})
    try:
        sources = Index(settings).sources()
        on_disk = {str(path) for folder in [*folders.values(), tmp_path / "seed"] for path in folder.rglob("*") if path.is_file()}
        assert set(sources) <= on_disk and {Path(p).relative_to(tmp_path).parts[0] for p in sources} == {*folders, "seed"}
        assert len(sources) == 15
        assert_index_consistent(settings)  # nothing lost, nothing doubled: vectors = keywords = the manifest's list
        hits = rag.search("What oven temperature are the cardamom buns baked at?", settings, k=1)
        assert hits.hits[0].source == str(folders["personal"] / "recipes/cardamom-buns.md")
        hits = rag.search("What baud rate does the calibration script use for the service port?", settings, k=1)
        assert hits.hits[0].source == str(folders["work"] / "tools/calibrate.py")
    finally:
        drop(settings)


@pytest.mark.parametrize("second", ["personal", "personal/recipes"], ids=["the same folder", "a folder inside it"])
def test_two_processes_ingesting_one_folder_at_once_take_turns(postgres_server, tmp_path, second):
    """Two ingests of one folder, or of a folder and one inside it, would write the same files: the
    second waits for the first's lock in the database, then finds its files already there."""
    shutil.copytree(SAMPLE_NOTES / "personal", tmp_path / "personal")
    collection = seeded_collection(tmp_path, postgres_server)
    ingests = []
    for number, folder in enumerate(["personal", second]):
        ingests.append(subprocess.Popen(
            [installed_command("rag"), "ingest", "--json", str(tmp_path / folder)],
            env={**os.environ, "RAG_HOME": str(tmp_path / f"home-{number}"), "RAG_INDEX__URL": postgres_server,
                 "RAG_COLLECTION": collection},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    seen = watched_locks(postgres_server, ingests)
    outputs = [ingest.communicate(timeout=600) for ingest in ingests]
    assert [ingest.returncode for ingest in ingests] == [0, 0], outputs
    # One asked for a folder lock the other held, and said it waited; they never held both at once.
    assert sum("waiting for it to finish" in stderr for _, stderr in outputs) == 1, outputs
    assert any(not granted for locks in seen for _, _, granted in locks)
    assert not any(len({pid for pid, mode, granted in locks if mode == "ExclusiveLock" and granted}) == 2 for locks in seen)

    settings = make_settings(tmp_path / "reader", collection=collection, index={"url": postgres_server})
    try:
        reports = [json.loads(stdout) for stdout, _ in outputs]
        # Whichever went second found the files the first wrote and wrote none of them again: the
        # same folder's second ingest adds nothing, and of a folder and one inside it each file is
        # added by one of the two (which one depends on which took the lock first).
        added = [path for report in reports for path in report["added"]]
        files = sorted(str(path) for path in (tmp_path / "personal").rglob("*") if path.is_file())
        assert sorted(added) == files
        if second == "personal":
            assert sorted(len(report["added"]) for report in reports)[0] == 0
        assert sum(report["chunks_added"] for report in reports) == Index(settings).stats().chunks - 1
        assert Index(settings).stats().files == 1 + len(files)
        assert_index_consistent(settings)
    finally:
        drop(settings)


@pytest.mark.fast
def test_writers_lock_their_folders_and_the_parents_shared_in_one_order(tmp_path):
    from ingest.index.postgres_index import _WRITER_LOCK, PostgresDatabase

    database = PostgresDatabase("postgresql://rag@db.example/team", "kb")
    assert database._writer_locks(None) == [("advisory_lock", (_WRITER_LOCK, "kb"))]
    assert database._writer_locks([Path("/notes/work"), Path("/notes")]) == [
        ("advisory_lock_shared", (_WRITER_LOCK, "kb")),
        ("advisory_lock_shared", (_FOLDER_LOCK, "kb\n/")),
        ("advisory_lock", (_FOLDER_LOCK, "kb\n/notes")),  # its own folder alone, though a parent of the other
        ("advisory_lock", (_FOLDER_LOCK, "kb\n/notes/work")),
    ]


def test_an_ingest_killed_mid_write_leaves_whole_files_and_the_next_one_completes(postgres_server, tmp_path):
    """SIGKILL at random moments of real ingests: each file is in the index whole or not at all,
    with no repair, and the killed process's lock is gone for the next ingest."""
    folder = many_notes(tmp_path / "notes", 80)
    collection = collection_of(tmp_path)
    home = tmp_path / "home"
    settings = make_settings(home, collection=collection, index={"url": postgres_server})
    rng = random.Random(20261204)
    mid_write = 0
    try:
        for round_number in range(1, 7):
            files = sorted(folder.iterdir())
            for path in rng.sample(files, 30):  # interrupted replacements, not only first ingests
                path.write_text(path.read_text() + f"\nRevision {round_number}.\n")
            files[round_number].unlink()
            before = {path: record.sha256 for path, record in Index(settings).sources().items()}
            # Small write groups: many commits per run, so kills land before, inside and between them.
            ingest = start_ingest(folder, home, postgres_server, collection, RAG_INGEST__GROUP_CHUNKS="8")
            deadline = time.monotonic() + 120
            while Index(settings).sources() == before and ingest.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)  # until its first commit: the kills that matter land mid-write
            time.sleep(rng.uniform(0.0, 1.0))
            if ingest.poll() is None:
                ingest.kill()
                mid_write += 1
            ingest.communicate()
            # Whatever moment it died at: no repair needed, nothing half-written, nothing to reconcile.
            assert_index_consistent(settings)
            assert rag.check(settings).ok
        assert mid_write >= 4, f"only {mid_write} kills landed mid-write"
        assert not list((home / "index").glob(f"{UNFINISHED_PREFIX}*")) if (home / "index").exists() else True

        final = runner.invoke(app, ["ingest", str(folder), "--index-url", postgres_server, "--collection", collection],
                              env={"RAG_HOME": str(home)})
        assert final.exit_code == 0, final.output
        assert_index_consistent(settings)
        on_disk = {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
        recorded = {path: record.sha256 for path, record in Index(settings).sources().items()}
        assert recorded == on_disk  # every file there, each as it is now, nothing else
    finally:
        drop(settings)


def test_the_password_is_never_recorded_or_shown(postgres_server, tmp_path, notes):
    collection = collection_of(tmp_path)
    without_password = postgres_server.replace(f":{PASSWORD}@", "@")
    settings = make_settings(tmp_path / "home", collection=collection, index={"url": postgres_server})
    rag.ingest([notes], settings)
    try:
        with psycopg.connect(postgres_server) as connection:
            recorded = connection.execute(
                "SELECT vector_store, fingerprint::text FROM rag.builds WHERE collection = %s", (collection,)
            ).fetchone()
        assert recorded[0] == without_password and PASSWORD not in recorded[1]
        # The URL without it, and the password from the environment, as libpq reads it.
        env = {**os.environ, "RAG_HOME": str(tmp_path / "other"), "RAG_INDEX__URL": without_password,
               "RAG_COLLECTION": collection, "PGPASSWORD": PASSWORD}
        for command in (["status"], ["search", "cardamom buns oven temperature", "-k", "1"]):
            result = subprocess.run([installed_command("rag"), *command], env=env, capture_output=True, text=True,
                                    timeout=300)
            assert result.returncode == 0, result.stderr
            assert PASSWORD not in result.stdout + result.stderr
        assert "cardamom-buns.md" in result.stdout
    finally:
        drop(settings)


@pytest.mark.fast
def test_a_vector_store_elsewhere_than_the_index_database_is_refused_in_one_line(tmp_path):
    settings = make_settings(tmp_path, index={"url": "postgresql://rag:s3cret@db.example/team"},
                             vector_store={"url": "http://localhost:8000"})
    result = runner.invoke(app, ["status", "--index-url", "postgresql://rag:s3cret@db.example/team",
                                 "--chroma-url", "http://localhost:8000"], env={"RAG_HOME": str(tmp_path)})
    assert result.exit_code != 0 and "Traceback" not in result.output and "s3cret" not in result.output
    assert len(result.stderr.splitlines()) == 1
    assert result.stderr == (
        "Error: index.url puts everything of a collection in postgresql://rag@db.example/team, vectors included; "
        "vector_store.url names http://localhost:8000. Leave vector_store.url (or --chroma-url) out, or give the "
        "same URL.\n"
    )
    with pytest.raises(UsageError):
        Index(settings)


def test_a_file_whose_write_fails_midway_leaves_no_vector_keyword_or_row(postgres_server, tmp_path, monkeypatch):
    """One transaction: the vectors written first go again when the keyword rows fail."""
    settings = make_settings(tmp_path, collection=collection_of(tmp_path), index={"url": postgres_server})
    index = Index(settings)
    index.create(2)
    kept = SourceRecord("/notes/kept.md", 1, 1, "k", ["k1"], 0.0)
    index.write_sources([kept], ["k1"], ["kept words"], [{"source": kept.path}], [[1.0, 0.0]], replaced_ids=[])
    try:
        def fail(*args):
            raise RuntimeError("the connection dropped")

        monkeypatch.setattr(type(index._keywords), "add", fail)
        failing = SourceRecord("/notes/new.md", 1, 1, "n", ["n1", "n2"], 0.0)
        with pytest.raises(RuntimeError):
            index.write_sources(
                [failing], ["n1", "n2"], ["new one", "new two"], [{"source": failing.path}] * 2,
                [[0.0, 1.0], [0.6, 0.8]], replaced_ids=[],
            )
        assert index.chunk_ids() == {"k1"} and index.keyword_chunk_ids() == {"k1"} and list(index.sources()) == [kept.path]
        assert index.problems().ok
    finally:
        drop(settings)


def test_status_names_the_database_and_which_machines_wrote_what_and_when(postgres_server, tmp_path, monkeypatch):
    collection = collection_of(tmp_path)
    folders = {"work": tmp_path / "work", "personal": tmp_path / "personal"}
    for name, folder in folders.items():
        shutil.copytree(SAMPLE_NOTES / name, folder)
    settings = make_settings(tmp_path / "home", collection=collection, index={"url": postgres_server})
    try:
        # Two machines: the host name is all that tells them apart here, as it is in the database.
        monkeypatch.setattr("socket.gethostname", lambda: "machine-a")
        assert rag.ingest([folders["work"]], settings).ok
        monkeypatch.setattr("socket.gethostname", lambda: "machine-b")
        assert rag.ingest([folders["personal"]], settings).ok
        monkeypatch.undo()

        options = ["--index-url", postgres_server, "--collection", collection]
        shown = runner.invoke(app, ["status", *options], env={"RAG_HOME": str(tmp_path / "home")})
        assert shown.exit_code == 0, shown.output
        database = "PostgreSQL at " + postgres_server.replace(f":{PASSWORD}@", "@")
        lines = shown.stdout.splitlines()
        assert lines[0] == f"index:           {database}" and PASSWORD not in shown.output
        status = rag.status(settings)
        assert [(writer["host"], writer["files"]) for writer in status.writers] == [("machine-b", 5), ("machine-a", 9)]
        assert lines[-2:] == [
            f"written by:      machine-b: 5 files, last at {status.writers[0]['last_write']}",
            f"                 machine-a: 9 files, last at {status.writers[1]['last_write']}",
        ]
        assert status.writers[0]["last_write"] >= status.writers[1]["last_write"]
        assert status.index == database and status.index_path == str(tmp_path / "home" / "index")

        # Errors about the index name the database too, not this machine's index folder.
        missing = runner.invoke(app, ["status", "--index-url", postgres_server, "--collection", f"{collection}-none"],
                                env={"RAG_HOME": str(tmp_path / "home")})
        assert missing.exit_code == 1 and database.removeprefix("PostgreSQL at ") in missing.stderr
        assert str(tmp_path) not in missing.stderr and PASSWORD not in missing.stderr

        listed = runner.invoke(app, ["collections", "--index-url", postgres_server, "--json"],
                               env={"RAG_HOME": str(tmp_path / "elsewhere")})
        assert listed.exit_code == 0, listed.output
        assert {"name": collection, "files": 14} in [
            {"name": found["name"], "files": found["files"]} for found in json.loads(listed.stdout)
        ]
    finally:
        drop(settings)


def test_a_busy_collection_in_postgresql_names_the_collection_and_the_database(postgres_server, tmp_path, notes):
    from rag.errors import IndexBusyError
    from rag.server.service import KnowledgeService

    collection = collection_of(tmp_path)
    settings = make_settings(tmp_path / "home", collection=collection, index={"url": postgres_server},
                             serve={"ingest_roots": [str(notes)]})
    database = "PostgreSQL at " + postgres_server.replace(f":{PASSWORD}@", "@")
    try:
        assert rag.ingest([notes], settings).ok  # a service serves a collection that exists
        with Index(settings).writer_lock(wait=False):
            with pytest.raises(IndexBusyError) as raised:  # what `rag serve` answers 409 with
                KnowledgeService(settings).check_ingest([str(notes)])
            assert str(raised.value) == (
                f"Another ingest is writing to the collection {collection!r} in {database}; try again once it has finished."
            )
            refused = runner.invoke(app, ["ingest", "--no-wait", str(notes), "--index-url", postgres_server,
                                          "--collection", collection], env={"RAG_HOME": str(tmp_path / "home")})
            assert refused.exit_code == 1
            assert refused.stderr.startswith(
                f"Error: Another ingest is writing to the collection {collection!r} in {database}; try again"
            )
            waiting = start_ingest(notes, tmp_path / "machine-b", postgres_server, collection)
            assert waiting.stderr is not None
            assert waiting.stderr.readline() == f"Another ingest is writing to {database}; waiting for it to finish…\n"
        finished(waiting)
        assert Index(settings).stats().files == 4
    finally:
        drop(settings)


def test_eval_takes_the_index_url(postgres_server, tmp_path):
    from tests.helpers import write_beir_fixture

    dataset = write_beir_fixture(tmp_path / "fixture")
    result = runner.invoke(app, ["eval", str(dataset), "--json", "--index-url", postgres_server],
                           env={"RAG_HOME": str(tmp_path / "home")})
    assert result.exit_code == 0, result.output
    assert {r["mode"]: r["mrr_at_10"] for r in json.loads(result.stdout)}["hybrid"] == 1.0
    evaluated = make_settings(tmp_path / "home", collection="eval-fixture", index={"url": postgres_server})
    try:
        assert Index(evaluated).stats().files > 0  # the dataset's collection is in the database
        assert not (tmp_path / "home" / "index").exists()
    finally:
        drop(evaluated)


def test_one_process_keeps_a_disk_index_and_a_postgresql_one_of_the_same_name_apart(postgres_server, tmp_path):
    local = make_settings(tmp_path / "home", collection=collection_of(tmp_path, "apart"))
    shared = local.model_copy(update={"index": local.index.model_copy(update={"url": postgres_server})})
    for settings, town in ((local, "Visby"), (shared, "Kiruna")):
        folder = tmp_path / town
        folder.mkdir()
        (folder / "office.md").write_text(f"# Office\n\nThe team's office is in {town}.\n", encoding="utf-8")
        rag.ingest([folder], settings)
    try:
        for settings, town in ((local, "Visby"), (shared, "Kiruna"), (local, "Visby")):
            hit = rag.search("Where is the team's office?", settings, k=1).hits[0]
            assert hit.source == str(tmp_path / town / "office.md")
    finally:
        drop(shared)
