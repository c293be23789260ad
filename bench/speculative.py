"""Speculative decoding for the default model: the 1.5B as it is, with prompt-lookup decoding, and
with the 0.5B as its draft model, beside the 0.5B alone, on the prompts rag builds.

    .venv/bin/python bench/speculative.py [--questions 6] [--max-tokens 128] [--languages en,ko]

Builds the prompts rag sends for the first --questions questions of each language's QA set
(bench/answers.py's sets, each ingested into a temporary home; the prompts are made without a
model) and answers each with every variant in turn, greedily, the KV cache reset before every
answer so each reads its whole prompt. Small models copy answer spans from the passages, which is
what prompt lookup (llama-cpp-python's LlamaPromptLookupDecoding: draft tokens taken from the
prompt's own n-grams) and a draft model bet on. Prints one table (time per answer p50/p95,
generated tokens/s p50, answers identical to the plain 1.5B's) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from answers import QASet, chosen_sets  # noqa: E402 (a sibling script)

LARGE, SMALL = "qwen2.5-coder-1.5b-instruct", "qwen2.5-coder-0.5b-instruct"


class DraftFromSmallModel:
    """A draft model for llama-cpp-python's speculative decoding: the next `tokens` tokens a smaller
    model of the same tokenizer writes greedily after the same tokens (its KV cache keeps the prefix)."""

    def __init__(self, llama: Any, tokens: int = 4):
        self.llama = llama
        self.tokens = tokens

    def __call__(self, input_ids: np.ndarray, /, **kwargs: Any) -> np.ndarray:
        drafted = []
        for token in self.llama.generate(list(input_ids), top_k=1, temp=0.0):
            drafted.append(token)
            if len(drafted) == self.tokens:
                break
        return np.array(drafted, dtype=np.intc)


def prompts_for(qa_set: QASet, count: int, home: Path) -> list[str]:
    """The prompts rag builds for the first `count` answerable questions (no model runs)."""
    from langchain_core.language_models.fake import FakeListLLM

    import rag
    from rag.answering import Assistant

    settings = rag.load_settings(home=home, llm={"prompt_style": "chatml"})
    rag.ingest([qa_set.docs], settings)
    assistant = Assistant(settings, llm=FakeListLLM(responses=["-"] * count))
    rows = [json.loads(line) for line in qa_set.qa.read_text().splitlines() if line.strip()]
    questions = [row["question"] for row in rows if row["answers"]][:count]
    return [prompt for prompt in (assistant.ask(question).prompt for question in questions) if prompt]


def answer(llama: Any, prompt: str, max_tokens: int) -> tuple[str, float, int]:
    llama.reset()
    started = time.perf_counter()
    result = llama(prompt, max_tokens=max_tokens, temperature=0.0, top_k=1, stop=["<|im_end|>", "<|im_start|>"])
    return result["choices"][0]["text"], time.perf_counter() - started, result["usage"]["completion_tokens"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=6, help="questions per language")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--languages", default="en,ko", help="comma-separated QA sets or languages (en, ko, zh, ja, ko-guide, zh-guide)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    options = parser.parse_args()

    import llama_cpp
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    from rag.backends.packaged_models import packaged_model_path
    from rag.settings import load_settings

    cache = load_settings().cache_path
    large, small = packaged_model_path(LARGE, cache), packaged_model_path(SMALL, cache)
    # rag fits its prompts to llm.n_ctx (2048 by default) less the answer's budget.
    common = {"n_ctx": 2048, "n_threads": options.threads, "seed": 0, "verbose": False}
    # A model with a draft checks the drafted tokens against its own logits for each of them, which
    # llama-cpp-python keeps only for a model made with logits_all.
    drafting = {**common, "logits_all": True}
    wanted = options.languages.split(",")
    with tempfile.TemporaryDirectory(prefix="rag-speculative-") as tmp:
        prompts = [
            prompt
            for qa_set in chosen_sets(wanted)
            for prompt in prompts_for(qa_set, options.questions, Path(tmp) / qa_set.name)
        ]
    print(f"{len(prompts)} prompts ...", file=sys.stderr)
    variants = {
        "1.5B": llama_cpp.Llama(model_path=str(large), **common),
        "1.5B + prompt lookup": llama_cpp.Llama(
            model_path=str(large), draft_model=LlamaPromptLookupDecoding(num_pred_tokens=10), **drafting
        ),
        "1.5B + 0.5B draft": llama_cpp.Llama(
            model_path=str(large), draft_model=DraftFromSmallModel(llama_cpp.Llama(model_path=str(small), **common)),
            **drafting,
        ),
        "0.5B": llama_cpp.Llama(model_path=str(small), **common),
    }
    runs: dict[str, list[tuple[str, float, int]]] = {name: [] for name in variants}
    for number, prompt in enumerate(prompts, start=1):
        for name, llama in variants.items():  # in turn, so background load falls on each alike
            runs[name].append(answer(llama, prompt, options.max_tokens))
        print(f"  {number}/{len(prompts)}", file=sys.stderr)
    plain = [text for text, _, _ in runs["1.5B"]]
    figures = {}
    for name, results in runs.items():
        seconds = [elapsed for _, elapsed, _ in results]
        figures[name] = {
            "answer_p50_s": round(statistics.median(seconds), 2),
            "answer_p95_s": round(statistics.quantiles(seconds, n=20, method="inclusive")[-1] if len(seconds) > 1 else seconds[0], 2),
            "tokens_per_s_p50": round(statistics.median(tokens / elapsed for _, elapsed, tokens in results), 1),
            "identical_to_1.5B": sum(text == same for (text, _, _), same in zip(results, plain)),
            "answers": len(results),
        }
    print(f"{'variant':<24}{'p50 s':>8}{'p95 s':>8}{'tok/s':>8}{'same as 1.5B':>14}")
    for name, row in figures.items():
        print(
            f"{name:<24}{row['answer_p50_s']:>8.2f}{row['answer_p95_s']:>8.2f}{row['tokens_per_s_p50']:>8.1f}"
            f"{row['identical_to_1.5B']:>9}/{row['answers']}"
        )
    print(json.dumps({"prompts": len(prompts), "max_tokens": options.max_tokens, "threads": options.threads, **figures}))


if __name__ == "__main__":
    main()
