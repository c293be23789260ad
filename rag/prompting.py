"""Model-specific prompts, read from the data files in `prompts/` and chosen per model.

`tasks.toml` says what a task asks (system and user text); each family file (llama2, llama3,
mistral, gemma, chatml, plain) says how that model family expects a conversation to be written.
A `ConditionalPromptSelector` picks the family from the configured language model:
chat models get chat messages (their server applies the template), a GGUF with a chat template
or a known instruct model gets its family, and a base model gets the plain completion prompt.
"""

from __future__ import annotations

import functools
import re
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable

from langchain_classic.chains.prompt_selector import ConditionalPromptSelector, is_chat_model
from langchain_core.language_models import BaseLanguageModel
from langchain_core.prompts import BasePromptTemplate, ChatPromptTemplate, PromptTemplate

from rag.backends.base import traits
from rag.errors import ConfigError
from rag.languages import DEFAULT as DEFAULT_LANGUAGE
from rag.languages import texts

FAMILIES = ("llama2", "llama3", "mistral", "gemma", "chatml", "plain")
TASKS = ("qa", "qa_quotes", "qa_fewshot", "condense", "summarize", "combine", "extract", "search_queries")
AUTO = "auto"
CHAT = "chat"

@dataclass(frozen=True)
class PromptFamily:
    name: str
    template: str
    stop: tuple[str, ...]
    answer_prefix: dict[str, str] = field(default_factory=dict)
    first_line_tasks: tuple[str, ...] = ()  # tasks whose answer ends with its first line

    def render(self, system: str, user: str, task: str) -> str:
        """The family template around a task; {context}/{question}-style placeholders stay open."""
        # str.replace, not format: the task text keeps its own placeholders for the prompt template.
        return (
            self.template.replace("{system}", system)
            .replace("{user}", user)
            .replace("{answer_prefix}", self.answer_prefix.get(task, self.answer_prefix.get(base_task(task), "")))
        )

    def first_line_only(self, task: str) -> bool:
        return task in self.first_line_tasks or base_task(task) in self.first_line_tasks


def base_task(name: str) -> str:
    """The task a variant varies ("qa" for "qa_quotes"): it shares the family's answer prefix."""
    return name.split("_", 1)[0]


@dataclass(frozen=True)
class SelectedPrompt:
    prompt: BasePromptTemplate
    family: str  # one of FAMILIES, or "chat" for chat models
    stop: tuple[str, ...]
    first_line_only: bool = False


def _read_prompt_file(name: str) -> dict[str, Any]:
    return tomllib.loads(resources.files("prompts").joinpath(f"{name}.toml").read_text(encoding="utf-8"))


@functools.cache
def family(name: str) -> PromptFamily:
    if name not in FAMILIES:
        raise ConfigError(f"Unknown prompt_style {name!r}; use one of: {', '.join((AUTO, CHAT) + FAMILIES)}.")
    data = _read_prompt_file(name)
    return PromptFamily(
        data["name"],
        data["template"],
        tuple(data.get("stop", ())),
        data.get("answer_prefix", {}),
        tuple(data.get("first_line_only", ())),
    )


@functools.cache
def task(name: str, language: str = DEFAULT_LANGUAGE) -> dict[str, str]:
    """A task's system and user text, labelled for a question in `language` (prompts/languages.toml)."""
    tasks = _read_prompt_file("tasks")
    in_language = texts(language)
    return {role: in_language.fill(text) for role, text in {**tasks.get(base_task(name), {}), **tasks[name]}.items()}


def text_prompt(family_name: str, task_name: str, language: str = DEFAULT_LANGUAGE) -> PromptTemplate:
    parts = task(task_name, language)
    return PromptTemplate.from_template(family(family_name).render(parts["system"], parts["user"], task_name))


def chat_prompt(task_name: str, language: str = DEFAULT_LANGUAGE) -> ChatPromptTemplate:
    parts = task(task_name, language)
    return ChatPromptTemplate.from_messages([("system", parts["system"]), ("human", parts["user"])])


def model_family(llm: BaseLanguageModel) -> str:
    """The prompt family of a text LLM: each backend's models say what they know of themselves."""
    return traits(llm).rag_prompt_family()


def _family_is(name: str) -> Callable[[BaseLanguageModel], bool]:
    return lambda llm: not is_chat_model(llm) and model_family(llm) == name


@functools.cache
def prompt_selector(task_name: str, language: str = DEFAULT_LANGUAGE) -> ConditionalPromptSelector:
    return ConditionalPromptSelector(
        default_prompt=text_prompt("plain", task_name, language),
        conditionals=[(is_chat_model, chat_prompt(task_name, language))]
        + [(_family_is(name), text_prompt(name, task_name, language)) for name in FAMILIES if name != "plain"],
    )


# A task's placeholders ({context}, {question}, ...), hidden from a model's own chat template
# while it renders the task, then put back.
_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def model_template_prompt(
    llm: BaseLanguageModel, task_name: str, language: str = DEFAULT_LANGUAGE
) -> PromptTemplate | None:
    """The task rendered by the chat template the model file carries, when the backend has one."""
    parts = {role: _PLACEHOLDER.sub("\x00\\1\x00", text) for role, text in task(task_name, language).items()}
    rendered = traits(llm).rag_render_chat([{"role": "system", "content": parts["system"]}, {"role": "user", "content": parts["user"]}])
    if rendered is None:
        return None
    template = re.sub("\x00(\\w+)\x00", r"{\1}", rendered.replace("{", "{{").replace("}", "}}"))
    return PromptTemplate.from_template(template)


def select_prompt(
    llm: BaseLanguageModel, task_name: str, prompt_style: str = AUTO, language: str = DEFAULT_LANGUAGE
) -> SelectedPrompt:
    """The prompt for `task_name` in the format `llm` expects; `prompt_style` overrides the choice.

    A model file's own chat template is the surest format, so it is used when there is one;
    otherwise the selector chooses among the family templates. `language`: the question's, which
    labels the prompt and says in what language to answer.
    """
    if prompt_style == AUTO:
        name = CHAT if is_chat_model(llm) else model_family(llm)
        prompt = model_template_prompt(llm, task_name, language) or prompt_selector(task_name, language).get_prompt(llm)
    elif prompt_style == CHAT:
        prompt, name = chat_prompt(task_name, language), CHAT
    else:
        prompt, name = text_prompt(prompt_style, task_name, language), family(prompt_style).name
    if name == CHAT:
        return SelectedPrompt(prompt, name, ())
    chosen = family(name)
    return SelectedPrompt(prompt, name, chosen.stop, chosen.first_line_only(task_name))
