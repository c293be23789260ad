"""The index database's numbered migrations: an index made before they were numbered opens and keeps
its data, a newer one is refused in one line, concurrent first opens migrate once. No model."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from typer.testing import CliRunner

from ingest.errors import IndexTooNewError
from ingest.index import CHUNKER_VERSION, MANIFEST_FILE, Index
from ingest.index.schema import MIGRATIONS, SCHEMA_VERSION, connect, schema_version
from rag.cli import app
from tests.conftest import make_settings

runner = CliRunner()

# The tables as the code before numbered migrations wrote them (manifest.py and keywords.py then),
# with no user_version: what every index made until now looks like.
UNNUMBERED_SCHEMA = """
CREATE TABLE IF NOT EXISTS collections (
    name TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    created_at REAL NOT NULL,
    last_sync REAL
);
CREATE TABLE IF NOT EXISTS sources (
    collection TEXT NOT NULL,
    path TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    chunk_ids TEXT NOT NULL,
    ingested_at REAL NOT NULL,
    PRIMARY KEY (collection, path)
);
CREATE TABLE IF NOT EXISTS vector_stores (
    collection TEXT PRIMARY KEY,
    location TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (collection, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (collection, source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""
# The build record of an index whose chunks today's chunker would make: the schema is what is old.
FINGERPRINT = (
    f'{{"chunk_tokens": 200, "chunker_version": {CHUNKER_VERSION}, "embedding_dimension": 384, '
    '"embedding_model": "all-MiniLM-L6-v2", "keyword_index": 1, "overlap_tokens": 32}'
)


def write_unnumbered_index(home) -> None:
    """An index of one collection with two files, written as the code before migrations did."""
    (home / "index").mkdir(parents=True)
    db = sqlite3.connect(home / "index" / MANIFEST_FILE, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.executescript(UNNUMBERED_SCHEMA)
    db.execute("INSERT INTO collections VALUES ('default', ?, 1700000000.0, 1700000100.0)", (FINGERPRINT,))
    db.execute("INSERT INTO vector_stores VALUES ('default', 'disk')")
    rows = [
        ("/notes/buns.md", 120, 11, "aa", '["buns-0", "buns-1"]', 1700000050.0),
        ("/notes/port.txt", 80, 22, "bb", '["port-0"]', 1700000060.0),
    ]
    db.executemany("INSERT INTO sources VALUES ('default', ?, ?, ?, ?, ?, ?)", rows)
    texts = {
        "buns-0": ("/notes/buns.md", "Cardamom buns bake at 220 degrees."),
        "buns-1": ("/notes/buns.md", "Knead the dough for ten minutes."),
        "port-0": ("/notes/port.txt", "The service port runs at 9600 baud."),
    }
    for rowid, (chunk_id, (source, text)) in enumerate(texts.items(), start=1):
        db.execute("INSERT INTO chunks VALUES (?, 'default', ?, ?)", (rowid, chunk_id, source))
        db.execute("INSERT INTO chunk_terms (rowid, text) VALUES (?, ?)", (rowid, text))
    assert schema_version(db) == 0
    db.close()


def test_an_index_from_before_numbered_migrations_opens_and_keeps_its_data(home):
    write_unnumbered_index(home)
    settings = make_settings(home, embedding={"model": "all-MiniLM-L6-v2"})
    with Index(settings) as index:
        assert index.exists() and index.settings_differences() == []
        assert {path: record.chunk_ids for path, record in index.sources().items()} == {
            "/notes/buns.md": ["buns-0", "buns-1"], "/notes/port.txt": ["port-0"],
        }
        stats = index.stats()
        assert (stats.files, stats.chunks, stats.created_at, stats.last_sync) == (2, 3, 1700000000.0, 1700000100.0)
        assert [c.to_dict() for c in index.collections()] == [
            {"name": "default", "files": 2, "chunks": 3, "vector_store": "disk", "last_sync": 1700000100.0}
        ]
        assert [chunk_id for chunk_id, _ in index.keyword_query("baud rate of the service port", 5)] == ["port-0"]
        assert index.keyword_chunk_ids() == {"buns-0", "buns-1", "port-0"}
    with sqlite3.connect(home / "index" / MANIFEST_FILE) as db:
        assert schema_version(db) == SCHEMA_VERSION == len(MIGRATIONS)


def test_a_new_index_gets_every_migration(tmp_path):
    db = connect(tmp_path / MANIFEST_FILE)
    assert schema_version(db) == SCHEMA_VERSION
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"collections", "sources", "vector_stores", "chunks", "chunk_terms"} <= tables
    db.close()


def test_only_the_missing_migrations_run_in_order(tmp_path):
    path = tmp_path / MANIFEST_FILE
    db = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[0][1](db)  # version 1; a keyword table from before CJK bigrams appears beside it
    db.execute("CREATE VIRTUAL TABLE chunk_words USING fts5(text)")
    db.execute("INSERT INTO chunks VALUES (1, 'kb', 'zh-0', '/zh.md')")
    db.execute("INSERT INTO chunk_words (rowid, text) VALUES (1, '运行大型语言模型')")
    db.execute("PRAGMA user_version = 1")
    db.close()

    db = connect(path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "chunk_words" not in tables and schema_version(db) == SCHEMA_VERSION
    assert db.execute("SELECT text FROM chunk_terms WHERE rowid = 1").fetchone() == (" 运行 行大 大型 型语 语言 言模 模型 ",)
    db.close()


def test_concurrent_first_opens_migrate_once(tmp_path):
    path = tmp_path / MANIFEST_FILE
    errors: list[BaseException] = []

    def open_it() -> None:
        try:
            connect(path).close()
        except BaseException as exc:  # noqa: BLE001 (reported by the assert below)
            errors.append(exc)

    threads = [threading.Thread(target=open_it) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with sqlite3.connect(path) as db:
        assert schema_version(db) == SCHEMA_VERSION


def test_an_index_of_a_newer_schema_is_refused_in_one_line_and_left_as_it_is(home):
    write_unnumbered_index(home)
    path = home / "index" / MANIFEST_FILE
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = path.read_bytes()

    with pytest.raises(IndexTooNewError) as error:
        connect(path)
    assert str(error.value) == (
        f"The index database {path} has schema version {SCHEMA_VERSION + 1}; this rag knows versions up to "
        f"{SCHEMA_VERSION}. Upgrade rag to open it (an older rag must not write to it)."
    )
    result = runner.invoke(app, ["status"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr == f"Error: {error.value}\n"
    assert path.read_bytes() == before
