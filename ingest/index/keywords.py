"""The keyword index: every chunk's text in SQLite FTS5, ranked with BM25.

It lives in the manifest's database and is written in the same transactions as the manifest
rows that list the chunks, so it mirrors exactly what the manifest has committed (which makes
`listed` the consistent view of which chunks exist). Writes run inside the caller's transaction.

FTS5's unicode61 tokenizer takes a run of Chinese, Japanese or Korean letters for one word, so
the words inside it could not be found. Such runs are indexed (and queried) as their overlapping
character bigrams, next to unicode61's words for everything else: 大型语言模型 becomes 大型 型语
语言 言模 模型, and any word of two letters or more inside it matches. Text without these scripts
is indexed exactly as before. (FTS5's trigram tokenizer was measured too: it cannot match the
two-letter words most Chinese and Korean words are.) A line break between two Chinese or Japanese
letters is no break between words (a wrapped line), so the bigram across it is indexed too.
Traditional Chinese is read as simplified Chinese writes it, in the index and in queries alike, so
設定 and 设定 find each other.

KEYWORD_INDEX_VERSION says which analysis made an index. An index made by an older one is
analysed again in place by the next ingest (`Index.update_keyword_index`), from the chunk texts
the vector store keeps; until then searches read it as it is, and find what it indexed.
"""

from __future__ import annotations

import re
import sqlite3
import threading
import unicodedata
from collections import Counter
from typing import Callable, Sequence

from ingest.index.manifest import CollectionTables
from ingest.scripts import CJK_RUN, simplified, unwrapped
from ingest.text import stem, stems, words

# Bump when a change to the keyword analysis makes an existing index differ from what a fresh ingest gives.
KEYWORD_INDEX_VERSION = 3
# Chunk ids per SQL statement: well under SQLite's limit on bound parameters.
_SQL_BATCH = 500
# The most terms one CJK letter of a one-letter query is searched as: the commonest that hold it.
MAX_LETTER_TERMS = 500

SCHEMA = """
-- The keyword index: every chunk's text in SQLite FTS5, written in the same transactions as
-- the manifest rows that list the chunks.
CREATE TABLE IF NOT EXISTS chunks (
    id INTEGER PRIMARY KEY,
    collection TEXT NOT NULL,
    chunk_id TEXT NOT NULL,
    source TEXT NOT NULL,
    UNIQUE (collection, chunk_id)
);
CREATE INDEX IF NOT EXISTS chunks_by_source ON chunks (collection, source);
CREATE VIRTUAL TABLE IF NOT EXISTS chunk_terms USING fts5(
    text, tokenize = 'porter unicode61 remove_diacritics 2'
);
"""
# The same tokenizer on texts of its own, for keyword indexes kept elsewhere (PostgreSQL): they
# hold exactly the tokens this one does. fts5vocab's 'instance' table lists each token of each row.
_ANALYSER_SCHEMA = """
CREATE VIRTUAL TABLE texts USING fts5(text, tokenize = 'porter unicode61 remove_diacritics 2');
CREATE VIRTUAL TABLE tokens USING fts5vocab(texts, 'instance');
"""
_analysers = threading.local()  # one in-memory database per thread: keyword search runs on a worker thread
# The table of indexes made before CJK bigrams: its texts move to chunk_terms the first time.
_UNSEGMENTED_TABLE = "chunk_words"
# ASCII's printable letters to their full-width forms (Unicode's Halfwidth and Fullwidth Forms block).
_FULL_WIDTH = {code: code + 0xFEE0 for code in range(0x21, 0x7F)}
# FTS5 query syntax is not for users: their words are quoted and OR-ed, and bm25 ranks them.
_WORD = re.compile(r"\w+")
# Words that carry no topic: matched, they only rank chunks by how much filler they hold. Not
# ingest.text.STOPWORDS (the answer side's): queries ranked with that list measured worse on SciFact.
_STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves""".split()
)
# Chinese question and function words, simplified and traditional, longest first: like English
# stopwords they say nothing about which passage answers a question, and 什么/如何/哪里 would make
# any chunk look half matched. 请 and 請 alone stay: they begin 请求 and end 申请 (Japanese writes 申請 too).
_CHINESE_FUNCTION_WORDS = re.compile(
    "为什么|為什麼|為甚麼|怎么样|怎麼樣|有什么|有什麼|有甚麼|是什么|是什麼|是甚麼|有哪些|是哪些|是不是|"
    "什么|什麼|甚麼|怎么|怎麼|怎样|怎樣|如何|哪里|哪裡|哪裏|哪儿|哪兒|哪些|哪个|哪個|为何|為何|是否|"
    "请问|請問|可以|能否|我们|我們|你们|你們|他们|他們|这个|這個|那个|那個|这些|這些|那些|一下|"
    "吗|嗎|呢|吧|的|了|是|在|和|与|與|或|谁|誰|几|幾|您|你|我"
)
# Korean question words, and the particles and endings that close a word (only there: 이 and
# 로 begin 이점 and 로컬).
_KOREAN_FUNCTION_WORDS = frozenset("무엇 어떻게 어떤 어디 언제 왜 누가 누구 얼마나 몇 무슨".split())
_KOREAN_ENDING = re.compile(
    "(?:무엇인가요|인가요|한가요|입니까|습니까|하나요|있나요|할까요|하려면|하는|하면|하기|합니다|하세요|인지|나요|까요|이란|란|"
    "에서|으로|은|는|이|가|을|를|의|에|로|와|과|도|만)$"
)

# Japanese writes its topic words in kanji and katakana, and what binds them (の, は, ですか, どこ)
# in hiragana: a question's hiragana says no more about which passage answers it than "of the".
_HIRAGANA = re.compile("[\u3041-\u309f]+")
_KATAKANA_WORD = re.compile("[\u30a0-\u30ff]+")


def cjk_bigrams(run: str) -> list[str]:
    """The overlapping letter pairs of a run of CJK letters (a lone letter stands for itself)."""
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def index_text(text: str, as_simplified: bool = True) -> str:
    """`text` as the keyword index reads it: each run of CJK letters as its bigrams (a Chinese or
    Japanese word wrapped over two lines is one run), the rest as it is; traditional Chinese as
    simplified Chinese writes it, unless `as_simplified` is False (as indexes made before read it)."""
    unwrapped_text = unwrapped(text)
    read = simplified(unwrapped_text) if as_simplified else unwrapped_text
    return CJK_RUN.sub(lambda run: f" {' '.join(cjk_bigrams(run.group()))} ", read)


def analysed(texts: Sequence[str], as_simplified: bool = True) -> list[Counter[str]]:
    """The tokens of each text, and how often each occurs, as the FTS5 keyword index holds them:
    CJK runs as bigrams (`index_text`), then FTS5's own tokenizer (diacritics removed, stemmed)."""
    analyser = getattr(_analysers, "db", None)
    if analyser is None:
        analyser = _analysers.db = sqlite3.connect(":memory:", isolation_level=None)
        analyser.executescript(_ANALYSER_SCHEMA)
    analyser.executemany(
        "INSERT INTO texts (rowid, text) VALUES (?, ?)",
        ((row, index_text(text, as_simplified)) for row, text in enumerate(texts)),
    )
    counts: list[Counter[str]] = [Counter() for _ in texts]
    for row, term, occurrences in analyser.execute("SELECT doc, term, count(*) FROM tokens GROUP BY doc, term"):
        counts[row][term] = occurrences
    analyser.execute("DELETE FROM texts")
    return counts


def query_terms(query: str, as_simplified: bool = True) -> list[str]:
    """The terms of `query` the keyword index looks for: its words and the bigrams of its CJK runs,
    less stopwords and function words, once each; a Latin word or number in both its widths.
    `as_simplified`: as `index_text`, which the index's text was read with."""
    terms = _terms(CJK_RUN.sub(lambda run: f" {' '.join(_content_parts(run.group()))} ", query), as_simplified)
    return list(dict.fromkeys(width for term in terms for width in _both_widths(term)))


def searched_terms(query: str, containing: Callable[[str], list[str]], as_simplified: bool = True) -> list[str]:
    """`query_terms`, where every CJK word of the query is one letter (柜, 집, 鍵), with each such
    letter's terms in the index (`containing` lists them): the index holds a letter alone only where
    its run is one letter long, and elsewhere inside the bigrams around it (衣柜, 집에)."""
    terms = query_terms(query, as_simplified)
    letters = [term for term in terms if CJK_RUN.fullmatch(term)]
    if not letters or any(len(letter) > 1 for letter in letters):
        return terms
    return list(dict.fromkeys(found for term in terms for found in ([term, *containing(term)] if term in letters else [term])))


def _both_widths(term: str) -> list[str]:
    """The term, and the other width of a Latin word or number: Japanese and Chinese text writes them
    full-width too (ＶＰＮ, ４４１２), which FTS5's tokenizer keeps apart from the ASCII ones."""
    narrow = unicodedata.normalize("NFKC", term)
    if not narrow.isascii():
        return [term]
    return list(dict.fromkeys([term, narrow, narrow.translate(_FULL_WIDTH)]))


def _terms(text: str, as_simplified: bool = True) -> list[str]:
    words_read = _WORD.findall(index_text(text, as_simplified).lower())
    return list(dict.fromkeys(word for word in words_read if word not in _STOPWORDS))


def cjk_terms(text: str, question: bool = False) -> set[str]:
    """The bigrams of the CJK runs of `text`; of a question's, those of its topic parts only (no
    function words, no Japanese hiragana), as `term_coverage` counts them."""
    runs = CJK_RUN.findall(simplified(text))
    if question:
        runs = [part for run in runs for part in topic_parts(run)]
    return {bigram for run in runs for bigram in cjk_bigrams(run)}


def term_coverage(question: str, text: str) -> float:
    """The share of the question's content that `text` holds, as the keyword index matches it.

    Each content word of the question outside CJK runs counts once (stemmed, as `ingest.text`
    compares words); each letter of its CJK runs, less function words (and Japanese hiragana),
    counts once, and is found when a bigram it is part of is in `text` (a lone letter: when `text`
    holds it). A katakana word is a loanword spelt out: it is found whole or not at all.
    """
    question, text = simplified(question), simplified(text)
    found_terms = set(_terms(text))
    found_words = {stem(word) for word in words(CJK_RUN.sub(" ", text))}
    wanted_words = stems(CJK_RUN.sub(" ", question))
    wanted_letters = covered_letters = 0
    for run in (part for run in CJK_RUN.findall(question) for part in topic_parts(run)):
        covered = set()
        if _KATAKANA_WORD.fullmatch(run):
            covered = set(range(len(run))) if run in text else set()
        else:
            for start, bigram in enumerate(cjk_bigrams(run)):
                if bigram in found_terms or (len(run) == 1 and run in text):
                    covered.update((start, start + len(bigram) - 1))
        wanted_letters += len(run)
        covered_letters += len(covered)
    wanted = len(wanted_words) + wanted_letters
    return (len(wanted_words & found_words) + covered_letters) / wanted if wanted else 0.0


def _content_parts(run: str) -> list[str]:
    """A CJK run of a question without its function words, as the runs left between them."""
    if "\uac00" <= run[0] <= "\ud7af":  # Hangul: a word, spaces around it
        content = _KOREAN_ENDING.sub("", run)
        return [] if not content or content in _KOREAN_FUNCTION_WORDS else [content]
    return [part for part in _CHINESE_FUNCTION_WORDS.split(run) if part]


def topic_parts(run: str) -> list[str]:
    """A CJK run of a question as the parts that name its topic: in Japanese, what is not hiragana."""
    parts = _content_parts(run)
    return [piece for part in parts for piece in _HIRAGANA.split(part) if piece] if _HIRAGANA.search(run) else parts


def move_unsegmented(db: sqlite3.Connection) -> None:
    """Index again the texts of a keyword index made before CJK bigrams (a migration step of
    ingest/index/schema.py, run inside its transaction)."""
    if _has_table(db, _UNSEGMENTED_TABLE):
        # OR REPLACE: an older rag opening this file again would have made the old table anew.
        db.executemany(
            "INSERT OR REPLACE INTO chunk_terms (rowid, text) VALUES (?, ?)",
            ((rowid, index_text(text)) for rowid, text in db.execute(f"SELECT rowid, text FROM {_UNSEGMENTED_TABLE}")),
        )
        db.execute(f"DROP TABLE {_UNSEGMENTED_TABLE}")


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


class KeywordIndex(CollectionTables):
    """One collection's chunks in the keyword index (in the manifest's SQLite file)."""

    def add(self, ids: Sequence[str], texts: Sequence[str], sources: Sequence[str]) -> None:
        for chunk_id, text, source in zip(ids, texts, sources):
            rowid = self.db.execute(
                "INSERT INTO chunks (collection, chunk_id, source) VALUES (?, ?, ?)",
                (self.collection, chunk_id, source),
            ).lastrowid
            self.db.execute("INSERT INTO chunk_terms (rowid, text) VALUES (?, ?)", (rowid, index_text(text)))

    def forget(self, chunk_ids: Sequence[str]) -> None:
        for start in range(0, len(chunk_ids), _SQL_BATCH):
            batch = list(chunk_ids[start : start + _SQL_BATCH])
            marks = ",".join("?" * len(batch))
            rows = f"SELECT id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})"
            self.db.execute(f"DELETE FROM chunk_terms WHERE rowid IN ({rows})", (self.collection, *batch))
            self.db.execute(
                f"DELETE FROM chunks WHERE collection = ? AND chunk_id IN ({marks})", (self.collection, *batch)
            )

    def forget_collection(self) -> None:
        self.db.execute(
            "DELETE FROM chunk_terms WHERE rowid IN (SELECT id FROM chunks WHERE collection = ?)", (self.collection,)
        )
        self.db.execute("DELETE FROM chunks WHERE collection = ?", (self.collection,))

    def query(
        self, query: str, k: int, sources: Sequence[str] | None = None, as_simplified: bool = True
    ) -> list[tuple[str, float]]:
        """(chunk id, BM25 score: higher is better) of the `k` best keyword matches."""
        terms = searched_terms(query, self._terms_containing, as_simplified)
        if not terms or sources == []:
            return []
        match = " OR ".join(f'"{term}"' for term in terms)
        source_filter = f" AND chunks.source IN ({','.join('?' * len(sources))})" if sources else ""
        rows = self.db.execute(
            "SELECT chunks.chunk_id, -bm25(chunk_terms) FROM chunk_terms "
            "JOIN chunks ON chunks.id = chunk_terms.rowid "
            f"WHERE chunk_terms MATCH ? AND chunks.collection = ?{source_filter} ORDER BY bm25(chunk_terms) LIMIT ?",
            (match, self.collection, *(sources or ()), k),
        )
        return [(chunk_id, score) for chunk_id, score in rows]

    def _terms_containing(self, letter: str) -> list[str]:
        """The index's terms that hold `letter`, the commonest first (fts5vocab lists them; a temporary
        table of this connection, over every collection's terms)."""
        self.db.execute("CREATE VIRTUAL TABLE IF NOT EXISTS temp.chunk_vocabulary USING fts5vocab(main, chunk_terms, 'row')")
        rows = self.db.execute(
            "SELECT term FROM temp.chunk_vocabulary WHERE instr(term, ?) ORDER BY doc DESC, term LIMIT ?",
            (letter, MAX_LETTER_TERMS),
        )
        return [term for (term,) in rows]

    def listed(self, chunk_ids: Sequence[str]) -> set[str]:
        """Those of `chunk_ids` in the keyword index."""
        if not chunk_ids:
            return set()
        marks = ",".join("?" * len(chunk_ids))
        rows = self.db.execute(
            f"SELECT chunk_id FROM chunks WHERE collection = ? AND chunk_id IN ({marks})",
            (self.collection, *chunk_ids),
        )
        return {chunk_id for (chunk_id,) in rows}

    def chunk_ids(self) -> set[str]:
        rows = self.db.execute("SELECT chunk_id FROM chunks WHERE collection = ?", (self.collection,))
        return {chunk_id for (chunk_id,) in rows}
