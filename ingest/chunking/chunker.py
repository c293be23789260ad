"""Split loaded documents into chunks that fit the embedding model's window.

Sizes are measured in the embedding model's own tokens: all-MiniLM-L6-v2 reads 256 word pieces
and silently drops the rest, so a chunk measured in characters could lose its tail unseen.

Markdown is parsed by a CommonMark parser (markdown-it), so a heading is what CommonMark calls
one (never a `#` comment inside a code block, however the fences around it look) and blocks are
kept whole where they fit: a code block or table larger than a chunk is split on its lines or
rows, each piece fenced again or headed by the table's header and separator rows. Every chunk is
prefixed with its heading path, so a chunk deep in a section still says what it is about.

Chunk text stays line for line with the file: markup is reduced where it stands and line breaks
are kept, so `start_line`/`end_line` cite exactly. The only lines that are not the file's lines at
`start_line`-`end_line` are those a split block adds to its pieces: a piece of a table after the
first starts with the table's header and separator rows; a piece of a code block after the first
starts with the block's opening fence, and every piece of a split code block ends with a closing
fence (the file's own closing fence is cited by none, unless a short text after the block joins
the last piece). ingest.chunking.lines.added_lines tells them from the chunk body and its line
count, so that quoted evidence cites the lines of each sentence; a join that rule would misread
is not made (`_cites_exactly`).
"""

from __future__ import annotations

import ast
import bisect
import functools
import math
import re
import tomllib
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from langchain_core.documents import Document
from langchain_text_splitters import Language, RecursiveCharacterTextSplitter
from markdown_it import MarkdownIt
from mdit_py_plugins.front_matter import front_matter_plugin

from ingest.chunking.lines import added_lines
from ingest.chunking.metadata import DOCUMENT_METADATA_KEYS, HEADING_SEPARATOR
from ingest.embedding import TokenCounter
from ingest.settings import DEFAULT_CHUNK_TOKENS, ChunkingSettings
from ingest.text import composed

MAX_TITLE_CHARS = 200
_PLAIN_TITLE_MARKS = re.compile(r"^#{1,6}(?:\s+|$)|\s+#+\s*$")
# The heading prefix may take at most this share of a chunk, so long headings leave room for text.
MAX_PREFIX_SHARE = 0.5
# A chunk with less text than this beyond its heading path (a lone fence, a title, "See below.")
# answers nothing and, being short, scores high on the words it has; it joins a neighbour instead.
MIN_TEXT_CHARS = 20
# The last piece of a code block or table split between lines, when it would hold less than this
# share of a chunk (the closing lines of a JSON example under the heading path), takes lines from
# the piece before it until the two are about even: a fragment answers nothing.
MIN_TAIL_SHARE = 1 / 3

# all-MiniLM-L6-v2's uncased tokenizer decomposes every Hangul syllable into its two or three jamo,
# word pieces that carry no meaning for the model, so Korean measured in tokens fills a chunk
# with one line. The embedding cannot read Korean either way; what the chunk size still serves is
# the keyword index, the reader and the LLM, all of which read syllables. A syllable counts as
# half a token: a chunk then holds about as much Korean as it holds English (two syllables are
# roughly one English word piece), and the embedding still sees the heading path and the opening.
HANGUL = re.compile(r"[\uac00-\ud7a3\u1100-\u11ff\u3130-\u318f]+")
TOKENS_PER_HANGUL_SYLLABLE = 0.5

# Encoded data (images in JSON examples, data URIs) is hundreds of characters nobody searches for.
# A run this long of base64 characters mixing cases and digits is no word, path or hash.
_DATA_URI = re.compile(r"(data:[\w.+-]+/[\w.+-]+;base64,)[A-Za-z0-9+/=]{8,}")
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")
ELIDED = "…"

# HTML (or JSX) markup in prose, reduced to its text; code spans are matched first so that
# `<model name>` inside backticks stays as written. Newlines inside a match are kept.
_MARKUP = re.compile(
    r"""(?P<code>(?P<ticks>`+)(?:[^`\n]|\n(?!\n))*?(?P=ticks))
    | <!--.*?-->
    | \{/\*.*?\*/\}
    | <(?P<element>script|style)\b.*?</(?P=element)\s*>
    | (?P<tag></?[A-Za-z][\w.:-]*(?:\s+(?:[^<>"'{}]|"[^"]*"|'[^']*'|\{(?:[^{}]|\{[^{}]*\})*\})*)?\s*/?>)
    | </?>""",
    re.S | re.X | re.I,
)
# Attributes whose values are text a reader sees: an image's alt text, a component's title (Mintlify's
# <Step title=...>, <Tab title=...>) or the parameter a <ParamField path=... type=...> documents.
_TEXT_ATTRIBUTES = re.compile(r"""\b(?:alt|title|label|path|body|query|type)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_HTML_TEXT_ATTRIBUTES = re.compile(r"""\b(?:alt|title)\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_EMBED_TEXT_ATTRIBUTES = re.compile(r"""\balt\s*=\s*(?:"([^"]*)"|'([^']*)')""")
_SOURCE_ATTRIBUTE = re.compile(r"\ssrc\s*=")
# MyST markup lines that are no text: `(label)=` targets and `:::{directive}` colon fences.
_MYST_TARGET = re.compile(r"^\([\w.:-]+\)=\s*$")
_MYST_COLON_FENCE = re.compile(r"^\s*:{3,}(\{[\w-]+\})?")
_MYST_OPTION = re.compile(r"^\s*:[\w-]+:(\s|$)")
_MDX_ESM = re.compile(r"^(import|export)\s")
_TOML_FRONT_MATTER = re.compile(r"\A\+\+\+\n(.*?\n)\+\+\+[ \t]*(\n|\Z)", re.S)
_FENCE_OPENER = re.compile(r"^\s*(`{3,}|~{3,})")

# reStructuredText section adornment: a line of one punctuation character repeated.
_RST_ADORNMENT = re.compile(r"""^([!-/:-@\[-`{-~])\1{2,}\s*$""")
# A man page rendered to text starts with "LS(1)   User Commands   LS(1)" (tab- or space-filled).
_MAN_HEADER = re.compile(r"^(\S+\(\w+\))\s.*\S\s+\1\s*$")
_MAN_SECTION = re.compile(r"^[A-Z][A-Z0-9 ,/&()-]{1,39}$")


@dataclass
class Chunk:
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)


def text_chars(text: str) -> str:
    """The letters and digits of text: what is left of it once markup and punctuation are gone."""
    return "".join(char for char in text if char.isalnum())


def drop_encoded_data(text: str) -> str:
    """Text with base64 payloads and data URIs elided, on the lines where they stood."""
    text = _DATA_URI.sub(lambda match: match.group(1) + ELIDED, text)
    return _BASE64_RUN.sub(lambda match: ELIDED if _looks_encoded(match.group()) else match.group(), text)


def _looks_encoded(run: str) -> bool:
    return all(any(test(char) for char in run) for test in (str.isupper, str.islower, str.isdigit))


def reduce_markup(text: str, component_attributes: bool = False) -> str:
    """HTML/JSX tags and comments replaced by their text, keeping every line break.

    `component_attributes`: keep the text attributes of tags (MDX components say things there).
    """
    attributes = _TEXT_ATTRIBUTES if component_attributes else _HTML_TEXT_ATTRIBUTES

    def reduce(match: re.Match) -> str:
        if match.group("code"):
            return match.group()
        tag = match.group("tag") or ""
        # An embed (<YouTube src=...>, <iframe>) has a title for the player, not for the reader.
        found = (_EMBED_TEXT_ATTRIBUTES if _SOURCE_ATTRIBUTE.search(tag) else attributes).findall(tag)
        kept = " ".join(a or b for a, b in found)
        newlines = match.group().count("\n")
        # A space where an inline tag stood, so the words on either side stay apart.
        return kept + "\n" * newlines if kept or newlines else " "

    return _MARKUP.sub(reduce, text)


@functools.cache
def markdown_parser(mdx: bool = False) -> MarkdownIt:
    """CommonMark with tables and front matter; for MDX without indented code and HTML blocks.

    MDX has no indented code (components nest by indenting), and its JSX tags are not HTML
    blocks: an HTML block runs to the next blank line and would swallow the fence after
    `<CodeGroup>`.
    """
    parser = MarkdownIt("commonmark").enable("table").use(front_matter_plugin)
    if mdx:
        parser.disable(["code", "html_block"])
    return parser


@dataclass
class _Block:
    kind: str  # "text", "code" (fenced), "indented" (indented code) or "table"
    headings: tuple[str, ...]
    start: int  # 0-based first line
    end: int  # 0-based line after the last
    parts: list[_Block] = field(default_factory=list)  # of a list or block quote: the blocks it holds


@dataclass
class _Piece:
    """A span of the document's prepared text [start, end) in characters, with its heading path.

    `before`/`after` are lines that are not in the file: the fence or table header of a
    continued block.
    """

    headings: tuple[str, ...]
    start: int
    end: int
    before: str = ""
    after: str = ""


@dataclass
class _Prepared:
    """A document's text as it is chunked (line for line the file's), with its Markdown blocks or,
    for other formats, its sections."""

    text: str
    sections: list[tuple[tuple[str, ...], int, int]] = field(default_factory=list)  # (headings, start, end) chars
    blocks: list[_Block] = field(default_factory=list)  # Markdown only

    @functools.cached_property
    def lines(self) -> list[str]:
        return self.text.split("\n")

    @functools.cached_property
    def line_starts(self) -> list[int]:
        return [0] + [match.end() for match in re.finditer("\n", self.text)]

    def offset(self, line: int) -> int:
        """Character offset of a 0-based line (the end of the text past the last)."""
        return self.line_starts[line] if line < len(self.line_starts) else len(self.text)

    def line_of(self, offset: int) -> int:
        return bisect.bisect_right(self.line_starts, offset) - 1


def prepare_markdown(text: str, mdx: bool = False) -> tuple[str, str | None]:
    """(text with front matter, markup and encoded data blanked on their lines, front matter title)."""
    title = None
    if toml := _TOML_FRONT_MATTER.match(text):
        try:
            title = tomllib.loads(toml.group(1)).get("title")
        except tomllib.TOMLDecodeError:
            pass
        text = "\n" * toml.group().count("\n") + text[toml.end() :]
    lines = drop_encoded_data(text).split("\n")
    code_lines: set[int] = set()
    for token in markdown_parser(mdx).parse("\n".join(lines)):
        if token.map is None:
            continue
        if token.type == "front_matter":
            title = _front_matter_title(token.content)
            lines[token.map[0] : token.map[1]] = [""] * (token.map[1] - token.map[0])
        elif token.type == "fence" and token.info.startswith("{"):
            # A MyST directive ({note}, {eval-rst}) holds prose: its fence lines are markup.
            start, end = token.map
            if end - 1 > start and _closes_fence(lines[end - 1], token.markup):
                lines[end - 1] = ""
            for number in _directive_markup_lines(lines, start, end):
                lines[number] = ""
        elif token.type in ("fence", "code_block"):
            code_lines.update(range(*token.map))
    prose_runs = _runs([number for number in range(len(lines)) if number not in code_lines])
    for start, end in prose_runs:
        original = lines[start:end]
        run = ["" if _MYST_TARGET.match(line) else _MYST_COLON_FENCE.sub("", line) for line in original]
        if mdx:
            run = _blank_esm(run)
        reduced = reduce_markup("\n".join(run), component_attributes=mdx).split("\n")
        # A line left blank by a removed tag is blank; a line untouched stays exactly the file's.
        lines[start:end] = [line if line == kept else line.rstrip() for line, kept in zip(reduced, original)]
    return "\n".join(lines), str(title).strip() if title is not None else None


def _directive_markup_lines(lines: list[str], start: int, end: int) -> list[int]:
    """The opening line of a MyST directive and its options (a `---` YAML block or `:key: value` lines)."""
    markup = [start]
    number = start + 1
    if number < end and lines[number].strip() == "---":
        closing = next((n for n in range(number + 1, end) if lines[n].strip() == "---"), None)
        if closing is not None:
            return markup + list(range(number, closing + 1))
    while number < end and _MYST_OPTION.match(lines[number]):
        markup.append(number)
        number += 1
    return markup


def _front_matter_title(content: str) -> Any:
    try:
        data = yaml.safe_load(content)
    except yaml.YAMLError:
        return None
    return data.get("title") if isinstance(data, dict) else None


def _runs(numbers: list[int]) -> list[tuple[int, int]]:
    """[start, end) ranges of consecutive numbers."""
    runs: list[tuple[int, int]] = []
    for number in numbers:
        if runs and runs[-1][1] == number:
            runs[-1] = (runs[-1][0], number + 1)
        else:
            runs.append((number, number + 1))
    return runs


def _blank_esm(lines: list[str]) -> list[str]:
    """MDX import/export statements (they run to the next blank line) as blank lines."""
    out, in_statement = [], False
    for line in lines:
        in_statement = bool(line.strip()) and (in_statement or bool(_MDX_ESM.match(line)))
        out.append("" if in_statement else line)
    return out


def markdown_outline(text: str, mdx: bool, title: str | None) -> list[_Block]:
    """The blocks of prepared Markdown, each with the heading path in force, from the parser's tokens.

    A list or block quote is one block with the paragraphs, code blocks and tables it holds as its
    parts, so one longer than a chunk is split between them, never inside a code block of an item.
    """
    tokens = markdown_parser(mdx).parse(text)
    root = (title,) if title else ()  # an empty title heads nothing
    stack: list[tuple[int, str]] = []
    blocks: list[_Block] = []
    container: _Block | None = None  # the list or block quote being read
    for index, token in enumerate(tokens):
        if token.map is None or token.nesting == -1:
            continue
        start, end = token.map
        if token.level != 0:
            if container and token.type in _CONTAINED_BLOCKS:
                container.parts.append(_Block(_BLOCK_KINDS.get(token.type, "text"), container.headings, start, end))
            continue
        if token.type == "heading_open":
            level, heading = int(token.tag[1]), " ".join(tokens[index + 1].content.split())
            stack = [(lvl, name) for lvl, name in stack if lvl < level] + [(level, heading)]
            continue
        path = [name for _, name in stack]
        if title and path and path[0] == title:
            path = path[1:]  # a page that repeats its front matter title as its first heading
        headings = root + tuple(path)
        if token.type in ("hr", "front_matter"):
            continue
        blocks.append(_Block(_BLOCK_KINDS.get(token.type, "text"), headings, start, end))
        container = blocks[-1] if token.type in _CONTAINERS else None
    return blocks


_BLOCK_KINDS = {"fence": "code", "code_block": "indented", "table_open": "table"}
# Blocks that hold blocks, and the blocks they hold as their parts, at any depth (a list item is
# only their container; a heading inside one heads no section).
_CONTAINERS = frozenset({"bullet_list_open", "ordered_list_open", "blockquote_open"})
_CONTAINED_BLOCKS = frozenset({"paragraph_open", "fence", "code_block", "table_open", "html_block", "heading_open"})


def _closes_fence(line: str, opener: str) -> bool:
    """Whether line closes a fence opened with `opener` (its run of backticks or tildes)."""
    stripped = line.strip()
    return len(stripped) >= len(opener) and stripped == opener[0] * len(stripped)


def rst_sections(text: str) -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, first line, line after the last) of each reStructuredText section body, 0-based.

    A title is a line underlined (and optionally overlined) with one punctuation character at
    least as long as it; levels follow the order in which adornment styles first appear, as
    docutils assigns them.
    """
    lines = text.split("\n")
    styles: list[tuple[str, bool]] = []
    stack: list[tuple[int, str]] = []
    sections: list[tuple[tuple[str, ...], int, int]] = []
    body_start, number = 0, 0
    while number < len(lines):
        title_line = _rst_title_at(lines, number)
        if title_line is None:
            number += 1
            continue
        title, style, title_end = title_line
        sections.append((tuple(name for _, name in stack), body_start, number))
        if style not in styles:
            styles.append(style)
        level = styles.index(style)
        stack = [(lvl, name) for lvl, name in stack if lvl < level] + [(level, title)]
        body_start = number = title_end
    sections.append((tuple(name for _, name in stack), body_start, len(lines)))
    return sections


def _rst_title_at(lines: list[str], number: int) -> tuple[str, tuple[str, bool], int] | None:
    """(title, (adornment character, overlined), line after the title) if a title starts here."""
    if number > 0 and lines[number - 1].strip():
        return None
    over = _RST_ADORNMENT.match(lines[number])
    if over and number + 2 < len(lines):
        title, under = lines[number + 1].strip(), _RST_ADORNMENT.match(lines[number + 2])
        if title and under and under.group(1) == over.group(1) and len(lines[number + 2].rstrip()) >= len(title):
            return title, (over.group(1), True), number + 3
    line = lines[number]
    if over or not line.strip() or line[0].isspace() or number + 1 >= len(lines):
        return None
    under = _RST_ADORNMENT.match(lines[number + 1])
    if under and len(lines[number + 1].rstrip()) >= len(line.rstrip()):
        return line.strip(), (under.group(1), False), number + 2
    return None


def man_page_sections(text: str) -> list[tuple[tuple[str, ...], int, int]] | None:
    """Sections of a man page rendered as text (NAME, SYNOPSIS, ...), under the page's name, or None.

    The header line ("LS(1)  User Commands  LS(1)") is no text of any section.
    """
    lines = text.split("\n")
    header = _MAN_HEADER.match(lines[0])
    if header is None:
        return None
    page = header.group(1)
    sections: list[tuple[tuple[str, ...], int, int]] = []
    heading: tuple[str, ...] = (page,)
    body_start = 1
    for number in range(1, len(lines)):
        if _MAN_SECTION.match(lines[number]) and not lines[number - 1].strip():
            sections.append((heading, body_start, number))
            heading, body_start = (page, lines[number].strip()), number + 1
    sections.append((heading, body_start, len(lines)))
    return sections


def titled_text_sections(text: str) -> list[tuple[tuple[str, ...], int, int]]:
    """Plain text whose first line reads as a title (short, then a blank line) gets that line as
    its heading, so every chunk of it, not just the first, says what the text is about. A note
    written with Markdown's habits marks it "# Title": the marks are no part of the title."""
    lines = text.split("\n")
    first = _PLAIN_TITLE_MARKS.sub("", lines[0].strip())
    if first and len(first) <= MAX_TITLE_CHARS and len(lines) > 2 and not lines[1].strip():
        return [((first,), 1, len(lines))]
    return [((), 0, len(lines))]


def python_outline(source: str) -> list[tuple[int, int, str]]:
    """(first line, last line, "class Foo" / "def bar") of every class and function, 1-based, outer first."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return []
    outline = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            keyword = {ast.ClassDef: "class", ast.FunctionDef: "def", ast.AsyncFunctionDef: "async def"}[type(node)]
            first = min([node.lineno] + [decorator.lineno for decorator in node.decorator_list])
            outline.append((first, node.end_lineno or node.lineno, f"{keyword} {node.name}"))
    return sorted(outline, key=lambda entry: (entry[0], -entry[1]))


def enclosing_definitions(outline: list[tuple[int, int, str]], line: int) -> tuple[str, ...]:
    return tuple(name for first, last, name in outline if first <= line <= last)


class Chunker:
    def __init__(self, counter: TokenCounter, settings: ChunkingSettings):
        self.counter = counter
        self.chunk_tokens = min(settings.chunk_tokens or DEFAULT_CHUNK_TOKENS, counter.window)
        self.overlap_tokens = settings.overlap_tokens
        self.size = functools.lru_cache(maxsize=1 << 16)(self._size)

    def _size(self, text: str) -> int:
        """Tokens of text as the chunk budget counts them (see TOKENS_PER_HANGUL_SYLLABLE)."""
        syllables = sum(len(run) for run in HANGUL.findall(text))
        if not syllables:
            return self.counter.count(text)
        return self.counter.count(HANGUL.sub(" ", text)) + math.ceil(syllables * TOKENS_PER_HANGUL_SYLLABLE)

    def split(self, documents: list[Document]) -> list[Chunk]:
        chunks: list[Chunk] = []
        for document in documents:
            chunks.extend(self._split_document(document))
        for index, chunk in enumerate(chunks):
            chunk.metadata["chunk_index"] = index
        return chunks

    def _split_document(self, document: Document) -> list[Chunk]:
        document = _composed(document)
        metadata = document.metadata
        prepared, language = self._prepare(document)
        if prepared.blocks:
            pieces = self._pack_blocks(prepared)
        else:
            pieces = [
                piece
                for headings, start, end in prepared.sections
                for piece in self._split_span(prepared, headings, start, end, language)
            ]
        if metadata.get("language") == "python":
            outline = python_outline(prepared.text)
            pieces = [
                replace(piece, headings=enclosing_definitions(outline, self._first_text_line(prepared, piece)))
                for piece in pieces
            ]
        pieces = self._join_small(prepared, pieces)
        base = {key: metadata[key] for key in DOCUMENT_METADATA_KEYS if key in metadata}
        chunks = [self._chunk(prepared, piece, base, bool(metadata.get("has_lines"))) for piece in pieces]
        if "line_units" in metadata:
            for chunk, piece in zip(chunks, pieces):
                chunk.metadata.update(self._units(prepared, piece, *metadata["line_units"]))
        return chunks

    def _prepare(self, document: Document) -> tuple[_Prepared, Language | None]:
        metadata, text = document.metadata, document.page_content
        title = metadata.get("title")  # a loader's page title heads what comes before the first heading
        if metadata.get("format") == "markdown":
            mdx = metadata.get("dialect") == "mdx"
            text, front_matter_title = prepare_markdown(text, mdx)
            prepared = _Prepared(text)
            prepared.blocks = markdown_outline(text, mdx, front_matter_title)
            if title and not front_matter_title:
                for block in prepared.blocks:
                    block.headings = block.headings or (title,)
            return prepared, Language.MARKDOWN
        prepared = _Prepared(drop_encoded_data(text))
        if metadata.get("format") == "code" and metadata["language"] == "rst":
            line_sections, language = rst_sections(prepared.text), Language.RST
        elif metadata.get("format") == "code":
            line_sections, language = [((), 0, len(prepared.line_starts))], Language(metadata["language"])
        else:
            line_sections = man_page_sections(prepared.text) or titled_text_sections(prepared.text)
            language = None
        prepared.sections = [
            (headings, prepared.offset(start), prepared.offset(end)) for headings, start, end in line_sections
        ]
        return prepared, language

    def _first_text_line(self, prepared: _Prepared, piece: _Piece) -> int:
        """1-based line of the piece's first non-blank character."""
        body = prepared.text[piece.start : piece.end]
        return prepared.line_of(piece.start + len(body) - len(body.lstrip())) + 1

    def _budget(self, headings: tuple[str, ...]) -> int:
        return self.chunk_tokens - self.size(self._prefix(headings))

    def _pack_blocks(self, prepared: _Prepared, blocks: list[_Block] | None = None) -> list[_Piece]:
        """Consecutive blocks of a section gathered into pieces up to the budget; a block too big alone is
        split (a list or block quote between the blocks it holds, these packed alike)."""
        pieces: list[_Piece] = []
        current: list[_Block] = []

        def flush() -> None:
            if current:
                start, end = prepared.offset(current[0].start), prepared.offset(current[-1].end)
                pieces.append(_Piece(current[0].headings, start, end))
                current.clear()

        for block in prepared.blocks if blocks is None else blocks:
            budget = self._budget(block.headings)
            block_text = prepared.text[prepared.offset(block.start) : prepared.offset(block.end)]
            if not block_text.strip():
                continue
            if current and current[0].headings == block.headings:
                joined = prepared.text[prepared.offset(current[0].start) : prepared.offset(block.end)]
                if self.size(joined) <= budget:
                    current.append(block)
                    continue
            introduction = self._introduction(prepared, current, block, budget)
            if introduction:
                current.pop()
            flush()
            if introduction:
                current.extend((introduction, block))
            elif self.size(block_text) <= budget:
                current.append(block)
            elif block.parts:
                pieces.extend(self._pack_blocks(prepared, block.parts))
            else:
                pieces.extend(self._split_block(prepared, block, budget))
        flush()
        return pieces

    def _introduction(self, prepared: _Prepared, current: list[_Block], block: _Block, budget: int) -> _Block | None:
        """The paragraph ending `current` that introduces `block`, when `block` does not fit after
        it: moved into `block`'s piece, a step's "run this command:" stays with the command, and a
        chunk no longer ends in a promise the next one keeps. A paragraph introduces a code block
        or table, or any block when it ends in a colon; it moves only when `current` keeps another
        block and the two fit together."""
        if len(current) < 2 or current[-1].kind != "text" or current[-1].parts or current[-1].headings != block.headings:
            return None
        paragraph = current[-1]
        text = prepared.text[prepared.offset(paragraph.start) : prepared.offset(block.end)]
        paragraph_text = prepared.text[prepared.offset(paragraph.start) : prepared.offset(paragraph.end)]
        introduces = block.kind != "text" or paragraph_text.rstrip().endswith((":", "："))
        return paragraph if introduces and self.size(text) <= budget else None

    def _split_block(self, prepared: _Prepared, block: _Block, budget: int) -> list[_Piece]:
        lines = prepared.lines
        if block.kind == "table":
            header = "\n".join(lines[block.start : block.start + 2])
            return self._split_lines(prepared, block, block.start + 2, block.end, budget, head=(block.start, header))
        if block.kind == "code":
            opener = _FENCE_OPENER.match(lines[block.start])
            assert opener is not None, "a code block starts at its opening fence"
            fence = opener.group(1)
            closed = block.end - 1 > block.start and _closes_fence(lines[block.end - 1], fence)
            last = block.end - 1 if closed else block.end
            return self._split_lines(
                prepared, block, block.start + 1, last, budget, head=(block.start, lines[block.start].strip()), tail=fence
            )
        if block.kind == "indented":
            return self._split_lines(prepared, block, block.start, block.end, budget)
        start, end = prepared.offset(block.start), prepared.offset(block.end)
        return self._split_span(prepared, block.headings, start, end, Language.MARKDOWN)

    def _split_lines(
        self,
        prepared: _Prepared,
        block: _Block,
        first: int,
        end: int,
        budget: int,
        head: tuple[int, str] | None = None,
        tail: str | None = None,
    ) -> list[_Piece]:
        """A block split between lines [first, end); `head` (line, text) opens each piece, `tail` closes each.

        The head's own line opens the first piece; elsewhere the head is added, as a line not in
        the file. The tail is added to every piece (the module docstring says why).
        """
        room = budget - self.size(head[1] if head else "") - self.size(tail or "")
        lines = prepared.lines
        groups: list[tuple[int, int]] = []
        for number in range(first, end):
            if groups and self.size("\n".join(lines[groups[-1][0] : number + 1])) <= room:
                groups[-1] = (groups[-1][0], number + 1)
            else:
                groups.append((number, number + 1))
        self._even_out_tail(lines, groups, room)
        pieces: list[_Piece] = []
        for index, (start, stop) in enumerate(groups):
            if stop - start == 1 and self.size(lines[start]) > room:
                # One line longer than a chunk: cut like prose, without the fence or header around it.
                pieces.extend(self._split_span(prepared, block.headings, *self._span(prepared, start, stop), None))
                continue
            is_first = index == 0
            before = head[1] + "\n" if head and not is_first else ""
            after = "\n" + tail if tail else ""
            real_start = head[0] if head and is_first else start
            pieces.append(_Piece(block.headings, *self._span(prepared, real_start, stop), before, after))
        return pieces

    def _even_out_tail(self, lines: list[str], groups: list[tuple[int, int]], room: int) -> None:
        """Move lines from the last but one group of lines to a last one under MIN_TAIL_SHARE of `room`,
        until the last holds about half of both (each group still fits `room`)."""
        if len(groups) < 2:
            return
        (first, split), (_, end) = groups[-2], groups[-1]
        if split - first < 2 or self.size("\n".join(lines[split:end])) >= MIN_TAIL_SHARE * room:
            return
        half = self.size("\n".join(lines[first:end])) / 2
        while split - first > 1 and self.size("\n".join(lines[split - 1 : end])) <= min(half, room):
            split -= 1
        groups[-2:] = [(first, split), (split, end)]

    @staticmethod
    def _span(prepared: _Prepared, start: int, end: int) -> tuple[int, int]:
        """Character offsets of lines [start, end)."""
        return prepared.offset(start), prepared.offset(end)

    def _split_span(
        self, prepared: _Prepared, headings: tuple[str, ...], start: int, end: int, language: Language | None
    ) -> list[_Piece]:
        """Pieces of prepared.text[start:end], each at most the budget."""
        text = prepared.text[start:end]
        budget = self._budget(headings)
        pieces: list[_Piece] = []
        cursor = 0
        for chunk in self._splitter(budget, language).split_text(text):
            # Chunks come in order and overlap, so each starts after the previous one's start.
            # (The splitter's own add_start_index mixes token overlap with character offsets.)
            offset = max(text.find(chunk, cursor), cursor)
            cursor = offset + 1
            rest = chunk
            # The splitter adds token counts of pieces, which can undercount their join.
            while rest:
                head, rest = self._truncate(rest, budget)
                stripped = head.strip()
                if stripped:
                    lead = len(head) - len(head.lstrip())
                    pieces.append(_Piece(headings, start + offset + lead, start + offset + lead + len(stripped)))
                offset += len(head)
        return pieces

    def _truncate(self, text: str, budget: int) -> tuple[str, str]:
        if not HANGUL.search(text):
            return self.counter.truncate(text, budget)
        if self.size(text) <= budget:
            return text, ""
        low, high = 1, len(text)  # the longest prefix within budget, by bisection on characters
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if self.size(text[:middle]) <= budget else (low, middle - 1)
        return text[:low], text[low:]

    def _join_small(self, prepared: _Prepared, pieces: list[_Piece]) -> list[_Piece]:
        """Pieces with under MIN_TEXT_CHARS of text joined to the next piece, or else the previous one.

        A joined piece keeps the heading path both parts share. One that can join neither (its
        neighbours are full) stays if it has any text at all: better small than lost.
        """
        pieces = list(pieces)
        index = 0
        while index < len(pieces):
            piece = pieces[index]
            if len(text_chars(self._body(prepared, piece))) >= MIN_TEXT_CHARS:
                index += 1
                continue
            for neighbour in (index + 1, index - 1):
                if 0 <= neighbour < len(pieces) and (joined := self._joined(prepared, piece, pieces[neighbour])):
                    pieces[min(index, neighbour)] = joined
                    del pieces[max(index, neighbour)]
                    index = min(index, neighbour)
                    break
            else:
                if not text_chars(self._body(prepared, piece)):
                    del pieces[index]
                else:
                    index += 1
        return pieces

    def _joined(self, prepared: _Prepared, one: _Piece, other: _Piece) -> _Piece | None:
        first, second = sorted((one, other), key=lambda piece: piece.start)
        after = first.after
        if after and self._closed_after(prepared, first, second):
            after = ""  # joined, the last piece of a code block ends with the file's own closing fence
        if after or second.before or first.end > second.start:
            return None
        headings = _common_prefix(first.headings, second.headings)
        joined = _Piece(headings, first.start, second.end, first.before, second.after)
        if self.size(self._body(prepared, joined)) > self._budget(headings) or not self._cites_exactly(prepared, joined):
            return None
        return joined

    @staticmethod
    def _closed_after(prepared: _Prepared, first: _Piece, second: _Piece) -> bool:
        """Whether the file closes the code block of `first` on the line after it, before `second`."""
        line = prepared.line_of(first.end)
        return (
            prepared.offset(line) == first.end
            and line < len(prepared.lines)
            and _closes_fence(prepared.lines[line], first.after.strip())
            and prepared.offset(line + 1) <= second.start
        )

    def _cites_exactly(self, prepared: _Prepared, piece: _Piece) -> bool:
        """Whether the chunk of `piece` tells which of its lines are added (see lines.added_lines)."""
        real = prepared.text[piece.start : piece.end].strip("\n").rstrip()
        body = piece.before + real + piece.after
        return added_lines(body, 1, real.count("\n") + 1) == (piece.before.count("\n"), piece.after.count("\n"))

    def _body(self, prepared: _Prepared, piece: _Piece) -> str:
        return piece.before + prepared.text[piece.start : piece.end].strip("\n") + piece.after

    def _chunk(self, prepared: _Prepared, piece: _Piece, base: dict[str, Any], has_lines: bool) -> Chunk:
        real = prepared.text[piece.start : piece.end]
        start = piece.start + len(real) - len(real.lstrip("\n"))
        real = real.strip("\n").rstrip()
        metadata = dict(base)
        if piece.headings:
            metadata["heading"] = HEADING_SEPARATOR.join(piece.headings)
        if has_lines:
            metadata["start_line"] = prepared.line_of(start) + 1
            metadata["end_line"] = metadata["start_line"] + real.count("\n")
        return Chunk(self._prefix(piece.headings) + piece.before + real + piece.after, metadata)

    @staticmethod
    def _units(prepared: _Prepared, piece: _Piece, key: str, unit_of_line: list[int | None]) -> dict[str, int]:
        """The first and last unit (notebook cell, table row) the piece's lines belong to: `key` and `end_key`.

        A loader whose text is not the file's lines (a notebook, a sheet) numbers each line with
        the unit it came from (None for lines of no unit, such as a table's header), in
        `line_units` = (key, one entry per line).
        """
        real = prepared.text[piece.start : piece.end]
        first = prepared.line_of(piece.start + len(real) - len(real.lstrip("\n")))
        last = first + real.strip("\n").rstrip().count("\n")
        units = [unit for unit in unit_of_line[first : last + 1] if unit is not None]
        return {key: min(units), f"end_{key}": max(units)} if units else {}

    def _prefix(self, headings: tuple[str, ...]) -> str:
        if not headings:
            return ""
        prefix = HEADING_SEPARATOR.join(headings)
        prefix, _ = self.counter.truncate(prefix, int(self.chunk_tokens * MAX_PREFIX_SHARE))
        return prefix + "\n\n"

    @functools.lru_cache(maxsize=64)
    def _splitter(self, budget: int, language: Language | None) -> RecursiveCharacterTextSplitter:
        options: dict[str, Any] = dict(
            chunk_size=budget,
            chunk_overlap=min(self.overlap_tokens, budget // 4),
            length_function=self.size,
        )
        if language is None:
            return RecursiveCharacterTextSplitter(**options)
        return RecursiveCharacterTextSplitter.from_language(language, **options)


def _common_prefix(one: tuple[str, ...], other: tuple[str, ...]) -> tuple[str, ...]:
    shared = []
    for a, b in zip(one, other):
        if a != b:
            break
        shared.append(a)
    return tuple(shared)


def _composed(document: Document) -> Document:
    """The document's text and names in composed form (NFC). macOS and PDFs made on it can write Hangul
    as separate jamo, which a typed question's words do not match and the model reads as other letters."""
    metadata = {key: composed(value) if isinstance(value, str) else value for key, value in document.metadata.items()}
    return Document(page_content=composed(document.page_content), metadata=metadata)
