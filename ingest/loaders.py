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
PREFERRED_LEGACY_ENCODING = "cp1252"
# A .docx without a title is located by its opening words, this many characters at most.
DOCX_OPENING_CHARS = 60


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
            text = _decode_other_encoding(data, exc)
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.strip():
        raise LoadError("empty file, no text to index")
    return text


def _decode_other_encoding(data: bytes, utf8_error: UnicodeDecodeError) -> str:
    """Text in a legacy encoding (Latin-1, Windows-1251, Shift JIS ...), as charset_normalizer reads it."""
    from charset_normalizer import from_bytes

    best = from_bytes(data).best()
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


_NOISE_TAGS = ["script", "style", "nav", "header", "footer", "noscript", "template", "svg", "form", "aside", "button"]
# Landmarks that hold a site's furniture rather than the page's text.
_NOISE_ROLES = ["navigation", "banner", "contentinfo", "search", "menubar", "toolbar"]
_BLOCK_TAGS = ["p", "div", "li", "br", "pre", "blockquote", "section", "article", "dd", "dt", "tr", "table"]
# Texinfo and Sphinx pages open and close with a bar such as "Next: Types, Previous: Intro, Up: Top".
_NAVIGATION_BAR = re.compile(r"^\s*(Next|Previous|Prev|Up)\s*:.*\b(Next|Previous|Prev|Up)\s*:", re.S)
_NAVIGATION_BAR_MAX_CHARS = 300
# Stands in for a <pre> block while the page's lines are tidied (NUL is in no HTML text).
_CODE_PLACEHOLDER = "\x00code-block-"


def load_html(data: bytes) -> list[Document]:
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(data, "html.parser")
    title = soup.title.get_text(" ", strip=True) if soup.title else ""
    for tag in soup(_NOISE_TAGS + ["title", "head"]):
        tag.decompose()
    for tag in soup.find_all(attrs={"role": _NOISE_ROLES}):
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
        code = block.get_text().strip("\n")
        fence = "`" * max(3, 1 + max((len(run) for run in re.findall("`+", code)), default=0))
        code_blocks.append(f"{fence}\n{code}\n{fence}")
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


LOADERS: dict[str, Loader] = {
    ".md": load_markdown, ".markdown": load_markdown, ".mdx": load_mdx,
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
