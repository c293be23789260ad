"""Shared fixtures: real Chroma on disk under a temporary RAG_HOME, the real packaged MiniLM.

Each test carries the marker of its tier folder (TIER_MARKERS): `make test-fast` runs `-m fast`.

The sample corpus is ingested once per session; tests that change files work on their own copy.
The fast tier's fixtures (`fake_embedder`, `model_free`, the `store` fixture's "memory" run) keep
vectors in memory and make them with tests/fake_embedder.py: no model, no Chroma.
"""

from __future__ import annotations

import os
import shutil
import sys
import zlib
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.helpers import SAMPLE_NOTES, free_port, running_server  # noqa: E402 (imports nothing of rag)

REPO = Path(__file__).resolve().parents[1]

# No user config or shell setting may leak into the tests.
for _name in [n for n in os.environ if n.startswith("RAG_")]:
    del os.environ[_name]
# Tests that only need some generation use the fastest packaged model (in-process and in every
# `rag` process they start); tests/e2e/test_default_model.py runs the default end to end.
TEST_MODEL = "gemma-3-270m"
os.environ["RAG_LLM__MODEL"] = TEST_MODEL

import rag  # noqa: E402
from ingest.index import Index, open_store  # noqa: E402
from rag.settings import Settings, load_settings  # noqa: E402
from tests.fake_embedder import FAKE_MODEL, FakeEmbedder, load_fake_embedder_for_its_name  # noqa: E402


# unit/ is the fast tier by its folder. A test elsewhere can be marked `fast` itself where it shares
# its module with slower ones: the store contract's in-memory parameter, for one.
TIER_MARKERS = {"unit": "fast", "integration": "integration", "e2e": "e2e"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        tier = item.path.relative_to(REPO / "tests").parts[0]
        if tier not in TIER_MARKERS:
            raise pytest.UsageError(f"{item.nodeid}: a test module belongs in a tier folder: {', '.join(TIER_MARKERS)}")
        item.add_marker(TIER_MARKERS[tier])


@pytest.fixture(scope="session", autouse=True)
def _isolated_config_dir(tmp_path_factory):
    os.environ["XDG_CONFIG_HOME"] = str(tmp_path_factory.mktemp("xdg-config"))


def make_settings(home: Path, **overrides) -> Settings:
    return load_settings(environ={"RAG_LLM__MODEL": TEST_MODEL}, cwd=home, home=home, **overrides)


@pytest.fixture(params=["disk", "server", pytest.param("memory", marks=pytest.mark.fast), "postgres"])
def store(request) -> Callable[..., Settings]:
    """`make_settings` for Chroma on disk, then for a real `chroma run` server, then for the
    in-memory store with the fake embedder (`model_free`), then for the whole index (vectors,
    keywords, manifest) in a real PostgreSQL with pgvector: tests that take it run on all four.

    Each test home gets its own collection names on the shared servers, as each has its own manifest.
    """
    if request.param == "disk":
        return make_settings
    if request.param == "memory":
        return request.getfixturevalue("model_free")
    url = request.getfixturevalue("chroma_server" if request.param == "server" else "postgres_server")
    where = {"vector_store": {"url": url}} if request.param == "server" else {"index": {"url": url}}

    def on_server(home: Path, **overrides) -> Settings:
        collection = f"{overrides.pop('collection', 'default')}-{zlib.crc32(str(home).encode()):08x}"
        return make_settings(home, collection=collection, **where, **overrides)

    return on_server


@pytest.fixture
def fake_embedder(monkeypatch) -> FakeEmbedder:
    """The code loads `FakeEmbedder` (and its tokenizer) for settings whose embedding.model is
    FAKE_MODEL, until the test ends; every other model name still loads the real model."""
    load_fake_embedder_for_its_name(monkeypatch.setattr)
    return FakeEmbedder()


@pytest.fixture
def model_free(fake_embedder, request) -> Iterator[Callable[..., Settings]]:
    """`make_settings` for an index whose vectors are in memory, made by the fake embedder: an
    ingest, a search, a sync report without any model or Chroma. The manifest and the keyword
    index are the real SQLite ones, under the home given. Each test has its own memory space."""
    url = f"memory://{request.node.nodeid}"
    made: list[Settings] = []

    def in_memory(home: Path, **overrides) -> Settings:
        embedding = {"model": FAKE_MODEL, **overrides.pop("embedding", {})}
        settings = make_settings(home, vector_store={"url": url}, embedding=embedding, **overrides)
        made.append(settings)
        return settings

    yield in_memory
    for settings in made:
        open_store(settings, url).drop()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory):
    """(settings, report) for the sample corpus ingested into a fresh index."""
    settings = make_settings(tmp_path_factory.mktemp("sample-home"))
    report = rag.ingest([SAMPLE_NOTES], settings)
    return settings, report


@pytest.fixture
def home(tmp_path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture
def notes(tmp_path) -> Path:
    """A small writable copy of part of the sample corpus."""
    folder = tmp_path / "notes"
    for relative in [
        "personal/recipes/cardamom-buns.md",
        "personal/garden/allotment-plan-2024.md",
        "work/calls/phone-log-2024-04.txt",
        "work/tools/calibrate.py",
    ]:
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(SAMPLE_NOTES / relative, target)
    return folder


def assert_index_consistent(settings: Settings) -> None:
    """Chroma and the keyword index hold exactly the chunks the manifest lists: no duplicate, no orphan."""
    index = Index(settings)
    listed = [chunk_id for record in index.sources().values() for chunk_id in record.chunk_ids]
    assert len(listed) == len(set(listed)), "a chunk id is listed twice in the manifest"
    assert index.chunk_ids() == set(listed)
    assert index.keyword_chunk_ids() == set(listed)


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """A real `chroma run` server for the session; each test keeps to collections of its own."""
    port = free_port()
    data = tmp_path_factory.mktemp("chroma-server")
    command = [installed_command("chroma"), "run", "--path", str(data), "--host", "127.0.0.1", "--port", str(port)]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/api/v2/heartbeat"):
        yield url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A real PostgreSQL 18 with pgvector (tests/postgres_server.py) for the session, on loopback with
    a password; yields its URL. Each test keeps to collections of its own."""
    from tests.postgres_server import running_postgres

    with running_postgres() as url:
        yield url


def installed_command(name: str) -> str:
    """A console script installed beside the interpreter running the tests."""
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    assert path, f"{name} is installed with the test dependencies"
    return path


