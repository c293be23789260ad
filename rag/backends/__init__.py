"""Language-model backends: one module per backend (see base.py), named by its `BackendSpec` in
the registry (registry.py), which also holds its settings section.

A module is imported only when its backend is used, so a missing optional dependency of one
backend never affects another; it becomes an install hint. `rag models` asks each backend's
probe module instead, which imports neither LangChain nor the engine. Adding a backend: a module
that satisfies `base.Backend`, a probe module that satisfies `base.Probe`, its settings section and
its spec in registry.py, an extra in pyproject.toml.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, cast

from rag.backends.base import traits
from rag.backends.registry import BACKENDS, BackendSpec
from rag.errors import ConfigError, RagError
from rag.languages import unwritten_letters

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.runnables import Runnable

    from rag.backends.base import Backend, Probe
    # Only as a type: rag.settings builds its backend sections from the registry, imported above.
    from rag.settings import Settings


@dataclass
class BackendStatus:
    backend: str
    ok: bool
    where: str = ""
    problem: str = ""
    models: list[dict[str, Any]] = field(default_factory=list)
    selected: str | None = None
    selected_available: bool = False
    # What `problem` says, as data: an edge words its remedy its own way (the CLI in commands).
    error: RagError | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "error"}


def spec_of(name: str) -> BackendSpec:
    if name not in BACKENDS:
        raise ConfigError(f"Unknown llm.backend {name!r}; use one of: {', '.join(BACKENDS)}.")
    return BACKENDS[name]


def backend(name: str) -> Backend:
    spec = spec_of(name)
    try:
        return cast("Backend", importlib.import_module(spec.module))
    except ImportError as exc:
        raise spec.missing_package(exc) from exc


def probe(spec: BackendSpec) -> Probe:
    """The backend's probe module, once the packages it needs are found (looked up, not imported)."""
    for package in spec.packages:
        try:
            found = importlib.util.find_spec(package) is not None
        except ValueError:  # in sys.modules as None: a package that is not there
            found = False
        if not found:
            raise spec.missing_package(ImportError(name=package))
    return cast("Probe", importlib.import_module(spec.probe))


def create_llm(settings: Settings) -> BaseLanguageModel:
    name = settings.llm.backend
    try:
        return backend(name).create(settings)
    except ImportError as exc:  # a client that imports its engine only when a model is made (GPT4All)
        raise BACKENDS[name].missing_package(exc) from exc


@contextlib.contextmanager
def backend_errors(settings: Settings) -> Iterator[None]:
    """A backend client's failures (server down, model missing) as one-line RagErrors."""
    try:
        yield
    except RagError:
        raise
    except Exception as exc:
        if explained := backend(settings.llm.backend).translate_error(settings, exc):
            raise explained from exc
        raise


def backend_status(name: str, settings: Settings) -> BackendStatus:
    """What the backend's probe finds: a model file's header or a server's answers, no engine loaded."""
    spec = spec_of(name)
    try:
        try:
            return BackendStatus(backend=name, ok=True, **probe(spec).status(settings))
        except ImportError as exc:  # a probe that asks the engine itself (gpt4all's)
            raise spec.missing_package(exc) from exc
    except RagError as exc:
        return BackendStatus(backend=name, ok=False, problem=str(exc), error=exc)


def backend_statuses(names: list[str], settings: Settings) -> list[BackendStatus]:
    """Each backend's status, in the order given, probed at once: a dead server costs its own
    timeout, not the sum of all of them."""
    with ThreadPoolExecutor(max_workers=max(len(names), 1)) as pool:
        return list(pool.map(lambda name: backend_status(name, settings), names))


def context_window(llm: BaseLanguageModel, configured: int) -> int:
    """Tokens the model can attend to: llm.n_ctx, or less where the engine has a smaller window."""
    window = traits(llm).rag_context_window()
    return min(configured, window) if window else configured


def count_tokens(llm: BaseLanguageModel, text: str) -> int:
    return traits(llm).rag_count_tokens(text)


def json_schema_constrained(llm: BaseLanguageModel, schema: dict[str, Any]) -> Runnable | None:
    """`llm` bound to write only JSON valid for `schema` (constrained decoding), where it can."""
    return traits(llm).rag_json_schema(schema)


def writing_in(llm: BaseLanguageModel, language: str, given: str = "") -> dict[str, Any]:
    """The generation arguments that keep `llm` from the letters a text in `language` is not written
    in (`unwritten_letters`) but for those of `given`, the text it writes from, where its engine can
    be kept from them; none where it cannot."""
    letters = unwritten_letters(language).difference(given)
    return traits(llm).rag_never_writing(letters) if letters else {}


# What LangChain's model classes call a reply's length limit and its temperature. One class may
# read two: gpt4all's generate() takes n_predict over max_tokens.
LENGTH_FIELDS = ("max_tokens", "num_predict", "n_predict")
TEMPERATURE_FIELDS = ("temperature", "temp")


def with_generation(llm: BaseLanguageModel, max_tokens: int | None, temperature: float | None) -> BaseLanguageModel:
    """`llm` writing at most `max_tokens` at `temperature` (None: as loaded), in whichever fields
    its class has for them: a shallow copy, the weights shared."""
    fields = getattr(type(llm), "model_fields", {})
    update: dict[str, Any] = {}
    for names, value in ((LENGTH_FIELDS, max_tokens), (TEMPERATURE_FIELDS, temperature)):
        if value is not None:
            update.update({name: value for name in names if name in fields})
    return llm.model_copy(update=update) if update else llm
