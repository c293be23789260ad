"""Record what the packaged models really write when asked for search queries (the
`search_queries` task), for tests/data/search_query_replies.json: the parsing tests read them.

    python bench/query_samples.py [MODEL ...] > tests/data/search_query_replies.json
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

from rag.backends.packaged_models import DEFAULT_MODEL
from rag.query_generation import query_writer
from rag.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
QA_SETS = ("sample-notes-qa", "k8s-tutorials-ko-qa", "k8s-tutorials-zh-cn-qa", "k8s-tutorials-ja-qa")
PER_SET = 2
COUNT = 3


def questions() -> list[str]:
    picked = []
    for name in QA_SETS:
        lines = (REPO / "data" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()
        picked += [json.loads(line)["question"] for line in lines[:PER_SET]]
    return picked


def main(models: list[str]) -> None:
    records = []
    with tempfile.TemporaryDirectory() as home:
        for model in models:
            writer = query_writer(load_settings(environ={}, cwd=Path(home), home=Path(home), llm={"model": model}))
            for question in questions():
                reply = writer.reply(question, COUNT)
                records.append({"model": model, "question": question, "count": COUNT, "reply": reply})
                print(f"{model}: {question}\n{reply}\n---", file=sys.stderr, flush=True)
    json.dump(records, sys.stdout, ensure_ascii=False, indent=1)
    print()


if __name__ == "__main__":
    main(sys.argv[1:] or [DEFAULT_MODEL, "qwen2.5-coder-0.5b-instruct", "gemma-3-270m"])
