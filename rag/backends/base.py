"""The contract between rag and a language-model backend, and what rag reads from a model.

A backend is a module, imported only when it is used, that satisfies `Backend`, and a lighter
one that satisfies `Probe`: what `rag models` asks, answered without importing the LangChain
client or loading the engine. Its `BackendSpec` (registry.py) names both, the packages the backend
needs, its pip extra (for the install hint) and its settings section, without importing any of
them. The models a backend creates mix in `ModelTraits` and override what their engine knows; any
other LangChain model gets the defaults.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.runnables import Runnable

    from rag.errors import RagError
    from rag.settings import Settings

# Without a tokenizer, assume dense text: about 3 characters a token errs on the short side.
CHARS_PER_TOKEN_ESTIMATE = 3


class Backend(Protocol):
    def create(self, settings: Settings) -> BaseLanguageModel:
        """The LangChain model the settings describe, ready to generate; RagError with the fix if it cannot be."""

    def translate_error(self, settings: Settings, exc: Exception) -> RagError | None:
        """A failure of the backend's client as a one-line RagError, or None if it is not one of its own."""


class Probe(Protocol):
    def status(self, settings: Settings) -> dict[str, Any]:
        """Where it is and which models it has (`where`, `models`, `selected`, `selected_available`), for
        `rag models`: a model file's header, a server's answers, never the engine loaded; RagError when
        it is unreachable or could not load the model."""


class ModelTraits:
    """What rag asks of a model beyond LangChain's interface, answered as well as nothing is known.

    The prompt selector reads the family and the chat template, context fitting the tokenizer and the
    window, batch extraction the constrained decoding. Named `rag_*` so that they never meet a field of
    a LangChain model they are mixed into.
    """

    def rag_prompt_family(self) -> str:
        """The prompt family of a text model (rag.prompting.FAMILIES); chat models apply their own template."""
        return "plain"

    def rag_count_tokens(self, text: str) -> int:
        return len(text) // CHARS_PER_TOKEN_ESTIMATE + 1

    def rag_context_window(self) -> int | None:
        """The engine's window where it is smaller than llm.n_ctx says, else None."""
        return None

    def rag_render_chat(self, messages: list[dict[str, str]]) -> str | None:
        """A system and a user message rendered by the model's own chat template, if rag can drive it."""
        return None

    def rag_parallel_requests(self) -> bool:
        """Whether requests from several threads at once are safe and can run together (a server's slots);
        an engine in this process generates one at a time."""
        return False

    def rag_constrains_json(self) -> bool:
        """Whether rag_json_schema can constrain this model at all (a batch job says so once if not)."""
        return False

    def rag_json_schema(self, schema: dict[str, Any]) -> Runnable | None:
        """This model constrained to write JSON valid for `schema`, where it can be for this schema."""
        return None

    def rag_never_writing(self, letters: frozenset[str]) -> dict[str, Any]:
        """The generation arguments under which this model samples no token that holds one of
        `letters`; none where its engine cannot be kept from any."""
        return {}


_NOTHING_KNOWN = ModelTraits()


def traits(llm: BaseLanguageModel) -> ModelTraits:
    return llm if isinstance(llm, ModelTraits) else _NOTHING_KNOWN
