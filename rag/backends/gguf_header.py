"""What a GGUF file says about itself: its header's metadata, read without llama.cpp.

The leaf that gguf_files (the model a backend runs) and local_models (other apps' models) both
read headers through. Not gguf.GGUFReader: it parses every array of the header, the vocabulary and
its merges included, into numpy objects, and so takes many times as long and as much memory as
reading the scalars and skipping the arrays, as here.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any, BinaryIO

GGUF_MAGIC = b"GGUF"

# GGUF value types (gguf_type in ggml's gguf.h): struct format of each fixed-size one.
_SCALAR_FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# llama_ftype (llama.h), the numbers general.file_type holds; numbers are never reused.
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K", 11: "Q3_K_S",
    12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K",
    19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS", 23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL",
    26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S", 29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16",
    36: "TQ1_0", 37: "TQ2_0", 38: "MXFP4_MOE",
}


def read_header(path: Path) -> dict[str, Any]:
    """The GGUF key/value metadata (architecture, name, chat template...), read from the file's header.

    Only the header is read, never the tensors, so this is fast for any size of model, works for
    architectures this llama.cpp cannot run, and needs no llama-cpp-python. Arrays (the vocabulary)
    are skipped. A file that is not GGUF, or whose header is cut short, raises ValueError.
    """
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ValueError(f"{path} is not a GGUF file")
        version, _tensor_count, kv_count = _unpack(fh, "<IQQ")
        if version < 2:  # version 1 used 32-bit lengths; llama.cpp no longer reads it either
            raise ValueError(f"{path} is GGUF version {version}, too old to read")
        metadata = {}
        for _ in range(kv_count):
            key = _read_string(fh)
            (value_type,) = _unpack(fh, "<I")
            value = _read_value(fh, value_type)
            if value is not None:
                metadata[key] = value
        return metadata


def _unpack(fh: BinaryIO, layout: str) -> tuple[Any, ...]:
    size = struct.calcsize(layout)
    data = fh.read(size)
    if len(data) != size:
        raise ValueError("GGUF header cut short")
    return struct.unpack(layout, data)


def _read_string(fh: BinaryIO) -> str:
    (length,) = _unpack(fh, "<Q")
    return _read_bytes(fh, length).decode("utf-8", errors="replace")


def _read_bytes(fh: BinaryIO, length: int) -> bytes:
    _check_within_file(fh, length)
    return fh.read(length)


def _skip(fh: BinaryIO, length: int) -> None:
    _check_within_file(fh, length)
    fh.seek(length, os.SEEK_CUR)


def _check_within_file(fh: BinaryIO, length: int) -> None:
    """A damaged length (up to 2**64) must not become a huge allocation or a seek past the end."""
    if length > os.fstat(fh.fileno()).st_size - fh.tell():
        raise ValueError("GGUF header cut short")


def _read_value(fh: BinaryIO, value_type: int) -> Any:
    """A scalar or string; an array is skipped (None): its items are not needed and can be megabytes."""
    if value_type == _STRING:
        return _read_string(fh)
    if value_type in _SCALAR_FORMATS:
        return _unpack(fh, "<" + _SCALAR_FORMATS[value_type])[0]
    if value_type != _ARRAY:
        raise ValueError(f"unknown GGUF value type {value_type}")
    item_type, count = _unpack(fh, "<IQ")
    if item_type in _SCALAR_FORMATS:
        _skip(fh, count * struct.calcsize(_SCALAR_FORMATS[item_type]))
    elif item_type == _STRING:
        _skip_strings(fh, count)
    else:
        for _ in range(count):
            _read_value(fh, item_type)
    return None


_LENGTH = struct.Struct("<Q")
# A vocabulary is some 150,000 strings: read in blocks, not one read and seek per string.
_BLOCK_BYTES = 1 << 20


def _skip_strings(fh: BinaryIO, count: int) -> None:
    """Past `count` strings (each a 64-bit length, then that many bytes)."""
    end = os.fstat(fh.fileno()).st_size
    block_start = fh.tell()
    block, offset = b"", 0
    for _ in range(count):
        if offset + _LENGTH.size > len(block):
            block_start += offset
            fh.seek(block_start)
            block, offset = fh.read(_BLOCK_BYTES), 0
            if len(block) < _LENGTH.size:
                raise ValueError("GGUF header cut short")
        offset += _LENGTH.size + _LENGTH.unpack_from(block, offset)[0]
        if block_start + offset > end:
            raise ValueError("GGUF header cut short")
    fh.seek(block_start + offset)


def read_metadata(path: Path) -> dict[str, str]:
    """The header's metadata as text, as llama.cpp's own reader gives it; {} for a file it cannot read."""
    try:
        header = read_header(path)
    except (OSError, ValueError):
        return {}
    return {key: _as_text(value) for key, value in header.items()}


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return f"{value:f}" if isinstance(value, float) else str(value)


def quantization(metadata: dict[str, Any]) -> str:
    file_type = metadata.get("general.file_type")
    return FILE_TYPES.get(int(file_type), f"type {file_type}") if file_type is not None else ""
