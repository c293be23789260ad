"""The manifest and keyword-index contract, on each database the factory opens: SQLite in the
index folder and a real PostgreSQL (tests/postgres_server.py). The Index facade relies on exactly
these behaviours; PostgreSQL's keyword index must rank as the SQLite FTS5 one does, scores included."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zlib
from pathlib import Path
from typing import Iterator

import pytest

from ingest.errors import IndexBusyError, UsageError
from ingest.index.database import IndexDatabase, SourceRecord
from ingest.index.databases import DATABASES, database_kind, open_database
from ingest.index.keywords import KeywordIndex
from ingest.index.postgres_index import PostgresDatabase, PostgresKeywordIndex
from ingest.index.schema import connect
from ingest.index.sqlite_database import SqliteDatabase
from tests.conftest import REPO
from tests.integration.test_cjk import NOTES as CJK_NOTES

BACKENDS = [pytest.param("sqlite", marks=pytest.mark.fast), "postgres"]

TEXTS = {
    **CJK_NOTES,
    "oven": "Bake the cardamom buns at 200 degrees for twelve minutes; the oven runs hot, so check them early.",
    "buns": "Cardamom buns: knead the dough, let it rise, roll, cut and twist. Baking takes twelve minutes.",
    "cache": "TERNLOG_CACHE_DIR defaults to ~/.cache/ternlog; set it to move the cache. The cache dir is pruned weekly.",
    "café": "The café by the harbour sells buns; cafés nearby close at six. Résumé reviews happen there too.",
    "empty": "",
    "filler": "the of and to in is was it for on that with as at by this " * 3,
}
QUERIES = [
    "cardamom buns oven", "How long do the buns bake?", "TERNLOG_CACHE_DIR default", "cache dir", "cafe resume",
    "量化", "语言模型", "프롬프트 형식", "양자화", "秘鲁首都", "the of and", "running ovens baking",
]


@pytest.fixture(params=BACKENDS)
def database(request, tmp_path) -> Iterator[IndexDatabase]:
    url = request.getfixturevalue("postgres_server") if request.param == "postgres" else None
    database = open_database(tmp_path / "index", f"tables-{zlib.crc32(str(tmp_path).encode()):08x}", url)
    yield database
    with database.transaction():
        database.manifest.forget_collection()
        database.keywords.forget_collection()
    database.close()


def add_texts(database: IndexDatabase, texts: dict[str, str]) -> None:
    with database.transaction():
        database.keywords.add(list(texts), list(texts.values()), [f"/notes/{chunk_id}" for chunk_id in texts])


def fts5_reference(tmp_path: Path, texts: dict[str, str]) -> KeywordIndex:
    db = connect(tmp_path / "reference.sqlite3")
    reference = KeywordIndex(lambda: db, "reference")
    db.execute("BEGIN")
    reference.add(list(texts), list(texts.values()), [f"/notes/{chunk_id}" for chunk_id in texts])
    db.execute("COMMIT")
    return reference


@pytest.mark.fast
def test_the_factory_opens_the_database_the_url_names(tmp_path):
    assert type(open_database(tmp_path, "kb", None)) is SqliteDatabase
    assert type(open_database(tmp_path, "kb", "postgresql://rag@db.example/team")) is PostgresDatabase
    assert database_kind("POSTGRES://db.example/kb") is DATABASES[1]
    with pytest.raises(UsageError) as error:
        open_database(tmp_path, "kb", "mysql://rag:s3cret@db.example/team")
    assert str(error.value) == (
        "index.url 'mysql://rag@db.example/team' names no database rag can keep an index in; give no URL for "
        "SQLite in the index folder; or postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector."
    )


def test_the_manifest_keeps_the_build_record_and_the_source_rows(database):
    manifest = database.manifest
    assert manifest.collection_record() is None and manifest.sources() == {} and manifest.counts() == (0, 0)
    with database.transaction():
        manifest.record_collection({"embedding_model": "m", "chunk_tokens": 200}, "postgresql://rag@db/kb")
    created = manifest.collection_record()
    assert created.fingerprint == {"embedding_model": "m", "chunk_tokens": 200}
    assert created.vector_store == "postgresql://rag@db/kb" and created.last_sync is None
    with database.transaction():  # recorded again: the new fingerprint, the first creation time
        manifest.record_collection({"embedding_model": "m", "chunk_tokens": 300}, "postgresql://rag@db/kb")
    assert manifest.collection_record().created_at == created.created_at
    assert manifest.collection_record().fingerprint["chunk_tokens"] == 300

    a = SourceRecord("/notes/a.md", 10, 1_700_000_000_123_456_789, "aa", ["a1", "a2"], 1.5)
    b = SourceRecord("/notes/b.md", 20, 2, "bb", ["b1"], 2.5)
    with database.transaction():
        manifest.put_sources([a, b])
    assert manifest.sources() == {a.path: a, b.path: b} and manifest.counts() == (2, 3)
    a2 = SourceRecord(a.path, 11, 3, "a2", ["a3"], 3.5)
    with database.transaction():
        manifest.put_sources([a2])  # a file ingested again replaces its row
        manifest.touch_sources([SourceRecord(b.path, 21, 4, "bb", ["b1"], 2.5)])
    assert manifest.sources()[a.path] == a2 and (manifest.sources()[b.path].size, manifest.sources()[b.path].mtime_ns) == (21, 4)
    manifest.mark_synced()
    [(name, files, chunks, location, last_sync)] = [row for row in manifest.all_collections() if row[0] == manifest.collection]
    assert (files, chunks, location) == (2, 2, "postgresql://rag@db/kb") and last_sync > created.created_at
    with database.transaction():
        manifest.delete_sources([a2])
    assert list(manifest.sources()) == [b.path]
    with database.transaction():
        manifest.forget_collection()
    assert manifest.collection_record() is None and manifest.sources() == {}


def test_the_keyword_index_ranks_and_scores_as_fts5_does(database, tmp_path):
    add_texts(database, TEXTS)
    reference = fts5_reference(tmp_path, TEXTS)
    for query in QUERIES:
        got, expected = database.keywords.query(query, 5), reference.query(query, 5)
        assert [chunk_id for chunk_id, _ in got] == [chunk_id for chunk_id, _ in expected], query
        if "_" not in query:  # FTS5 counts a phrase's adjacent occurrences; PostgreSQL, those of its rarest token
            assert [score for _, score in got] == pytest.approx([score for _, score in expected], rel=1e-9), query
    assert [chunk_id for chunk_id, _ in database.keywords.query("量化", 5)] == ["zh/量化.md"]
    assert database.keywords.query("cardamom", 5, sources=["/notes/buns"])[0][0] == "buns"
    assert database.keywords.query("cardamom", 5, sources=[]) == [] and database.keywords.query("the of", 5) == []

    # Forgetting chunks takes them out of the statistics too: the scores are those of an index without them.
    with database.transaction():
        database.keywords.forget(["oven", "zh/隐私.md", "not-there"])
    rest = {chunk_id: text for chunk_id, text in TEXTS.items() if chunk_id not in ("oven", "zh/隐私.md")}
    (tmp_path / "again").mkdir()
    reference = fts5_reference(tmp_path / "again", rest)
    for query in QUERIES:
        got, expected = database.keywords.query(query, 5), reference.query(query, 5)
        assert [chunk_id for chunk_id, _ in got] == [chunk_id for chunk_id, _ in expected], query
        if "_" not in query:  # FTS5 counts a phrase's adjacent occurrences; PostgreSQL, those of its rarest token
            assert [score for _, score in got] == pytest.approx([score for _, score in expected], rel=1e-9), query
    assert database.keywords.chunk_ids() == set(rest)
    assert database.keywords.listed(["oven", "buns", "cache", "nope"]) == {"buns", "cache"}


def test_a_transaction_that_fails_writes_nothing(database):
    with pytest.raises(RuntimeError), database.transaction():
        database.manifest.put_sources([SourceRecord("/notes/a.md", 1, 1, "aa", ["a1"], 0.0)])
        database.keywords.add(["a1"], ["alpha"], ["/notes/a.md"])
        raise RuntimeError("killed midway")
    assert database.manifest.sources() == {} and database.keywords.chunk_ids() == set()
    assert database.keywords.query("alpha", 5) == []


HOLD_LOCK = """
import sys, time
from pathlib import Path
from ingest.index.databases import open_database
with open_database(Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None).writer_lock():
    print("held", flush=True)
    time.sleep(600)
"""


def test_the_writer_lock_is_released_when_its_holder_is_killed(database):
    url = getattr(database, "url", "")
    path = getattr(database, "path", Path("/unused"))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(path), database.manifest.collection, url],
        stdout=subprocess.PIPE, text=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert holder.stdout.readline() == "held\n"
        assert database.writer_busy()
        with pytest.raises(IndexBusyError), database.writer_lock(wait=False):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    deadline = time.monotonic() + 10
    while database.writer_busy():  # the server ends the killed process's session at once
        assert time.monotonic() < deadline, "the killed holder's lock was never released"
        time.sleep(0.1)
    with database.writer_lock(wait=False):
        assert database.writer_busy()  # held: by this process now


SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def ranked(hits: list[tuple[str, float]]) -> list[tuple[float, str]]:
    """The hits in order, chunks of equal score (abstracts alike) by id: FTS5 orders those by when they
    were added, PostgreSQL by id. The last score's chunks are left out: which of them make the k is a tie."""
    last = round(hits[-1][1], 9) if hits else None
    return sorted((-round(score, 9), chunk_id) for chunk_id, score in hits if round(score, 9) != last)


@pytest.mark.skipif(not SCIFACT.is_dir(), reason=f"needs the SciFact corpus at {SCIFACT} (shared data)")
def test_the_pruned_keyword_search_finds_the_exact_bm25_ranking_on_a_real_corpus(postgres_server, tmp_path, monkeypatch):
    """PostgreSQL skips scoring chunks that hold only common words when they cannot reach the k best
    (MaxScore): on SciFact abstracts and queries its k best are FTS5's exact ones, scores included,
    and most searches did skip some words."""
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as corpus:
        texts = {document["_id"]: f"{document['title']}\n{document['text']}" for document in map(json.loads, corpus)}
    texts = dict(list(texts.items())[:3000])
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as lines:
        queries = [json.loads(line)["text"] for line in lines][:150]
    database = open_database(tmp_path / "index", f"scifact-{zlib.crc32(str(tmp_path).encode()):08x}", postgres_server)
    add_texts(database, texts)
    reference = fts5_reference(tmp_path, texts)
    pruned = []
    scored = PostgresKeywordIndex._top

    def recording(self, essential, rest, *args):
        found = scored(self, essential, rest, *args)
        pruned.append(bool(rest))
        return found

    monkeypatch.setattr(PostgresKeywordIndex, "_top", recording)
    searches = skipped = 0
    try:
        for query in queries:
            for k in (5, 40):
                pruned.clear()
                got, expected = database.keywords.query(query, k), reference.query(query, k)
                assert [score for _, score in got] == pytest.approx([score for _, score in expected], rel=1e-9)
                assert ranked(got) == ranked(expected), (query, k)
                searches, skipped = searches + 1, skipped + pruned[-1]
        assert skipped > searches / 2, f"{skipped} of {searches} searches skipped a word"
    finally:
        with database.transaction():
            database.keywords.forget_collection()
