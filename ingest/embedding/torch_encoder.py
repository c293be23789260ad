"""The encoder on torch: the pooled module the ONNX export is made from, and the bfloat16 path of
large ingests on CPUs with native bfloat16 (AVX512-BF16 or AMX).

The bfloat16 path traces the model once with TorchScript, so that oneDNN's graph compiler fuses
attention and the feed-forward activation into its own kernels: on SciFact's chunks about 1.4
times the plain bfloat16 model (`torch.compile` took 55 s to compile here and ran no faster).
Batches are padded to whole batches of a multiple of PAD_TO_MULTIPLE tokens, so the kernels are
compiled for a handful of shapes (about 1.5 s each) in a whole ingest.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ingest.embedding.tokenizer import load_tokenizer

if TYPE_CHECKING:
    import numpy as np

PAD_TO_MULTIPLE = 32


class Pooled(torch.nn.Module):
    """A transformer encoder with sentence-transformers' pooling, L2-normalised in float32."""

    def __init__(self, encoder: torch.nn.Module, pooling: str):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, input_ids, attention_mask, token_type_ids):
        hidden = self.encoder(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids, return_dict=False
        )[0]
        if hidden.dtype != torch.float32:
            hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)


def load_pooled(model_path: Path, pooling: str, dtype: torch.dtype = torch.float32) -> Pooled:
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    # Its loading bar and warnings (tracing reads properties that warn) would land in our output.
    transformers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    # Eager attention is plain MatMul/Softmax, the pattern ONNX Runtime and oneDNN both fuse;
    # the SDPA kernel's masking blocks it.
    encoder = AutoModel.from_pretrained(str(model_path), local_files_only=True, attn_implementation="eager")
    return Pooled(encoder.eval().to(dtype), pooling).eval()


class Bfloat16Encoder:
    def __init__(self, model_path: Path, pooling: str, max_tokens: int, batch_size: int):
        torch.jit.enable_onednn_fusion(True)
        self._tokenizer = load_tokenizer(model_path / "tokenizer.json", max_tokens, PAD_TO_MULTIPLE)
        self._batch_size = batch_size
        model = load_pooled(model_path, pooling, torch.bfloat16)
        # Traced on a padded example, so the graph always applies the attention mask; one graph
        # serves every batch shape (oneDNN compiles its fused kernels per shape as they come).
        ids = torch.ones((batch_size, PAD_TO_MULTIPLE), dtype=torch.int64)
        mask = torch.ones_like(ids)
        mask[0, -1] = 0
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript says it is deprecated; torch is pinned
            self._graph = torch.jit.freeze(torch.jit.trace(model, (ids, mask, torch.zeros_like(ids)), check_trace=False))

    def __call__(self, texts: list[str]) -> "np.ndarray":
        vectors = []
        with torch.no_grad():
            for start in range(0, len(texts), self._batch_size):
                encodings = self._tokenizer.encode_batch(texts[start : start + self._batch_size])
                ids = torch.tensor([e.ids for e in encodings])
                mask = torch.tensor([e.attention_mask for e in encodings])
                missing = self._batch_size - len(encodings)
                if missing:  # a full batch: one shape fewer to compile kernels for
                    ids = torch.cat([ids, ids[:1].expand(missing, -1)])
                    mask = torch.cat([mask, mask[:1].expand(missing, -1)])
                pooled = self._graph(ids, mask, torch.zeros_like(ids))
                vectors.append(pooled[: len(encodings)])
        return torch.cat(vectors).numpy()
