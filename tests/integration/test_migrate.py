"""`rag migrate`: a collection copied between Chroma on disk, a real Chroma server and a real
PostgreSQL with pgvector, with the real MiniLM's vectors as stored: the copies search alike, hold
the same manifest, and a copy that stopped midway resumes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag
from ingest.index import Index
from rag.cli import app
from rag.errors import MigrationCheckError, MigrationTargetNotEmptyError, NoIndexError
from tests.conftest import assert_index_consistent, installed_command, make_settings
from tests.helpers import QUESTIONS, SAMPLE_NOTES
from tests.postgres_server import PASSWORD
from tests.integration.test_concurrency import many_notes

runner = CliRunner()
MODES = ("keyword", "dense", "hybrid")
# Scores computed by different engines from the same float32 vectors and the same term statistics.
SCORE_TOLERANCE = 1e-5
# A hybrid score is normalised by the worst of each retriever's candidates, and the last of the
# nearest vectors an HNSW graph finds can differ between two builds of the same vectors (pgvector
# draws its nodes' levels at random; Chroma's graph depends on the order vectors come in): the
# same ranking, its scores a little apart now and then, and its last places may hold a candidate
# one build found and the other did not. The places a reader looks at are compared exactly.
HYBRID_SCORE_TOLERANCE = 1e-2
HYBRID_COMPARED_PLACES = 5


def collection_of(path: Path, name: str = "moved") -> str:
    """A collection name of this test's own on the session's servers."""
    return f"{name}-{zlib.crc32(str(path).encode()):08x}"


def ranking(settings, question: str, mode: str) -> list[tuple[str, float]]:
    return [(hit.chunk_id, hit.score) for hit in rag.search(question, settings, k=8, mode=mode).hits]


def assert_same_search_results(original, copy) -> None:
    for question, _ in QUESTIONS:
        for mode in MODES:
            expected, found = ranking(original, question, mode), ranking(copy, question, mode)
            assert len(found) == len(expected), (question, mode)
            if mode == "hybrid":
                expected, found = expected[:HYBRID_COMPARED_PLACES], found[:HYBRID_COMPARED_PLACES]
            assert [chunk_id for chunk_id, _ in found] == [chunk_id for chunk_id, _ in expected], (question, mode)
            tolerance = HYBRID_SCORE_TOLERANCE if mode == "hybrid" else SCORE_TOLERANCE
            for (_, score), (_, original_score) in zip(found, expected):
                assert score == pytest.approx(original_score, rel=tolerance, abs=tolerance), (question, mode)


def assert_same_collection(original, copy) -> None:
    """The same files with the same chunks, the same build record, the same stored chunks."""
    with Index(original) as source, Index(copy) as target:
        assert target.sources() == source.sources()
        built, copied_build = source.build_record(), target.build_record()
        assert built is not None and copied_build is not None
        assert (copied_build.fingerprint, copied_build.created_at, copied_build.last_sync) == (
            built.fingerprint, built.created_at, built.last_sync
        )
    assert_index_consistent(copy)


def cli(*arguments: str, home: Path):
    return runner.invoke(app, [*arguments], env={"RAG_HOME": str(home)})


def migration_target(target_kind: str, request, tmp_path: Path, collection: str):
    """(the target's settings, the `--to` naming it): PostgreSQL, or an index on disk of its own."""
    if target_kind == "postgres":
        to = request.getfixturevalue("postgres_server")
        return make_settings(tmp_path / "b", collection=collection, index={"url": to}), to
    target = make_settings(tmp_path / "b", collection=collection)
    return target, str(target.index_path)


def drop(settings) -> None:
    with Index(settings) as index, index.writer_lock():
        index.drop()


def test_disk_to_postgresql_and_back_searches_alike_and_the_next_ingest_has_nothing_to_do(postgres_server, tmp_path):
    collection = collection_of(tmp_path)
    on_disk = make_settings(tmp_path / "laptop", collection=collection)
    assert rag.ingest([SAMPLE_NOTES], on_disk).ok
    in_postgres = make_settings(tmp_path / "anywhere", collection=collection, index={"url": postgres_server})
    back_on_disk = make_settings(tmp_path / "again", collection=collection)
    try:
        there = cli("migrate", "--to", postgres_server, "--collection", collection, "--json", home=tmp_path / "laptop")
        assert there.exit_code == 0, there.output
        assert PASSWORD not in there.output
        report = json.loads(there.stdout)
        assert report["files"] == report["files_copied"] == 14 and report["chunks"] == report["vectors"] > 100
        assert report["keyword_entries"] == report["chunks"] and report["sampled_chunks"] == min(200, report["chunks"])
        assert report["largest_vector_difference"] <= 1e-6
        assert report["target"] == "PostgreSQL at " + postgres_server.replace(f":{PASSWORD}@", "@")

        back = cli("migrate", "--index-url", postgres_server, "--collection", collection,
                   "--to", str(back_on_disk.index_path), home=tmp_path / "anywhere")
        assert back.exit_code == 0, back.output
        assert back.stdout.startswith(f"Copied collection {collection!r} from PostgreSQL at ") and PASSWORD not in back.output

        for copy in (in_postgres, back_on_disk):
            assert_same_collection(on_disk, copy)
            assert_same_search_results(on_disk, copy)
            again = rag.ingest([SAMPLE_NOTES], copy)  # the manifest came along: every file is known, unchanged
            assert (again.added, again.updated, again.removed, again.renamed, again.unchanged) == ([], [], [], [], 14)
            assert again.chunks_added == again.chunks_removed == 0
        assert Index(on_disk).sources().keys() == Index(back_on_disk).sources().keys()  # the original is kept
    finally:
        drop(in_postgres)


def test_disk_to_a_chroma_server_keeps_the_manifest_in_the_folder_given(chroma_server, tmp_path, notes):
    collection = collection_of(tmp_path)
    on_disk = make_settings(tmp_path / "laptop", collection=collection)
    assert rag.ingest([notes], on_disk).ok
    copy_folder = tmp_path / "server-copy"
    # Into the source's own folder, the copy's manifest would be the source's: refused, naming the option.
    shared = cli("migrate", "--to", chroma_server, "--collection", collection, home=tmp_path / "laptop")
    assert shared.exit_code == 2 and "--to-index" in shared.stderr and len(shared.stderr.splitlines()) == 1
    moved = cli("migrate", "--to", chroma_server, "--to-index", str(copy_folder), "--collection", collection,
                home=tmp_path / "laptop")
    assert moved.exit_code == 0, moved.output
    assert f"to the index at {copy_folder} with its vectors on the Chroma server {chroma_server}" in moved.stdout

    on_server = make_settings(tmp_path / "laptop", collection=collection, index_dir=copy_folder)
    assert Index(on_server).store_url == chroma_server  # recorded: no --chroma-url needed to use it
    assert not (copy_folder / "chroma").exists()
    assert_same_collection(on_disk, on_server)
    assert_same_search_results(on_disk, on_server)
    listed = cli("collections", "--index", str(copy_folder), "--json", home=tmp_path / "laptop")
    assert json.loads(listed.stdout)[0]["vector_store"] == chroma_server

    # The server's collection of that name belongs to the copy's index now: another index's copy is refused.
    again = cli("migrate", "--to", chroma_server, "--to-index", str(tmp_path / "another-copy"), "--collection",
                collection, home=tmp_path / "laptop")
    assert again.exit_code == 1
    assert f"({Index(on_disk).stats().chunks} chunks that no file of its manifest lists); nothing was copied" in again.stderr
    assert not (tmp_path / "another-copy" / "manifest.sqlite3").exists()


def test_a_target_holding_the_collection_is_refused_and_left_as_it_was(tmp_path, notes):
    source = make_settings(tmp_path / "a")
    target = make_settings(tmp_path / "b")
    assert rag.ingest([notes], source).ok
    assert rag.ingest([notes / "personal"], target).ok
    before = Index(target).sources()

    refused = cli("migrate", "--to", str(target.index_path), home=tmp_path / "a")
    assert refused.exit_code == 1
    assert refused.stderr == (
        f"Error: There is a collection 'default' in the index at {target.index_path} already (2 files and "
        f"{sum(len(r.chunk_ids) for r in before.values())} chunks); nothing was copied. Give another --to (with a "
        "Chroma server, another --to-index).\n"
    )
    with pytest.raises(MigrationTargetNotEmptyError):
        rag.migrate(source, str(target.index_path))
    assert Index(target).sources() == before
    assert_index_consistent(target)

    same = cli("migrate", "--to", str(source.index_path), home=tmp_path / "a")
    assert same.exit_code == 2 and "is in the index at" in same.stderr and len(same.stderr.splitlines()) == 1


@pytest.mark.fast
def test_a_target_that_names_no_backend_is_one_line(tmp_path):
    result = cli("migrate", "--to", "ftp://files.example/kb", home=tmp_path)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr == (
        "Error: 'ftp://files.example/kb' names no place a collection can be copied to; give --to as "
        "postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector; or http://HOST:PORT for a Chroma server "
        "(its manifest in an index folder); or a folder for an index on disk.\n"
    )
    afile = tmp_path / "notes.txt"
    afile.write_text("mine")
    onto_a_file = cli("migrate", "--to", str(afile), home=tmp_path)
    assert (onto_a_file.exit_code, onto_a_file.stderr) == (
        2, f"Error: {afile} is a file; a collection is copied to a folder (new, or an index's).\n",
    )
    assert afile.read_text() == "mine"


def test_a_wrong_password_is_one_line_without_it(postgres_server, tmp_path, notes):
    assert rag.ingest([notes], make_settings(tmp_path)).ok
    wrong = postgres_server.replace(f":{PASSWORD}@", ":not-the-password@")
    result = cli("migrate", "--to", wrong, home=tmp_path)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("Error: Could not connect to PostgreSQL at postgresql://postgres@127.0.0.1:")
    assert "password authentication failed" in result.stderr and len(result.stderr.splitlines()) == 1
    assert "not-the-password" not in result.output and PASSWORD not in result.output


@pytest.mark.parametrize("target_kind", ["disk", "postgres"])
def test_a_copy_that_stopped_midway_is_no_collection_until_run_again_which_resumes(
    target_kind, request, tmp_path, notes, monkeypatch
):
    collection = collection_of(tmp_path)
    source = make_settings(tmp_path / "a", collection=collection, ingest={"group_chunks": 4})
    assert rag.ingest([notes], source).ok
    target, to = migration_target(target_kind, request, tmp_path, collection)

    written = []
    write_sources = Index.write_sources

    def stop_after_two_groups(index, records, *args, **kwargs):
        if len(written) == 2:
            raise RuntimeError("the connection dropped")
        write_sources(index, records, *args, **kwargs)
        written.extend(records)

    monkeypatch.setattr(Index, "write_sources", stop_after_two_groups)
    try:
        with pytest.raises(RuntimeError):
            rag.migrate(source, to)
        with pytest.raises(NoIndexError):  # no command sees a half copy as a collection
            rag.status(target)
        assert 0 < len(Index(target).sources()) < 4
        monkeypatch.undo()

        report = rag.migrate(source, to)
        assert report.files == 4 and report.files_copied == 4 - len(written)
        assert_same_collection(source, target)
        assert not rag.check(target).unfinished
    finally:
        if target_kind == "postgres":
            drop(target)


def test_a_copy_that_reads_back_otherwise_is_not_recorded_and_the_next_run_checks_again(tmp_path, notes, monkeypatch):
    source = make_settings(tmp_path / "a")
    target = make_settings(tmp_path / "b")
    assert rag.ingest([notes], source).ok
    get_chunks = Index.get_chunks

    def read_back_otherwise(index, ids, vectors=False):
        chunks = get_chunks(index, ids, vectors)
        if index.path == target.index_path:  # the copy, as a store that lost precision would give it back
            for chunk in chunks.values():
                chunk.embedding = chunk.embedding + 1e-3
        return chunks

    monkeypatch.setattr(Index, "get_chunks", read_back_otherwise)
    with pytest.raises(MigrationCheckError) as raised:
        rag.migrate(source, str(target.index_path))
    assert "sampled chunks differ" in str(raised.value)
    with pytest.raises(NoIndexError):
        rag.status(target)
    monkeypatch.undo()

    report = rag.migrate(source, str(target.index_path))
    assert report.files_copied == 0 and report.files == 4 and report.largest_vector_difference <= 1e-6
    assert_same_collection(source, target)


@pytest.mark.parametrize("target_kind", ["disk", "postgres"])
def test_a_copy_killed_midway_leaves_whole_files_and_the_same_command_finishes_it(target_kind, request, tmp_path):
    """SIGKILL a real `rag migrate` once it has written some files: no half file, no collection yet,
    and running it again copies the rest."""
    collection = collection_of(tmp_path)
    source = make_settings(tmp_path / "a", collection=collection)
    assert rag.ingest([many_notes(tmp_path / "notes", 150)], source).ok
    target, to = migration_target(target_kind, request, tmp_path, collection)
    command = [installed_command("rag"), "migrate", "--to", to, "--collection", collection]
    # One file per write: many commits, so the kill lands between and inside them.
    env = {**os.environ, "RAG_HOME": str(tmp_path / "a"), "RAG_INGEST__GROUP_CHUNKS": "1"}
    try:
        copying = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not Index(target).sources() and copying.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        copying.kill()
        copying.communicate()
        assert copying.returncode == -signal.SIGKILL, "the copy finished before the kill: nothing was tested"

        with pytest.raises(NoIndexError):
            rag.status(target)
        with Index(target) as half:
            written = half.sources()
            assert 0 < len(written) < 150
            assert all(record == Index(source).sources()[path] for path, record in written.items())
            if target_kind == "postgres":  # one transaction per file: each whole, nothing else
                listed = {chunk_id for record in written.values() for chunk_id in record.chunk_ids}
                assert half.chunk_ids() == listed == half.keyword_chunk_ids()

        finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        assert finished.returncode == 0, finished.stderr
        assert "this run copied" in finished.stdout
        assert_same_collection(source, target)
    finally:
        if target_kind == "postgres":
            drop(target)
