"""Files per second of `rag ingest` on a Ray cluster with 1 and 2 worker processes, beside a local
ingest, in one run on the same folder.

    .venv/bin/python bench/ray_ingest.py                       # ../shared/data/realdocs, read in place
    .venv/bin/python bench/ray_ingest.py --folder ../shared/data/cjkdocs --repeats 2

Each ingest goes into an empty index of its own (Chroma on disk, in a temporary folder) from this
process, through the library (`rag.ingest`), so each mode pays what it costs from nothing: the
local one builds its embedder in this process, a Ray one in each worker process (a new Ray job
starts new workers). The clusters are real `ray start` nodes on loopback (tests/ray_cluster.py): a
head that runs no tasks and one worker node per worker process, one CPU each, as separate machines
would be; starting them is not timed. One JSON line per ingest on stdout, then a table.

What the figures mean: on one machine every worker process shares its cores with the others and
with the writer, so Ray can only add its own costs (shipping files and vectors between processes,
a model per worker); the 2-worker figure over the 1-worker one says how the work spreads. On a real
cluster each worker node brings its own cores, and the writer (this process) does little besides
writing, so files/s grows with the workers until the index writes or the network bound it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import rag  # noqa: E402
from rag.settings import load_settings  # noqa: E402
from tests.ray_cluster import running_ray_cluster  # noqa: E402

DEFAULT_FOLDER = REPO.parent / "shared" / "data" / "realdocs"


def _ingest(folder: Path, mode: str, ray_address: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="rag-ray-bench-") as home:
        settings = load_settings(environ={}, cwd=Path(home), home=Path(home), ingest={"ray_address": ray_address})
        started = time.perf_counter()
        report = rag.ingest([folder], settings)
        seconds = time.perf_counter() - started
    return {
        "mode": mode,
        "files": len(report.added),
        "failed": len(report.failed),
        "chunks": report.chunks_added,
        "seconds": round(seconds, 2),
        "files_per_s": round(len(report.added) / seconds, 2),
        "chunks_per_s": round(report.chunks_added / seconds, 1),
        "embedding_path": report.embedding_path[0] if report.embedding_path else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=DEFAULT_FOLDER)
    parser.add_argument("--repeats", type=int, default=1, help="Ingests per mode; the table shows the median.")
    args = parser.parse_args()
    folder = args.folder.resolve()
    runs: dict[str, list[dict]] = {}

    def record(run: dict) -> None:
        print(json.dumps({"folder": str(folder), "cpus": os.cpu_count(), **run}), flush=True)
        runs.setdefault(run["mode"], []).append(run)

    for _ in range(args.repeats):
        record(_ingest(folder, "local", None))
    for workers in (1, 2):
        with running_ray_cluster(head_cpus=0, worker_cpus=(1,) * workers) as cluster:
            for _ in range(args.repeats):
                record(_ingest(folder, f"ray, {workers} worker{'s' * (workers > 1)}", cluster.address))
    print(f"\n{folder} on {os.cpu_count()} CPUs (median of {args.repeats}):", file=sys.stderr)
    for mode, done in runs.items():
        seconds = statistics.median(run["seconds"] for run in done)
        print(
            f"  {mode:<16} {done[0]['files']:>5} files {done[0]['chunks']:>6} chunks {seconds:>7.1f} s "
            f"{done[0]['files'] / seconds:>7.2f} files/s",
            file=sys.stderr,
        )


if __name__ == "__main__":
    main()
