"""The sentence-transformers model as one ONNX graph (encoder, pooling, normalisation), run with
ONNX Runtime: faster than torch on a CPU, and its import is light enough for a cold `rag search`.

The graph is exported once from the model's own weights (that step needs torch) and cached, in
float32 and, for large ingests on CPUs without native bfloat16, with its matrix products in int8.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from ingest.embedding.tokenizer import load_tokenizer

if TYPE_CHECKING:
    import numpy as np

POOLING_MODES = ("mean", "cls")
EXPORT_VERSION = 2  # part of the cache key: bump when the exported graph changes
PRECISIONS = ("float32", "int8")


def pooling_mode(model_path: Path) -> str | None:
    """The model's pooling, if the ONNX graph can reproduce it."""
    config_file = model_path / "1_Pooling" / "config.json"
    if not config_file.is_file():
        return None
    config = json.loads(config_file.read_text())
    if config.get("pooling_mode_mean_tokens"):
        return "mean"
    if config.get("pooling_mode_cls_token"):
        return "cls"
    return None


def cached_export(model_path: Path, cache_dir: Path, precision: str = "float32") -> Path:
    """The model's ONNX file in this precision, exported on first use.

    Named by the content of the weights, so every install of the same model (a new virtualenv,
    a fresh clone) shares one export. Making a new export removes those of other export versions,
    which no install of this code reads again.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    folder = cache_dir / "onnx"
    digest = _content_digest(model_path, folder)
    tag = "" if precision == "float32" else f"-{precision}"
    target = folder / f"{model_path.name}-{digest}{tag}-v{EXPORT_VERSION}.onnx"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = target.with_suffix(f".{os.getpid()}.partial")
        try:
            if precision == "float32":
                _export(model_path, pooling_mode(model_path) or "mean", partial)
            else:
                _quantize(cached_export(model_path, cache_dir), partial)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, target)  # atomic: a concurrent process sees all of it or nothing
        for stale in folder.glob("*.onnx"):
            if not stale.name.endswith(f"-v{EXPORT_VERSION}.onnx"):
                stale.unlink(missing_ok=True)
    return target


def _content_digest(model_path: Path, folder: Path) -> str:
    """A digest of the files the export depends on, memoised per model copy by their sizes and
    mtimes (hashing 90 MB of weights on every cold query would cost more than the query)."""
    weights = next(model_path.glob("*.safetensors"), None) or next(model_path.glob("*.bin"))
    files = [f for f in (weights, model_path / "config.json", model_path / "1_Pooling" / "config.json") if f.is_file()]
    stats = [f"{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    memo_file = folder / "digests.json"
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    known = memo.get(str(model_path))
    if known and known["files"] == stats:
        return known["digest"]
    digest = hashlib.sha256()
    for f in files:
        with f.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    # Model copies since deleted (an old virtualenv) are forgotten.
    memo = {path: entry for path, entry in memo.items() if Path(path).exists()}
    memo[str(model_path)] = {"files": stats, "digest": digest.hexdigest()[:16]}
    folder.mkdir(parents=True, exist_ok=True)
    partial = memo_file.with_suffix(f".{os.getpid()}.partial")
    partial.write_text(json.dumps(memo, indent=1))
    os.replace(partial, memo_file)
    return memo[str(model_path)]["digest"]


def _export(model_path: Path, pooling: str, target: Path) -> None:
    import torch

    from ingest.embedding.torch_encoder import load_pooled

    model = load_pooled(model_path, pooling)
    unfused = target.with_suffix(".unfused")
    example = torch.ones((1, 8), dtype=torch.int64)
    dynamic = {0: "batch", 1: "tokens"}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter is the one that needs no onnxscript; it says it is legacy.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example, example, torch.zeros_like(example)),
            str(unfused),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["embedding"],
            dynamic_axes={"input_ids": dynamic, "attention_mask": dynamic, "token_type_ids": dynamic, "embedding": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    _fuse(unfused, target, model.encoder.config)


def _fuse(unfused: Path, target: Path, config) -> None:
    """A BERT graph with ONNX Runtime's fused attention, layer-norm and GELU kernels: the same
    vectors, about 1.2 times faster on a CPU. Other architectures keep the plain graph."""
    if config.model_type == "bert":
        from onnxruntime.transformers.optimizer import optimize_model

        try:
            fused = optimize_model(
                str(unfused), model_type="bert", num_heads=config.num_attention_heads,
                hidden_size=config.hidden_size, opt_level=1,
            )
            fused.save_model_to_file(str(target))
            unfused.unlink()
            return
        except Exception:  # an unusual BERT variant the optimizer cannot handle: the plain graph works
            pass
    os.replace(unfused, target)


def _quantize(float32_file: Path, target: Path) -> None:
    """The graph with its matrix products (attention and feed-forward) in int8: weights quantized
    once per output channel, activations per batch as they come. On AVX2 about 1.6 times the
    float32 graph's speed; SciFact nDCG@10 of an index built with it is in docs/retrieval-quality.md.

    The weights keep 7 bits (reduce_range): AVX2's u8 x s8 kernels add pairs of products in 16
    bits, which full 8-bit weights can overflow."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with _quiet_root_logger():  # it advises a pre-processing step that changes nothing for this graph
        quantize_dynamic(
            str(float32_file), str(target), per_channel=True, reduce_range=True, weight_type=QuantType.QInt8,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


class OnnxEncoder:
    def __init__(self, onnx_file: Path, tokenizer_file: Path, max_tokens: int, threads: int | None = None):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # Idle threads that spin take the cores from the keyword search running beside a query's
        # embedding (hybrid search p50 16.6 -> 11.9 ms on SciFact); batches of an ingest lose nothing.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = load_tokenizer(tokenizer_file, max_tokens)

    def __call__(self, texts: list[str], batch_size: int) -> "np.ndarray":
        import numpy as np

        batches = []
        for start in range(0, len(texts), batch_size):
            encodings = self._tokenizer.encode_batch(texts[start : start + batch_size])
            ids = np.array([e.ids for e in encodings], dtype=np.int64)
            feed = {
                "input_ids": ids,
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.zeros_like(ids),
            }
            batches.append(self._session.run(None, {k: v for k, v in feed.items() if k in self._inputs})[0])
        return np.concatenate(batches) if batches else np.zeros((0, 0), dtype=np.float32)


@functools.lru_cache(maxsize=2)
def load_encoder(onnx_file: Path, tokenizer_file: Path, max_tokens: int) -> OnnxEncoder:
    return OnnxEncoder(onnx_file, tokenizer_file, max_tokens)
