"""The language of a question, and what rag says in it (the data is `prompts/languages.toml`).

The language is told by py3langid (langid.py's model, inside its package), asked to choose among
the languages rag has texts for: a question of a few words, or one full of commands and flags, is
then not taken for a language nobody wrote it in. Anything it cannot tell is English.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources

from ingest.scripts import HANGUL, KANA, han_language, han_languages, language_identifier, primary_language, simplified_letters
from ingest.text import fold

DEFAULT = "en"
# Subtags of a Chinese language tag that say traditional letters: the script, a place or Cantonese.
TRADITIONAL_CHINESE_SUBTAGS = frozenset({"hant", "tw", "hk", "mo", "yue"})
# The kinds of fact a question can ask for, in the order they are tried: "the command on port 8080" asks for a command.
FACT_KINDS = ("time", "date", "code", "number")
# The placeholders of tasks.toml that a language's texts fill.
PROMPT_TEXTS = ("qa_system", "sources_label", "quotes_header", "question_label", "write_in")


@dataclass(frozen=True)
class LanguageTexts:
    code: str
    name: str
    qa_system: str
    sources_label: str
    quotes_header: str
    question_label: str
    evidence_label: str
    similarity_label: str
    write_in: str
    no_context: str
    unmentioned: str
    names_separator: str
    not_in_sources: str
    off_subject_claims: str
    nothing_supported: str
    unsupported_answer: str
    off_subject_answer: str
    repeated_question: str
    repeated_question_quote: str
    cited_only: str
    declines: tuple[str, ...]
    asks: tuple[tuple[str, re.Pattern[str]], ...]  # (fact kind, what a question asking for it says)
    turn_labels: tuple[str, ...] = ()
    page: dict[str, str] = field(default_factory=dict)  # the web page's words (rag serve)
    location: dict[str, str] = field(default_factory=dict)  # where in a file: "page {first}", "lines {first}-{last}"

    def asked_kind(self, question: str) -> str | None:
        """What kind of fact (one of FACT_KINDS) `question` asks for, if it says."""
        return next((kind for kind, pattern in self.asks if pattern.search(question)), None)

    def retraction(self, claims: list[str], unsupported: list[str], subject: list[str]) -> str:
        """What follows an answer whose `claims` no source about the question's `subject` holds:
        in no source at all (`unsupported`), or only in sources about something else."""
        listed = ", ".join(claims)
        if all(claim in unsupported for claim in claims):
            return self.unsupported_answer.format(claims=listed)
        return self.off_subject_answer.format(claims=listed, subject=self.names_separator.join(subject))

    def warnings(self, unsupported: list[str], all_unsupported: bool, off_subject: list[str], subject: list[str]) -> list[str]:
        """The lines under an answer that name its facts no source has (`unsupported`; when
        `all_unsupported`, a warning that nothing it states is), and those only sources about
        something other than its `subject` hold."""
        said = []
        if unsupported:
            claims = ", ".join(unsupported)
            said.append(self.nothing_supported.format(claims=claims) if all_unsupported else f"{self.not_in_sources}: {claims}")
        if off_subject:
            said.append(self.off_subject_claims.format(claims=", ".join(off_subject), subject=self.names_separator.join(subject)))
        return said

    def unmentioned_answer(self, names: list[str]) -> str:
        return self.unmentioned.format(names=self.names_separator.join(names))

    def fill(self, text: str) -> str:
        """A task's text with this language's system text and labels in place of their placeholders."""
        for name in PROMPT_TEXTS:
            text = text.replace("{" + name + "}", getattr(self, name))
        return text


@functools.cache
def languages() -> dict[str, LanguageTexts]:
    data = tomllib.loads(resources.files("prompts").joinpath("languages.toml").read_text(encoding="utf-8"))
    return {
        code: LanguageTexts(
            code=code,
            **{
                **texts,
                "declines": tuple(texts["declines"]),
                "turn_labels": tuple(texts.get("turn_labels", ())),
                "asks": tuple(
                    (kind, re.compile("|".join(f"(?:{pattern})" for pattern in texts["asks"][kind]), re.IGNORECASE))
                    for kind in FACT_KINDS
                    if kind in texts["asks"]
                ),
            },
        )
        for code, texts in data.items()
    }


def page_texts() -> dict[str, dict[str, dict[str, str]]]:
    """The web page's words, and those that say where in a file, in each language rag has texts
    for, by language code: the page takes those of the browser's preferred language."""
    return {code: {"page": language.page, "location": language.location} for code, language in languages().items()}


def texts(language: str) -> LanguageTexts:
    """What rag says in `language` (or a language tag: 'ko-KR', 'zh-TW'); English for a language it
    has no texts for."""
    return languages().get(language) or languages().get(tag_language(language)) or languages()[DEFAULT]


def tag_language(tag: str) -> str:
    """The language of a language tag as rag names it: 'ko' for 'ko-KR', and for Chinese 'zh-Hant'
    where the tag says traditional or names a place that writes it ('zh-TW', 'zh-HK', 'yue'), else 'zh'
    (the web page picks its words the same way)."""
    code, *subtags = tag.lower().replace("_", "-").split("-")
    traditional = "hans" not in subtags and (code == "yue" or bool(TRADITIONAL_CHINESE_SUBTAGS & set(subtags)))
    return "zh-Hant" if code in ("zh", "yue") and traditional else code


def detect_language(text: str) -> str:
    """The language `text` is written in, among those rag has texts for (English when unsure).

    Chinese or Japanese written in Han letters alone ("社員食堂営業時間") is told by the forms of
    its letters where they say (`han_language`): py3langid takes such Japanese for Chinese, and
    knows one Chinese, which these forms tell simplified ('zh') or traditional ('zh-Hant')."""
    if not any(char.isalpha() for char in text):
        return DEFAULT
    language = language_identifier(tuple(sorted({primary_language(code) for code in languages()}))).classify(text)[0]
    if language in ("zh", "ja") and not KANA.search(text) and not HANGUL.search(text):
        return han_language(text) or language
    if language == "zh" and han_language(text) == "zh-Hant":  # a kana quoted in a Chinese question
        return "zh-Hant"
    return language


def possible_languages(text: str) -> tuple[str, ...]:
    """The languages `text` may be written in, `detect_language`'s first: its alone, but for Han
    letters whose forms do not tell, simplified or traditional Chinese ("Pod 要等多久？": both write
    them all) or Japanese or traditional Chinese ("請問 Pod 要等多久？": both write them all, and
    neither a kana nor Chinese's 是, 的 or 這 says which)."""
    language = detect_language(text)
    if primary_language(language) not in ("zh", "ja") or KANA.search(text) or HANGUL.search(text):
        return (language,)
    standing = han_languages(text)
    if not standing:
        return ("zh", "zh-Hant") if language == "zh" else (language,)
    return standing


def reply_language(question: str, passages: Sequence[str]) -> str:
    """The language to answer `question` from `passages` in: the question's, and where its letters
    leave more than one (`possible_languages`), the one of them most passages are written in (the
    best ranked of them at a tie); the first where no passage tells one of them."""
    possible = possible_languages(question)
    if len(possible) == 1:
        return possible[0]
    written = Counter(
        told[0] for passage in passages if len(told := [language for language in possible_languages(passage) if language in possible]) == 1
    )
    return written.most_common(1)[0][0] if written else possible[0]


def unwritten_letters(language: str) -> frozenset[str]:
    """The letters a text in `language` is not written in that a model writes all the same: the
    simplified ones (这, 设) in traditional Chinese, as a model trained mostly on simplified text
    slips into them."""
    return simplified_letters() if language == "zh-Hant" else frozenset()


@functools.cache
def run_on_stops() -> tuple[str, ...]:
    """Where an answer has run on into a turn of the model's own invention: a new line that opens
    with the prompt's question or sources label, or another turn's label, in any language rag knows."""
    labels = {
        label
        for language in languages().values()
        for label in (language.question_label, language.sources_label, *language.turn_labels)
    }
    return tuple(f"\n{label}" for label in sorted(labels))


@functools.cache
def quotes_headers() -> tuple[str, ...]:
    """The answer prompt's header over its quoted sentences in every language rag knows, folded and
    without its colon: what an answer that repeats the prompt's scaffolding opens with."""
    return tuple(fold(language.quotes_header).rstrip(":：") for language in languages().values())


@functools.cache
def _declines() -> re.Pattern[str]:
    patterns = [pattern for language in languages().values() for pattern in language.declines]
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


def says_declined(answer: str) -> bool:
    """Whether `answer` says, in any language rag knows, that the documents do not answer."""
    return _declines().search(answer) is not None
