"""LangChain's own standard tests (langchain-tests) on `rag.retriever(...)` and `rag.embeddings(...)`,
over the real index of the sample notes: the retriever keeps the contract per call (`k`, and rag's
`where`, `paths`, `mode`), the embeddings are a LangChain `Embeddings`."""

from __future__ import annotations

import atexit
import functools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from langchain_tests.integration_tests import EmbeddingsIntegrationTests, RetrieversIntegrationTests

import rag
from rag.errors import UsageError
from tests.conftest import SAMPLE_NOTES, make_settings

QUESTION = "What does the Brandt RO-350 reflow oven manual say about its warranty, service and parts?"
MANUAL = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
RUNBOOK = str(SAMPLE_NOTES / "work/runbooks/harbor-ingest-runbook.md")
# Two files answer it; the manual ranks first.
TWO_FILES = "When does the warranty of the Brandt RO-350 reflow oven end, and who is escalated to for Harbor ingest?"


@functools.cache
def sample_notes() -> rag.Settings:
    """The sample notes ingested once for this module (the standard suites ask for settings in properties)."""
    home = tempfile.mkdtemp(prefix="rag-langchain-standard-")
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    settings = make_settings(Path(home))
    rag.ingest([SAMPLE_NOTES], settings)
    return settings


class TestRetrieverStandard(RetrieversIntegrationTests):
    @property
    def retriever_constructor(self) -> Any:
        return rag.retriever

    @property
    def retriever_constructor_params(self) -> dict:
        return {"settings": sample_notes()}

    @property
    def retriever_query_example(self) -> str:
        return QUESTION


class TestEmbeddingsStandard(EmbeddingsIntegrationTests):
    @property
    def embeddings_class(self) -> Any:
        return rag.embeddings

    @property
    def embedding_model_params(self) -> dict:
        return {"settings": sample_notes()}


def test_where_paths_and_mode_hold_per_call():
    retriever = rag.retriever(sample_notes())

    def sources(**options) -> set[str]:
        documents = retriever.invoke(TWO_FILES, **options)
        assert documents
        return {doc.metadata["source"] for doc in documents}

    assert sources() == {MANUAL}
    assert sources(where={"source": RUNBOOK}) == {RUNBOOK}
    assert sources(paths=[RUNBOOK]) == {RUNBOOK}
    keyword = retriever.invoke(TWO_FILES, mode="keyword", k=2)
    assert len(keyword) == 2 and all(doc.metadata["similarity"] is None for doc in keyword)
    assert sources() == {MANUAL}  # one call's options change nothing after it


def test_an_unknown_option_is_refused_naming_the_accepted_ones():
    with pytest.raises(UsageError, match=r"^The retriever takes no option 'top_n'; it takes k, mode, where, paths, queries\.$"):
        rag.retriever(sample_notes()).invoke(QUESTION, top_n=3)
