"""Ingest benchmark: full ingest and unchanged re-sync of a folder, against the bare embedding cost.

    .venv/bin/python bench/ingest_bench.py                 # SciFact corpus, one file per abstract
    .venv/bin/python bench/ingest_bench.py --limit 500     # a quick run
    .venv/bin/python bench/ingest_bench.py --folder ~/notes

Each `rag ingest` runs as a real CLI process (cold start included); its peak RSS comes from the
kernel's accounting of that child. The baseline, measured in the same run, is the embedding model
alone on ONNX Runtime in float32 (the path of queries and small ingests) encoding exactly the chunk
texts the ingest stored. A large ingest embeds in bfloat16 where the CPU has it, so it can finish
before that baseline does. The floor is what the encoder's matrix products alone (the bulk of its
arithmetic) take for those tokens at the rate this CPU reaches on one such product in bfloat16:
no implementation of this model on this machine embeds them faster.
Prints one JSON line on stdout; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"


def build_scifact_folder(target: Path, limit: int | None) -> Path:
    """One .txt file per abstract (title, blank line, text), written once and reused."""
    marker = target / f".complete-{limit or 'all'}"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with (SCIFACT / "corpus.jsonl").open() as corpus:
        for number, line in enumerate(corpus):
            if limit is not None and number >= limit:
                break
            doc = json.loads(line)
            (target / f"{doc['_id']}.txt").write_text(f"{doc.get('title', '')}\n\n{doc['text']}\n")
    marker.touch()
    return target


def run_cli(args: list[str], home: Path) -> tuple[dict, float, float]:
    """(JSON report, wall seconds, peak RSS in MB) of one `rag` process."""
    rag = Path(sys.executable).with_name("rag")
    env = {**os.environ, "RAG_HOME": str(home)}
    started = time.perf_counter()
    process = subprocess.Popen([str(rag), *args, "--json"], env=env, stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        raise SystemExit(f"rag {' '.join(args)} failed with exit code {os.waitstatus_to_exitcode(status)}")
    return json.loads(stdout), seconds, usage.ru_maxrss / 1024


def stored_texts(settings) -> list[str]:
    """Every chunk text the index's vector store holds, in chunk id order."""
    from ingest.index import Index

    store = Index(settings).store
    ids = sorted(store.ids())
    texts: list[str] = []
    for start in range(0, len(ids), 1000):
        chunks = store.get(ids[start : start + 1000])
        texts.extend(chunks[chunk_id].text for chunk_id in ids[start : start + 1000] if chunk_id in chunks)
    return texts


def embedding_baseline(embedder, texts: list[str]) -> float:
    """Seconds for the embedding model alone (ONNX Runtime, float32) to encode `texts`."""
    embedder.encode(texts[:8])  # load the model outside the timing, as the ingest's own load is small
    started = time.perf_counter()
    embedder.encode(texts)
    return time.perf_counter() - started


def matmul_floor(embedder, texts: list[str], chunk_tokens: int) -> tuple[int, float, float]:
    """(tokens the encoder reads, bfloat16 matrix-product rate in GFLOP/s, seconds of matrix products)."""
    import torch

    from ingest.embedding import BULK_BATCH_SIZE, SPECIAL_TOKENS_PER_INPUT

    counter = embedder.token_counter
    tokens = sum(min(counter.count(text), counter.window) + SPECIAL_TOKENS_PER_INPUT for text in texts)
    config = json.loads((embedder.model_path / "config.json").read_text())
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    # Per token and layer: query, key, value and output projections, and the two feed-forward ones.
    flops_per_token = layers * 2 * (4 * hidden * hidden + 2 * hidden * inner)
    activations = torch.randn(BULK_BATCH_SIZE * chunk_tokens, hidden, dtype=torch.bfloat16)  # one bulk batch
    weights = torch.randn(inner, hidden, dtype=torch.bfloat16)
    best = float("inf")
    with torch.inference_mode():
        for _ in range(20):
            started = time.perf_counter()
            torch.nn.functional.linear(activations, weights)
            best = min(best, time.perf_counter() - started)
    rate = 2 * activations.shape[0] * hidden * inner / best
    return tokens, rate / 1e9, tokens * flops_per_token / rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="ingest this folder instead of SciFact")
    parser.add_argument("--limit", type=int, help="only the first N SciFact abstracts")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rag-bench")
    options = parser.parse_args()

    folder = options.folder or build_scifact_folder(
        options.workdir / f"scifact-{options.limit or 'all'}", options.limit
    )
    home = options.workdir / "home"
    shutil.rmtree(home, ignore_errors=True)

    print(f"full ingest of {folder} ...", file=sys.stderr)
    full, full_seconds, full_rss = run_cli(["ingest", str(folder)], home)
    print("unchanged re-sync ...", file=sys.stderr)
    resync, resync_seconds, resync_rss = run_cli(["ingest", str(folder)], home)
    print("baseline: the embedding model alone on the same chunks ...", file=sys.stderr)
    import rag
    from ingest.embedding import LocalEmbeddings

    settings = rag.load_settings(home=home)
    embedder = LocalEmbeddings(settings.embedding, settings.cache_path)
    texts = stored_texts(settings)
    embed_seconds = embedding_baseline(embedder, texts)
    print("floor: the encoder's matrix products at this CPU's bfloat16 rate ...", file=sys.stderr)
    tokens, gflops, floor_seconds = matmul_floor(embedder, texts, settings.chunking.chunk_tokens)

    result = {
        "files": len(full["added"]),
        "failed": len(full["failed"]),
        "chunks": len(texts),
        "tokens_embedded": tokens,
        "full_ingest_s": round(full_seconds, 2),
        "full_ingest_library_s": full["seconds"],
        "chunks_per_s": round(len(texts) / full_seconds, 1),
        "full_peak_rss_mb": round(full_rss),
        "resync_unchanged_files": resync["unchanged"],
        "resync_s": round(resync_seconds, 3),
        "resync_library_s": resync["seconds"],
        "resync_peak_rss_mb": round(resync_rss),
        "baseline_embedding_only_s": round(embed_seconds, 2),
        "overhead_beyond_embedding_s": round(full_seconds - embed_seconds, 2),
        "embedding_share_of_ingest": round(embed_seconds / full_seconds, 3),
        "bf16_matmul_gflops": round(gflops),
        "embedding_matmul_floor_s": round(floor_seconds, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
