"""`rag models`: the model backends and the models other apps keep on disk."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from rag.cli.console import err, human_size, out
from rag.cli.errors import cli_wording
from rag.cli.options import JsonOption, knowledge_base
from rag.settings import Settings

commands = typer.Typer()


@commands.command()
@knowledge_base(only=("config",), check_model=False)
def models(
    all_backends: Annotated[bool, typer.Option("--all", help="Check every backend, not just the configured one.")] = False,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="List the GGUF models Ollama, LM Studio, GPT4All and the Hugging Face cache have on disk, and the "
            "cache's sentence-transformers models (for embedding.model).",
        ),
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Show whether the model backend is reachable or loadable, and which models it has."""
    if local:
        _print_local_models(as_json)
        return
    from rag.backends import BACKENDS, backend_statuses

    names = list(BACKENDS) if all_backends else [settings.llm.backend]
    statuses = backend_statuses(names, settings)
    for status in statuses:
        if status.error is not None:
            status.problem = cli_wording(status.error)[0]
    if as_json:
        out.print_json(json.dumps([status.to_dict() for status in statuses]))
    else:
        for status in statuses:
            marker = "*" if status.backend == settings.llm.backend else " "
            state = "ok" if status.ok else "unavailable"
            out.print(f"{marker} {status.backend:<10} {state:<12} {escape(status.where or status.problem)}")
            for model in status.models:
                details = ", ".join(f"{key} {value}" for key, value in model.items() if key != "name" and value != "")
                out.print(f"    {escape(str(model['name']))}  ({escape(details)})")
    configured = next(status for status in statuses if status.backend == settings.llm.backend)
    raise typer.Exit(0 if configured.ok else 1)


def _print_local_models(as_json: bool) -> None:
    """Other apps' models, each under the --model name that runs it; a store that is not there is left out."""
    from rag.backends.local_models import local_embedding_models, local_models, model_stores

    found, embedders = local_models(), local_embedding_models()
    if as_json:
        out.print_json(json.dumps([model.to_dict() for model in found] + [model.to_dict() for model in embedders]))
        return
    if not found:
        looked = ", ".join(str(folder) for store in model_stores() for folder in store.folders)
        err.print(f"No GGUF models found; looked in {escape(looked)}.")
    else:
        width = max(len(model.reference) for model in found)
        for model in found:
            details = [
                human_size(model.size), model.architecture, model.quantization,
                f"context {model.context}" if model.context else "", "chat template" if model.chat_template else "",
            ]
            out.print(f"{escape(f'{model.reference:<{width}}')}  {escape(', '.join(detail for detail in details if detail))}")
    if embedders:
        out.print("Embedding models (set embedding.model to the folder, then rag ingest --rebuild):")
        for embedder in embedders:
            dimension = f", {embedder.dimension} dimensions" if embedder.dimension else ""
            out.print(f"  {escape(embedder.name)}  {escape(embedder.path)}{dimension}")

