"""Quoted evidence cites the file's own lines end to end: tests/unit/test_evidence_lines.py's
document, with its split tables and code blocks, ingested, retrieved and quoted with the real
embedding model."""

from __future__ import annotations

from ingest.text import fold
from rag.evidence import quote_evidence
from tests.unit.test_evidence_lines import DOCUMENT, SCRIPT, SERVICES


def test_evidence_from_an_index_cites_the_files_lines(tmp_path):
    """End to end: the file ingested with small chunks, retrieved, quoted with the real embedding model."""
    import rag
    from rag.chain import IndexRetriever
    from rag.retrieval import embed_texts
    from tests.conftest import make_settings

    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "lab.md").write_text(DOCUMENT)
    settings = make_settings(tmp_path / "home", chunking={"chunk_tokens": 80, "overlap_tokens": 0})
    rag.ingest([folder], settings)
    file_lines = DOCUMENT.split("\n")
    for question, line in [("Which port does svc-33 use?", SERVICES[33]), ("What baud rate does lab-36 use?", SCRIPT[36])]:
        sources = IndexRetriever.from_settings(settings, 5).invoke(question)
        assert any(doc.page_content.startswith(("| service |", "```python")) for doc in sources)
        evidence = quote_evidence(question, "", sources, lambda texts: embed_texts(texts, settings))
        quote = next(q for q in evidence if line.strip() in q.text)
        assert line in file_lines[quote.location["start_line"] - 1 : quote.location["end_line"]]
        for quote in evidence:
            cited = file_lines[quote.location["start_line"] - 1 : quote.location["end_line"]]
            assert fold(quote.text) in fold(" ".join(cited)) and fold(cited[0]).split()[-1] in fold(quote.text)
