"""How batch records are written: JSON Lines, CSV or Markdown."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Literal

from rag.batch.jobs import BatchJob, ExtractJob, Extraction, Summary
from rag.errors import FormatUnknownError, UsageError

Format = Literal["jsonl", "csv", "md"]
FORMATS_BY_SUFFIX: dict[str, Format] = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".md": "md"}
PROVENANCE_COLUMNS = ["source", "location", "chunk_ids"]
# Excel opens a CSV file without it in the machine's legacy code page: Korean, Chinese or Japanese
# values come out as mojibake. pandas reads it either way, Python's csv module with "utf-8-sig".
CSV_BOM = "\ufeff"
# The last column: the values that state a fact their passages do not (Extraction.unsupported).
UNSUPPORTED_COLUMN = "unsupported"


def output_format(path: Path | None, requested: str | None, job: BatchJob) -> Format:
    """The format asked for, else the one the output file's extension names (JSON Lines on stdout)."""
    if requested is None and path is not None:
        requested = FORMATS_BY_SUFFIX.get(path.suffix.lower())
        if requested is None:
            raise FormatUnknownError(path, ("jsonl", "csv", "md"))
    chosen = requested or "jsonl"
    allowed = ("jsonl", "csv") if isinstance(job, ExtractJob) else ("jsonl", "md")
    if chosen not in allowed:
        raise UsageError(f"rag {job.kind} writes {' or '.join(allowed)}, not {chosen!r}.")
    return chosen  # type: ignore[return-value]


def header(job: BatchJob, fmt: Format) -> str:
    """What a new output file starts with: for CSV, a byte-order mark and the columns' names."""
    return CSV_BOM + _csv_line(_columns(job)) if fmt == "csv" else ""


def render(record: Summary | Extraction, job: BatchJob, fmt: Format) -> str:
    """The record as written to the output (or, failed, to the errors file: always JSON Lines)."""
    if record.ok and fmt == "md" and isinstance(record, Summary):
        return record.markdown()
    if record.ok and fmt == "csv" and isinstance(record, Extraction):
        row = {**record.provenance(), **_data_columns(record.data), UNSUPPORTED_COLUMN: record.unsupported or None}
        return _csv_line([_cell(row.get(column)) for column in _columns(job)])
    return json.dumps(record.to_dict(), ensure_ascii=False) + "\n"


def _columns(job: BatchJob) -> list[str]:
    schema = job.schema if isinstance(job, ExtractJob) else {}
    properties = list(schema.get("properties", {})) if schema.get("type") == "object" else ["data"]
    added = [*PROVENANCE_COLUMNS, UNSUPPORTED_COLUMN]
    return PROVENANCE_COLUMNS + [name for name in properties if name not in added] + [UNSUPPORTED_COLUMN]


def _data_columns(data: Any) -> dict[str, Any]:
    return data if isinstance(data, dict) else {"data": data}


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _csv_line(values: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(values)
    return buffer.getvalue()
