"""The public Python API; each function takes optional `settings` (default: `load_settings()`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal, Sequence

from ingest import sync
from ingest.index import CollectionSummary, Index
from ingest.index.migrate import migrate as migrate  # the Python API's `rag.migrate`
from rag import retrieval
from rag import index_status
from rag.errors import UsageError
from rag.settings import MAX_SEARCH_QUERIES, Settings, load_settings

if TYPE_CHECKING:
    import threading

    from langchain_core.language_models import BaseLanguageModel

    from ingest.embedding.embedders import Embedder
    from ingest.index import Consistency
    from ingest.watch import WatchReport
    from rag.batch.jobs import ExtractJob, SummarizeJob
    from rag.answering import Answer
    from rag.answer_eval import AnswerReport, QuestionResult
    from rag.chain import IndexRetriever
    from rag.evaluation import ModeReport


def ingest(
    paths: Sequence[str | Path] | str | Path,
    settings: Settings | None = None,
    *,
    dry_run: bool = False,
    rebuild: bool = False,
    rebuild_all: bool = False,
    progress: sync.IngestProgress | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> sync.IngestReport:
    """Sync the index with the files and folders in `paths`; one deleted since it was ingested
    takes its files out of the index.

    `rebuild` embeds the files under `paths` again; with `rebuild_all` the whole collection is
    dropped first, files from other folders too.

    Another ingest of the same index is waited for (after calling `on_wait`); with `wait=False`
    that raises `IndexBusyError` instead.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    return sync.ingest(
        list(paths), settings or load_settings(), dry_run=dry_run, rebuild=rebuild, rebuild_all=rebuild_all,
        progress=progress, wait=wait, on_wait=on_wait,
    )


def watch(
    paths: Sequence[str | Path] | str | Path,
    settings: Settings | None = None,
    *,
    on_report: Callable[["WatchReport"], None] | None = None,
    stop_event: "threading.Event | None" = None,
    rebuild: bool = False,
    rebuild_all: bool = False,
    progress: sync.IngestProgress | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
    quiet_ms: int | None = None,
) -> None:
    """Sync the index with `paths` as `ingest` does, then again after each burst of changes to
    their files, until `stop_event` is set (Ctrl-C raises KeyboardInterrupt).

    `on_report` gets each sync's `WatchReport`: the first sync's, then one per burst, whose
    `changes()` are its lines (`updated notes/a.md (3 chunks)`). A sync starts once the files
    have been quiet for `quiet_ms` (default 400). `rebuild`, `rebuild_all` and `progress` apply
    to the first sync; `wait` and `on_wait` to each (see `ingest`).
    """
    from ingest import watch as watching

    if isinstance(paths, (str, Path)):
        paths = [paths]
    watching.watch(
        list(paths), settings or load_settings(), on_report or (lambda _report: None), stop_event=stop_event,
        rebuild=rebuild, rebuild_all=rebuild_all, progress=progress, wait=wait, on_wait=on_wait,
        quiet_ms=watching.QUIET_MS if quiet_ms is None else quiet_ms,
    )


def search(
    query: str,
    settings: Settings | None = None,
    k: int | None = None,
    *,
    mode: retrieval.Mode | None = None,
    where: dict | None = None,
    paths: list[str] | None = None,
    mmr: bool | None = None,
    queries: int | None = None,
) -> retrieval.SearchResult:
    """The `k` chunks that best match `query`, best first (hybrid search unless `mode` says otherwise).

    `where` keeps chunks with these metadata values (`{"source": "/abs/path.md"}`, `{"page": 2}`);
    `paths` keeps sources matching any of these glob patterns (absolute). `queries` (default
    search.queries): how many search queries like `query` the language model writes, each searched
    too and fused with it (the result's `queries`); the model loads once per process.
    """
    settings = with_queries(settings or load_settings(), queries)
    generated = []
    if settings.search.queries and query.strip():
        from rag.query_generation import write_queries

        generated = write_queries(query, settings.search.queries, settings)
    return retrieval.search(query, settings, k, mode=mode, where=where, paths=paths, mmr=mmr, generated=generated)


def with_queries(settings: Settings, queries: int | None) -> Settings:
    """`settings` with search.queries set to `queries` (validated), when given."""
    if queries is None:
        return settings
    search = settings.search.model_copy()
    try:
        search.queries = queries
    except ValueError:
        raise UsageError(f"queries must be between 0 and {MAX_SEARCH_QUERIES} (the search queries the model writes); got {queries}.") from None
    return settings.model_copy(update={"search": search})


def retriever(
    settings: Settings | None = None,
    k: int | None = None,
    *,
    mode: retrieval.Mode | None = None,
    where: dict | None = None,
    paths: list[str] | None = None,
    queries: int | None = None,
) -> "IndexRetriever":
    """The knowledge base as a LangChain retriever (a `BaseRetriever`), for chains of your own.

    `invoke(question)` gives the Documents `rag ask` would answer from: the `k` best chunks of a
    `search` (its `mode`, `where` and `paths`), less those the relevance gate (search.min_score,
    search.min_keyword_coverage) finds unrelated. Metadata: source, score, similarity, rank, and
    page, heading and lines where the format has them. `queries` (default search.queries): search
    queries like the question that the language model writes, each searched too. Each call may
    set `k`, `mode`, `where`, `paths` and `queries` for itself: `invoke(question, k=1)`.
    """
    from rag.chain import IndexRetriever

    settings = with_queries(settings or load_settings(), queries)
    return IndexRetriever.from_settings(settings, k, mode=mode, where=where, paths=paths)


def embeddings(settings: Settings | None = None) -> "Embedder":
    """The knowledge base's embedding model as a LangChain `Embeddings` (unit vectors, offline).

    The same instance `search` uses, loaded once per process.
    """
    return retrieval.embedder(settings or load_settings())


def status(settings: Settings | None = None) -> index_status.IndexStatus:
    """Location, size and build settings of the index."""
    return index_status.status(settings or load_settings())


def files(settings: Settings | None = None, paths: Sequence[str | Path] | None = None) -> list[index_status.IndexedFile]:
    """The files the collection holds (path, size, chunks, when and where ingested), by path;
    `paths`: only those under these folders, or these files, or matching these globs."""
    return index_status.files(settings or load_settings(), [str(path) for path in paths or []])


def collections(settings: Settings | None = None) -> list[CollectionSummary]:
    """Every collection the index directory holds: name, files, chunks, where its vectors are, last sync."""
    with Index(settings or load_settings()) as index:
        return index.collections()


def ask(question: str, settings: Settings | None = None, k: int | None = None, *, queries: int | None = None) -> "Answer":
    """Answer `question` from the knowledge base with the configured model.

    `queries` (default search.queries): search queries like the question the model writes first,
    each searched too (the answer's `queries`). Loads the model on every call; keep an
    `rag.Assistant` to ask several questions.
    """
    from rag.answering import Assistant

    return Assistant(with_queries(settings or load_settings(), queries), k=k).ask(question)


def evaluate(
    data_dir: str | Path,
    settings: Settings | None = None,
    *,
    modes: Sequence[retrieval.Mode] | None = None,
    qrels: str | Path | None = None,
    progress: sync.IngestProgress | None = None,
) -> list["ModeReport"]:
    """Retrieval quality on a BEIR-format dataset, per mode; its corpus gets its own collection."""
    from rag import evaluation

    dataset = evaluation.load_dataset(Path(data_dir), Path(qrels) if qrels else None)
    dataset_settings = evaluation.prepare(dataset, settings or load_settings(), progress)
    return evaluation.evaluate(dataset, dataset_settings, modes or evaluation.MODES)


def evaluate_answers(
    qa_file: str | Path,
    docs_dir: str | Path | None = None,
    settings: Settings | None = None,
    *,
    k: int | None = None,
    on_result: Callable[["QuestionResult"], None] | None = None,
    progress: sync.IngestProgress | None = None,
) -> "AnswerReport":
    """Answer quality of the ask pipeline on a QA file (see `rag.answer_eval`).

    With `docs_dir`, those documents are synced into a collection of their own first (fast when
    unchanged) and each question's `source` is a path relative to it; without, the configured
    knowledge base is asked and a source matches by its path's end.
    """
    from rag import answer_eval
    from rag.answering import Assistant

    settings = settings or load_settings()
    items = answer_eval.load_qa(Path(qa_file))
    folder = None
    if docs_dir is not None:
        folder = Path(docs_dir).expanduser().resolve()
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder: give the folder the QA file's sources are relative to.")
        settings = answer_eval.docs_settings(settings, folder)
        sync.ingest([folder], settings, progress=progress)
    return answer_eval.evaluate_answers(items, Assistant(settings, k=k), folder, on_result)


def check(settings: Settings | None = None) -> "Consistency":
    """Whether the manifest, Chroma and the keyword index agree (read-only).

    Raises `VectorsMissingError` when the vector store holds none of the chunks the manifest lists.
    """
    with Index(settings or load_settings()) as index:
        index.require()
        return index.problems()


def repair(settings: Settings | None = None) -> "Consistency":
    """Make the stores agree again, as the next ingest after a crash would; returns what it found.

    Never forgets every file because the vector store looks empty: that raises `VectorsMissingError`.
    """
    with Index(settings or load_settings()) as index:
        index.require()
        with index.writer_lock():
            return index.reconcile()


def summarize(
    sources: Sequence[str] = (),
    settings: Settings | None = None,
    *,
    query: str | None = None,
    k: int | None = None,
    combine: bool = False,
    llm: "BaseLanguageModel | None" = None,
) -> "SummarizeJob":
    """A summary per document (`combine=True`: one of them all), as a job to iterate.

    `sources` are files, folders or globs of ingested documents (default: all of them); `query`
    picks the documents of the `k` best matching chunks instead (or among `sources`). The model
    loads when iteration starts; each record arrives when its document is done.
    """
    from rag.batch import jobs

    return jobs.summarize(settings or load_settings(), sources, query=query, k=k, combine=combine, llm=llm)


def extract(
    schema: dict[str, Any] | str | Path,
    sources: Sequence[str] = (),
    settings: Settings | None = None,
    *,
    per: Literal["document", "chunk"] = "document",
    query: str | None = None,
    k: int | None = None,
    llm: "BaseLanguageModel | None" = None,
) -> "ExtractJob":
    """Records valid for a JSON Schema (a dict, or a schema file's path), one per document or chunk.

    Where the backend can, decoding is constrained to the schema; otherwise an invalid reply is
    shown to the model, which tries again (batch.max_attempts). A record that still fails comes
    with `ok == False`, its error and the raw reply. See `summarize` for `sources` and `query`.
    """
    from rag.batch import jobs
    from rag.batch.schema import check_schema, load_schema

    schema = check_schema(schema) if isinstance(schema, dict) else load_schema(Path(schema))
    return jobs.extract(settings or load_settings(), schema, sources, per=per, query=query, k=k, llm=llm)


def fields_schema(fields: str) -> dict[str, Any]:
    """The JSON Schema of a shorthand such as "name:str, amount:float, tags:list[str]"."""
    from rag.batch.schema import fields_schema as schema_of_fields

    return schema_of_fields(fields)
