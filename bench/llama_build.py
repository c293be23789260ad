"""llama.cpp build and thread benchmark: `rag ask` with two builds of llama-cpp-python, side by side.

    .venv/bin/python bench/llama_build.py BASELINE.whl [CANDIDATE.whl] [--model NAME] [--runs 2]

Each wheel (the Makefile keeps one per set of build flags under ~/.cache/rag/wheels/; CANDIDATE
defaults to the llama-cpp-python installed here) is unpacked into a temporary folder and put first
on the path of a fresh process, which asks the sample notes `bench/ask_bench.py`'s questions through
the whole rag pipeline (`Assistant.ask`: retrieval, the prompt, the packaged model, the checks), with
generation on one thread (llama.cpp's own default on a two-core machine) and on rag's default
(one per physical core). Prompts are evaluated on every logical CPU in all four. Prints a table of
medians (seconds to the first token, tokens per second of generation, seconds an answer) and one
JSON line per row, and says where a build answered differently from the baseline: builds for
other instruction sets add floats in another order, which can turn a greedy answer.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from ask_bench import QUESTIONS

REPO = Path(__file__).resolve().parents[1]


def measure(home: Path, model: str, threads: int | None, runs: int, questions: list[str] = QUESTIONS, **llamacpp: bool) -> dict:
    """In this process: the questions asked `runs` times each; medians and the answers.
    `llamacpp`: other settings of the llama.cpp backend."""
    import llama_cpp

    import rag
    from rag.answering import Assistant

    llm = {"model": model, "temperature": 0.0, "llamacpp": {"n_threads": threads, **llamacpp}}
    settings = rag.load_settings(environ={}, cwd=home, home=home, llm=llm)
    assistant = Assistant(settings)
    assistant.ask(questions[0])  # warm-up: loads the embedding model and pages the model in
    rows, answers = [], {}
    for question in questions:
        for _ in range(runs):
            started = time.perf_counter()
            answer = assistant.ask(question)
            rows.append({**answer.timings, "answer_ms": (time.perf_counter() - started) * 1000})
            answers[question] = answer.answer
    return {
        "llama_cpp": str(Path(llama_cpp.__file__).parent),
        "threads": assistant.llm.client.n_threads,
        "first_token_s": round(statistics.median(row["first_token_ms"] for row in rows) / 1000, 2),
        "tokens_per_s": round(statistics.median(row["tokens_per_s"] for row in rows), 1),
        "answer_s": round(statistics.median(row["answer_ms"] for row in rows) / 1000, 2),
        "answers": answers,
    }


def run_with(wheel: Path | None, home: Path, model: str, threads: int | None, runs: int) -> dict:
    """`measure` in a fresh process whose llama_cpp is `wheel`'s (None: the installed one)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("RAG_")}
    with tempfile.TemporaryDirectory(prefix="rag-llama-build-") as unpacked:
        if wheel:
            zipfile.ZipFile(wheel).extractall(unpacked)
            for library in Path(unpacked).rglob("*.so*"):
                library.chmod(0o755)  # zip members lose their mode
            env["PYTHONPATH"] = os.pathsep.join([unpacked, str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        arguments = json.dumps({"home": str(home), "model": model, "threads": threads, "runs": runs})
        done = subprocess.run(
            [sys.executable, __file__, "--measure", arguments], env=env, capture_output=True, text=True, check=False
        )
    if done.returncode:
        raise SystemExit(f"the run with {wheel or 'the installed build'} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("baseline", type=Path, nargs="?", help="a llama-cpp-python wheel")
    parser.add_argument("candidate", type=Path, nargs="?", help="another wheel (default: the installed build)")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b-instruct", help="a packaged model's name")
    parser.add_argument("--runs", type=int, default=2, help="runs per question")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.measure:
        arguments = json.loads(options.measure)
        print(json.dumps(measure(Path(arguments["home"]), arguments["model"], arguments["threads"], arguments["runs"])))
        return
    if not options.baseline:
        parser.error("name the baseline's wheel")

    import rag

    home = Path(tempfile.mkdtemp(prefix="rag-llama-build-home-"))
    rag.ingest([REPO / "data" / "sample-notes"], rag.load_settings(environ={}, cwd=home, home=home))
    rows = []
    for name, wheel in (("baseline", options.baseline), ("candidate", options.candidate)):
        for threads in (1, None):
            print(f"{name}, {threads or 'default'} threads ...", file=sys.stderr)
            rows.append({"build": name, **run_with(wheel, home, options.model, threads, options.runs)})
    print(f"{'build':10} {'threads':>7} {'first token s':>13} {'tokens/s':>8} {'answer s':>8}  llama_cpp")
    for row in rows:
        print(
            f"{row['build']:10} {row['threads']:>7} {row['first_token_s']:>13} {row['tokens_per_s']:>8} "
            f"{row['answer_s']:>8}  {row['llama_cpp']}"
        )
    for row in rows[1:]:
        for question, answer in row["answers"].items():
            if answer != rows[0]["answers"][question]:
                print(f"{row['build']}, {row['threads']} threads, answered differently: {question}\n  {answer!r}")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
