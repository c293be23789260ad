"""`rag search`: retrieval only, no language model."""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Annotated, Optional, cast

import typer
from rich.markup import escape

import rag
from ingest.chunking.metadata import WHOLE_NUMBER_KEYS
from ingest.index import CHUNK_METADATA_KEYS
from rag.cli.console import display_path, err, out
from rag.cli.options import JsonOption, ModeOption, QueriesOption, VerboseOption, choice_value, knowledge_base
from rag.errors import UsageError
from rag.settings import Settings

if TYPE_CHECKING:
    from rag.retrieval import Mode

commands = typer.Typer()


@commands.command()
@knowledge_base()
def search(
    query: Annotated[str, typer.Argument(help="What to look for, in your own words.")],
    k: Annotated[Optional[int], typer.Option("-k", "--top-k", min=1, help="Number of chunks to return.")] = None,
    mode: ModeOption = None,
    where: Annotated[
        Optional[list[str]],
        typer.Option("--where", help="Keep chunks whose metadata has this value: source=PATH, page=2 (repeatable)."),
    ] = None,
    path: Annotated[
        Optional[list[str]], typer.Option("--path", help="Keep sources matching this glob, e.g. 'notes/work/*' (repeatable).")
    ] = None,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify the results (maximal marginal relevance).")] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each hit's dense and keyword ranks and scores, and what was dropped.")
    ] = False,
    queries: QueriesOption = None,
    verbose: VerboseOption = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Find the chunks most relevant to QUERY (retrieval only; with --queries the model writes more queries)."""
    result = rag.search(
        query,
        settings,
        k=k,
        mode=cast("Mode | None", choice_value(mode)),
        where=_parse_where(where or []),
        paths=[os.path.abspath(pattern) for pattern in path or []] or None,
        mmr=mmr or None,
        queries=queries,
    )
    searched_more = bool(queries if queries is not None else settings.search.queries)
    if as_json:
        payload: object = [hit.to_dict(explain) for hit in result.hits]
        if explain:
            payload = {"mode": result.mode, "hits": payload, "dropped": [c.to_dict() for c in result.dropped]}
        if searched_more:  # the hits then come with what else was searched for
            payload = {"queries": result.queries, **(payload if isinstance(payload, dict) else {"hits": payload})}
        out.print_json(json.dumps(payload))
        return
    if verbose and searched_more:
        print_queries(result.queries)
    if not result.hits:
        err.print("No matching chunks.")
    from rag.languages import reply_language
    from rag.retrieval import location_label

    # The places are said in the query's language (where its letters do not tell it, its hits').
    language = reply_language(query, [hit.text for hit in result.hits])
    for hit in result.hits:
        label = location_label(hit.location, language=language)
        where_label = f"  {label}" if label else ""
        out.print(f"{hit.rank}. [{hit.score:.3f}] {escape(display_path(hit.source))}{escape(where_label)}")
        if explain:
            out.print(f"   {_explain_line(hit.explain)}")
        out.print(f"   {escape(hit.snippet())}")
    if explain and result.dropped:
        out.print(f"\nDropped by {result.dropped[0].dropped_by}:")
        for candidate in result.dropped:
            out.print(f"   {candidate.chunk_id[:12]}  {_explain_line(candidate)}")


def print_queries(queries: list[str]) -> None:
    if not queries:
        out.print("The model wrote no usable search query: yours was searched alone.")
        return
    out.print("Also searched for:")
    for query in queries:
        out.print(f"  {escape(query)}")


def _explain_line(candidate) -> str:
    def part(name: str, rank: int | None, score: float | None) -> str:
        return f"{name} #{rank} ({score:.3f})" if rank is not None else f"{name} -"

    return (
        f"{part('dense', candidate.dense_rank, candidate.dense_score)}, "
        f"{part('keyword', candidate.keyword_rank, candidate.keyword_score)}, fused {candidate.fused_score:.3f}"
    )


def _parse_where(conditions: list[str]) -> dict[str, object]:
    parsed: dict[str, object] = {}
    for condition in conditions:
        key, equals, value = condition.partition("=")
        if not equals or not key:
            raise UsageError(f"--where takes KEY=VALUE, such as source=notes/todo.md or page=2; got {condition!r}.")
        if key not in CHUNK_METADATA_KEYS:
            raise UsageError(f"--where {key}=...: chunks have no {key!r}; use one of: {', '.join(CHUNK_METADATA_KEYS)}.")
        if key in WHOLE_NUMBER_KEYS and not value.isdigit():
            raise UsageError(f"--where {key}={value}: {key} is a whole number, such as {key}=2.")
        parsed[key] = os.path.abspath(value) if key == "source" else int(value) if value.isdigit() else value
    return parsed
