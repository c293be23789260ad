"""The embedding model's tokenizer, loaded from its tokenizer.json (no torch): as both encoders feed
it (onnx_encoder.py, torch_encoder.py) and as the package (ingest.embedding) counts tokens.

A module of its own because the ONNX export loads the torch encoder: each importing the other
would be a cycle. (The universal sentence encoder's tokenizer is built from its SentencePiece
model instead: use_encoder.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tokenizers import Tokenizer


def load_tokenizer(
    tokenizer_file: Path, max_tokens: int | None = None, pad_to_multiple_of: int | None = None
) -> "Tokenizer":
    """The model's tokenizer. With `max_tokens`, for an encoder: truncating as sentence-transformers
    does and padding each batch. Without, for counting and reading texts: whole and unpadded, whatever
    truncation and padding the file itself sets."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tokenizer_file))
    if max_tokens is None:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    else:
        tokenizer.enable_truncation(max_tokens)
        tokenizer.enable_padding(pad_to_multiple_of=pad_to_multiple_of)
    return tokenizer
