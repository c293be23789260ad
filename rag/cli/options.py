"""What the commands share: the option types, the choices typer checks, and `knowledge_base`,
the decorator that gives a command the knowledge-base options and hands it the settings they make."""

from __future__ import annotations

import functools
import inspect
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from rag.cli.errors import remember_json
from rag.settings import MAX_SEARCH_QUERIES, Settings, load_settings

IndexOption = Annotated[
    Optional[Path], typer.Option("--index", help="Index directory (default: RAG_HOME/index).", show_default=False)
]
CollectionOption = Annotated[
    Optional[str], typer.Option("--collection", help="Knowledge base name within the index.", show_default=False)
]
ConfigOption = Annotated[
    Optional[Path], typer.Option("--config", help="Settings file (default: ./rag.toml, then the user config dir).")
]
ChromaUrlOption = Annotated[
    Optional[str],
    typer.Option("--chroma-url", help="Use a Chroma server (e.g. http://localhost:8000) instead of the index on disk.", show_default=False),
]
IndexUrlOption = Annotated[
    Optional[str],
    typer.Option(
        "--index-url",
        help="Keep everything of the collection (vectors, keywords, manifest) in PostgreSQL, e.g. "
        "postgresql://USER@HOST:5432/DB, shared by every machine that names it (password in ~/.pgpass or PGPASSWORD).",
        show_default=False,
    ),
]
JsonOption = Annotated[
    bool, typer.Option("--json", help="Print one JSON document instead of text.", callback=remember_json)
]


class SearchMode(str, Enum):
    """rag.settings.SearchSettings.mode: typer refuses other values (exit 2) and lists these in --help."""

    hybrid = "hybrid"
    dense = "dense"
    keyword = "keyword"


class PromptStyle(str, Enum):
    """llm.prompt_style: auto, chat, or one of rag.prompting.FAMILIES (a test keeps them equal)."""

    auto = "auto"
    chat = "chat"
    llama2 = "llama2"
    llama3 = "llama3"
    mistral = "mistral"
    gemma = "gemma"
    chatml = "chatml"
    plain = "plain"


def choice_value(choice: Enum | None) -> str | None:
    return None if choice is None else choice.value


TopKOption = Annotated[Optional[int], typer.Option("-k", "--top-k", min=1, help="Chunks to retrieve.", show_default=False)]
ModeOption = Annotated[
    Optional[SearchMode],
    typer.Option("--mode", help="hybrid (meaning and words, the default), dense (meaning) or keyword (words).", show_default=False),
]


QueriesOption = Annotated[
    Optional[int],
    typer.Option(
        "--queries",
        min=0,
        max=MAX_SEARCH_QUERIES,
        help="Search queries the model writes like yours, each searched too (default: search.queries; 0: yours alone).",
        show_default=False,
    ),
]
VerboseOption = Annotated[bool, typer.Option("--verbose", "-v", help="Also show the search queries the model wrote.")]
ModelOption = Annotated[
    Optional[Path],
    typer.Option(
        "--model",
        help="A GGUF model file; a model another app downloaded (ollama:NAME[:TAG], lmstudio:PUBLISHER/REPO[/FILE], "
        "gpt4all:FILE, hf:ORG/NAME[/FILE]; see rag models --local); or a packaged model: qwen2.5-coder-1.5b-instruct "
        "(the default), qwen2.5-coder-0.5b-instruct (about twice as fast), gemma-3-270m, smollm2-135m-instruct.",
        show_default=False,
    ),
]
PromptStyleOption = Annotated[
    Optional[PromptStyle],
    typer.Option("--prompt-style", help="auto, chat, or the prompt format of a model family.", show_default=False),
]

KNOWLEDGE_BASE_OPTIONS = {
    "index": IndexOption, "collection": CollectionOption, "config": ConfigOption, "chroma_url": ChromaUrlOption,
    "index_url": IndexUrlOption,
}
MODEL_OPTIONS = {"model": ModelOption, "prompt_style": PromptStyleOption}


def _is_packaged_model(model: Path) -> bool:
    # Imported only when --model is given: rag.backends costs every other command 0.4 s.
    from rag.backends.packaged_models import PACKAGED_MODELS

    return str(model) in PACKAGED_MODELS and not model.exists()


def command_settings(
    config: Path | None = None,
    *,
    index: Path | None = None,
    collection: str | None = None,
    chroma_url: str | None = None,
    index_url: str | None = None,
    model: Path | None = None,
    prompt_style: PromptStyle | None = None,
    check_model: bool = False,
) -> Settings:
    """The settings the shared options make: each given option is the top layer over env and config file."""
    packaged = model is not None and _is_packaged_model(model)
    model_key = "model" if packaged else "model_path"
    llm = {
        key: value
        for key, value in ((model_key, str(model) if packaged else model), ("prompt_style", choice_value(prompt_style)))
        if value is not None
    }
    return load_settings(
        config,
        index_dir=index,
        collection=collection,
        vector_store={"url": chroma_url} if chroma_url else None,
        index={"url": index_url} if index_url else None,
        llm=llm or None,
        check_model=check_model,
    )


def knowledge_base(
    *, only: tuple[str, ...] | None = None, model: bool = False, check_model: bool = True
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command the knowledge-base options and hand it the `Settings` they make as `settings`.

    The options (--index, --collection, --config, --chroma-url, --index-url; `only` names a subset; with model=True
    also --model and --prompt-style) are added to the command's signature after its own, where typer
    finds them, so a command declares only its own options and takes a `settings` parameter instead.
    check_model also refuses settings the embedding model cannot honour, for commands that chunk or
    embed (load_settings(check_model=True)).
    """
    added = {**(MODEL_OPTIONS if model else {}), **{name: KNOWLEDGE_BASE_OPTIONS[name] for name in only or KNOWLEDGE_BASE_OPTIONS}}

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        if "settings" not in signature.parameters or set(added) & set(signature.parameters):
            raise TypeError(f"{command.__name__} must take `settings` and none of {', '.join(added)}")
        own = [parameter for parameter in signature.parameters.values() if parameter.name != "settings"]
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
            for name, annotation in added.items()
        ]

        @functools.wraps(command)
        def with_settings(*args: Any, **kwargs: Any) -> Any:
            options = {name: kwargs.pop(name, None) for name in added}
            config = options.pop("config", None)
            return command(*args, settings=command_settings(config, check_model=check_model, **options), **kwargs)

        parameters = [*own, *shared]
        with_settings.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        with_settings.__annotations__ = {parameter.name: parameter.annotation for parameter in parameters}
        with_settings.shared_options = tuple(added)  # type: ignore[attr-defined]
        return with_settings

    return decorate


def with_mode(settings: Settings, mode: SearchMode | None) -> Settings:
    """--mode, the top layer over search.mode (validated on assignment)."""
    if mode is not None:
        settings.search.mode = mode.value
    return settings
