"""`rag eval`: retrieval quality on a BEIR folder, or answer quality on a QA file."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

import rag
from ingest.scripts import one_line
from rag.cli.console import err, out
from rag.cli.options import JsonOption, SearchMode, TopKOption, knowledge_base, with_mode
from rag.cli.progress import IngestProgressBar
from rag.errors import UsageError
from rag.settings import Settings

commands = typer.Typer()


@commands.command(name="eval")
@knowledge_base(model=True)
def eval_command(
    data_dir: Annotated[
        Optional[Path],
        typer.Argument(
            help="A BEIR-format folder (corpus.jsonl, queries.jsonl, qrels/test.tsv); with --answers, the folder the "
            "QA file's sources are relative to (default: the configured knowledge base, or --collection). Either "
            "folder is ingested into a collection of its own.",
            show_default=False,
        ),
    ] = None,
    answers: Annotated[
        Optional[Path],
        typer.Option("--answers", help="Evaluate answers instead: a QA file (JSONL: id, question, answers, source).", show_default=False),
    ] = None,
    qrels: Annotated[Optional[Path], typer.Option("--qrels", help="Relevance judgements (default: qrels/test.tsv).")] = None,
    mode: Annotated[
        Optional[list[SearchMode]], typer.Option("--mode", help="dense, keyword or hybrid (repeatable; default: all three).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="With --answers: one line per question.")] = False,
    k: TopKOption = None,
    as_json: JsonOption = False,
    *,
    settings: Settings,
) -> None:
    """Measure retrieval quality (nDCG@10, recall, MRR, latency per mode), or with --answers answer quality."""
    if answers is not None:
        _eval_answers(answers, data_dir, with_mode(settings, mode[-1] if mode else None), k, verbose, as_json)
        return
    if data_dir is None:
        raise UsageError("Give a BEIR folder to measure retrieval, or --answers QA.jsonl [DOCS_DIR] to measure answers.")
    reports = rag.evaluate(
        data_dir,
        settings,
        modes=[choice.value for choice in mode or []] or None,
        qrels=qrels,
        progress=IngestProgressBar() if err.is_terminal else None,
    )
    if as_json:
        out.print_json(json.dumps([report.to_dict() for report in reports]))
        return
    out.print(f"{'mode':<9}{'nDCG@10':>9}{'R@10':>8}{'R@100':>8}{'MRR@10':>8}{'p50 ms':>9}{'p95 ms':>9}  queries")
    for r in reports:
        out.print(
            f"{r.mode:<9}{r.ndcg_at_10:>9.4f}{r.recall_at_10:>8.4f}{figure(r.recall_at_100, '>8.4f')}{r.mrr_at_10:>8.4f}"
            f"{r.latency_p50_ms:>9.1f}{r.latency_p95_ms:>9.1f}  {r.queries}"
        )


def figure(value: float | None, spec: str) -> str:
    """`value` formatted by `spec`, or a dash where there was nothing to measure."""
    return format(value, spec) if value is not None else format("-", re.sub(r"\.\d+f$", "", spec))


ANSWER_METRICS = (
    ("answer accuracy", "accuracy"),
    ("token F1", "f1"),
    ("gold source cited", "gold_cited"),
    ("evidence accuracy", "evidence_accuracy"),
    ("answered when answerable", "answered_when_answerable"),
    ("declined when unanswerable", "declined_when_unanswerable"),
    ("wrong answers flagged", "flagged_when_wrong"),
    ("right answers flagged", "flagged_when_right"),
)


def _eval_answers(qa_file: Path, docs_dir: Path | None, settings: Settings, k: int | None, verbose: bool, as_json: bool) -> None:
    def show(result) -> None:
        if verbose and not as_json:
            verdict = "ok  " if result.correct else "decl" if result.declined else "----" if result.answerable else "ans?"
            flagged = f"  unsupported: {', '.join(result.unsupported)}" if result.unsupported else ""
            out.print(f"{verdict} {result.id:<6} {escape(one_line(result.answer)[:100])}{escape(flagged)}")

    report = rag.evaluate_answers(
        qa_file, docs_dir, settings, k=k, on_result=show, progress=IngestProgressBar() if err.is_terminal else None
    )
    if as_json:
        out.print_json(json.dumps(report.to_dict(per_question=verbose)))
        return
    out.print(f"{report.questions} questions ({report.answerable} answerable, {report.unanswerable} not answerable)")
    for label, key in ANSWER_METRICS:
        out.print(f"{label + ':':<28}{figure(getattr(report, key), '.3f')}")
    out.print(f"{'latency p50 / p95:':<28}{report.latency_p50_ms / 1000:.2f} s / {report.latency_p95_ms / 1000:.2f} s")
