"""Answer benchmark: every packaged model x prompt variant on the project's QA set, in one run.

    .venv/bin/python bench/answers.py [--qa data/sample-notes-qa.jsonl] [--docs data/sample-notes]
                                      [--only MODEL[:QA_PROMPT[:STYLE]] ...] [--limit N]

Each candidate is a real `rag eval --answers` process (so its peak RSS is its own) against the
same index of the sample notes, built once in a temporary RAG_HOME. Prints one table (answer
accuracy, evidence accuracy, answered/declined rates, grounding flags, time to first token,
tokens/s, latency, peak RSS) and one JSON line per candidate. A packaged model that is not
installed is reported as such, not skipped silently.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# (packaged model, qa prompt, prompt style): every model with each question prompt in the format
# the selector picks for it ("auto": the base model's plain prompt, the instruct models' own chat
# templates); the few-shot prompt is for the base model.
CANDIDATES = [
    ("gemma-3-270m", "qa", "auto"),
    ("gemma-3-270m", "qa_fewshot", "auto"),
    ("gemma-3-270m", "qa_quotes", "auto"),
    ("smollm2-135m-instruct", "qa", "auto"),
    ("smollm2-135m-instruct", "qa_quotes", "auto"),
    ("qwen2.5-coder-0.5b-instruct", "qa", "auto"),
    ("qwen2.5-coder-0.5b-instruct", "qa_quotes", "auto"),
]
COLUMNS = [
    ("accuracy", "acc"), ("f1", "F1"), ("evidence_accuracy", "evid"), ("gold_cited", "cited"),
    ("answered_when_answerable", "answd"), ("declined_when_unanswerable", "decl"),
    ("flagged_when_wrong", "flagW"), ("flagged_when_right", "flagR"),
]


def run_candidate(model: str, qa_prompt: str, style: str, qa: Path, docs: Path, home: Path) -> dict:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
        "RAG_HOME": str(home), "RAG_LLM__QA_PROMPT": qa_prompt, "RAG_LLM__PROMPT_STYLE": style,
        "RAG_LLM__TEMPERATURE": "0",
    }
    command = [str(Path(sys.executable).parent / "rag"), "eval", "--answers", str(qa), str(docs), "--json", "-v", "--model", model]
    with tempfile.TemporaryFile("w+") as stdout_file, tempfile.TemporaryFile("w+") as stderr_file:
        process = subprocess.Popen(command, env=env, stdout=stdout_file, stderr=stderr_file, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak RSS, not the largest child's so far
        stdout_file.seek(0)
        stderr_file.seek(0)
        stdout, stderr = stdout_file.read(), stderr_file.read()
    returncode = os.waitstatus_to_exitcode(status)
    result = {"model": model, "qa_prompt": qa_prompt, "prompt_style": style}
    if returncode != 0:
        return {**result, "error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"}
    report = json.loads(stdout)
    answers = report.pop("results")
    return {**result, **report, "peak_rss_mb": usage.ru_maxrss / 1024, "results": answers}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--qa", type=Path, default=REPO / "data" / "sample-notes-qa.jsonl")
    parser.add_argument("--docs", type=Path, default=REPO / "data" / "sample-notes")
    parser.add_argument("--only", nargs="*", help="MODEL[:QA_PROMPT[:STYLE]] candidates instead of the default list")
    parser.add_argument("--limit", type=int, help="the first N questions only (a quicker, noisier run)")
    parser.add_argument("--answers", type=Path, help="also write every candidate's per-question results here (JSONL)")
    args = parser.parse_args()
    candidates = CANDIDATES
    if args.only:
        defaults = ("", "qa_quotes", "auto")
        candidates = [tuple(spec.split(":") + list(defaults[len(spec.split(":")) :])) for spec in args.only]
    with tempfile.TemporaryDirectory(prefix="rag-answers-bench-") as tmp:
        qa = args.qa
        if args.limit:
            qa = Path(tmp) / "qa.jsonl"
            qa.write_text("\n".join(args.qa.read_text().splitlines()[: args.limit]) + "\n")
        home = Path(tmp) / "home"
        rows = []
        for model, qa_prompt, style in candidates:
            row = run_candidate(model, qa_prompt, style, qa, args.docs.resolve(), home)
            answers = row.pop("results", [])
            if args.answers:
                with args.answers.open("a") as fh:
                    fh.write(json.dumps({**row, "results": answers}) + "\n")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(f"{'model':<30}{'prompt':<11}" + "".join(f"{short:>7}" for _, short in COLUMNS) + f"{'TTFT ms':>9}{'tok/s':>7}{'p50 s':>7}{'RSS MB':>8}")
    for row in rows:
        head = f"{row['model']:<30}{row['qa_prompt']:<11}"
        if "error" in row:
            print(head + f"  {row['error']}")
            continue
        print(
            head + "".join(f"{row[key]:>7.3f}" for key, _ in COLUMNS)
            + f"{row['first_token_p50_ms']:>9.0f}{row['tokens_per_s_p50']:>7.1f}{row['latency_p50_ms'] / 1000:>7.2f}"
            + f"{row['peak_rss_mb']:>8.0f}"
        )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
