"""Search queries from the model (search.queries), measured against the question searched alone.

    .venv/bin/python bench/search_queries.py [--queries 3] [--model NAME] [--scifact-home DIR] [--only scifact en ko ...]

First the model (default: the default packaged model) writes `--queries` search queries for every
question, through the same code `rag search --queries N` runs; each reply is kept in a JSON cache
per (model, count, question) under the home (`query-cache.json`), so a rerun generates only what
is missing. The seconds each took are kept too: the added latency per question is that, plus the
extra searches (timed here).

Then, in one run, with and without the queries:
- SciFact (BEIR): nDCG@10 on halves A and B (bench/scifact.py's split), hybrid search as
  `rag eval` runs it, over the collection bench/scifact.py builds (`--scifact-home`: its home;
  it is only read, so one that bench/scifact.py made already costs no ingest);
- each language's QA set (data/*-qa.jsonl over data/sample-notes and the CJK tutorials): the
  right file among the sources `rag ask` would be given (the top k after the relevance gate) and
  at rank 1.
Prints one table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from answers import QA_SETS
from scifact import half

REPO = Path(__file__).resolve().parents[1]


class QueryCache:
    """The model's queries per (model, count, question), kept in a JSON file between runs."""

    def __init__(self, path: Path, model: str, count: int, settings):
        self.path, self.model, self.count, self.settings = path, model, count, settings
        self.entries: dict = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        self._writer = None

    def key(self, question: str) -> str:
        return f"{self.model}|{self.count}|{question}"

    def get(self, question: str) -> dict:
        key = self.key(question)
        if key not in self.entries:
            from rag.query_generation import parse_queries, query_writer

            self._writer = self._writer or query_writer(self.settings)
            started = time.perf_counter()
            reply = self._writer.reply(question, self.count)
            seconds = time.perf_counter() - started
            self.entries[key] = {"reply": reply, "seconds": round(seconds, 3)}
            self.entries[key]["queries"] = parse_queries(reply, question, self.count)
            self.path.write_text(json.dumps(self.entries, ensure_ascii=False, indent=1), encoding="utf-8")
        return self.entries[key]

    def queries(self, question: str, count: int) -> list[str]:
        return self.get(question)["queries"][:count]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def weighted(settings, query_weight: float | None):
    """`settings` with search.query_weight set, when given."""
    if query_weight is None:
        return settings
    return settings.model_copy(update={"search": settings.search.model_copy(update={"query_weight": query_weight})})


def scifact(cache: QueryCache, home: Path, data: Path, per_half: int | None, query_weight: float | None) -> dict:
    import rag
    from rag import evaluation
    from rag.retrieval import search

    dataset = evaluation.load_dataset(data)
    settings = weighted(evaluation.eval_settings(rag.load_settings(home=home), dataset), query_weight)
    chunks = 10 * evaluation.CHUNKS_PER_DOCUMENT
    result: dict = {}
    search_ms: list[float] = []
    for name in "AB":
        ids = [q for q in dataset.queries if half(q) == name][:per_half]
        scores: dict[str, list[float]] = {"without": [], "with": []}
        for done, query_id in enumerate(ids, start=1):
            question, relevant = dataset.queries[query_id], dataset.qrels[query_id]
            generated = cache.queries(question, cache.count)
            for label, extra in (("without", []), ("with", generated)):
                started = time.perf_counter()
                hits = search(question, settings, chunks, generated=extra)
                if label == "with":
                    search_ms.append((time.perf_counter() - started) * 1000)
                top = list(dict.fromkeys(Path(hit.source).stem for hit in hits))
                scores[label].append(evaluation.ndcg_at(top, relevant, 10))
            if done % 25 == 0:
                print(f"  scifact {name}: {done}/{len(ids)}", file=sys.stderr, flush=True)
        result[name] = {label: round(statistics.fmean(values), 4) for label, values in scores.items()}
        result[name]["questions"] = len(ids)
    questions = [dataset.queries[q] for name in "AB" for q in [q for q in dataset.queries if half(q) == name][:per_half]]
    return {"ndcg_at_10": result, **latency(cache, questions, search_ms)}


def latency(cache: QueryCache, questions: list[str], search_ms: list[float]) -> dict:
    seconds = [cache.get(question)["seconds"] * 1000 for question in questions]
    written = [len(cache.get(question)["queries"]) for question in questions]
    return {
        "generation_ms": {"p50": round(percentile(seconds, 0.5)), "p95": round(percentile(seconds, 0.95))},
        "search_with_queries_ms_p50": round(percentile(search_ms, 0.5), 1) if search_ms else None,
        "queries_written_mean": round(statistics.fmean(written), 2),
        "no_usable_query": sum(1 for count in written if count == 0),
    }


def qa_set(
    cache: QueryCache, name: str, qa: Path, docs: Path, home: Path, limit: int | None, query_weight: float | None
) -> dict:
    import rag
    from rag.chain import IndexRetriever

    settings = weighted(rag.load_settings(home=home / name), query_weight)
    rag.ingest([docs], settings)
    items = [json.loads(line) for line in qa.read_text(encoding="utf-8").splitlines() if line.strip()]
    items = [item for item in items if item.get("source")][:limit]
    counts = {label: {"top_k": 0, "rank_1": 0, "no_sources": 0} for label in ("without", "with")}
    search_ms: list[float] = []
    for item in items:
        generated = cache.queries(item["question"], cache.count)
        for label, count in (("without", 0), ("with", cache.count)):
            retriever = IndexRetriever.from_settings(settings, write_queries=lambda question, n: generated[:n])
            started = time.perf_counter()
            documents, _ = retriever.retrieve(item["question"], queries=count)
            if label == "with":
                search_ms.append((time.perf_counter() - started) * 1000)
            files = [str(Path(doc.metadata["source"]).relative_to(docs)) for doc in documents]
            counts[label]["top_k"] += item["source"] in files
            counts[label]["rank_1"] += bool(files) and files[0] == item["source"]
            counts[label]["no_sources"] += not files
    return {"questions": len(items), **counts, **latency(cache, [item["question"] for item in items], search_ms)}


def main() -> None:
    from rag.backends.packaged_models import DEFAULT_MODEL

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=3, help="Search queries the model writes per question.")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="The packaged model (or GGUF path) that writes them.")
    parser.add_argument("--scifact-home", type=Path, default=Path("/tmp/rag-scifact"))
    parser.add_argument("--scifact-data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--home", type=Path, default=Path(tempfile.gettempdir()) / "rag-search-queries")
    parser.add_argument(
        "--scifact-per-half", type=int, default=None, help="Only the first N queries of each half (the model writes for each)."
    )
    parser.add_argument("--query-weight", type=float, default=None, help="search.query_weight (default: the setting's).")
    parser.add_argument("--limit", type=int, default=None, help="Only the first N answerable questions of each QA set.")
    parser.add_argument("--only", nargs="*", default=None, help="scifact and/or QA sets (en ko zh ja ko-guide zh-guide).")
    options = parser.parse_args()

    import rag

    options.home.mkdir(parents=True, exist_ok=True)
    model = {"model_path": options.model} if options.model.endswith(".gguf") else {"model": options.model}
    cache = QueryCache(options.home / "query-cache.json", options.model, options.queries, rag.load_settings(home=options.home, llm=model))
    rows = {}
    for chosen in QA_SETS:
        if options.only is not None and chosen.name not in options.only:
            continue
        rows[chosen.name] = qa_set(cache, chosen.name, chosen.qa, chosen.docs, options.home, options.limit, options.query_weight)
        print(f"{chosen.name}: {rows[chosen.name]}", file=sys.stderr, flush=True)
    if options.only is None or "scifact" in options.only:
        rows["scifact"] = scifact(
            cache, options.scifact_home, options.scifact_data, options.scifact_per_half, options.query_weight
        )
        print(f"scifact: {rows['scifact']}", file=sys.stderr, flush=True)

    print(f"\nSearch queries written by {options.model} (N = {options.queries}), against the question alone:")
    if "scifact" in rows:
        for name, scores in rows["scifact"]["ndcg_at_10"].items():
            print(f"  SciFact {name} nDCG@10: {scores['without']:.4f} alone, {scores['with']:.4f} with queries ({scores['questions']} questions)")
    for language, row in rows.items():
        if language == "scifact":
            continue
        n = row["questions"]
        print(
            f"  {language}: right file in sources {row['without']['top_k']}/{n} alone, {row['with']['top_k']}/{n} with; "
            f"at rank 1 {row['without']['rank_1']}/{n} alone, {row['with']['rank_1']}/{n} with; "
            f"no sources {row['without']['no_sources']} / {row['with']['no_sources']}"
        )
    for name, row in rows.items():
        print(f"  {name}: generation p50 {row['generation_ms']['p50']} ms, p95 {row['generation_ms']['p95']} ms; "
              f"{row['queries_written_mean']} queries per question, none usable for {row['no_usable_query']}")
    summary = {"model": options.model, "queries": options.queries, "query_weight": options.query_weight, "results": rows}
    print(json.dumps(summary, ensure_ascii=False))


if __name__ == "__main__":
    main()
