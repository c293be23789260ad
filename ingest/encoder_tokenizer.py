"""The model's tokenizer as both encoders feed it (ingest/onnx_encoder.py, ingest/torch_encoder.py).

A module of its own because the ONNX export loads the torch encoder: each importing the other
would be a cycle.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def load_tokenizer(tokenizer_file: Path, max_tokens: int, pad_to_multiple_of: int | None = None) -> "Tokenizer":
    """The model's tokenizer, truncating as sentence-transformers does and padding each batch."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    tokenizer.enable_truncation(max_tokens)
    tokenizer.enable_padding(pad_to_multiple_of=pad_to_multiple_of)
    return tokenizer
