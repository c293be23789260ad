"""The Chroma store on disk against the vector-store protocol: real Chroma, small vectors, no model."""

from __future__ import annotations

import math

import pytest

from ingest.index import ChromaStore, ChunkFilter, VectorStore
from ingest.index.chroma import CHROMA_DIR, chroma_where


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


CHUNKS = {  # id: (vector, text, metadata)
    "a1": (unit(1, 0, 0, 0), "alpha one", {"source": "/notes/a.md", "heading": "A", "chunk_index": 0}),
    "a2": (unit(1, 1, 0, 0), "alpha two", {"source": "/notes/a.md", "heading": "A", "chunk_index": 1}),
    "b1": (unit(0, 1, 0, 0), "beta one", {"source": "/notes/b.pdf", "page": 2, "chunk_index": 0}),
    "c1": (unit(0, 0, 1, 0), "gamma one", {"source": "/notes/c.txt", "start_line": 1, "end_line": 9, "chunk_index": 0}),
}


@pytest.fixture
def store(tmp_path) -> ChromaStore:
    store = ChromaStore("test", tmp_path)
    ids = list(CHUNKS)
    store.add(ids, [CHUNKS[i][0] for i in ids], [CHUNKS[i][1] for i in ids], [CHUNKS[i][2] for i in ids])
    return store


@pytest.mark.fast
def test_a_store_opens_nothing_until_used(tmp_path):
    store: VectorStore = ChromaStore("test", tmp_path)
    assert store.label() == f"Chroma on disk in {tmp_path / CHROMA_DIR}"
    assert store.get([]) == {} and store.get_vectors([]) == {}
    store.drop()  # nothing on disk to drop: nothing is created either
    assert not (tmp_path / CHROMA_DIR).exists()
    assert ChromaStore("test", tmp_path, "http://localhost:9").label() == "the Chroma server http://localhost:9"


@pytest.mark.fast
def test_add_get_query_delete_drop(store, tmp_path):
    assert store.ids() == set(CHUNKS) and store.count() == 4

    got = store.get(["b1", "a1", "missing"])
    assert set(got) == {"a1", "b1"}
    assert (got["b1"].text, got["b1"].metadata, got["b1"].embedding) == ("beta one", CHUNKS["b1"][2], None)
    with_vectors = store.get(["a2"], vectors=True)["a2"]
    assert [round(float(v), 5) for v in with_vectors.embedding] == [round(v, 5) for v in CHUNKS["a2"][0]]
    assert set(store.get_vectors(["c1", "nope"])) == {"c1"}

    nearest = store.query(unit(1, 0.1, 0, 0), 3)
    assert [chunk_id for chunk_id, _ in nearest] == ["a1", "a2", "b1"]
    assert nearest[0][1] == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)  # cosine similarity
    assert all(first[1] >= second[1] for first, second in zip(nearest, nearest[1:]))

    # Adding an id again replaces it.
    store.add(["c1"], [unit(1, 0, 0, 0)], ["gamma again"], [{"source": "/notes/c.txt", "chunk_index": 0}])
    assert store.count() == 4 and store.get(["c1"])["c1"].text == "gamma again"

    store.delete(["a1", "not-there"])
    assert store.ids() == {"a2", "b1", "c1"}

    reopened = ChromaStore("test", tmp_path)  # on disk: another process sees the same chunks
    assert reopened.ids() == {"a2", "b1", "c1"}
    assert ChromaStore("other", tmp_path).ids() == set()  # collections are separate

    store.drop()
    assert ChromaStore("test", tmp_path).ids() == set()
    assert ChromaStore("other", tmp_path).count() == 0


@pytest.mark.fast
@pytest.mark.parametrize(
    ("chunk_filter", "expected"),
    [
        (None, ["a1", "a2", "b1", "c1"]),
        (ChunkFilter(), ["a1", "a2", "b1", "c1"]),
        (ChunkFilter({"source": "/notes/a.md"}), ["a1", "a2"]),
        (ChunkFilter({"page": 2}), ["b1"]),
        (ChunkFilter({"heading": "A", "chunk_index": 1}), ["a2"]),
        (ChunkFilter(sources=["/notes/b.pdf", "/notes/c.txt"]), ["b1", "c1"]),
        (ChunkFilter({"chunk_index": 0}, sources=["/notes/a.md", "/notes/c.txt"]), ["a1", "c1"]),
        (ChunkFilter({"page": 3}), []),
    ],
)
def test_query_with_a_filter_keeps_what_the_filter_accepts(store, chunk_filter, expected):
    found = sorted(chunk_id for chunk_id, _ in store.query(unit(1, 1, 1, 1), 10, chunk_filter))
    assert found == expected
    accepted = sorted(i for i, (_, _, metadata) in CHUNKS.items() if chunk_filter is None or chunk_filter.accepts(metadata))
    assert found == accepted  # the store's filter and the filter's own test agree


@pytest.mark.fast
def test_the_chroma_where_of_a_filter():
    assert chroma_where(None) is None and chroma_where(ChunkFilter()) is None
    assert chroma_where(ChunkFilter({"page": 2})) == {"page": 2}
    assert chroma_where(ChunkFilter(sources=["/a"])) == {"source": {"$in": ["/a"]}}
    assert chroma_where(ChunkFilter({"page": 2}, sources=["/a"])) == {"$and": [{"page": 2}, {"source": {"$in": ["/a"]}}]}
