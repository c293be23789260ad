"""Quoted evidence cites the file's own lines, also from the pieces of a split table or code block.

A piece of a long table repeats the header and separator rows at its top, a piece of a long code
block its opening fence, and every piece of a split code block ends with a closing fence: lines
that are not at that place in the file. ingest.chunking.lines.added_lines tells them from the body and
its start_line-end_line, and a quote's lines are counted from the first cited line. Each test reads
the file's lines and compares text.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from langchain_core.documents import Document

from ingest.chunking.chunker import Chunker
from ingest.chunking.lines import added_lines
from ingest.loaders import load_markdown, loader_for
from ingest.text import fold
from rag.evidence import _evidence, _passages, cited_span, quote_evidence
from rag.retrieval import LOCATION_KEYS, chunk_body
from rag.settings import ChunkingSettings, load_settings
from tests.helpers import REALDOCS, requires_realdocs


SERVICES = [f"| svc-{n} | {5000 + n} | team {n} |" for n in range(40)]
SCRIPT = [f"port_{n} = open_port(host='lab-{n}', baud={9600 + n})" for n in range(40)]
OUTPUT = [f"lab-{n}: ready after {n * 7} ms" for n in range(30)]
# A long table, a long code block followed by a short line, a section ending with a short code
# block after a long one (a split block's last piece joins what follows it), an unclosed fence.
DOCUMENT = "\n".join(
    ["# Lab services", "", "Every service of the lab network, with its port:", "", "| service | port | owner |", "|---|---|---|"]
    + SERVICES
    + ["", "## Calibration script", "", "```python"]
    + SCRIPT
    + ["```", "Run it once a day.", "", "## Output", "", "```text"]
    + OUTPUT
    + ["```", "", "Done:", "```", "ok", "```", "", "## Trailer", "", "```"]
    + SCRIPT[:12]
) + "\n"


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    from ingest.embedding import LocalEmbeddings

    home = tmp_path_factory.mktemp("evidence-lines-home")
    settings = load_settings(environ={}, cwd=home, home=home)
    return LocalEmbeddings(settings.embedding, settings.cache_path).token_counter


def as_retrieved(source: Path, chunks) -> list[Document]:
    """The chunks as retrieval hands them to the evidence: the body without its heading path."""
    documents = []
    for chunk in chunks:
        location = {key: chunk.metadata[key] for key in LOCATION_KEYS if key in chunk.metadata}
        documents.append(Document(page_content=chunk_body(chunk.text, location), metadata={"source": str(source), **location}))
    return documents


def assert_cites_its_lines(file_lines: list[str], quote_body: str, location: dict) -> None:
    """The quote's text (as the chunk body has it) is the file's lines at its start_line-end_line:
    the first line ends with the quote's first line, the last starts with its last, lines between are equal."""
    cited = file_lines[location["start_line"] - 1 : location["end_line"]]
    quoted = quote_body.split("\n")
    assert len(cited) == len(quoted), (location, quote_body)
    if len(quoted) == 1:
        assert quoted[0] in cited[0], (location, quote_body)
        return
    assert cited[0].endswith(quoted[0]) and cited[-1].startswith(quoted[-1]), (location, quote_body)
    assert cited[1:-1] == quoted[1:-1], (location, quote_body)


@pytest.fixture(scope="module")
def lab_file(tmp_path_factory, counter):
    path = tmp_path_factory.mktemp("evidence-lines") / "lab.md"
    path.write_text(DOCUMENT)
    chunks = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0)).split(load_markdown(path.read_bytes()))
    return path, chunks, as_retrieved(path, chunks)


def test_the_document_has_continued_pieces_of_each_kind(lab_file):
    _, _, documents = lab_file
    bodies = [doc.page_content for doc in documents]
    continued_table = [b for b in bodies if b.startswith("| service | port | owner |\n|---|---|---|\n| svc-") and "| svc-0 |" not in b]
    continued_code = [b for b in bodies if b.startswith("```python\nport_") and "port_0 " not in b]
    assert len(continued_table) >= 2 and len(continued_code) >= 2
    assert any(b.startswith("```text\n") and b.endswith("Done:\n```\nok\n```") for b in bodies)  # a last piece, joined
    assert any(b.startswith("```\nport_") and "port_0 " not in b for b in bodies)  # an unclosed fence, continued


def test_every_sentence_of_every_chunk_cites_its_own_lines(lab_file):
    path, _, documents = lab_file
    file_lines = path.read_text().split("\n")
    passages, _ = _passages(documents)
    assert len(passages) > 60
    for passage in passages:
        quote = _evidence(1.0, passage)
        assert_cites_its_lines(file_lines, passage.document.page_content[passage.start : passage.end], quote.location)


def test_the_cited_part_of_each_body_is_the_files_lines(lab_file):
    path, _, documents = lab_file
    file_lines = path.read_text().split("\n")
    for doc in documents:
        start, end = cited_span(doc)
        cited = file_lines[doc.metadata["start_line"] - 1 : doc.metadata["end_line"]]
        assert doc.page_content[start:end] == "\n".join(cited), doc.metadata


@pytest.mark.parametrize(
    ("question", "line"),
    [
        ("Which port does svc-31 use?", SERVICES[31]),
        ("Which port does svc-17 use?", SERVICES[17]),
        ("What baud rate does lab-29 use?", SCRIPT[29]),
        ("When is lab-22 ready?", OUTPUT[22]),
    ],
)
def test_a_quote_from_a_continued_piece_cites_the_line_it_quotes(lab_file, question, line):
    path, _, documents = lab_file
    file_lines = path.read_text().split("\n")
    # The piece that holds the line, as retrieval's best hit, and the first table piece after it.
    sources = [next(doc for doc in documents if line in doc.page_content), documents[1]]
    assert "| svc-0 |" in sources[1].page_content and sources[0] is not sources[1]
    evidence = quote_evidence(question, "", sources, lambda texts: np.zeros((len(texts), 4)), max_quotes=1)
    location = evidence[0].location
    cited = file_lines[location["start_line"] - 1 : location["end_line"]]
    # The quote is the lines it cites (code lines read on as one sentence), the line asked about among them.
    assert line in cited and fold(" ".join(cited)) == fold(evidence[0].text)


def test_a_repeated_header_or_fence_is_never_quoted_from_a_continued_piece(lab_file):
    _, _, documents = lab_file
    passages, _ = _passages(documents)
    first_piece = next(doc for doc in documents if "| svc-0 |" in doc.page_content)
    quoting_the_header = [p for p in passages if "| service | port | owner |" in p.text]
    assert quoting_the_header and all(p.document is first_piece for p in quoting_the_header)
    for passage in passages:
        start, end = cited_span(passage.document)
        assert start <= passage.start and passage.end <= end


@pytest.mark.parametrize(
    ("body", "lines", "added"),
    [
        ("just\ntext", (3, 4), (0, 0)),
        ("| a | b |\n|---|---|\n| 1 | 2 |", (9, 9), (2, 0)),  # a continued table
        ("```py\nx = 1\n```", (4, 5), (0, 1)),  # a code block's first piece
        ("```py\nx = 1\ny = 2\n```", (8, 9), (1, 1)),  # a later piece
        ("```py\nx = 1\n```\nThen run it:\n```sh\nrun\n```", (8, 13), (1, 0)),  # a last piece and what followed it
        ("Example:\n```py\nx = 1\n```", (2, 4), (0, 1)),  # a line before a code block's first piece
        ("| a | b |\n|---|---|\n| 1 | 2 |\n\n```sh\nrun\n```", (9, 13), (2, 0)),  # a table's last piece, then code
        ("```py\nx = 1\n```", (4, 4), (1, 1)),
    ],
)
def test_added_lines_by_hand(body, lines, added):
    assert added_lines(body, *lines) == added


@requires_realdocs
def test_realdocs_chunk_bodies_are_their_files_prepared_lines_but_for_the_added_ones(counter):
    """Every chunk the chunker makes of the real documents reads right: its body less the added
    lines is the text it cites (as the chunker prepared it: markup reduced on its lines)."""
    chunker = Chunker(counter, ChunkingSettings())
    checked = with_added = 0
    for path in sorted(p for p in REALDOCS.rglob("*") if p.is_file()):
        loader = loader_for(path)
        if loader is None:
            continue
        for document in loader(path.read_bytes()):
            prepared, _ = chunker._prepare(document)
            for doc in as_retrieved(path, chunker.split([document])):
                if "start_line" not in doc.metadata:
                    continue
                start, end = cited_span(doc)
                assert_cites_its_lines(prepared.lines, doc.page_content[start:end], doc.metadata)
                checked += 1
                with_added += (start, end) != (0, len(doc.page_content))
    assert checked > 2500 and with_added > 100

