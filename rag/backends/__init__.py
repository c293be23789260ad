"""Language-model backends: a plain registry of modules, one per backend.

Each module has `create(settings)` (a LangChain model), `status(settings)` (where it is and
which models it has, for `rag models`) and `translate_error(settings, exc)` (its client's
failures as one-line `RagError`s). A module is imported only when its backend is used, so a
missing optional dependency of one backend never affects another; it becomes an install hint.
Models may offer `rag_prompt_family()`, `rag_count_tokens(text)`, `rag_context_window()`,
`rag_render_chat(messages)` and `rag_json_schema(schema)` (the model constrained to write JSON
valid for the schema), which let the prompt selector, the context fitting and the batch jobs see
the real model; others get safe defaults.
"""

from __future__ import annotations

import contextlib
import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterator

from langchain_core.language_models import BaseLanguageModel
from langchain_core.runnables import Runnable

from rag.errors import ConfigError, RagError
from rag.settings import Settings

BACKENDS: dict[str, str] = {
    "llamacpp": "rag.backends.llamacpp",
    "ollama": "rag.backends.ollama",
    "gpt4all": "rag.backends.gpt4all",
    "llamafile": "rag.backends.llamafile",
}
INSTALL_HINTS: dict[str, str] = {
    "llamacpp": "pip install 'rag[llamacpp]' (build flags: see the README)",
    "ollama": "pip install 'rag[ollama]'",
    "gpt4all": "pip install 'rag[gpt4all]'",
    "llamafile": "pip install 'rag[llamafile]'",
}
# Without a tokenizer, assume dense text: about 3 characters a token errs on the short side.
CHARS_PER_TOKEN_ESTIMATE = 3


@dataclass
class BackendStatus:
    backend: str
    ok: bool
    where: str = ""
    problem: str = ""
    models: list[dict[str, Any]] = field(default_factory=list)
    selected: str | None = None
    selected_available: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def missing_package(name: str, exc: ImportError) -> RagError:
    """The install hint for backend `name`, whose package could not be imported."""
    # LangChain re-raises a failed import as a plain ImportError; the one it caught names the package.
    cause: BaseException | None = exc
    while cause is not None and not getattr(cause, "name", None):
        cause = cause.__cause__ or cause.__context__
    package = f" ({cause.name})" if cause is not None else ""
    return RagError(f"The {name} backend needs a package that is not installed{package}: {INSTALL_HINTS[name]}")


def backend_module(name: str) -> ModuleType:
    if name not in BACKENDS:
        raise ConfigError(f"Unknown llm.backend {name!r}; use one of: {', '.join(BACKENDS)}.")
    try:
        return importlib.import_module(BACKENDS[name])
    except ImportError as exc:
        raise missing_package(name, exc) from exc


def create_llm(settings: Settings) -> BaseLanguageModel:
    name = settings.llm.backend
    module = backend_module(name)
    try:
        return module.create(settings)
    except ImportError as exc:  # a client that imports its engine only when a model is made (GPT4All)
        raise missing_package(name, exc) from exc


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    """The backend's one-line explanation of a failure of its client, if it has one."""
    return backend_module(settings.llm.backend).translate_error(settings, exc)


@contextlib.contextmanager
def backend_errors(settings: Settings) -> Iterator[None]:
    """A backend client's failures (server down, model missing) as one-line RagErrors."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:
        if explained := translate_error(settings, exc):
            raise explained from exc
        raise


def backend_status(name: str, settings: Settings) -> BackendStatus:
    try:
        module = backend_module(name)
        try:
            return BackendStatus(backend=name, ok=True, **module.status(settings))
        except ImportError as exc:  # as in create_llm: the engine is imported when a model is made
            raise missing_package(name, exc) from exc
    except RagError as exc:
        return BackendStatus(backend=name, ok=False, problem=str(exc))


def context_window(llm: BaseLanguageModel, configured: int) -> int:
    """Tokens the model can attend to: llm.n_ctx, or less where the engine has a smaller window."""
    window = getattr(llm, "rag_context_window", None)
    return min(configured, window()) if callable(window) and window() else configured


def count_tokens(llm: BaseLanguageModel, text: str) -> int:
    counter = getattr(llm, "rag_count_tokens", None)
    if callable(counter):
        return counter(text)
    return len(text) // CHARS_PER_TOKEN_ESTIMATE + 1


def json_schema_constrained(llm: BaseLanguageModel, schema: dict[str, Any]) -> Runnable | None:
    """`llm` bound to write only JSON valid for `schema` (constrained decoding), where it can."""
    constrain = getattr(llm, "rag_json_schema", None)
    return constrain(schema) if callable(constrain) else None
