"""Turn a file's bytes into LangChain `Document`s, one loader per file type.

Every loader takes the bytes already read (so the content hash and the text always describe the
same version of the file) and raises `LoadError` with a reason a person can act on.
Structured formats (HTML, .docx, notebooks, slides, e-books, mail) are rendered as Markdown so
their headings chunk like Markdown, and tables (.csv, .tsv, .xlsx) as Markdown tables, which the
chunker splits between rows, repeating the header. Each document carries what locates it in the
file (page, slide, sheet, message, attachment; cells and rows line by line, see
Chunker._units). Scanned PDF pages and images are read by OCR (ocr.py in this package). A format's
library is imported when a file of it is read.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime
import email
import email.header
import email.policy
import io
import logging
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from langchain_core.documents import Document

from ingest.errors import LoadError, NotADocument
from ingest.scripts import rare_letter_share

Loader = Callable[[bytes], list[Document]]

# The langchain_text_splitters.Language value for each source-code suffix.
CODE_LANGUAGES = {
    ".py": "python", ".pyi": "python", ".js": "js", ".mjs": "js", ".jsx": "js", ".ts": "ts",
    ".tsx": "ts", ".go": "go", ".rs": "rust", ".java": "java", ".kt": "kotlin", ".scala": "scala",
    ".swift": "swift", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp", ".hpp": "cpp",
    ".cs": "csharp", ".rb": "ruby", ".php": "php", ".lua": "lua", ".pl": "perl", ".r": "r",
    ".hs": "haskell", ".ex": "elixir", ".exs": "elixir", ".proto": "proto", ".sol": "sol",
    ".ps1": "powershell", ".tex": "latex",
}
# Source-like text without a language-aware splitter of its own.
PLAIN_CODE_SUFFIXES = {".sh", ".bash", ".zsh", ".sql", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".css"}
# Data, logs and markup read as plain text (their lines cited).
PLAIN_TEXT_SUFFIXES = {".json", ".jsonl", ".ndjson", ".xml", ".log", ".org", ".adoc", ".asciidoc"}
# Pictures of text, read by OCR.
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
SNIFF_BYTES = 8192
PREFERRED_LEGACY_ENCODING = "cp1252"
# Korean, Japanese and Chinese legacy encodings, tried besides charset_normalizer's own pass, which
# takes text mixing their letters with Latin ones (a Korean page with code in it) for too chaotic
# to be text at its default threshold.
CJK_LEGACY_ENCODINGS = ["cp949", "cp932", "euc_jp", "gb18030", "big5"]
CJK_CHAOS_THRESHOLD = 0.8
# A reading whose CJK letters are more than this share rare ones (rare_letter_share) is the wrong one.
RARE_LETTER_SHARE = 0.02
# A .docx without a title is located by its opening words, this many characters at most.
DOCX_OPENING_CHARS = 60
BINARY_CONTENT = "binary content, not text"
# A notebook output is kept to its opening lines (a long one is mostly data), and dropped whole
# past this size, where even its opening is a dump rather than a result worth reading.
OUTPUT_KEPT_LINES = 10
OUTPUT_KEPT_CHARS = 1000
OUTPUT_DROPPED_CHARS = 20_000
_FENCE_LINE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Mail charset labels read as the supersets mail clients read them by (the WHATWG Encoding
# Standard's mapping): Outlook labels Korean mail in CP949 ks_c_5601-1987, and Chinese mail in GBK
# says gb2312; their strict codecs would lose every letter the superset adds.
MAIL_CHARSETS = {
    "ks_c_5601-1987": "cp949", "ks_c_5601-1989": "cp949", "euc-kr": "cp949", "korean": "cp949",
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030", "gb_2312-80": "gb18030",
    "shift_jis": "cp932", "x-sjis": "cp932", "sjis": "cp932", "windows-31j": "cp932",
    "big5": "cp950", "iso-8859-1": "cp1252", "latin1": "cp1252",
}
# Terminal colours in tracebacks and logs printed by a notebook.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def decode_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 text at byte {exc.start}") from exc
    else:
        if b"\x00" in data[:SNIFF_BYTES]:
            raise LoadError(BINARY_CONTENT)
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            text = _decode_other_encoding(data, exc)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("empty file, no text to index")
    return text


def _decode_other_encoding(data: bytes, utf8_error: UnicodeDecodeError) -> str:
    """Text in a legacy encoding (Latin-1, Windows-1251, Shift JIS ...), as charset_normalizer reads it."""
    from charset_normalizer import from_bytes

    readings = [*from_bytes(data), *from_bytes(data, cp_isolation=CJK_LEGACY_ENCODINGS, threshold=CJK_CHAOS_THRESHOLD)]
    # The bytes of one CJK encoding often decode cleanly in another, as letters nobody writes.
    best = min(readings, key=lambda reading: (rare_letter_share(str(reading)) > RARE_LETTER_SHARE, reading.chaos), default=None)
    # Western text decodes equally cleanly in several code pages, and on a short text
    # charset_normalizer's pick among them is arbitrary ("Smörgåsbord" comes out as Big5, French
    # as Windows-1250 with "č" for "è"). Windows-1252, the superset of Latin-1 most such files
    # were written in, wins whenever it reads the bytes as cleanly as the best guess.
    western = from_bytes(data, cp_isolation=[PREFERRED_LEGACY_ENCODING]).best()
    if western is not None and (best is None or western.chaos <= best.chaos):
        return str(western)
    if best is None:
        raise LoadError(
            f"not valid UTF-8 (byte {utf8_error.start}) and no other text encoding fits; convert it to UTF-8"
        ) from utf8_error
    return str(best)


def _text_document(data: bytes, **metadata: str) -> list[Document]:
    return [Document(page_content=decode_text(data), metadata={"has_lines": True, **metadata})]


def load_markdown(data: bytes) -> list[Document]:
    return _text_document(data, format="markdown")


def load_mdx(data: bytes) -> list[Document]:
    """MDX: Markdown with JSX components, which the chunker reduces to their text."""
    return _text_document(data, format="markdown", dialect="mdx")


def load_plain(data: bytes) -> list[Document]:
    return _text_document(data, format="text")


def load_rst(data: bytes) -> list[Document]:
    return _text_document(data, format="code", language="rst")


def code_loader(language: str | None) -> Loader:
    def load_code(data: bytes) -> list[Document]:
        if language is None:
            return _text_document(data, format="text")
        return _text_document(data, format="code", language=language)

    return load_code


def load_pdf(data: bytes) -> list[Document]:
    """A PDF, one document per page with text. A page without a text layer (a scan) is read by OCR,
    and marked so; without OCR installed, such pages are listed in `unread_pages` for the ingest to
    warn about, and a PDF with no text layer at all is refused with the install hint."""
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    from ingest.loaders.ocr import OcrUnavailable, read_pdf_pages

    # pypdf logs recoverable damage to stderr; an unrecoverable file raises and is reported once.
    logging.getLogger("pypdf").setLevel(logging.ERROR)

    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise LoadError("encrypted PDF; save a decrypted copy to index it")
        pages = [page.extract_text() or "" for page in reader.pages]
    except LoadError:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError) as exc:
        raise LoadError(f"unreadable PDF ({type(exc).__name__}: {exc})") from exc
    if not pages:
        raise LoadError("PDF has no pages")
    without_text = [number for number, text in enumerate(pages, start=1) if not text.strip()]
    scanned: dict[int, str] = {}
    unread: tuple[int, ...] = ()
    if without_text:
        try:
            scanned = read_pdf_pages(data, without_text)
        except OcrUnavailable as exc:
            if len(without_text) == len(pages):
                raise LoadError(f"PDF has no text layer (scanned?), and {exc}") from exc
            unread = tuple(without_text)
    documents = []
    for number, text in enumerate(pages, start=1):
        metadata: dict[str, Any] = {"format": "text", "page": number}
        if number in scanned:
            text, metadata["ocr"] = scanned[number], True
        if unread:
            metadata["unread_pages"] = unread
        if text.strip():
            documents.append(Document(page_content=text, metadata=metadata))
    if not documents:
        pages_said = "its page" if len(pages) == 1 else f"any of its {len(pages)} pages"
        raise LoadError(f"PDF has no text layer, and OCR found no text on {pages_said}")
    return documents


def load_image(data: bytes) -> list[Document]:
    """A picture of text (a scan, a photo of a page, a screenshot) read by OCR: one page, or one
    per frame of a multi-page TIFF. Without OCR installed, or with no text in it, it is skipped."""
    from ingest.loaders.ocr import OcrUnavailable, read_image

    try:
        frames = read_image(data)
    except OcrUnavailable as exc:
        raise NotADocument(f"image not read: {exc}") from exc
    documents = [
        Document(page_content=text, metadata={"format": "text", "page": number, "ocr": True})
        for number, text in enumerate(frames, start=1)
        if text.strip()
    ]
    if not documents:
        raise NotADocument("no text found in the image by OCR")
    return documents


_NOISE_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form", "aside", "button"]
# Landmarks that hold a site's furniture rather than the page's text.
_NOISE_ROLES = ["navigation", "banner", "contentinfo", "search", "menubar", "toolbar"]
_BLOCK_TAGS = ["p", "div", "li", "br", "pre", "blockquote", "section", "article", "dd", "dt", "tr", "table"]
# Texinfo and Sphinx pages open and close with a bar such as "Next: Types, Previous: Intro, Up: Top".
_NAVIGATION_BAR = re.compile(r"^\s*(Next|Previous|Prev|Up)\s*:.*\b(Next|Previous|Prev|Up)\s*:", re.S)
_NAVIGATION_BAR_MAX_CHARS = 300
# Stands in for a <pre> block while the page's lines are tidied (NUL is in no HTML text).
_CODE_PLACEHOLDER = "\x00code-block-"


def _fenced(text: str, info: str = "") -> str:
    """Text as a fenced code block, the fence longer than any run of backticks in it."""
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", text)), default=0))
    return f"{fence}{info}\n{text}\n{fence}"


def load_html(data: bytes) -> list[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_NOISE_TAGS + ["title", "head"]):
        tag.decompose()
    for tag in soup.find_all(role=_NOISE_ROLES):
        tag.decompose()
    for tag in soup.find_all(["div", "p", "table"]):
        if tag.decomposed:
            continue
        text = tag.get_text(" ", strip=True)
        if len(text) <= _NAVIGATION_BAR_MAX_CHARS and _NAVIGATION_BAR.match(text):
            tag.decompose()
    # Code keeps its lines and reads as code, so the chunker never takes a "# comment" for a heading.
    code_blocks: list[str] = []
    for block in soup.find_all("pre"):
        code_blocks.append(_fenced(block.get_text().strip("\n")))
        block.replace_with(f"\n\n{_CODE_PLACEHOLDER}{len(code_blocks) - 1}\n\n")
    for span in soup.find_all("code"):
        span.replace_with(f"`{span.get_text()}`")
    for heading in soup.find_all(re.compile(r"^h[1-6]$")):
        heading.replace_with(f"\n\n{'#' * int(heading.name[1])} {heading.get_text(' ', strip=True)}\n\n")
    for row in soup.find_all("tr"):
        cells = [cell.get_text(" ", strip=True) for cell in row.find_all(["td", "th"])]
        row.replace_with("\n" + " | ".join(cells) + "\n")
    for item in soup.find_all("li"):
        item.insert(0, "- ")
    for block in soup.find_all(_BLOCK_TAGS):
        block.append("\n")
    text = _tidy_lines(soup.get_text())
    text = re.sub(rf"^{_CODE_PLACEHOLDER}(\d+)$", lambda match: code_blocks[int(match.group(1))], text, flags=re.M)
    if not text:
        raise LoadError("HTML page has no text")
    return [Document(page_content=text, metadata={"format": "markdown", "title": title} if title else {"format": "markdown"})]


def load_docx(data: bytes) -> list[Document]:
    import docx
    from docx.opc.exceptions import PackageNotFoundError
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable .docx ({type(exc).__name__}: {exc})") from exc
    lines: list[str] = []
    for block in document.iter_inner_content():
        if isinstance(block, Table):
            lines.extend(" | ".join(cell.text.strip() for cell in row.cells) for row in block.rows)
            lines.append("")
            continue
        text = block.text.strip()
        if not text:
            continue
        style = block.style.name if block.style is not None else ""
        if level := _heading_level(style):
            lines.extend(["", f"{'#' * level} {text}", ""])
        elif style.startswith("List"):
            lines.append(f"- {text}")
        else:
            lines.extend([text, ""])
    text = _tidy_lines("\n".join(lines))
    if not text:
        raise LoadError(".docx document has no text")
    # Where a chunk before the first heading is: the document's title, or else how it opens.
    title = (document.core_properties.title or "").strip() or _opening_words(text)
    return [Document(page_content=text, metadata={"format": "markdown", "title": title})]


def _opening_words(text: str) -> str:
    first = text.split("\n", 1)[0].lstrip("#- ").strip()
    if len(first) <= DOCX_OPENING_CHARS:
        return first
    return first[:DOCX_OPENING_CHARS].rsplit(" ", 1)[0] + " …"


def _heading_level(style_name: str) -> int:
    if style_name == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style_name)
    return min(int(match.group(1)), 6) if match else 0


def _tidy_lines(text: str) -> str:
    """Strip each line and collapse runs of blank lines into one."""
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def load_untyped(data: bytes) -> list[Document]:
    """A file without an extension (README, AUTHORS, LICENSE): read as text when its content is text."""
    try:
        return load_plain(data)
    except LoadError as exc:
        if str(exc) != BINARY_CONTENT:
            raise
        raise NotADocument(
            f"{BINARY_CONTENT} (a file without an extension is read as text); ignore it in .ragignore"
        ) from exc


def load_notebook(data: bytes) -> list[Document]:
    """A Jupyter notebook: its Markdown cells as Markdown, code cells fenced, each followed by its
    text outputs (kept short); images and widgets are dropped. Every line is located by its cell."""
    import nbformat

    invalid: dict[str, Any] = {}
    try:
        # Older notebooks (v3) are upgraded; a schema violation is kept in `invalid` rather than logged.
        notebook = nbformat.reads(data.decode("utf-8-sig"), as_version=4, capture_validation_error=invalid)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:  # ValueError: not UTF-8, not JSON
        raise LoadError(f"unreadable notebook ({type(exc).__name__}: {exc})") from exc
    metadata = notebook.get("metadata", {})
    language = metadata.get("language_info", {}).get("name") or metadata.get("kernelspec", {}).get("language", "")
    lines: list[str] = []
    cell_of_line: list[int | None] = []
    for number, cell in enumerate(notebook.get("cells", []), start=1):
        source = cell.get("source", "").strip("\n")
        if cell.get("cell_type") == "markdown":
            parts = [_close_open_fence(source)] if source.strip() else []
        elif cell.get("cell_type") == "code":
            parts = [_fenced(source, language)] if source.strip() else []
            parts += [_fenced(text, "text") for text in _output_texts(cell)]
        else:  # raw cells hold conversion directives for nbconvert, not text
            continue
        if not parts:
            continue
        cell_lines = "\n\n".join(parts).split("\n")
        if lines:
            lines.append("")
            cell_of_line.append(None)
        lines.extend(cell_lines)
        cell_of_line.extend([number] * len(cell_lines))
    if not lines:
        raise LoadError("notebook has no text in its cells")
    metadata = {"format": "markdown", "line_units": ("cell", cell_of_line)}
    return [Document(page_content="\n".join(lines), metadata=metadata)]


def _close_open_fence(markdown: str) -> str:
    """Markdown with a code fence it leaves open closed: Jupyter renders each cell alone, and here an
    open fence would take every cell after it for code."""
    opener = ""
    for line in markdown.split("\n"):
        if match := _FENCE_LINE.match(line):
            run = match.group(1)
            if not opener:
                opener = run
            elif run[0] == opener[0] and len(run) >= len(opener) and not line.strip()[len(run):]:
                opener = ""
    return f"{markdown}\n{opener}" if opener else markdown


def _output_texts(cell: Mapping[str, Any]) -> Iterable[str]:
    """The text of a code cell's outputs worth reading: streams, plain-text results, errors (not their tracebacks)."""
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = output.get("text", "")
        elif kind in ("execute_result", "display_data"):
            text = output.get("data", {}).get("text/plain", "")
        elif kind == "error":
            text = f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
        else:
            continue
        text = _ANSI_ESCAPE.sub("", text if isinstance(text, str) else "".join(text))
        # A progress bar redraws its line with carriage returns: what was left on screen is the last draw.
        text = "\n".join(line.rsplit("\r", 1)[-1] for line in text.strip("\n").split("\n"))
        if not text.strip() or len(text) > OUTPUT_DROPPED_CHARS:
            continue
        kept = "\n".join(text.split("\n")[:OUTPUT_KEPT_LINES])[:OUTPUT_KEPT_CHARS]
        yield kept if kept == text else kept + "\n…"


def load_csv(data: bytes) -> list[Document]:
    text = decode_text(data)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:SNIFF_BYTES], delimiters=",;\t|")
    except csv.Error:  # one column, or too irregular to tell: the standard comma
        dialect = csv.excel
    return _delimited(text, dialect)


def load_tsv(data: bytes) -> list[Document]:
    return _delimited(decode_text(data), csv.excel_tab)


def _delimited(text: str, dialect: Any) -> list[Document]:
    try:
        rows = list(enumerate(csv.reader(io.StringIO(text), dialect), start=1))
    except csv.Error as exc:
        raise LoadError(f"unreadable table ({exc})") from exc
    if (table := _table_document(rows)) is None:
        raise LoadError("table has no cells")
    return [table]


def load_xlsx(data: bytes) -> list[Document]:
    """An Excel workbook: each worksheet a table headed by the sheet's name, located by sheet and rows."""
    import zipfile

    import openpyxl
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        # data_only: a formula cell reads as the value Excel last computed, not as its formula.
        workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable .xlsx ({type(exc).__name__}: {exc})") from exc
    documents = []
    try:
        for sheet in workbook.worksheets:
            rows = [
                (number, [_cell_text(value) for value in values])
                for number, values in enumerate(sheet.iter_rows(min_row=1, values_only=True), start=1)
            ]
            if (table := _table_document(rows, sheet=sheet.title, title=sheet.title)) is not None:
                documents.append(table)
    finally:
        workbook.close()
    if not documents:
        raise LoadError("workbook has no cell values")
    return documents


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime) and value.time() == datetime.time():
        return value.date().isoformat()
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # Excel stores every number as a float: 3, not 3.0
    return str(value)


def _table_document(rows: list[tuple[int, list[str]]], **metadata: Any) -> Document | None:
    """Numbered rows as a Markdown table under the first non-empty one, each line located by its row
    (None: every row is empty).

    The chunker splits a table between rows and repeats its header and separator in every piece.
    """
    rows = [(number, _trim_trailing_empty(cells)) for number, cells in rows]
    rows = [(number, cells) for number, cells in rows if cells]
    if not rows:
        return None
    (_, header), body = rows[0], rows[1:]
    width = max(len(cells) for _, cells in rows)
    lines = [_table_line(header, width), "|" + " --- |" * width]
    row_of_line: list[int | None] = [None, None]  # the header is in every piece; it is no row of one
    for number, cells in body:
        lines.append(_table_line(cells, width))
        row_of_line.append(number)
    metadata = {"format": "markdown", "line_units": ("row", row_of_line), **metadata}
    return Document(page_content="\n".join(lines), metadata=metadata)


def _trim_trailing_empty(cells: list[str]) -> list[str]:
    cells = [" ".join(cell.split()) for cell in cells]
    while cells and not cells[-1]:
        cells.pop()
    return cells


def _table_line(cells: list[str], width: int) -> str:
    padded = [cell.replace("|", "\\|") for cell in cells] + [""] * (width - len(cells))
    return "| " + " | ".join(padded) + " |"


def load_pptx(data: bytes) -> list[Document]:
    """A PowerPoint deck: one document per slide, under its title, with the speaker notes as a "Notes" section."""
    import pptx
    from pptx.exc import PackageNotFoundError

    try:
        deck = pptx.Presentation(io.BytesIO(data))
    except (PackageNotFoundError, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable .pptx ({type(exc).__name__}: {exc})") from exc
    documents = []
    for number, slide in enumerate(deck.slides, start=1):
        title_shape = slide.shapes.title
        title = _slide_text(title_shape.text_frame.text) if title_shape is not None else ""
        lines = [f"# {' '.join(title.split())}", ""] if title else []
        for shape in _shapes(slide.shapes):
            if title_shape is not None and shape.shape_id == title_shape.shape_id:
                continue
            if shape.has_text_frame:
                lines.extend(_slide_text(paragraph.text) for paragraph in shape.text_frame.paragraphs)
            elif getattr(shape, "has_table", False):
                lines.extend(" | ".join(_slide_text(cell.text) for cell in row.cells) for row in shape.table.rows)
            lines.append("")
        if slide.has_notes_slide and (notes := _slide_text(slide.notes_slide.notes_text_frame.text).strip()):
            lines.extend(["## Notes", "", notes])
        if text := _tidy_lines("\n".join(lines)):
            documents.append(Document(page_content=text, metadata={"format": "markdown", "slide": number}))
    if not documents:
        raise LoadError("presentation has no text on its slides")
    return documents


def _slide_text(text: str) -> str:
    return text.replace("\x0b", "\n")  # PowerPoint's line break inside a paragraph


def _shapes(shapes: Iterable[Any]) -> Iterable[Any]:
    """Shapes in reading order, those inside groups included."""
    for shape in shapes:
        if hasattr(shape, "shapes"):  # a group
            yield from _shapes(shape.shapes)
        else:
            yield shape


def load_epub(data: bytes) -> list[Document]:
    """An EPUB e-book: each chapter (spine document) rendered as HTML is, headed by its table-of-contents title."""
    import warnings
    import zipfile

    from ebooklib import ITEM_DOCUMENT, epub

    try:
        with warnings.catch_warnings():  # ebooklib warns about its own future defaults
            warnings.simplefilter("ignore")
            book = epub.read_epub(io.BytesIO(data), options={"ignore_ncx": True})
    except (epub.EpubException, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable .epub ({type(exc).__name__}: {exc})") from exc
    titles: dict[str, str] = {}
    for href, title in _toc_entries(book.toc):
        if href and title and title.strip():
            titles.setdefault(href.split("#", 1)[0], title.strip())  # a file's first entry names it
    documents = []
    for item_id, _linear in book.spine:
        item = book.get_item_with_id(item_id)
        if item is None or item.get_type() != ITEM_DOCUMENT:
            continue
        try:
            chapter = load_html(item.get_content())[0]
        except LoadError:  # a cover or a page holding only an image
            continue
        # The title heads what comes before the chapter's first heading (all of it, if it has none).
        if chapter_title := titles.get(item.get_name()):
            chapter.metadata["title"] = chapter_title
        documents.append(chapter)
    if not documents:
        raise LoadError(".epub has no text in its chapters")
    return documents


def _toc_entries(toc: Iterable[Any]) -> Iterable[tuple[str, str]]:
    """(chapter file, title) of every entry of an e-book's nested table of contents, in order."""
    for entry in toc:
        if isinstance(entry, tuple):  # (section, its entries)
            section, children = entry
            yield getattr(section, "href", "") or "", section.title
            yield from _toc_entries(children)
        else:
            yield entry.href or "", entry.title


def load_odt(data: bytes) -> list[Document]:
    """An OpenDocument text (LibreOffice Writer): headings, paragraphs, lists and tables as Markdown."""
    import zipfile

    from odf import dc, teletype
    from odf.namespaces import TABLENS, TEXTNS
    from odf.opendocument import load
    from odf.table import TableRow

    try:
        document = load(io.BytesIO(data))
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise LoadError(f"unreadable .odt ({type(exc).__name__}: {exc})") from exc
    lines: list[str] = []

    def render(element: Any, in_list: bool = False) -> None:
        for child in element.childNodes:
            if child.nodeType != child.ELEMENT_NODE:
                continue
            if child.qname == (TEXTNS, "h"):
                level = min(int(child.getAttribute("outlinelevel") or 1), 6)
                lines.extend(["", f"{'#' * level} {' '.join(teletype.extractText(child).split())}", ""])
            elif child.qname == (TEXTNS, "p"):
                text = teletype.extractText(child).strip()
                lines.extend([f"- {text}"] if in_list and text else [text, ""])
            elif child.qname == (TEXTNS, "list"):
                render(child, in_list=True)
                lines.append("")
            elif child.qname == (TABLENS, "table"):
                for row in child.getElementsByType(TableRow):
                    lines.append(" | ".join(teletype.extractText(cell).strip() for cell in row.childNodes))
                lines.append("")
            else:  # sections, list items, frames: their paragraphs in order
                render(child, in_list)

    render(document.text)
    text = _tidy_lines("\n".join(lines))
    if not text:
        raise LoadError(".odt document has no text")
    titles = document.meta.getElementsByType(dc.Title)
    title = (teletype.extractText(titles[0]).strip() if titles else "") or _opening_words(text)
    return [Document(page_content=text, metadata={"format": "markdown", "title": title})]


def load_rtf(data: bytes) -> list[Document]:
    from striprtf.striprtf import rtf_to_text

    text = decode_text(data)
    if not text.lstrip().startswith("{\\rtf"):
        raise LoadError("not an RTF document (it does not start with {\\rtf)")
    plain = _tidy_lines(rtf_to_text(text, errors="replace"))
    if not plain:
        raise LoadError("RTF document has no text")
    return [Document(page_content=plain, metadata={"format": "text"})]


# mboxo and mboxrd, as the mailbox module reads them: each message starts with a "From " line.
_MBOX_SEPARATOR = re.compile(rb"^From [^\n]*\n", re.M)


def load_eml(data: bytes) -> list[Document]:
    return _mail_documents(email.message_from_bytes(data, policy=email.policy.default), {})


def load_mbox(data: bytes) -> list[Document]:
    """A mailbox: its messages in order, each located by its number in the file."""
    messages = [part for part in _MBOX_SEPARATOR.split(data) if part.strip()]
    documents = []
    for number, raw in enumerate(messages, start=1):
        message = email.message_from_bytes(raw, policy=email.policy.default)
        documents.extend(_mail_documents(message, {"message": number}))
    if not documents:
        raise LoadError("mailbox has no messages with text")
    return documents


def _mail_documents(message: Any, where: dict[str, Any]) -> list[Document]:
    """A mail's body under a heading of its subject, sender and date, then each attachment of a
    supported type as documents of their own, located inside the mail."""
    headers = {"subject": "subject", "sender": "from", "date": "date"}
    fields = {key: " ".join(_mail_header(message, header).split()) for key, header in headers.items()}
    fields = {key: value for key, value in fields.items() if value}
    heading = fields.get("subject", "(no subject)")
    details = [f"{label} {fields[key]}" for key, label in (("sender", "from"), ("date", "on")) if key in fields]
    if details:
        heading += f" ({', '.join(details)})"
    metadata = {**where, **fields}
    attachments: list[tuple[str, Document]] = []
    unread = []  # said in the mail's text, so that a search for the file finds why it is missing
    for part in message.iter_attachments():
        name = part.get_filename() or ""
        # By its suffix only: an attachment without one is no README but a part nobody named.
        if not Path(name).suffix or (loader := loader_for(Path(name))) is None:
            continue
        try:
            attachments.extend((name, document) for document in loader(part.get_payload(decode=True) or b""))
        except LoadError as exc:
            unread.append(f"Attachment {name} not indexed: {exc}")
    documents = []
    body = message.get_body(preferencelist=("plain", "html"))
    html = body is not None and body.get_content_subtype() == "html"
    text = _mail_text(body).strip() if body is not None else ""
    if html:
        try:
            text = load_html(text.encode("utf-8"))[0].page_content
        except LoadError:
            text = ""
    if text := "\n\n".join(part for part in [text, *unread] if part):
        if html:  # Markdown, the mail's heading over the headings of its body
            documents.append(Document(page_content=f"# {heading}\n\n{text}", metadata={"format": "markdown", **metadata}))
        else:  # plain text, whose first line (a short one before a blank line) heads every chunk
            documents.append(Document(page_content=f"{heading}\n\n{text}", metadata={"format": "text", **metadata}))
    for name, document in attachments:
        document.metadata = {**metadata, "attachment": name, **document.metadata}
        documents.append(document)
    if not documents:
        raise LoadError("mail has no text and no attachment of a supported type")
    return documents


def _mail_text(part: Any) -> str:
    """A mail part's text: in the superset of the charset it is labelled with, or, unlabelled (or
    labelled with a charset nobody knows), read as a text file is (UTF-8, else the encoding detected)."""
    data = part.get_payload(decode=True) or b""
    if charset := _mail_charset(part.get_content_charset()):
        return _mail_decoded(data, charset).replace("\r\n", "\n").replace("\r", "\n")
    try:
        return decode_text(data)
    except LoadError:
        return ""


def _mail_decoded(data: bytes, codec: str) -> str:
    """`data` in `codec`; where it does not decode, ISO-2022-JP as JIS X 0213 (whose first plane has
    the NEC letters Japanese mail writes in it: ①, ㈱), and any other as the UTF-8 it may be."""
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        pass
    if codecs.lookup(codec).name == "iso2022_jp":
        with contextlib.suppress(UnicodeDecodeError):
            return data.replace(b"\x1b$B", b"\x1b$(Q").decode("iso2022_jp_2004")
    # Mislabelled: most often 8-bit UTF-8 said to be ASCII or Latin-1 (7-bit text is valid UTF-8 too).
    if not data.isascii():
        with contextlib.suppress(UnicodeDecodeError):
            return data.decode("utf-8")
    return data.decode(codec, errors="replace")


def _mail_header(message: Any, name: str) -> str:
    """A header's text; encoded words in a charset that had to be read by its superset are read again."""
    decoded = str(message.get(name, ""))
    raw = next((value for key, value in message.raw_items() if key.lower() == name), None)
    if "\ufffd" not in decoded or not isinstance(raw, str):
        return decoded
    return "".join(
        part if isinstance(part, str) else _mail_decoded(part, _mail_charset(charset) or "utf-8")
        for part, charset in email.header.decode_header(raw)
    )


def _mail_charset(label: str | None) -> str | None:
    """The codec a mail charset label is read with (MAIL_CHARSETS), None for no label or an unknown one."""
    if not label:
        return None
    codec = MAIL_CHARSETS.get(label.lower(), label.lower())
    try:
        codecs.lookup(codec)
    except LookupError:
        return None
    return codec


NAMED_LOADERS: dict[str, Loader] = {
    "markdown": load_markdown, "mdx": load_mdx, "text": load_plain, "rst": load_rst, "pdf": load_pdf,
    "html": load_html, "docx": load_docx, "notebook": load_notebook, "csv": load_csv, "tsv": load_tsv,
    "xlsx": load_xlsx, "pptx": load_pptx, "epub": load_epub, "odt": load_odt, "rtf": load_rtf,
    "eml": load_eml, "mbox": load_mbox, "image": load_image,
    # Source code by language, one loader each (a file renamed between two suffixes of one language
    # keeps its chunks).
    **{language: code_loader(language) for language in dict.fromkeys(CODE_LANGUAGES.values())},
}

LOADERS: dict[str, Loader] = {
    ".md": load_markdown, ".markdown": load_markdown, ".mdx": load_mdx,
    ".txt": load_plain, ".text": load_plain,
    **{suffix: load_plain for suffix in PLAIN_TEXT_SUFFIXES},
    ".rst": load_rst,
    ".pdf": load_pdf,
    ".html": load_html, ".htm": load_html, ".xhtml": load_html,
    ".docx": load_docx,
    ".ipynb": load_notebook,
    ".csv": load_csv, ".tsv": load_tsv, ".xlsx": load_xlsx, ".xlsm": load_xlsx,
    ".pptx": load_pptx, ".epub": load_epub, ".odt": load_odt, ".rtf": load_rtf,
    ".eml": load_eml, ".mbox": load_mbox,
    **{suffix: load_image for suffix in IMAGE_SUFFIXES},
    **{suffix: NAMED_LOADERS[language] for suffix, language in CODE_LANGUAGES.items()},
    **{suffix: code_loader(None) for suffix in PLAIN_CODE_SUFFIXES},
}


def loader_for(path: Path, extra_loaders: Mapping[str, str] | None = None) -> Loader | None:
    """The loader for a file: by `[ingest] loaders` (suffix -> loader name), else by its suffix; a
    file without one (README, AUTHORS) is read as text."""
    suffix = path.suffix.lower()
    if extra_loaders and suffix in extra_loaders:
        return NAMED_LOADERS[extra_loaders[suffix]]
    return LOADERS.get(suffix) if suffix else load_untyped
