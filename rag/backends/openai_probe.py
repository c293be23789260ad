"""What rag asks an OpenAI-compatible server over its API, without langchain-openai or the openai
client: which models it serves, its window where it says, whether it takes a JSON schema, with
the API key from the settings; `status` for `rag models`."""

from __future__ import annotations

import urllib.error
from typing import Any

from rag.backends.http import ServerUnreachable, get_json, post_json
from rag.backends.registry import OpenAISettings
from rag.errors import ConfigError, ModelNotServedError, RagError
from rag.settings import Settings


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "record", "schema": schema, "strict": True}}


def base_url(settings: Settings) -> str:
    return settings.llm.section(OpenAISettings).base_url.rstrip("/")


def api_key(section: OpenAISettings) -> str | None:
    if section.api_key is not None:
        return section.api_key.get_secret_value()
    if section.api_key_file is None:
        return None
    path = section.api_key_file.expanduser()
    try:
        return path.read_text().strip().splitlines()[0]
    except (OSError, UnicodeDecodeError, IndexError) as exc:
        raise ConfigError(f"Cannot read the API key from llm.openai.api_key_file {path}: put the key on its first line.") from exc


def headers(section: OpenAISettings) -> dict[str, str]:
    key = api_key(section)
    return {"Authorization": f"Bearer {key}"} if key else {}


def not_answering(url: str) -> RagError:
    return RagError(
        f"No OpenAI-compatible server answers at {url}; start one (e.g. `llama-server -m model.gguf`) "
        "or set llm.openai.base_url to its /v1 address."
    )


def key_refused(url: str) -> RagError:
    return RagError(f"The server at {url} refused the API key; set llm.openai.api_key or llm.openai.api_key_file.")


def not_served(model: str, url: str) -> RagError:
    return ModelNotServedError(url, model)


def served_models(settings: Settings) -> list[dict[str, Any]]:
    url = base_url(settings)
    try:
        return get_json(f"{url}/models", headers=headers(settings.llm.section(OpenAISettings))).get("data", [])
    except ServerUnreachable as exc:
        raise not_answering(url) from exc
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise key_refused(url) from exc
        raise not_answering(url) from exc


def selected_model(settings: Settings, models: list[dict[str, Any]]) -> str:
    url = base_url(settings)
    if not models:
        raise RagError(f"The server at {url} serves no model yet; load one in it first.")
    name = settings.llm.model
    if name is None:
        if len(models) > 1:
            names = ", ".join(m["id"] for m in models)
            raise ConfigError(f"The server at {url} serves several models; set llm.model to one of: {names}.")
        return models[0]["id"]
    if name not in {m["id"] for m in models}:
        raise not_served(name, url)
    return name


def served_context(model: dict[str, Any], properties: dict[str, Any] | None) -> int | None:
    """The window per request: vLLM lists it with the model; llama-server has it per slot in its /props."""
    if isinstance(model.get("max_model_len"), int):
        return model["max_model_len"]
    return properties.get("default_generation_settings", {}).get("n_ctx") if properties else None


def llama_server_properties(settings: Settings) -> dict[str, Any] | None:
    """llama-server's /props, or None for another server."""
    root = base_url(settings).removesuffix("/v1")
    try:
        properties = get_json(f"{root}/props", headers=headers(settings.llm.section(OpenAISettings)))
    except (ServerUnreachable, urllib.error.HTTPError):
        return None
    return properties if isinstance(properties, dict) else None


def accepts_json_schema(settings: Settings, model: str) -> bool:
    """Whether the server takes `response_format` with a JSON schema: one request of one token."""
    section = settings.llm.section(OpenAISettings)
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with an empty JSON object."}],
        "max_tokens": 1,
        "response_format": response_format({"type": "object"}),
    }
    try:
        post_json(f"{base_url(settings)}/chat/completions", payload, section.request_timeout, headers(section))
    except (ServerUnreachable, urllib.error.HTTPError):
        return False
    return True


def status(settings: Settings) -> dict[str, Any]:
    url = base_url(settings)
    models = served_models(settings)
    try:
        selected: str | None = selected_model(settings, models)
    except RagError:
        selected = None
    properties = llama_server_properties(settings)
    rows = []
    for model in models:
        row = {"name": model["id"], "context": served_context(model, properties) or "", "owned_by": model.get("owned_by", "")}
        if selected is not None and model["id"] == selected:
            row["structured_output"] = _structured_output(settings, selected)
        rows.append(row)
    return {"where": url, "models": rows, "selected": selected or settings.llm.model, "selected_available": selected is not None}


def _structured_output(settings: Settings, model: str) -> str:
    chosen = settings.llm.section(OpenAISettings).structured_output
    if chosen == "auto":
        chosen = "json_schema" if accepts_json_schema(settings, model) else "none"
    return "json_schema (sent as response_format)" if chosen == "json_schema" else "none (replies checked and retried)"
