"""The GGUF file a local backend runs (llamacpp, gpt4all): which one the settings name, and what it is."""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

from rag.backends.families import family_from_gguf_metadata
from rag.backends.gguf_header import GGUF_MAGIC, read_metadata
from rag.backends.local_models import resolve, store_reference
from rag.backends.packaged_models import DEFAULT_MODEL, packaged_model_path
from rag.errors import ModelNotFoundError
from rag.settings import LLMSettings, Settings


def packaged_model_name(llm: LLMSettings) -> str | None:
    """The packaged model llm.model names (default: the default packaged model); None with llm.model_path."""
    return None if llm.model_path else llm.model or DEFAULT_MODEL


def model_file(settings: Settings) -> Path:
    """llm.model_path, or the packaged model llm.model names (default: the default packaged model).

    llm.model_path is a file, or another app's model as STORE:NAME (ollama:llama3.2, see local_models).
    """
    name = packaged_model_name(settings.llm)
    if name is not None:
        return packaged_model_path(name, settings.cache_path)
    assert settings.llm.model_path is not None
    if reference := store_reference(str(settings.llm.model_path)):
        return resolve(*reference)
    return settings.llm.model_path.expanduser()


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


def describe_model_file(path: Path) -> dict[str, Any]:
    """For `rag models`: what a GGUF file is and which prompt family rag gives it."""
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
