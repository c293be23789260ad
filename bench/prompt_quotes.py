"""Do the answer prompt's quoted sentences hold the answer? Per language, no model needed.

    .venv/bin/python bench/prompt_quotes.py [--language ko ...] [--home DIR]

The answer prompt repeats the sentences of the sources that best match the question (up to
three, `rag.answering.PROMPT_QUOTES`) before the question; a small model answers from them far
more often than from the whole sources. Each language's documents (those of bench/answers.py) are
ingested with rag's defaults into a RAG_HOME (temporary, or --home to keep it between runs), each
answerable question of the QA set is retrieved with rag's own retriever, and its quotes are chosen
as the prompt chooses them. A question counts when the quotes hold one of its accepted answers
(folded: case and whitespace). The baseline column chooses runners-up as the shown evidence does
(`rag.evidence.RUNNER_UP_SHARE`), which is how the prompt chose them before; "misses" lists the
questions the shipped setting fails. Takes about a minute on two cores once the indexes exist.
"""

from __future__ import annotations

import json
from pathlib import Path

from answers import indexed_settings, language_homes, language_options

import rag
from ingest.text import fold
from rag.answer_eval import load_qa
from rag.answering import PROMPT_QUOTES, PROMPT_RUNNER_UP_SHARE
from rag.evidence import RUNNER_UP_SHARE, quote_evidence
from rag.retrieval import embed_texts


def quotes_hold_answers(language: str, qa: Path, docs: Path, home: Path) -> dict:
    settings = indexed_settings(docs, home)
    retriever = rag.retriever(settings)
    held = {"baseline": 0, "shipped": 0}
    misses, total = [], 0
    for question in load_qa(qa):
        if not question.answers:
            continue
        total += 1
        sources = retriever.invoke(question.question)
        for name, share in (("baseline", RUNNER_UP_SHARE), ("shipped", PROMPT_RUNNER_UP_SHARE)):
            quotes = quote_evidence(
                question.question, "", sources, lambda texts: embed_texts(texts, settings),
                max_quotes=PROMPT_QUOTES, runner_up_share=share,
            )
            text = fold(" ".join(quote.text for quote in quotes))
            found = any(fold(answer) in text for answer in question.answers)
            held[name] += found
            if name == "shipped" and not found:
                misses.append(question.id)
    return {"language": language, "questions": total, **{name: round(count / total, 3) for name, count in held.items()}, "misses": misses}


def main() -> None:
    languages, base = language_options(__doc__.splitlines()[0], "rag-prompt-quotes-")
    print(f"{'set':<9}{'questions':>10}{'baseline':>10}{'shipped':>9}  misses (shipped)")
    for qa_set, home in language_homes(languages, base):
        row = quotes_hold_answers(qa_set.name, qa_set.qa, qa_set.docs, home)
        print(f"{row['language']:<9}{row['questions']:>10}{row['baseline']:>10.2f}{row['shipped']:>9.2f}  {' '.join(row['misses'])}")
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
