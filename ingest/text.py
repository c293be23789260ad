"""Words of a text as the keyword index and the answer checks compare them: lower-cased, without
function words."""

from __future__ import annotations

import re
import unicodedata

# Words that say nothing about which passage answers a question.
STOPWORDS = frozenset(
    """a an the and or but if then than so of in on at to for from by with without about into over
    under after before between through during is are was were be been being am do does did done has
    have had having it its this that these those there here what which who whom whose when where why
    how i me my we our you your he him his she her they them their not no yes can could will would
    shall should may might must also just only very any all each every some such own same other more
    most much many few as up down out off again once please tell say says said""".split()
)
_WORD = re.compile(r"\w+(?:[-'.]\w+)*", re.UNICODE)


def plural(noun: str, count: int) -> str:
    """`noun` as `count` of it is said in English: 1 chunk, 2 chunks."""
    return noun if count == 1 else noun + "s"


def composed(text: str) -> str:
    """`text` with its letters composed (NFC), as a keyboard types them: macOS writes file names, and
    some PDFs text, decomposed (Hangul as jamo, é as e and an accent)."""
    return unicodedata.normalize("NFC", text)


def fold(text: str) -> str:
    """Case, accents of compatibility forms and whitespace folded: for substring comparisons."""
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def words(text: str) -> list[str]:
    return [word.strip(".") for word in _WORD.findall(fold(text))]


def content_words(text: str) -> list[str]:
    """The words of `text` that carry meaning (no function words), in order."""
    return [word for word in words(text) if word not in STOPWORDS]


def stem(word: str) -> str:
    """A light stem, so "cartridges" meets "cartridge": only a plural's final s goes."""
    return word[:-1] if len(word) > 3 and word.endswith("s") and not word.endswith("ss") else word


def stems(text: str) -> set[str]:
    """The stems of the content words of `text`."""
    return {stem(word) for word in content_words(text)}


def word_coverage(question: str, text: str) -> float:
    """The share of the question's content words (stemmed) that `text` contains."""
    wanted = stems(question)
    if not wanted:
        return 0.0
    return len(wanted & {stem(word) for word in words(text)}) / len(wanted)
