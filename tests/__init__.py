"""The test suite in three tiers, one folder each: unit/ (logic that needs no model, index or
server), integration/ (the real engines: Chroma on disk and as a server, PostgreSQL, llama.cpp, the
embedding models, Ray) and e2e/ (rag as its users run it: `rag` processes, `rag serve` over HTTP, the
browser page). The shared fixtures (conftest.py), helpers and data stay at this level."""
