"""Re-grade saved answers with today's checks, generating nothing.

    .venv/bin/python bench/regrade.py ANSWERS.jsonl [--home DIR] [--language ko ...] [--save OUT.jsonl]

ANSWERS is a file `bench/answers.py --languages --answers FILE` wrote. Each of its rows is asked
again through the real pipeline (the same documents, index, retrieval, prompt fit, evidence,
grounding check, retraction and decline rules), with the default backend's model loaded as usual
but its llama.cpp client replaying the reply the row saved for each question instead of
generating. What changed after the reply (the checks, the grading) then shows on exactly the same
replies, in minutes instead of the hour a generating run takes; a change before the reply (the
prompt, retrieval) needs a generating run. Prints the saved figures and today's side by side, and
each question whose grade changed.

--home keeps each QA set's index between runs (built on first use, synced after); --save writes
each set's regraded results, question by question; --prompts writes every prompt the model was
given, by set and question: two runs' files (before and after a change to retrieval or the prompt)
name the questions whose prompts changed, the only ones a generating run can answer differently.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from answers import QA_SETS, in_language  # noqa: E402
from rag.cli.evaluate import figure  # noqa: E402

FIGURES = [
    ("accuracy", "acc"), ("evidence_accuracy", "evid"), ("answered_when_answerable", "answd"),
    ("declined_when_unanswerable", "decl"), ("flagged_when_wrong", "flagW"), ("flagged_when_right", "flagR"),
]


def model_reply(answer: str) -> str:
    """What the model wrote: a saved answer less what rag appended to it (a retraction, or what it
    says after a reply that repeats the question or is only a source's number). Replayed with it,
    a reply that was only "[1]" would no longer be one."""
    from rag.languages import languages

    openings = {
        template.split("{", 1)[0]
        for texts in languages().values()
        for template in (
            texts.unsupported_answer, texts.off_subject_answer, texts.repeated_question, texts.repeated_question_quote,
            texts.cited_only,
        )
    }
    cut = max(answer.rfind(f"\n\n{opening}") for opening in openings)
    return answer[:cut] if cut > 0 else answer


class ReplayClient:
    """A llama_cpp.Llama that answers a prompt with the saved reply to the question it holds."""

    def __init__(self, real: Any, replies: dict[str, str]):
        self._real = real
        self._replies = replies
        self.prompts: dict[str, list[str]] = {}  # question -> the prompts given for it, in order

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def __call__(self, prompt: str, stream: bool = False, **_: Any) -> Any:
        asked = max((question for question in self._replies if question in prompt), key=len)
        self.prompts.setdefault(asked, []).append(prompt)
        part = {"choices": [{"text": self._replies[asked], "logprobs": None, "finish_reason": "stop"}]}
        return iter([part]) if stream else part


def regrade(row: dict[str, Any], home: Path) -> dict[str, Any]:
    import rag
    from rag import answer_eval
    from rag.answering import Assistant

    language = row["language"]
    name = row.get("set", language)  # rows saved before there were two sets of a language name it by language
    qa_set = next(candidate for candidate in QA_SETS if candidate.name == name)
    chunk_tokens = row.get("chunk_tokens")
    settings = rag.load_settings(
        environ={}, home=home / f"{name}-{chunk_tokens or 'default'}", llm={"temperature": 0},
        chunking={"chunk_tokens": None if chunk_tokens in (None, "default") else int(chunk_tokens)},
    )
    folder = qa_set.documents(home).resolve()
    settings = answer_eval.docs_settings(settings, folder)
    rag.ingest([folder], settings)
    assistant = Assistant(settings)
    replies = {result["question"]: model_reply(result["answer"]) for result in row["results"]}
    client = assistant.llm.client = ReplayClient(assistant.llm.client, replies)
    items = answer_eval.load_qa(qa_set.qa)
    report = answer_eval.evaluate_answers(items, assistant, folder)
    results = [vars(result) for result in report.results]
    figures = {key: getattr(report, key) for key, _ in FIGURES}
    prompts = {result["id"]: client.prompts.get(result["question"], []) for result in results}
    return {
        "set": name, "language": language, **figures, "in_question_language": in_language(language, results),
        "results": results, "prompts": prompts,
    }


def changes(before: list[dict], after: list[dict]) -> Iterator[str]:
    saved = {result["id"]: result for result in before}
    for result in after:
        old = saved.get(result["id"])
        if old is None:
            continue
        grade = ("correct", "declined", "evidence_correct")
        if any(old[key] != result[key] for key in grade) or old["answer"] != result["answer"]:
            was = " ".join(f"{key}={old[key]}" for key in grade)
            now = " ".join(f"{key}={result[key]}" for key in grade)
            answer = " ".join(result["answer"].split())[:200]
            yield f"  {result['id']}: {was} -> {now}\n    {answer}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("answers", type=Path, help="a file bench/answers.py --answers wrote")
    parser.add_argument("--home", type=Path, help="keep each QA set's index under this folder")
    parser.add_argument("--language", action="append", help="only these QA sets or languages")
    parser.add_argument("--save", type=Path, help="also write each set's regraded results here (JSONL, as bench/answers.py --answers does)")
    parser.add_argument("--prompts", type=Path, help="also write every prompt the model was given here (JSONL: a set's per line)")
    args = parser.parse_args()
    rows = [json.loads(line) for line in args.answers.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if "results" in row and (not args.language or {row["language"], row.get("set")} & set(args.language))]
    with tempfile.TemporaryDirectory(prefix="rag-regrade-") as tmp:
        home = args.home or Path(tmp)
        table = [f"{'set':9} {'':6}" + "".join(f"{label:>7}" for _, label in FIGURES) + f"{'lang':>7}"]
        for row in rows:
            now = regrade(row, home)
            prompts = now.pop("prompts")
            for path, line in ((args.save, now), (args.prompts, {"set": now["set"], "prompts": prompts})):
                if path:
                    with path.open("a") as fh:
                        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
            for name, figures in (("saved", row), ("now", now)):
                values = [*(figures[key] for key, _ in FIGURES), figures.get("in_question_language")]
                table.append(f"{row.get('set', row['language']):9} {name:6}" + "".join(figure(value, ">7.3f") for value in values))
            print("\n".join([*table[-2:], *changes(row["results"], now["results"])]), flush=True)
        print("\n".join(table))


if __name__ == "__main__":
    main()
