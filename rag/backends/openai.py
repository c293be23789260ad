"""Any OpenAI-compatible server (llama.cpp's llama-server, vLLM, LM Studio, LocalAI, Jan, Ollama's
/v1) through langchain-openai's `ChatOpenAI`: chat messages, so the server applies the model's own
template. Nothing is sent anywhere but `llm.openai.base_url`; there is no default cloud address.
"""

from __future__ import annotations

import functools
import urllib.error
from typing import Any

import httpx
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr

from rag.backends.base import ModelTraits
from rag.backends.http import ServerUnreachable, get_json, post_json
from rag.errors import ConfigError, RagError
from rag.settings import OpenAISettings, Settings

# Servers without authentication still get a bearer token: the openai client refuses to send none.
NO_KEY = "no-key"


class RagChatOpenAI(ModelTraits, ChatOpenAI):
    server_context: int | None = None
    # llama-server's own tokenizer (POST {"content": text}), where the server is one; else an estimate.
    tokenize_url: str | None = None
    structured_output: str = "auto"
    _probe: Any = PrivateAttr(default=None)
    _headers: dict[str, str] = PrivateAttr(default_factory=dict)

    def rag_context_window(self) -> int | None:
        return self.server_context

    def rag_count_tokens(self, text: str) -> int:
        if self.tokenize_url is None:
            return super().rag_count_tokens(text)
        # +1 for the BOS token the server adds to a prompt.
        return len(post_json(self.tokenize_url, {"content": text}, headers=self._headers)["tokens"]) + 1

    def rag_parallel_requests(self) -> bool:
        return True

    def rag_constrains_json(self) -> bool:
        if self.structured_output == "auto":
            return self._probe() if self._probe else False
        return self.structured_output == "json_schema"

    def rag_json_schema(self, schema: dict[str, Any]) -> Runnable | None:
        """The schema as the request's `response_format`, as `rag.batch.grammar` normalises it (servers
        that build a grammar from it use llama.cpp's converter, with its blind spots)."""
        from rag.batch.grammar import plan

        normalised = plan(schema).schema
        if normalised is None or not self.rag_constrains_json():
            return None
        # As a plain body field: LangChain's response_format runs the client's parse(), which raises on a
        # reply cut at max_tokens instead of returning it for the job's validation and retry.
        return self.bind(extra_body={"response_format": response_format(normalised)})


def response_format(schema: dict[str, Any]) -> dict[str, Any]:
    return {"type": "json_schema", "json_schema": {"name": "record", "schema": schema, "strict": True}}


def base_url(settings: Settings) -> str:
    return settings.llm.openai.base_url.rstrip("/")


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


def _headers(section: OpenAISettings) -> dict[str, str]:
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
    return RagError(f"The server at {url} does not serve model {model!r}; `rag models` lists the ones it has.")


def served_models(settings: Settings) -> list[dict[str, Any]]:
    url = base_url(settings)
    try:
        return get_json(f"{url}/models", headers=_headers(settings.llm.openai)).get("data", [])
    except ServerUnreachable as exc:
        raise not_answering(url) from exc
    except urllib.error.HTTPError as exc:
        if exc.code in (401, 403):
            raise key_refused(url) from exc
        raise not_answering(url) from exc


def _selected(settings: Settings, models: list[dict[str, Any]]) -> str:
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


def _context(model: dict[str, Any], properties: dict[str, Any] | None) -> int | None:
    """The window per request: vLLM lists it with the model; llama-server has it per slot in its /props."""
    if isinstance(model.get("max_model_len"), int):
        return model["max_model_len"]
    return properties.get("default_generation_settings", {}).get("n_ctx") if properties else None


def _llama_server_properties(settings: Settings) -> dict[str, Any] | None:
    """llama-server's /props, or None for another server."""
    root = base_url(settings).removesuffix("/v1")
    try:
        properties = get_json(f"{root}/props", headers=_headers(settings.llm.openai))
    except (ServerUnreachable, urllib.error.HTTPError):
        return None
    return properties if isinstance(properties, dict) else None


def accepts_json_schema(settings: Settings, model: str) -> bool:
    """Whether the server takes `response_format` with a JSON schema: one request of one token."""
    section = settings.llm.openai
    payload = {
        "model": model,
        "messages": [{"role": "user", "content": "Reply with an empty JSON object."}],
        "max_tokens": 1,
        "response_format": response_format({"type": "object"}),
    }
    try:
        post_json(f"{base_url(settings)}/chat/completions", payload, section.request_timeout, _headers(section))
    except (ServerUnreachable, urllib.error.HTTPError):
        return False
    return True


def create(settings: Settings) -> RagChatOpenAI:
    llm, section = settings.llm, settings.llm.openai
    url = base_url(settings)
    models = served_models(settings)
    name = _selected(settings, models)
    properties = _llama_server_properties(settings)
    model = RagChatOpenAI(
        base_url=url,
        api_key=api_key(section) or NO_KEY,
        model=name,
        temperature=llm.temperature,
        max_tokens=llm.max_tokens,
        seed=llm.seed,
        streaming=True,
        timeout=section.request_timeout,
        # A dead server is reported at once, not after the client's retries with back-off.
        max_retries=0,
        # Only the configured server: no proxy from the environment sees the documents.
        http_client=httpx.Client(trust_env=False),
        http_async_client=httpx.AsyncClient(trust_env=False),
        server_context=_context(next(m for m in models if m["id"] == name), properties),
        tokenize_url=f"{url.removesuffix('/v1')}/tokenize" if properties else None,
        structured_output=section.structured_output,
    )
    model._probe = functools.cache(lambda: accepts_json_schema(settings, name))
    model._headers = _headers(section)
    return model


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    import openai

    url = base_url(settings)
    if isinstance(exc, openai.APITimeoutError):
        return RagError(f"The server at {url} did not answer within {settings.llm.openai.request_timeout:g} s; "
                        "raise llm.openai.request_timeout.")
    if isinstance(exc, openai.APIConnectionError):
        return not_answering(url)
    if isinstance(exc, openai.AuthenticationError):
        return key_refused(url)
    if isinstance(exc, openai.NotFoundError):
        return not_served(settings.llm.model or "", url)
    return None


def status(settings: Settings) -> dict[str, Any]:
    url = base_url(settings)
    models = served_models(settings)
    try:
        selected: str | None = _selected(settings, models)
    except RagError:
        selected = None
    properties = _llama_server_properties(settings)
    rows = []
    for model in models:
        row = {"name": model["id"], "context": _context(model, properties) or "", "owned_by": model.get("owned_by", "")}
        if model["id"] == selected:
            row["structured_output"] = _structured_output(settings, selected)
        rows.append(row)
    return {"where": url, "models": rows, "selected": selected or settings.llm.model, "selected_available": selected is not None}


def _structured_output(settings: Settings, model: str) -> str:
    chosen = settings.llm.openai.structured_output
    if chosen == "auto":
        chosen = "json_schema" if accepts_json_schema(settings, model) else "none"
    return "json_schema (sent as response_format)" if chosen == "json_schema" else "none (replies checked and retried)"
