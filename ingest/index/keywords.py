"""The keyword index: every chunk's text in SQLite FTS5, ranked with BM25.

It lives in the manifest's database and is written in the same transactions as the manifest
rows that list the chunks, so it mirrors exactly what the manifest has committed (which makes
`listed` the consistent view of which chunks exist). Writes run inside the caller's transaction.
"""

from __future__ import annotations

import re
from typing import Sequence

from ingest.index.manifest import CollectionTables

# Bump when a change to the keyword index makes an existing one differ from what a fresh ingest gives.
KEYWORD_INDEX_VERSION = 1
# Chunk ids per SQL statement: well under SQLite's limit on bound parameters.
_SQL_BATCH = 500

SCHEMA = """
-- The keyword index: every chunk's text in SQLite FTS5, written in the same transactions as
-- the manifest rows that list the chunks.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (collection, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (collection, source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_words USING fts5(
    text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""
# FTS5 query syntax is not for users: their words are quoted and OR-ed, and bm25 ranks them.
_WORD = re.compile(r"\w+")
# Words that carry no topic: matched, they only rank chunks by how much filler they hold.
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves""".split()
)


class KeywordIndex(CollectionTables):
    """One collection's chunks in the keyword index (in the manifest's SQLite file)."""

    def add(self, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]) -> None:
        for chunk_id, text, source in zip(ids, texts, sources):
            rowid = self.db.execute(
                "INSERT INTO chunks (collection, chunk_id, source) VALUES (?, ?, ?)",
                (self.collection, chunk_id, source),
            ).lastrowid
            self.db.execute("INSERT INTO chunk_words (rowid, text) VALUES (?, ?)", (rowid, text))

    def forget(self, chunk_ids: Sequence[str]) -> None:
        for start in range(0, len(chunk_ids), _SQL_BATCH):
            batch = list(chunk_ids[start : start + _SQL_BATCH])
            marks = ",".join("?" * len(batch))
            rows = f"SELECT id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})"
            self.db.execute(f"DELETE FROM chunk_words WHERE rowid IN ({rows})", (self.collection, *batch))
            self.db.execute(
                f"DELETE FROM chunks WHERE collection = ? AND chunk_id IN ({marks})", (self.collection, *batch)
            )

    def forget_collection(self) -> None:
        self.db.execute(
            "DELETE FROM chunk_words WHERE rowid IN (SELECT id FROM chunks WHERE collection = ?)", (self.collection,)
        )
        self.db.execute("DELETE FROM chunks WHERE collection = ?", (self.collection,))

    def query(self, query: str, k: int, sources: Sequence[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches."""
        words = [word for word in _WORD.findall(query.lower()) if word not in _STOPWORDS]
        if not words or sources == []:
            return []
        match = " OR ".join(f'"{word}"' for word in dict.fromkeys(words))
        source_filter = f" AND chunks.source IN ({','.join('?' * len(sources))})" if sources else ""
        rows = self.db.execute(
            "SELECT chunks.chunk_id, -bm25(chunk_words) FROM chunk_words "
            "JOIN chunks ON chunks.id = chunk_words.rowid "
            f"WHERE chunk_words MATCH ? AND chunks.collection = ?{source_filter} ORDER BY bm25(chunk_words) LIMIT ?",
            (match, self.collection, *(sources or ()), k),
        )
        return [(chunk_id, score) for chunk_id, score in rows]

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of `chunk_ids` in the keyword index."""
        if not chunk_ids:
            return set()
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.execute(
            f"SELECT chunk_id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})",
            (self.collection, *chunk_ids),
        )
        return {chunk_id for (chunk_id,) in rows}

    def chunk_ids(self) -> set[str]:
        rows = self.db.execute("SELECT chunk_id FROM chunks WHERE collection = ?", (self.collection,))
        return {chunk_id for (chunk_id,) in rows}
