"""The metadata a stored chunk carries, each key once: whether it comes from the document its chunk
was cut from, and whether a search filter can name it.

A leaf module: the chunker (which copies a document's keys to its chunks) and the index (whose
filters name keys) both read it, and the index must not import the chunker.
"""

from __future__ import annotations

from typing import NamedTuple

# Between the headings of a chunk's heading path ("heading": "Guide > Install"), whose first is its page's title.
HEADING_SEPARATOR = " > "


def shown_heading(path: str) -> str:
    """A heading path as a reader sees the headings, without the attribute blocks that give them
    anchors (`Basics {#basics}`, as Pandoc, Hugo, Docusaurus and MkDocs write them). The index and
    the answer prompt keep them: the English anchors of the Kubernetes translations' headings
    measurably help search and the model (docs/languages-measurements.md)."""
    return HEADING_SEPARATOR.join(_without_attributes(heading) for heading in path.split(HEADING_SEPARATOR))


def _without_attributes(heading: str) -> str:
    from mdit_py_plugins.attrs.parse import ParseError, parse

    opening = heading.rfind("{")
    if opening <= 0 or not heading.endswith("}"):
        return heading
    try:
        closing, _ = parse(heading[opening:])
    except ParseError:
        return heading
    return heading[:opening].rstrip() if opening + closing == len(heading) - 1 else heading


class MetadataKey(NamedTuple):
    name: str
    # What a loader knows of the whole document, copied to each of its chunks by ingest.chunking.chunker:
    # where it is (a PDF page, a slide, a sheet, a message in a mailbox, an attachment), a mail's
    # subject, sender and date, and whether its text was read by OCR.
    from_document: bool
    filterable: bool = True
    whole_number: bool = False  # a page, a line: a filter's value must be one too


# In the order a filter's error lists them; the rest come from ingest.sync (source, chunk_index), the
# loaders' line units (rows, cells) and the chunker (heading, lines).
CHUNK_METADATA = (
    MetadataKey("source", from_document=False),
    MetadataKey("page", from_document=True, whole_number=True),
    MetadataKey("slide", from_document=True, whole_number=True),
    MetadataKey("sheet", from_document=True),
    MetadataKey("row", from_document=False, whole_number=True),
    MetadataKey("end_row", from_document=False, whole_number=True),
    MetadataKey("cell", from_document=False, whole_number=True),
    MetadataKey("end_cell", from_document=False, whole_number=True),
    MetadataKey("message", from_document=True, whole_number=True),
    MetadataKey("attachment", from_document=True),
    MetadataKey("subject", from_document=True),
    MetadataKey("sender", from_document=True),
    MetadataKey("date", from_document=True),
    # A flag (True), and a filter's value is a string or an integer: no filter could match it.
    MetadataKey("ocr", from_document=True, filterable=False),
    MetadataKey("heading", from_document=False),
    MetadataKey("start_line", from_document=False, whole_number=True),
    MetadataKey("end_line", from_document=False, whole_number=True),
    MetadataKey("chunk_index", from_document=False, whole_number=True),
)
# What a filter can name.
CHUNK_METADATA_KEYS = tuple(key.name for key in CHUNK_METADATA if key.filterable)
DOCUMENT_METADATA_KEYS = tuple(key.name for key in CHUNK_METADATA if key.from_document)
WHOLE_NUMBER_KEYS = frozenset(key.name for key in CHUNK_METADATA if key.whole_number)
