"""rag: local-first retrieval-augmented generation over your own documents.

    import rag
    settings = rag.load_settings(home="/tmp/kb")
    rag.ingest(["notes/"], settings)
    for hit in rag.search("when is the offsite?", settings):
        print(hit.score, hit.source, hit.location_label)
"""

from rag.privacy import enforce_offline

enforce_offline()

from rag.api import ingest, search, status  # noqa: E402
from rag.errors import RagError  # noqa: E402
from rag.settings import Settings, load_settings  # noqa: E402

__all__ = ["RagError", "Settings", "ingest", "load_settings", "search", "status"]
