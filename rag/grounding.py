"""The grounding check: facts in an answer that none of its sources contain.

A small model's typical error is a fact it made up: a date, an amount, a part number, a name.
Those are checkable without understanding the answer: each number, date, code and name in it
must occur in one of the sources it was given (a date in any spelling of the same day), and
every citation marker [n] must point to a source that exists. A fact asked for must also come from
a source about what the question names: "20Gi" for the Cassandra tutorial's claim size, taken from
the ZooKeeper page, is in a source but not an answer.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from bisect import bisect_right
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterable

from ingest.chunking.metadata import HEADING_SEPARATOR
from ingest.index.keywords import topic_parts
from ingest.scripts import CJK_RUN, HANGUL, unwrapped
from ingest.text import STOPWORDS, fold

MONTHS = {
    name: number
    for number, names in enumerate(
        (("january", "jan"), ("february", "feb"), ("march", "mar"), ("april", "apr"), ("may",), ("june", "jun"),
         ("july", "jul"), ("august", "aug"), ("september", "sep", "sept"), ("october", "oct"),
         ("november", "nov"), ("december", "dec")),
        start=1,
    )
    for name in names
}
_MONTH = r"(?:" + "|".join(sorted(MONTHS, key=len, reverse=True)) + r")\.?"
_DAY = r"(?:[0-3]?\d)(?:st|nd|rd|th)?"
# Chinese, Japanese and Korean dates (2025年6月18日, 2025년 6월 18일, 6月18日, 2025年6月) are read with
# their letters spaced apart, as the checks see them; 2025/6/18 and 2025. 6. 18. are theirs too.
_YEAR_MARK, _MONTH_MARK, _DAY_MARK = r"\s*(?:年|년)\s*", r"\s*(?:月|월)\s*", r"\s*(?:日|일)"
# What Korean, Chinese and Japanese write after a number to multiply it: 4,800만 원 is 48,000,000 won,
# 3億 is 300,000,000, 5천만 is 50,000,000; 1억 2,000만 is 120,000,000. Within a group of four
# digits, 백 and 천 (百, 千) count hundreds and thousands, and 만, 억 and 조 (万, 億, 兆) multiply the
# group before them: 4천8백만 is 48,000,000. (Read with the letters spaced apart.) English writes
# 48 million, which is 4,800만 too.
_GROUP_MULTIPLIERS = {"백": 100, "百": 100, "천": 1000, "千": 1000}
_CJK_MULTIPLIERS = {**_GROUP_MULTIPLIERS, "만": 10**4, "万": 10**4, "萬": 10**4, "억": 10**8, "亿": 10**8, "億": 10**8, "조": 10**12, "兆": 10**12}
_WORD_MULTIPLIERS = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_MULTIPLIERS = {**_CJK_MULTIPLIERS, **_WORD_MULTIPLIERS}
_DIGITS = r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"
_UNIT = rf"[{''.join(_CJK_MULTIPLIERS)}]+|(?:{'|'.join(_WORD_MULTIPLIERS)})\b"
_AMOUNT_PART = re.compile(rf"({_DIGITS})\s*({_UNIT})", re.IGNORECASE)
_AMOUNT = re.compile(rf"(?<![\w.,]){_AMOUNT_PART.pattern}(?:\s*{_AMOUNT_PART.pattern})*", re.IGNORECASE)
# A multiplier stated once for all the numbers of a table or list: "(단위: 만 원)", "单位：万元",
# "金额（万元）".
_STATED_MULTIPLIER = re.compile(
    rf"(?:단위|单位|單位|単位)\s*[:：]?\s*([{''.join(_CJK_MULTIPLIERS)}]+)|[(（]\s*([{''.join(_CJK_MULTIPLIERS)}]+)"
)
# The spaces _apart_from_cjk put around a date's or an amount's letters, taken out of it as shown
# (Korean keeps the space it writes after 년, 월 and 만).
_DIGIT_BESIDE_CJK_SPACE = re.compile(
    rf"(?<=\d) (?=[年月日년월일{''.join(_CJK_MULTIPLIERS)}])|(?<=[年月日百千万萬亿億兆]) (?=\d)"
)
_DATE_PATTERNS = (
    ("ymd", re.compile(rf"(?<!\d)(\d{{4}}){_YEAR_MARK}(\d{{1,2}}){_MONTH_MARK}(\d{{1,2}}){_DAY_MARK}")),
    ("ymd", re.compile(r"\b(\d{4})(?:-|/|\.\s?)(\d{1,2})(?:-|/|\.\s?)(\d{1,2})\b")),
    ("md", re.compile(rf"(?<!\d)(\d{{1,2}}){_MONTH_MARK}(\d{{1,2}}){_DAY_MARK}")),
    ("ym", re.compile(rf"(?<!\d)(\d{{4}}){_YEAR_MARK}(\d{{1,2}})\s*(?:月|월)")),
    ("slash", re.compile(r"\b(\d{1,2})[/.](\d{1,2})[/.](\d{4}|\d{2})\b")),
    ("dmy", re.compile(rf"\b({_DAY})(?:\s+of)?\s+({_MONTH})(?:,?\s+(\d{{4}}))?\b", re.IGNORECASE)),
    ("mdy", re.compile(rf"\b({_MONTH})\s+({_DAY})(?:,?\s+(\d{{4}}))?\b", re.IGNORECASE)),
    ("my", re.compile(rf"\b({_MONTH})\s+(\d{{4}})\b", re.IGNORECASE)),
)
# A time of day: 16:30, 4:30 pm, 4 PM; 오후 4시 30분, 下午4点半, 午後4時 (the CJK letters spaced apart,
# as the checks read them). A time without am or pm may be either half of the day.
_CLOCK = re.compile(
    r"(?<![\w:.])(?P<hour>[01]?\d|2[0-3])[:：](?P<minute>[0-5]\d)(?![\d:])(?:\s*(?P<meridiem>[ap](?:\.m\.|m\b)))?"
    r"|(?<![\w:.])(?P<bare_hour>1[0-2]|0?[1-9])\s*(?P<bare_meridiem>[ap](?:\.m\.|m\b))"
    r"|(?:(?P<cjk_meridiem>오전|오후|上午|下午|早上|晚上|午前|午後)\s*)?(?<![\w:.])(?P<cjk_hour>[01]?\d|2[0-3])\s*(?:시|点|點|時)"
    r"(?:\s*(?P<cjk_minute>[0-5]?\d)\s*(?:분|分)|\s*(?P<half>반|半))?",
    re.IGNORECASE,
)
_AFTERNOON = ("p", "오후", "下午", "晚上", "午後")
# A code: letters and digits mixed, or capitals joined by - _ / (PO-2023-0877, RO-350, LQ-Lab, v2.4.1).
_CODE = re.compile(r"\b(?=[\w./-]*\d)(?=[\w./-]*[A-Za-z])[A-Za-z0-9]+(?:[-_/.][A-Za-z0-9]+)*\b|\b[A-Z]{2,}(?:[-_/][A-Za-z0-9]+)+\b")
_NUMBER = re.compile(r"(?<![\w.,])\d{1,3}(?:[,  ]\d{3})+(?:\.\d+)?(?![\w])|(?<![\w.,])\d+(?:[.,]\d+)?(?![\w])")
# Names: a run of capitalised words; a run that opens a sentence needs two words to count. A name's
# letters are Latin ones: a Korean or Japanese particle written onto it ("Always일") is no part of it.
_NAME_CHAR = r"[A-Za-z0-9\u00C0-\u024F'’-]"
_NAME = re.compile(rf"\b[A-Z]{_NAME_CHAR}*[a-z]{_NAME_CHAR}*(?:\s+(?:[A-Z]{_NAME_CHAR}+|(?:of|de|von|van|der)\b))*\s*")
# An acronym ("IPVS", "HPA", "CEO"): a name a question may ask about, which a source may write in
# any case (`cpu: 100m`). Questions alone are read for them: an answer writes "CPU" for that `cpu`.
# Two capitals are mostly units and generic words (MB, IP, OS); part of a code (RO-350,
# CASSANDRA_CLUSTER_NAME), a word or a link is no acronym of its own.
_ACRONYM = re.compile(r"(?<![A-Za-z0-9\u00C0-\u024F_./=?#&-])[A-Z]{3,}(?![A-Za-z0-9\u00C0-\u024F_/-]|\.\w)")
# A Roman numeral ("section III") counts, it names nothing.
_ROMAN_NUMERAL = re.compile(r"M{0,3}(?:CM|CD|D?C{0,3})(?:XC|XL|L?X{0,3})(?:IX|IV|V?I{0,3})")
# A Markdown ordered list item's number ("3. Restart the pod"): the answer's own numbering, no fact.
_LIST_NUMBER = re.compile(r"^[ \t]*\d{1,9}[.)](?=[ \t])", re.MULTILINE)
# A citation marker, "[2]".
CITATION = re.compile(r"\[(\d+)\]")
# A line as the prompt quotes a source's sentence: "[2] The sentence."
QUOTE_LINE = re.compile(r"\s*\[\d+\]\s+(.*)")
# Where a quoted sentence too long to quote whole is cut: a model that copies the quote copies it too.
QUOTE_CUT = "…"
# A placeholder of a command or path the reader fills in (`kubectl logs <pod-name>`), with the
# separator that joins it: no fact, so a template is held where the text around it is.
_PLACEHOLDER = re.compile(r"[/.:=-]?<[A-Za-z_][\w-]*>[/.:=-]?")
# A code block's comment lines say what its code does: the model's words, not a command to find.
_COMMENT_OPENINGS = ("#", "//")
# Inline code as Markdown marks it: a command or literal the answer quotes must be one a source has.
_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_QUANTITY = re.compile(r"(\d+(?:[.,]\d+)?)\s?([A-Za-z]{1,3})")
# The claims that answer a question asking for a time, a date, a command or a number: a port may be
# written as a number or inside a command, a time as a date's part.
ANSWER_KINDS = {"time": ("time", "number", "date"), "date": ("date", "number"), "code": ("code", "number"), "number": ("number", "code")}
_WEEKDAYS = {"monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"}
# A term a question may name its document by: a Latin-script word with a capital or a digit
# ("Cassandra", "RO-350"), which Korean, Chinese and Japanese questions write as the page does.
_SUBJECT_TERM = re.compile(r"[A-Za-z][\w.-]*[A-Za-z0-9]")
# Markdown's blocks that hold no other block: an answer's paragraphs, list items' text, code blocks, headings.
_LEAF_BLOCKS = ("paragraph_open", "fence", "code_block", "heading_open", "html_block", "table_open")


@dataclass
class Grounding:
    """What the check found: the facts it looked at and those no source has."""

    checked: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)
    kinds: dict[str, str] = field(default_factory=dict)  # claim -> date, citation, code, number or name
    # The terms by which the question names its document, and the claims that only sources
    # about something else hold.
    subject: list[str] = field(default_factory=list)
    off_subject: list[str] = field(default_factory=list)
    # Quantities the answer writes with a unit of its own ("5120MB") whose number is an argument of
    # code it copies from a source (`minikube start --memory 5120`): the code is the fact stated.
    restated: list[str] = field(default_factory=list)
    # The answer's line each claim is first stated on, and its Markdown blocks' lines (first, past the last).
    lines: dict[str, int] = field(default_factory=dict)
    blocks: list[tuple[int, int]] = field(default_factory=list)
    # Lines that repeat a source's sentence after its number, as the prompt quotes them: no statement of the model's.
    echoes: set[int] = field(default_factory=set)
    # Codes the question itself holds (the field it asks about): they name what is asked, no answer
    # to it. A number or date the question holds may be the answer it offers to confirm or choose.
    from_question: set[str] = field(default_factory=set)

    @property
    def all_unsupported(self) -> bool:
        return bool(self.checked) and len(self.unsupported) == len(self.checked)

    def shown(self, claims: list[str]) -> list[str]:
        """`claims` as a message names them: a code of several words in backticks, so that it reads
        apart from the sentence around it (`storage: 20Gi` in a Korean one)."""
        return [_as_code(claim) if self.kinds.get(claim) == "code" and any(char.isspace() for char in claim) else claim for claim in claims]

    def unsupported_answer(self, asked: str | None) -> list[str]:
        """The answer's facts of the kind a question asked for (a FACT_KINDS name, or None) that no
        source about the question's subject has, in the block of the answer that first states such
        a fact: then the answer is a guess ("1GiB" for an unstated limit, "512 MiB" beside a "1 CPU"
        it did find) or a fact of another document. What later blocks add is elaboration: a made-up
        value there is flagged, not taken for the answer. A number question is answered by claims
        holding a digit, not by a term the answer puts in backticks."""
        claims = self._asked_claims(asked)
        unfounded = {*self.unsupported, *self.off_subject} - set(self.restated)
        stated = self._first_block(claims)
        return [claim for claim in claims if claim in unfounded and claim in stated]

    def _asked_claims(self, asked: str | None) -> list[str]:
        if not asked:
            return []
        claims = [
            claim for claim in self.checked if self.kinds[claim] in ANSWER_KINDS[asked] and claim not in self.from_question
        ]
        if asked == "number":
            claims = [claim for claim in claims if any(char.isdigit() for char in claim)]
        return claims

    def _first_block(self, claims: list[str]) -> list[str]:
        """Those of `claims` stated in the Markdown block of the answer that first states one of them
        in its own words (not in a line repeating a quoted sentence); in an answer that states none
        in its own words, on the first quoted sentence it repeats: that sentence is its answer, and
        the quotes after it (in the same paragraph when no blank line parts them) are not."""
        stated = [self.lines.get(claim, 0) for claim in claims]
        own = [line for line in stated if line not in self.echoes]
        if not own:
            first_quote = min(stated, default=None)
            return [claim for claim in claims if self.lines.get(claim, 0) == first_quote]
        line = min(own)
        first, end = next(((first, end) for first, end in self.blocks if first <= line < end), (line, line + 1))
        return [claim for claim in claims if first <= self.lines.get(claim, 0) < end]


def _as_code(text: str) -> str:
    """`text` as Markdown code, in more backticks than any run of them it holds (a command
    substitution in a shell line)."""
    fence = "`" * (max(map(len, re.findall(r"`+", text)), default=0) + 1)
    padding = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{fence}{padding}{text}{padding}{fence}"


def _dates(text: str) -> list[tuple[str, tuple[int | None, int | None, int | None], tuple[int, int]]]:
    """(as written, (year, month, day), span) for every date in `text`; ambiguous slashes give both readings."""
    found = []
    taken: list[tuple[int, int]] = []
    for kind, pattern in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            span = match.span()
            if any(start < span[1] and span[0] < end for start, end in taken):
                continue
            written = _DIGIT_BESIDE_CJK_SPACE.sub("", " ".join(match.group(0).split()))
            for value in _date_values(kind, match.groups("")):
                found.append((written, value, span))
            taken.append(span)
    return found


def dates_in(text: str) -> list[tuple[int | None, int | None, int | None]]:
    """The dates `text` mentions, as (year, month, day) with None for a part it does not say."""
    return [value for _, value, _ in _dates(text)]


def _date_values(kind: str, groups: tuple[str, ...]) -> list[tuple[int | None, int | None, int | None]]:
    """The (year, month, day) readings of a date pattern's groups ("" for a part not written)."""

    def day(text: str) -> int | None:
        return int(re.sub(r"\D", "", text)) if text else None

    def month(text: str) -> int:
        return MONTHS[text.lower().rstrip(".")]

    if kind == "ymd":
        return [(int(groups[0]), int(groups[1]), int(groups[2]))]
    if kind == "md":
        return [(None, int(groups[0]), int(groups[1]))]
    if kind == "ym":
        return [(int(groups[0]), int(groups[1]), None)]
    if kind == "slash":
        year = int(groups[2]) + (2000 if len(groups[2]) == 2 else 0)
        first, second = int(groups[0]), int(groups[1])
        readings = {(year, second, first), (year, first, second)}
        return [value for value in readings if 1 <= value[1] <= 12 and 1 <= value[2] <= 31]
    if kind == "dmy":
        return [(int(groups[2]) if groups[2] else None, month(groups[1]), day(groups[0]))]
    if kind == "mdy":
        return [(int(groups[2]) if groups[2] else None, month(groups[0]), day(groups[1]))]
    return [(int(groups[1]), month(groups[0]), None)]


def _same_date(claim: tuple, known: Iterable[tuple]) -> bool:
    """A date agrees with a source's where both say a part (a year-less "4 October" matches "4 October 2025")."""
    return any(all(a is None or b is None or a == b for a, b in zip(claim, date)) and claim[1] == date[1] for date in known)


def _clock_times(text: str) -> list[tuple[str, set[tuple[int, int]], tuple[int, int]]]:
    """Each time of day in `text`: (as written, the (hour, minute) it may be on a 24-hour clock, span)."""
    found = []
    for match in _CLOCK.finditer(text):
        hour = int(match["hour"] or match["bare_hour"] or match["cjk_hour"])
        minute = int(match["minute"] or match["cjk_minute"] or (30 if match["half"] else 0))
        meridiem = (match["meridiem"] or match["bare_meridiem"] or match["cjk_meridiem"] or "").lower()
        if meridiem:
            hours = {hour % 12 + (12 if meridiem.startswith(_AFTERNOON) else 0)}
        else:
            hours = {hour, hour + 12} if 1 <= hour <= 11 else {hour}
        written = re.sub(r"(?<=\d) (?=\S)(?![ap]\.?m)", "", " ".join(match.group(0).split()), flags=re.IGNORECASE)
        found.append((written, {(h, minute) for h in hours}, match.span()))
    return found


def _number_value(text: str) -> str:
    """'14,750' and '14 750' -> '14750'; '2.4' stays; '2,5' (a decimal comma) -> '2.5'; '06' -> '6';
    full-width digits (２０２５, as Japanese text writes them) -> '2025'."""
    text = unicodedata.normalize("NFKC", text)  # also makes no-break spaces plain ones
    if re.fullmatch(r"\d{1,3}(?:[, ]\d{3})+(?:\.\d+)?", text):
        return re.sub(r"[, ]", "", text)
    return re.sub(r"^0+(?=\d)", "", text.replace(",", "."))


def _amount_value(written: str) -> str:
    """'4,800 만' -> '48000000', '1 억 2,000 만' -> '120000000', '4 천 8 백만' -> '48000000', '1.5 億' -> '150000000',
    '48 million' -> '48000000'."""
    total = group = Decimal(0)
    for digits, unit in _AMOUNT_PART.findall(written):
        part = Decimal(_number_value(digits))
        for multiplier in [unit.lower()] if unit.lower() in _WORD_MULTIPLIERS else unit:
            if multiplier in _GROUP_MULTIPLIERS:
                part *= _GROUP_MULTIPLIERS[multiplier]
            else:  # the group so far, this part with it, is so many of this multiplier
                total += (group + part) * _MULTIPLIERS[multiplier]
                group = part = Decimal(0)
        group += part
    return format((total + group).normalize(), "f")


def _numbers(text: str) -> set[str]:
    """The values of the numbers of `text`, and of its amounts written with multipliers."""
    numbers = {_number_value(match.group(0)) for match in _NUMBER.finditer(text)}
    return numbers | {_amount_value(match.group(0)) for match in _AMOUNT.finditer(text)}


def _bare_numbers(text: str) -> frozenset[str]:
    """The values of the numbers of `text` that no multiplier follows."""
    amounts = [match.span() for match in _AMOUNT.finditer(text)]
    return frozenset(
        _number_value(match.group(0)) for match in _NUMBER.finditer(text)
        if not any(start <= match.start() < end for start, end in amounts)
    )


def _as_written(spaced: str, answer: str) -> str:
    """What `spaced` (a claim read with CJK letters spaced apart) is in the answer as written."""
    found = re.search(r"\s*".join(map(re.escape, spaced.replace(" ", ""))), answer)
    return found.group(0) if found else spaced


def check_grounding(
    answer: str,
    sources: list[str],
    question: str = "",
    titles: list[str] | None = None,
    page_opens_with: Callable[[int, list[str]], bool] | None = None,
) -> Grounding:
    """The numbers, dates, codes and names of `answer` that occur in none of `sources`, and
    citation markers that point to no source. Words taken from the question are not claims.

    With `titles` (each source's file name and heading path), also the claims that only sources
    about something other than the question's subject hold; `page_opens_with(number, terms)`:
    whether the page of the source numbered `number` (from 0) names all `terms` where it opens."""
    blocks = _markdown_blocks(answer)
    result = _claims(answer, sources, question, blocks)
    if titles is not None:
        result.subject = subject_terms(question, titles)

        # A source is about the subject where its text or its title names it, or its page's
        # opening does: a section is about what its page is about, and need not repeat its name
        # (a product's documentation names the product where each page opens).
        def about_subject(number: int, text: str, title: str) -> bool:
            if all(fold(term) in fold(text) or fold(term) in fold(title) for term in result.subject):
                return True
            return page_opens_with is not None and page_opens_with(number, result.subject)

        about = [text for number, (text, title) in enumerate(zip(sources, titles)) if about_subject(number, text, title)]
        if len(about) < len(sources):
            held = {claim for text in about for claim in _supported(_claims(answer, [text], question, blocks))}
            # The subject's own names and the question's words are no facts about something else.
            folded_question = fold(question)
            named = {fold(term) for term in result.subject}
            result.off_subject = [
                claim for claim in _supported(result)
                if claim not in held and fold(claim) not in named and fold(claim) not in folded_question
            ]
    return result


def answer_facts(answer: str, question: str) -> list[str]:
    """The numbers, dates, codes and names `answer` states that `question` does not hold."""
    found = _claims(answer, [], question, _markdown_blocks(answer))
    folded_question = fold(question)
    return [claim for claim in found.checked if found.kinds[claim] != "citation" and fold(claim) not in folded_question]


def subject_terms(question: str, titles: list[str]) -> list[str]:
    """The terms of `question` that name the retrieved document it asks about: its names (a capital
    or a digit) and its Korean words that name a page (`_korean_page_words`) that the titles holding
    the most of them hold. A word of a title that holds fewer is no name of the document asked
    about ("튜토리얼" beside "Hello Minikube")."""
    terms = _SUBJECT_TERM.findall(_apart_from_cjk(question))
    named = [
        term for term in terms
        if len(term) > 2 and (term != term.lower() or any(char.isdigit() for char in term)) and fold(term) not in STOPWORDS
    ]
    pages = [fold(_page_title(title)) for title in titles]
    korean = _korean_page_words(question, pages)
    held = [
        {term for term in named if fold(term) in fold(title)} | {word for word in korean if word in page}
        for title, page in zip(titles, pages)
    ]
    most = max(map(len, held), default=0)
    if not most:
        return []
    chosen = set().union(*(terms for terms in held if len(terms) == most))
    return [term for term in dict.fromkeys([*named, *korean]) if term in chosen]


def _page_title(title: str) -> str:
    """A source's file name and the first heading of its heading path: its page's title."""
    return title.split(HEADING_SEPARATOR)[0]


def _korean_page_words(question: str, pages: list[str]) -> list[str]:
    """The Korean words of `question`, less their particles, that the page title of some sources
    holds and of others does not ("카산드라" of "카산드라로 스테이트풀셋 배포하기"): Hangul has no
    capitals to tell a name by, and a word every page's title holds tells no page apart. Chinese
    and Japanese write no space between words, so no word of theirs is told apart without a
    dictionary. `pages`: the sources' page titles, folded."""
    words = [part for run in CJK_RUN.findall(question) for part in topic_parts(run) if len(part) > 1 and HANGUL.match(part)]
    return [word for word in words if 0 < sum(word in page for page in pages) < len(pages)]


def _supported(found: Grounding) -> list[str]:
    return [claim for claim in found.checked if claim not in found.unsupported]


def _claims(answer: str, sources: list[str], question: str, blocks: list[tuple[str, str, tuple[int, int]]]) -> Grounding:
    """The claims of `answer` checked against `sources`; `blocks` are its Markdown blocks (`_markdown_blocks`)."""
    result = Grounding()
    fenced = [(content, lines) for kind, content, lines in blocks if kind == "fence"]
    result.blocks = [lines for _, _, lines in blocks]
    original, answer = answer, _apart_from_cjk(answer)
    corpus, folded_corpus, known_dates, known_numbers, known_times, bare_numbers, stated_multipliers = _read_sources(
        "\n".join(sources)
    )
    folded_question = fold(question)
    spans: list[tuple[int, int]] = []
    line_starts = _line_starts(answer)  # CJK letters spaced apart: the same lines, longer
    result.echoes = {
        number for number, line in enumerate(answer.split("\n"))
        if (quoted := QUOTE_LINE.fullmatch(line)) and fold(quoted[1]) in folded_corpus
    }

    def claim(kind: str, text: str, supported: bool, span: tuple[int, int]) -> None:
        spans.append(span)
        if text not in result.checked:
            result.checked.append(text)
            result.kinds[text] = kind
            result.lines[text] = bisect_right(line_starts, span[0]) - 1
            if kind == "code" and re.search(rf"(?<![a-z0-9.-]){re.escape(fold(text))}(?![a-z0-9-]|\.[a-z0-9])", folded_question):
                result.from_question.add(text)
            if not supported:
                result.unsupported.append(text)

    def held(code: str) -> bool:
        """Whether a source or the question holds `code`; copied from a quote that was cut, each
        part around the cut; a template, each part around its placeholders."""
        parts = [fold(part) for cut in code.split(QUOTE_CUT) for part in _PLACEHOLDER.split(cut) if part.strip()]
        return all(part in folded_corpus for part in parts) or all(part in folded_question for part in parts)

    def free(span: tuple[int, int]) -> bool:
        return not any(start < span[1] and span[0] < end for start, end in spans)

    for block, (first, end) in fenced:
        span = (line_starts[first], line_starts[end])
        spans.append(span)
        for line in (line.strip() for line in block.splitlines()):
            if line and not line.startswith(_COMMENT_OPENINGS):
                claim("code", line, held(_apart_from_cjk(line)), span)
    for match in _CODE_SPAN.finditer(answer):
        code = match.group(1).strip()
        if code and free(match.span()):
            claim("code", code, held(code), match.span())
    dates: dict[str, tuple[tuple[int, int], list]] = {}
    for written, value, span in _dates(answer):
        dates.setdefault(written, (span, []))[1].append(value)
    for written, (span, values) in dates.items():
        claim("date", written, any(_same_date(value, known_dates) for value in values), span)
    for written, times, span in _clock_times(answer):
        if free(span):
            claim("time", written, bool(times & known_times) or fold(written) in folded_question, span)
    for match in CITATION.finditer(answer):
        number = int(match.group(1))
        if not 1 <= number <= len(sources):
            claim("citation", match.group(0), False, match.span())
        else:
            spans.append(match.span())
    for match in _CODE.finditer(answer):
        if free(match.span()) and not re.fullmatch(r"[\d.,]+", match.group(0)):
            code = match.group(0)
            claim("code", code, held(code) or _in_asked_unit(code, known_numbers, folded_question), match.span())
    spans.extend(match.span() for match in _LIST_NUMBER.finditer(answer))
    for match in _AMOUNT.finditer(answer):
        if free(match.span()):
            written = _as_written(match.group(0), original)
            # Its numbers alone are the same fact where a source states them bare and its multipliers
            # once for all (a table headed "단위: 만 원").
            parts = _AMOUNT_PART.findall(match.group(0))
            stated_once = {_number_value(digits) for digits, _ in parts} <= bare_numbers and all(
                letter in stated_multipliers for _, letters in parts for letter in letters
            )
            supported = _amount_value(match.group(0)) in known_numbers or stated_once
            claim("number", written, supported or written in question, match.span())
    for match in _NUMBER.finditer(answer):
        if free(match.span()):
            written = match.group(0)
            claim("number", written, _number_value(written) in known_numbers or written in question, match.span())
    for match in _NAME.finditer(answer):
        name = _name_in(match.group(0).strip(), answer, match.start())
        if not name or not free(match.span()):
            continue
        folded = fold(name)
        supported = folded in folded_corpus or folded in folded_question or _each_word_known(folded, folded_corpus)
        claim("name", name, supported, match.span())
    code_texts = [_apart_from_cjk(block) for block, _ in fenced] + [match.group(1) for match in _CODE_SPAN.finditer(answer)]
    copied = [code for code in code_texts if _copied_from(code, folded_corpus)]
    arguments = {number for code in copied for number in _numbers(code)}
    result.restated = [
        claim for claim in result.unsupported
        if (quantity := _QUANTITY.fullmatch(claim)) and _number_value(quantity[1]) in arguments
        and not any(claim in code for code in copied)
    ]
    return result


def _in_asked_unit(claim: str, known_numbers: frozenset[str], folded_question: str) -> bool:
    """Whether `claim` is a source's number in the unit the question asks it in: "5120MB" for "몇
    MB" where a source has `--memory 5120`. The unit is the question's word, the number the fact."""
    if not (quantity := _QUANTITY.fullmatch(claim)):
        return False
    number, unit = quantity.groups()
    # A unit as the answer writes units, with a capital (MB, GiB): "12A" or "5in" is no unit a
    # question's "a" or "in" names.
    if len(unit) < 2 or unit.islower():
        return False
    return _number_value(number) in known_numbers and bool(
        re.search(rf"(?<![a-z]){re.escape(unit.casefold())}(?![a-z])", folded_question)
    )


@functools.lru_cache(maxsize=8)
def _read_sources(
    joined: str,
) -> tuple[str, str, tuple, frozenset[str], frozenset[tuple[int, int]], frozenset[str], frozenset[str]]:
    """The sources as claims are compared with them (CJK letters spaced apart, folded; their dates,
    numbers and times of day; the numbers they state bare and the CJK multipliers they state on
    their own), read once for the many values of an extracted record."""
    corpus = _apart_from_cjk(unwrapped(joined))  # as evidence quotes them: a wrapped CJK word is one
    times = frozenset(time for _, found, _ in _clock_times(corpus) for time in found)
    stated = frozenset(letter for match in _STATED_MULTIPLIER.finditer(corpus) for letter in "".join(match.groups("")))
    return corpus, fold(corpus), tuple(dates_in(corpus)), frozenset(_numbers(corpus)), times, _bare_numbers(corpus), stated


def _markdown_blocks(text: str) -> list[tuple[str, str, tuple[int, int]]]:
    """The leaf blocks of Markdown `text`: (kind, content, its lines (first, past the last)). A
    command or output an answer writes as a fenced block ("fence") must be one a source has, line
    by line; a block is also the unit an answer states a fact in."""
    from markdown_it import MarkdownIt

    return [
        (token.type, token.content, (token.map[0], token.map[1]))
        for token in MarkdownIt("commonmark").enable("table").parse(text)
        if token.type in _LEAF_BLOCKS and token.map
    ]


def _line_starts(text: str) -> list[int]:
    """Where each line of `text` starts, and its end."""
    return [0, *(newline.end() for newline in re.finditer("\n", text)), len(text)]


def _copied_from(code: str, folded_corpus: str) -> bool:
    lines = [line.strip() for line in code.splitlines() if line.strip()]
    return bool(lines) and all(fold(line) in folded_corpus for line in lines)


def _apart_from_cjk(text: str) -> str:
    """`text` with a space around each run of Chinese, Japanese or Korean letters: Python's regular
    expressions take them for word letters, so 8080 in "8080입니다" or "端口8080" would be inside a
    word, not a number of its own."""
    return CJK_RUN.sub(lambda run: f" {run.group()} ", text)


def unmentioned(question: str, sources: list[str]) -> list[str]:
    """The codes, names and acronyms a question asks about that none of the sources mentions
    ("RO-450", "Svolvaer", "IPVS")."""
    found = check_grounding(question, sources)
    missing = [claim for claim in found.unsupported if found.kinds[claim] in ("code", "name")]
    acronyms = list(dict.fromkeys(_ACRONYM.findall(unicodedata.normalize("NFKC", question))))
    if any(fold(acronym) in STOPWORDS for acronym in acronyms):
        return missing  # a question written in capitals: its words are no acronyms
    folded_corpus = _read_sources("\n".join(sources))[1]  # as check_grounding just read them
    return missing + [
        acronym for acronym in acronyms
        if fold(acronym) not in folded_corpus and not _ROMAN_NUMERAL.fullmatch(acronym)
        and not any(acronym in claim for claim in missing)
    ]


def _name_in(words_run: str, answer: str, start: int) -> str | None:
    """The name in a run of capitalised words; a sentence's first word is capitalised anyway."""
    words = [re.sub(r"['’]s?$", "", word) for word in words_run.split()]  # Harbor's -> Harbor
    if start == 0 or re.search(r"[.!?:\n。！？：]\s*$", answer[:start]):
        words = words[1:]
    while words and words[0].lower() in ("of", "de", "von", "van", "der"):
        words = words[1:]
    if not words or all(w.lower() in STOPWORDS or w.lower() in MONTHS or w.lower() in _WEEKDAYS for w in words):
        return None
    return " ".join(words)


def _each_word_known(folded_name: str, folded_corpus: str) -> bool:
    """A name rearranged or shortened from the sources' ("Ms Lindqvist") is still theirs."""
    return all(
        word in STOPWORDS or re.search(rf"\b{re.escape(word)}\b", folded_corpus)
        for word in folded_name.split()
        if word not in ("of", "de", "von", "van", "der")
    )
