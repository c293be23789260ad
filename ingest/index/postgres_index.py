"""The manifest, the build record and the keyword index in PostgreSQL, beside the vectors.

`index.url = "postgresql://..."` chooses this backend: every table of a collection is in that
database (schema `rag`, made by the numbered migrations of postgres.py), so any number of rag
processes on any machines share one knowledge base. The vector store (postgres.py) uses the same
connection, so the Index facade writes a file's vectors, keyword rows and manifest row in one
transaction: a crash leaves all of them or none, and nothing needs repairing.

The keyword index is BM25 over term statistics kept in tables, with rag's own analysis of the
text: the tokens are exactly those the SQLite FTS5 index holds (`keywords.analysed`: CJK runs as
bigrams, then FTS5's own tokenizer, stemming included), and the score is FTS5's bm25() formula
(k1 1.2, b 0.75, its idf), so a query ranks chunks alike on both, in every language.

Writers hold session-level advisory locks on a connection of their own: a process that dies,
however it dies, ends its session and so releases them. An ingest of folders into a collection
that exists locks those folders (and shares the collection with other such ingests), so ingests
of different folders write at once and two of the same folder, or of a folder and one inside it,
take turns; what concerns the whole collection (making it, recording what builds it, dropping it
for a rebuild, a repair, a copy) holds the collection alone.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Mapping, Sequence

from ingest.errors import IndexBusyError
from ingest.index.database import SourceRecord, StoredCollection, Writer
from ingest.index.keywords import MAX_LETTER_TERMS, analysed, searched_terms
from ingest.index.postgres import SCHEMA, _connect, _shared_connection
from ingest.index.store import url_without_password

if TYPE_CHECKING:
    import psycopg

# The first keys of the writers' advisory locks (the second is the hash of the collection's name, or
# of the collection's and a folder's); the vector store's schema lock uses another.
_WRITER_LOCK = 0x72616777  # "ragw"
_FOLDER_LOCK = 0x72616766  # "ragf"
# FTS5's bm25() constants, and the idf it gives a word most chunks hold.
_K1, _B = 1.2, 0.75
_MIN_IDF = 1e-6
# Slack for the sums of floating-point scores, far above their rounding, far below a score's difference.
_ROUNDING = 1e-9


@dataclass(frozen=True)
class _Phrase:
    """A query phrase (its tokens; one for most words), its weight (idf times its count in the query)
    and the most it adds to the score of a chunk of the collection."""

    terms: tuple[str, ...]
    weight: float
    ceiling: float  # the most it adds to a chunk's score


class PostgresDatabase:
    """One collection's manifest and keyword index in the PostgreSQL database at `url`."""

    writes_with_vectors = True

    def __init__(self, url: str, collection: str):
        self.url = url
        self.collection = collection
        self.manifest = PostgresManifest(self)
        self.keywords = PostgresKeywordIndex(self)

    def exists(self) -> bool:
        return True  # its tables are made when it is first opened; a missing collection has no rows

    @contextlib.contextmanager
    def connection(self) -> Iterator["psycopg.Connection"]:
        """The process's connection to the database, for one statement or the caller's transaction."""
        shared = _shared_connection(self.url)
        with shared.lock:
            yield shared.get()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        # Nested in an open transaction (the facade's around a whole write), it is a savepoint.
        with self.connection() as connection, connection.transaction():
            yield

    def rows(self, statement: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple[Any, ...]]:
        with self.connection() as connection:
            cursor = connection.execute(statement, parameters)
            return cursor.fetchall() if cursor.description else []

    def close(self) -> None:
        """The connection is shared by the process's stores and indexes on this URL: it stays open."""

    @contextlib.contextmanager
    def writer_lock(
        self, wait: bool = True, on_wait: Callable[[], None] | None = None, folders: Sequence[Path] | None = None
    ) -> Iterator[None]:
        holder = _connect(self.url)  # its own session: the locks live exactly as long as it
        try:
            waited = False
            for function, key in self._writer_locks(folders):
                taken = holder.execute(f"SELECT pg_try_{function}(%s, hashtext(%s))", key).fetchone()
                if not (taken and taken[0]):
                    if not wait:
                        raise self.busy_error()
                    if on_wait and not waited:
                        on_wait()
                    waited = True
                    holder.execute(f"SELECT pg_{function}(%s, hashtext(%s))", key)
            yield
        finally:
            holder.close()

    def _writer_locks(self, folders: Sequence[Path] | None) -> list[tuple[str, tuple[int, str]]]:
        """The advisory locks a writer takes, in the one order every writer takes them (so no two
        wait for each other): the collection's, then per folder its own and its parents'.

        A writer of the whole collection holds the collection's lock alone. A writer of folders
        shares it with other writers of folders, and holds each folder's lock alone and its parent
        folders' shared: two writers of one folder, or of a folder and one inside it, take turns;
        writers of folders apart do not. (pg_advisory_lock, or _shared, and its key.)
        """
        collection = ("advisory_lock_shared" if folders else "advisory_lock", (_WRITER_LOCK, self.collection))
        alone: dict[str, bool] = {}
        for folder in folders or ():
            path = PurePosixPath(folder)
            alone[str(path)] = True
            for parent in path.parents:
                alone.setdefault(str(parent), False)
        return [collection] + [
            ("advisory_lock" if alone[path] else "advisory_lock_shared", (_FOLDER_LOCK, f"{self.collection}\n{path}"))
            for path in sorted(alone)
        ]

    def busy_error(self) -> IndexBusyError:
        return IndexBusyError(f"the collection {self.collection!r} in PostgreSQL at {url_without_password(self.url)}")

    def writer_busy(self, folders: Sequence[Path] | None = None) -> bool:
        taken = []
        try:
            for function, key in self._writer_locks(folders):
                if not self.rows(f"SELECT pg_try_{function}(%s, hashtext(%s))", key)[0][0]:
                    return True
                taken.append((function, key))
            return False
        finally:
            for function, key in taken:
                unlock = function.replace("advisory_lock", "advisory_unlock")
                self.rows(f"SELECT pg_{unlock}(%s, hashtext(%s))", key)


class PostgresManifest:
    """The build record and source rows of one collection (`ManifestTables`)."""

    def __init__(self, database: PostgresDatabase):
        self.database = database
        self.collection = database.collection

    def collection_record(self) -> StoredCollection | None:
        rows = self.database.rows(
            f"SELECT fingerprint, created_at, last_sync, vector_store FROM {SCHEMA}.builds WHERE collection = %s",
            (self.collection,),
        )
        return StoredCollection(*rows[0]) if rows else None

    def record_collection(self, fingerprint: dict[str, Any], location: str, created_at: float | None = None) -> None:
        self.database.rows(
            f"INSERT INTO {SCHEMA}.builds (collection, fingerprint, created_at, vector_store) VALUES (%s, %s::jsonb, %s, %s) "
            "ON CONFLICT (collection) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, vector_store = EXCLUDED.vector_store, "
            "created_at = coalesce(%s, builds.created_at)",
            (self.collection, json.dumps(fingerprint, sort_keys=True), created_at or time.time(), location, created_at),
        )

    def sources(self) -> dict[str, SourceRecord]:
        rows = self.database.rows(
            f"SELECT path, size, mtime_ns, sha256, chunk_ids, ingested_at, ingested_by FROM {SCHEMA}.sources "
            "WHERE collection = %s",
            (self.collection,),
        )
        return {row[0]: SourceRecord(*row) for row in rows}

    def touch_sources(self, records: Iterable[SourceRecord]) -> None:
        with self.database.connection() as connection, connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {SCHEMA}.sources SET size = %s, mtime_ns = %s WHERE collection = %s AND path = %s",
                [(r.size, r.mtime_ns, self.collection, r.path) for r in records],
            )

    def put_sources(self, records: Sequence[SourceRecord]) -> None:
        host = socket.gethostname()
        with self.database.connection() as connection, connection.cursor() as cursor:
            cursor.executemany(
                f"INSERT INTO {SCHEMA}.sources (collection, path, size, mtime_ns, sha256, chunk_ids, ingested_at, "
                "ingested_by) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (collection, path) DO UPDATE SET "
                "size = EXCLUDED.size, mtime_ns = EXCLUDED.mtime_ns, sha256 = EXCLUDED.sha256, "
                "chunk_ids = EXCLUDED.chunk_ids, ingested_at = EXCLUDED.ingested_at, ingested_by = EXCLUDED.ingested_by",
                [
                    (self.collection, r.path, r.size, r.mtime_ns, r.sha256, list(r.chunk_ids), r.ingested_at,
                     r.ingested_by or host)
                    for r in records
                ],
            )

    def delete_sources(self, records: Sequence[SourceRecord]) -> None:
        if records:
            self.database.rows(
                f"DELETE FROM {SCHEMA}.sources WHERE collection = %s AND path = ANY(%s)",
                (self.collection, [r.path for r in records]),
            )

    def mark_synced(self, at: float | None = None) -> None:
        self.database.rows(
            f"UPDATE {SCHEMA}.builds SET last_sync = %s WHERE collection = %s", (at or time.time(), self.collection)
        )

    def writers(self) -> list[Writer]:
        rows = self.database.rows(
            f"SELECT ingested_by, count(*)::integer, max(ingested_at) FROM {SCHEMA}.sources WHERE collection = %s "
            "GROUP BY ingested_by ORDER BY max(ingested_at) DESC",
            (self.collection,),
        )
        return [Writer(*row) for row in rows]

    def all_collections(self) -> list[tuple[str, int, int, str | None, float | None]]:
        return self.database.rows(
            f"SELECT builds.collection, count(sources.path)::integer, "
            "coalesce(sum(cardinality(sources.chunk_ids)), 0)::integer, builds.vector_store, builds.last_sync "
            f"FROM {SCHEMA}.builds LEFT JOIN {SCHEMA}.sources ON sources.collection = builds.collection "
            "GROUP BY builds.collection ORDER BY builds.collection"
        )

    def counts(self) -> tuple[int, int]:
        files, chunks = self.database.rows(
            f"SELECT count(*)::integer, coalesce(sum(cardinality(chunk_ids)), 0)::integer FROM {SCHEMA}.sources "
            "WHERE collection = %s",
            (self.collection,),
        )[0]
        return files, chunks

    def forget_collection(self) -> None:
        self.database.rows(f"DELETE FROM {SCHEMA}.sources WHERE collection = %s", (self.collection,))
        self.database.rows(f"DELETE FROM {SCHEMA}.builds WHERE collection = %s", (self.collection,))


class PostgresKeywordIndex:
    """One collection's chunks in the keyword index (`KeywordTables`): per chunk its length in
    tokens, per term and chunk the term's count, per collection the totals BM25 normalises by."""

    def __init__(self, database: PostgresDatabase):
        self.database = database
        self.collection = database.collection

    def add(self, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]) -> None:
        if not len(ids):
            return
        counts = analysed(texts)
        lengths = [sum(terms.values()) for terms in counts]
        with self.database.connection() as connection, connection.cursor() as cursor:
            collection = self._number(create=True)
            numbers = dict(
                cursor.execute(
                    f"INSERT INTO {SCHEMA}.keyword_chunks (collection, chunk_id, source, length) "
                    "SELECT %s, * FROM unnest(%s::text[], %s::text[], %s::integer[]) RETURNING chunk_id, number",
                    (self.collection, list(ids), list(sources), lengths),
                ).fetchall()
            )
            postings = f"COPY {SCHEMA}.keyword_postings (chunk, collection, frequency, length, term) FROM STDIN"
            with cursor.copy(postings) as copy:
                for chunk_id, terms, length in zip(ids, counts, lengths):
                    for term, frequency in terms.items():
                        copy.write_row((numbers[chunk_id], collection, frequency, length, term))
            cursor.execute(
                f"INSERT INTO {SCHEMA}.keyword_totals (collection, chunks, length) VALUES (%s, %s, %s) "
                "ON CONFLICT (collection) DO UPDATE SET chunks = keyword_totals.chunks + EXCLUDED.chunks, "
                "length = keyword_totals.length + EXCLUDED.length",
                (self.collection, len(ids), sum(lengths)),
            )

    def _number(self, create: bool = False) -> int | None:
        """The collection's number in the postings; a new one when `create`, else None if it has none."""
        select = f"SELECT number FROM {SCHEMA}.keyword_collections WHERE name = %s"
        rows = self.database.rows(select, (self.collection,))
        if not rows and create:  # inserted only when missing: each insert draws a number, even one that conflicts
            self.database.rows(
                f"INSERT INTO {SCHEMA}.keyword_collections (name) VALUES (%s) ON CONFLICT (name) DO NOTHING",
                (self.collection,),
            )
            rows = self.database.rows(select, (self.collection,))
        return rows[0][0] if rows else None

    def forget(self, chunk_ids: Sequence[str]) -> None:
        if not len(chunk_ids):
            return
        ids = list(chunk_ids)
        # `chunk + 0` is the expression the postings' delete index is on (schema step 4).
        self.database.rows(
            f"DELETE FROM {SCHEMA}.keyword_postings WHERE chunk + 0 = ANY(ARRAY(SELECT number FROM {SCHEMA}.keyword_chunks "
            "WHERE collection = %s AND chunk_id = ANY(%s)))",
            (self.collection, ids),
        )
        self.database.rows(
            f"WITH gone AS (DELETE FROM {SCHEMA}.keyword_chunks WHERE collection = %s AND chunk_id = ANY(%s) "
            f"RETURNING length) UPDATE {SCHEMA}.keyword_totals SET chunks = chunks - (SELECT count(*) FROM gone), "
            "length = length - (SELECT coalesce(sum(length), 0) FROM gone) WHERE collection = %s",
            (self.collection, ids, self.collection),
        )

    def forget_collection(self) -> None:
        number = self._number()
        if number is not None:
            self.database.rows(f"DELETE FROM {SCHEMA}.keyword_postings WHERE collection = %s", (number,))
        for table, column in (("keyword_chunks", "collection"), ("keyword_totals", "collection"), ("keyword_collections", "name")):
            self.database.rows(f"DELETE FROM {SCHEMA}.{table} WHERE {column} = %s", (self.collection,))

    def query(
        self, query: str, k: int, sources: Sequence[str] | None = None, as_simplified: bool = True
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches, as FTS5's bm25() scores them.

        The `k` best of an exact BM25, found without scoring every chunk that holds a common word
        (MaxScore): a word adds at most what it gives the chunk it suits best (read with its count
        of chunks), so once `k` chunks score more than the common words could add together, no chunk
        holding only common words can be among the best. The common words are then scored only for
        the chunks that could still rise into the `k`, each looked up by key; the rarer words'
        postings are scored in full.
        """
        # Each query word is analysed as the index's text is. One that is several tokens (snake_case)
        # is a phrase to FTS5: here a chunk holding all of them matches it, as often as its rarest.
        searched = searched_terms(query, self._terms_containing, as_simplified)
        phrases = Counter(tuple(sorted(terms)) for terms in analysed(searched, as_simplified) if terms)
        if not phrases or sources == [] or k <= 0:
            return []
        totals = self.database.rows(
            f"SELECT chunks, length, number FROM {SCHEMA}.keyword_totals "
            f"JOIN {SCHEMA}.keyword_collections ON name = collection WHERE collection = %s",
            (self.collection,),
        )
        if not totals or not totals[0][0]:
            return []
        chunks, length, collection = totals[0]
        weighted = self._weighted_phrases(phrases, collection, chunks, length / chunks)
        if not weighted:
            return []
        # Rarest first; a phrase of several tokens is always scored in full (its postings are joined).
        weighted.sort(key=lambda phrase: (len(phrase.terms) == 1, -phrase.ceiling, phrase.terms))
        essential = max(1, sum(len(phrase.terms) > 1 for phrase in weighted))
        while True:
            rest = weighted[essential:]
            bound = sum(phrase.ceiling for phrase in rest)
            rows = self._top(collection, weighted[:essential], rest, bound, length / chunks, k, sources)
            # The k-th of these full scores: the k best of all score at least that much.
            threshold = rows[-1][1] if len(rows) == k else None
            if not rest or (threshold is not None and threshold > bound + _ROUNDING):
                return [(chunk_id, float(score)) for chunk_id, score in rows]
            # Not yet sure: score more words in full, as many as the bound says the known threshold needs.
            essential += 1
            while threshold is not None and essential < len(weighted) and (
                sum(phrase.ceiling for phrase in weighted[essential:]) >= threshold
            ):
                essential += 1

    def _terms_containing(self, letter: str) -> list[str]:
        """The collection's terms that hold `letter`, the commonest first."""
        collection = self._number()
        if collection is None:
            return []
        rows = self.database.rows(
            f"SELECT term FROM {SCHEMA}.keyword_postings WHERE collection = %s AND strpos(term, %s) > 0 "
            "GROUP BY term ORDER BY count(*) DESC, term LIMIT %s",
            (collection, letter, MAX_LETTER_TERMS),
        )
        return [term for (term,) in rows]

    def _weighted_phrases(
        self, phrases: Counter[tuple[str, ...]], collection: int, chunks: int, average: float
    ) -> list[_Phrase]:
        """The query's phrases that some chunk holds, each with its idf times its count in the query,
        and for a single word the most it adds to a chunk's score."""
        single = [terms[0] for terms in phrases if len(terms) == 1]
        # One pass over each word's postings, read from the index: how many chunks hold it, and the
        # largest share of its idf it gives one of them.
        found: dict[tuple[str, ...], tuple[int, float]] = {
            (term,): (holding, most)
            for term, holding, most in self.database.rows(
                f"SELECT term, count(*), max(frequency * (%(k1)s + 1) / (frequency + %(k1)s * "
                f"(1 - %(b)s + %(b)s * length / %(average)s))) FROM {SCHEMA}.keyword_postings "
                "WHERE collection = %(collection)s AND term = ANY(%(terms)s) GROUP BY term",
                {"collection": collection, "terms": single, "k1": _K1, "b": _B, "average": average},
            )
        }
        for terms in phrases:
            if len(terms) > 1:
                holding = self.database.rows(
                    f"SELECT count(*) FROM (SELECT chunk FROM {SCHEMA}.keyword_postings WHERE collection = %s "
                    "AND term = ANY(%s) GROUP BY chunk HAVING count(*) = %s) holding",
                    (collection, list(terms), len(terms)),
                )[0][0]
                found[terms] = (holding, _K1 + 1)
        weighted = []
        for terms, count in phrases.items():
            holding, most = found.get(terms, (0, 0.0))
            if holding:
                weight = count * max(math.log((chunks - holding + 0.5) / (holding + 0.5)), _MIN_IDF)
                weighted.append(_Phrase(terms, weight, weight * most))
        return weighted

    def _top(
        self, collection: int, essential: list[_Phrase], rest: list[_Phrase], bound: float, average: float, k: int,
        sources: Sequence[str] | None,
    ) -> list[tuple[str, float]]:
        """The `k` best chunks, scored in full, among those holding an `essential` phrase whose score
        with those alone plus `bound` (what the `rest` could add) reaches the `k`-th best such score."""
        singles = [phrase for phrase in essential if len(phrase.terms) == 1]
        numbered = list(enumerate(phrase for phrase in essential if len(phrase.terms) > 1))
        source_filter = (
            f"JOIN {SCHEMA}.keyword_chunks chunks ON chunks.number = matches.chunk AND chunks.source = ANY(%(sources)s) "
            if sources else ""
        )

        def score(postings: str) -> str:
            return (
                f"weight * {postings}.frequency * (%(k1)s + 1) / ({postings}.frequency + "
                f"%(k1)s * (1 - %(b)s + %(b)s * {postings}.length / %(average)s))"
            )

        rows = self.database.rows(
            "WITH singles (term, weight) AS (SELECT * FROM unnest(%(single_terms)s::text[], %(single_weights)s::float8[])), "
            "wanted (phrase, term) AS (SELECT * FROM unnest(%(phrase_of)s::integer[], %(phrase_terms)s::text[])), "
            "phrases (phrase, tokens, weight) AS (SELECT * FROM unnest(%(phrases)s::integer[], %(tokens)s::integer[], "
            "%(phrase_weights)s::float8[])), "
            "matches AS (SELECT postings.chunk, singles.weight, postings.frequency, postings.length "
            f"FROM {SCHEMA}.keyword_postings postings JOIN singles USING (term) "
            "WHERE postings.collection = %(collection)s AND postings.term = ANY(%(single_terms)s) "
            "UNION ALL SELECT held.chunk, phrases.weight, held.frequency, held.length FROM ("
            "SELECT wanted.phrase, postings.chunk, min(postings.frequency) AS frequency, "
            "min(postings.length) AS length, count(*) AS tokens "
            f"FROM {SCHEMA}.keyword_postings postings JOIN wanted USING (term) "
            "WHERE postings.collection = %(collection)s AND postings.term = ANY(%(phrase_terms)s) "
            "GROUP BY wanted.phrase, postings.chunk) held JOIN phrases USING (phrase, tokens)), "
            f"partial AS (SELECT matches.chunk, sum({score('matches')}) AS score "
            f"FROM matches {source_filter}GROUP BY matches.chunk), "
            "threshold AS (SELECT score FROM partial ORDER BY score DESC OFFSET %(k)s - 1 LIMIT 1), "
            "rising AS (SELECT * FROM partial WHERE score + %(bound)s + %(rounding)s >= "
            "coalesce((SELECT score FROM threshold), '-infinity'::float8)), "
            "rest (term, weight) AS (SELECT * FROM unnest(%(rest_terms)s::text[], %(rest_weights)s::float8[])), "
            "scored AS (SELECT chunk, score FROM rising UNION ALL "
            f"SELECT rising.chunk, {score('postings')} FROM rising "
            f"JOIN {SCHEMA}.keyword_postings postings ON postings.collection = %(collection)s "
            "AND postings.chunk = rising.chunk AND postings.term = ANY(%(rest_terms)s) JOIN rest USING (term)), "
            "summed AS (SELECT chunk, sum(score) AS score FROM scored GROUP BY chunk) "
            f"SELECT chunks.chunk_id, summed.score FROM summed JOIN {SCHEMA}.keyword_chunks chunks "
            "ON chunks.number = summed.chunk ORDER BY 2 DESC, 1 LIMIT %(k)s",
            {
                "single_terms": [phrase.terms[0] for phrase in singles],
                "single_weights": [phrase.weight for phrase in singles],
                "phrase_of": [number for number, phrase in numbered for _ in phrase.terms],
                "phrase_terms": [term for _, phrase in numbered for term in phrase.terms],
                "phrases": [number for number, _ in numbered],
                "tokens": [len(phrase.terms) for _, phrase in numbered],
                "phrase_weights": [phrase.weight for _, phrase in numbered],
                "rest_terms": [phrase.terms[0] for phrase in rest],
                "rest_weights": [phrase.weight for phrase in rest],
                "collection": collection, "sources": list(sources or ()), "k1": _K1, "b": _B,
                "average": average, "k": k, "bound": bound, "rounding": _ROUNDING,
            },
        )
        return [(chunk_id, score) for chunk_id, score in rows]

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        if not len(chunk_ids):
            return set()
        rows = self.database.rows(
            f"SELECT chunk_id FROM {SCHEMA}.keyword_chunks WHERE collection = %s AND chunk_id = ANY(%s)",
            (self.collection, list(chunk_ids)),
        )
        return {chunk_id for (chunk_id,) in rows}

    def chunk_ids(self) -> set[str]:
        rows = self.database.rows(
            f"SELECT chunk_id FROM {SCHEMA}.keyword_chunks WHERE collection = %s", (self.collection,)
        )
        return {chunk_id for (chunk_id,) in rows}
