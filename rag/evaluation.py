"""`rag eval`: retrieval quality on a BEIR-format dataset (corpus.jsonl, queries.jsonl, qrels/*.tsv).

The corpus is written out as one text file per document and ingested into its own collection
with the normal sync, so a second run re-uses it. Retrieval returns chunks; a document's rank is
the rank of its best chunk.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

from rag.errors import IndexMismatchError, QrelsMismatchError, UsageError
from rag.retrieval import Mode, search
from rag.settings import Settings

# Chunks retrieved per document wanted: a document is usually cut into a few chunks.
CHUNKS_PER_DOCUMENT = 3
MODES: tuple[Mode, ...] = ("dense", "keyword", "hybrid")


@dataclass
class Dataset:
    name: str
    corpus: dict[str, str]  # document id -> text (title and body)
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance grade}


@dataclass
class ModeReport:
    mode: str
    queries: int
    ndcg_at_10: float
    recall_at_10: float
    recall_at_100: float | None  # None when not measured (deep=False)
    mrr_at_10: float
    latency_p50_ms: float
    latency_p95_ms: float
    per_query_ndcg: dict[str, float] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, float | int | str | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items() if k != "per_query_ndcg"}


def ndcg_at(ranked: list[str], relevant: Mapping[str, int], k: int) -> float:
    """Normalised discounted cumulative gain with graded relevance (BEIR's definition)."""
    gain = sum(relevant.get(doc, 0) / math.log2(position + 2) for position, doc in enumerate(ranked[:k]))
    ideal = sum(grade / math.log2(position + 2) for position, grade in enumerate(sorted(relevant.values(), reverse=True)[:k]))
    return gain / ideal if ideal else 0.0


def recall_at(ranked: list[str], relevant: Mapping[str, int], k: int) -> float:
    wanted = {doc for doc, grade in relevant.items() if grade > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: list[str], relevant: Mapping[str, int], k: int) -> float:
    for position, doc in enumerate(ranked[:k], start=1):
        if relevant.get(doc, 0) > 0:
            return 1.0 / position
    return 0.0


def load_dataset(folder: Path, qrels_file: Path | None = None) -> Dataset:
    folder = folder.expanduser()
    if not folder.is_dir():
        raise UsageError(f"No folder {folder}: evaluation needs a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv).")
    qrels_file = qrels_file or _default_qrels(folder)
    for required in (folder / "corpus.jsonl", folder / "queries.jsonl", qrels_file):
        if not required.is_file():
            raise UsageError(f"{required} is missing: evaluation needs a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv).")
    corpus = {}
    for number, doc in _jsonl(folder / "corpus.jsonl", ("_id",)):
        if str(doc["_id"]) in corpus:  # one would silently replace the other
            raise UsageError(f"{folder / 'corpus.jsonl'}:{number}: the _id {doc['_id']!r} is used twice; ids must be unique.")
        corpus[str(doc["_id"])] = f"{doc.get('title', '')}\n\n{doc.get('text', '')}".strip()
    queries = {str(q["_id"]): str(q["text"]) for _, q in _jsonl(folder / "queries.jsonl", ("_id", "text"))}
    qrels = _read_qrels(qrels_file)
    _require_known(qrels, corpus, queries, qrels_file)
    return Dataset(folder.name, corpus, {q: queries[q] for q in qrels}, qrels)


QRELS_COLUMNS = ("query-id", "corpus-id", "score")
# How many unknown ids an error shows.
SHOWN_IDS = 3


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t")
        if not set(QRELS_COLUMNS) <= set(reader.fieldnames or ()):
            raise UsageError(
                f"{path} needs the header line {'<TAB>'.join(QRELS_COLUMNS)} (BEIR's qrels format); "
                f"its first line is {'<TAB>'.join(reader.fieldnames or ['(empty)'])}."
            )
        for row in reader:
            if row["score"] is None:  # fewer than three columns: spaces where tabs belong, as often
                raise UsageError(f"{path}:{reader.line_num}: a line holds query-id, corpus-id and score, separated by tabs.")
            try:
                score = int(row["score"])
            except ValueError:
                raise UsageError(f"{path}:{reader.line_num}: score {row['score']!r} is not a whole number.") from None
            qrels.setdefault(row["query-id"], {})[row["corpus-id"]] = score
    return qrels


def _require_known(qrels: dict[str, dict[str, int]], corpus: Mapping[str, str], queries: Mapping[str, str], path: Path) -> None:
    """Judgements of documents or queries the dataset lacks would skew every figure unseen: refuse them."""
    unknown_queries = sorted(q for q in qrels if q not in queries)
    unknown_documents = sorted({doc for judged in qrels.values() for doc in judged if doc not in corpus})
    problems = [
        f"{len(ids)} {what if len(ids) > 1 else one} {where} lacks ({', '.join(ids[:SHOWN_IDS])}{', ...' if len(ids) > SHOWN_IDS else ''})"
        for ids, one, what, where in (
            (unknown_queries, "query", "queries", "queries.jsonl"), (unknown_documents, "document", "documents", "corpus.jsonl")
        )
        if ids
    ]
    if problems:
        raise QrelsMismatchError(path, problems)


def _default_qrels(folder: Path) -> Path:
    for name in ("test.tsv", "dev.tsv", "train.tsv"):
        if (folder / "qrels" / name).is_file():
            return folder / "qrels" / name
    return folder / "qrels" / "test.tsv"


def _jsonl(path: Path, required: tuple[str, ...]) -> Iterable[tuple[int, dict]]:
    """(line number, object) for each non-empty line; a line that is not an object with `required` keys is refused."""
    with path.open() as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not valid JSON ({exc.msg}); each line holds one JSON object.") from None
            missing = [key for key in required if not isinstance(value, dict) or key not in value]
            if missing:
                raise UsageError(f"{path}:{number}: a line without {', '.join(repr(key) for key in missing)}.")
            yield number, value


def write_corpus(dataset: Dataset, folder: Path) -> Path:
    """One file per document, rewritten only where it differs, so the sync sees no change."""
    folder.mkdir(parents=True, exist_ok=True)
    for doc_id, text in dataset.corpus.items():
        path = folder / f"{doc_id}.txt"
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return folder


def eval_settings(settings: Settings, dataset: Dataset) -> Settings:
    collection = f"eval-{''.join(c if c.isalnum() else '-' for c in dataset.name)}"
    return settings.model_copy(update={"collection": collection})


def prepare(dataset: Dataset, settings: Settings, progress=None) -> Settings:
    """Settings for the dataset's own collection, synced with its corpus (fast when unchanged)."""
    from ingest.sync import ingest

    folder = write_corpus(dataset, settings.home.expanduser() / "eval" / dataset.name / "docs")
    dataset_settings = eval_settings(settings, dataset)
    try:
        ingest([folder], dataset_settings, progress=progress)
    except IndexMismatchError:
        # The collection is rag's own copy of the dataset: rebuild it for the current settings.
        ingest([folder], dataset_settings, rebuild=True, progress=progress)
    return dataset_settings


def evaluate(
    dataset: Dataset,
    settings: Settings,
    modes: Iterable[Mode] = MODES,
    query_ids: Iterable[str] | None = None,
    deep: bool = True,
) -> list[ModeReport]:
    """Metrics per mode, with `settings` from `prepare`; `deep=False` skips Recall@100 (faster)."""
    ids = list(query_ids) if query_ids is not None else list(dataset.queries)
    return [_evaluate_mode(dataset, settings, mode, ids, deep) for mode in modes]


def _ranked_documents(query: str, settings: Settings, chunks: int, mode: Mode) -> list[str]:
    result = search(query, settings, chunks, mode=mode)
    return list(dict.fromkeys(Path(hit.source).stem for hit in result.hits))


def _evaluate_mode(dataset: Dataset, settings: Settings, mode: Mode, ids: list[str], deep: bool) -> ModeReport:
    # The top 10 documents come from a search as a user runs one (the configured candidate
    # pool); Recall@100 from a deeper one. Documents have several chunks: ask for enough.
    top_chunks, deep_chunks = 10 * CHUNKS_PER_DOCUMENT, 100 * CHUNKS_PER_DOCUMENT
    _ranked_documents(dataset.queries[ids[0]], settings, top_chunks, mode)  # warm-up: model loaded, caches filled
    ndcg, recall10, recall100, mrr, latencies = {}, [], [], [], []
    for query_id in ids:
        query, relevant = dataset.queries[query_id], dataset.qrels[query_id]
        started = time.perf_counter()
        top = _ranked_documents(query, settings, top_chunks, mode)
        latencies.append((time.perf_counter() - started) * 1000)
        ndcg[query_id] = ndcg_at(top, relevant, 10)
        recall10.append(recall_at(top, relevant, 10))
        mrr.append(mrr_at(top, relevant, 10))
        if deep:
            recall100.append(recall_at(_ranked_documents(query, settings, deep_chunks, mode), relevant, 100))
    latencies.sort()
    return ModeReport(
        mode=mode,
        queries=len(ids),
        ndcg_at_10=statistics.fmean(ndcg.values()),
        recall_at_10=statistics.fmean(recall10),
        recall_at_100=statistics.fmean(recall100) if recall100 else None,
        mrr_at_10=statistics.fmean(mrr),
        latency_p50_ms=latencies[len(latencies) // 2],
        latency_p95_ms=latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))],
        per_query_ndcg=ndcg,
    )
