"""llama.cpp through llama-cpp-python and LangChain's `LlamaCpp` (the default backend).

Without `llm.model_path` it runs the packaged model `llm.model` names.
"""

from __future__ import annotations

import os
import warnings
import weakref
from typing import Any, Iterator, cast

with warnings.catch_warnings():
    # langchain-community announces its own sunset on import; LlamaCpp itself is what we want.
    warnings.simplefilter("ignore", DeprecationWarning)
    from langchain_community.llms import LlamaCpp

from langchain_core.outputs import GenerationChunk
from langchain_core.runnables import Runnable

from ingest.scripts import HAN_LETTER
from rag.backends.base import ModelTraits
from rag.backends.families import family_from_gguf_metadata
from rag.backends.gguf_files import model_file, native_stderr_silenced, packaged_model_name, require_readable
from rag.backends.llamacpp_probe import unloadable
from rag.backends.packaged_models import packaged_model
from rag.backends.registry import LlamaCppSettings
from rag.errors import RagError
from rag.settings import LLMSettings, Settings


class RagLlamaCpp(ModelTraits, LlamaCpp):
    """LangChain's LlamaCpp, telling rag what the loaded GGUF is and how it counts tokens."""

    def rag_constrains_json(self) -> bool:
        return True

    def _stream(self, prompt: str, stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any) -> Iterator[GenerationChunk]:
        # llama.cpp keeps the previous prompt's state and evaluates only what differs, and draws each
        # completion's seed from the last one: a prompt evaluated from another starting point gives
        # slightly different floats, enough to turn a greedy answer, and a later call samples with
        # another seed. Starting afresh, a question gets the same answer whatever was asked before it.
        self.client.reset()
        self.client.set_seed(self.seed)
        yield from super()._stream(prompt, stop=stop, run_manager=run_manager, **kwargs)

    def rag_prompt_family(self) -> str:
        return family_from_gguf_metadata(self.client.metadata)

    def rag_count_tokens(self, text: str) -> int:
        return len(self.client.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def rag_json_schema(self, schema: dict[str, Any]) -> Runnable | None:
        """This model sampling only tokens that keep the output valid for `schema` (a GBNF grammar made
        from the schema as `rag.batch.grammar` normalises it); None where no grammar can be had."""
        import llama_cpp

        from rag.batch.grammar import GrammarError, gbnf, plan

        normalised = plan(schema).schema
        if normalised is None:
            return None
        try:
            text = gbnf(normalised)
        except GrammarError:
            return None
        # LlamaGrammar.from_string does not parse; llama.cpp does when sampling starts, and a grammar it
        # refuses would fail every item. Parse it once here.
        with native_stderr_silenced():
            sampler = llama_cpp.llama_sampler_init_grammar(self.client._model.vocab, text.encode("utf-8"), b"root")
        if not sampler:
            return None
        llama_cpp.llama_sampler_free(sampler)
        return self.bind(grammar=llama_cpp.LlamaGrammar.from_string(text, verbose=False))

    def rag_never_writing(self, letters: frozenset[str]) -> dict[str, Any]:
        """A logits processor that leaves no token holding one of `letters` a chance (a letter spelt
        in byte pieces, as a model may fall back on, is not held by any one token)."""
        import numpy as np
        from llama_cpp import LogitsProcessorList

        holding = _tokens_by_letter(self.client)
        found = [holding[letter] for letter in letters if letter in holding]
        if not found:
            return {}
        banned = np.unique(np.concatenate(found))

        def never_sampled(input_ids: Any, scores: Any) -> Any:
            scores[banned] = -np.inf
            return scores

        return {"logits_processor": LogitsProcessorList([never_sampled])}

    def rag_render_chat(self, messages: list[dict[str, str]]) -> str | None:
        """`messages` through the chat template stored in the GGUF, if it has one."""
        template = self.client.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from jinja2 import TemplateError
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        bos = self.client._model.token_get_text(self.client.token_bos())
        eos = self.client._model.token_get_text(self.client.token_eos())
        formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        system, user = messages
        # Some templates (Gemma's) refuse a system turn: then it leads the user turn instead.
        merged = [{"role": "user", "content": f"{system['content']}\n\n{user['content']}"}]
        for attempt in (messages, merged):
            try:
                # llama_cpp types the messages as its TypedDicts of the same keys
                prompt = formatter(messages=cast(Any, attempt)).prompt
                break
            except TemplateError:
                continue
        else:
            return None  # a template we cannot drive: the family prompt is used instead
        # LlamaCpp adds the BOS token when it tokenizes; a second one would confuse the model.
        return prompt.removeprefix(bos)


# Each loaded model's Han letters and the tokens that hold each: its whole vocabulary is read once,
# at its first answer kept from some letters, not at every such answer.
_TOKENS_BY_LETTER: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def _tokens_by_letter(client: Any) -> dict[str, Any]:
    """The ids of `client`'s tokens that hold each Han letter (a token of a letter's first bytes alone holds none)."""
    import numpy as np

    if client not in _TOKENS_BY_LETTER:
        holding: dict[str, list[int]] = {}
        for token in range(client.n_vocab()):
            for letter in set(HAN_LETTER.findall(client.detokenize([token]).decode("utf-8", "ignore"))):
                holding.setdefault(letter, []).append(token)
        _TOKENS_BY_LETTER[client] = {letter: np.array(tokens, dtype=np.intc) for letter, tokens in holding.items()}
    return _TOKENS_BY_LETTER[client]


def create(all_settings: Settings) -> RagLlamaCpp:
    settings, engine = all_settings.llm, all_settings.llm.section(LlamaCppSettings)
    path = require_readable(model_file(all_settings))
    try:
        with native_stderr_silenced():
            return RagLlamaCpp(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_batch=engine.n_batch,
                n_gpu_layers=engine.n_gpu_layers,
                f16_kv=engine.f16_kv,
                n_threads=engine.n_threads or generation_threads(),
                model_kwargs={"flash_attn": uses_flash_attention(settings)},
                temperature=settings.temperature,
                max_tokens=settings.max_tokens,
                seed=settings.seed,
                streaming=True,
                verbose=False,
            )
    except (ValueError, RuntimeError) as exc:
        raise unloadable(path) from exc


def uses_flash_attention(settings: LLMSettings) -> bool:
    """llm.llamacpp.flash_attn, or where it is unset, whether the packaged model was measured to answer as
    well with flash attention (a model_path's model was not)."""
    chosen = settings.section(LlamaCppSettings).flash_attn
    if chosen is not None:
        return chosen
    name = packaged_model_name(settings)
    return name is not None and packaged_model(name).flash_attention


def generation_threads() -> int:
    """One thread per physical core this process may run on. llama.cpp's own default, half the
    logical CPUs, assumes two threads per core, and leaves every other core idle where each core
    runs one thread (a virtual machine's cores): generating on all of them is that much faster."""
    import psutil

    logical = psutil.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or logical
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return max(1, usable * physical // logical)


def translate_error(settings: Settings, exc: Exception) -> RagError | None:
    return None
