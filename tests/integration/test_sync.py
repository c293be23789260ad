"""Sync semantics of `rag.ingest` against real Chroma on disk."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import ingest.index
import rag
from ingest.index import KEYWORD_INDEX_VERSION, Index, keywords
from rag.cli import app
from rag.errors import IndexMismatchError, UsageError
from tests.conftest import SAMPLE_NOTES, assert_index_consistent, make_settings


def _all_files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.rglob("*") if p.is_file())


def test_sample_corpus_ingests_completely(sample_index):
    settings, report = sample_index
    assert report.failed == []
    assert sorted(report.added) == _all_files(SAMPLE_NOTES)
    assert report.updated == report.removed == []
    stats = Index(settings).stats()
    assert stats.files == len(report.added) == 14
    assert stats.chunks == report.chunks_added > 14
    assert_index_consistent(settings)


def test_resync_adds_replaces_and_removes_exactly(store, notes, home):
    settings = store(home)
    first = rag.ingest([notes], settings)
    assert len(first.added) == 4

    modified = notes / "personal/recipes/cardamom-buns.md"
    modified.write_text("# Buns\n\nThe buns now bake at 250 degrees for exactly 7 minutes.\n")
    deleted = notes / "work/tools/calibrate.py"
    deleted.unlink()
    added = notes / "new" / "parking.txt"
    added.parent.mkdir()
    added.write_text("Visitor parking is in garage level P3, spaces 301 to 318.\n")

    second = rag.ingest([notes], settings)
    assert second.added == [str(added)]
    assert second.updated == [str(modified)]
    assert second.removed == [str(deleted)]
    assert second.unchanged == 2
    assert second.failed == []
    assert second.chunks_added == 2  # one chunk each for the new and the rewritten file
    stats = Index(settings).stats()
    assert stats.files == 4
    assert_index_consistent(settings)

    top = rag.search("how hot is the oven for the buns", settings, k=1)[0]
    assert top.source == str(modified) and "250 degrees" in top.text
    hits = rag.search("anything", settings, k=100)
    assert not any(hit.source == str(deleted) for hit in hits)
    assert "Kardemummabullar" not in " ".join(hit.text for hit in hits)


def test_unchanged_files_are_skipped_and_touch_is_not_a_change(store, notes, home):
    settings = store(home)
    rag.ingest([notes], settings)
    chunk_ids = Index(settings).chunk_ids()

    again = rag.ingest([notes], settings)
    assert (again.unchanged, again.added, again.updated, again.chunks_added) == (4, [], [], 0)

    touched = notes / "work/calls/phone-log-2024-04.txt"
    os.utime(touched, ns=(touched.stat().st_atime_ns, touched.stat().st_mtime_ns + 10**9))
    after_touch = rag.ingest([notes], settings)
    assert (after_touch.unchanged, after_touch.updated, after_touch.chunks_added) == (4, [], 0)
    assert Index(settings).sources()[str(touched)].mtime_ns == touched.stat().st_mtime_ns
    assert Index(settings).chunk_ids() == chunk_ids


def test_dry_run_reports_the_plan_and_changes_nothing(store, notes, home):
    settings = store(home)
    fresh = rag.ingest([notes], settings, dry_run=True)
    assert len(fresh.added) == 4 and fresh.dry_run
    assert not Index(settings).exists()

    rag.ingest([notes], settings)
    before = (Index(settings).sources(), Index(settings).chunk_ids())
    (notes / "personal/garden/allotment-plan-2024.md").write_text("# Plot\n\nPlot 43 is now given up.\n")
    (notes / "work/tools/calibrate.py").unlink()
    (notes / "extra.md").write_text("# Extra\n\nA new note.\n")

    plan = rag.ingest([notes], settings, dry_run=True)
    assert plan.added == [str(notes / "extra.md")]
    assert plan.updated == [str(notes / "personal/garden/allotment-plan-2024.md")]
    assert plan.removed == [str(notes / "work/tools/calibrate.py")]
    assert (Index(settings).sources(), Index(settings).chunk_ids()) == before


def test_changed_settings_are_refused_until_rebuild(store, notes, home):
    rag.ingest([notes], store(home))
    smaller_chunks = store(home, chunking={"chunk_tokens": 100})
    with pytest.raises(IndexMismatchError, match=r"chunk_tokens 200, now 100.*rebuild=True"):
        rag.ingest([notes], smaller_chunks)
    with pytest.raises(IndexMismatchError):
        rag.search("buns", smaller_chunks)

    rebuilt = rag.ingest([notes], smaller_chunks, rebuild=True)
    assert len(rebuilt.added) == 4
    assert Index(smaller_chunks).stats().fingerprint["chunk_tokens"] == 100
    assert_index_consistent(smaller_chunks)


def test_a_keyword_index_an_older_rag_made_is_analysed_again_in_place(store, notes, home, monkeypatch):
    # A line wrapped inside the word 提交 ("hand in"), as a PDF or a hard-wrapped note has it.
    wrapped = notes / "代码审查.md"
    wrapped.write_text("# 代码审查\n\n修改完成后，请先运行全部测试，然后再提\n交代码给审查人。\n", encoding="utf-8")
    traditional = notes / "記憶體.md"
    traditional.write_text("# 記憶體\n\n調整伺服器的記憶體上限之前，請先備份資料。\n", encoding="utf-8")
    settings = store(home)
    # Its analysis: no bigram across a line break, traditional Chinese as written; version 1.
    with monkeypatch.context() as older_rag:
        older_rag.setattr(keywords, "unwrapped", lambda text: text)
        older_rag.setattr(keywords, "simplified", lambda text: text)
        older_rag.setattr(ingest.index, "KEYWORD_INDEX_VERSION", 1)
        first = rag.ingest([notes], settings)

    def found_by_keyword(query: str) -> set[str]:
        return {hit.source for hit in rag.search(query, settings, mode="keyword", k=10)}

    with Index(settings) as index:
        assert index.keyword_index_outdated() and index.settings_differences() == []
        ids = [chunk_id for record in index.sources().values() for chunk_id in record.chunk_ids]
        vectors = index.get_vectors(ids)
    assert found_by_keyword("提交") == set()  # searched as it is meanwhile: no refusal
    assert found_by_keyword("代码") == {str(wrapped)}
    assert (found_by_keyword("備份"), found_by_keyword("备份")) == ({str(traditional)}, set())  # as it was read
    assert rag.ingest([notes], settings, dry_run=True).keywords_analysed_again == len(ids)  # would, and does not
    assert Index(settings).keyword_index_outdated()

    again = rag.ingest([notes], settings)
    assert again.keywords_analysed_again == first.chunks_added == len(ids)
    assert (again.chunks_added, again.unchanged, again.added, again.updated) == (0, len(first.added), [], [])
    assert found_by_keyword("提交") == {str(wrapped)}
    assert found_by_keyword("備份") == found_by_keyword("备份") == {str(traditional)}
    with Index(settings) as index:
        assert not index.keyword_index_outdated()
        assert index.stats().fingerprint["keyword_index"] == KEYWORD_INDEX_VERSION
        after = index.get_vectors(ids)
    assert all(np.array_equal(vectors[chunk_id], after[chunk_id]) for chunk_id in ids)  # nothing embedded again
    assert_index_consistent(settings)
    assert rag.ingest([notes], settings).keywords_analysed_again == 0


def test_a_collection_named_in_korean_chinese_or_japanese_is_kept_in_every_store(store, notes, home):
    names = ("회의록", "会议记录", "議事録")
    for name in names:
        settings = store(home, collection=name)
        assert len(rag.ingest([notes], settings).added) == 4
        assert rag.search("cardamom buns", settings, k=1)[0].source.endswith("buns.md")
        assert_index_consistent(settings)
    listed = {summary.name for summary in Index(store(home)).collections()}
    assert {store(home, collection=name).collection for name in names} <= listed


def test_chroma_knows_a_collection_named_in_other_letters_by_its_punycode_spelling(notes, home):
    import chromadb

    rag.ingest([notes], make_settings(home, collection="회의록"))
    client = chromadb.PersistentClient(path=str(home / "index" / "chroma"))
    assert [collection.name for collection in client.list_collections()] == ["xn--3o2bz7yuol"]
    assert CliRunner().invoke(app, ["collections"], env={"RAG_HOME": str(home)}).stdout.split()[0] == "회의록"
    # A long one: its unfinished-ingest marker, named by the collection, would be past a file name's 255 bytes.
    long_name = "회의록" * 33
    assert len(rag.ingest([notes], make_settings(home, collection=long_name)).added) == 4
    assert rag.search("cardamom buns", make_settings(home, collection=long_name), k=1)


def test_ingest_says_when_it_analysed_the_keyword_index_again(notes, home, monkeypatch):
    with monkeypatch.context() as older_rag:
        older_rag.setattr(ingest.index, "KEYWORD_INDEX_VERSION", 1)
        chunks = rag.ingest([notes], make_settings(home)).chunks_added
    rebuilt = rag.ingest([notes / "personal" / "recipes"], make_settings(home), rebuild=True)  # analyses only what it embeds
    assert rebuilt.keywords_analysed_again == 0 and Index(make_settings(home)).keyword_index_outdated()
    result = CliRunner().invoke(app, ["ingest", str(notes)], env={"RAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert (
        f"the keyword index, made by an older rag, was analysed again for {chunks} chunks (nothing embedded again)"
        in result.stderr
    )
    assert result.stdout.startswith("Synced: 0 added, 0 updated, 0 removed, 4 unchanged")


def test_bad_files_are_reported_and_the_rest_ingested(notes, home):
    (notes / "broken.pdf").write_bytes(b"%PDF-1.4\n1 0 obj << /Type /Catalog >>\ntruncated")
    (notes / "disguised.txt").write_bytes(bytes(range(256)) * 4)
    (notes / "image.bin").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (notes / "latin1.txt").write_bytes("Smörgåsbord".encode("latin-1"))

    report = rag.ingest([notes], make_settings(home))
    failed = dict(report.failed)
    assert failed[str(notes / "broken.pdf")].startswith("unreadable PDF")
    assert failed[str(notes / "disguised.txt")] == "binary content, not text"
    assert str(notes / "latin1.txt") in report.added  # read in its own encoding
    assert dict(report.skipped)[str(notes / "image.bin")] == "unsupported file type .bin"
    assert len(report.added) == 5 and not report.ok
    assert rag.search("baud rate of the service port", make_settings(home), k=1)[0].source.endswith("calibrate.py")


def test_a_file_that_breaks_keeps_its_previous_chunks(store, notes, home):
    settings = store(home)
    rag.ingest([notes], settings)
    log = notes / "work/calls/phone-log-2024-04.txt"
    old_ids = Index(settings).sources()[str(log)].chunk_ids
    log.write_bytes(b"\x00\x01binary now")
    report = rag.ingest([notes], settings)
    assert [path for path, _ in report.failed] == [str(log)]
    assert report.removed == []
    assert Index(settings).sources()[str(log)].chunk_ids == old_ids
    assert_index_consistent(settings)


def test_ignore_files_hidden_files_and_symlinks(notes, home, tmp_path):
    (notes / ".ragignore").write_text("drafts/\n*.tmp.md\n")
    (notes / "drafts").mkdir()
    (notes / "drafts" / "idea.md").write_text("# Idea\n\nDraft text.\n")
    (notes / "scratch.tmp.md").write_text("# Scratch\n\nTemporary.\n")
    (notes / ".hidden.md").write_text("# Hidden\n\nSecret.\n")
    (notes / "cardamom-buns.md~").write_text("# Cardamom buns\n\nAn editor's backup.\n")
    (notes / "#allotment-plan-2024.md#").write_text("# Allotment\n\nAn autosave.\n")
    (notes / ".obsidian").mkdir()
    (notes / ".obsidian" / "workspace.md").write_text("# Workspace\n")
    outside = tmp_path / "outside.md"
    outside.write_text("# Outside\n\nNot under the notes folder.\n")
    (notes / "link-out.md").symlink_to(outside)

    report = rag.ingest([notes], make_settings(home))
    ingested = {Path(p).name for p in report.added}
    assert ingested == {"cardamom-buns.md", "allotment-plan-2024.md", "phone-log-2024-04.txt", "calibrate.py"}
    skipped = dict(report.skipped)
    assert skipped[str(notes / ".hidden.md")] == "hidden file"
    for temporary in ("cardamom-buns.md~", "#allotment-plan-2024.md#"):
        assert skipped[str(notes / temporary)] == "an editor's backup or temporary file"
    assert skipped[str(notes / ".obsidian")] == "hidden folder"
    assert "outside the ingested folder" in skipped[str(notes / "link-out.md")]


def test_a_file_with_two_names_is_ingested_once_under_its_own(notes, home, tmp_path):
    """A symlink beside its file, a folder given by a symlink and by its own path, a hard link:
    the file is read once, under the name that is no symlink, and the others say why they are left out."""
    buns = notes / "personal/recipes/cardamom-buns.md"
    (notes / "personal/favourite.md").symlink_to(buns)  # walked before the file it points to
    (notes / "personal/recipes/buns-copy.md").hardlink_to(buns)
    also = tmp_path / "also-notes"
    also.symlink_to(notes, target_is_directory=True)
    report = rag.ingest([also, notes], make_settings(home))
    assert sorted(Path(path).relative_to(also) for path in report.added) == [
        Path("personal/garden/allotment-plan-2024.md"), Path("personal/recipes/buns-copy.md"),
        Path("work/calls/phone-log-2024-04.txt"), Path("work/tools/calibrate.py"),
    ]
    skipped = dict(report.skipped)
    assert skipped[str(also / "personal/favourite.md")] == f"the same file as {also / 'personal/recipes/buns-copy.md'}"
    assert skipped[str(also / "personal/recipes/cardamom-buns.md")] == f"the same file as {also / 'personal/recipes/buns-copy.md'}"
    assert skipped[str(notes / "work/tools/calibrate.py")] == f"the same file as {also / 'work/tools/calibrate.py'}"
    hits = rag.search("cardamom buns", make_settings(home), k=10)
    assert {hit.source for hit in hits if "ardamom" in hit.text} == {str(also / "personal/recipes/buns-copy.md")}


def _ingested_with_another_folder(settings, notes: Path, tmp_path: Path) -> Path:
    """`notes` and a folder beside it ingested together; the other folder's one file."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.md").write_text("# Keep\n\nThe spare key is under the blue flowerpot.\n")
    rag.ingest([notes, other], settings)
    return other / "keep.md"


def test_deleting_a_whole_folder_removes_its_chunks_only(store, notes, home, tmp_path):
    settings = store(home)
    kept = _ingested_with_another_folder(settings, notes, tmp_path)
    shutil.rmtree(notes)
    notes.mkdir()

    report = rag.ingest([notes], settings)
    assert len(report.removed) == 4
    assert list(Index(settings).sources()) == [str(kept)]
    assert_index_consistent(settings)


def test_a_folder_or_file_gone_from_disk_leaves_the_index_when_named(store, notes, home, tmp_path):
    settings = store(home)
    kept = _ingested_with_another_folder(settings, notes, tmp_path)
    recipe = notes / "personal/recipes/cardamom-buns.md"
    recipe.unlink()
    assert rag.ingest([recipe], settings).removed == [str(recipe)]
    shutil.rmtree(notes)

    assert len(rag.ingest([notes], settings, dry_run=True).removed) == 3
    report = rag.ingest([notes], settings)
    assert len(report.removed) == 3 and report.added == report.failed == []
    assert list(Index(settings).sources()) == [str(kept)]
    with pytest.raises(UsageError, match="^Path not found: .*never$"):  # a path the index never held
        rag.ingest([tmp_path / "never"], settings)
    assert_index_consistent(settings)


def test_folders_given_inside_one_another_or_twice_sync_each_file_once(store, notes, home):
    settings = store(home)
    first = rag.ingest([notes, notes / "work", notes], settings)
    assert len(first.added) == 4 and first.failed == []
    assert Index(settings).stats().files == 4
    calibrate = notes / "work/tools/calibrate.py"
    calibrate.write_text(calibrate.read_text() + "\n# The probe is kept in drawer 4.\n")
    assert rag.ingest([notes, notes / "work"], settings, dry_run=True).unchanged == 3
    report = rag.ingest([notes / "work", notes], settings)
    assert (report.updated, report.unchanged) == ([str(calibrate)], 3)
    assert "drawer 4" in rag.search("Where is the probe kept?", settings, k=1)[0].text
    assert_index_consistent(settings)


def test_collections_are_separate_knowledge_bases(store, notes, home, tmp_path):
    recipes = store(home, collection="recipes")
    rag.ingest([notes / "personal/recipes"], recipes)
    rag.ingest([notes / "work"], store(home))
    assert {Path(h.source).name for h in rag.search("anything", recipes, k=50)} == {"cardamom-buns.md"}
    assert Index(store(home)).stats().files == 2


def test_a_file_sync_no_longer_sees_keeps_its_chunks_only_a_gone_file_loses_them(store, notes, home):
    """An ignore rule or a hidden folder hides a file from discovery; it is still there, so it is not removed."""
    settings = store(home)
    hidden = notes / ".drafts" / "plan.md"
    hidden.parent.mkdir()
    hidden.write_text("# Plan\n\nThe offsite is in the mill house by the river.\n")
    ignored = notes / "work/tools/calibrate.py"
    rag.ingest([notes, hidden], settings)  # a hidden file named explicitly is taken
    (notes / ".ragignore").write_text("*.py\n")

    report = rag.ingest([notes], settings)
    assert report.removed == [] and report.chunks_removed == 0
    assert report.kept == [
        (str(hidden), "in .drafts/: hidden folder"), (str(ignored), "ignored by .ragignore (line 1: *.py)"),
    ]
    assert report.warnings == [
        "2 files ingested before are skipped now (in .drafts/: hidden folder, ...) but still there, so they keep "
        "their chunks; a rebuild of the whole collection leaves them out."
    ]
    assert {str(hidden), str(ignored)} <= set(Index(settings).sources())
    hidden.unlink()
    (notes / "personal/recipes/cardamom-buns.md").write_bytes(b"")  # emptied: its text is gone
    gone = rag.ingest([notes], settings)
    assert gone.removed == sorted([str(hidden), str(notes / "personal/recipes/cardamom-buns.md")])
    assert gone.kept == [(str(ignored), "ignored by .ragignore (line 1: *.py)")]
    assert_index_consistent(settings)
