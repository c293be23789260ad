"""Where the commands print: results to stdout (`out`), progress, warnings and hints to stderr (`err`).

A reader that closes stdout early (`rag search ... | head -1`) got what it wanted: printing then
ends the command quietly instead of failing.
"""

from __future__ import annotations

import os
import unicodedata
import select
import sys

import typer
from rich.console import Console


class _Stdout(Console):
    def on_broken_pipe(self) -> None:
        # Rich ends the process with exit code 1; the reader closing the pipe is no failure.
        discard_stdout()
        raise typer.Exit(0)


def stdout_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone (not some socket's broken pipe)."""
    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (OSError, ValueError, AttributeError):  # no real file behind stdout
        return False


def discard_stdout() -> None:
    """Point stdout at /dev/null, so that the flush at exit does not fail again (Python's docs, signal)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def flush_stdout() -> None:
    """Flush what is left for stdout now, where a closed pipe can still end quietly."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        discard_stdout()
    except (OSError, ValueError):
        pass


def display_path(path: str) -> str:
    """`path` relative to the working directory when it is below it, else as it is; a control
    character of a file's name (a newline) escaped, so that the name stays on its line."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        relative = ".."
    shown = path if relative.startswith("..") else relative
    return "".join(char.encode("unicode_escape").decode() if unicodedata.category(char) == "Cc" else char for char in shown)


out = _Stdout(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def human_size(size: float) -> str:
    """'812 B', '12.3 KB', '1.5 GB'."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB"):
        size /= 1000
        if size < 1000:
            return f"{size:.1f} {unit}"
    return f"{size / 1000:.1f} GB"
