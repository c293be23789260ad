"""Language-model backends: a plain registry of modules, each with `create(settings)`.

A backend module is imported only when it is used, so a missing optional dependency of one
backend never affects another; `create_llm` turns that ImportError into an install hint.
Backends may return models with the `rag_*` methods of `ModelInfo`, which let the prompt
selector and the context fitting see the real model; others get safe defaults.
"""

from __future__ import annotations

import importlib
from typing import Protocol, runtime_checkable

from langchain_core.language_models import BaseLanguageModel

from rag.errors import ConfigError, RagError
from rag.settings import Settings

BACKENDS: dict[str, str] = {
    "llamacpp": "rag.backends.llamacpp",
}
INSTALL_HINTS: dict[str, str] = {
    "llamacpp": "pip install 'rag[llamacpp]' (build flags: see the README)",
}
# Without a tokenizer, assume dense text: about 3 characters a token errs on the short side.
CHARS_PER_TOKEN_ESTIMATE = 3


@runtime_checkable
class ModelInfo(Protocol):
    def rag_prompt_family(self) -> str: ...

    def rag_count_tokens(self, text: str) -> int: ...


def create_llm(settings: Settings) -> BaseLanguageModel:
    backend = settings.llm.backend
    if backend not in BACKENDS:
        raise ConfigError(f"Unknown llm.backend {backend!r}; use one of: {', '.join(BACKENDS)}.")
    try:
        module = importlib.import_module(BACKENDS[backend])
    except ImportError as exc:
        raise RagError(
            f"The {backend} backend needs a package that is not installed ({exc.name}): {INSTALL_HINTS[backend]}"
        ) from exc
    return module.create(settings)


def count_tokens(llm: BaseLanguageModel, text: str) -> int:
    if isinstance(llm, ModelInfo):
        return llm.rag_count_tokens(text)
    return len(text) // CHARS_PER_TOKEN_ESTIMATE + 1
