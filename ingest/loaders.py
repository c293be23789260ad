"""Turn a file's bytes into LangChain `Document`s, one loader per file type.

Every loader takes the bytes already read (so the content hash and the text always describe the
same version of the file) and raises `LoadError` with a reason a person can act on.
Structured formats (HTML, .docx) are rendered as Markdown so their headings chunk like Markdown.
"""

from __future__ import annotations

import codecs
import io
import logging
import re
from pathlib import Path
from typing import Callable

from langchain_core.documents import Document

from rag.errors import LoadError

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
SNIFF_BYTES = 8192


def decode_text(data: bytes) -> str:
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise LoadError(f"invalid UTF-16 text at byte {exc.start}") from exc
    else:
        if b"\x00" in data[:SNIFF_BYTES]:
            raise LoadError("binary content, not text")
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LoadError(f"not valid UTF-8 (byte {exc.start}); convert it to UTF-8") from exc
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("empty file, no text to index")
    return text


def _text_document(data: bytes, **metadata: str) -> list[Document]:
    return [Document(page_content=decode_text(data), metadata={"has_lines": True, **metadata})]


def load_markdown(data: bytes) -> list[Document]:
    return _text_document(data, format="markdown")


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
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

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
    documents = [
        Document(page_content=text, metadata={"format": "text", "page": number})
        for number, text in enumerate(pages, start=1)
        if text.strip()
    ]
    if not documents:
        raise LoadError("PDF has no text layer (scanned images?); run OCR on it first")
    return documents


_NOISE_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form", "aside"]
_BLOCK_TAGS = ["p", "div", "li", "br", "pre", "blockquote", "section", "article", "dd", "dt", "tr", "table"]


def load_html(data: bytes) -> list[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_NOISE_TAGS + ["title", "head"]):
        tag.decompose()
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
    return [Document(page_content=text, metadata={"format": "markdown"})]


def _heading_level(style_name: str) -> int:
    if style_name == "Title":
        return 1
    match = re.fullmatch(r"Heading (\d)", style_name)
    return min(int(match.group(1)), 6) if match else 0


def _tidy_lines(text: str) -> str:
    """Strip each line and collapse runs of blank lines into one."""
    lines = [line.strip() for line in text.splitlines()]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


LOADERS: dict[str, Loader] = {
    ".md": load_markdown, ".markdown": load_markdown,
    ".txt": load_plain, ".text": load_plain,
    ".rst": load_rst,
    ".pdf": load_pdf,
    ".html": load_html, ".htm": load_html,
    ".docx": load_docx,
    **{suffix: code_loader(language) for suffix, language in CODE_LANGUAGES.items()},
    **{suffix: code_loader(None) for suffix in PLAIN_CODE_SUFFIXES},
}


def loader_for(path: Path) -> Loader | None:
    return LOADERS.get(path.suffix.lower())
