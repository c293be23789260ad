"""The knowledge base as one long-lived service: the index, the embedder and the model loaded once.

Every front end (the HTTP routes, the OpenAI-compatible routes, the MCP tools) calls this, and
this calls the library (`rag.search`, `rag.Conversation`, `rag.status`, ...): there is no second
implementation of retrieval or answering.

Generations run on worker threads behind a `GenerationGate` (capacity.py): as many at once as the
model server has slots, one at a time for an engine in this process, the rest waiting in a bounded
queue in arrival order; searches, status and `/health` run on other threads and stay responsive
during generations.
"""

from __future__ import annotations

import asyncio
import math
import os
import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterable, Sequence

import rag
from ingest.index import CHUNK_METADATA_KEYS
from rag.errors import RagError, UsageError
from rag.grounding import CITATION
from rag.languages import DEFAULT
from rag.retrieval import chunk_body, embedding_model, location_label, location_of, open_index
from rag.server.capacity import GenerationGate, capacity_for
from rag.settings import Settings

if TYPE_CHECKING:
    from langchain_core.documents import Document
    from langchain_core.language_models import BaseLanguageModel

    from ingest.sync import IngestProgress, IngestReport
    from rag.answering import Answer, Assistant
    from rag.evidence import Evidence

# Assistants kept for (collection, generation options) pairs; each shares the one loaded model.
ASSISTANTS_KEPT = 16
# The highest temperature a request may set, as OpenAI's API allows.
MAX_TEMPERATURE = 2.0
# A query longer than this many characters per allowed token is refused without tokenizing it.
MAX_CHARS_PER_TOKEN = 16
# The transcript a text (non-chat) model continues when it is asked without retrieval.
TRANSCRIPT_ROLES = {"system": "System", "user": "User", "assistant": "Assistant"}


class ChunkNotFoundError(RagError):
    def __init__(self, chunk_id: str):
        super().__init__(f"No chunk {chunk_id!r} in this collection; search results and sources give chunk ids.")


class DocumentNotIndexedError(RagError):
    def __init__(self, source: str):
        super().__init__(f"No indexed document {source!r} in this collection; sources and search results give the paths it holds.")


class IngestOffError(RagError):
    """Ingest over HTTP is off until serve.ingest_roots names the folders it may read."""

    def __init__(self) -> None:
        super().__init__(
            "Ingest over HTTP is off on this server: its owner turns it on by naming the folders it may read "
            "in serve.ingest_roots."
        )


class OutsideRootsError(RagError):
    def __init__(self, path: str, roots: Sequence[Path]):
        super().__init__(
            f"{path!r} is not inside the folders this server may ingest ({', '.join(map(str, roots))}): "
            "give an absolute path inside one of them."
        )


class IngestCancelled(Exception):
    """The client that asked for an ingest went away: it stops where it is (the next one completes it)."""


@dataclass(frozen=True)
class AnswerOptions:
    """What one request may change about answering; None keeps the configured value."""

    k: int | None = None  # chunks retrieved
    max_tokens: int | None = None
    temperature: float | None = None
    stop: tuple[str, ...] = ()


class ModelTurn:
    """One generation on a model worker, its tokens as an async iterator.

    Made only once the gate admits it (else ServerBusyError, before any response starts). `start`
    runs on the worker (it may use the model, as condensing a follow-up does) and returns what
    yields the tokens; it stays in `stream`, so a library stream's `answer` is there afterwards.
    """

    def __init__(self, gate: GenerationGate, start: Callable[[], Iterable[str]]):
        self._gate = gate
        self._start = start
        self._place = gate.admit()
        # A turn dropped unread (its client left before the response began) gives its place back.
        weakref.finalize(self, self._place.leave)
        self.stream: Any = None

    async def tokens(self) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        place = self._place

        def send(kind: str, value: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

        def produce() -> None:
            try:
                self.stream = self._start()
                tokens = iter(self.stream)
                try:
                    for token in tokens:
                        if place.left:  # the client went away: free the slot for the next request
                            return
                        send("token", token)
                finally:
                    # Closing the stream closes its HTTP request, so a model server stops generating too.
                    close = getattr(tokens, "close", None)
                    if close is not None:
                        close()
            except BaseException as exc:  # handed to the request that asked
                send("error", exc)
            else:
                send("end", None)

        self._gate.run(place, produce)
        try:
            while True:
                kind, value = await queue.get()
                if kind == "token":
                    yield value
                elif kind == "error":
                    raise value
                else:
                    return
        finally:
            place.leave()

    async def text(self) -> str:
        return "".join([token async for token in self.tokens()])


class KnowledgeService:
    """The loaded knowledge base: ask, chat, search, chunks, status and embeddings for every collection."""

    def __init__(self, settings: Settings, llm: "BaseLanguageModel | None" = None):
        from rag.backends import create_llm

        self.settings = settings
        self.llm = llm or create_llm(settings)
        self._assistants: OrderedDict[tuple[str, AnswerOptions], "Assistant"] = OrderedDict()
        self.gate = GenerationGate(capacity_for(settings, self.llm))
        self._lock = threading.Lock()
        self.assistant(settings.collection)  # opens the index now: a missing one fails at start
        rag.embeddings(settings).encode(["warm up"])  # the embedder loads now, not at the first question

    def close(self) -> None:
        self.gate.close()

    # -- settings and assistants ------------------------------------------------------------------

    def collection_names(self) -> list[str]:
        names = [collection.name for collection in rag.collections(self.settings)]
        return names or [self.settings.collection]

    def settings_for(self, collection: str | None = None, options: AnswerOptions = AnswerOptions()) -> Settings:
        """The settings of a collection of this index, with a request's answer options on top."""
        collection = collection or self.settings.collection
        if collection != self.settings.collection:
            known = self.collection_names()
            if collection not in known:
                raise UnknownCollectionError(collection, known)
        llm = self.settings.llm
        generation = {
            "max_tokens": options.max_tokens or llm.max_tokens,
            "temperature": llm.temperature if options.temperature is None else options.temperature,
            "stop": [*llm.stop, *options.stop],
        }
        return self.settings.model_copy(update={"collection": collection, "llm": llm.model_copy(update=generation)})

    def assistant(self, collection: str | None = None, options: AnswerOptions = AnswerOptions()) -> "Assistant":
        """The answering pipeline for a collection and generation options, sharing the loaded model."""
        from rag.answering import Assistant

        key = (collection or self.settings.collection, options)
        with self._lock:
            if key in self._assistants:
                self._assistants.move_to_end(key)
                return self._assistants[key]
        settings = self.settings_for(*key)
        assistant = Assistant(settings, llm=self._llm_with(options), k=options.k)
        with self._lock:
            self._assistants[key] = assistant
            while len(self._assistants) > ASSISTANTS_KEPT:
                self._assistants.popitem(last=False)
        return assistant

    def _llm_with(self, options: AnswerOptions) -> "BaseLanguageModel":
        """The loaded model with this request's length and temperature, the weights shared."""
        from rag.backends import with_generation

        return with_generation(self.llm, options.max_tokens, options.temperature)

    # -- answering --------------------------------------------------------------------------------

    def answer_turn(
        self,
        question: str,
        history: Sequence[tuple[str, str]] = (),
        collection: str | None = None,
        options: AnswerOptions = AnswerOptions(),
    ) -> ModelTurn:
        """An answer from the knowledge base; a follow-up is condensed with `history` as `rag chat` does."""
        self.check_text(question, "question")
        self.check_options(options)
        for turn in history:
            for said in turn:
                check_unicode(said, "conversation")

        def start() -> Iterable[str]:
            from rag.answering import Conversation

            conversation = Conversation(self.assistant(collection, options))
            conversation.history = list(history)
            return conversation.stream(question)

        return ModelTurn(self.gate, start)

    def direct_turn(self, messages: Sequence[tuple[str, str]], options: AnswerOptions = AnswerOptions()) -> ModelTurn:
        """The conversation (role, content) sent to the model as it is, without retrieval."""
        from langchain_core.language_models import BaseChatModel

        from rag.backends import backend_errors

        self.check_options(options)
        self.check_prompt_fits(transcript(messages), options)
        llm = self._llm_with(options)
        chat = isinstance(llm, BaseChatModel)
        # A text model continues a transcript, and stops where it would write the next user turn.
        stop = [*self.settings.llm.stop, *options.stop, *([] if chat else ["\nUser:"])]
        bound = llm.bind(stop=stop) if stop else llm
        prompt: Any = list(messages) if chat else transcript(messages)

        def tokens() -> Iterable[str]:
            with backend_errors(self.settings):  # a server backend that is down: one line that says so
                for piece in bound.stream(prompt):
                    yield str(piece.content) if chat else piece

        return ModelTurn(self.gate, tokens)

    def count_tokens(self, text: str) -> int:
        from rag.backends import count_tokens

        return count_tokens(self.llm, text) - count_tokens(self.llm, "")  # the tokenizer adds BOS to both

    # -- retrieval --------------------------------------------------------------------------------

    def search(self, query: str, collection: str | None = None, k: int | None = None, where: dict[str, Any] | None = None, **options: Any):
        self.check_text(query, "query")
        self.check_k(k)
        self.check_where(where)
        where, paths = self._under_documents_root(collection, where, options.pop("paths", None))
        return rag.search(query, self.settings_for(collection), k=k, where=where, paths=paths, **options)

    def _under_documents_root(
        self, collection: str | None, where: dict[str, Any] | None, paths: list[str] | None
    ) -> tuple[dict[str, Any] | None, list[str] | None]:
        """A relative `where` source or `paths` pattern read from the folder the collection's documents
        share, as the page shows them, not from the folder the server was started in."""
        source = where.get("source") if where else None
        given = [*([source] if isinstance(source, str) else []), *(paths or [])]
        root = None if all(os.path.isabs(path) for path in given) else self.documents_root(collection)
        if root is None:
            return where, paths
        if where and isinstance(source, str):
            where = {**where, "source": os.path.join(root, source)}
        return where, paths and [os.path.join(root, path) for path in paths]

    def status(self, collection: str | None = None) -> dict[str, Any]:
        settings = self.settings_for(collection)
        found = rag.status(settings).to_dict()
        found["consistency"] = rag.check(settings).to_dict()
        found["documents_root"] = self.documents_root(collection)
        return found

    def documents_root(self, collection: str | None = None) -> str | None:
        """The folder that holds every document of the collection (what the page shows paths from)."""
        return common_folder(open_index(self.settings_for(collection)).sources())

    def document(self, source: str, collection: str | None = None) -> Path:
        """The file of an indexed document, as the index lists it: no other path on this machine is read."""
        sources = open_index(self.settings_for(collection)).sources()
        path = Path(source)
        if source not in sources or not path.is_file():  # never indexed, or gone from the disk since
            raise DocumentNotIndexedError(source)
        root = os.path.realpath(common_folder(sources) or source)
        if os.path.commonpath([os.path.realpath(path), root]) != root:
            raise DocumentNotIndexedError(source)  # a link put in its place since, to a file outside the documents
        return path

    def chunk(self, chunk_id: str, collection: str | None = None, language: str = DEFAULT) -> dict[str, Any]:
        """A chunk's text, where it is (said in `language`), and the chunks before and after it in its file."""
        index = open_index(self.settings_for(collection))  # the one open index of searches: no file opened per request
        index.require()
        stored = index.get_chunks([chunk_id]).get(chunk_id)
        if stored is None:
            raise ChunkNotFoundError(chunk_id)
        source = stored.metadata.get("source", "")
        record = index.sources().get(source)
        ids = record.chunk_ids if record else [chunk_id]
        position = ids.index(chunk_id) if chunk_id in ids else 0
        location = location_of(stored.metadata)
        return {
            "chunk_id": chunk_id,
            "source": source,
            "location": location,
            "location_label": location_label(location, language=language),
            "text": chunk_body(stored.text, location),
            "position": position + 1,
            "chunks_in_file": len(ids),
            "previous": ids[position - 1] if position > 0 else None,
            "next": ids[position + 1] if position + 1 < len(ids) else None,
        }

    def ingest(
        self, paths: Sequence[str], progress: "IngestProgress", dry_run: bool = False, cancelled: threading.Event | None = None
    ) -> "IngestReport":
        """Sync the index with `paths`, each inside serve.ingest_roots; another ingest running is an error.

        When `cancelled` is set (its client went away) the ingest stops at its next file.
        """
        confined = self.confine(paths)
        watched = progress if cancelled is None else _CancellableProgress(progress, cancelled)
        return rag.ingest(confined, self.settings, dry_run=dry_run, progress=watched, wait=False)

    def check_ingest(self, paths: Sequence[str], dry_run: bool = False) -> None:
        """Refuse an ingest before it starts: a path outside the roots, or another ingest writing now
        (one that starts a moment later is still refused by the ingest itself)."""
        confined = self.confine(paths)
        index = open_index(self.settings)
        # As the ingest locks: its folders where the collection exists (PostgreSQL lets others write
        # elsewhere in it meanwhile), else the whole collection.
        if not dry_run and index.writer_busy(confined if index.exists() else None):
            raise index.busy_error()

    def confine(self, paths: Sequence[str]) -> list[Path]:
        """`paths` resolved (symlinks and `..` followed), each inside an ingest root; `~` is not expanded."""
        roots = [Path(root).expanduser().resolve() for root in self.settings.serve.ingest_roots]
        if not roots:
            raise IngestOffError()
        if not paths:
            raise UsageError("Give at least one file or folder to ingest.")
        confined = []
        for path in paths:
            check_unicode(path, "path")
            if not path.strip():
                raise UsageError("An empty path was given: name a file or folder inside the ingest roots.")
            if "\0" in path:
                raise UsageError(f"The path {path!r} holds a NUL character, which no file name has.")
            if not os.path.isabs(path):  # relative to what the server was started in, or ~: neither is the client's
                raise OutsideRootsError(path, roots)
            resolved = Path(path).resolve()
            if not any(resolved == root or resolved.is_relative_to(root) for root in roots):
                raise OutsideRootsError(path, roots)
            confined.append(resolved)
        return confined

    # -- request limits: the same for every front end ---------------------------------------------

    def check_text(self, text: str, what: str) -> None:
        """A query or question: valid Unicode, not blank, within serve.max_query_tokens."""
        check_unicode(text, what)
        if not text.strip():
            raise UsageError(f"The {what} is empty.")
        limit = self.settings.serve.max_query_tokens
        tokens = (
            None if len(text) > limit * MAX_CHARS_PER_TOKEN else rag.embeddings(self.settings).token_counter.count(text)
        )
        if tokens is None or tokens > limit:
            size = f"{len(text):,} characters" if tokens is None else f"{tokens:,} tokens"
            raise UsageError(f"The {what} is too long ({size}): this server takes at most {limit} tokens (serve.max_query_tokens).")

    def check_prompt_fits(self, prompt: str, options: AnswerOptions) -> None:
        """A conversation sent to the model as it is must leave room in its window for the answer."""
        check_unicode(prompt, "conversation")
        window = self.settings.llm.n_ctx
        answer = options.max_tokens or self.settings.llm.max_tokens
        if len(prompt) > window * MAX_CHARS_PER_TOKEN or self.count_tokens(prompt) + answer > window:
            raise UsageError(
                f"The conversation and an answer of {answer} tokens do not fit the model's window of {window} tokens "
                "(llm.n_ctx): send fewer or shorter messages, or a smaller max_tokens."
            )

    def check_k(self, k: int | None) -> None:
        limit = self.settings.search.candidates
        if k is not None and not 1 <= k <= limit:
            raise UsageError(f"k must be between 1 and {limit} (search.candidates, the chunks each retriever proposes).")

    def check_where(self, where: dict[str, Any] | None) -> None:
        for key, value in (where or {}).items():
            if key not in CHUNK_METADATA_KEYS:
                raise UsageError(f"where: chunks have no {key!r}; use one of: {', '.join(CHUNK_METADATA_KEYS)}.")
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise UsageError(f"where: {key} takes a string or an integer.")

    def check_options(self, options: AnswerOptions) -> None:
        """Generation options within the model's window and a sane temperature; k as for a search."""
        self.check_k(options.k)
        window = self.settings.llm.n_ctx
        if options.max_tokens is not None and not 1 <= options.max_tokens <= window:
            raise UsageError(f"max_tokens must be between 1 and {window} (the model's window, llm.n_ctx).")
        temperature = options.temperature
        if temperature is not None and not (math.isfinite(temperature) and 0 <= temperature <= MAX_TEMPERATURE):
            raise UsageError(f"temperature must be between 0 and {MAX_TEMPERATURE:g}.")
        for stop in options.stop:
            check_unicode(stop, "stop sequence")

    def embed(self, texts: list[str]) -> tuple[list[list[float]], int]:
        """Vectors of `texts` by the index's embedding model, and the tokens it read."""
        for text in texts:
            check_unicode(text, "input")
        embedder = rag.embeddings(self.settings)
        return embedder.embed_documents(texts), sum(embedder.token_counter.count(text) for text in texts)

    @property
    def embedding_model(self) -> str:
        return embedding_model(self.settings)


def check_unicode(text: str, what: str) -> None:
    """JSON can carry a lone surrogate, which no tokenizer or database takes: refuse it as the client's mistake."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UsageError(f"The {what} is not valid Unicode ({exc.reason} at character {exc.start}): send UTF-8 text.") from None


class _CancellableProgress:
    """An ingest's progress that stops the ingest once `cancelled` is set."""

    def __init__(self, progress: "IngestProgress", cancelled: threading.Event):
        self.progress = progress
        self.cancelled = cancelled

    def _check(self) -> None:
        if self.cancelled.is_set():
            raise IngestCancelled

    def start(self, total_files: int, total_bytes: int) -> None:
        self._check()
        self.progress.start(total_files, total_bytes)

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
        self._check()
        self.progress.advance(files, chunks, done_bytes)

    def finish(self) -> None:
        self.progress.finish()


class UnknownCollectionError(UsageError):
    def __init__(self, name: str, known: list[str]):
        super().__init__(f"No collection {name!r} in this index; it holds {', '.join(known)}.")


def transcript(messages: Sequence[tuple[str, str]]) -> str:
    """'User: ...\\nAssistant: ...' lines ending where the assistant speaks next."""
    lines = [f"{TRANSCRIPT_ROLES.get(role, role.title())}: {content.strip()}" for role, content in messages]
    return "\n".join([*lines, "Assistant:"])


def common_folder(sources: Iterable[str]) -> str | None:
    """The folder that holds every one of `sources` (file paths), or None for none."""
    folders = [os.path.dirname(source) for source in sources]
    return os.path.commonpath(folders) if folders else None


def sources_payload(answer: "Answer") -> list[dict[str, Any]]:
    """Each numbered source of an answer with its text and the evidence quoted from it, where it is
    said in the answer's language."""
    return [
        source_payload(number, doc, answer.evidence, answer.language) for number, doc in enumerate(answer.sources, start=1)
    ]


def source_payload(number: int, document: "Document", evidence: Sequence["Evidence"], language: str = DEFAULT) -> dict[str, Any]:
    metadata = document.metadata
    location = location_of(metadata)
    return {
        "number": number,
        "path": metadata["source"],
        "location": location,
        "location_label": location_label(location, language=language),
        "score": round(metadata["score"], 4),
        "similarity": metadata.get("similarity") and round(metadata["similarity"], 4),
        "chunk_id": document.id,
        "text": chunk_body(document.page_content, location),
        "evidence": [quote.to_dict() for quote in evidence if quote.source_number == number],
    }


def citation_suffix(answer: "Answer", declined: bool = False) -> str:
    """The `[n]` markers to append when the model cited nothing: its evidence's sources, else the first."""
    if declined or answer.retracted or not answer.sources or CITATION.search(answer.answer):
        return ""
    numbers = sorted({quote.source_number for quote in answer.evidence}) or [1]
    return " " + "".join(f"[{number}]" for number in numbers)
