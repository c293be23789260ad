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
from tests.integration.test_concurrency import many_notes, start_ingest

runner = CliRunner()
KILLS = 20


def test_killed_ingests_leave_an_index_the_next_ingest_completes(home, tmp_path):
    folder = many_notes(tmp_path / "notes", 120)
    rng = random.Random(20261121)
    kills = rounds = interrupted_writes = 0
    marker = home / "index" / f"{UNFINISHED_PREFIX}default"
    created = False  # once an ingest has recorded the collection, every later kill leaves an index that opens
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
        assert "Traceback" not in status.output
        if status.exit_code == 0:
            created = True
            assert json.loads(status.stdout)["files"] >= 0 and status.stderr == ""
        else:  # killed before its first write group recorded the collection: there is nothing to open yet
            assert not created, f"an index that opened before no longer does: {status.output}"
            assert status.exit_code == 1
            assert status.stderr == f"Error: No index at {home / 'index'}. Run `rag ingest PATH` first.\n"
    assert interrupted_writes >= KILLS, f"only {interrupted_writes} of {kills} kills landed mid-write"

    settings = make_settings(home)
    check = runner.invoke(app, ["status", "--check"], env={"RAG_HOME": str(home)})
    # What the check must report: problems (exit 1) or none (exit 0); on a loaded machine every kill
    # may have landed before the first write group recorded the collection, leaving none to check.
    found = rag.check(settings) if created else None
    final = runner.invoke(app, ["ingest", str(folder)], env={"RAG_HOME": str(home)})
    assert final.exit_code == 0, final.output
    assert_index_consistent(settings)
    assert rag.check(settings).ok
    on_disk = {str(path): hashlib.sha256(path.read_bytes()).hexdigest() for path in folder.iterdir()}
    recorded = {path: record.sha256 for path, record in Index(settings).sources().items()}
    assert recorded == on_disk  # every file there, each as it is now, nothing else
    if found is None:
        assert check.exit_code == 1 and check.stderr == f"Error: No index at {home / 'index'}. Run `rag ingest PATH` first.\n"
    elif found.ok:
        assert check.exit_code == 0 and check.stdout.startswith("The index is consistent"), check.output
    else:  # the problems themselves are tested below
        assert check.exit_code == 1 and check.stdout.startswith("Found: "), check.output
        assert check.stderr == "Run `rag repair`, or just `rag ingest` again: it repairs first.\n"
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
    index.store.add(["orphan-chunk"], [[0.0] * 384], ["orphan"], [{"source": "x"}])
    index.store.delete(victim.chunk_ids[:1])  # and a file whose chunks are not all there
    index.begin_writes()

    check = runner.invoke(app, ["status", "--check", "--json"], env={"RAG_HOME": str(home)})
    assert check.exit_code == 1
    found = json.loads(check.stdout)
    assert found == {
        "ok": False, "unfinished": True, "orphan_vectors": ["orphan-chunk"], "orphan_words": [],
        "incomplete_sources": [victim.path],
    }
    repaired = runner.invoke(app, ["repair"], env={"RAG_HOME": str(home)})
    assert (repaired.exit_code, repaired.stdout) == (0, (
        "Fixed: an ingest stopped before it finished.\n"
        "Fixed: 1 vector no file lists.\n"
        "Fixed: 1 file with chunks missing (it will be ingested again).\n"
    ))
    assert runner.invoke(app, ["status", "--check"], env={"RAG_HOME": str(home)}).exit_code == 0
    again = rag.ingest([notes], settings)
    assert again.added == [victim.path]  # forgotten by the repair, so ingested again
    assert_index_consistent(settings)
