"""The embedding model `embedding.model` names, whichever kind it is.

Two kinds: sentence-transformers models (the packaged all-MiniLM-L6-v2, or a model folder on
disk; `ingest.embedding`) and the packaged Universal Sentence Encoder multilingual
(`ingest.embedding.use_encoder`), which reads Korean, Chinese and Japanese.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ingest import embedding
from ingest.embedding import use_encoder
from ingest.scripts import MULTILINGUAL_MODEL
from ingest.settings import EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

class Embedder(Protocol):
    model_name: str
    bulk: bool  # set for a large ingest: a model may embed those another way

    @property
    def path(self) -> tuple[str, str]:
        """(how texts are embedded now, why)."""

    @property
    def token_counter(self) -> embedding.TokenCounter: ...

    def encode(self, texts: list[str], on_progress: Callable[[int], None] | None = None) -> "np.ndarray": ...

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    def embed_query(self, text: str) -> list[float]: ...


def is_universal_sentence_encoder(model: str) -> bool:
    return model == MULTILINGUAL_MODEL


def load_embeddings(settings: EmbeddingSettings, cache_dir: Path) -> Embedder:
    """The embedding model of these settings (its weights load at the first text it embeds)."""
    if is_universal_sentence_encoder(settings.model):
        return use_encoder.UniversalSentenceEncoder(settings.batch_size)
    return embedding.LocalEmbeddings(settings, cache_dir)


def model_window(model: str) -> int:
    """Content tokens the embedding model reads, without loading it."""
    if is_universal_sentence_encoder(model):
        return use_encoder.UNBOUNDED_WINDOW
    return embedding.model_window(model)


def model_tokenizer(model: str) -> "Tokenizer":
    """The embedding model's tokenizer, without padding or truncation (no torch): the one its
    token counter uses."""
    if is_universal_sentence_encoder(model):
        return use_encoder.sentencepiece_tokenizer()
    return embedding.counting_tokenizer(embedding.resolve_model_path(model))
