"""SciFact retrieval benchmark: every mode, fusion settings chosen on half of the queries.

    .venv/bin/python bench/scifact.py [--data ../shared/data/scifact] [--home /tmp/rag-scifact]

Ingests the corpus once (one file per abstract, re-used by later runs through the normal sync),
splits the test queries into two halves by a fixed hash of their ids, tries the fusion settings
on half A, and reports every mode with the defaults and with the best setting on both halves:
the held-out half B says whether a setting only fits these queries. Then times every query once
more per mode as `rag search` runs it (default k, warm process). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = [
    {"fusion": "weighted", "dense_weight": weight, "candidates": candidates}
    for weight in (0.3, 0.4, 0.5, 0.6, 0.7)
    for candidates in (50, 100)
] + [{"fusion": "rrf", "dense_weight": weight, "candidates": 100} for weight in (0.4, 0.5, 0.6)]


def half(query_id: str) -> str:
    return "A" if hashlib.sha256(query_id.encode()).digest()[0] % 2 == 0 else "B"


def with_search(settings, **options):
    return settings.model_copy(update={"search": settings.search.model_copy(update=options)})


def warm_latency(settings, queries: list[str], mode: str) -> dict[str, float]:
    """Median and 95th percentile milliseconds of a search with the default k, after a warm-up."""
    import rag

    rag.search(queries[0], settings, mode=mode)
    times = []
    for query in queries:
        started = time.perf_counter()
        rag.search(query, settings, mode=mode)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"p50": round(times[len(times) // 2], 2), "p95": round(times[int(len(times) * 0.95)], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "scifact")
    parser.add_argument("--home", type=Path, default=Path("/tmp/rag-scifact"))
    options = parser.parse_args()

    import rag
    from rag import evaluation

    settings = rag.load_settings(home=options.home)
    dataset = evaluation.load_dataset(options.data)
    started = time.perf_counter()
    prepared = evaluation.prepare(dataset, settings)
    print(f"corpus ready in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    halves = {name: [q for q in dataset.queries if half(q) == name] for name in "AB"}

    def ndcg(search_settings, mode: str, ids: list[str]) -> float:
        (report,) = evaluation.evaluate(dataset, search_settings, [mode], ids, deep=False)
        return report.ndcg_at_10

    tried = []
    for point in GRID:
        score = ndcg(with_search(prepared, **point), "hybrid", halves["A"])
        tried.append({**point, "ndcg_at_10_A": round(score, 4)})
        print(f"  {point}: {score:.4f}", file=sys.stderr)
    best = max(tried, key=lambda t: t["ndcg_at_10_A"])
    best_point = {key: best[key] for key in ("fusion", "dense_weight", "candidates")}

    results = {}
    for label, search_settings in (("default", prepared), ("best_on_A", with_search(prepared, **best_point))):
        for name, ids in halves.items():
            for report in evaluation.evaluate(dataset, search_settings, evaluation.MODES, ids):
                results[f"{label}/{report.mode}/{name}"] = report.to_dict()
    print(
        json.dumps(
            {
                "dataset": dataset.name,
                "documents": len(dataset.corpus),
                "queries": {name: len(ids) for name, ids in halves.items()},
                "defaults": {k: getattr(settings.search, k) for k in ("fusion", "dense_weight", "candidates")},
                "best_on_A": best_point,
                "grid": tried,
                "ndcg_at_10": {key: value["ndcg_at_10"] for key, value in results.items()},
                "reports": results,
                "warm_query_ms": {
                    mode: warm_latency(prepared, list(dataset.queries.values()), mode) for mode in evaluation.MODES
                },
                "mean_hybrid_gain_over_dense": round(
                    statistics.fmean(
                        results[f"default/hybrid/{h}"]["ndcg_at_10"] - results[f"default/dense/{h}"]["ndcg_at_10"]
                        for h in "AB"
                    ),
                    4,
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
