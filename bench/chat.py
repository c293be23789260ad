"""Follow-up questions in a conversation, per language: rewritten, and answered right?

    .venv/bin/python bench/chat.py [--language ko ...] [--home DIR]

Each dialog of data/chat-qa.jsonl is a first question and a follow-up that refers back to it
("And what is the part number of its door gasket?"), over the documents of bench/answers.py for
its language (the sample notes; the Kubernetes tutorials in ../shared/data/cjkdocs). The first
question is asked, then the follow-up with that turn as the conversation, as `rag chat` asks it:
the model is asked to rewrite the follow-up as a standalone question, and rag keeps the rewrite
when it is a question in the follow-up's language that names something of the conversation;
otherwise the previous question and the follow-up, together, are what is searched and asked.

Printed per language: the follow-ups whose rewrite was kept, those answered right (an accepted
answer in the answer, which rag did not retract), and beside them, in the same run, the baseline
of asking the previous question and the follow-up together without a rewrite; then the seconds a
follow-up took (p50, the rewrite included). The default model, greedy.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from answers import indexed_settings, language_homes, language_options  # noqa: E402

DIALOGS = REPO / "data" / "chat-qa.jsonl"


def run_language(language: str, dialogs: list[dict], docs: Path, home: Path) -> dict:
    from rag.answer_eval import contains_answer
    from rag.answering import Answer, Assistant

    assistant = Assistant(indexed_settings(docs, home, llm={"temperature": 0}))

    def right(answer: Answer, accepted: list[str]) -> bool:
        return not answer.retracted and contains_answer(answer.answer, accepted)

    rewritten = shipped = together = 0
    seconds = []
    for dialog in dialogs:
        first = assistant.ask(dialog["first"])
        started = time.perf_counter()
        follow_up = assistant.ask(dialog["follow_up"], [(dialog["first"], first.answer.strip())])
        seconds.append(time.perf_counter() - started)
        combined = f"{dialog['first']} {dialog['follow_up']}"
        kept = follow_up.standalone_question != combined
        baseline = assistant.ask(combined) if kept else follow_up
        rewritten += kept
        shipped += right(follow_up, dialog["answers"])
        together += right(baseline, dialog["answers"])
        print(
            f"  {dialog['id']}: {'rewritten' if kept else 'together'} -> {follow_up.standalone_question!r}; "
            f"right {right(follow_up, dialog['answers'])} (together {right(baseline, dialog['answers'])})",
            flush=True,
        )
    count = len(dialogs)
    return {
        "language": language, "dialogs": count, "rewritten": rewritten / count, "right": shipped / count,
        "right_together": together / count, "follow_up_s_p50": round(statistics.median(seconds), 1),
    }


def main() -> None:
    languages, base = language_options(__doc__.splitlines()[0], "rag-chat-bench-")
    dialogs = [json.loads(line) for line in DIALOGS.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = []
    for qa_set, home in language_homes(languages, base):
        dialogs_here = [dialog for dialog in dialogs if dialog["language"] == qa_set.name]
        if dialogs_here:
            rows.append(run_language(qa_set.name, dialogs_here, qa_set.docs, home))
            print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'language':<9}{'dialogs':>8}{'rewritten':>10}{'right':>7}{'together':>9}{'s p50':>7}")
    for row in rows:
        print(
            f"{row['language']:<9}{row['dialogs']:>8}{row['rewritten']:>10.2f}{row['right']:>7.2f}"
            f"{row['right_together']:>9.2f}{row['follow_up_s_p50']:>7}"
        )


if __name__ == "__main__":
    main()
