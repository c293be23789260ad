"""Ask benchmark: `rag ask` against the same prompt sent straight to llama-cpp-python.

    .venv/bin/python bench/ask_bench.py [--runs 5] [--max-tokens 64] [--model FILE.gguf]

Ingests the sample corpus into a temporary index, then for each question times the whole rag
pipeline (retrieval, context fitting, prompt, LangChain LlamaCpp, output parsing) and, in the same
run, the exact prompt rag built sent to a bare `llama_cpp.Llama` with the same settings. Both
models' KV caches are reset before every run, so each run evaluates its whole prompt. Prints one
JSON line: medians of time to first token and tokens/s for both, and rag's overhead in percent.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
QUESTIONS = [
    "When does the warranty of the Brandt RO-350 reflow oven end?",
    "How many days of paid vacation per year do employees get?",
    "What is the booking reference for the Rorbu cabin in Reine?",
    "At what time does the nightly harbor-retention cleanup job run?",
]


def time_rag(assistant, question: str) -> tuple[float, float, str, int]:
    assistant.llm.client.reset()
    started = time.perf_counter()
    stream = assistant.stream(question)
    first = None
    for _ in stream:
        first = first or time.perf_counter()
    finished = time.perf_counter()
    answer = stream.answer
    tokens = answer.timings.get("tokens", 0)
    return (first - started) * 1000, tokens / (finished - first), answer.prompt, tokens


def time_direct(llama, prompt: str, settings, stop: list[str]) -> tuple[float, float, int]:
    llama.reset()
    started = time.perf_counter()
    first = None
    tokens = 0
    for _ in llama(
        prompt, max_tokens=settings.max_tokens, temperature=settings.temperature, stop=stop or None, stream=True
    ):
        first = first or time.perf_counter()
        tokens += 1
    finished = time.perf_counter()
    return (first - started) * 1000, tokens / (finished - first), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per question")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the packaged Gemma 3 270M)")
    options = parser.parse_args()

    import llama_cpp

    import rag
    from rag.ask import Assistant

    home = Path(tempfile.mkdtemp(prefix="rag-ask-bench-"))
    llm = {"temperature": 0.0, "max_tokens": options.max_tokens}
    if options.model:
        llm["model_path"] = str(options.model)
    settings = rag.load_settings(home=home, llm=llm)
    print("ingesting the sample corpus ...", file=sys.stderr)
    rag.ingest([REPO / "data" / "sample-notes"], settings)
    assistant = Assistant(settings)
    stop = [*assistant.qa.stop, *settings.llm.stop]
    s = settings.llm
    llama = llama_cpp.Llama(
        model_path=assistant.llm.model_path, n_ctx=s.n_ctx, n_batch=s.n_batch, n_threads=s.n_threads,
        n_gpu_layers=s.n_gpu_layers, seed=s.seed, verbose=False,
    )
    time_rag(assistant, QUESTIONS[0])  # warm-up: first query loads the embedding model

    rag_ttft, rag_tps, direct_ttft, direct_tps = [], [], [], []
    for question in QUESTIONS:
        for _ in range(options.runs):
            ttft, tps, prompt, _tokens = time_rag(assistant, question)
            rag_ttft.append(ttft)
            rag_tps.append(tps)
            ttft, tps, _ = time_direct(llama, prompt, s, stop)
            direct_ttft.append(ttft)
            direct_tps.append(tps)
        print(f"  {question[:50]}...", file=sys.stderr)

    result = {
        "model": Path(assistant.llm.model_path).name,
        "runs": len(rag_ttft),
        "rag_first_token_ms": round(statistics.median(rag_ttft), 1),
        "direct_first_token_ms": round(statistics.median(direct_ttft), 1),
        "rag_tokens_per_s": round(statistics.median(rag_tps), 1),
        "direct_tokens_per_s": round(statistics.median(direct_tps), 1),
        "first_token_overhead_pct": round(100 * (statistics.median(rag_ttft) / statistics.median(direct_ttft) - 1), 1),
        "throughput_overhead_pct": round(100 * (1 - statistics.median(rag_tps) / statistics.median(direct_tps)), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
