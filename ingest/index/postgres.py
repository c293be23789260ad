"""The PostgreSQL vector store: a collection's chunks in a PostgreSQL database with pgvector.

`vector_store.url = "postgresql://USER@HOST:PORT/DATABASE"` (or postgres://) chooses it. The
password comes from the URL, a `.pgpass` file or `PGPASSWORD`, as libpq finds it; no message and
no label shows it. psycopg (3) and pgvector's Python package are the `postgres` extra, imported
when the store is first used.

Everything lives in the schema `rag`: `schema_version` (the migrations applied), `collections`
(each collection's table and vector dimension), the tables of an index kept whole in the database
(postgres_index.py: build record, manifest, keyword index) and one table of chunks per collection (id, a
`vector(N)` with an HNSW index for cosine distance, text, metadata as jsonb), made when the
collection gets its first vectors and kept, with its dimension, until it is dropped, as Chroma
keeps a collection's. Migrations are numbered steps applied on open, under a lock held in the
database, so processes opening a new database at once apply each step once.

A query filter means what `ChunkFilter.accepts` means: jsonb containment matches a value of its
own type only ({"page": 2} is not {"page": "2"}), and the source among the allowed ones. pgvector's
iterative index scan keeps searching the HNSW graph until `k` chunks pass the filter, in order of
distance, so a filter narrows the nearest chunks instead of dropping some of the `k`.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import urllib.parse
from types import ModuleType
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from ingest.errors import RagError, VectorDimensionError
from ingest.index.store import ChunkFilter, StoredChunk, url_without_password

if TYPE_CHECKING:
    import numpy as np
    import psycopg

POSTGRES_SCHEMES = ("postgresql", "postgres")
INSTALL_HINT = "pip install 'rag[postgres]'"
SCHEMA = "rag"
# pgvector's HNSW index takes vectors of up to this many dimensions; longer ones are searched exactly.
HNSW_MAX_DIMENSIONS = 2000
# pgvector's default candidate list; a larger k needs a longer one (pgvector accepts up to 1000).
EF_SEARCH_DEFAULT, EF_SEARCH_MAX = 40, 1000
# The key of the lock (pg_advisory_xact_lock) that serialises schema changes across processes.
_SCHEMA_LOCK = 0x726167  # "rag"

# Numbered steps; a database at version N has had steps 1..N applied. Never edit a released step.
MIGRATIONS: tuple[str, ...] = (
    f"""
    CREATE EXTENSION IF NOT EXISTS vector;
    CREATE TABLE {SCHEMA}.collections (
        name text PRIMARY KEY,
        chunk_table text NOT NULL UNIQUE,
        dimension integer NOT NULL CHECK (dimension > 0),
        created_at timestamptz NOT NULL DEFAULT now()
    );
    CREATE SEQUENCE {SCHEMA}.chunk_table_numbers;
    """,
    # The rest of an index kept here (index.url, ingest/index/postgres_index.py): the build record,
    # the file manifest, and the keyword index's term statistics.
    f"""
    CREATE TABLE {SCHEMA}.builds (
        collection text PRIMARY KEY,
        fingerprint jsonb NOT NULL,
        created_at double precision NOT NULL,
        last_sync double precision,
        vector_store text NOT NULL
    );
    CREATE TABLE {SCHEMA}.sources (
        collection text NOT NULL,
        path text NOT NULL,
        size bigint NOT NULL,
        mtime_ns bigint NOT NULL,
        sha256 text NOT NULL,
        chunk_ids text[] NOT NULL,
        ingested_at double precision NOT NULL,
        ingested_by text NOT NULL,
        PRIMARY KEY (collection, path)
    );
    CREATE TABLE {SCHEMA}.keyword_chunks (
        collection text NOT NULL,
        chunk_id text NOT NULL,
        source text NOT NULL,
        length integer NOT NULL,
        PRIMARY KEY (collection, chunk_id)
    );
    CREATE INDEX ON {SCHEMA}.keyword_chunks (collection, source);
    CREATE TABLE {SCHEMA}.keyword_postings (
        collection text NOT NULL,
        term text NOT NULL,
        chunk_id text NOT NULL,
        frequency integer NOT NULL,
        PRIMARY KEY (collection, term, chunk_id)
    );
    CREATE INDEX ON {SCHEMA}.keyword_postings (collection, chunk_id);
    CREATE TABLE {SCHEMA}.keyword_totals (
        collection text PRIMARY KEY,
        chunks bigint NOT NULL,
        length bigint NOT NULL
    );
    """,
    # Each posting carries its chunk's length, and the key's index holds the columns BM25 reads:
    # a keyword search reads a term's postings from the index alone, and one chunk's postings by key.
    f"""
    ALTER TABLE {SCHEMA}.keyword_postings ADD COLUMN length integer;
    UPDATE {SCHEMA}.keyword_postings postings SET length = chunks.length FROM {SCHEMA}.keyword_chunks chunks
        WHERE chunks.collection = postings.collection AND chunks.chunk_id = postings.chunk_id;
    ALTER TABLE {SCHEMA}.keyword_postings ALTER COLUMN length SET NOT NULL,
        DROP CONSTRAINT keyword_postings_pkey,
        ADD PRIMARY KEY (collection, term, chunk_id) INCLUDE (frequency, length);
    """,
    # Postings name their collection and chunk by number: the names, repeated in every posting and
    # in its key, were most of the database's size. A chunk's number is unique across collections.
    f"""
    CREATE TABLE {SCHEMA}.keyword_collections (
        number integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name text NOT NULL UNIQUE
    );
    INSERT INTO {SCHEMA}.keyword_collections (name)
        SELECT collection FROM {SCHEMA}.keyword_totals UNION SELECT collection FROM {SCHEMA}.keyword_chunks;
    ALTER TABLE {SCHEMA}.keyword_chunks ADD COLUMN number bigint GENERATED ALWAYS AS IDENTITY UNIQUE;
    CREATE TABLE {SCHEMA}.keyword_postings_numbered (
        chunk bigint NOT NULL,
        collection integer NOT NULL,
        frequency integer NOT NULL,
        length integer NOT NULL,
        term text NOT NULL,
        PRIMARY KEY (collection, term, chunk) INCLUDE (frequency, length)
    );
    INSERT INTO {SCHEMA}.keyword_postings_numbered (chunk, collection, frequency, length, term)
        SELECT chunks.number, collections.number, postings.frequency, postings.length, postings.term
        FROM {SCHEMA}.keyword_postings postings
        JOIN {SCHEMA}.keyword_chunks chunks USING (collection, chunk_id)
        JOIN {SCHEMA}.keyword_collections collections ON collections.name = postings.collection;
    DROP TABLE {SCHEMA}.keyword_postings;
    ALTER TABLE {SCHEMA}.keyword_postings_numbered RENAME TO keyword_postings;
    ALTER INDEX {SCHEMA}.keyword_postings_numbered_pkey RENAME TO keyword_postings_pkey;
    -- For deleting a chunk's postings only: indexed as an expression a search's join never writes,
    -- so the planner looks a search's (term, chunk) pairs up in the key, index only, instead of
    -- reading every posting of each chunk through this index.
    CREATE INDEX keyword_postings_by_chunk ON {SCHEMA}.keyword_postings ((chunk + 0));
    """,
)


def _without_nul(text: str) -> str:
    # PostgreSQL's text and jsonb cannot hold NUL; a chunk may (a loader keeps what a file holds).
    return text.replace("\x00", "\ufffd")


def _clean_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    return {_without_nul(key): _without_nul(value) if isinstance(value, str) else value for key, value in metadata.items()}


class _Connection:
    """One connection per URL and process, shared by the stores opened on it, one operation at a time."""

    def __init__(self, url: str):
        self.url = url
        self.lock = threading.RLock()
        self._connection: "psycopg.Connection | None" = None

    def get(self) -> "psycopg.Connection":
        if self._connection is None or self._connection.closed or self._connection.broken:
            self._connection = _connect(self.url)
        return self._connection


_CONNECTIONS: dict[tuple[int, str], _Connection] = {}  # (process id, url): a forked child connects anew
_CONNECTIONS_LOCK = threading.Lock()


def _shared_connection(url: str) -> _Connection:
    with _CONNECTIONS_LOCK:
        return _CONNECTIONS.setdefault((os.getpid(), url), _Connection(url))


def _psycopg(url: str) -> ModuleType:
    """psycopg, with the submodules this store uses; a missing extra is a RagError naming it."""
    try:
        import pgvector.psycopg  # noqa: F401 (imported with psycopg: the store needs both)
        import psycopg
        import psycopg.sql
        import psycopg.types.json
    except ImportError as exc:
        raise RagError(
            f"The PostgreSQL vector store ({url_without_password(url)}) needs psycopg and pgvector;",
            f"install them with `{INSTALL_HINT}`.",
        ) from exc
    return psycopg


def _connect(url: str) -> "psycopg.Connection":
    psycopg = _psycopg(url)
    from pgvector.psycopg import register_vector

    label = url_without_password(url)
    try:
        connection = psycopg.connect(url, autocommit=True, connect_timeout=10, application_name="rag")
    except psycopg.Error as exc:
        raise RagError(
            f"Could not connect to PostgreSQL at {label}: {_reason(exc, url)}.",
            "Check the server, the user and the password (in the URL, ~/.pgpass or PGPASSWORD).",
        ) from exc
    try:
        _migrate(connection, label)
        register_vector(connection)
        # Keep walking the HNSW graph until LIMIT rows pass the WHERE clause, nearest first.
        connection.execute("SET hnsw.iterative_scan = strict_order")
    except BaseException:
        connection.close()
        raise
    return connection


def _reason(error: Exception, url: str) -> str:
    """psycopg's message in one line, without the password even if the server repeats it."""
    reason = " ".join(str(error).split())
    reason = re.sub(r"^connection failed: ", "", reason)
    password = urllib.parse.urlsplit(url).password
    if password:
        reason = reason.replace(password, "***").replace(urllib.parse.unquote(password), "***")
    return reason.rstrip(".")


def _value(connection: "psycopg.Connection", query: Any, params: Sequence[Any] = ()) -> Any:
    """The one value of a query that returns one row (an aggregate, a function call)."""
    row = connection.execute(query, params).fetchone()
    return row[0] if row else None


def _schema_version(connection: "psycopg.Connection") -> int:
    if _value(connection, "SELECT to_regclass(%s)", (f"{SCHEMA}.schema_version",)) is None:
        return 0
    return _value(connection, f"SELECT coalesce(max(version), 0) FROM {SCHEMA}.schema_version")


def _migrate(connection: "psycopg.Connection", label: str) -> None:
    """Apply the steps of MIGRATIONS the database lacks, in one transaction, one process at a time.

    A database that has them all is only read: a user without the right to create schemas can use
    one that its administrator set up.
    """
    import psycopg

    version = _schema_version(connection)
    if version > len(MIGRATIONS):
        raise RagError(
            f"The PostgreSQL database at {label} has rag schema version {version}; this rag knows versions "
            f"up to {len(MIGRATIONS)}.",
            "Upgrade rag to use it (an older rag must not write to it).",
        )
    if version == len(MIGRATIONS):
        return
    try:
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            connection.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            connection.execute(f"CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version integer NOT NULL)")
            version = _schema_version(connection)  # another process may have migrated while this one waited
            for number, step in enumerate(MIGRATIONS[version:], start=version + 1):
                connection.execute(step)
                connection.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (number,))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise RagError(
            f"PostgreSQL at {label} refused to set up rag's tables: {_reason(exc, '')}.",
            "Connect as a user who may create schemas in that database, and have a superuser run "
            "`CREATE EXTENSION vector` in it if it lacks pgvector.",
        ) from exc


class PostgresStore:
    """One collection in the PostgreSQL database at `url`."""

    def __init__(self, collection: str, url: str):
        self.collection_name = collection
        self.url = url

    def label(self) -> str:
        return f"PostgreSQL at {url_without_password(self.url)}"

    @property
    def _psycopg(self) -> ModuleType:
        return _psycopg(self.url)

    @property
    def _sql(self) -> ModuleType:
        return self._psycopg.sql

    @contextlib.contextmanager
    def _transaction(self) -> Iterator["psycopg.Connection"]:
        shared = _shared_connection(self.url)
        with shared.lock:
            connection = shared.get()
            with connection.transaction():
                yield connection

    def _table(self, connection: "psycopg.Connection") -> tuple[Any, int] | None:
        """The collection's table (a psycopg identifier) and dimension, None if it has none yet."""
        sql = self._sql

        row = connection.execute(
            f"SELECT chunk_table, dimension FROM {SCHEMA}.collections WHERE name = %s", (self.collection_name,)
        ).fetchone()
        return (sql.Identifier(SCHEMA, row[0]), row[1]) if row else None

    def _create_table(self, connection: "psycopg.Connection", dimension: int) -> tuple[Any, int]:
        """The collection's table, made for vectors of `dimension` unless another process made it first."""
        sql = self._sql

        # Per collection, so two processes making the same one wait for each other, and others do not.
        connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_SCHEMA_LOCK, self.collection_name))
        existing = self._table(connection)
        if existing is not None:
            return existing
        number = _value(connection, f"SELECT nextval('{SCHEMA}.chunk_table_numbers')")
        name = f"chunks_{number}"
        table = sql.Identifier(SCHEMA, name)
        connection.execute(
            sql.SQL(
                "CREATE TABLE {} (id text PRIMARY KEY, embedding vector({}) NOT NULL, text text NOT NULL, "
                "metadata jsonb NOT NULL)"
            ).format(table, sql.Literal(dimension))
        )
        if dimension <= HNSW_MAX_DIMENSIONS:
            connection.execute(sql.SQL("CREATE INDEX ON {} USING hnsw (embedding vector_cosine_ops)").format(table))
        connection.execute(sql.SQL("CREATE INDEX ON {} USING gin (metadata jsonb_path_ops)").format(table))
        connection.execute(sql.SQL("CREATE INDEX ON {} ((metadata->>'source'))").format(table))
        connection.execute(
            f"INSERT INTO {SCHEMA}.collections (name, chunk_table, dimension) VALUES (%s, %s, %s)",
            (self.collection_name, name, dimension),
        )
        return table, dimension

    def _rows(self, embeddings: Any, expected: int | None) -> "np.ndarray":
        import numpy as np

        rows = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
        if expected is not None and rows.shape[1] != expected:
            raise VectorDimensionError(self.collection_name, self.label(), expected, rows.shape[1])
        return rows

    def add(
        self, ids: Sequence[str], embeddings: Any, texts: Sequence[str], metadatas: Sequence[dict[str, Any]]
    ) -> None:
        if not len(ids):
            return
        sql, Jsonb = self._sql, self._psycopg.types.json.Jsonb

        with self._transaction() as connection:
            found = self._table(connection)
            rows = self._rows(embeddings, found[1] if found else None)
            table, _ = found or self._create_table(connection, rows.shape[1])
            with connection.cursor() as cursor:
                cursor.executemany(
                    sql.SQL(
                        "INSERT INTO {} (id, embedding, text, metadata) VALUES (%s, %s, %s, %s) ON CONFLICT (id) "
                        "DO UPDATE SET embedding = EXCLUDED.embedding, text = EXCLUDED.text, metadata = EXCLUDED.metadata"
                    ).format(table),
                    [
                        (chunk_id, row, _without_nul(text), Jsonb(_clean_metadata(metadata)))
                        for chunk_id, row, text, metadata in zip(ids, rows, texts, metadatas)
                    ],
                )

    def delete(self, ids: Sequence[str]) -> None:
        if not len(ids):
            return
        sql = self._sql

        with self._transaction() as connection:
            found = self._table(connection)
            if found is not None:
                connection.execute(sql.SQL("DELETE FROM {} WHERE id = ANY(%s)").format(found[0]), (list(ids),))

    def get(self, ids: Sequence[str], vectors: bool = False) -> dict[str, StoredChunk]:
        if not len(ids):
            return {}
        sql = self._sql

        with self._transaction() as connection:
            found = self._table(connection)
            if found is None:
                return {}
            columns = sql.SQL("id, text, metadata, embedding" if vectors else "id, text, metadata, NULL")
            rows = connection.execute(
                sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s)").format(columns, found[0]), (list(ids),)
            ).fetchall()
        return {
            chunk_id: StoredChunk(chunk_id, text, metadata, None if embedding is None else embedding.to_numpy())
            for chunk_id, text, metadata, embedding in rows
        }

    def get_vectors(self, ids: Sequence[str]) -> dict[str, "np.ndarray"]:
        found = self.get(ids, vectors=True).items()
        return {chunk_id: chunk.embedding for chunk_id, chunk in found if chunk.embedding is not None}

    def query(
        self, embedding: Sequence[float], k: int, chunk_filter: ChunkFilter | None = None
    ) -> list[tuple[str, float]]:
        sql, Jsonb = self._sql, self._psycopg.types.json.Jsonb

        conditions, parameters = [], []
        if chunk_filter is not None and chunk_filter.equals:
            conditions.append(sql.SQL("metadata @> %s"))
            parameters.append(Jsonb(_clean_metadata(chunk_filter.equals)))
        if chunk_filter is not None and chunk_filter.sources is not None:
            conditions.append(sql.SQL("metadata->>'source' = ANY(%s)"))
            parameters.append(list(chunk_filter.sources))
        where = sql.SQL(" WHERE ") + sql.SQL(" AND ").join(conditions) if conditions else sql.SQL("")
        with self._transaction() as connection:
            found = self._table(connection)
            if found is None:
                return []
            table, dimension = found
            vector = self._rows(embedding, dimension)[0]
            connection.execute(
                sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(min(max(EF_SEARCH_DEFAULT, k), EF_SEARCH_MAX)))
            )
            rows = connection.execute(
                sql.SQL("SELECT id, embedding <=> %s AS distance FROM {}{} ORDER BY distance LIMIT %s").format(table, where),
                [vector, *parameters, k],
            ).fetchall()
        return [(chunk_id, 1.0 - distance) for chunk_id, distance in rows]

    def ids(self) -> set[str]:
        sql = self._sql

        with self._transaction() as connection:
            found = self._table(connection)
            if found is None:
                return set()
            return {row[0] for row in connection.execute(sql.SQL("SELECT id FROM {}").format(found[0]))}

    def count(self) -> int:
        sql = self._sql

        with self._transaction() as connection:
            found = self._table(connection)
            if found is None:
                return 0
            return _value(connection, sql.SQL("SELECT count(*) FROM {}").format(found[0]))

    def drop(self) -> None:
        sql = self._sql

        with self._transaction() as connection:
            connection.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (_SCHEMA_LOCK, self.collection_name))
            found = self._table(connection)
            if found is None:
                return
            connection.execute(sql.SQL("DROP TABLE {}").format(found[0]))
            connection.execute(f"DELETE FROM {SCHEMA}.collections WHERE name = %s", (self.collection_name,))
