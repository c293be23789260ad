"""What a GGUF file says about itself, shared by the backends that run GGUF files locally."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from rag.backends.packaged_models import DEFAULT_MODEL, packaged_model_path
from rag.errors import ModelNotFoundError
from rag.settings import Settings

GGUF_MAGIC = b"GGUF"


def model_file(settings: Settings) -> Path:
    """llm.model_path, or the packaged model llm.model names (default: the default packaged model)."""
    if settings.llm.model_path:
        return settings.llm.model_path.expanduser()
    return packaged_model_path(settings.llm.model or DEFAULT_MODEL, settings.cache_path)


def require_readable(path: Path) -> Path:
    if not path.is_file():
        raise ModelNotFoundError(f"Model file {path} does not exist; set llm.model_path to a GGUF file.")
    if not os.access(path, os.R_OK):
        raise ModelNotFoundError(f"Model file {path} is not readable; check its permissions.")
    return path


def is_gguf(path: Path) -> bool:
    with path.open("rb") as fh:
        return fh.read(4) == GGUF_MAGIC


@contextlib.contextmanager
def native_stderr_silenced():
    """llama.cpp prints load-time notices, from C and from its log callback, even with verbose=False."""
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        with contextlib.redirect_stderr(io.StringIO()):
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def read_metadata(path: Path) -> dict[str, str]:
    """The GGUF key/value metadata (architecture, name, chat template...), without the weights.

    Uses llama.cpp's own reader (vocabulary only: fast even for large models); without
    llama-cpp-python installed the metadata is unknown and an empty dict is returned.
    """
    try:
        import llama_cpp
    except ImportError:
        return {}
    with native_stderr_silenced():
        model = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    return dict(model.metadata)


def describe_model_file(path: Path) -> dict[str, Any]:
    """For `rag models`: what a GGUF file is and which prompt family rag gives it."""
    from rag.prompting import family_from_gguf_metadata

    metadata = read_metadata(path)
    architecture = metadata.get("general.architecture", "")
    return {
        "where": str(path),
        "models": [
            {
                "name": metadata.get("general.name", path.name),
                "architecture": architecture,
                "context": metadata.get(f"{architecture}.context_length", ""),
                "chat_template": "tokenizer.chat_template" in metadata,
                "family": family_from_gguf_metadata(metadata),
            }
        ],
        "selected": str(path),
        "selected_available": True,
    }
