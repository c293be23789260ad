"""Which lines of a chunk body are its file's own: the chunker adds lines to the pieces of a block
it splits, and quoted evidence must cite only the file's lines.

Kept apart from chunker.py (which makes no chunk this module would misread) so that
rag.evidence reads chunk bodies without importing the chunker and its parsers.
"""

from __future__ import annotations

import re

# What a split block adds to its pieces: a code block's fences, a table's separator row.
_FENCE_LINE = re.compile(r" {0,3}(`{3,}|~{3,})\s*")
_FENCE_OPENER = re.compile(r" {0,3}(`{3,}|~{3,})")
_TABLE_SEPARATOR = re.compile(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*")


def added_lines(body: str, start_line: int, end_line: int) -> tuple[int, int]:
    """(top, bottom): how many lines at the top and at the bottom of a chunk body are not its
    file's lines `start_line`-`end_line`.

    They are what a split block adds to its pieces (chunker.py): at the top a continued
    table's header and separator rows or a continued code block's opening fence, at the bottom
    the closing fence every piece of a split code block ends with. The body has that many lines
    more than it cites, and only one split of them fits those shapes, but for one more line and a
    fence at each end: the fence at the bottom is the added one when the fence at the top opens
    one block down to it (a piece of a code block), the one at the top when its block closes
    sooner (the file's closing fence, then what followed the block). The chunker makes no chunk
    this reads otherwise than it was made.
    """
    lines = body.split("\n")
    extra = len(lines) - (end_line - start_line + 1)
    if extra <= 0 or extra >= len(lines):  # none added, or a location that is not this body's
        return 0, 0
    all_at_top = _added_top(lines[:extra])
    one_at_bottom = _FENCE_LINE.fullmatch(lines[-1]) is not None and _added_top(lines[: extra - 1])
    if all_at_top and one_at_bottom:
        return (0, 1) if _fence_closes_at(lines) == len(lines) - 1 else (1, 0)
    return (extra - 1, 1) if one_at_bottom else (extra, 0)


def _added_top(lines: list[str]) -> bool:
    """Whether lines are what a split block adds at the top of a piece: nothing, a fence, a table's
    header and separator rows."""
    if len(lines) == 1:
        return _FENCE_OPENER.match(lines[0]) is not None
    if len(lines) == 2:
        return "|" in lines[0] and _TABLE_SEPARATOR.fullmatch(lines[1]) is not None
    return not lines


def _fence_closes_at(lines: list[str]) -> int | None:
    """The line that closes the code block the first line opens, if any."""
    opener = _FENCE_OPENER.match(lines[0])
    if opener is None:
        return None
    fence = opener.group(1)
    for number, line in enumerate(lines[1:], start=1):
        stripped = line.strip()
        if len(line) - len(line.lstrip(" ")) <= 3 and len(stripped) >= len(fence) and stripped == fence[0] * len(stripped):
            return number
    return None
