"""What a batch job works on: ingested documents (or their chunks), chosen by path, folder, glob
or a search query, read back from the index in document order."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

from ingest.index import Index, SourceRecord, paths_matching, source_patterns
from rag import retrieval
from rag.errors import NoDocumentsError, SourceNotIngestedError, UsageError
from rag.settings import Settings

Per = Literal["document", "chunk"]
# Overlapping chunks repeat up to chunking.overlap_tokens of text; a shorter match is chance.
MIN_OVERLAP_CHARS = 16


@dataclass(frozen=True)
class Item:
    """One unit of work: a document, or one chunk of it."""

    key: str  # what the job state records as done: the source path, or the chunk id
    source: str
    sha256: str
    chunk_ids: tuple[str, ...]


@dataclass(frozen=True)
class Passage:
    """A chunk's text as a model should read it, and where it came from."""

    chunk_id: str
    text: str
    location: dict[str, Any]


def select_items(
    index: Index,
    settings: Settings,
    sources: Sequence[str] = (),
    *,
    query: str | None = None,
    k: int | None = None,
    per: Per = "document",
) -> tuple[list[Item], list[str]]:
    """The items in document order (or best match first, with a query), and the absolute glob
    patterns the SOURCES arguments stand for."""
    if k is not None and query is None:
        raise UsageError("k chooses among the chunks that best match a query: give the query too (--query).")
    index.require()
    records = index.sources()
    if not records:
        raise NoDocumentsError()
    patterns = source_patterns(sources, list(records))
    unmatched = [arg for arg, pattern in zip(sources, patterns) if not paths_matching(records, [pattern])]
    if unmatched:
        raise SourceNotIngestedError(unmatched[0])
    if query is None:
        chosen = sorted(paths_matching(records, patterns)) if patterns else sorted(records)
        # A file without text (an empty note, a scanned PDF) has no chunks: nothing to work on.
        return [item for path in chosen if records[path].chunk_ids for item in _items(records[path], per)], patterns
    hits = retrieval.search(query, settings, k, paths=patterns or None)
    if per == "chunk":
        items = [Item(hit.chunk_id, hit.source, records[hit.source].sha256, (hit.chunk_id,)) for hit in hits]
    else:
        items = [_items(records[source], per)[0] for source in dict.fromkeys(hit.source for hit in hits)]
    return items, patterns


def _items(record: SourceRecord, per: Per) -> list[Item]:
    if per == "chunk":
        return [Item(chunk_id, record.path, record.sha256, (chunk_id,)) for chunk_id in record.chunk_ids]
    return [Item(record.path, record.path, record.sha256, tuple(record.chunk_ids))]


def read_passages(index: Index, item: Item) -> list[Passage]:
    """The item's chunks in document order, with the text that overlaps the previous chunk cut."""
    stored = index.get_chunks(item.chunk_ids)
    passages: list[Passage] = []
    for chunk_id in item.chunk_ids:
        if chunk_id not in stored:
            continue  # replaced by an ingest since the job was planned
        chunk = stored[chunk_id]
        location = retrieval.location_of(chunk.metadata)
        text = retrieval.chunk_body(chunk.text, location)
        if passages and passages[-1].location.get("heading") == location.get("heading"):
            text = without_overlap(passages[-1].text, text)
        passages.append(Passage(chunk_id, text, location))
    return passages


def without_overlap(previous: str, current: str) -> str:
    """`current` without the text at its start that repeats the end of `previous`."""
    probe = current[:MIN_OVERLAP_CHARS]
    at = previous.find(probe) if len(probe) == MIN_OVERLAP_CHARS else -1
    while at >= 0:
        if current.startswith(previous[at:]):
            return current[len(previous) - at :].lstrip()
        at = previous.find(probe, at + 1)
    return current
