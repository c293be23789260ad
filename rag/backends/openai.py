"""Any OpenAI-compatible server (llama.cpp's llama-server, vLLM, LM Studio, LocalAI, Jan, Ollama's
/v1) through langchain-openai's `ChatOpenAI`: chat messages, so the server applies the model's own
template. Nothing is sent anywhere but `llm.openai.base_url`; there is no default cloud address.
"""

from __future__ import annotations

import functools
from typing import Any

import httpx
from langchain_core.runnables import Runnable
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr, SecretStr

from rag.backends.base import ModelTraits
from rag.backends.http import post_json
from rag.backends.openai_probe import (
    accepts_json_schema,
    api_key,
    base_url,
    headers,
    key_refused,
    llama_server_properties,
    not_answering,
    not_served,
    response_format,
    selected_model,
    served_context,
    served_models,
)
from rag.backends.registry import OpenAISettings
from rag.errors import RagError
from rag.settings import Settings

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


def create(settings: Settings) -> RagChatOpenAI:
    llm, section = settings.llm, settings.llm.section(OpenAISettings)
    url = base_url(settings)
    models = served_models(settings)
    name = selected_model(settings, models)
    properties = llama_server_properties(settings)
    model = RagChatOpenAI(
        base_url=url,
        api_key=SecretStr(api_key(section) or NO_KEY),
        model=name,
        temperature=llm.temperature,
        max_completion_tokens=llm.max_tokens,  # the field max_tokens, by its alias
        seed=llm.seed,
        streaming=True,
        timeout=section.request_timeout,
        # A dead server is reported at once, not after the client's retries with back-off.
        max_retries=0,
        # Only the configured server: no proxy from the environment sees the documents.
        http_client=httpx.Client(trust_env=False),
        http_async_client=httpx.AsyncClient(trust_env=False),
        server_context=served_context(next(m for m in models if m["id"] == name), properties),
        tokenize_url=f"{url.removesuffix('/v1')}/tokenize" if properties else None,
        structured_output=section.structured_output,
    )
    model._probe = functools.cache(lambda: accepts_json_schema(settings, name))
    model._headers = headers(section)
    return model


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    import openai

    url = base_url(settings)
    if isinstance(exc, openai.APITimeoutError):
        return RagError(f"The server at {url} did not answer within {settings.llm.section(OpenAISettings).request_timeout:g} s; "
                        "raise llm.openai.request_timeout.")
    if isinstance(exc, openai.APIConnectionError):
        return not_answering(url)
    if isinstance(exc, openai.AuthenticationError):
        return key_refused(url)
    if isinstance(exc, openai.NotFoundError):
        return not_served(settings.llm.model or "", url)
    return None
