"""A llamafile, or any llama.cpp server, through LangChain's `Llamafile`."""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.llms import Llamafile

from langchain_core.runnables import Runnable

from rag.backends.base import ModelTraits
from rag.backends.families import family_from_chat_template
from rag.backends.http import post_json
from rag.backends.llamafile_probe import base_url, not_answering, server_properties
from rag.backends.registry import LlamafileSettings
from rag.errors import RagError
from rag.settings import Settings


class RagLlamafile(ModelTraits, Llamafile):
    prompt_family: str = "plain"
    server_context: int | None = None

    def rag_parallel_requests(self) -> bool:
        return True

    def rag_constrains_json(self) -> bool:
        return True

    def rag_prompt_family(self) -> str:
        return self.prompt_family

    def rag_context_window(self) -> int | None:
        return self.server_context

    def rag_json_schema(self, schema: dict[str, Any]) -> Runnable | None:
        """The server's own JSON-schema constrained sampling (llama.cpp's `json_schema`), given the schema
        as `rag.batch.grammar` normalises it: its converter has the same blind spots as llama-cpp-python's."""
        from rag.batch.grammar import plan

        normalised = plan(schema).schema
        return None if normalised is None else self.bind(json_schema=normalised)

    def _get_parameters(self, stop: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        # LangChain's Llamafile drops options it does not know; the server knows json_schema.
        params = super()._get_parameters(stop=stop, **kwargs)
        if "json_schema" in kwargs:
            params["json_schema"] = kwargs["json_schema"]
        return params

    def rag_count_tokens(self, text: str) -> int:
        # The server's own tokenizer; +1 for the BOS token it adds to a prompt.
        return len(post_json(f"{self.base_url}/tokenize", {"content": text})["tokens"]) + 1


def create(settings: Settings) -> RagLlamafile:
    llm = settings.llm
    url = base_url(settings)
    properties = server_properties(url)
    return RagLlamafile(
        base_url=url,
        request_timeout=int(llm.section(LlamafileSettings).request_timeout),
        temperature=llm.temperature,
        n_predict=llm.max_tokens,
        seed=llm.seed,
        streaming=True,
        prompt_family=family_from_chat_template(properties.get("chat_template", "")) or "plain",
        server_context=properties.get("default_generation_settings", {}).get("n_ctx"),
    )


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    import requests

    if isinstance(exc, requests.ConnectionError):
        return not_answering(base_url(settings))
    return None
