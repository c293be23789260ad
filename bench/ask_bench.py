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


def time_rag(assistant, question: str) -> dict:
    assistant.llm.client.reset()
    started = time.perf_counter()
    stream = assistant.stream(question)
    first = None
    for _ in stream:
        first = first or time.perf_counter()
    finished = time.perf_counter()
    answer = stream.answer
    return {
        "first_token_ms": (first - started) * 1000,
        "tokens_per_s": answer.timings["tokens"] / (finished - first),
        "retrieval_ms": answer.timings["retrieval_ms"],
        "prompt": answer.prompt,
        "answer": answer.answer,
    }


def time_direct(llama, prompt: str, sampling: dict, first_line_only: bool) -> dict:
    """What a llama-cpp-python user would write: stream, and for a base model keep the first line."""
    from rag.chain import first_line

    llama.reset()
    started = time.perf_counter()
    first = None
    texts = (part["choices"][0]["text"] for part in llama(prompt, stream=True, **sampling))
    pieces = []
    for text in first_line(texts) if first_line_only else texts:
        first = first or time.perf_counter()
        pieces.append(text)
    texts.close()
    finished = time.perf_counter()
    answer = "".join(pieces)
    tokens = len(llama.tokenize(answer.encode(), add_bos=False))
    return {"first_token_ms": (first - started) * 1000, "tokens_per_s": tokens / (finished - first), "answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per question")
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the packaged Gemma 3 270M)")
    options = parser.parse_args()

    import llama_cpp

    import rag
    from rag.answering import Assistant

    home = Path(tempfile.mkdtemp(prefix="rag-ask-bench-"))
    llm = {"temperature": 0.0, "max_tokens": options.max_tokens}
    if options.model:
        llm["model_path"] = str(options.model)
    else:  # the figures in docs/benchmarks.md are for this model: rag's overhead does not depend on which
        llm["model"] = "gemma-3-270m"
    settings = rag.load_settings(home=home, llm=llm)
    print("ingesting the sample corpus ...", file=sys.stderr)
    rag.ingest([REPO / "data" / "sample-notes"], settings)
    assistant = Assistant(settings)
    # The very sampling parameters LangChain's LlamaCpp sends, so both sides generate the same text.
    sampling = assistant.llm._get_parameters([*assistant.qa.stop, *settings.llm.stop])
    s, engine = settings.llm, settings.llm.llamacpp
    llama = llama_cpp.Llama(
        model_path=assistant.llm.model_path, n_ctx=s.n_ctx, n_batch=engine.n_batch, n_threads=assistant.llm.client.n_threads,
        n_gpu_layers=engine.n_gpu_layers, seed=s.seed, verbose=False,
    )
    time_rag(assistant, QUESTIONS[0])  # warm-up: first query loads the embedding model

    rag_runs, direct_runs = [], []
    for question in QUESTIONS:
        for _ in range(options.runs):
            rag_runs.append(time_rag(assistant, question))
            direct_runs.append(time_direct(llama, rag_runs[-1]["prompt"], sampling, assistant.qa.first_line_only))
            if direct_runs[-1]["answer"] != rag_runs[-1]["answer"]:
                print(f"  note: answers differ: {rag_runs[-1]['answer']!r} / {direct_runs[-1]['answer']!r}", file=sys.stderr)
        print(f"  {question[:50]}...", file=sys.stderr)

    def median(runs: list[dict], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    result = {
        "model": Path(assistant.llm.model_path).name,
        "runs": len(rag_runs),
        "rag_first_token_ms": round(median(rag_runs, "first_token_ms"), 1),
        "rag_retrieval_ms": round(median(rag_runs, "retrieval_ms"), 1),
        "direct_first_token_ms": round(median(direct_runs, "first_token_ms"), 1),
        "rag_tokens_per_s": round(median(rag_runs, "tokens_per_s"), 1),
        "direct_tokens_per_s": round(median(direct_runs, "tokens_per_s"), 1),
        "first_token_overhead_pct": round(
            100 * (median(rag_runs, "first_token_ms") / median(direct_runs, "first_token_ms") - 1), 1
        ),
        "throughput_overhead_pct": round(
            100 * (1 - median(rag_runs, "tokens_per_s") / median(direct_runs, "tokens_per_s")), 1
        ),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
