"""The fast tier's index: the in-memory store and the fake embedder behind the real ingest, search
and retriever, with no model and no Chroma loaded (checked in a process of its own)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rag
from ingest.index import Index
from tests.conftest import REPO, assert_index_consistent

NOTEBOOK = """
import json, sys
from pathlib import Path
import rag
from rag.settings import load_settings
from tests.fake_embedder import FAKE_MODEL, load_fake_embedder_for_its_name

load_fake_embedder_for_its_name(setattr)
home = Path(sys.argv[2])
settings = load_settings(environ={}, cwd=home, home=home, vector_store={"url": "memory://notebook"},
                         embedding={"model": FAKE_MODEL})
report = rag.ingest([sys.argv[1]], settings)
hits = rag.search("baud rate of the service port", settings, k=3)
heavy = ["chromadb", "torch", "onnxruntime", "sentence_transformers", "llama_cpp"]
print(json.dumps({"added": len(report.added), "top": hits[0].source,
                  "loaded": [name for name in heavy if name in sys.modules]}))
"""


def test_an_index_in_memory_loads_no_model_and_no_chroma(notes, home):
    done = subprocess.run(
        [sys.executable, "-c", NOTEBOOK, str(notes), str(home)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=True,
    )
    result = json.loads(done.stdout)
    assert result == {"added": 4, "top": str(notes / "work/tools/calibrate.py"), "loaded": []}


def test_search_filters_and_modes_on_the_in_memory_store(model_free, notes, home):
    settings = model_free(home)
    report = rag.ingest([notes], settings)
    assert len(report.added) == 4 and report.ok
    assert Index(settings).vector_store_label() == f"the memory of this process ({settings.vector_store.url})"
    assert_index_consistent(settings)

    buns = str(notes / "personal/recipes/cardamom-buns.md")
    for mode in ("dense", "keyword", "hybrid"):
        hits = rag.search("cardamom buns", settings, k=3, mode=mode)
        assert hits[0].source == buns, mode
    only_buns = rag.search("baud rate of the service port", settings, k=10, mode="dense", where={"source": buns})
    assert only_buns and {hit.source for hit in only_buns} == {buns}
    in_work = rag.search("anything at all", settings, k=50, mode="dense", paths=[str(notes / "work") + "/*"])
    assert in_work and all(hit.source.startswith(str(notes / "work")) for hit in in_work)
    documents = rag.retriever(settings, k=2, mode="keyword").invoke("cardamom buns")
    assert documents[0].metadata["source"] == buns


def test_the_fake_embedder_is_deterministic_and_near_for_shared_words(fake_embedder):
    import numpy as np

    vectors = fake_embedder.encode(["the oven bakes buns", "buns in the oven bake", "baud rate of the port", ""])
    assert vectors.shape == (4, 64) and np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert np.array_equal(vectors, fake_embedder.encode(["the oven bakes buns", "buns in the oven bake",
                                                          "baud rate of the port", ""]))
    assert float(vectors[0] @ vectors[1]) > 0.5 > float(vectors[0] @ vectors[2])
    assert fake_embedder.token_counter.count("buns") == 4  # one token per byte
    assert fake_embedder.embed_query("buns") == pytest.approx(fake_embedder.embed_documents(["buns"])[0])
