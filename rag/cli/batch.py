"""The batch commands over many documents: summarize, extract (resumable with --out)."""

from __future__ import annotations

from collections import Counter
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

import rag
from rag.cli.console import err, out
from rag.cli.errors import ctrl_c_noticed
from rag.cli.options import TopKOption, choice_value, knowledge_base
from rag.cli.progress import JobProgressBar
from rag.errors import UsageError
from rag.settings import Settings

commands = typer.Typer()


class Per(str, Enum):
    document = "document"
    chunk = "chunk"


class SummaryFormat(str, Enum):
    jsonl = "jsonl"
    md = "md"


class ExtractFormat(str, Enum):
    jsonl = "jsonl"
    csv = "csv"


SourcesArgument = Annotated[
    Optional[list[str]],
    typer.Argument(
        metavar="[SOURCES]...", help="Ingested files, folders or quoted globs (default: every document).", show_default=False
    ),
]


QueryOption = Annotated[
    Optional[str], typer.Option("--query", help="Work on what best matches this query (its top -k chunks).", show_default=False)
]


OutOption = Annotated[
    Optional[Path],
    typer.Option("--out", help="Write records here; running the same command again continues an unfinished job.", show_default=False),
]


SummaryFormatOption = Annotated[
    Optional[SummaryFormat], typer.Option("--format", help="Output format; default: from --out, else jsonl.", show_default=False)
]


ExtractFormatOption = Annotated[
    Optional[ExtractFormat], typer.Option("--format", help="Output format; default: from --out, else jsonl.", show_default=False)
]


RestartOption = Annotated[bool, typer.Option("--restart", help="Start the job over, discarding what --out holds.")]


ParallelOption = Annotated[
    Optional[int],
    typer.Option(
        "--parallel",
        min=1,
        max=64,
        help="Requests in flight against a server backend (default batch.parallel); records keep their order.",
        show_default=False,
    ),
]


def _with_parallel(settings: Settings, parallel: int | None) -> Settings:
    if parallel is None:
        return settings
    return settings.model_copy(update={"batch": settings.batch.model_copy(update={"parallel": parallel})})


@commands.command()
@knowledge_base(model=True)
def summarize(
    sources: SourcesArgument = None,
    combine: Annotated[bool, typer.Option("--all", help="One summary of all the selected documents together.")] = False,
    query: QueryOption = None,
    k: TopKOption = None,
    out_file: OutOption = None,
    fmt: SummaryFormatOption = None,
    restart: RestartOption = False,
    parallel: ParallelOption = None,
    *,
    settings: Settings,
) -> None:
    """Summarize each selected document (map-reduce over its chunks), or all of them with --all."""
    job = rag.summarize(sources or [], _with_parallel(settings, parallel), query=query, k=k, combine=combine)
    _run_job(job, out_file, choice_value(fmt), restart)


@commands.command()
@knowledge_base(model=True)
def extract(
    sources: SourcesArgument = None,
    schema: Annotated[
        Optional[Path], typer.Option("--schema", help="A JSON Schema file that every record follows.", show_default=False)
    ] = None,
    fields: Annotated[
        Optional[str],
        typer.Option("--fields", help='Shorthand for a schema: "name:str, amount:float, tags:list[str]".', show_default=False),
    ] = None,
    per: Annotated[Per, typer.Option("--per", help="One record per document or per chunk.")] = Per.document,
    query: QueryOption = None,
    k: TopKOption = None,
    out_file: OutOption = None,
    fmt: ExtractFormatOption = None,
    restart: RestartOption = False,
    parallel: ParallelOption = None,
    *,
    settings: Settings,
) -> None:
    """Extract structured records (JSON Schema) from each selected document or chunk, with provenance."""
    if (schema is None) == (fields is None):
        raise UsageError('Give the record schema as --schema FILE.json or as --fields "name:str, ..." (one of them).')
    record_schema = schema or rag.fields_schema(fields or "")
    job = rag.extract(record_schema, sources or [], _with_parallel(settings, parallel), per=per.value, query=query, k=k)
    _run_job(job, out_file, choice_value(fmt), restart)


def _run_job(job, out_file: Path | None, fmt: str | None, restart: bool) -> None:
    """Run a batch job into --out (resumable, by `rag.run_job`) or onto stdout; progress and the summary on stderr."""
    from rag.batch.run import stream_job

    job.on_notice = lambda notice: err.print(escape(notice))
    if out_file is None and restart:
        raise UsageError("--restart applies to a job writing --out FILE.")
    progress = JobProgressBar(job) if err.is_terminal else None
    done: Counter[bool] = Counter()

    def start(done_before: int) -> None:
        if done_before >= len(job):
            err.print(f"Nothing left to do: all {len(job)} items are already in {out_file} (--restart writes them again).")
        elif done_before:
            err.print(f"Continuing: {done_before} of {len(job)} items are already in {out_file}.")
        if progress:
            progress.start(done_before)

    def count(record) -> None:
        done[record.ok] += 1
        if progress:
            progress.advance()
        if interrupted.is_set():  # a Ctrl-C swallowed while the model loaded: stop after this record
            raise KeyboardInterrupt

    def print_record(record, text: str) -> None:
        if record.ok:
            out.print(escape(text), end="")
        else:
            err.print(f"failed  {escape(text.strip())}")

    try:
        with ctrl_c_noticed() as interrupted:
            if out_file is not None:
                result = rag.run_job(job, out_file, format=fmt, restart=restart, on_start=start, on_record=count)
            else:
                start(0)
                result = stream_job(job, print_record, format=fmt, on_record=count)
    except KeyboardInterrupt:
        hint = "; run the same command again to continue" if out_file is not None else ""
        err.print(f"Stopped after {done.total()} items this run{hint}.")
        raise typer.Exit(130)
    finally:
        if progress:
            progress.finish()
    _job_summary(result)
    if result.failed:
        raise typer.Exit(1)


def _job_summary(result) -> None:
    stats = result.stats
    rate = f", {stats.tokens} tokens at {stats.tokens / max(stats.seconds, 1e-9):.1f} tokens/s" if stats else ""
    before = f", {result.done_before} done before" if result.done_before else ""
    err.print(f"{result.kind}: {result.written} written, {result.failed} failed{before} in {result.seconds:.1f} s{rate}.")
    if result.flagged:
        err.print(
            f"Records stating facts their sources do not: {result.flagged} of {result.written} "
            "(each lists them under `unsupported`; in Markdown, \"Not in the sources\")."
        )
    if result.failed and result.errors:
        err.print(f"Failed items, with the model's replies, are in {result.errors}.")
