"""OCR of scanned PDF pages and images: pages drawn here with Pillow's own font (no system font
needed), saved as a scanner saves them (an image and no text layer), ingested with the real
pipeline and found by search at their page."""

from __future__ import annotations

import io
import os
import subprocess
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rag
from ingest.loaders import load_image, load_pdf
from ingest.loaders.ocr import pages_label, paragraphs
from rag.cli import app
from rag.errors import LoadError, NotADocument
from tests.conftest import installed_command, make_settings
from tests.helpers import scanned_page, scanned_pdf

runner = CliRunner()

BOILER = scanned_page(
    "Boiler room inspection",
    "The boiler was descaled in March and the flue gas readings were normal on every burner.",
)
SPARES = scanned_page(
    "Spare parts",
    "The spare impeller for pump three is kept in cabinet twelve of the east store, beside the gaskets.",
)


def test_a_scanned_pdf_is_read_by_ocr_and_cited_by_its_page(tmp_path, home):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "inspection.pdf").write_bytes(scanned_pdf(BOILER, SPARES))
    settings = make_settings(home)
    report = rag.ingest([folder], settings)
    assert report.added == [str(folder / "inspection.pdf")] and not report.failed
    assert report.ocr == [(str(folder / "inspection.pdf"), "pages 1-2")]
    [hit] = rag.search("Where is the spare impeller for pump three kept?", settings, k=1)
    assert (Path(hit.source).name, hit.location["page"]) == ("inspection.pdf", 2)
    assert "cabinet twelve of the east store" in hit.text


def test_images_are_read_by_ocr_one_page_each_and_a_tiff_a_page_a_frame(tmp_path, home):
    folder = tmp_path / "pictures"
    folder.mkdir()
    scanned_page("Hardware store receipt", "Two brass valves and one pressure gauge, paid by card.").save(
        folder / "receipt.png"
    )
    scanned_page("Sprint planning", "The firmware release for the logger moves to the second week of June.").convert(
        "RGB"
    ).save(folder / "whiteboard.jpg", quality=90)
    fax_cover = scanned_page("Fax cover sheet", "Two pages follow.")
    fax = [page.convert("1") for page in (fax_cover, BOILER)]  # bilevel, as a fax machine scans
    fax[0].save(folder / "fax.tiff", save_all=True, append_images=fax[1:], compression="group4")
    mail = EmailMessage()
    mail["Subject"], mail["From"] = "Stores", "stores@example.org"
    mail.set_content("The list of spares is attached.")
    png = io.BytesIO()
    SPARES.save(png, "PNG")
    mail.add_attachment(png.getvalue(), maintype="image", subtype="png", filename="spares.png")
    (folder / "stores.eml").write_bytes(bytes(mail))
    settings = make_settings(home)
    report = rag.ingest([folder], settings)
    assert sorted(Path(path).name for path in report.added) == ["fax.tiff", "receipt.png", "stores.eml", "whiteboard.jpg"]
    assert {Path(path).name: pages for path, pages in report.ocr} == {
        "fax.tiff": "pages 1-2", "receipt.png": "page 1", "stores.eml": "attachment spares.png, page 1",
        "whiteboard.jpg": "page 1",
    }
    for question, name, location in [
        ("How were the brass valves and the pressure gauge paid?", "receipt.png", {"page": 1}),
        ("When is the firmware release for the logger?", "whiteboard.jpg", {"page": 1}),
        ("When was the boiler descaled?", "fax.tiff", {"page": 2}),
        ("Where is the spare impeller kept?", "stores.eml", {"attachment": "spares.png", "page": 1}),
    ]:
        [hit] = rag.search(question, settings, k=1)
        assert Path(hit.source).name == name and location.items() <= hit.location.items(), (question, hit.location)


def mixed_pdf() -> bytes:
    """A typed page, then a scanned one (an image over the whole page), as a scan appended to a report makes."""
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text="Typed report: the pressure relief valve on boiler two was replaced in April.")
    pdf.add_page()
    pdf.image(SPARES, x=0, y=0, w=pdf.w, h=pdf.h)
    return bytes(pdf.output())


def test_a_pdf_mixing_a_typed_and_a_scanned_page_has_only_the_scanned_one_ocrd(tmp_path, home):
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "mixed.pdf").write_bytes(mixed_pdf())
    result = runner.invoke(app, ["ingest", "-v", str(folder)], env={"RAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [  # -v names the pages OCR read, and how the text was embedded
        f"OCR     {folder / 'mixed.pdf'}: page 2",
        "a new collection: its embedding model is sentence-transformers/all-MiniLM-L6-v2 (0% of the words read are Chinese, Japanese or Korean)",
        "embedded with float32-onnx (a query or a small ingest)"
    ]
    assert result.stdout.startswith("Synced: 1 added")
    typed, scanned = load_pdf(mixed_pdf())
    assert typed.metadata == {"format": "text", "page": 1}
    assert scanned.metadata == {"format": "text", "page": 2, "ocr": True}
    settings = make_settings(home)
    for question, page in [("Which valve was replaced on boiler two?", 1), ("Where is the spare impeller kept?", 2)]:
        [hit] = rag.search(question, settings, k=1)
        assert hit.location["page"] == page, question


def test_a_page_or_an_image_without_text_even_for_ocr_is_refused_with_its_reason():
    from fpdf import FPDF
    from PIL import Image

    pdf = FPDF()
    pdf.add_page()
    pdf.rect(20, 20, 100, 60)
    with pytest.raises(LoadError, match="^PDF has no text layer, and OCR found no text on its page$"):
        load_pdf(bytes(pdf.output()))
    blank = io.BytesIO()
    Image.new("RGB", (800, 600), "lightblue").save(blank, "PNG")
    with pytest.raises(NotADocument, match="^no text found in the image by OCR$"):  # skipped, not failed
        load_image(blank.getvalue())


# Stands in for an install without the ocr extra (a sitecustomize blocking the imports): importing
# a module whose sys.modules entry is None fails with ModuleNotFoundError, as for a missing package.
WITHOUT_OCR_EXTRA = """import sys
sys.modules["rapidocr_onnxruntime"] = None
sys.modules["pypdfium2"] = None
"""


def test_without_the_ocr_extra_each_file_says_how_to_install_it(tmp_path, home):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "inspection.pdf").write_bytes(scanned_pdf(BOILER))
    (folder / "mixed.pdf").write_bytes(mixed_pdf())
    SPARES.save(folder / "spares.png")
    blocker = tmp_path / "without-ocr-extra"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(WITHOUT_OCR_EXTRA)
    env = {**os.environ, "RAG_HOME": str(home), "PYTHONPATH": str(blocker)}
    result = subprocess.run(
        [installed_command("rag"), "ingest", "-v", str(folder)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 1  # the scanned PDF failed: it has no text to index
    assert result.stderr.splitlines() == [
        f"skipped {folder / 'spares.png'}: image not read: OCR is not installed: pip install 'rag[ocr]'",
        "a new collection: its embedding model is sentence-transformers/all-MiniLM-L6-v2 (0% of the words read are Chinese, Japanese or Korean)",
        "embedded with float32-onnx (a query or a small ingest)",
        f"failed  {folder / 'inspection.pdf'}: PDF has no text layer (scanned?), and OCR is not installed: "
        "pip install 'rag[ocr]'",
        f"Warning: 1 PDF file with pages that have no text layer, not read without OCR ({folder / 'mixed.pdf'}: "
        "page 2); pip install 'rag[ocr]' reads them.",
    ]
    assert result.stdout.startswith("Synced: 1 added, 0 updated, 0 removed, 0 unchanged, 1 failed, 1 skipped")


@pytest.mark.fast
def test_ocr_boxes_are_read_in_lines_and_paragraphs():
    def box(left, top, right, bottom, text):
        return [[[left, top], [right, top], [right, bottom], [left, bottom]], text, 0.99]

    results = [  # as RapidOCR returns them: in no dependable order
        box(100, 220, 500, 260, "the inlet gauge was"),
        box(100, 100, 700, 160, "Pump log"),  # a title: taller text starts the next paragraph
        box(520, 222, 700, 258, "recali-"),  # on the line of the box left of it
        box(100, 270, 700, 310, "brated on Monday."),
        box(100, 170, 900, 210, "After the flood"),
        box(100, 400, 800, 440, "The next check is due in May."),  # after a blank line
        box(170, 502, 260, 538, "钥匙"),
        box(100, 500, 160, 540, "泵房"),
    ]
    assert paragraphs(results).split("\n\n") == [
        "Pump log",
        "After the flood the inlet gauge was recalibrated on Monday.",
        "The next check is due in May.",
        "泵房钥匙",
    ]


@pytest.mark.fast
def test_ocr_pages_are_labelled_as_runs_and_by_attachment():
    assert pages_label([{"page": n} for n in (1, 2, 3, 5, 7, 8)]) == "pages 1-3, 5, 7-8"
    assert pages_label([{"page": 2}]) == "page 2"
    assert pages_label(
        [{"message": 1, "attachment": "scan.pdf", "page": 1}, {"message": 2, "attachment": "a.png", "page": 1}]
    ) == "message 1, attachment scan.pdf, page 1; message 2, attachment a.png, page 1"
