"""Flash attention in llama.cpp, off and on: `rag ask` in English and in Korean, side by side.

    .venv/bin/python bench/flash_attention.py [--model NAME] [--runs 2] [--rounds 2]

Asks `bench/ask_bench.py`'s questions over the sample notes and the first questions of the Korean
"Run models locally" QA set over its guide (../shared/data/realdocs/langchain-local-llms, read in
place; Korean prompts run about twice as many tokens), through the whole rag pipeline with the
default model, `llm.llamacpp.flash_attn` off then on, alternated `--rounds` times in this one
process so that a slower stretch of the machine weighs on both alike. Prints a table of medians
(seconds to the first token, tokens per second of generation, seconds an answer) and one JSON line
per row, and says which answers differ: attention computed another way adds floats in another
order, which can turn a greedy answer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from llama_build import measure

REPO = Path(__file__).resolve().parents[1]
GUIDE = REPO.parent / "shared" / "data" / "realdocs" / "langchain-local-llms"
KOREAN_QA = REPO / "data" / "local-llms-guide-ko-qa.jsonl"
KOREAN_QUESTIONS = 4


def corpora() -> list[tuple[str, Path, list[str]]]:
    """Each corpus's name, an index of it made with rag's defaults, and its questions."""
    import rag
    from ask_bench import QUESTIONS

    if not GUIDE.is_dir():
        raise SystemExit(f"needs the 'Run models locally' guide at {GUIDE} (the shared data beside the checkout)")
    korean = [json.loads(line)["question"] for line in KOREAN_QA.read_text(encoding="utf-8").splitlines()[:KOREAN_QUESTIONS]]
    made = []
    for name, documents, questions in (("English", REPO / "data" / "sample-notes", QUESTIONS), ("Korean", GUIDE, korean)):
        home = Path(tempfile.mkdtemp(prefix=f"rag-flash-attention-{name.lower()}-"))
        rag.ingest([documents], rag.load_settings(environ={}, cwd=home, home=home))
        made.append((name, home, questions))
    return made


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="a packaged model's name")
    parser.add_argument("--runs", type=int, default=2, help="runs per question in each round")
    parser.add_argument("--rounds", type=int, default=2, help="times flash attention is turned off and on")
    options = parser.parse_args()
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
