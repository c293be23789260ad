"""Search queries written by the model, as in the guide rag grew from: the model is asked for a few
queries like the question (the `search_queries` task, in the question's language), each is searched
besides the question, and the rankings are fused (rag.retrieval).

Small models do not write a clean list. They number it or bullet it, quote the queries, bold them,
open with "Here are three queries:", repeat the question, repeat a query, answer the question instead
(a command, a made-up fact), or write nothing useful. The prompt asks for questions that end with a
question mark, as the guide's does, so `parse_queries` keeps the lines that do, once each, and
nothing rather than noise: the question is then searched alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ingest.text import fold
from rag.backends import backend_errors, create_llm, with_generation
from rag.languages import detect_language, texts
from rag.prompting import select_prompt
from rag.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel
    from langchain_core.prompt_values import PromptValue

TASK = "search_queries"
COUNT_WORDS = {1: "ONE", 2: "TWO", 3: "THREE", 4: "FOUR", 5: "FIVE"}
# Room to write each query; a model that runs on stops there.
TOKENS_PER_QUERY = 48
# A line longer than this many times the question (plus a little) is an answer or a run-on, not a query.
LENGTH_FACTOR = 4
LENGTH_SLACK = 40

# What opens a list item: "1.", "2)", "(3)", "-", "*", "•", "Query 2:", "검색어 1:".
_ITEM_MARK = re.compile(
    r"^\s*(?:[-*•·●▪>]+\s*|\(?\d{1,2}\s*[.)、:：．]\s*|\d{1,2}\s+(?=\D)|(?:search\s+)?quer(?:y|ies)\s*\d*\s*[:：.]\s*)+",
    re.IGNORECASE,
)
# Several numbered items run together on one line ("1. a? 2. b?").
_INLINE_ITEM = re.compile(r"(?<=[?？.!])\s+(?=\(?\d{1,2}\s*[.)]\s)")
_QUOTES = "\"'`“”‘’「」『』«»*_"
QUESTION_MARKS = ("?", "？")
_LABEL = re.compile(r"^\s*(?:question|answer|search queries|queries|sources|note)\s*[:：]", re.IGNORECASE)


def count_word(count: int) -> str:
    return COUNT_WORDS.get(count, str(count))


def parse_queries(text: str, question: str, count: int) -> list[str]:
    """At most `count` distinct queries from what the model wrote, none of them the question itself;
    an empty list when it wrote nothing that reads as a query."""
    limit = LENGTH_FACTOR * len(question) + LENGTH_SLACK
    seen = {_key(question)}
    queries: list[str] = []
    for line in (item for raw in text.splitlines() for item in _INLINE_ITEM.split(raw)):
        query = _clean(line)
        key = _key(query)
        if not key or key in seen or len(query) > limit or not query.endswith(QUESTION_MARKS) or _LABEL.match(query):
            continue
        seen.add(key)
        queries.append(query)
        if len(queries) == count:
            break
    return queries


def _clean(line: str) -> str:
    line = _ITEM_MARK.sub("", line.strip())
    previous = None
    while previous != line:  # quotes and emphasis may nest: **"query"**
        previous = line
        line = line.strip().strip(_QUOTES).strip()
    return line


def _key(query: str) -> str:
    """What two writings of one query share: its letters and digits, case and width folded."""
    return "".join(char for char in fold(query) if char.isalnum())


@dataclass
class QueryWriter:
    """Asks a model for search queries like a question, one prompt per language."""

    llm: "BaseLanguageModel"
    prompt_style: str = "auto"
    _prompts: dict = field(default_factory=dict, repr=False)

    def write(self, question: str, count: int) -> list[str]:
        """Up to `count` queries like `question`, in its language (none when the model gave none)."""
        if count <= 0 or not question.strip():
            return []
        return parse_queries(self.reply(question, count), question, count)

    def reply(self, question: str, count: int) -> str:
        """What the model writes when asked for `count` queries like `question`."""
        prompt, stop = self.prompt(question, count)
        # Greedy: the same question is searched the same way every time.
        reply = with_generation(self.llm, TOKENS_PER_QUERY * count, 0.0).invoke(prompt, stop=stop or None)
        return str(getattr(reply, "content", reply))

    def prompt(self, question: str, count: int) -> tuple["PromptValue", list[str]]:
        """The prompt asking for `count` queries like `question`, in the model's format, and its stops."""
        language = detect_language(question)
        chosen = self._prompts.get(language)
        if chosen is None:
            chosen = self._prompts[language] = select_prompt(self.llm, TASK, self.prompt_style, language)
        values = {"question": question.strip(), "count": count_word(count), "language": texts(language).name}
        return chosen.prompt.invoke(values), list(chosen.stop)


_WRITERS: dict[str, QueryWriter] = {}


def query_writer(settings: Settings) -> QueryWriter:
    """A writer with the settings' model, loaded once per process."""
    key = settings.model_dump_json(include={"llm"})
    if key not in _WRITERS:
        _WRITERS[key] = QueryWriter(create_llm(settings), settings.llm.prompt_style)
    return _WRITERS[key]


def write_queries(question: str, count: int, settings: Settings) -> list[str]:
    """`count` queries like `question` by the settings' model (loaded once per process)."""
    with backend_errors(settings):
        return query_writer(settings).write(question, count)
