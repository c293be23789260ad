"""Crash safety: a real `rag ingest` killed with SIGKILL at random moments, again and again."""

from __future__ import annotations

import hashlib
import json
import random
import time
from pathlib import Path

from typer.testing import CliRunner

import rag
from ingest.index import UNFINISHED_PREFIX, Index
from rag.cli import app
from tests.conftest import assert_index_consistent, make_settings
from tests.test_concurrency import many_notes, start_ingest

runner = CliRunner()
KILLS = 20


def test_killed_ingests_leave_an_index_the_next_ingest_completes(home, tmp_path):
    folder = many_notes(tmp_path / "notes", 120)
    rng = random.Random(20261121)
    kills = rounds = interrupted_writes = 0
    marker = home / "index" / f"{UNFINISHED_PREFIX}default"
    while interrupted_writes < KILLS and rounds < 3 * KILLS:
        rounds += 1
        files = sorted(folder.iterdir())
        for path in rng.sample(files, 40):  # interrupted replacements, not only first ingests
            path.write_text(path.read_text() + f"\nRevision {rounds}.\n")
        for path in rng.sample(files, 2):
            path.unlink()
        many_notes_extra(folder, rounds)
        # Small write groups: many commits per run, so kills land before, inside and between them.
        ingest = start_ingest(folder, home, RAG_INGEST__GROUP_CHUNKS="16")
        deadline = time.monotonic() + 60
        while not marker.exists() and ingest.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)  # until it starts writing: the kills that matter land mid-write
        time.sleep(rng.uniform(0.0, 1.5))
        if ingest.poll() is None:
            writing = marker.exists()  # not yet at its very end (it could be past its last write)
            ingest.kill()
            kills += 1
            interrupted_writes += writing
        ingest.wait()
        # whatever moment it died at, the index still opens
        status = runner.invoke(app, ["status", "--json"], env={"RAG_HOME": str(home)})
        assert status.exit_code in (0, 1), status.output
    assert interrupted_writes >= KILLS, f"only {interrupted_writes} of {kills} kills landed mid-write"

    settings = make_settings(home)
    check = runner.invoke(app, ["status", "--check"], env={"RAG_HOME": str(home)})
    final = runner.invoke(app, ["ingest", str(folder)], env={"RAG_HOME": str(home)})
    assert final.exit_code == 0, final.output
    assert_index_consistent(settings)
    assert rag.check(settings).ok
    on_disk = {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    recorded = {path: record.sha256 for path, record in Index(settings).sources().items()}
    assert recorded == on_disk  # every file there, each as it is now, nothing else
    assert check.exit_code in (0, 1), check.output  # problems, if any, are reported (tested below)
    print(f"{kills} kills in {rounds} rounds; before the final ingest: {check.stdout.strip()!r}")


def many_notes_extra(folder: Path, round_number: int) -> None:
    (folder / f"added-{round_number:03d}.txt").write_text(f"Added in round {round_number}\n\nA note added later.\n")


def test_repair_fixes_what_a_crash_left_and_check_reports_it(notes, home):
    settings = make_settings(home)
    rag.ingest([notes], settings)
    index = Index(settings)
    # What an ingest killed between its Chroma write and its manifest commit leaves behind:
    records = index.sources()
    victim = next(iter(records.values()))
    index._collection.upsert(ids=["orphan-chunk"], embeddings=[[0.0] * 384], documents=["orphan"], metadatas=[{"source": "x"}])
    index._collection.delete(ids=victim.chunk_ids[:1])  # and a file whose chunks are not all there
    index.begin_writes()

    check = runner.invoke(app, ["status", "--check", "--json"], env={"RAG_HOME": str(home)})
    assert check.exit_code == 1
    found = json.loads(check.stdout)
    assert found == {
        "ok": False, "unfinished": True, "orphan_vectors": ["orphan-chunk"], "orphan_words": [],
        "incomplete_sources": [victim.path],
    }
    repaired = runner.invoke(app, ["repair"], env={"RAG_HOME": str(home)})
    assert repaired.exit_code == 0 and "Fixed: 1 files with chunks missing" in repaired.stdout
    assert runner.invoke(app, ["status", "--check"], env={"RAG_HOME": str(home)}).exit_code == 0
    again = rag.ingest([notes], settings)
    assert again.added == [victim.path]  # forgotten by the repair, so ingested again
    assert_index_consistent(settings)
