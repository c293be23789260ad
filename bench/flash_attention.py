"""Flash attention in llama.cpp, off and on: `rag ask` in English and in Korean, side by side.

    .venv/bin/python bench/flash_attention.py [--model NAME] [--runs 2] [--rounds 2]
    .venv/bin/python bench/flash_attention.py --logits

Asks `bench/ask_bench.py`'s questions over the sample notes and the first questions of the Korean
"Run models locally" QA set over its guide (../shared/data/realdocs/langchain-local-llms, read in
place; Korean prompts run about twice as many tokens), through the whole rag pipeline with the
default model, `llm.llamacpp.flash_attn` off then on, alternated `--rounds` times in this one
process so that a slower stretch of the machine weighs on both alike. Prints a table of medians
(seconds to the first token, tokens per second of generation, seconds an answer) and one JSON line
per row, and says which answers differ: attention computed another way adds floats in another
order, which can turn a greedy answer.

`--logits`: how far flash attention moves each installed packaged model's next-token scores over
a real prompt (a sample note and a question on it; the Korean guide's opening and its first
question): the largest change of a logit, the share of positions whose likeliest next token stays,
and the largest total-variation distance between the two next-token distributions. On a CPU the
kernels add up the attention's values in half precision, and models differ in how much that moves
them; rag turns it on by default only for a model measured to answer as well with it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from answers import QA_SETS
from ask_bench import QUESTIONS
from llama_build import measure

REPO = Path(__file__).resolve().parents[1]
[KOREAN_GUIDE] = [qa_set for qa_set in QA_SETS if qa_set.name == "ko-guide"]
KOREAN_QUESTIONS = 4
RUNBOOK = REPO / "data" / "sample-notes" / "work" / "runbooks" / "harbor-ingest-runbook.md"
PROMPT_CHARACTERS = 1500


def korean_questions() -> list[str]:
    """The Korean guide QA set's first questions (the guide itself must be there too)."""
    from rag.answer_eval import load_qa

    if not KOREAN_GUIDE.docs.is_dir():
        raise SystemExit(f"needs the 'Run models locally' guide at {KOREAN_GUIDE.docs} (the shared data beside the checkout)")
    return [item.question for item in load_qa(KOREAN_GUIDE.qa)[:KOREAN_QUESTIONS]]


def corpora() -> list[tuple[str, Path, list[str]]]:
    """Each corpus's name, an index of it made with rag's defaults, and its questions."""
    import rag

    made = []
    for name, documents, questions in (
        ("English", REPO / "data" / "sample-notes", QUESTIONS),
        ("Korean", KOREAN_GUIDE.docs, korean_questions()),
    ):
        home = Path(tempfile.mkdtemp(prefix=f"rag-flash-attention-{name.lower()}-"))
        rag.ingest([documents], rag.load_settings(environ={}, cwd=home, home=home))
        made.append((name, home, questions))
    return made


def logit_drift() -> None:
    """Per installed packaged model and prompt: how flash attention moves the next-token scores."""
    import llama_cpp
    import numpy as np

    import rag
    from rag.backends.packaged_models import PACKAGED_MODELS, packaged_model_path
    from rag.errors import ModelNotFoundError

    guide = (KOREAN_GUIDE.docs / "local_llms.ko.md").read_text(encoding="utf-8")
    prompts = {
        "English": f"{RUNBOOK.read_text(encoding='utf-8')[:PROMPT_CHARACTERS]}\n\nQuestion: {QUESTIONS[3]}\nAnswer:",
        "Korean": f"{guide[:PROMPT_CHARACTERS]}\n\n질문: {korean_questions()[0]}\n답:",
    }
    cache = rag.load_settings(environ={}).cache_path
    print(f"{'model':28} {'prompt':8} {'largest logit change':>20} {'same likeliest':>14} {'largest TV':>10}")
    for name in PACKAGED_MODELS:
        try:
            path = packaged_model_path(name, cache)
        except ModelNotFoundError:
            print(f"{name:28} not installed")
            continue
        scores: dict[tuple[str, bool], np.ndarray] = {}
        for flash_attn in (False, True):
            model = llama_cpp.Llama(str(path), n_ctx=2048, flash_attn=flash_attn, logits_all=True, verbose=False)
            for language, text in prompts.items():
                tokens = model.tokenize(text.encode("utf-8"))
                model.reset()
                model.eval(tokens)
                scores[language, flash_attn] = np.array(model.scores[: len(tokens)], dtype=np.float64)
            model.close()
        for language in prompts:
            off, on = scores[language, False], scores[language, True]
            probabilities = [np.exp(s - s.max(1, keepdims=True)) for s in (off, on)]
            probabilities = [p / p.sum(1, keepdims=True) for p in probabilities]
            row = {
                "model": name,
                "prompt": language,
                "tokens": len(off),
                "largest_logit_change": round(float(np.abs(on - off).max()), 2),
                "same_likeliest": round(float((on.argmax(1) == off.argmax(1)).mean()), 3),
                "largest_total_variation": round(float(0.5 * np.abs(probabilities[0] - probabilities[1]).sum(1).max()), 3),
            }
            print(f"{name:28} {language:8} {row['largest_logit_change']:>20} {row['same_likeliest']:>14} {row['largest_total_variation']:>10}")
            print(json.dumps(row, ensure_ascii=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="a packaged model's name")
    parser.add_argument("--runs", type=int, default=2, help="runs per question in each round")
    parser.add_argument("--rounds", type=int, default=2, help="times flash attention is turned off and on")
    parser.add_argument("--logits", action="store_true", help="instead: how far it moves each packaged model's logits")
    options = parser.parse_args()
    if options.logits:
        logit_drift()
        return
    measured: dict[tuple[str, bool], list[dict]] = {}
    for name, home, questions in corpora():
        for round_number in range(options.rounds):
            for flash_attn in (False, True):
                print(f"{name}, round {round_number + 1}, flash attention {'on' if flash_attn else 'off'} ...", file=sys.stderr)
                result = measure(home, options.model, None, options.runs, questions, flash_attn=flash_attn)
                measured.setdefault((name, flash_attn), []).append(result)
    rows = []
    for (name, flash_attn), results in measured.items():
        rows.append({
            "questions": name,
            "flash_attn": flash_attn,
            **{key: round(statistics.median(r[key] for r in results), 2) for key in ("first_token_s", "tokens_per_s", "answer_s")},
            "answers": results[0]["answers"],
        })
    print(f"{'questions':9} {'flash attention':>15} {'first token s':>13} {'tokens/s':>8} {'answer s':>8}")
    for row in rows:
        print(f"{row['questions']:9} {'on' if row['flash_attn'] else 'off':>15} {row['first_token_s']:>13} {row['tokens_per_s']:>8} {row['answer_s']:>8}")
    for off, on in zip(rows[::2], rows[1::2]):
        for question, answer in on["answers"].items():
            if answer != off["answers"][question]:
                print(f"{on['questions']}, answered differently with flash attention: {question}\n  off: {off['answers'][question]!r}\n  on:  {answer!r}")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
