"""The PostgreSQL vector store in use: the sample notes ingested and searched with their vectors in a
real PostgreSQL with pgvector (tests/postgres_server.py), two processes writing one collection at
once, and a wrong password. The store's own contract runs in tests/integration/test_store_contract.py."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import urllib.parse
import zlib
from pathlib import Path
from typing import Iterator

import pytest
from typer.testing import CliRunner

import rag
from ingest.errors import RagError, VectorStoreMismatchError
from ingest.index import Index, open_store
from ingest.index.postgres import PostgresStore
from rag.cli import app
from tests.conftest import REPO, assert_index_consistent, installed_command, make_settings
from tests.helpers import QUESTIONS, SAMPLE_NOTES
from tests.postgres_server import PASSWORD

runner = CliRunner()


def collection_of(home: Path, name: str = "kb") -> str:
    """A collection name of this test's own on the session's server."""
    return f"{name}-{zlib.crc32(str(home).encode()):08x}"


def with_password(url: str, password: str) -> str:
    parts = urllib.parse.urlsplit(url)
    netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_the_sample_notes_searched_in_postgresql_find_what_chroma_on_disk_finds(sample_index, postgres_server, home):
    on_disk, _ = sample_index
    settings = make_settings(home, collection=collection_of(home), vector_store={"url": postgres_server})
    report = rag.ingest([SAMPLE_NOTES], settings)
    try:
        assert report.failed == [] and report.chunks_added > 0
        assert_index_consistent(settings)
        assert Index(settings).chunk_ids() == Index(on_disk).chunk_ids()
        for question, expected in QUESTIONS:
            for mode in ("dense", "hybrid"):
                in_postgres = rag.search(question, settings, k=5, mode=mode)
                in_chroma = rag.search(question, on_disk, k=5, mode=mode)
                assert [h.chunk_id for h in in_postgres] == [h.chunk_id for h in in_chroma], (question, mode)
                assert [h.similarity for h in in_postgres] == pytest.approx([h.similarity for h in in_chroma], abs=1e-4)
            assert in_postgres.hits[0].source == str(SAMPLE_NOTES / expected)
        # A filter goes into the SQL query: the nearest chunks of those files, as on disk.
        pdf = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
        filtered = rag.search("oven warranty", settings, k=3, mode="dense", where={"source": pdf})
        assert [h.chunk_id for h in filtered] == [
            h.chunk_id for h in rag.search("oven warranty", on_disk, k=3, mode="dense", where={"source": pdf})
        ]
        assert {h.source for h in filtered} == {pdf}
    finally:
        open_store(settings, postgres_server).drop()


def start_ingest(folder: Path, home: Path, url: str, collection: str) -> subprocess.Popen:
    env = {**os.environ, "RAG_HOME": str(home), "RAG_VECTOR_STORE__URL": url, "RAG_COLLECTION": collection}
    return subprocess.Popen(
        [installed_command("rag"), "ingest", str(folder)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )


def test_two_processes_ingesting_different_folders_into_one_collection_both_land(postgres_server, tmp_path):
    """As two machines would: each has its own manifest (its home), both write one PostgreSQL collection."""
    folders = {"personal": tmp_path / "personal", "work": tmp_path / "work"}
    for name, folder in folders.items():
        shutil.copytree(SAMPLE_NOTES / name, folder)
    homes = {name: tmp_path / f"home-{name}" for name in folders}
    collection = collection_of(tmp_path)
    ingests = [start_ingest(folders[name], homes[name], postgres_server, collection) for name in folders]
    for ingest in ingests:
        assert ingest.wait(timeout=600) == 0, ingest.stderr.read()
        ingest.stdout.close()
        ingest.stderr.close()

    settings = {
        name: make_settings(home, collection=collection, vector_store={"url": postgres_server})
        for name, home in homes.items()
    }
    listed = {  # what each manifest lists
        name: {chunk_id for record in Index(s).sources().values() for chunk_id in record.chunk_ids}
        for name, s in settings.items()
    }
    assert listed["personal"] and listed["work"] and not listed["personal"] & listed["work"]
    store = open_store(settings["work"], postgres_server)
    try:
        # Both landed, nothing doubled: the collection holds exactly the chunks the two manifests list.
        assert store.ids() == listed["personal"] | listed["work"]
        assert store.count() == len(listed["personal"]) + len(listed["work"])
        hits = rag.search("What oven temperature are the cardamom buns baked at?", settings["personal"], k=1)
        assert hits.hits[0].source == str(folders["personal"] / "recipes/cardamom-buns.md")
        hits = rag.search("What baud rate does the calibration script use for the service port?", settings["work"], k=1)
        assert hits.hits[0].source == str(folders["work"] / "tools/calibrate.py")
    finally:
        store.drop()


def test_a_wrong_password_is_a_one_line_error_without_the_password(postgres_server, home, notes):
    wrong = "not-the-right-one-42"
    url = with_password(postgres_server, wrong)
    label = url.replace(f":{wrong}@", "@")

    with pytest.raises(RagError) as error:
        PostgresStore("kb", url).count()
    message = str(error.value)
    assert message.startswith(f"Could not connect to PostgreSQL at {label}: ")
    assert 'password authentication failed for user "postgres"' in message
    assert len(message.splitlines()) == 1 and wrong not in message and PASSWORD not in message

    env = {"RAG_HOME": str(home), "RAG_VECTOR_STORE__URL": url}
    result = runner.invoke(app, ["ingest", str(notes)], env=env)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: Could not connect to PostgreSQL at {label}: ")
    assert len(result.stderr.splitlines()) == 1 and "Traceback" not in result.output
    assert wrong not in result.output and wrong not in result.stderr


def test_the_password_is_never_written_down_and_the_url_without_it_finds_the_store(postgres_server, home, notes):
    """The index records the URL without the password; later commands give it by PGPASSWORD or in the URL."""
    collection = collection_of(home)
    settings = make_settings(home, collection=collection, vector_store={"url": postgres_server})
    rag.ingest([notes], settings)
    try:
        assert PASSWORD.encode() not in (home / "index" / "manifest.sqlite3").read_bytes()
        assert PASSWORD not in Index(settings).vector_store_label()

        # No URL in the settings: the recorded one, and the password from the environment, as libpq reads it.
        status = subprocess.run(
            [installed_command("rag"), "search", "cardamom buns oven temperature", "-k", "1"],
            env={**os.environ, "RAG_HOME": str(home), "RAG_COLLECTION": collection, "PGPASSWORD": PASSWORD},
            capture_output=True, text=True, timeout=300,
        )
        assert status.returncode == 0, status.stderr
        assert "cardamom-buns.md" in status.stdout and PASSWORD not in status.stdout + status.stderr
        # The URL with the password names the same store as the recorded one without it.
        assert rag.search("cardamom buns", settings, k=1).hits[0].source.endswith("cardamom-buns.md")
    finally:
        open_store(settings, postgres_server).drop()


@pytest.mark.fast
def test_the_label_shows_the_url_without_the_password():
    store = PostgresStore("kb", "postgresql://rag:pa%3Ass@db.example:5433/team?password=other&sslmode=require")
    assert store.label() == "PostgreSQL at postgresql://rag@db.example:5433/team?sslmode=require"


@pytest.mark.fast
def test_without_psycopg_the_store_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what an environment without the extra imports
    with pytest.raises(RagError) as error:
        PostgresStore("kb", "postgresql://rag:secret@db.example/team").count()
    assert str(error.value) == (
        "The PostgreSQL vector store (postgresql://rag@db.example/team) needs psycopg and pgvector; "
        "install them with `pip install 'rag[postgres]'`."
    )


def test_an_index_on_disk_pointed_at_postgresql_is_refused_without_the_password(postgres_server, home, notes):
    rag.ingest([notes], make_settings(home))
    with pytest.raises(VectorStoreMismatchError) as error:
        Index(make_settings(home, vector_store={"url": postgres_server}))
    label = postgres_server.replace(f":{PASSWORD}@", "@")
    assert f"keeps its vectors on disk, not in PostgreSQL at {label};" in str(error.value)
    assert PASSWORD not in str(error.value)


OPEN = """
import sys
from ingest.index.postgres import PostgresStore
print(PostgresStore("kb", sys.argv[1]).count())
"""


@contextlib.contextmanager
def fresh_database(server_url: str, name: str) -> Iterator[str]:
    """A new, empty database on the test server, dropped after; yields its URL (as the superuser)."""
    import psycopg

    database = f"{name}_{zlib.crc32(name.encode() + os.urandom(4)):08x}"
    with psycopg.connect(server_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {database}")
    try:
        yield urllib.parse.urlsplit(server_url)._replace(path=f"/{database}").geturl()
    finally:
        with psycopg.connect(server_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {database} WITH (FORCE)")


def test_processes_opening_a_new_database_at_once_apply_each_migration_once(postgres_server):
    import psycopg

    from ingest.index.postgres import MIGRATIONS

    with fresh_database(postgres_server, "fresh") as url:
        openers = [
            subprocess.Popen(
                [sys.executable, "-c", OPEN, url], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO
            )
            for _ in range(4)
        ]
        for opener in openers:
            out, err = opener.communicate(timeout=120)
            assert (opener.returncode, out.strip()) == (0, "0"), err
        with psycopg.connect(url) as connection:
            versions = [row[0] for row in connection.execute("SELECT version FROM rag.schema_version ORDER BY version")]
        assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_a_database_of_a_newer_rag_is_refused_in_one_line(postgres_server):
    import psycopg

    from ingest.index.postgres import MIGRATIONS

    with fresh_database(postgres_server, "newer") as url:
        PostgresStore("kb", url).count()  # made by this rag
        with psycopg.connect(url, autocommit=True) as connection:
            connection.execute("INSERT INTO rag.schema_version (version) VALUES (99)")
        result = subprocess.run([sys.executable, "-c", OPEN, url], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert result.returncode == 1
    label = url.replace(f":{PASSWORD}@", "@")
    assert result.stderr.splitlines()[-1] == (
        f"ingest.errors.RagError: The PostgreSQL database at {label} has rag schema version 99; this rag knows "
        f"versions up to {len(MIGRATIONS)}. Upgrade rag to use it (an older rag must not write to it)."
    )


def test_a_user_who_may_not_create_the_tables_gets_one_line_saying_what_is_needed(postgres_server):
    import psycopg

    with fresh_database(postgres_server, "locked") as url:
        role = f"reader_{os.getpid()}"
        with psycopg.connect(url, autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'reader-pass'")
        try:
            parts = urllib.parse.urlsplit(url)
            as_reader = parts._replace(netloc=f"{role}:reader-pass@{parts.hostname}:{parts.port}").geturl()
            with pytest.raises(RagError) as error:
                PostgresStore("kb", as_reader).count()
            message = str(error.value)
            assert message.startswith(f"PostgreSQL at {as_reader.replace(':reader-pass@', '@')} refused to set up rag's")
            assert "permission denied" in message and "CREATE EXTENSION vector" in message
            assert len(message.splitlines()) == 1 and "reader-pass" not in message
        finally:
            with psycopg.connect(url, autocommit=True) as admin:
                admin.execute(f"DROP OWNED BY {role}")
                admin.execute(f"DROP ROLE {role}")


def test_a_keyword_index_of_an_older_schema_is_upgraded_on_open_and_ranks_as_before(postgres_server, tmp_path):
    """A database made before step 3 (postings without their chunk's length, naming their collection
    and chunk): opening it fills the lengths in from the chunks' rows and numbers the postings, and
    the keyword search ranks and scores as a fresh index does."""
    import psycopg

    from ingest.index.keywords import analysed
    from ingest.index.postgres import MIGRATIONS, SCHEMA
    from ingest.index.postgres_index import PostgresDatabase
    from tests.integration.test_index_database import QUERIES, TEXTS, add_texts

    texts = {chunk_id: text for chunk_id, text in TEXTS.items() if text}
    with fresh_database(postgres_server, "older") as url:
        with psycopg.connect(url, autocommit=True) as connection:  # the layout and rows of a rag of version 2
            connection.execute(f"CREATE SCHEMA {SCHEMA}")
            connection.execute(f"CREATE TABLE {SCHEMA}.schema_version (version integer NOT NULL)")
            for number, step in enumerate(MIGRATIONS[:2], start=1):
                connection.execute(step)
                connection.execute(f"INSERT INTO {SCHEMA}.schema_version (version) VALUES (%s)", (number,))
            counts = analysed(list(texts.values()))
            for chunk_id, terms in zip(texts, counts):
                connection.execute(
                    f"INSERT INTO {SCHEMA}.keyword_chunks VALUES ('kb', %s, %s, %s)",
                    (chunk_id, f"/notes/{chunk_id}", sum(terms.values())),
                )
                for term, frequency in terms.items():
                    connection.execute(
                        f"INSERT INTO {SCHEMA}.keyword_postings VALUES ('kb', %s, %s, %s)", (term, chunk_id, frequency)
                    )
            connection.execute(
                f"INSERT INTO {SCHEMA}.keyword_totals VALUES ('kb', %s, %s)",
                (len(texts), sum(sum(terms.values()) for terms in counts)),
            )
        upgraded = PostgresDatabase(url, "kb")
        fresh = PostgresDatabase(url, "kb-fresh")
        add_texts(fresh, texts)
        for query in QUERIES:
            assert upgraded.keywords.query(query, 5) == fresh.keywords.query(query, 5), query
        with psycopg.connect(url) as connection:
            assert connection.execute(f"SELECT max(version) FROM {SCHEMA}.schema_version").fetchone()[0] == len(MIGRATIONS)
            assert connection.execute(
                f"SELECT count(*) FROM {SCHEMA}.keyword_postings postings JOIN {SCHEMA}.keyword_chunks chunks "
                "ON chunks.number = postings.chunk WHERE postings.length <> chunks.length"
            ).fetchone()[0] == 0
            assert connection.execute(f"SELECT count(*) FROM {SCHEMA}.keyword_postings").fetchone()[0] == sum(
                len(terms) for terms in counts
            ) * 2  # the upgraded collection's and the fresh one's
