"""rag: local-first retrieval-augmented generation over your own documents.

    import rag
    settings = rag.load_settings(home="/tmp/kb")
    rag.ingest(["notes/"], settings)
    for hit in rag.search("when is the offsite?", settings):
        print(hit.score, hit.source, hit.location_label)
    print(rag.ask("when is the offsite?", settings).answer)
    for record in rag.extract(rag.fields_schema("date:str, people:list[str]"), ["notes/"], settings):
        print(record.to_dict())
"""

from rag.privacy import enforce_offline

enforce_offline()

from rag.api import (  # noqa: E402
    ask, check, evaluate, evaluate_answers, extract, fields_schema, ingest, repair, search, status, summarize,
)
from rag.errors import RagError  # noqa: E402
from rag.settings import Settings, load_settings  # noqa: E402


def __getattr__(name: str):
    # The assistant pulls in LangChain's model classes: only load them when asked for.
    if name == "Assistant":
        from rag.ask import Assistant

        return Assistant
    raise AttributeError(name)


__all__ = [
    "Assistant", "RagError", "Settings", "ask", "check", "evaluate", "evaluate_answers", "extract", "fields_schema", "ingest",
    "load_settings", "repair", "search", "status", "summarize",
]
