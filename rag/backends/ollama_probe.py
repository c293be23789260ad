"""What rag asks an Ollama server over its own API, without langchain-ollama: whether it runs, which
models it has pulled, a model's template; `status` for `rag models`."""

from __future__ import annotations

import urllib.error
from typing import Any

from rag.backends.families import family_from_chat_template, family_from_model_name
from rag.backends.http import ServerUnreachable, get_json, post_json
from rag.backends.registry import OllamaSettings
from rag.errors import RagError
from rag.settings import Settings


def base_url(settings: Settings) -> str:
    return settings.llm.section(OllamaSettings).base_url.rstrip("/")


def not_running(url: str) -> RagError:
    return RagError(f"Ollama is not running at {url}; start it with `ollama serve`.")


def not_pulled(model: str) -> RagError:
    return RagError(f"Model {model} is not pulled; run `ollama pull {model}`.")


def list_models(url: str) -> list[dict[str, Any]]:
    try:
        return get_json(f"{url}/api/tags").get("models", [])
    except ServerUnreachable as exc:
        raise not_running(url) from exc


def pulled(model: str, models: list[dict[str, Any]]) -> bool:
    names = {m["name"] for m in models}
    return model in names or f"{model}:latest" in names


def family(url: str, model: str) -> str:
    """The prompt family of a model, from the template Ollama stores for it, else its name."""
    try:
        template = post_json(f"{url}/api/show", {"model": model}).get("template", "")
    except (ServerUnreachable, urllib.error.HTTPError):
        template = ""
    return family_from_chat_template(template) or family_from_model_name(model)


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
        "selected_available": pulled(settings.llm.model, models) if settings.llm.model else False,
    }
