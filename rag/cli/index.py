"""The commands that write and inspect the index: ingest, status, files, collections, repair."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

import rag
from ingest.index import index_location
from ingest.scripts import columns
from ingest.text import plural
from rag.cli.console import display_path, err, human_size, out
from rag.cli.errors import cli_warning
from rag.cli.options import JsonOption, knowledge_base
from rag.cli.progress import IngestProgressBar
from rag.errors import UsageError
from rag.settings import Settings

commands = typer.Typer()


@commands.command()
@knowledge_base()
def ingest(
    paths: Annotated[list[Path], typer.Argument(metavar="PATH...", help="Files or folders to ingest (folders recursively).", show_default=False)],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; change nothing.")] = False,
    rebuild: Annotated[
        bool, typer.Option("--rebuild", help="Drop the chunks of the files under PATH and ingest them again (other folders' files stay).")
    ] = False,
    rebuild_all: Annotated[
        bool, typer.Option("--all", help="With --rebuild: drop the whole collection, files from other folders too.")
    ] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="List every skipped file with its reason, the pages read by OCR, and how chunks were embedded.")
    ] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Fail at once if another ingest is writing to this index.")
    ] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="After the sync, keep syncing as files change, one line per change; Ctrl-C stops.")
    ] = False,
    ray: Annotated[
        Optional[str],
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Load, chunk and embed the files on a Ray cluster's workers (rag[ray]); this process writes the "
            "index. auto: the cluster `ray start` runs on this machine; or HOST:PORT of its head.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Sync documents into the index: add new files, replace changed ones, drop deleted ones."""
    if ray is not None:
        settings.ingest.ray_address = ray
    if rebuild_all and not rebuild:
        raise UsageError("--all goes with --rebuild: `rag ingest --rebuild --all PATH...` drops the whole collection first.")
    if watch and (dry_run or as_json):
        raise UsageError("--watch syncs for real and prints lines: it does not go with --dry-run or --json.")
    progress = IngestProgressBar() if err.is_terminal and not as_json else None
    if watch:
        from ingest.watch import WatchReport
        from rag import api

        def print_sync(watched: WatchReport) -> None:
            report = watched.report
            if watched.initial:
                _print_sync_details(report, verbose)
                out.print(report.summary())
                watched_paths = ", ".join(display_path(str(path)) for path in paths)
                err.print(f"Watching {escape(watched_paths)} for changes; Ctrl-C stops.")
            else:
                for line in watched.changes(display_path):
                    err.print(escape(line))
                _print_warnings(report.warnings)

        api.watch(
            paths, settings, on_report=print_sync, rebuild=rebuild, rebuild_all=rebuild_all, progress=progress,
            wait=not no_wait,
            on_wait=lambda: err.print(f"Another ingest is writing to {index_location(settings)}; waiting for it to finish…"),
        )
        return
    report = rag.ingest(
        paths, settings, dry_run=dry_run, rebuild=rebuild, rebuild_all=rebuild_all, progress=progress,
        wait=not no_wait,
        on_wait=lambda: err.print(f"Another ingest is writing to {index_location(settings)}; waiting for it to finish…"),
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict()))
    else:
        if dry_run:
            _print_plan(report)
        _print_sync_details(report, verbose)
        out.print(report.summary())
    raise typer.Exit(0 if report.ok else 1)


def _counted(count: int, noun: str, width: int) -> str:
    """'  1 file ' or ' 12 files': the count right-aligned in `width`, the noun padded to its plural's width."""
    return f"{count:>{width}} {plural(noun, count):<{len(noun) + 1}}"


def _print_plan(report) -> None:
    for verb, items in (("add", report.added), ("update", report.updated)):
        for path in items:
            out.print(f"{verb:<7}{escape(display_path(path))}")
    for old, new in report.renamed:
        out.print(f"rename {escape(display_path(old))} -> {escape(display_path(new))}")
    for path in report.removed:
        out.print(f"remove {escape(display_path(path))}")
    for path, reason in report.failed:
        out.print(f"fail   {escape(display_path(path))}: {escape(reason)}")


def _print_sync_details(report, verbose: bool) -> None:
    """To stderr, before a sync's summary: what it skipped and read by OCR, how it embedded (with
    --verbose), what failed (a dry run's plan lists that), and its warnings."""
    _print_skipped(report.skipped, verbose)
    _print_ocr(report.ocr, verbose)
    if verbose and report.embedding_choice:
        err.print("a new collection: its embedding model is {} ({})".format(*map(escape, report.embedding_choice)))
    if verbose and report.embedding_path:
        err.print("{} with {} ({})".format("would embed" if report.dry_run else "embedded", *report.embedding_path))
    if report.keywords_analysed_again:
        chunks = f"{report.keywords_analysed_again} {plural('chunk', report.keywords_analysed_again)}"
        done = "would be" if report.dry_run else "was"
        err.print(f"the keyword index, made by an older rag, {done} analysed again for {chunks} (nothing embedded again)")
    if verbose and report.chunks_reused:
        err.print(f"kept the vectors of {report.chunks_reused} {plural('chunk', report.chunks_reused)} whose text was embedded before")
    if not report.dry_run:
        for path, reason in report.failed:
            err.print(f"failed  {escape(display_path(path))}: {escape(reason)}")
    _print_warnings(report.warnings)


def _print_warnings(warnings: list[str]) -> None:
    for warning in warnings:
        err.print(f"Warning: {escape(cli_warning(warning))}")


def _print_skipped(skipped: list[tuple[str, str]], verbose: bool) -> None:
    if verbose:
        for path, reason in skipped:
            err.print(f"skipped {escape(display_path(path))}: {escape(reason)}")
    elif skipped:
        reasons = Counter(reason.split(",")[0].split(" (")[0] for _, reason in skipped)
        listed = ", ".join(f"{reason} ({count})" for reason, count in reasons.most_common())
        err.print(f"skipped {len(skipped)}: {escape(listed)}; --verbose lists them")


def _print_ocr(ocr: list[tuple[str, str]], verbose: bool) -> None:
    if verbose:
        for path, pages in ocr:
            err.print(f"OCR     {escape(display_path(path))}: {escape(pages)}")


@commands.command()
@knowledge_base(check_model=False)
def status(
    check: Annotated[
        bool, typer.Option("--check", help="Verify that the manifest, Chroma and the keyword index agree.")
    ] = False,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Show where the index is, what it holds and what built it; --check verifies it."""
    if check:
        _report_consistency(rag.check(settings), as_json, fixed=False)
        return
    info = rag.status(settings)
    if as_json:
        out.print_json(json.dumps(info.to_dict()))
        return
    rows = [
        ("index", info.index),
        ("collection", info.collection),
        ("files", str(info.files)),
        ("chunks", str(info.chunks)),
        ("embedding model", f"{info.embedding_model} ({info.embedding_dimension} dimensions)"),
        ("chunking", f"{info.chunk_tokens} tokens, {info.overlap_tokens} overlap"),
        ("created", info.created_at),
        ("last sync", info.last_sync or "never"),
        *(
            ("written by" if number == 0 else "", f"{writer['host']}: {writer['files']} files, last at {writer['last_write']}")
            for number, writer in enumerate(info.writers)
        ),
    ]
    for label, value in rows:
        out.print(f"{label + ':' if label else '':<17}{escape(value)}")


@commands.command()
@knowledge_base(check_model=False)
def files(
    paths: Annotated[
        Optional[list[str]],
        typer.Argument(
            metavar="[PATH...]", help="Only the files under these folders, these files, or those matching a glob ('notes/*.md').",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """List the files the collection holds: their chunks, size and when they were ingested."""
    found = rag.files(settings, paths)
    if as_json:
        out.print_json(json.dumps([file.to_dict() for file in found]))
        return
    if not found:
        err.print("No file of the collection matches." if paths else "The collection holds no files.")
        return
    for file in found:
        out.print(f"{_counted(file.chunks, 'chunk', 5)} {human_size(file.size):>9}  {file.ingested_at}  {escape(display_path(file.path))}")


@commands.command()
@knowledge_base(only=("index", "config", "index_url"), check_model=False)
def collections(
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """List the collections the index holds, with their files, chunks and where their vectors are."""
    from rag.index_status import iso_time

    found = rag.collections(settings)
    if as_json:  # times as `rag status --json` gives them
        out.print_json(json.dumps([{**c.to_dict(), "last_sync": iso_time(c.last_sync)} for c in found]))
        return
    if not found:
        err.print(f"No collections in {escape(index_location(settings))}. Run `rag ingest PATH` first.")
        return
    for collection in found:
        synced = iso_time(collection.last_sync) or "never"
        name = collection.name + " " * max(0, 20 - columns(collection.name))  # a Hangul or Han letter takes two
        out.print(
            f"{escape(name)} {_counted(collection.files, 'file', 6)} {_counted(collection.chunks, 'chunk', 8)}  "
            f"vectors: {escape(collection.vector_store)}  last sync: {synced}"
        )


@commands.command()
@knowledge_base(check_model=False)
def repair(
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Make the index consistent again after an interrupted ingest (the next ingest does it too)."""
    _report_consistency(rag.repair(settings), as_json, fixed=True)


def _report_consistency(found, as_json: bool, fixed: bool) -> None:
    if as_json:
        out.print_json(json.dumps(found.to_dict()))
    elif found.ok:
        out.print("The index is consistent: the manifest, Chroma and the keyword index agree.")
    else:
        verb = "Fixed" if fixed else "Found"
        if found.unfinished:
            out.print(f"{verb}: an ingest stopped before it finished.")
        orphans = [
            _count(len(found.orphan_vectors), "vector", "vectors"),
            _count(len(found.orphan_words), "keyword entry", "keyword entries"),
        ]
        if listed := [orphan for orphan in orphans if orphan]:
            out.print(f"{verb}: {' and '.join(listed)} no file lists.")
        if incomplete := len(found.incomplete_sources):
            again = (" (it will be ingested again)" if incomplete == 1 else " (they will be ingested again)") if fixed else ""
            out.print(f"{verb}: {_count(incomplete, 'file', 'files')} with chunks missing{again}.")
        if not fixed:
            err.print("Run `rag repair`, or just `rag ingest` again: it repairs first.")
    if not fixed and not found.ok:
        raise typer.Exit(1)


def _count(number: int, one: str, many: str) -> str:
    """'1 file', '3 files'; '' for none."""
    return f"{number} {one if number == 1 else many}" if number else ""
