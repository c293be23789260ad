"""rag: local-first retrieval-augmented generation over your own documents.

    import rag
    settings = rag.load_settings(home="/tmp/kb")
    rag.ingest(["notes/"], settings)
    for hit in rag.search("when is the offsite?", settings):
        print(hit.score, hit.source, hit.location_label)
    print(rag.ask("when is the offsite?", settings).answer)
    chat = rag.Conversation(rag.Assistant(settings))       # follow-ups keep the conversation's context
    docs = rag.retriever(settings, k=4).invoke("offsite")  # a LangChain retriever for your own chains
    for record in rag.extract(rag.fields_schema("date:str, people:list[str]"), ["notes/"], settings):
        print(record.to_dict())
    rag.run_job(rag.summarize(["notes/"], settings), "summaries.jsonl")  # resumable: run again to continue

The API is imported when first used, not with the package: importing any submodule (`rag.errors`,
`rag.settings`, the CLI) runs this file first, and must not pull in the whole API (or LangChain).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ingest.privacy import enforce_offline

enforce_offline()

# Public name -> the module that defines it.
_EXPORTS = {
    **dict.fromkeys(
        ("ask", "check", "collections", "embeddings", "evaluate", "evaluate_answers", "extract", "fields_schema", "files",
         "ingest", "migrate", "repair", "retriever", "search", "status", "summarize", "watch"),
        "rag.api",
    ),
    "Assistant": "rag.answering",
    "Conversation": "rag.answering",
    "IndexRetriever": "rag.chain",
    "JobResult": "rag.batch.run",
    "run_job": "rag.batch.run",
    "RagError": "rag.errors",
    "Settings": "rag.settings",
    "load_settings": "rag.settings",
}

__all__ = [
    "Assistant", "Conversation", "IndexRetriever", "JobResult", "RagError", "Settings", "ask", "check", "collections",
    "embeddings",
    "evaluate", "evaluate_answers", "extract", "fields_schema", "files", "ingest", "load_settings", "migrate", "repair",
    "retriever", "run_job", "search", "status", "summarize", "watch",
]

if TYPE_CHECKING:
    from rag.api import (
        ask, check, collections, embeddings, evaluate, evaluate_answers, extract, fields_schema, files, ingest, migrate,
        repair, retriever, search, status, summarize, watch,
    )
    from rag.answering import Assistant, Conversation
    from rag.batch.run import JobResult, run_job
    from rag.chain import IndexRetriever
    from rag.errors import RagError
    from rag.settings import Settings, load_settings


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
