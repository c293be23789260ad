"""Split loaded documents into chunks that fit the embedding model's window.

Sizes are measured in the embedding model's own tokens: all-MiniLM-L6-v2 reads 256 word pieces
and silently drops the rest, so a chunk measured in characters could lose its tail unseen.
Markdown is split along headings first and each chunk is prefixed with its heading path, so a
chunk deep in a section still says what it is about.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any

from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

from ingest.embedding import TokenCounter
from rag.settings import ChunkingSettings

HEADING_SEPARATOR = " > "
MAX_TITLE_CHARS = 200
# The heading prefix may take at most this share of a chunk, so long headings leave room for text.
MAX_PREFIX_SHARE = 0.5
_HEADING = re.compile(r"^ {0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$")
_FENCE = re.compile(r"^ {0,3}(```|~~~)")


@dataclass
class Chunk:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Section:
    headings: list[str]
    body: str
    first_line: int  # 1-based line number of the body's first line in the document


def markdown_sections(text: str) -> list[_Section]:
    """Split Markdown at ATX headings (ignoring '#' lines inside code fences), keeping line numbers.

    langchain's MarkdownHeaderTextSplitter rewrites whitespace and drops line positions, which
    citations need.
    """
    sections: list[_Section] = []
    path: list[tuple[int, str]] = []
    body: list[str] = []
    first_line = 1
    in_fence = False

    def close_section() -> None:
        if "".join(body).strip():
            sections.append(_Section([title for _, title in path], "\n".join(body), first_line))

    for number, line in enumerate(text.split("\n"), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
        heading = None if in_fence else _HEADING.match(line)
        if heading is None:
            body.append(line)
            continue
        close_section()
        level = len(heading.group(1))
        path = [(lvl, title) for lvl, title in path if lvl < level] + [(level, heading.group(2).strip())]
        body = []
        first_line = number + 1
    close_section()
    return sections


def titled_text_section(text: str) -> _Section:
    """Plain text whose first line reads as a title (short, then a blank line) gets that line as
    its heading, so every chunk of it, not just the first, says what the text is about."""
    first, _, rest = text.partition("\n")
    if first.strip() and len(first) <= MAX_TITLE_CHARS and rest.startswith("\n") and rest.strip():
        blank_lines = len(rest) - len(rest.lstrip("\n"))
        return _Section([first.strip()], rest.lstrip("\n"), 2 + blank_lines)
    return _Section([], text, 1)


class Chunker:
    def __init__(self, counter: TokenCounter, settings: ChunkingSettings):
        self.counter = counter
        self.chunk_tokens = min(settings.chunk_tokens, counter.window)
        self.overlap_tokens = settings.overlap_tokens

    def split(self, documents: list[Document]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for document in documents:
            chunks.extend(self._split_document(document))
        for index, chunk in enumerate(chunks):
            chunk.metadata["chunk_index"] = index
        return chunks

    def _split_document(self, document: Document) -> list[Chunk]:
        metadata = document.metadata
        base = {key: metadata[key] for key in ("page",) if key in metadata}
        if metadata.get("format") == "markdown":
            sections = markdown_sections(document.page_content)
            language = Language.MARKDOWN
        elif metadata.get("format") == "code":
            sections = [_Section([], document.page_content, 1)]
            language = Language(metadata["language"])
        else:
            sections = [titled_text_section(document.page_content)]
            language = None
        chunks: list[Chunk] = []
        for section in sections:
            prefix = self._prefix(section.headings)
            section_meta = dict(base)
            if section.headings:
                section_meta["heading"] = HEADING_SEPARATOR.join(section.headings)
            budget = self.chunk_tokens - self.counter.count(prefix)
            for piece, offset in self._split_text(section.body, budget, language):
                piece_meta = dict(section_meta)
                if metadata.get("has_lines"):
                    start = section.first_line + section.body.count("\n", 0, offset)
                    piece_meta["start_line"] = start
                    piece_meta["end_line"] = start + piece.count("\n")
                chunks.append(Chunk(prefix + piece, piece_meta))
        return chunks

    def _prefix(self, headings: list[str]) -> str:
        if not headings:
            return ""
        prefix = HEADING_SEPARATOR.join(headings)
        prefix, _ = self.counter.truncate(prefix, int(self.chunk_tokens * MAX_PREFIX_SHARE))
        return prefix + "\n\n"

    def _split_text(self, text: str, budget: int, language: Language | None) -> list[tuple[str, int]]:
        """(piece, character offset in text) pairs, each piece at most `budget` tokens."""
        pieces: list[tuple[str, int]] = []
        cursor = 0
        for chunk in self._splitter(budget, language).split_text(text):
            # Chunks come in order and overlap, so each starts after the previous one's start.
            # (The splitter's own add_start_index mixes token overlap with character offsets.)
            offset = max(text.find(chunk, cursor), cursor)
            cursor = offset + 1
            rest = chunk
            # The splitter adds token counts of pieces, which can undercount their join.
            while rest:
                head, rest = self.counter.truncate(rest, budget)
                stripped = head.lstrip()
                if stripped.strip():
                    pieces.append((stripped.rstrip(), offset + len(head) - len(stripped)))
                offset += len(head)
        return pieces

    @functools.lru_cache(maxsize=64)
    def _splitter(self, budget: int, language: Language | None) -> RecursiveCharacterTextSplitter:
        options = dict(
            chunk_size=budget,
            chunk_overlap=min(self.overlap_tokens, budget // 4),
            length_function=self.counter.count,
        )
        if language is None:
            return RecursiveCharacterTextSplitter(**options)
        return RecursiveCharacterTextSplitter.from_language(language, **options)
