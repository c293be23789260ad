"""What `rag models` says of the gpt4all backend: the GGUF file it would run, and whether gpt4all's
engine takes the file's architecture, asked of the engine without loading the weights."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rag.backends.gguf_files import describe_model_file, is_gguf, model_file, native_stderr_silenced, require_readable
from rag.errors import RagError
from rag.settings import Settings

# What LangChain's GPT4All asks of gpt4all on Linux (its device "cpu" is Kompute without a GPU).
ENGINE_BACKEND = "kompute"


def not_gguf(path: Path) -> RagError:
    return RagError(f"GPT4All cannot load {path}: it is not a GGUF file.")


def unloadable(path: Path, exc: Exception) -> RagError:
    if "Unsupported model architecture" in str(exc):
        architecture = str(exc).rsplit(":", 1)[-1].strip()
        reason = f"unsupported model architecture {architecture!r} in gpt4all; use the llamacpp backend for it."
    else:
        reason = f"{exc}."
    return RagError(f"GPT4All cannot load {path}: {reason}")


def status(settings: Settings) -> dict[str, Any]:
    # gpt4all's own binding (pinned in the gpt4all extra): making the model object picks the engine
    # for the file's architecture, or refuses it; the weights are read only by load_model().
    from gpt4all._pyllmodel import LLModel

    path = require_readable(model_file(settings))
    if not is_gguf(path):
        raise not_gguf(path)
    try:
        with native_stderr_silenced():  # it reports each GPU library it does not find
            LLModel(str(path), n_ctx=2048, ngl=0, backend=ENGINE_BACKEND).close()
    except (ValueError, RuntimeError) as exc:
        raise unloadable(path, exc) from exc
    return describe_model_file(path)
