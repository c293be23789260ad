"""Switch off every phone-home a dependency could make. Applied when `ingest` or `rag` is imported.

Forced, not defaulted: a user's shell that enables tracing or hub downloads must not make
rag send their documents anywhere.
"""

import os

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "ANONYMIZED_TELEMETRY": "False",
}


def enforce_offline() -> None:
    os.environ.update(OFFLINE_ENVIRONMENT)
