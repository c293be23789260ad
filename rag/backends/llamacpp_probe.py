"""What `rag models` says of the llamacpp backend: the GGUF file it would run, from its header."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.backends.gguf_files import describe_model_file, is_gguf, model_file, require_readable
from rag.errors import RagError
from rag.settings import Settings


def unloadable(path: Path) -> RagError:
    if not is_gguf(path):
        reason = "it is not a GGUF file (convert the model to GGUF first)."
    else:
        reason = "damaged file, or a model architecture this llama-cpp-python does not support (try upgrading it)."
    return RagError(f"llama.cpp cannot load {path}: {reason}")


def status(settings: Settings) -> dict[str, Any]:
    path = require_readable(model_file(settings))
    if not is_gguf(path):
        raise unloadable(path)
    return describe_model_file(path)
