"""GPT4All through LangChain's `GPT4All`, on a local GGUF file; it never downloads a model."""

from __future__ import annotations

import warnings
from typing import Any, Iterator

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.llms import GPT4All

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.outputs import GenerationChunk

from rag.backends.base import ModelTraits
from rag.backends.families import family_from_gguf_metadata
from rag.backends.gguf_files import is_gguf, model_file, native_stderr_silenced, require_readable
from rag.backends.gguf_header import read_metadata
from rag.backends.gpt4all_probe import not_gguf, unloadable
from rag.backends.registry import GPT4AllSettings
from rag.errors import RagError
from rag.settings import Settings


# LangChain's GPT4All cannot pass n_ctx, so the engine keeps its default window.
GPT4ALL_CONTEXT = 2048


class RagGPT4All(ModelTraits, GPT4All):
    """LangChain's GPT4All, streaming for real: its own stream() waits for the whole answer."""

    prompt_family: str = "plain"

    def rag_prompt_family(self) -> str:
        return self.prompt_family

    def rag_context_window(self) -> int:
        return GPT4ALL_CONTEXT

    def _stream(
        self, prompt: str, stop: list[str] | None = None, run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any
    ) -> Iterator[GenerationChunk]:
        tokens = self.client.generate(prompt, **{**self._default_params(), **kwargs, "streaming": True})
        try:
            for text in until_stop(tokens, stop or []):
                chunk = GenerationChunk(text=text)
                if run_manager:
                    run_manager.on_llm_new_token(text, chunk=chunk)
                yield chunk
        finally:
            tokens.close()


def until_stop(tokens: Iterator[str], stops: list[str]) -> Iterator[str]:
    """Pass text through until a stop sequence, holding back what could be the start of one."""
    hold = max((len(stop) for stop in stops), default=1) - 1
    pending = ""
    for token in tokens:
        pending += token
        found = [pending.find(stop) for stop in stops if stop in pending]
        if found:
            if head := pending[: min(found)]:
                yield head
            return
        if len(pending) > hold:
            yield pending[: len(pending) - hold]
            pending = pending[len(pending) - hold :]
    if pending:
        yield pending


def create(settings: Settings) -> RagGPT4All:
    llm, engine = settings.llm, settings.llm.section(GPT4AllSettings)
    path = require_readable(model_file(settings))
    if not is_gguf(path):
        raise not_gguf(path)
    try:
        with native_stderr_silenced():  # it reports each GPU library it does not find
            return RagGPT4All(
                model=str(path),
                allow_download=False,
                device="cpu",
                n_threads=engine.n_threads,
                max_tokens=llm.max_tokens,
                n_predict=llm.max_tokens,
                temp=llm.temperature,
                n_batch=engine.n_batch,
                seed=llm.seed,
                streaming=True,
                prompt_family=family_from_gguf_metadata(read_metadata(path)),
            )
    except (ValueError, RuntimeError) as exc:
        raise unloadable(path, exc) from exc


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    return None
