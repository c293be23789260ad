"""Batch jobs over the knowledge base: a summary per document (or of everything), or records
extracted to a JSON Schema per document or per chunk.

    job = rag.extract({"type": "object", ...}, ["notes/"], settings)
    for record in job:      # one record per item, as each finishes
        print(record.to_dict() if record.ok else record.error)

Every model call fits the model's context window: a long document is read in parts, whose
summaries are combined (map-reduce) or whose records are merged. Replies are memoised by prompt,
so a job resumed after an interruption never asks the model the same thing twice.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import threading
import time
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, MutableMapping, Sequence, TypeVar, cast

from langchain_core.language_models import BaseLanguageModel, BaseLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import Runnable

from ingest.index import Index
from ingest.scripts import SAMPLE_CHARS, cjk_language_of, han_language
from rag.backends import backend_errors, context_window, count_tokens, create_llm, json_schema_constrained, with_generation, writing_in
from rag.backends.base import traits
from rag.batch.grammar import Plan, plan
from rag.batch.schema import NOT_JSON, bounded, merge, parse_reply, schema_problem
from rag.batch.selection import Item, Passage, Per, read_passages, select_items
from rag.chain import FirstLineLLM
from rag.errors import ConfigError
from rag.grounding import check_grounding
from rag.languages import DEFAULT as DEFAULT_LANGUAGE
from rag.languages import detect_language, texts
from rag.prompting import SelectedPrompt, select_prompt, task
from rag.settings import Settings

# Prompt tokens kept free in an extraction prompt for showing the model its invalid reply.
FEEDBACK_RESERVE_TOKENS = 256
FEEDBACK_REPLY_CHARS = 600
# A reply that is no JSON and this close to batch.max_tokens was cut off by the budget (counting the
# reply's text again can come out a few tokens short of what was generated).
CUT_OFF_SHARE = 0.9
ALL_SOURCES_LABEL = "the selected documents"
ALL_KEY = "all"  # the item key of `summarize --all`'s single record
R = TypeVar("R")
V = TypeVar("V")
GONE = "its chunks are no longer in the index (it changed since the job was planned); run the job again"


@dataclass
class CallStats:
    calls: int = 0
    tokens: int = 0  # generated
    seconds: float = 0.0  # spent in the model

    def add(self, other: "CallStats") -> None:
        self.calls += other.calls
        self.tokens += other.tokens
        self.seconds += other.seconds


def generating_settings(settings: Settings) -> Settings:
    """The settings a job's model writes with: the configured model at batch's budget and temperature."""
    generation = {"max_tokens": settings.batch.max_tokens, "temperature": settings.batch.temperature}
    return settings.model_copy(update={"llm": settings.llm.model_copy(update=generation)})


class BatchModel:
    """The configured model, prompted for batch tasks in its family's format, within its window."""

    def __init__(self, settings: Settings, llm: BaseLanguageModel | None, memo: MutableMapping[str, str]):
        self.settings = settings
        self.llm = llm or create_llm(generating_settings(settings))
        self.window = context_window(self.llm, settings.llm.n_ctx)
        self.memo = memo
        self.stats = CallStats()
        self.on_call: Callable[[CallStats], None] | None = None
        self._prompts: dict[tuple[str, str], SelectedPrompt] = {}  # by (task, language)
        # Items and the parts of one item may run on several threads at once (batch.parallel): each
        # thread counts its own calls, and at most `parallel` requests are in flight.
        self._lock = threading.Lock()
        self._counting = threading.local()
        self._in_flight = threading.BoundedSemaphore(self.parallel)

    @functools.cached_property
    def parallel(self) -> int:
        """Requests kept in flight: batch.parallel, where the model takes requests in parallel, else 1."""
        return self.settings.batch.parallel if traits(self.llm).rag_parallel_requests() else 1

    @contextlib.contextmanager
    def counting(self) -> Iterator[CallStats]:
        """The model calls made inside, on this thread; they count in an enclosing `counting` too."""
        outer = getattr(self._counting, "stats", None)
        stats = self._counting.stats = CallStats()
        try:
            yield stats
        finally:
            self._counting.stats = outer
            if outer is not None:
                outer.add(stats)

    def map(self, work: Callable[[V], R], values: Sequence[V]) -> list[R]:
        """work(value) for each value, in order; concurrently where requests may run in parallel (the parts
        of one document are independent until merged). Their model calls count in the caller's `counting`."""
        if self.parallel == 1 or len(values) < 2:
            return [work(value) for value in values]
        caller = getattr(self._counting, "stats", None)

        def counted(value: V) -> tuple[R, CallStats]:
            self._counting.stats = None  # a pool thread may carry the count of an earlier map
            with self.counting() as stats:
                return work(value), stats

        with ThreadPoolExecutor(min(self.parallel, len(values)), thread_name_prefix="rag-part") as pool:
            done = list(pool.map(counted, values))
        if caller is not None:
            for _, stats in done:
                caller.add(stats)
        return [result for result, _ in done]

    def prompt(self, task_name: str, language: str = DEFAULT_LANGUAGE) -> SelectedPrompt:
        """The task's prompt, its texts in `language` (a summary's is its document's)."""
        if (task_name, language) not in self._prompts:
            self._prompts[task_name, language] = select_prompt(self.llm, task_name, self.settings.llm.prompt_style, language)
        return self._prompts[task_name, language]

    def tokens(self, text: str) -> int:
        return count_tokens(self.llm, text)

    def room(self, task_name: str, reserve: int = 0, language: str = DEFAULT_LANGUAGE, **values: str) -> int:
        """Tokens left for the task's {text} once the prompt's other parts and the reply are counted."""
        empty = self.prompt(task_name, language).prompt.format_prompt(text="", **values).to_string()
        room = self.window - self.settings.batch.max_tokens - self.tokens(empty) - reserve
        if room < self.settings.batch.max_tokens:
            raise ConfigError(
                f"The model's context window ({self.window} tokens) leaves too little room for the {task_name} "
                f"prompt and a {self.settings.batch.max_tokens}-token reply; raise llm.n_ctx or lower batch.max_tokens."
            )
        return room

    def with_budget(self, max_tokens: int) -> BaseLanguageModel:
        """The model writing up to `max_tokens` instead of batch.max_tokens (its weights shared)."""
        return with_generation(self.llm, max_tokens, None)

    def generate(
        self, task_name: str, values: dict[str, str], constrained: Runnable | None = None, max_tokens: int | None = None,
        language: str = DEFAULT_LANGUAGE,
    ) -> str:
        """The model's reply to the task's prompt in `language`; `max_tokens` for a longer reply than
        batch.max_tokens (`constrained` then made from `with_budget(max_tokens)`)."""
        selected = self.prompt(task_name, language)
        prompt = selected.prompt.format_prompt(**values)
        longer = f"\0{max_tokens}" if max_tokens else ""
        key = hashlib.sha256(f"{task_name}\0{constrained is not None}{longer}\0{prompt.to_string()}".encode()).hexdigest()
        with self._lock:
            if key in self.memo:
                return self.memo[key]
        llm = self.with_budget(max_tokens) if max_tokens else self.llm
        # Only a text model's prompt asks for the first line.
        model: Runnable = constrained or (FirstLineLLM(inner=cast(BaseLLM, llm)) if selected.first_line_only else llm)
        if stop := [*selected.stop, *self.settings.llm.stop]:
            model = model.bind(stop=stop)
        if constrained is None and (kept := writing_in(llm, language, "".join(values.values()))):
            model = model.bind(**kept)
        with self._in_flight, backend_errors(self.settings):
            started = time.perf_counter()
            reply = (model | StrOutputParser()).invoke(prompt).strip()
        call = CallStats(1, self.tokens(reply) - self.tokens(""), time.perf_counter() - started)
        if counted := getattr(self._counting, "stats", None):
            counted.add(call)
        with self._lock:
            self.memo[key] = reply
            self.stats.add(call)
            if self.on_call:
                self.on_call(call)
        return reply


def pack(texts: Sequence[str], room: int, count: Callable[[str], int], separator: str = "\n\n") -> list[list[str]]:
    """Consecutive texts grouped so that each group, joined, fits in `room` tokens."""
    groups: list[list[str]] = []
    used = room
    for text in texts:
        size = count(text) + count(separator)
        if size > room:
            raise ConfigError(
                f"A {size}-token passage does not fit in the {room} tokens the model's context window leaves; "
                "raise llm.n_ctx, or lower batch.max_tokens or chunking.chunk_tokens."
            )
        if used + size > room:
            groups.append([])
            used = 0
        groups[-1].append(text)
        used += size
    return groups


def passage_texts(passages: Sequence[Passage]) -> list[str]:
    """Each passage's text, led by its heading where the heading changes."""
    texts = []
    heading = None
    for passage in passages:
        now = passage.location.get("heading")
        texts.append(f"{now}\n{passage.text}" if now and now != heading else passage.text)
        heading = now
    return texts


@dataclass
class Summary:
    key: str
    sources: list[str]
    summary: str
    chunk_ids: list[str]
    stats: CallStats = field(default_factory=CallStats)
    error: str | None = None
    # The numbers, dates, codes and names the summary states that what it summarises does not
    # (its document's passages; for all documents, their summaries): the grounding check of answers.
    unsupported: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {"sources": self.sources, "error": self.error}
        if self.key == ALL_KEY:
            return {"scope": "all", "sources": self.sources, "summary": self.summary, "unsupported": self.unsupported}
        return {"source": self.sources[0], "summary": self.summary, "chunk_ids": self.chunk_ids, "unsupported": self.unsupported}

    def markdown(self) -> str:
        title = f"All {len(self.sources)} documents" if self.key == ALL_KEY else self.sources[0]
        flagged = f"{texts(detect_language(self.summary)).not_in_sources}: {', '.join(self.unsupported)}\n\n" if self.unsupported else ""
        return f"## {title}\n\n{self.summary}\n\n{flagged}"


def text_language(written: list[str]) -> str:
    """'ko', 'zh', 'zh-Hant' or 'ja' for texts mostly written in Chinese, Japanese or Korean letters
    (as a new collection's language is told: py3langid takes a Chinese page full of code for
    English), else English. Chinese is traditional where its letters' forms say so."""
    language = cjk_language_of(written) or DEFAULT_LANGUAGE
    if language == "zh" and han_language("\n".join(text[:SAMPLE_CHARS] for text in written)) == "zh-Hant":
        return "zh-Hant"
    return language


def unsupported_in(summary: str, summarised: list[str]) -> list[str]:
    """The facts of `summary` that none of the `summarised` texts states."""
    found = check_grounding(summary, summarised)
    return [claim for claim in found.unsupported if found.kinds[claim] != "citation"]


def unsupported_values(data: Any, sources: list[str]) -> dict[str, list[str]]:
    """The facts each value of an extracted record states that none of `sources` does, by the value's
    path ("amount", "items[0].price"; "data" for a record that is one value). A number is one fact;
    a string's are its numbers, dates, codes and names; booleans and nulls state none."""
    found: dict[str, list[str]] = {}

    def visit(value: Any, path: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                visit(item, f"{path}.{key}" if path else str(key))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                visit(item, f"{path}[{index}]")
        elif isinstance(value, (str, int, float)) and not isinstance(value, bool):
            if claims := unsupported_in(_as_written(value), sources):
                found[path or "data"] = claims

    visit(data, "")
    return found


def _as_written(value: str | int | float) -> str:
    """A value as a document would write it: 5000.0 as 5000."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


@dataclass
class Extraction:
    key: str
    source: str
    chunk_ids: list[str]
    location: dict[str, Any]
    data: Any = None
    error: str | None = None  # why the record failed, after every attempt
    raw: str | None = None  # the model's last reply, for a failed record
    attempts: int = 0
    constrained: bool = False
    stats: CallStats = field(default_factory=CallStats)
    # The values that state a fact the record's passages do not, by path (`unsupported_values`).
    unsupported: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None

    def provenance(self) -> dict[str, Any]:
        return {"source": self.source, "location": self.location, "chunk_ids": self.chunk_ids}

    def to_dict(self) -> dict[str, Any]:
        if not self.ok:
            return {**self.provenance(), "error": self.error, "raw": self.raw, "attempts": self.attempts}
        return {**self.provenance(), "data": self.data, "unsupported": self.unsupported}


class BatchJob:
    """Planned items (len(job)); iterating runs the model on each item not in `skip`, in order."""

    kind = ""

    def __init__(
        self, settings: Settings, index: Index, items: list[Item], selection: dict[str, Any], llm: BaseLanguageModel | None
    ):
        self.settings = settings
        self.items = items
        self.selection = selection
        self.skip: set[str] = set()
        self._memo: MutableMapping[str, str] = {}
        self.on_call: Callable[[CallStats], None] | None = None
        # What the job says once about how it runs (constrained decoding, parallel requests), in `notices`:
        # by default a warning; set `on_notice` to another callable (the CLI prints them), or None.
        self.notices: list[str] = []
        self.on_notice: Callable[[str], None] | None = _warn
        self._llm = llm
        self._index = index

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Summary | Extraction]:
        raise NotImplementedError("each kind of job runs its items its own way")

    @property
    def memo(self) -> MutableMapping[str, str]:
        """The model's replies by prompt: a job resumed with those of an earlier run asks nothing twice."""
        return self._memo

    @memo.setter
    def memo(self, replies: MutableMapping[str, str]) -> None:
        self._memo = replies
        if "model" in vars(self):  # a model made already takes them too
            self.model.memo = replies

    @functools.cached_property
    def model(self) -> BatchModel:
        model = BatchModel(self.settings, self._llm, self.memo)
        model.on_call = self.on_call
        return model

    def fingerprint(self) -> dict[str, Any]:
        """What makes two runs the same job, so that one may continue the other."""
        return {
            "job": self.kind,
            "index": [str(self.settings.index_path), self.settings.collection],
            "selection": self.selection,
            "model": {**generating_settings(self.settings).llm.output_settings(), "max_tokens": self.settings.batch.max_tokens},
        }

    def pending(self) -> list[Item]:
        return [item for item in self.items if item.key not in self.skip]

    def notice(self, text: str) -> None:
        self.notices.append(text)
        if self.on_notice:
            self.on_notice(text)

    @functools.cached_property
    def parallel(self) -> int:
        """Requests kept in flight (BatchModel.parallel); said once where batch.parallel cannot be used."""
        wanted, parallel = self.settings.batch.parallel, self.model.parallel
        if wanted > parallel:
            who = "the model given" if self._llm is not None else f"the {self.settings.llm.backend} backend"
            self.notice(f"{self.kind}: {who} runs one request at a time in this process; batch.parallel {wanted} is not used.")
        return parallel

    def in_order(self, items: Sequence[Item], work: Callable[[Item, list[Passage]], R]) -> Iterator[R]:
        """work(item, its passages) for each item, `parallel` of them at a time, yielded in the items' order.

        Passages are read here, on the calling thread (the index's connections belong to it); only the
        model calls run on the worker threads, and the parts of one item share the same request limit.
        """
        if self.parallel == 1:
            for item in items:
                yield work(item, self.passages(item))
            return
        pool = ThreadPoolExecutor(self.parallel, thread_name_prefix=f"rag-{self.kind}")
        # Twice the workers queued, so the next request is ready as soon as one finishes.
        window: deque[Future[R]] = deque()
        try:
            for item in items:
                window.append(pool.submit(work, item, self.passages(item)))
                if len(window) >= 2 * self.parallel:
                    yield window.popleft().result()
            while window:
                yield window.popleft().result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)

    def passages(self, item: Item) -> list[Passage]:
        return read_passages(self._index, item)


class SummarizeJob(BatchJob):
    kind = "summarize"

    def __init__(self, *args: Any, combine: bool = False, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.combine = combine

    def __len__(self) -> int:
        return 1 if self.combine else len(self.items)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "combine": self.combine}

    def __iter__(self) -> Iterator[Summary]:
        if not self.combine:
            yield from self.in_order(self.pending(), self._summarize)
            return
        if ALL_KEY in self.skip:
            return
        parts = list(self.in_order(self.items, self._summarize))
        summaries = [summary for summary in parts if summary.ok]
        sources = [item.source for item in self.items]
        if not summaries:
            yield Summary(ALL_KEY, sources, "", [], error=GONE)
            return
        labelled = [f"{Path(s.sources[0]).name}: {s.summary}" for s in summaries]
        with self.model.counting() as stats:
            summary = self._combine(ALL_SOURCES_LABEL, labelled, text_language([s.summary for s in summaries]))
        for part in parts:
            stats.add(part.stats)
        chunk_ids = [chunk_id for s in summaries for chunk_id in s.chunk_ids]
        unsupported = unsupported_in(summary, labelled)
        yield Summary(ALL_KEY, sources, summary, chunk_ids, stats, unsupported=unsupported)

    def summarize(self, item: Item) -> Summary:
        return self._summarize(item, self.passages(item))

    def _summarize(self, item: Item, passages: list[Passage]) -> Summary:
        if not passages:
            return Summary(item.key, [item.source], "", [], error=GONE)
        label = Path(item.source).name
        read = passage_texts(passages)
        language = text_language(read)
        with self.model.counting() as stats:
            room = self.model.room("summarize", language=language, source=label)
            parts = ["\n\n".join(group) for group in pack(read, room, self.model.tokens)]
            partial = self.model.map(
                lambda part: self.model.generate("summarize", {"source": label, "text": part}, language=language), parts
            )
            summary = self._combine(label, partial, language)
        chunk_ids = [p.chunk_id for p in passages]
        return Summary(item.key, [item.source], summary, chunk_ids, stats, unsupported=unsupported_in(summary, [label, *read]))

    def _combine(self, label: str, summaries: list[str], language: str) -> str:
        """One summary of many, in `language`, combining as many at a time as the context window holds."""
        room = self.model.room("combine", language=language, source=label)
        while len(summaries) > 1:
            groups = pack(summaries, room, self.model.tokens)
            if len(groups) == len(summaries):
                raise ConfigError(
                    "The model's context window cannot hold two summaries at once; "
                    "raise llm.n_ctx or lower batch.max_tokens."
                )
            summaries = self.model.map(
                lambda group: self.model.generate("combine", {"source": label, "text": "\n\n".join(group)}, language=language),
                groups,
            )
        return summaries[0]


class ExtractJob(BatchJob):
    kind = "extract"

    def __init__(self, *args: Any, schema: dict[str, Any], per: Per, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.given_schema = schema
        # What replies are held to: the schema, its unbounded strings and lists bounded so that a
        # reply closes its JSON within batch.max_tokens.
        self.bounds = bounded(schema, self.settings.batch.max_tokens)
        self.schema = self.bounds.schema
        self.per = per
        self.schema_text = json.dumps(self.schema, ensure_ascii=False)
        self._constrained_by_budget: dict[int, Runnable | None] = {}

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "schema": self.given_schema, "per": self.per}

    @functools.cached_property
    def grammar_plan(self) -> Plan:
        """The schema as the backends constrain the model by, and the keywords that leaves unenforced."""
        return plan(self.schema)

    def _bounds_notice(self) -> str | None:
        if not self.bounds.paths:
            return None
        bounds = [f"lists to {self.bounds.max_items} items" if self.bounds.max_items else "",
                  f"strings to {self.bounds.max_length} characters" if self.bounds.max_length else ""]
        return (
            f"{self.kind}: the schema leaves {', '.join(self.bounds.paths)} unbounded; replies keep "
            f"{' and '.join(filter(None, bounds))} to fit batch.max_tokens ({self.settings.batch.max_tokens}); "
            "give the schema its own maxItems and maxLength to choose others."
        )

    @property
    def unenforced(self) -> list[str]:
        """The schema's keywords the model's constrained decoding does not enforce (replies are checked for them)."""
        return self.grammar_plan.unenforced

    @functools.cached_property
    def constrained(self) -> Runnable | None:
        constrained = json_schema_constrained(self.model.llm, self.schema)
        for notice in (self._bounds_notice(), self._constraint_notice(constrained is not None)):
            if notice:
                self.notice(notice)
        return constrained

    def _constraint_notice(self, constrained: bool) -> str | None:
        attempts = self.settings.batch.max_attempts
        checked = f"replies are checked against the schema, and an invalid one retried (batch.max_attempts: {attempts})"
        if not constrained:
            if not traits(self.model.llm).rag_constrains_json():
                who = "the model given" if self._llm is not None else f"the {self.settings.llm.backend} backend"
                return f"{self.kind}: {who} has no constrained decoding; {checked}."
            why = self.grammar_plan.problem or "the grammar converter cannot read this schema"
            return f"{self.kind}: no grammar for this schema ({why}); {checked}."
        if self.unenforced:
            return f"{self.kind}: the model's grammar does not enforce {', '.join(self.unenforced)}; {checked}."
        return None

    def __iter__(self) -> Iterator[Extraction]:
        self.constrained  # decided (and said) once, before any worker thread asks
        yield from self.in_order(self.pending(), self._extract)

    def extract(self, item: Item) -> Extraction:
        return self._extract(item, self.passages(item))

    def _extract(self, item: Item, passages: list[Passage]) -> Extraction:
        record = Extraction(
            item.key, item.source, [p.chunk_id for p in passages], _location(passages), constrained=self.constrained is not None
        )
        with self.model.counting() as stats:
            if passages:
                label = Path(item.source).name
                self._fill(record, passages, label)
                if record.ok:
                    record.unsupported = unsupported_values(record.data, [label, *passage_texts(passages)])
            else:
                record.error = GONE
        record.stats = stats
        return record

    def _fill(self, record: Extraction, passages: list[Passage], label: str) -> None:
        """The record's data from each part of the document that fits the context, merged."""
        room = self.model.room(
            "extract", reserve=FEEDBACK_RESERVE_TOKENS, schema=self.schema_text, source=label, feedback=""
        )
        texts = ["\n\n".join(group) for group in pack(passage_texts(passages), room, self.model.tokens)]
        parts = self.model.map(lambda text: self._extract_text(text, label), texts)
        record.attempts = sum(part.attempts for part in parts)
        if failed := next((part for part in parts if part.error), None):
            record.error, record.raw = failed.error, failed.raw
            return
        values = [part.value for part in parts]
        if len(values) == 1:
            record.data = values[0]
            return
        record.data = merge(values, self.schema)
        if problem := schema_problem(record.data, self.schema):
            record.error = f"the record merged from the document's {len(values)} parts is invalid: {problem}"
            record.raw = json.dumps(record.data, ensure_ascii=False)

    def _extract_text(self, text: str, label: str) -> "PartValue":
        """The JSON value for one text: a reply that fails the schema is shown to the model, which tries
        again; a reply cut off by batch.max_tokens is asked for once more with room to finish."""
        retry = task("extract")["retry"]
        part = PartValue()
        longer = None  # the larger budget, once a reply was cut off: kept for the attempts after
        for _ in range(self.settings.batch.max_attempts):
            part.attempts += 1
            values = {"schema": self.schema_text, "source": label, "text": text, "feedback": part.feedback(retry)}
            reply = self._generate(values, longer)
            part.value, problem = parse_reply(reply, self.schema)
            budget = longer or self.settings.batch.max_tokens
            if problem and not longer and self._cut_off(reply, problem, budget) and (longer := self._longer_budget(values)):
                part.attempts += 1
                reply = self._generate(values, longer)
                part.value, problem = parse_reply(reply, self.schema)
                budget = longer
            if problem is None:
                part.error = part.raw = None
                return part
            part.error, part.raw = self._cut_off(reply, problem, budget) or problem, reply
        return part

    def _generate(self, values: dict[str, str], max_tokens: int | None) -> str:
        if max_tokens is None:
            return self.model.generate("extract", values, self.constrained)
        return self.model.generate("extract", values, self._constrained_for(max_tokens), max_tokens=max_tokens)

    def _longer_budget(self, values: dict[str, str]) -> int | None:
        """Twice batch.max_tokens, or what the context window leaves beside the prompt, if more."""
        prompt = self.model.prompt("extract").prompt.format_prompt(**values).to_string()
        longer = min(2 * self.settings.batch.max_tokens, self.model.window - self.model.tokens(prompt))
        return longer if longer > self.settings.batch.max_tokens else None

    def _constrained_for(self, max_tokens: int) -> Runnable | None:
        if max_tokens not in self._constrained_by_budget:
            self._constrained_by_budget[max_tokens] = json_schema_constrained(self.model.with_budget(max_tokens), self.schema)
        return self._constrained_by_budget[max_tokens]

    def _cut_off(self, reply: str, problem: str, budget: int) -> str | None:
        """The problem said as what to change, when the reply ran out of its token budget (batch.max_tokens,
        or the larger one of the second try) before its JSON closed."""
        if not problem.startswith(NOT_JSON) or self.model.tokens(reply) < CUT_OFF_SHARE * budget:
            return None
        first = self.settings.batch.max_tokens
        again = f", and again with {budget} tokens" if budget != first else ""
        return (
            f"the reply reached batch.max_tokens ({first} tokens) before its JSON closed ({problem}){again}; raise "
            "batch.max_tokens, or bound the schema's strings and lists (maxLength, maxItems) more tightly"
        )


@dataclass
class PartValue:
    """One part's extracted value, or why its last reply failed."""

    value: Any = None
    error: str | None = None
    raw: str | None = None
    attempts: int = 0

    def feedback(self, retry: str) -> str:
        """The retry prompt's note on the last invalid reply ("" before the first attempt)."""
        if self.error is None:
            return ""
        assert self.raw is not None, "a reply that failed is kept with its error"
        return retry.replace("{reply}", self.raw[:FEEDBACK_REPLY_CHARS]).replace("{problem}", self.error)


def _warn(notice: str) -> None:
    warnings.warn(notice, UserWarning, stacklevel=3)


def _location(passages: Sequence[Passage]) -> dict[str, Any]:
    """A chunk's own location; for a document, the pages and headings its chunks cover."""
    if len(passages) == 1:
        return passages[0].location
    location: dict[str, Any] = {}
    for key, plural in (("page", "pages"), ("heading", "headings")):
        if found := list(dict.fromkeys(p.location[key] for p in passages if key in p.location)):
            location[plural] = found
    return location


def summarize(
    settings: Settings,
    sources: Sequence[str] = (),
    *,
    query: str | None = None,
    k: int | None = None,
    combine: bool = False,
    llm: BaseLanguageModel | None = None,
) -> SummarizeJob:
    return SummarizeJob(*_planned(settings, sources, query, k, "document"), llm, combine=combine)


def extract(
    settings: Settings,
    schema: dict[str, Any],
    sources: Sequence[str] = (),
    *,
    per: Per = "document",
    query: str | None = None,
    k: int | None = None,
    llm: BaseLanguageModel | None = None,
) -> ExtractJob:
    return ExtractJob(*_planned(settings, sources, query, k, per), llm, schema=schema, per=per)


def _planned(
    settings: Settings, sources: Sequence[str], query: str | None, k: int | None, per: Per
) -> tuple[Settings, Index, list[Item], dict[str, Any]]:
    """A job's first arguments: the settings, the index, its items and the selection that chose them."""
    index = Index(settings)
    items, patterns = select_items(index, settings, sources, query=query, k=k, per=per)
    return settings, index, items, {"sources": patterns, "query": query, "k": k}
