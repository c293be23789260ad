"""`rag eval --answers`: answer quality of the whole ask pipeline on questions with known answers.

A QA file has one JSON object per line:

    {"id": "q01", "question": "...", "answers": ["accepted", "strings"], "source": "relative/path"}

`answers: []` marks a question the documents do not answer (the pipeline should decline it).
An answer is correct when an accepted string occurs in it, case and whitespace folded.
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from ingest.text import fold, words
from rag.errors import UsageError
from rag.grounding import CITATION
from rag.languages import says_declined

if TYPE_CHECKING:
    from rag.answering import Answer, Assistant
    from rag.settings import Settings



@dataclass(frozen=True)
class QAItem:
    id: str
    question: str
    answers: list[str]
    source: str | None

    @property
    def answerable(self) -> bool:
        return bool(self.answers)


@dataclass
class QuestionResult:
    id: str
    question: str
    answer: str
    answerable: bool
    correct: bool
    f1: float
    declined: bool
    gold_cited: bool | None  # None for a question without a source
    evidence_correct: bool | None  # None for an unanswerable question
    unsupported: list[str]
    evidence: list[str]
    sources: list[str]
    latency_ms: float
    first_token_ms: float | None  # None where the model was not asked (the gate declined)
    tokens_per_s: float | None

    def to_dict(self) -> dict[str, Any]:
        return {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items()}


@dataclass
class AnswerReport:
    questions: int
    answerable: int
    unanswerable: int
    # A share or median is None where there is nothing to count: no unanswerable question in the
    # file, no wrong answer to flag, no question that reached the model.
    accuracy: float | None  # answerable questions answered with an accepted string
    f1: float | None  # mean token F1 against the best accepted answer, answerable questions
    gold_cited: float | None  # answerable questions whose source file was among the answer's sources
    evidence_accuracy: float | None  # answerable questions whose quoted evidence holds an accepted string
    answered_when_answerable: float | None
    declined_when_unanswerable: float | None
    flagged_when_wrong: float | None  # wrong answers with a fact the grounding check flagged
    flagged_when_right: float | None  # right answers flagged anyway (false alarms)
    latency_p50_ms: float
    latency_p95_ms: float
    first_token_p50_ms: float | None  # of the questions that reached the model
    tokens_per_s_p50: float | None
    results: list[QuestionResult] = field(default_factory=list, repr=False)

    def to_dict(self, per_question: bool = False) -> dict[str, Any]:
        summary = {key: round(value, 4) if isinstance(value, float) else value for key, value in asdict(self).items() if key != "results"}
        if per_question:
            summary["results"] = [result.to_dict() for result in self.results]
        return summary


def load_qa(path: Path) -> list[QAItem]:
    """The questions of a QA file; a bad line is refused with its number and what is wrong."""
    try:
        lines = path.expanduser().read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise UsageError(f"Cannot read the QA file {path}: {exc.strerror or exc}.") from exc
    items: list[QAItem] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        where = f"{path}, line {number}"
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{where} is not JSON ({exc.msg}).") from exc
        if not isinstance(data, dict) or not isinstance(data.get("question"), str) or not data["question"].strip():
            raise UsageError(f'{where}: each line needs {{"id", "question", "answers": [...], "source"}}.')
        if "answers" not in data:
            raise UsageError(f'{where}: "answers" is missing: list the accepted answers, or [] for a question the documents do not answer.')
        answers = data["answers"]
        if not isinstance(answers, list) or not all(isinstance(a, str) and a.strip() for a in answers):
            raise UsageError(f'{where}: "answers" must be a list of strings ([] for a question the documents do not answer).')
        items.append(QAItem(str(data.get("id", number)), data["question"], answers, data.get("source")))
    duplicates = [key for key, count in Counter(item.id for item in items).items() if count > 1]
    if duplicates:
        raise UsageError(f"{path}: question ids must be unique; repeated: {', '.join(duplicates[:5])}.")
    if not items:
        raise UsageError(f"{path} holds no questions.")
    return items


def is_declined(answer: str) -> bool:
    return not answer.strip() or says_declined(answer)


def contains_answer(text: str, accepted: Iterable[str]) -> bool:
    folded = fold(text)
    return any(fold(candidate) in folded for candidate in accepted)


def token_f1(answer: str, accepted: Iterable[str]) -> float:
    """SQuAD's token F1 against the best-matching accepted answer (citation markers left out)."""
    predicted = Counter(words(CITATION.sub(" ", answer)))
    best = 0.0
    for candidate in accepted:
        gold = Counter(words(candidate))
        common = sum((predicted & gold).values())
        if common:
            precision, recall = common / sum(predicted.values()), common / sum(gold.values())
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def source_matches(source: str, gold: str, docs_dir: Path | None) -> bool:
    if docs_dir is not None:
        return Path(source) == (docs_dir / gold).resolve()
    return Path(source).as_posix().endswith("/" + gold.lstrip("/"))


def judge(item: QAItem, answer: "Answer", docs_dir: Path | None) -> QuestionResult:
    declined = is_declined(answer.answer)
    sources = [doc.metadata["source"] for doc in answer.sources]
    evidence = [quote.text for quote in answer.evidence]
    return QuestionResult(
        id=item.id,
        question=item.question,
        answer=answer.answer.strip(),
        answerable=item.answerable,
        # An answer rag retracted (its asked-for fact is in no source) is a decline, whatever it guessed.
        correct=item.answerable and not answer.retracted and contains_answer(answer.answer, item.answers),
        f1=token_f1(answer.answer, item.answers) if item.answerable and not answer.retracted else 0.0,
        declined=declined,
        gold_cited=any(source_matches(s, item.source, docs_dir) for s in sources) if item.source else None,
        evidence_correct=contains_answer(" ".join(evidence), item.answers) if item.answerable else None,
        unsupported=answer.unsupported,
        evidence=evidence,
        sources=sources,
        latency_ms=answer.timings.get("total_ms", 0.0),
        first_token_ms=answer.timings.get("first_token_ms"),
        tokens_per_s=answer.timings.get("tokens_per_s"),
    )


def _median(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _share(values: list[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(results: list[QuestionResult]) -> AnswerReport:
    answerable = [r for r in results if r.answerable]
    unanswerable = [r for r in results if not r.answerable]
    wrong = [r for r in answerable if not r.correct and not r.declined]
    right = [r for r in answerable if r.correct]
    latencies = sorted(r.latency_ms for r in results)
    return AnswerReport(
        questions=len(results),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        accuracy=_share([r.correct for r in answerable]),
        f1=statistics.fmean(r.f1 for r in answerable) if answerable else None,
        gold_cited=_share([bool(r.gold_cited) for r in answerable if r.gold_cited is not None]),
        evidence_accuracy=_share([bool(r.evidence_correct) for r in answerable]),
        answered_when_answerable=_share([not r.declined for r in answerable]),
        declined_when_unanswerable=_share([r.declined for r in unanswerable]),
        flagged_when_wrong=_share([bool(r.unsupported) for r in wrong]),
        flagged_when_right=_share([bool(r.unsupported) for r in right]),
        latency_p50_ms=latencies[len(latencies) // 2],
        latency_p95_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
        first_token_p50_ms=_median([r.first_token_ms for r in results]),
        tokens_per_s_p50=_median([r.tokens_per_s for r in results]),
        results=results,
    )


def docs_settings(settings: "Settings", folder: Path) -> "Settings":
    """The settings of the documents' own collection: an evaluation never touches the user's."""
    name = "".join(c if c.isalnum() else "-" for c in folder.name).strip("-") or "docs"
    return settings.model_copy(update={"collection": f"answers-{name}"[:60]})


def evaluate_answers(
    items: list[QAItem],
    assistant: "Assistant",
    docs_dir: Path | None = None,
    on_result: Callable[[QuestionResult], None] | None = None,
) -> AnswerReport:
    """Ask every question through `assistant` and score the answers."""
    results = []
    for item in items:
        result = judge(item, assistant.ask(item.question), docs_dir)
        results.append(result)
        if on_result:
            on_result(result)
    return summarize(results)
