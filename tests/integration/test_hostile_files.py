"""A folder nobody curated: every odd or hostile file is reported with its reason, the rest ingested."""

from __future__ import annotations

import codecs
import os
from pathlib import Path

import rag
from tests.conftest import assert_index_consistent, make_settings


def hostile_corpus(root: Path, outside: Path) -> tuple[dict[str, str], set[str]]:
    """(bad file -> expected reason fragment, good files) in a generated folder."""
    root.mkdir()
    good = {
        "plain note.txt": "Spaces in the name: the archive key is in drawer 7.",
        "ünïcødé-名前.md": "# Unicode\n\nThe café opens at 07:30.",
        "name\nwith newline.txt": "A newline in the file name: backups run at 02:00.",
        "utf16.txt": None,  # written below with a BOM
    }
    for name, text in good.items():
        if text is not None:
            (root / name).write_text(text)
    (root / "utf16.txt").write_bytes(codecs.BOM_UTF16_LE + "UTF-16 text: the spare fuse is 5 A.".encode("utf-16-le"))
    deep = root
    for level in range(40):
        deep = deep / f"level{level}"
    deep.mkdir(parents=True)
    (deep / "deep.txt").write_text("Forty folders down: the treasure map.")

    bad = {
        "truncated.pdf": "unreadable PDF",
        "disguised.txt": "binary content",
        "empty.md": "empty file",
        "bad-utf16.txt": "invalid UTF-16",
        "huge-line.txt": "larger than max_file_mb",
        "no-text-layer.pdf": "no text layer",
        "encrypted.pdf": "encrypted PDF",
        "link-outside.md": "outside the ingested folder",
        "loop": "symlinked folder",
        "caf\\xe9.md": "its name is not UTF-8",  # shown with the byte escaped, as it can be printed
    }
    (root / "truncated.pdf").write_bytes(b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n" + b"\x00" * 10)
    (root / "disguised.txt").write_bytes(os.urandom(4096) + b"\x00")
    (root / "empty.md").write_bytes(b"")
    (root / os.fsdecode(b"caf\xe9.md")).write_text("# Caf\n\nA Latin-1 name: the menu changes on Fridays.")
    (root / "latin1.txt").write_bytes("Smörgåsbord and crème brûlée".encode("latin-1"))  # good, but not UTF-8
    (root / "bad-utf16.txt").write_bytes(codecs.BOM_UTF16_LE + b"\x00\xd8\x41")  # an unpaired surrogate
    # A 50 MB single line, over the default size limit: skipped without being read.
    with open(root / "huge-line.txt", "w") as fh:
        for _ in range(50):
            fh.write("x" * (1024 * 1024))
    (root / "no-text-layer.pdf").write_bytes(_pdf_without_text())
    (root / "encrypted.pdf").write_bytes(_encrypted_pdf())
    outside.write_text("# Outside\n\nNot part of the folder.")
    (root / "link-outside.md").symlink_to(outside)
    (root / "loop").symlink_to(root, target_is_directory=True)
    return bad, set(good) | {"deep.txt", "latin1.txt"}  # latin1.txt: read in its own encoding


def _encrypted_pdf() -> bytes:
    import io

    from fpdf import FPDF
    from pypdf import PdfReader, PdfWriter

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="The safe combination is 4-8-15.")
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(bytes(pdf.output()))))
    writer.encrypt(user_password="hunter2", algorithm="AES-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _pdf_without_text() -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60)  # drawing only, as a scanned page without OCR has no text either
    return bytes(pdf.output())


def test_hostile_corpus_reports_every_bad_file_and_ingests_every_good_one(tmp_path, home):
    bad, good = hostile_corpus(tmp_path / "corpus", tmp_path / "outside.md")
    settings = make_settings(home)
    report = rag.ingest([tmp_path / "corpus"], settings)

    reasons = {Path(path).name: reason for path, reason in report.failed + report.skipped}
    for name, fragment in bad.items():
        assert fragment in reasons.get(name, ""), (name, reasons.get(name))
    assert not report.ok  # exit code 1 from the CLI
    assert {Path(p).name for p in report.added} == good
    for question, name in [
        ("Where is the archive key?", "plain note.txt"),
        ("When does the café open?", "ünïcødé-名前.md"),
        ("When do backups run?", "name\nwith newline.txt"),
        ("What size is the spare fuse?", "utf16.txt"),
        ("treasure map", "deep.txt"),
    ]:
        assert Path(rag.search(question, settings, k=1)[0].source).name == name
    assert_index_consistent(settings)


def test_a_file_that_disappears_during_ingest_is_reported(tmp_path, home, monkeypatch):
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "stays.md").write_text("# Stays\n\nThis one stays.")
    vanishing = folder / "vanishes.md"
    vanishing.write_text("# Gone\n\nDeleted after it was found.")
    from ingest import sync

    real_discover = sync.discover

    def discover_then_delete(*args, **kwargs):
        found = real_discover(*args, **kwargs)
        vanishing.unlink()  # between discovery and reading, as a sync client might do
        return found

    monkeypatch.setattr(sync, "discover", discover_then_delete)
    report = rag.ingest([folder], make_settings(home))
    assert [Path(p).name for p, _ in report.failed] == ["vanishes.md"]
    assert "cannot read" in report.failed[0][1]
    assert [Path(p).name for p in report.added] == ["stays.md"]


def test_an_unreadable_file_is_reported_and_the_rest_ingested(tmp_path, home):
    """A real permission failure: the ingest runs without root's power to read any file."""
    import json
    import subprocess

    from tests.conftest import installed_command

    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "open.md").write_text("# Open\n\nAnyone may read this note.")
    locked = folder / "locked.md"
    locked.write_text("# Locked\n\nNobody may read this note.")
    locked.chmod(0)
    without_dac = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]
    result = subprocess.run(
        [*without_dac, installed_command("rag"), "ingest", str(folder), "--json"],
        env={**os.environ, "RAG_HOME": str(home)}, capture_output=True, text=True,
    )
    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["failed"] == [{"path": str(locked), "reason": "cannot read: Permission denied"}]
    assert [Path(p).name for p in report["added"]] == ["open.md"]


def test_a_file_that_changes_during_ingest_is_indexed_as_it_was_read(tmp_path, home, monkeypatch):
    """Its content is read once: the chunks and the recorded hash describe the same version."""
    import hashlib

    from ingest import sync
    from ingest.index import Index

    folder = tmp_path / "notes"
    folder.mkdir()
    note = folder / "draft.md"
    note.write_text("# Draft\n\nThe launch is on Monday.")
    real_discover = sync.discover

    def discover_then_edit(*args, **kwargs):
        found = real_discover(*args, **kwargs)
        note.write_text("# Draft\n\nThe launch moved to Thursday, the ninth.")  # after its stat was taken
        return found

    monkeypatch.setattr(sync, "discover", discover_then_edit)
    settings = make_settings(home)
    first = rag.ingest([folder], settings)
    assert first.added == [str(note)] and first.ok
    assert "Thursday" in rag.search("when is the launch", settings, k=1)[0].text
    assert Index(settings).sources()[str(note)].sha256 == hashlib.sha256(note.read_bytes()).hexdigest()

    monkeypatch.setattr(sync, "discover", real_discover)
    second = rag.ingest([folder], settings)  # the newer mtime makes it re-hash: same content, nothing to do
    assert (second.unchanged, second.updated, second.chunks_added) == (1, [], 0)
    assert_index_consistent(settings)
