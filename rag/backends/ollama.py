"""Ollama through langchain-ollama: `ChatOllama` (the server applies the model's chat template)
or, with `llm.ollama.api = "generate"`, `OllamaLLM` fed rag's prompt for the model's family."""

from __future__ import annotations

from typing import Any, cast

from langchain_core.runnables import Runnable
from langchain_ollama import ChatOllama, OllamaLLM

from rag.backends.base import ModelTraits
from rag.backends.ollama_probe import base_url, family, list_models, not_pulled, not_running, pulled
from rag.backends.registry import OllamaSettings
from rag.errors import ModelNotChosenError, RagError
from rag.settings import Settings


class _SchemaFormat(ModelTraits):
    def rag_parallel_requests(self) -> bool:
        return True

    def rag_constrains_json(self) -> bool:
        return True

    def rag_json_schema(self, schema: dict[str, Any]) -> Runnable | None:
        """Ollama's structured outputs: the schema as the request's `format`, as `rag.batch.grammar`
        normalises it (Ollama makes its grammar with llama.cpp's converter)."""
        from rag.batch.grammar import plan

        normalised = plan(schema).schema
        # mixed into LangChain's Ollama models only: self is a Runnable
        return None if normalised is None else cast(Runnable, self).bind(format=normalised)


class RagChatOllama(_SchemaFormat, ChatOllama):
    pass


class RagOllamaLLM(_SchemaFormat, OllamaLLM):
    prompt_family: str = "plain"

    def rag_prompt_family(self) -> str:
        return self.prompt_family


def create(settings: Settings) -> RagChatOllama | RagOllamaLLM:
    llm, server = settings.llm, settings.llm.section(OllamaSettings)
    url = base_url(settings)
    if not llm.model:
        raise ModelNotChosenError(f"the Ollama server at {url}")
    if not pulled(llm.model, list_models(url)):
        raise not_pulled(llm.model)
    options: dict[str, Any] = dict(
        model=llm.model,
        base_url=url,
        num_ctx=llm.n_ctx,
        num_predict=llm.max_tokens,
        temperature=llm.temperature,
        seed=llm.seed,
        keep_alive=server.keep_alive,
        client_kwargs={"timeout": server.request_timeout},
    )
    if server.api == "chat":
        return RagChatOllama(**options)
    return RagOllamaLLM(prompt_family=family(url, llm.model), **options)


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    import httpx
    from ollama import ResponseError

    if isinstance(exc, ResponseError) and exc.status_code == 404:
        return not_pulled(settings.llm.model or "")
    if isinstance(exc, (httpx.ConnectError, ConnectionError)):
        return not_running(base_url(settings))
    return None
