"""Every format beyond Markdown, text, PDF, HTML and .docx: each file is built here with the library
people make it with, then loaded and chunked (tests/integration/test_formats.py ingests and searches
them, the hit's location checked as a citation shows it)."""

from __future__ import annotations

import base64
import csv
import io
import json
import mailbox
from email.message import EmailMessage
from pathlib import Path

import pytest

from ingest.chunking.chunker import Chunker
from ingest.discover import discover
from ingest.embedding import LocalEmbeddings
from ingest.loaders import load_csv, load_notebook, loader_for
from rag.errors import ConfigError, LoadError
from rag.retrieval import chunk_body, location_label, location_of
from rag.settings import ChunkingSettings, load_settings
from tests.helpers import REALDOCS, requires_realdocs

PNG_PIXEL = base64.b64encode(bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")).decode()


@pytest.fixture(scope="module")
def chunker(tmp_path_factory):
    home = tmp_path_factory.mktemp("formats-home")
    settings = load_settings(environ={}, cwd=home, home=home)
    return Chunker(LocalEmbeddings(settings.embedding, settings.cache_path).token_counter, ChunkingSettings())


def label(chunk) -> str:
    return location_label(location_of(chunk.metadata))


def notebook_bytes() -> bytes:
    import nbformat
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

    notebook = new_notebook(metadata={"language_info": {"name": "python"}})
    notebook.cells = [
        new_markdown_cell("# Pump maintenance\n\nThe intake pump is serviced every spring."),
        new_code_cell(
            "pressure = read_gauge('intake')\nprint(pressure)",
            outputs=[new_output("stream", name="stdout", text="Intake pressure: 4.2 bar\n")],
        ),
        new_code_cell(
            "plot(pressure_history)",
            outputs=[
                new_output("display_data", data={"image/png": PNG_PIXEL, "text/plain": "<Figure size 640x480>"}),
                new_output("stream", name="stdout", text="row\n" * 20_000),  # a huge dump
            ],
        ),
        new_code_cell(
            "valve.open()",
            outputs=[
                new_output("error", ename="ValveStuck", evalue="the bypass valve is seized", traceback=["\x1b[31m..."])
            ],
        ),
        new_markdown_cell("## Spare parts\n\nThe spare impeller is kept in cabinet 12."),
    ]
    return nbformat.writes(notebook).encode()


def test_a_notebook_keeps_cells_in_order_with_short_outputs_located_by_cell(chunker):
    [document] = load_notebook(notebook_bytes())
    text = document.page_content
    assert text.index("# Pump maintenance") < text.index("Intake pressure: 4.2 bar") < text.index("ValveStuck")
    assert "<Figure size 640x480>" in text and PNG_PIXEL not in text  # the image's text stands in for it
    assert "row\nrow" not in text, "a huge output is dropped"
    assert "the bypass valve is seized" in text and "\x1b" not in text
    chunks = chunker.split([document])
    pressure = next(chunk for chunk in chunks if "4.2 bar" in chunk.text)
    assert pressure.metadata["cell"] <= 2 <= pressure.metadata["end_cell"]  # small cells join their neighbours
    spare = next(c for c in chunks if "cabinet 12" in c.text)
    assert label(spare) == "cell 5, § Pump maintenance > Spare parts"
    assert "start_line" not in spare.metadata  # the rendered text is not the file's lines


def test_a_long_output_is_cut_to_its_opening_lines():
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    notebook = new_notebook()
    lines = "".join(f"epoch {n}: loss 0.{n:02d}\n" for n in range(50))
    notebook.cells = [new_code_cell("train()", outputs=[new_output("stream", name="stdout", text=lines)])]
    [document] = load_notebook(nbformat.writes(notebook).encode())
    assert "epoch 9:" in document.page_content and "epoch 10:" not in document.page_content
    assert "…" in document.page_content


def test_a_code_fence_a_markdown_cell_leaves_open_ends_with_the_cell(chunker):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook

    notebook = new_notebook()
    notebook.cells = [
        new_markdown_cell("# Setup\n\nInstall it with:\n\n```bash\npip install pumpkit"),
        new_markdown_cell("## Wiring\n\nThe red wire goes to terminal 4 of the relay board."),
    ]
    chunks = chunker.split(load_notebook(nbformat.writes(notebook).encode()))
    wiring = next(chunk for chunk in chunks if "red wire" in chunk.text)
    assert label(wiring) == "cell 2, § Setup > Wiring"


def test_a_file_that_is_no_notebook_is_refused_with_its_reason():
    with pytest.raises(LoadError, match="unreadable notebook"):
        load_notebook(b"{ not json")


@requires_realdocs
def test_real_notebooks_chunk_by_cell(chunker):
    notebooks = sorted((REALDOCS / "chroma-notebooks").glob("*.ipynb"))
    assert len(notebooks) == 6
    for path in notebooks:
        chunks = chunker.split(load_notebook(path.read_bytes()))
        assert chunks, path
        assert all(chunk.metadata["cell"] <= chunk.metadata["end_cell"] for chunk in chunks), path
        cells = [chunk.metadata["cell"] for chunk in chunks]
        assert cells == sorted(cells), path
        # The citation is right: a chunk's longest line is in the cells it names.
        raw = json.loads(path.read_text())["cells"]
        for chunk in chunks:
            cited = raw[chunk.metadata["cell"] - 1 : chunk.metadata["end_cell"]]
            text = json.dumps(cited, ensure_ascii=False)
            longest = max(chunk_body(chunk.text, chunk.metadata).split("\n"), key=len).strip()
            assert json.dumps(longest, ensure_ascii=False)[1:-1] in text, (path.name, chunk.metadata, longest)


def readings_csv(rows: int, delimiter: str = ",") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    writer.writerow(["station", "city", "reading", "note"])
    for number in range(1, rows + 1):
        writer.writerow([f"S{number:03d}", f"Town {number}", f"{number * 1.5:.1f}", "calibrated, checked"])
    return out.getvalue().encode()


def test_every_chunk_of_a_table_repeats_its_header_and_cites_its_rows(chunker):
    chunks = chunker.split(load_csv(readings_csv(300)))
    assert len(chunks) > 3
    header = "| station | city | reading | note |"
    assert all(chunk.text.startswith(header + "\n| --- |") for chunk in chunks)
    # The rows are those of the file (the header is row 1), each in one chunk, in order.
    assert chunks[0].metadata["row"] == 2 and chunks[-1].metadata["end_row"] == 301
    for before, after in zip(chunks, chunks[1:]):
        assert after.metadata["row"] == before.metadata["end_row"] + 1
    for chunk in chunks:
        first, last = chunk.metadata["row"], chunk.metadata["end_row"]
        assert f"| S{first - 1:03d} |" in chunk.text and f"| S{last - 1:03d} |" in chunk.text
        assert label(chunk) == f"rows {first}-{last}"


def test_a_semicolon_csv_and_a_tsv_are_read_as_tables():
    for name, data in [("eu.csv", readings_csv(3, ";")), ("tabs.tsv", readings_csv(3, "\t"))]:
        [document] = loader_for(Path(name))(data)
        assert document.page_content.split("\n")[2] == "| S001 | Town 1 | 1.5 | calibrated, checked |", name


def workbook_bytes() -> bytes:
    import datetime

    import openpyxl

    workbook = openpyxl.Workbook()
    stock = workbook.active
    stock.title = "Stock"
    stock.append(["part", "shelf", "count"])
    stock.append(["impeller", "B4", 3])
    stock.append(["gasket | large", "C1", 40])
    orders = workbook.create_sheet("Orders")
    orders.append(["order", "supplier", "due"])
    for number in range(1, 6):
        orders.append([f"PO-{number}", "Nordic Pumps", datetime.datetime(2025, 3, number)])
    orders.append([])
    orders.append(["PO-9", "Valvecraft Ltd", datetime.datetime(2025, 4, 1)])
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def test_a_workbook_gives_each_sheet_under_its_name_with_its_rows(chunker):
    chunks = chunker.split(loader_for(Path("stock.xlsx"))(workbook_bytes()))
    by_sheet = {chunk.metadata["sheet"]: chunk for chunk in chunks}
    assert set(by_sheet) == {"Stock", "Orders"}
    assert label(by_sheet["Stock"]) == "sheet Stock, rows 2-3, § Stock"
    assert "| gasket \\| large | C1 | 40 |" in by_sheet["Stock"].text
    # A blank row is left out; the rows keep their numbers in the sheet.
    assert label(by_sheet["Orders"]) == "sheet Orders, rows 2-8, § Orders"
    assert "| PO-1 | Nordic Pumps | 2025-03-01 |" in by_sheet["Orders"].text


def deck_bytes() -> bytes:
    import pptx

    deck = pptx.Presentation()
    for title, bullets, notes in [
        ("Quarterly review", ["Revenue grew 12%"], ""),
        ("Pump fleet", ["Forty pumps in service", "Two awaiting parts"], "Mention the seized bypass valve at Harbour Road"),
    ]:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        body = slide.placeholders[1].text_frame
        body.text = bullets[0]
        for bullet in bullets[1:]:
            body.add_paragraph().text = bullet
        if notes:
            slide.notes_slide.notes_text_frame.text = notes
    out = io.BytesIO()
    deck.save(out)
    return out.getvalue()


def test_a_deck_is_located_by_slide_and_title_with_its_speaker_notes(chunker):
    documents = loader_for(Path("deck.pptx"))(deck_bytes())
    assert [document.metadata["slide"] for document in documents] == [1, 2]
    assert documents[1].page_content.startswith("# Pump fleet\n\nForty pumps in service\nTwo awaiting parts")
    chunks = chunker.split(documents)
    notes = next(chunk for chunk in chunks if "Harbour Road" in chunk.text)
    assert label(notes) == "slide 2, § Pump fleet > Notes"


def epub_bytes(tmp_path: Path) -> bytes:
    from ebooklib import epub

    book = epub.EpubBook()
    book.set_identifier("pump-handbook")
    book.set_title("The Pump Handbook")
    book.set_language("en")
    first = epub.EpubHtml(title="Installing", file_name="install.xhtml", lang="en")
    first.content = "<html><body><p>Bolt the pump to a level concrete plinth before priming it.</p></body></html>"
    second = epub.EpubHtml(title="Repairs", file_name="repairs.xhtml", lang="en")
    second.content = (
        "<html><body><h1>Repairs</h1><h2>Seals</h2>"
        "<p>A leaking shaft seal is replaced, never tightened.</p></body></html>"
    )
    for chapter in (first, second):
        book.add_item(chapter)
    book.toc = [epub.Link("install.xhtml", "Installing", "install"), epub.Link("repairs.xhtml", "Repairs", "repairs")]
    book.add_item(epub.EpubNcx())
    book.add_item(epub.EpubNav())
    book.spine = ["nav", first, second]
    path = tmp_path / "handbook.epub"
    epub.write_epub(str(path), book)
    return path.read_bytes()


def test_an_ebook_has_its_chapters_as_headings(chunker, tmp_path):
    chunks = chunker.split(loader_for(Path("book.epub"))(epub_bytes(tmp_path)))
    plinth = next(chunk for chunk in chunks if "plinth" in chunk.text)
    seal = next(chunk for chunk in chunks if "shaft seal" in chunk.text)
    assert label(plinth) == "§ Installing"
    assert label(seal) == "§ Repairs > Seals"


def odt_bytes() -> bytes:
    from odf.opendocument import OpenDocumentText
    from odf.text import H, List, ListItem, P

    document = OpenDocumentText()
    document.text.addElement(H(outlinelevel=1, text="Site visit"))
    document.text.addElement(P(text="The north well needs a new float switch."))
    document.text.addElement(H(outlinelevel=2, text="Follow-up"))
    items = List()
    for text in ("Order the float switch", "Book the electrician"):
        item = ListItem()
        item.addElement(P(text=text))
        items.addElement(item)
    document.text.addElement(items)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def test_an_odt_keeps_its_headings_and_lists(chunker):
    [document] = loader_for(Path("visit.odt"))(odt_bytes())
    assert document.page_content == (
        "# Site visit\n\nThe north well needs a new float switch.\n\n## Follow-up\n\n"
        "- Order the float switch\n- Book the electrician"
    )
    chunks = chunker.split([document])
    assert label(next(chunk for chunk in chunks if "electrician" in chunk.text)) == "§ Site visit > Follow-up"


RTF = rb"""{\rtf1\ansi\deff0{\fonttbl{\f0 Times New Roman;}}
{\b Boiler log}\par
\par
The boiler was descaled on 3 March; the next service is due in September.\par
Caf\'e9 boiler: checked.\par
}"""


def test_rtf_is_read_as_text():
    [document] = loader_for(Path("log.rtf"))(RTF)
    assert "The boiler was descaled on 3 March" in document.page_content
    assert "Café boiler: checked." in document.page_content
    assert "fonttbl" not in document.page_content and "Times New Roman" not in document.page_content
    with pytest.raises(LoadError, match="not an RTF document"):
        loader_for(Path("fake.rtf"))(b"just text")


def test_xhtml_is_read_as_html(chunker):
    page = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<html xmlns="http://www.w3.org/1999/xhtml"><head><title>Valves</title>'
        b"</head><body><h1>Valves</h1><p>Gate valves are exercised twice a year.</p></body></html>"
    )
    chunks = chunker.split(loader_for(Path("valves.xhtml"))(page))
    assert [chunk.text for chunk in chunks] == ["Valves\n\nGate valves are exercised twice a year."]


def mail_bytes() -> bytes:
    message = EmailMessage()
    message["Subject"] = "Harbour Road pump"
    message["From"] = "Ana Lima <ana@example.org>"
    message["Date"] = "Tue, 04 Mar 2025 09:15:00 +0000"
    message.set_content("Hi,\n\nThe Harbour Road pump trips its breaker every night at 2 am.\n\nAna\n")
    message.add_attachment(
        "part,count\nbreaker,2\nrelay,5\n".encode(), maintype="text", subtype="csv", filename="parts.csv"
    )
    message.add_attachment(b"\x89PNG...", maintype="image", subtype="png", filename="photo.png")
    return bytes(message)


def test_a_mail_is_headed_by_subject_sender_and_date_and_its_attachments_are_read(chunker):
    chunks = chunker.split(loader_for(Path("mail.eml"))(mail_bytes()))
    body = next(chunk for chunk in chunks if "breaker every night" in chunk.text)
    assert body.metadata["heading"] == (
        "Harbour Road pump (from Ana Lima <ana@example.org>, on Tue, 04 Mar 2025 09:15:00 +0000)"
    )
    assert body.metadata["subject"] == "Harbour Road pump" and body.metadata["sender"] == "Ana Lima <ana@example.org>"
    attachment = next(chunk for chunk in chunks if "relay" in chunk.text)
    assert label(attachment) == "attachment parts.csv, rows 2-3"
    assert attachment.metadata["subject"] == "Harbour Road pump"
    assert not any("PNG" in chunk.text for chunk in chunks)
    assert "Attachment photo.png not indexed: unreadable image" in body.text  # said, not silently dropped


def test_a_mailbox_locates_each_message_by_its_number(chunker, tmp_path):
    box = mailbox.mbox(tmp_path / "inbox.mbox")
    for subject, text in [("Rota", "Sam covers the weekend shift."), ("Keys", "The spare van key is in the safe.")]:
        message = EmailMessage()
        message["Subject"], message["From"] = subject, "office@example.org"
        message.set_content(text + "\nFrom now on, sign the key book.\n")  # a body line mbox must escape
        box.add(message)
    box.flush()
    chunks = chunker.split(loader_for(Path("inbox.mbox"))((tmp_path / "inbox.mbox").read_bytes()))
    keys = next(chunk for chunk in chunks if "van key" in chunk.text)
    assert keys.metadata["message"] == 2 and label(keys).startswith("message 2, § Keys (from office@example.org)")
    assert len(chunks) == 2


@pytest.mark.parametrize(
    "name", ["config.json", "site.yaml", "pyproject.toml", "feed.xml", "server.log", "paper.tex", "todo.org",
             "guide.adoc", "README", "AUTHORS"],
)
def test_text_formats_and_files_without_an_extension_are_read_as_text(name):
    documents = loader_for(Path(name))(b"The pump room key hangs by the door.\n")
    assert "The pump room key" in documents[0].page_content


def test_binary_content_without_an_extension_is_refused_with_its_reason():
    with pytest.raises(LoadError, match="binary content, not text .*ragignore"):
        loader_for(Path("pump-controller"))(b"\x7fELF\x02\x01\x01\x00" + bytes(64))


def test_the_loaders_setting_maps_a_suffix_to_a_loader(tmp_path):
    settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path, ingest={"loaders": {".Notes": "markdown"}})
    assert settings.ingest.loaders == {".notes": "markdown"}
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "pump.notes").write_text("# Pump\n\nPrime it first.")
    (tmp_path / "docs" / "photo.bin").write_bytes(b"\x00")
    found = discover([tmp_path / "docs"], settings.ingest)
    assert [Path(candidate.path).name for candidate in found.candidates] == ["pump.notes"]
    assert dict(found.skipped)[str(tmp_path / "docs" / "photo.bin")] == "unsupported file type .bin"
    assert loader_for(Path("pump.notes"), settings.ingest.loaders)(b"# Pump\n")[0].metadata["format"] == "markdown"


@pytest.mark.parametrize(
    ("loaders", "problem"),
    [({".notes": "markdwn"}, "unknown loader 'markdwn' for '.notes'; use one of: markdown, mdx, text"),
     ({"notes": "markdown"}, "'notes' is no file suffix; write one suffix with its dot"),
     ({".tar.gz": "text"}, "'.tar.gz' is no file suffix")],
)
def test_a_wrong_loaders_setting_is_refused_naming_the_choices(tmp_path, loaders, problem):
    with pytest.raises(ConfigError, match=problem):
        load_settings(environ={}, cwd=tmp_path, home=tmp_path, ingest={"loaders": loaders})


def test_an_html_mail_heads_its_own_headings_and_a_pdf_attachment_keeps_its_pages(chunker):
    from fpdf import FPDF

    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.cell(text="Invoice 4411: two impellers, 380 EUR.")
    message = EmailMessage()
    message["Subject"] = "=?utf-8?q?Rechnung_f=C3=BCr_M=C3=A4rz?="  # encoded as mail clients send it
    message["From"] = "billing@pumps.example"
    message.set_content("<html><body><h2>Your invoice</h2><p>The invoice is attached.</p></body></html>", subtype="html")
    message.add_attachment(bytes(pdf.output()), maintype="application", subtype="pdf", filename="invoice.pdf")
    message.add_attachment(b"\x00\x01", maintype="application", subtype="octet-stream", filename="notes.txt")
    chunks = chunker.split(loader_for(Path("invoice.eml"))(bytes(message)))
    assert label(chunks[0]) == "§ Rechnung für März (from billing@pumps.example) > Your invoice"
    assert "Attachment notes.txt not indexed: binary content" in chunks[0].text  # said, not silently dropped
    assert label(chunks[1]) == "attachment invoice.pdf, page 1" and "Invoice 4411" in chunks[1].text


def test_tables_without_values_are_refused_with_their_reason():
    import openpyxl

    with pytest.raises(LoadError, match="table has no cells"):
        load_csv(b",,,\n,,\n")
    out = io.BytesIO()
    openpyxl.Workbook().save(out)
    with pytest.raises(LoadError, match="workbook has no cell values"):
        loader_for(Path("empty.xlsx"))(out.getvalue())
    with pytest.raises(LoadError, match="unreadable .xlsx"):
        loader_for(Path("fake.xlsx"))(b"PK not a zip")

