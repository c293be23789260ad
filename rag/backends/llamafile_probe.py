"""What rag asks a llamafile or llama.cpp server over its own API, without LangChain: whether it
answers, and its properties (model, window, chat template); `status` for `rag models`."""

from __future__ import annotations

import urllib.error
from typing import Any

from rag.backends.families import family_from_chat_template
from rag.backends.http import ServerUnreachable, get_json
from rag.backends.registry import LlamafileSettings
from rag.errors import RagError
from rag.settings import Settings


def base_url(settings: Settings) -> str:
    return settings.llm.section(LlamafileSettings).base_url.rstrip("/")


def not_answering(url: str) -> RagError:
    return RagError(
        f"No llamafile or llama.cpp server answers at {url}; start one, e.g. "
        "`./model.llamafile --server --nobrowser` or `llama-server -m model.gguf`."
    )


def server_properties(url: str) -> dict[str, Any]:
    try:
        health = get_json(f"{url}/health")
    except ServerUnreachable as exc:
        raise not_answering(url) from exc
    except urllib.error.HTTPError as exc:
        if exc.code == 503:
            raise RagError(f"The llama.cpp server at {url} is still loading its model; try again shortly.") from exc
        raise not_answering(url) from exc
    try:
        return {**get_json(f"{url}/props"), "health": health}
    except (ServerUnreachable, urllib.error.HTTPError):
        return {"health": health}  # llamafiles before llama.cpp's /props


def status(settings: Settings) -> dict[str, Any]:
    url = base_url(settings)
    properties = server_properties(url)
    model_path = properties.get("model_path", "")
    return {
        "where": url,
        "models": [
            {
                "name": model_path.rsplit("/", 1)[-1] or "(served model)",
                "context": properties.get("default_generation_settings", {}).get("n_ctx", ""),
                "family": family_from_chat_template(properties.get("chat_template", "")) or "plain",
            }
        ],
        "selected": model_path,
        "selected_available": True,
    }
