"""Cold start: a whole `rag search` process, against importing sentence-transformers alone.

    .venv/bin/python bench/cold_search.py [--runs 5] [--home DIR]

Ingests the sample corpus into a temporary index (or uses --home), then times fresh `rag search`
processes end to end (interpreter start, imports, opening the index, embedding the query with
ONNX Runtime, hybrid search, printing). The baseline, in the same run, is a fresh interpreter
that only imports sentence_transformers, the import a torch-based query path would pay.
Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--home", type=Path)
    options = parser.parse_args()
    home = options.home or Path(tempfile.mkdtemp(prefix="rag-cold-"))
    env = {**os.environ, "RAG_HOME": str(home)}
    rag = str(Path(sys.executable).with_name("rag"))
    if not options.home:
        subprocess.run([rag, "ingest", str(REPO / "data" / "sample-notes")], env=env, check=True, capture_output=True)
    search = [rag, "search", "When does the oven warranty end?", "-k", "5"]
    timed(search, env)  # the first run may export the ONNX model; later runs are what users see
    searches = [timed(search, env) for _ in range(options.runs)]
    imports = [timed([sys.executable, "-c", "import sentence_transformers"], env) for _ in range(options.runs)]
    print(
        json.dumps(
            {
                "runs": options.runs,
                "cold_rag_search_s": round(statistics.median(searches), 2),
                "baseline_import_sentence_transformers_s": round(statistics.median(imports), 2),
            }
        )
    )


if __name__ == "__main__":
    main()
