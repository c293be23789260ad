"""Which writing systems a text uses, and which of its letters the embedding model cannot read.

A model reads a letter when its tokenizer turns it into a word piece of its own vocabulary. It
cannot when the piece is `[UNK]` (all-MiniLM-L6-v2 maps most Chinese characters there) or when the
letter falls apart into pieces smaller than itself: the same model decomposes every Hangul syllable
into jamo, with no `[UNK]` at all, so an `[UNK]` count alone would call Korean readable. A list of
script ranges would be wrong the other way: it cannot tell a multilingual model from an English one.
The tokenizer says what the model at hand sees.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from ingest.errors import UnreadScriptsWarning

if TYPE_CHECKING:
    from tokenizers import Tokenizer

# Han, kana, Hangul: scripts written without spaces between words (Korean puts spaces between
# phrases, each a word with its particles attached), so their words are found inside runs.
CJK_RUN = re.compile(
    "[\u1100-\u11ff\u3041-\u30fa\u30fc-\u30ff\u3130-\u318f\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0003134f]+"
)
# Chinese and Japanese letters (not Hangul): written without spaces between words.
_UNSPACED_LETTER = "[\u3041-\u30fa\u30fc-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]"
_UNSPACED_WRAP = re.compile(rf"(?<={_UNSPACED_LETTER})[ \t]*\n[ \t]*(?={_UNSPACED_LETTER})")
HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]")
HAN_LETTER = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
KANA = re.compile("[\u3041-\u30fa\u30fc-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
# A document is in a script the model does not read when that script is at least this share of
# its letters (an English page quoting a Chinese name is not) ...
SCRIPT_PRESENCE = 0.05
# ... and the model cannot read at least this share of the script's letters (all-MiniLM-L6-v2 has
# about a fifth of the Han characters of a Chinese text in its vocabulary, and no Hangul).
SCRIPT_UNREAD = 0.5
# Characters of a document read to judge it: enough to know its scripts, and a huge file costs no more.
SAMPLE_CHARS = 20_000
# Unicode's first word for a character's script, as a reader calls it.
_SCRIPT_NAMES = {"CJK": "Han (Chinese, Japanese kanji)", "HANGUL": "Hangul (Korean)", "HIRAGANA": "kana (Japanese)",
                 "KATAKANA": "kana (Japanese)"}
EMBEDDING_MODEL_SETTING = "embedding.model"
AUTO_MODEL = "auto"
ENGLISH_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MULTILINGUAL_MODEL = "universal-sentence-encoder-multilingual"
# A collection is made with the multilingual model when at least this share of its words are
# Chinese, Japanese or Korean (each CJK letter counted as a word, as a Chinese word is one or two):
# the Kubernetes tutorials in those languages are 0.29 to 0.93 by file, code and all; English pages 0.
MULTILINGUAL_SHARE = 0.2
# Files of a new collection whose text is read to choose its model, and characters of each.
CHOICE_FILES = 20
_LETTER_WORD = re.compile(r"[^\W\d_]+")


def cjk_word_share(text: str) -> float:
    """The share of the words of `text` written in Chinese, Japanese or Korean letters (one a word)."""
    cjk = sum(len(run) for run in CJK_RUN.findall(text))
    others = len(_LETTER_WORD.findall(CJK_RUN.sub(" ", text)))
    return cjk / (cjk + others) if cjk + others else 0.0


def choose_embedding_model(texts: list[str]) -> tuple[str, str]:
    """(model, why) for a new collection whose files hold `texts` (a sample, each cut at SAMPLE_CHARS)."""
    share = cjk_word_share("\n".join(text[:SAMPLE_CHARS] for text in texts))
    model = MULTILINGUAL_MODEL if share >= MULTILINGUAL_SHARE else ENGLISH_MODEL
    return model, f"{share:.0%} of the words read are Chinese, Japanese or Korean"


def cjk_language_of(texts: list[str]) -> str | None:
    """'ko', 'zh' or 'ja': the language of the Chinese, Japanese or Korean letters of `texts` (a
    new collection's sample), when they are at least MULTILINGUAL_SHARE of its words; else None.

    py3langid reads the CJK letters alone: with the code and English terms of a technical page
    around them it takes Chinese tutorials for English."""
    sample = "\n".join(text[:SAMPLE_CHARS] for text in texts)
    if cjk_word_share(sample) < MULTILINGUAL_SHARE:
        return None
    return language_identifier(("ja", "ko", "zh")).classify(" ".join(CJK_RUN.findall(sample)))[0]


@functools.cache
def language_identifier(languages: tuple[str, ...]) -> Any:
    """py3langid's identifier (langid.py's model, inside its package), choosing among `languages` only."""
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    identifier = LanguageIdentifier.from_model_file(MODEL_FILE)
    identifier.set_languages(list(languages))
    return identifier


def cjk_language(text: str) -> str:
    """'ko', 'ja' or 'zh': the language of a text in CJK letters, by them (Hangul is Korean, kana
    Japanese, Han without either as `han_language` tells, else Chinese)."""
    if HANGUL.search(text):
        return "ko"
    return "ja" if KANA.search(text) else primary_language(han_language(text) or "zh")


def primary_language(code: str) -> str:
    """The language of a language tag without its script or region: 'zh' for 'zh-Hant'."""
    return code.partition("-")[0]


def han_language(text: str) -> str | None:
    """'ja', 'zh' (simplified Chinese) or 'zh-Hant' (traditional Chinese) for Han letters written in
    forms one language writes and another not: the language that wins most of these contests.

    Japanese writes the kanji of JIS X 0208's first level (its everyday ones), simplified Chinese
    those of GB 2312, traditional Chinese those of Big5 (as Windows writes it), and may write those
    of Hong Kong's supplement (HKSCS: 啓, 綫; it holds 関 and 駅 too, so none of its letters tells
    traditional Chinese from anything else). Against Japanese, simplified Chinese writes 这 and 时,
    Japanese 営 and 議; against traditional Chinese, simplified writes 这 and 会, traditional 這
    and 會; against Japanese, traditional writes 麼, 們 and 變 (JIS X 0208 has them only in its
    second level), Japanese 会 and 営. A text of letters Japanese and traditional Chinese both write
    is Japanese (勤務時間), unless it holds 是 or 的, Chinese's copula and possessive, which Japanese
    writes only inside a few words (是非, 目的), or 這, Chinese's "this", which Japanese writes in
    這う alone: 服務的連接埠是多少, 這個 Pod 要等多久. None where no language wins (日志: all write it)."""
    standing = han_languages(text)
    return standing[0] if standing else None


def han_languages(text: str) -> tuple[str, ...]:
    """The languages the forms of `text`'s Han letters leave standing (see `han_language`): the one
    they tell, ('ja', 'zh-Hant') for letters both write without Chinese's 是, 的 or 這, none where
    no language wins."""
    letters = [_han_sets(letter) for letter in set(HAN_LETTER.findall(text))]

    def ahead(language: str, other: str) -> int:
        lead = sum(language in sets and not _may_write(other, sets) for sets in letters) - sum(
            other in sets and not _may_write(language, sets) for sets in letters)
        return (lead > 0) - (lead < 0)

    scores = {language: sum(ahead(language, other) for other in _HAN_LANGUAGES if other != language) for language in _HAN_LANGUAGES}
    best = max(scores.values())
    winners = [language for language, points in scores.items() if points == best]
    if winners == ["ja", "zh-Hant"]:
        return ("zh-Hant",) if _CHINESE_GRAMMAR.search(text) else ("ja", "zh-Hant")
    return (winners[0],) if len(winners) == 1 and best > 0 else ()


_HAN_LANGUAGES = ("ja", "zh", "zh-Hant")
_CHINESE_GRAMMAR = re.compile("[是的這]")
# Hong Kong's supplement to Big5: letters traditional Chinese may write (see han_language).
_HONG_KONG = "zh-HK"


@functools.cache
def simplified_letters() -> frozenset[str]:
    """The letters simplified Chinese writes and traditional Chinese does not: GB 2312's that Big5
    lacks (这, 设, 会). Hong Kong's supplement holds some of them (户, 着), and Hong Kong writes those."""
    chinese = frozenset({"zh", "zh-Hant"})
    return frozenset(letter for letter in map(chr, range(0x4E00, 0xA000)) if _character_sets(letter) & chinese == {"zh"})


def simplified_only(text: str) -> bool:
    """Whether `text` holds a letter of `simplified_letters`."""
    return not simplified_letters().isdisjoint(text)


def _may_write(language: str, sets: frozenset[str]) -> bool:
    return language in sets or (language == "zh-Hant" and _HONG_KONG in sets)


def _character_sets(letter: str) -> frozenset[str]:
    """Which of han_language's character sets have `letter`: 'ja' (JIS X 0208's first level), 'zh'
    (GB 2312), 'zh-Hant' (Big5), 'zh-HK' (Big5 with HKSCS)."""
    japanese = _encoded(letter, "euc_jp")
    # EUC-JP writes the first level's rows (16 to 47) with lead bytes 0xB0 to 0xCF.
    sets = {"ja"} if len(japanese) == 2 and 0xB0 <= japanese[0] <= 0xCF else set()
    for language, codec in (("zh", "gb2312"), ("zh-Hant", "cp950"), (_HONG_KONG, "big5hkscs")):
        if len(_encoded(letter, codec)) == 2:
            sets.add(language)
    return frozenset(sets)


_han_sets = functools.lru_cache(maxsize=1 << 14)(_character_sets)


def _encoded(letter: str, codec: str) -> bytes:
    """The letter in `codec`; b"" where the codec has no way to write it."""
    try:
        return letter.encode(codec)
    except UnicodeEncodeError:
        return b""


def simplified(text: str) -> str:
    """`text` with its traditional Chinese letters and words as simplified Chinese writes them
    (OpenCC's t2s conversion: 這個 这个, 瞭解 了解), for search: a word then finds itself in either
    script. Simplified Chinese, kana and Hangul stay as they are; a Japanese kanji with a traditional
    form (機) changes as it would in Chinese, the same in a page and in a question."""
    return _traditional_to_simplified().convert(text) if HAN_LETTER.search(text) else text


@functools.cache
def _traditional_to_simplified() -> Any:
    import opencc

    return opencc.OpenCC("t2s")


def unwrapped(text: str) -> str:
    """`text` without the line breaks between two Chinese or Japanese letters: they are written
    without spaces between words, so a wrapped line (every line of a PDF) breaks anywhere inside one."""
    return _UNSPACED_WRAP.sub("", text)


def one_line(text: str) -> str:
    """`text` on one line, as a reader reads it: lines and runs of spaces joined by one space, but a
    line break between two Chinese or Japanese letters by none (`unwrapped`)."""
    return " ".join(unwrapped(text).split())


def columns(text: str) -> int:
    """Columns `text` takes in a terminal: a Chinese, Japanese or Korean letter (wide) takes two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def rare_letter_share(text: str) -> float:
    """The share of `text`'s CJK letters that none of the character sets everyday Korean, Japanese and
    simplified Chinese are written in has (KS X 1001, JIS X 0208, GB 2312; traditional Chinese's
    letters are in the first two): near 0 for text in these languages, high for the bytes of one of
    their legacy encodings read as another (Shift JIS as Korean: 뜴뱻뙍)."""
    letters = Counter("".join(CJK_RUN.findall(text)))
    total = letters.total()
    return sum(count for letter, count in letters.items() if _rare_letter(letter)) / total if total else 0.0


@functools.lru_cache(maxsize=1 << 14)
def _rare_letter(letter: str) -> bool:
    # Two bytes: Python's euc_kr writes the syllables KS X 1001 lacks as eight-byte jamo sequences,
    # and its euc_jp JIS X 0212's letters in three.
    return not any(len(_encoded(letter, codec)) == 2 for codec in ("euc_kr", "euc_jp", "gb2312"))


@functools.lru_cache(maxsize=1 << 14)
def script_of(char: str) -> str:
    """The script of a letter, in words ('Hangul (Korean)', 'Cyrillic'); 'Unknown' if Unicode has no name for it."""
    first_word = unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]
    return _SCRIPT_NAMES.get(first_word, first_word.capitalize())


@dataclass
class Readability:
    """How much of a text's letters (and digits) the embedding model reads."""

    letters: Counter = field(default_factory=Counter)  # script -> letters
    unread: Counter = field(default_factory=Counter)  # script -> letters the model cannot read

    @property
    def unread_share(self) -> float:
        total = sum(self.letters.values())
        return sum(self.unread.values()) / total if total else 0.0

    def scripts_not_read(self) -> list[str]:
        """The scripts a good part of the text is written in that the model mostly cannot read."""
        total = sum(self.letters.values())
        return [
            script
            for script, count in self.letters.most_common()
            if count >= SCRIPT_PRESENCE * total and self.unread[script] >= SCRIPT_UNREAD * count
        ]


def readability(text: str, tokenizer: "Tokenizer") -> Readability:
    """Which letters of `text` the tokenizer maps to `[UNK]` or splits into pieces smaller than a letter."""
    encoding = tokenizer.encode(text, add_special_tokens=False)
    unknown_id = _unknown_id(tokenizer)
    unread_spans = [span for span, pieces in Counter(encoding.offsets).items() if span[1] - span[0] == 1 and pieces > 1]
    if unknown_id is not None and unknown_id in encoding.ids:
        unread_spans += [span for token_id, span in zip(encoding.ids, encoding.offsets) if token_id == unknown_id]
    unread_positions = {position for start, end in unread_spans for position in range(start, end)}
    result = Readability()
    # Counted per distinct character: a Python step per character cost more than the chunking.
    for char, count in Counter(text).items():
        if char.isalnum():
            result.letters[script_of(char)] += count
    for position in unread_positions:
        if text[position].isalnum():
            result.unread[script_of(text[position])] += 1
    return result


def _unknown_id(tokenizer: "Tokenizer") -> int | None:
    """The id of the tokenizer's unknown token: WordPiece names it, SentencePiece models call it <unk>."""
    for token in (getattr(tokenizer.model, "unk_token", None), "[UNK]", "<unk>"):
        if token and (token_id := tokenizer.token_to_id(token)) is not None:
            return token_id
    return None


class UnreadScripts:
    """Collects, over one ingest, the documents written in scripts the embedding model does not
    read, and words the one warning about them."""

    def __init__(self, model: str, tokenizer: Callable[[], "Tokenizer"]):
        self.model = model
        self._tokenizer = tokenizer  # the model's, loaded at the first document checked
        self.sources: dict[str, list[str]] = {}  # script -> the documents in it

    def check(self, source: str, text: str) -> None:
        """Note `source` if the embedding model cannot read a script a good part of `text` (its
        text, or its chunks' texts joined) is written in."""
        not_read = readability(text[:SAMPLE_CHARS], self._tokenizer()).scripts_not_read()
        if not_read:
            self.sources.setdefault(not_read[0], []).append(source)

    def warning(self) -> UnreadScriptsWarning | None:
        """One message for the whole ingest, or None when every document is readable."""
        if not self.sources:
            return None
        files = sum(len(paths) for paths in self.sources.values())
        scripts = "; ".join(
            f"{script}: {', '.join(paths[:3])}{f' and {len(paths) - 3} more' if len(paths) > 3 else ''}"
            for script, paths in self.sources.items()
        )
        return UnreadScriptsWarning(
            f"{files} file{'s' if files > 1 else ''} written in a script the embedding model {self.model} cannot read "
            f"({scripts}). Search by meaning will not work for them; keyword search still does.",
            f'Set {EMBEDDING_MODEL_SETTING} to "{MULTILINGUAL_MODEL}" (packaged; it reads Korean, Chinese, Japanese '
            "and 13 more languages) or to a local multilingual sentence-transformers model folder",
        )
