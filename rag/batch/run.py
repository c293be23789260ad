"""Run a batch job into a file, resumably: what `rag summarize/extract --out FILE` does (`stream_job`: without a file).

    job = rag.extract(rag.fields_schema("vendor:str, amount:float"), ["invoices/"], settings)
    result = rag.run_job(job, "vendors.csv")     # run it again after an interruption: it continues
    print(result.written, result.failed, result.done_before, result.errors)

Records go to the output file as each item finishes, failed ones (as JSON Lines, with the
model's reply) to `FILE.errors.jsonl` beside it. A job stopped in any way (an exception,
Ctrl-C, a killed process) leaves a state file (`FILE.job`); the same job run into the same file
skips the items already written and reuses the model's replies it already had. Another job, or
other settings, into that file are refused (`restart=True` starts over).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from rag.batch import output
from rag.batch.jobs import BatchJob, CallStats, Extraction, Summary
from rag.batch.joblog import JobLog


@dataclass
class JobResult:
    """What one run of a job did (items done by earlier runs into the same file count in `done_before`)."""

    kind: str
    total: int  # items the job has, len(job)
    written: int  # records written this run
    failed: int  # records that failed this run (in `errors`)
    done_before: int  # items earlier runs into the same file had done
    seconds: float
    out: Path | None = None
    errors: Path | None = None  # the errors file, where it holds failed records (of this run or an earlier one)
    stats: CallStats | None = None  # the model's calls, tokens and seconds this run; None when it did nothing
    flagged: int = 0  # records written this run that state a fact their sources do not (their `unsupported`)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "total": self.total, "written": self.written, "failed": self.failed,
            "flagged": self.flagged, "done_before": self.done_before, "seconds": round(self.seconds, 2),
            "out": self.out and str(self.out), "errors": self.errors and str(self.errors),
            "stats": self.stats and {"calls": self.stats.calls, "tokens": self.stats.tokens,
                                     "seconds": round(self.stats.seconds, 2)},
        }


def run_job(
    job: BatchJob,
    out: str | Path,
    *,
    format: str | None = None,
    restart: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_record: Callable[[Summary | Extraction], None] | None = None,
) -> JobResult:
    """Run `job` into the file `out`, continuing an unfinished run of the same job there.

    `format` is jsonl, csv (extract) or md (summarize); default: from `out`'s extension.
    `restart=True` discards what `out`, its errors file and its state hold. `on_start(done_before)`
    is called once the file is open, before the first item; `on_record(record)` after each record
    is safely written. Any exception, KeyboardInterrupt included, propagates and leaves a state
    that the next run continues from.
    """
    out = Path(out).expanduser()
    chosen = output.output_format(out, format, job)
    started = time.perf_counter()
    fingerprint = {**job.fingerprint(), "format": chosen}
    with JobLog(out, fingerprint, restart=restart, header=output.header(job, chosen)) as log:
        job.skip, job.memo = set(log.done), log.replies
        if on_start:
            on_start(log.done_before)
        # A failed record goes to the errors file, as JSON Lines.
        written, failed, flagged = _run(job, chosen, lambda record, text: log.write(record.key, text, record.ok), on_record)
    return JobResult(
        kind=job.kind,
        total=len(job),
        written=written,
        failed=failed,
        flagged=flagged,
        done_before=log.done_before,
        seconds=time.perf_counter() - started,
        out=out,
        errors=log.errors if log.errors.exists() else None,
        stats=job.model.stats if written + failed else None,
    )


def stream_job(
    job: BatchJob,
    write: Callable[[Summary | Extraction, str], None],
    *,
    format: str | None = None,
    on_record: Callable[[Summary | Extraction], None] | None = None,
) -> JobResult:
    """Run `job` without a file: `write(record, text)` gets each record rendered in `format` (jsonl, csv
    or md; a failed record as JSON), as it finishes. Nothing is kept for a later run to continue."""
    chosen = output.output_format(None, format, job)
    started = time.perf_counter()
    written, failed, flagged = _run(job, chosen, write, on_record)
    stats = job.model.stats if written + failed else None
    return JobResult(job.kind, len(job), written, failed, 0, time.perf_counter() - started, stats=stats, flagged=flagged)


def _run(
    job: BatchJob,
    chosen: output.Format,
    write: Callable[[Summary | Extraction, str], None],
    on_record: Callable[[Summary | Extraction], None] | None,
) -> tuple[int, int, int]:
    """(written, failed, flagged): each record rendered and written as it finishes."""
    written = failed = flagged = 0
    for record in job:
        write(record, output.render(record, job, chosen))
        written, failed = written + record.ok, failed + (not record.ok)
        flagged += record.ok and bool(record.unsupported)
        if on_record:
            on_record(record)
    return written, failed, flagged
