"""Ollama through langchain-ollama: `ChatOllama` (the server applies the model's chat template)
or, with `llm.ollama.api = "generate"`, `OllamaLLM` fed rag's prompt for the model's family."""

from __future__ import annotations

import urllib.error
from typing import Any

from langchain_core.runnables import Runnable
from langchain_ollama import ChatOllama, OllamaLLM

from rag.backends.base import ModelTraits
from rag.backends.http import ServerUnreachable, get_json, post_json
from rag.errors import ConfigError, RagError
from rag.prompting import family_from_chat_template, family_from_model_name
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
        return None if normalised is None else self.bind(format=normalised)


class RagChatOllama(_SchemaFormat, ChatOllama):
    pass


class RagOllamaLLM(_SchemaFormat, OllamaLLM):
    prompt_family: str = "plain"

    def rag_prompt_family(self) -> str:
        return self.prompt_family


def base_url(settings: Settings) -> str:
    return settings.llm.ollama.base_url.rstrip("/")


def not_running(url: str) -> RagError:
    return RagError(f"Ollama is not running at {url}; start it with `ollama serve`.")


def not_pulled(model: str) -> RagError:
    return RagError(f"Model {model} is not pulled; run `ollama pull {model}`.")


def list_models(url: str) -> list[dict[str, Any]]:
    try:
        return get_json(f"{url}/api/tags").get("models", [])
    except ServerUnreachable as exc:
        raise not_running(url) from exc


def _pulled(model: str, models: list[dict[str, Any]]) -> bool:
    names = {m["name"] for m in models}
    return model in names or f"{model}:latest" in names


def create(settings: Settings):
    llm = settings.llm
    url = base_url(settings)
    if not llm.model:
        raise ConfigError("Set llm.model to the Ollama model to use (`rag models` lists them).")
    if not _pulled(llm.model, list_models(url)):
        raise not_pulled(llm.model)
    options = dict(
        model=llm.model,
        base_url=url,
        num_ctx=llm.n_ctx,
        num_predict=llm.max_tokens,
        temperature=llm.temperature,
        seed=llm.seed,
        keep_alive=llm.ollama.keep_alive,
        client_kwargs={"timeout": llm.ollama.request_timeout},
    )
    if llm.ollama.api == "chat":
        return RagChatOllama(**options)
    return RagOllamaLLM(prompt_family=_family(url, llm.model), **options)


def _family(url: str, model: str) -> str:
    """The prompt family of a model, from the template Ollama stores for it, else its name."""
    try:
        template = post_json(f"{url}/api/show", {"model": model}).get("template", "")
    except (ServerUnreachable, urllib.error.HTTPError):
        template = ""
    return family_from_chat_template(template) or family_from_model_name(model)


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    import httpx
    from ollama import ResponseError

    if isinstance(exc, ResponseError) and exc.status_code == 404:
        return not_pulled(settings.llm.model or "")
    if isinstance(exc, (httpx.ConnectError, ConnectionError)):
        return not_running(base_url(settings))
    return None


def status(settings: Settings) -> dict[str, Any]:
    url = base_url(settings)
    models = list_models(url)
    return {
        "where": url,
        "models": [
            {
                "name": m["name"],
                "size_mb": round(m.get("size", 0) / 1e6, 1),
                "family": m.get("details", {}).get("family", ""),
                "parameters": m.get("details", {}).get("parameter_size", ""),
                "quantization": m.get("details", {}).get("quantization_level", ""),
            }
            for m in models
        ],
        "selected": settings.llm.model,
        "selected_available": bool(settings.llm.model) and _pulled(settings.llm.model, models),
    }
