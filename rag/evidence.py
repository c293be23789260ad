"""Quoted evidence: the sentences of an answer's sources that support it, with where they are.

Model-independent: every sentence of the retrieved chunks is scored against the question (by
meaning, with the same embedding model as retrieval, and by the question's rarer words) and
against the answer (the answer's own words and numbers), and the best are quoted verbatim with
their citation. Whatever the model wrote, even a wrong answer, the user sees the passage to check.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from ingest.chunking.lines import added_lines
from ingest.index.keywords import cjk_terms
from ingest.scripts import CJK_RUN, cjk_language, columns, one_line
from ingest.text import fold, stems
from rag.grounding import QUOTE_CUT, answer_facts, dates_in
from rag.languages import detect_language, texts
from rag.retrieval import location_label, location_of

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.documents import Document

# How much each signal counts: set by hand, checked against the evidence accuracy that
# bench/answers.py measures on data/sample-notes-qa.jsonl.
MEANING_WEIGHT = 0.45
QUESTION_WORDS_WEIGHT = 0.35
ANSWER_WORDS_WEIGHT = 0.2
# The share of the answer's own facts (numbers, dates, codes, names the question does not hold)
# that a passage states: the sentence an answer's fact comes from is its evidence, however few of
# the question's words it repeats (the sentence that best matches the question is quoted too).
ANSWER_FACTS_WEIGHT = 0.5
# A sentence of a higher-ranked source wins a near tie.
RANK_PENALTY = 0.02
# A passage of the kind of fact the question asks for (a date for "when") gains this much.
KIND_BONUS = 0.1
# A passage that only repeats the question's words (a title, "Subject: ...") loses this much.
NOTHING_NEW_PENALTY = 0.1
# Two sentences quoted together must beat either alone by this much.
PAIR_PENALTY = 0.03
MAX_QUOTES = 2
# A second quote must score at least this share of the best one.
RUNNER_UP_SHARE = 0.85
MAX_SENTENCE_CHARS = 400
MIN_SENTENCE_CHARS = 8
# A line at least this long that ends without punctuation is taken to be hard-wrapped prose.
WRAPPED_LINE_CHARS = 50

# A sentence ends at . ! ? followed by space and a capital, digit or quote, or at a line that
# starts a list item, a table row, a new field ("Who: ...") or follows a blank line.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
_NEW_UNIT_LINE = re.compile(r"^\s*([-*+•|>#]|\d+[.)]\s|[A-Z][\w /()-]{0,30}:\s|$)")
_TIME = re.compile(r"\b\d{1,2}[:.]\d{2}\b")
_DIGITS = re.compile(r"[\w-]*\d[\w.,-]*")
# Code as Markdown marks it: `inline`, or a fenced block (whose closing fence a sentence may not reach).
_CODE = re.compile(r"`+([^`]+)`*")
_FENCE = re.compile(r"\s*(```|~~~)")


@dataclass
class Evidence:
    """One quoted sentence: its text as the source has it, the source's number and location."""

    text: str
    source_number: int  # 1-based, as cited in the answer
    source: str
    location: dict[str, Any]
    score: float

    @property
    def location_label(self) -> str:
        return location_label(self.location)

    @property
    def cited(self) -> str:
        """The sentence after its source's number, as the prompt quotes it: "[2] The sentence." """
        return f"[{self.source_number}] {self.text}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "source_number": self.source_number,
            "source": self.source,
            "location": self.location,
            "score": round(self.score, 4),
        }


@dataclass
class _Passage:
    """One sentence, or two adjacent ones, of a source chunk's body."""

    text: str
    source_number: int
    document: "Document"
    start: int
    end: int


def sentence_spans(body: str, in_block: bool = False) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of a chunk body.

    Wrapped lines (a PDF's, a text file's) are joined; a line that starts a list item, a table
    row or a "Field: value" pair starts a new sentence, as does a blank line. A fenced code block
    is one piece, quoted with the sentence before it: that sentence introduces it ("start it with:"),
    and the block alone would be a command without what it is for. `in_block`: the body starts
    inside a block (a chunk's cited part, after the block's fence).
    """
    units: list[tuple[int, int, bool]] = [(0, 0, True)] if in_block else []  # (start, end, is a code block)
    offset = 0
    fence = "```" if in_block else ""
    lines = body.split("\n")
    for number, line in enumerate(lines):
        end = offset + len(line)
        opens = _FENCE.match(line)
        if opens and not fence and _closes_unseen_block(line, lines[number + 1 : number + 2]):
            opens = None
        if fence:
            units[-1] = (units[-1][0], end, True)
            if line.strip().startswith(fence):
                fence = ""
        elif opens:
            fence = opens.group(1)
            units.append((offset, end, True))
        elif line.strip():
            if units and not units[-1][2] and _continues(body[units[-1][0] : units[-1][1]], line, _opens_paragraph(body, units[-1][0])):
                units[-1] = (units[-1][0], end, False)
            else:
                units.append((offset, end, False))
        else:
            units.append((end, end, False))  # a blank line ends the unit before it
        offset = end + 1
    spans: list[tuple[int, int]] = []
    prose = False  # whether the last span is a sentence, which a block right after it belongs to
    for start, end, block in units:
        if block:
            introduced = prose and not body[spans[-1][1] : start].strip()
            spans.append((spans.pop()[0] if introduced else start, end))
            prose = False
        else:
            sentences = [(start + first, start + last) for first, last in _split_sentences(body[start:end]) if last > first]
            spans += sentences
            prose = prose or bool(sentences)
    return [(start, end) for start, end in spans if columns(body[start:end].strip()) >= MIN_SENTENCE_CHARS]


def _closes_unseen_block(fence_line: str, next_lines: list[str]) -> bool:
    """Whether a bare fence followed by a blank line closes a block that began before the text
    (a chunk may start at a block's last line): a block does not open onto a blank line."""
    return fence_line.strip() in ("```", "~~~") and (not next_lines or not next_lines[0].strip())


def cited_span(document: "Document") -> tuple[int, int]:
    """(start, end) characters of the part of a chunk body that is its file's cited lines."""
    body, metadata = document.page_content, document.metadata
    if "start_line" not in metadata or "end_line" not in metadata:
        return 0, len(body)
    top, bottom = added_lines(body, metadata["start_line"], metadata["end_line"])
    start = 0
    for _ in range(top):
        start = body.index("\n", start) + 1
    end = len(body)
    for _ in range(bottom):
        end = body.rindex("\n", 0, end)
    return start, max(start, end)


def _split_sentences(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences of one unit: text in Chinese, Japanese or Korean by sentencex's
    rules for its language (。！？ end a sentence with no space after them, Korean's . is followed by
    Hangul, not a capital), other text at . ! ? before a capital, digit or quote."""
    if CJK_RUN.search(text):
        from sentencex import get_sentence_boundaries

        return [
            (sentence["start_index"], sentence["start_index"] + len(sentence["text"].rstrip()))
            for sentence in get_sentence_boundaries(cjk_language(text), text)
        ]
    spans, cursor = [], 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((cursor, match.start()))
        cursor = match.end()
    return [*spans, (cursor, len(text))]


def _continues(unit: str, line: str, opens_paragraph: bool) -> bool:
    """Whether `line` wraps the sentence of `unit` (a PDF's or a text file's hard-wrapped prose).

    Not after a full stop or a colon, not a list item or a field, and not a capitalised line
    after a short one: that short line is a title of its own. A line's length is its width, as
    Korean and Chinese Markdown is wrapped at the same columns as English with half the letters.
    Korean, Chinese and Japanese have no capitals to tell a title by, and their Markdown is often
    wrapped after a clause however short: a short line of those scripts is a title only where it
    opens its paragraph (`opens_paragraph`: the unit follows a blank line or nothing)."""
    if _NEW_UNIT_LINE.match(line) or unit.rstrip().endswith((".", "!", "?", ":", ";", "。", "！", "？", "：", "；")):
        return False
    last_line = unit[unit.rfind("\n") + 1 :]
    if not opens_paragraph and CJK_RUN.match(line.lstrip()) and CJK_RUN.search(last_line):
        return True
    return line.lstrip()[:1].islower() or columns(last_line.strip()) >= WRAPPED_LINE_CHARS


def _opens_paragraph(body: str, start: int) -> bool:
    """Whether the line at `start` of `body` is the first of its paragraph."""
    if start == 0:
        return True
    previous_line_start = body.rfind("\n", 0, start - 1) + 1
    return not body[previous_line_start : start - 1].strip()


def _passages(sources: Sequence["Document"]) -> tuple[list[_Passage], int]:
    """Every sentence, then every pair of adjacent sentences (an answer may be the line after
    "Notes:" or the code under a comment), of `sources`; and how many are single sentences.

    A sentence that recurs in several parts (pages, sections) of one file is boilerplate (a page
    header, the title) and left out; one that recurs in overlapping chunks, or in a copy of the
    file elsewhere, is quoted once."""
    spans = [(number, doc, _cited_sentences(doc)) for number, doc in enumerate(sources, start=1)]
    parts_of: dict[str, set[tuple]] = {}
    for _, doc, doc_spans in spans:
        part = (doc.metadata.get("source"), doc.metadata.get("page"), doc.metadata.get("heading"))
        for start, end in doc_spans:
            parts_of.setdefault(fold(doc.page_content[start:end]), set()).add(part)
    boilerplate = {key for key, parts in parts_of.items() if len({source for source, _, _ in parts}) < len(parts)}
    singles, pairs = [], []
    quoted: set[str] = set()
    for number, doc, doc_spans in spans:
        body = doc.page_content
        kept = []
        for start, end in doc_spans:
            key = fold(body[start:end])
            if key not in boilerplate and key not in quoted:
                kept.append((start, end))
                quoted.add(key)
        for position, (start, end) in enumerate(kept):
            singles.append(_passage(number, doc, start, end))
            if position + 1 < len(kept):
                pairs.append(_passage(number, doc, start, kept[position + 1][1]))
    return singles + pairs, len(singles)


def _cited_sentences(document: "Document") -> list[tuple[int, int]]:
    """Sentence spans of a chunk body's cited lines: a line a split block added (a table header
    repeated, a fence) is not where it stands in the file, and is not quoted from there."""
    start, end = cited_span(document)
    fences_before = sum(1 for line in document.page_content[:start].split("\n") if _FENCE.match(line))
    spans = sentence_spans(document.page_content[start:end], in_block=fences_before % 2 == 1)
    return [(start + first, start + last) for first, last in spans]


def _passage(number: int, document: "Document", start: int, end: int) -> _Passage:
    text = one_line(document.page_content[start:end])
    if len(text) > MAX_SENTENCE_CHARS:
        text = text[: MAX_SENTENCE_CHARS - 1].rsplit(" ", 1)[0] + QUOTE_CUT
    return _Passage(text, number, document, start, end)


def _terms(text: str, question: bool = False) -> set[str]:
    """The stems of the words of `text`, and the bigrams of its Chinese, Japanese or Korean
    letters, whose runs are no words to compare (a question's: of its topic only)."""
    return stems(CJK_RUN.sub(" ", text)) | cjk_terms(text, question)


def _word_share(wanted: set[str], passage_words: set[str], weights: dict[str, float]) -> float:
    """The weighted share of `wanted` words that the passage has."""
    total = sum(weights.get(word, 1.0) for word in wanted)
    if not total:
        return 0.0
    return sum(weights.get(word, 1.0) for word in wanted & passage_words) / total


def _fact_share(facts: list[str], text: str) -> float:
    """The share of `facts` (folded) that `text` states."""
    if not facts:
        return 0.0
    folded = fold(text)
    return sum(fact in folded for fact in facts) / len(facts)


def expected_kind(question: str) -> str | None:
    """What kind of fact the question asks for (a time, a date, a number, a command or other
    code), as its language's words for asking say."""
    return texts(detect_language(question)).asked_kind(question)


def _has_kind(kind: str | None, text: str, question: str) -> bool:
    if kind == "time":
        return _TIME.search(text) is not None
    if kind == "date":
        return bool(dates_in(text)) or _TIME.search(text) is not None
    if kind == "number":
        return any(token not in question for token in _DIGITS.findall(text))
    if kind == "code":
        return any(token not in question for span in _CODE.findall(text) for token in span.split())
    return False


def quote_evidence(
    question: str,
    answer: str,
    sources: Sequence["Document"],
    embed: Callable[[list[str]], "np.ndarray"],
    max_quotes: int = MAX_QUOTES,
    runner_up_share: float = RUNNER_UP_SHARE,
) -> list[Evidence]:
    """The sentences of `sources` that best support `answer` to `question`, best first; each after
    the first scores at least `runner_up_share` of the first's score."""
    import numpy as np

    passages, single_count = _passages(sources)
    if not passages:
        return []
    words = [_terms(p.text) for p in passages]
    # Rare words say more: weight each by its inverse frequency among the sentences. A sentence is
    # read under its heading, so words of the question that name the page or section ("in the
    # ZooKeeper tutorial") are common to all its sentences and weigh little.
    headings = {id(p.document): _terms(p.document.metadata.get("heading") or "") for p in passages}
    frequency: dict[str, int] = {}
    for passage, passage_words in zip(passages[:single_count], words):
        for word in passage_words | headings[id(passage.document)]:
            frequency[word] = frequency.get(word, 0) + 1
    weights = {word: math.log(1 + single_count / count) for word, count in frequency.items()}
    question_words = _terms(question, question=True)
    answer_words = _terms(answer) - question_words
    facts = [fold(fact) for fact in answer_facts(answer, question)]
    kind = expected_kind(question)
    vectors = embed([question] + [p.text for p in passages])
    meaning = np.asarray(vectors[1:]) @ np.asarray(vectors[0])
    scored = []
    besides_facts = []
    for position, (passage, passage_words, similarity) in enumerate(zip(passages, words, meaning)):
        score = (
            MEANING_WEIGHT * float(similarity)
            + QUESTION_WORDS_WEIGHT * _word_share(question_words, passage_words, weights)
            + ANSWER_WORDS_WEIGHT * _word_share(answer_words, passage_words, weights)
            + KIND_BONUS * _has_kind(kind, passage.text, question)
            - NOTHING_NEW_PENALTY * (not passage_words - question_words)
            - PAIR_PENALTY * (position >= single_count)
            - RANK_PENALTY * (passage.source_number - 1)
        )
        besides_facts.append((score, passage))
        scored.append((score + ANSWER_FACTS_WEIGHT * _fact_share(facts, passage.text), passage))
    scored.sort(key=lambda pair: pair[0], reverse=True)
    best = scored[0][0]
    chosen: list[tuple[float, _Passage]] = []
    for score, passage in scored:
        if len(chosen) == max_quotes or score < best * runner_up_share:
            break
        if not any(_overlaps(passage, other) for _, other in chosen):
            chosen.append((score, passage))
    # The sentence that best matches the question stays quoted beside the one the answer's facts
    # come from: when the model took a fact from the wrong sentence, the reader sees both.
    score, passage = max(besides_facts, key=lambda pair: pair[0])
    if facts and max_quotes > 1 and not any(_overlaps(passage, other) for _, other in chosen):
        chosen = [*chosen[: max_quotes - 1], (score, passage)]
    return [_evidence(score, passage) for score, passage in chosen]


def _overlaps(one: _Passage, other: _Passage) -> bool:
    return one.document is other.document and one.start < other.end and other.start < one.end


def _evidence(score: float, passage: _Passage) -> Evidence:
    metadata = passage.document.metadata
    location = location_of(metadata)
    if "start_line" in location and "end_line" in location:
        body = passage.document.page_content
        first_cited, _ = cited_span(passage.document)
        line = location["start_line"] + body.count("\n", first_cited, passage.start)
        location = {**location, "start_line": line, "end_line": line + body.count("\n", passage.start, passage.end)}
    return Evidence(passage.text, passage.source_number, metadata["source"], location, score)
