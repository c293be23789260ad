"""Chunk quality of a folder: chunks per file, junk chunks, wrong heading paths, chunk sizes.

    .venv/bin/python bench/chunk_quality.py ../shared/data/realdocs
    .venv/bin/python bench/chunk_quality.py ../shared/data/realdocs --show 5    # print 5 of each problem

Every file the loaders accept is loaded and chunked as `rag ingest` would (same settings, same
tokenizer). A chunk is junk when `junk_reason` says so. A Markdown chunk's heading path is checked
against the outline markdown-it itself gives the file: the path must be a prefix of the headings in
force at the chunk's first line (a chunk that joins small sections may stop at their common parent),
and a title that is no heading of the outline at all was taken from somewhere else, such as a `#`
comment in a code block.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ingest.chunking.chunker import (  # noqa: E402
    HEADING_SEPARATOR,
    MIN_TEXT_CHARS,
    Chunk,
    Chunker,
    markdown_parser,
    reduce_markup,
    text_chars,
)
from ingest.loaders import loader_for  # noqa: E402
from rag.errors import LoadError  # noqa: E402

# A run this long of base64 characters is encoded data, not words: prose and identifiers break
# sooner (spaces, dots, underscores), and hashes people cite are shorter (a SHA-256 is 64 hex digits).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/]{100,}={0,2}")
DATA_URI = re.compile(r"data:[\w.+-]+/[\w.+-]+;base64,[A-Za-z0-9+/]{8,}")
FRONT_MATTER_START = re.compile(r"^(---|\+\+\+)\n[\w-]+\s*[:=]")
NAVIGATION_LINE = re.compile(r"^\s*(copy|copy to clipboard|copied!?)\s*$|\b(next|previous|prev|up):.*\b(next|previous|prev|up):", re.I | re.M)
TOKEN_BUCKETS = (25, 50, 100, 150, 200, 255)


def chunk_body(chunk: Chunk) -> str:
    """The chunk's text without the heading path prefixed to it."""
    heading = chunk.metadata.get("heading")
    if heading and chunk.text.startswith(heading):
        return chunk.text[len(heading) :].lstrip("\n")
    return chunk.text


def junk_reason(chunk: Chunk) -> str | None:
    """Why a chunk is junk (something no question should retrieve), or None when it is not."""
    body = chunk_body(chunk)
    if DATA_URI.search(body) or any(_looks_encoded(run) for run in BASE64_RUN.findall(body)):
        return "base64 data"
    if FRONT_MATTER_START.match(body):
        return "front matter"
    if NAVIGATION_LINE.search(body):
        return "navigation or button text"
    if len(text_chars(body)) < MIN_TEXT_CHARS:
        return f"under {MIN_TEXT_CHARS} characters of text beyond its heading path"
    return None


def _looks_encoded(run: str) -> bool:
    # Encoded bytes mix upper case, lower case and digits throughout; a long path or word does not.
    return all(any(test(char) for char in run) for test in (str.isupper, str.islower, str.isdigit))


def outline(text: str, mdx: bool) -> tuple[str | None, list[tuple[int, int, str]]]:
    """(front matter title, [(0-based line, level, title)]) of a Markdown file, as markdown-it reads it."""
    tokens = markdown_parser(mdx).parse(text)
    title = None
    headings = []
    for index, token in enumerate(tokens):
        if token.type == "front_matter":
            found = re.search(r"^title\s*[:=]\s*['\"]?(.*?)['\"]?\s*$", token.content, re.M)
            title = found.group(1) if found else None
        elif token.type == "heading_open" and token.map:
            # Inline markup in a heading (`<code>`) reads as its text in a heading path.
            title_text = " ".join(reduce_markup(tokens[index + 1].content, mdx).split())
            headings.append((token.map[0], int(token.tag[1]), title_text))
    return title, headings


def outline_path(title: str | None, headings: list[tuple[int, int, str]], line: int) -> list[str]:
    """Headings in force at a 1-based line, the front matter title first (once, if the top heading repeats it)."""
    stack: list[tuple[int, str]] = []
    for start, level, heading in headings:
        if start + 1 > line:
            break
        stack = [(lvl, name) for lvl, name in stack if lvl < level] + [(level, heading)]
    path = [name for _, name in stack]
    if title:
        path = [title] + (path[1:] if path and path[0] == title else path)
    return path


@dataclass
class Report:
    files: int = 0
    chunks_per_file: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    junk: list[tuple[str, str, Chunk]] = field(default_factory=list)  # (file, reason, chunk)
    wrong_headings: list[tuple[str, list[str], Chunk]] = field(default_factory=list)  # (file, expected, chunk)
    code_headings: list[tuple[str, str, Chunk]] = field(default_factory=list)  # (file, title, chunk)
    token_lengths: list[int] = field(default_factory=list)


def quality_report(folder: Path, chunker: Chunker) -> Report:
    report = Report()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        loader = loader_for(path)
        if loader is None:
            continue
        name = str(path.relative_to(folder))
        report.files += 1
        data = path.read_bytes()
        try:
            documents = loader(data)
        except LoadError as exc:
            report.failed[name] = str(exc)
            continue
        chunks = chunker.split(documents)
        report.chunks_per_file[name] = len(chunks)
        report.token_lengths.extend(chunker.counter.count(chunk.text) for chunk in chunks)
        for chunk in chunks:
            if reason := junk_reason(chunk):
                report.junk.append((name, reason, chunk))
        if documents[0].metadata.get("format") == "markdown" and documents[0].metadata.get("has_lines"):
            _check_headings(name, documents[0].page_content, path.suffix.lower() == ".mdx", chunks, report)
    return report


def _check_headings(name: str, text: str, mdx: bool, chunks: list[Chunk], report: Report) -> None:
    title, headings = outline(text, mdx)
    known = {heading for _, _, heading in headings} | ({title} if title else set())
    for chunk in chunks:
        heading = chunk.metadata.get("heading")
        path = [" ".join(part.split()) for part in heading.split(HEADING_SEPARATOR)] if heading else []
        if stray := [part for part in path if part not in known]:
            report.code_headings.append((name, stray[0], chunk))
        expected = outline_path(title, headings, chunk.metadata["start_line"])
        if path != expected[: len(path)]:
            report.wrong_headings.append((name, expected, chunk))


def histogram(lengths: list[int]) -> list[tuple[str, int]]:
    counts = Counter(next((bucket for bucket in TOKEN_BUCKETS if length < bucket), None) for length in lengths)
    rows, low = [], 0
    for bucket in TOKEN_BUCKETS:
        rows.append((f"{low}-{bucket - 1}", counts[bucket]))
        low = bucket
    rows.append((f"{low}+", counts[None]))
    return rows


def print_report(report: Report, show: int) -> None:
    print(f"{report.files} files, {len(report.token_lengths)} chunks, {len(report.failed)} failed to load")
    for name, count in report.chunks_per_file.items():
        print(f"  {count:5d}  {name}")
    for name, reason in report.failed.items():
        print(f"  failed  {name}: {reason}")
    print(f"junk chunks: {len(report.junk)}")
    for reason, count in Counter(reason for _, reason, _ in report.junk).most_common():
        print(f"  {count:5d}  {reason}")
    print(f"heading path not a prefix of the parser's outline: {len(report.wrong_headings)}")
    print(f"headings that are no heading of the outline (taken from code): {len(report.code_headings)}")
    print("chunk length in tokens:")
    for label, count in histogram(report.token_lengths):
        print(f"  {label:>8}  {count}")
    for title, problems in (("junk", report.junk), ("wrong heading", report.wrong_headings), ("code heading", report.code_headings)):
        for name, detail, chunk in problems[:show]:
            where = chunk.metadata.get("start_line", "")
            print(f"--- {title}: {name}:{where} ({detail})\n{chunk.text[:300]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--show", type=int, default=0, metavar="N", help="print N chunks of each problem")
    args = parser.parse_args(argv)
    print_report(quality_report(args.folder, default_chunker()), args.show)
    return 0


def default_chunker() -> Chunker:
    """The chunker `rag ingest` uses with the default settings."""
    from ingest.embedding import LocalEmbeddings
    from rag.settings import load_settings

    settings = load_settings(environ={})
    return Chunker(LocalEmbeddings(settings.embedding, settings.cache_path).token_counter, settings.chunking.model_copy(update={"chunk_tokens": settings.chunking.tokens_for(settings.embedding.model)}))


if __name__ == "__main__":
    sys.exit(main())
