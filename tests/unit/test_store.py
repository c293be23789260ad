"""What only the Chroma store does: it opens nothing until used, and its `where` for a filter.

The vector-store contract, on Chroma on disk, a Chroma server and the in-memory store, is
tests/integration/test_store_contract.py.
"""

from __future__ import annotations

from ingest.index import ChromaStore, ChunkFilter, VectorStore
from ingest.index.chroma import CHROMA_DIR, chroma_where


def test_a_store_opens_nothing_until_used(tmp_path):
    store: VectorStore = ChromaStore("test", tmp_path)
    assert store.label() == f"Chroma on disk in {tmp_path / CHROMA_DIR}"
    assert store.get([]) == {} and store.get_vectors([]) == {}
    store.drop()  # nothing on disk to drop: nothing is created either
    assert not (tmp_path / CHROMA_DIR).exists()
    assert ChromaStore("test", tmp_path, "http://localhost:9").label() == "the Chroma server http://localhost:9"


def test_the_chroma_where_of_a_filter():
    assert chroma_where(None) is None and chroma_where(ChunkFilter()) is None
    assert chroma_where(ChunkFilter({"page": 2})) == {"page": 2}
    assert chroma_where(ChunkFilter(sources=["/a"])) == {"source": {"$in": ["/a"]}}
    assert chroma_where(ChunkFilter({"page": 2}, sources=["/a"])) == {"$and": [{"page": 2}, {"source": {"$in": ["/a"]}}]}
