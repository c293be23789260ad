"""The test suite in three tiers, one folder each: unit/ (logic that needs no model, index or
server), integration/ (the real engines: Chroma on disk and as a server, PostgreSQL, llama.cpp, the
embedding models, Ray) and e2e/ (rag as its users run it: `rag` processes, `rag serve` over HTTP, the
browser page). The shared fixtures (conftest.py), helpers and data stay at this level."""

from pathlib import Path

# integration/test_migrate.py, test_postgres_index.py and test_index_database.py still import
# `tests.test_concurrency` and `tests.test_cjk`, their names from before the tier folders: until
# they name tests.integration.*, that folder is searched for them too.
__path__.append(str(Path(__file__).resolve().parent / "integration"))
