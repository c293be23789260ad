"""Sync reports that say what the sync did: rebuilds of one folder, dry runs against the real run,
empty files, build folders, renames, progress and ignore rules. Real Chroma, real MiniLM."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rag
from ingest.embedding import LocalEmbeddings
from ingest.index import Index
from ingest.sync import ingest
from rag.cli import app
from rag.errors import UsageError
from tests.conftest import assert_index_consistent, make_settings

runner = CliRunner()


def rag_cli(*args: str, home: Path):
    return runner.invoke(app, list(args), env={"RAG_HOME": str(home)})


@pytest.fixture
def other(tmp_path) -> Path:
    """A second folder beside `notes`, as a man-page folder beside a docs folder."""
    folder = tmp_path / "man"
    folder.mkdir()
    (folder / "tar.txt").write_text("TAR\n\nThe tar program creates and extracts archive files; -x extracts.\n")
    (folder / "grep.txt").write_text("GREP\n\nThe grep program prints lines matching a pattern; -i ignores case.\n")
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def _chunks(settings) -> int:
    return Index(settings).stats().chunks


@pytest.fixture
def embedded_texts(monkeypatch) -> list[int]:
    """How many texts the real embedder was asked for, per call."""
    calls: list[int] = []
    real_encode = LocalEmbeddings.encode

    def counting_encode(self, texts, on_progress=None):
        calls.append(len(texts))
        return real_encode(self, texts, on_progress=on_progress)

    monkeypatch.setattr(LocalEmbeddings, "encode", counting_encode)
    return calls


def test_rebuild_of_one_folder_keeps_the_other_folders_files(notes, other, home):
    settings = make_settings(home)
    rag.ingest([notes, other], settings)
    notes_chunks = {path: r.chunk_ids for path, r in Index(settings).sources().items() if path.startswith(str(notes))}
    (other / "grep.txt").unlink()
    before = _chunks(settings)

    report = rag.ingest([other], settings, rebuild=True)
    assert report.updated == [str(other / "tar.txt")]  # dropped and ingested again
    assert report.removed == [str(other / "grep.txt")] and report.added == []
    sources = Index(settings).sources()
    assert {path: r.chunk_ids for path, r in sources.items() if path.startswith(str(notes))} == notes_chunks
    assert sorted(sources) == sorted([*notes_chunks, str(other / "tar.txt")])
    assert _chunks(settings) == before + report.chunks_added - report.chunks_removed
    assert_index_consistent(settings)


def test_a_rebuild_for_new_settings_asks_before_dropping_other_folders(notes, other, home):
    rag.ingest([notes, other], make_settings(home))
    old = Index(make_settings(home)).sources()
    new_settings = make_settings(home, chunking={"chunk_tokens": 100})

    with pytest.raises(UsageError, match=rf"chunk_tokens 200, now 100.*4 files from outside.*{notes}.*rebuild_all=True"):
        rag.ingest([other], new_settings, rebuild=True)
    assert Index(make_settings(home)).sources() == old  # refused before anything was dropped

    plan = ingest([other], new_settings, rebuild_all=True, dry_run=True)
    report = ingest([other], new_settings, rebuild_all=True)
    for result in (plan, report):
        assert result.added == _files(other)
        assert result.removed == _files(notes)  # what --all dropped, said so
        assert result.chunks_removed == sum(len(r.chunk_ids) for r in old.values())
    assert sorted(Index(new_settings).sources()) == _files(other)
    assert Index(new_settings).stats().fingerprint["chunk_tokens"] == 100
    assert_index_consistent(new_settings)


def test_cli_rebuild_all_needs_rebuild_and_a_refused_rebuild_is_one_line(notes, other, home):
    assert rag_cli("ingest", str(notes), str(other), home=home).exit_code == 0
    alone = rag_cli("ingest", "--all", str(other), home=home)
    assert alone.exit_code == 2 and alone.stderr.startswith("Error: --all goes with --rebuild")
    changed = runner.invoke(
        app, ["ingest", "--rebuild", str(other)], env={"RAG_HOME": str(home), "RAG_CHUNKING__CHUNK_TOKENS": "120"}
    )
    assert changed.exit_code == 2 and len(changed.stderr.strip().splitlines()) == 1
    assert "add --all" in changed.stderr
    assert Index(make_settings(home)).stats().files == 6


def test_dry_run_reports_what_the_real_run_then_does(notes, home):
    settings = make_settings(home)
    rag.ingest([notes], settings)
    (notes / "personal/garden/allotment-plan-2024.md").write_text(
        "# Plot\n\nPlot 43 is given up.\n\n## Tools\n\nThe shed key goes back to the office.\n"
    )
    (notes / "work/tools/calibrate.py").unlink()
    (notes / "work/calls/phone-log-2024-04.txt").rename(notes / "work/calls/phone-log-april.txt")
    (notes / "new.md").write_text("# New\n\nThe new office opens in May.\n\n" + "More about the office. " * 80)
    (notes / "broken.pdf").write_bytes(b"%PDF-1.7 not really a PDF")
    before = _chunks(settings)

    plan = rag.ingest([notes], settings, dry_run=True)
    assert _chunks(settings) == before
    real = rag.ingest([notes], settings)
    assert plan.to_dict() | {"seconds": 0, "dry_run": False} == real.to_dict() | {"seconds": 0}
    assert plan.added == [str(notes / "new.md")] and plan.chunks_added > 2
    assert plan.updated == [str(notes / "personal/garden/allotment-plan-2024.md")]
    assert plan.removed == [str(notes / "work/tools/calibrate.py")]
    assert plan.renamed == [(str(notes / "work/calls/phone-log-2024-04.txt"), str(notes / "work/calls/phone-log-april.txt"))]
    assert [path for path, _ in plan.failed] == [str(notes / "broken.pdf")]
    assert plan.failed[0][1].startswith("unreadable PDF")
    assert _chunks(settings) == before + real.chunks_added - real.chunks_removed
    assert_index_consistent(settings)


def test_cli_dry_run_marks_files_that_will_fail_and_renames(notes, home):
    rag_cli("ingest", str(notes), home=home)
    (notes / "broken.pdf").write_bytes(b"%PDF-1.7 not really a PDF")
    (notes / "work/tools/calibrate.py").rename(notes / "calibrate.py")
    result = rag_cli("ingest", "--dry-run", str(notes), home=home)
    lines = result.stdout.splitlines()
    assert result.exit_code == 1  # as the real run will
    assert not any(line.startswith("add") for line in lines)
    assert any(line.startswith("fail   ") and "broken.pdf: unreadable PDF" in line for line in lines)
    assert f"rename {notes / 'work/tools/calibrate.py'} -> {notes / 'calibrate.py'}" in lines
    assert lines[-1].startswith("Would sync: 0 added, 0 updated, 1 renamed, 0 removed, 3 unchanged, 1 failed")


def test_empty_files_are_skipped_not_failed(notes, home):
    settings = make_settings(home)
    (notes / "empty.md").write_bytes(b"")
    (notes / "blank.txt").write_text("  \n\n\t\n")
    first = rag_cli("ingest", "--json", str(notes), home=home)
    assert first.exit_code == 0, first.output
    report = rag.ingest([notes], settings)  # and every later sync
    assert report.ok and report.failed == []
    skipped = dict(report.skipped)
    assert skipped[str(notes / "empty.md")] == "empty file"
    assert skipped[str(notes / "blank.txt")] == "empty file (only whitespace)"

    emptied = notes / "work/calls/phone-log-2024-04.txt"
    emptied.write_text("\n")
    after = rag.ingest([notes], settings)
    assert after.ok and after.removed == [str(emptied)]  # its old text is gone: so are its chunks
    assert str(emptied) not in Index(settings).sources()
    assert_index_consistent(settings)


def test_build_folders_are_skipped_as_one_line_each(notes, home):
    (notes / "pyproject.toml").write_text("[project]\nname = 'notes'\n")  # makes dist/ and build/ build output
    for folder, name in [
        ("work/tools/__pycache__", "calibrate.cpython-312.pyc"), ("node_modules/left-pad", "README.md"),
        ("env", "pyvenv.cfg"), ("env/lib", "notes.md"), ("dist", "notes.md"), ("build/html", "index.html"),
        ("pkg.egg-info", "PKG-INFO.txt"), ("guides/build", "intro.md"),
    ]:
        (notes / folder).mkdir(parents=True, exist_ok=True)
        (notes / folder / name).write_text("# Generated\n\nNot written by anyone.\n")
    report = rag.ingest([notes], make_settings(home))
    # A documentation section called "build", with no project beside it, is documents.
    expected = [*_files_of_notes(notes), str(notes / "pyproject.toml"), str(notes / "guides/build/intro.md")]
    assert sorted(report.added) == sorted(expected)
    build = {path: reason for path, reason in report.skipped if reason.startswith("build or dependency folder")}
    assert sorted(build) == sorted(
        str(notes / f) for f in ["work/tools/__pycache__", "node_modules", "env", "dist", "build", "pkg.egg-info"]
    )
    assert build[str(notes / "env")].startswith("build or dependency folder (pyvenv.cfg)")
    assert build[str(notes / "dist")].startswith("build or dependency folder (dist beside pyproject.toml)")
    assert not any(path.endswith(".pyc") for path, _ in report.skipped)

    named = rag.ingest([notes / "build"], make_settings(home, collection="generated"))
    assert named.added == [str(notes / "build/html/index.html")]  # a build folder given as the PATH is ingested


def _files_of_notes(notes: Path) -> list[str]:
    return [str(notes / f) for f in [
        "personal/recipes/cardamom-buns.md", "personal/garden/allotment-plan-2024.md",
        "work/calls/phone-log-2024-04.txt", "work/tools/calibrate.py",
    ]]


def test_a_renamed_or_moved_file_keeps_its_vectors(notes, home, embedded_texts):
    settings = make_settings(home)
    rag.ingest([notes], settings)
    old = Index(settings).sources()
    buns, log = notes / "personal/recipes/cardamom-buns.md", notes / "work/calls/phone-log-2024-04.txt"
    old_vectors = Index(settings).get_vectors(old[str(buns)].chunk_ids)
    (notes / "archive").mkdir()
    buns.rename(notes / "archive/buns.md")  # moved and renamed
    log.rename(log.with_suffix(".md"))  # read by another loader: chunked and embedded anew
    embedded_texts.clear()

    report = rag.ingest([notes], settings)
    assert report.renamed == [(str(buns), str(notes / "archive/buns.md"))]
    assert report.added == [str(log.with_suffix(".md"))] and report.removed == [str(log)]
    assert sum(embedded_texts) == report.chunks_added == len(Index(settings).sources()[str(log.with_suffix(".md"))].chunk_ids)
    moved = Index(settings).sources()[str(notes / "archive/buns.md")]
    assert moved.sha256 == old[str(buns)].sha256
    new_vectors = Index(settings).get_vectors(moved.chunk_ids)
    # The same vectors, to float32's last bit: on a CPU without AVX-512, Chroma gives a vector it is
    # given again back a unit in its last place off (a re-embedded one would not be asked for at all).
    for old_id, new_id in zip(old[str(buns)].chunk_ids, moved.chunk_ids):
        assert np.allclose(old_vectors[old_id], new_vectors[new_id], rtol=1e-6, atol=1e-9)
    assert rag.search("cardamom buns", settings, k=1)[0].source == str(notes / "archive/buns.md")
    assert rag.search("cardamom", settings, k=1, mode="keyword")[0].source == str(notes / "archive/buns.md")
    assert_index_consistent(settings)

    embedded_texts.clear()
    (notes / "archive/buns.md").rename(notes / "buns.md")
    assert rag.ingest([notes], settings).renamed == [(str(notes / "archive/buns.md"), str(notes / "buns.md"))]
    assert embedded_texts == []  # the embedding model was not even asked


def _manual(sections: list[str]) -> str:
    return "# Manual\n\n" + "\n\n".join(sections)


MANUAL_SECTIONS = [f"## Part {n}\n\n" + f"Machine {n} runs shift {n} on line {n}. " * 12 for n in range(5)]


@pytest.mark.parametrize("store", ["disk", "server"], indirect=True)  # it counts the real model's work
def test_an_edited_file_embeds_only_the_chunks_whose_text_changed(store, notes, home, embedded_texts):
    manual = notes / "manual.md"
    manual.write_text(_manual(MANUAL_SECTIONS))
    settings = store(home)
    rag.ingest([notes], settings)
    before = Index(settings).sources()[str(manual)]
    old_vectors = Index(settings).get_vectors(before.chunk_ids)
    old_by_text = {chunk.text: old_vectors[chunk_id] for chunk_id, chunk in Index(settings).get_chunks(before.chunk_ids).items()}
    assert len(before.chunk_ids) == 5

    sections = list(MANUAL_SECTIONS)
    sections[2] = "## Part 2\n\nThe press on line 2 now needs a second operator for every shift."
    manual.write_text(_manual(sections))
    embedded_texts.clear()
    report = rag.ingest([notes], settings)
    assert report.updated == [str(manual)] and report.chunks_added == 5
    assert report.chunks_reused == 4 and sum(embedded_texts) == 1
    after = Index(settings).sources()[str(manual)]
    stored = Index(settings).get_chunks(after.chunk_ids, vectors=True)
    kept = [chunk for chunk in stored.values() if chunk.text in old_by_text]
    assert len(kept) == 4 and all(np.array_equal(chunk.embedding, old_by_text[chunk.text]) for chunk in kept)
    [edited] = [chunk for chunk in stored.values() if chunk.text not in old_by_text]
    fresh = LocalEmbeddings(settings.embedding, settings.cache_path).encode([edited.text])[0]
    assert float(np.dot(edited.embedding, fresh)) > 0.9999
    assert rag.search("second operator for the press", settings, k=1)[0].source == str(manual)
    assert_index_consistent(settings)

    embedded_texts.clear()
    report = rag.ingest([notes], settings, rebuild=True)  # a rebuild embeds again what it has embedded before
    assert report.chunks_reused == 0 and sum(embedded_texts) == report.chunks_added


def test_cli_says_which_vectors_an_edit_kept(notes, home, embedded_texts):
    manual = notes / "manual.md"
    manual.write_text(_manual(MANUAL_SECTIONS))
    assert rag_cli("ingest", str(notes), home=home).exit_code == 0
    result = rag_cli("ingest", "-v", "--json", str(notes), home=home)  # nothing changed: nothing reused either
    assert result.exit_code == 0 and '"chunks_reused": 0' in result.stdout
    manual.write_text(_manual(MANUAL_SECTIONS) + "\n")  # new bytes, the same chunks
    embedded_texts.clear()
    result = rag_cli("ingest", "-v", str(notes), home=home)
    assert result.exit_code == 0, result.output
    assert "kept the vectors of 5 chunks whose text was embedded before" in result.stderr
    assert "embedded with" not in result.stderr and embedded_texts == []


def test_a_text_met_twice_in_one_ingest_is_embedded_once(notes, home, embedded_texts):
    copy = notes / "copies" / "cardamom-buns.md"
    copy.parent.mkdir()
    copy.write_bytes((notes / "personal/recipes/cardamom-buns.md").read_bytes())
    settings = make_settings(home)
    report = rag.ingest([notes], settings)
    copied = len(Index(settings).sources()[str(copy)].chunk_ids)
    assert report.chunks_reused == copied and sum(embedded_texts) == report.chunks_added - copied
    top = rag.search("cardamom buns", settings, k=2)
    assert {hit.source for hit in top} == {str(copy), str(notes / "personal/recipes/cardamom-buns.md")}
    assert top[0].score == top[1].score
    assert_index_consistent(settings)


class RecordedProgress:
    def __init__(self) -> None:
        self.events: list[tuple] = []

    def start(self, total_files: int, total_bytes: int) -> None:
        self.events.append(("start", total_files, total_bytes))

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
        self.events.append(("advance", files, chunks, done_bytes))

    def finish(self) -> None:
        self.events.append(("finish",))


def test_progress_advances_by_files_and_chunks_as_work_happens(notes, home):
    for number in range(6):
        (notes / f"extra-{number}.md").write_text(f"# Extra {number}\n\n" + f"Widget batch {number} ships on day {number}. " * 40)
    progress = RecordedProgress()
    report = rag.ingest([notes], make_settings(home, ingest={"group_chunks": 4}), progress=progress)

    start, *advances, finish = progress.events
    files = sum(len(p.read_bytes()) for p in notes.rglob("*") if p.is_file())
    assert start == ("start", 10, files) and finish == ("finish",)
    assert sum(e[1] for e in advances) == 10
    assert sum(e[2] for e in advances) == report.chunks_added
    assert sum(e[3] for e in advances) == files  # all the work done, in bytes, the time estimate's measure
    # Work is reported as it happens, not at the end: chunks are embedded and bytes done before the last file is read.
    last_file = max(i for i, e in enumerate(advances) if e[1])
    assert any(e[2] for e in advances[:last_file]) and sum(e[3] for e in advances[:last_file]) > 0
    assert advances[0][1] == 1  # the first file counts as soon as it is read


def test_verbose_lists_files_skipped_by_ignore_rules(notes, home):
    (notes / ".gitignore").write_text("drafts/\n\n*.tmp.md\n!keep.tmp.md\n")
    (notes / "drafts").mkdir()
    (notes / "drafts/idea.md").write_text("# Idea\n\nA draft.\n")
    (notes / "scratch.tmp.md").write_text("# Scratch\n\nTemporary.\n")
    (notes / "keep.tmp.md").write_text("# Keep\n\nKept by the negation.\n")
    (notes / "work/.ragignore").write_text("secret.md\n!important.tmp.md\n")
    (notes / "work/secret.md").write_text("# Secret\n\nNot for the index.\n")
    (notes / "work/important.tmp.md").write_text("# Important\n\nThe nearer ignore file keeps it.\n")

    result = rag_cli("ingest", "-v", str(notes), home=home)
    assert result.exit_code == 0, result.output
    assert f"skipped {notes / 'drafts'}: ignored by .gitignore (line 1: drafts/)" in result.stderr
    assert f"skipped {notes / 'scratch.tmp.md'}: ignored by .gitignore (line 3: *.tmp.md)" in result.stderr
    assert f"skipped {notes / 'work/secret.md'}: ignored by work/.ragignore (line 1: secret.md)" in result.stderr
    ingested = set(Index(make_settings(home)).sources())
    assert {str(notes / "keep.tmp.md"), str(notes / "work/important.tmp.md")} <= ingested
    assert not {str(notes / "scratch.tmp.md"), str(notes / "work/secret.md"), str(notes / "drafts/idea.md")} & ingested

    quiet = rag_cli("ingest", str(notes), home=home)
    assert "ignored by .gitignore (2)" in quiet.stderr and "--verbose lists them" in quiet.stderr
