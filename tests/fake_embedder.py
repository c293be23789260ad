"""A fake embedding model for the fast tier: deterministic vectors from the words of a text, no weights.

`FakeEmbedder` implements `ingest.embedding.embedders.Embedder`. Each word (lowercased) adds ±1 to a
dimension chosen by its CRC-32, and the sum is scaled to unit length: texts that share words get
a high cosine, texts that share none one near 0, the same text always the same vector, in every
process. Its tokenizer reads each UTF-8 byte as a token (a real `tokenizers.Tokenizer`, built
here): letters of Latin scripts are read, Chinese, Japanese and Korean letters are not, as with
all-MiniLM-L6-v2. `load_fake_embedder_for_its_name` (the `fake_embedder` fixture of
tests/conftest.py) makes the code load it for settings whose embedding.model is `FAKE_MODEL`.
"""

from __future__ import annotations

import functools
import re
import zlib
from typing import TYPE_CHECKING, Any, Callable

from ingest.embedding import TokenCounter

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

FAKE_MODEL = "fake-word-hashing-embedder"
FAKE_DIMENSION = 64
# Content tokens (bytes) the fake model reads: more than the default chunking.chunk_tokens.
FAKE_WINDOW = 256
_WORD = re.compile(r"\w+")


@functools.cache
def byte_tokenizer() -> "Tokenizer":
    """A tokenizer with one token per UTF-8 byte and no unknown token (no file, no download)."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    tokenizer = Tokenizer(models.BPE(vocab={byte: i for i, byte in enumerate(alphabet)}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    return tokenizer


def fake_vector(text: str) -> "np.ndarray":
    import numpy as np

    vector = np.zeros(FAKE_DIMENSION, dtype=np.float32)
    for word in _WORD.findall(text.lower()):
        code = zlib.crc32(word.encode())
        vector[code % FAKE_DIMENSION] += 1.0 if code & (1 << 31) else -1.0
    norm = np.linalg.norm(vector)
    if norm == 0:  # no word at all: one fixed direction, so every vector has unit length
        vector[0], norm = 1.0, 1.0
    return vector / norm


class FakeEmbedder:
    model_name = FAKE_MODEL
    bulk = False

    @property
    def path(self) -> tuple[str, str]:
        return "word hashing (a fake model)", "the fast tests load no model"

    @functools.cached_property
    def token_counter(self) -> TokenCounter:
        return TokenCounter(byte_tokenizer(), FAKE_WINDOW)

    def encode(self, texts: list[str], on_progress: Callable[[int], None] | None = None) -> "np.ndarray":
        import numpy as np

        vectors = np.stack([fake_vector(text) for text in texts]) if texts else np.zeros((0, FAKE_DIMENSION), np.float32)
        if on_progress and texts:
            on_progress(len(texts))
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


def load_fake_embedder_for_its_name(set_attribute: Callable[[Any, str, Any], None]) -> None:
    """Make the code load FakeEmbedder and its tokenizer for the model name FAKE_MODEL, and real
    models for every other name. `set_attribute`: pytest's `monkeypatch.setattr` (undone after the
    test) or `setattr` (for the rest of a process)."""
    import ingest.embedding.embedders
    import rag.chain

    real_load, real_tokenizer, real_window = (
        ingest.embedding.embedders.load_embeddings, ingest.embedding.embedders.model_tokenizer, ingest.embedding.embedders.model_window
    )

    def load_embeddings(settings, cache_dir):
        return FakeEmbedder() if settings.model == FAKE_MODEL else real_load(settings, cache_dir)

    def model_tokenizer(model):
        return byte_tokenizer() if model == FAKE_MODEL else real_tokenizer(model)

    def model_window(model):
        return FAKE_WINDOW if model == FAKE_MODEL else real_window(model)

    set_attribute(ingest.embedding.embedders, "load_embeddings", load_embeddings)
    set_attribute(ingest.embedding.embedders, "model_tokenizer", model_tokenizer)
    set_attribute(ingest.embedding.embedders, "model_window", model_window)
    set_attribute(rag.chain, "model_tokenizer", model_tokenizer)  # imported by name there
