"""Progress bars on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag.cli.console import err

if TYPE_CHECKING:
    from rich.progress import TaskID


class IngestProgressBar:
    """Progress bar on stderr for interactive ingests: files read, chunks embedded, time left.

    The bar measures bytes whose work is done (see IngestProgress), which is what the time
    left is estimated from.
    """

    def __init__(self) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        self._files = self._chunks = 0
        self._bar = Progress(
            TextColumn("ingesting"),
            BarColumn(),
            TextColumn("{task.fields[files]}/{task.fields[total_files]} files, {task.fields[chunks]} chunks embedded"),
            TimeRemainingColumn(),
            console=err,
            transient=True,
        )
        self._task: TaskID | None = None

    def start(self, total_files: int, total_bytes: int) -> None:
        self._task = self._bar.add_task("ingest", total=max(total_bytes, 1), files=0, total_files=total_files, chunks=0)
        self._bar.start()

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
        self._files += files
        self._chunks += chunks
        assert self._task is not None, "started"
        self._bar.update(self._task, advance=done_bytes, files=self._files, chunks=self._chunks)

    def finish(self) -> None:
        self._bar.stop()


class JobProgressBar:
    """Progress bar on stderr for interactive batch jobs: items, time left, generation speed."""

    def __init__(self, job) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._total = len(job)
        self._tokens = 0
        self._seconds = 0.0
        self._bar = Progress(
            TextColumn(job.kind),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            TextColumn("{task.fields[speed]}"),
            console=err,
            transient=True,
        )
        self._task: TaskID | None = None
        job.on_call = self._on_call

    def start(self, done: int) -> None:
        self._task = self._bar.add_task("job", total=self._total, completed=min(done, self._total), speed="")
        self._bar.start()

    def _on_call(self, call) -> None:
        self._tokens += call.tokens
        self._seconds += call.seconds
        assert self._task is not None, "started"
        self._bar.update(self._task, speed=f"{self._tokens / max(self._seconds, 1e-9):.1f} tokens/s")

    def advance(self) -> None:
        assert self._task is not None, "started"
        self._bar.update(self._task, advance=1)

    def finish(self) -> None:
        self._bar.stop()
