"""Crash soak: kill real `rag ingest` processes mid-write, many times, and check every recovery.

    .venv/bin/python bench/crash_soak.py [--kills 100] [--files 200] [--seed 1]

Each round edits, adds and deletes some files, starts `rag ingest`, waits until it is writing, then
SIGKILLs it at a random moment. Every `--check-every` rounds (and at the end) a full ingest runs to
completion and the index is checked against the files on disk: the manifest, Chroma and the
keyword index must agree, and every file must be recorded with its current content. Prints one
JSON line: kills, recoveries, inconsistencies found (expected: 0).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def write_note(path: Path, number: int, revision: int) -> None:
    path.write_text(
        f"Note {number}\n\nRevision {revision}: batch {number * 7} ships on day {number % 28 + 1}. "
        + "The committee reviewed quotes, test results and the packaging plan. " * 8
    )


def run_ingest(folder: Path, env: dict[str, str]) -> subprocess.Popen:
    rag = str(Path(sys.executable).with_name("rag"))
    return subprocess.Popen([rag, "ingest", str(folder)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def inconsistencies(folder: Path, home: Path) -> list[str]:
    import rag
    from ingest.index import Index

    settings = rag.load_settings(home=home)
    found = rag.check(settings)
    problems = [] if found.ok else [json.dumps(found.to_dict())[:300]]
    on_disk = {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}
    recorded = {path: record.sha256 for path, record in Index(settings).sources().items()}
    if recorded != on_disk:
        problems.append(f"manifest and files differ: {len(set(recorded) ^ set(on_disk))} paths, "
                        f"{sum(recorded.get(p) != h for p, h in on_disk.items())} hashes")
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--check-every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    work = Path(tempfile.mkdtemp(prefix="rag-crash-soak-"))
    folder, home = work / "notes", work / "home"
    folder.mkdir()
    for number in range(options.files):
        write_note(folder / f"note-{number:04d}.txt", number, 0)
    # Small write groups: many commits per run, so kills land before, inside and between them.
    env = {**os.environ, "RAG_HOME": str(home), "RAG_INGEST__GROUP_CHUNKS": "16"}
    from ingest.index import UNFINISHED_PREFIX

    marker = home / "index" / f"{UNFINISHED_PREFIX}default"

    kills = recoveries = rounds = 0
    problems: list[str] = []
    started = time.perf_counter()
    while kills < options.kills:
        rounds += 1
        files = sorted(folder.iterdir())
        for path in rng.sample(files, min(len(files), 30)):
            write_note(path, rng.randrange(10_000), rounds)
        for path in rng.sample(files, 2):
            path.unlink()
        write_note(folder / f"added-{rounds:05d}.txt", rounds, rounds)
        ingest = run_ingest(folder, env)
        while not marker.exists() and ingest.poll() is None:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 1.5))
        if ingest.poll() is None:
            ingest.kill()
            kills += 1
        ingest.wait()
        if (kills and kills % options.check_every == 0) or kills >= options.kills:
            if subprocess.run([str(Path(sys.executable).with_name("rag")), "ingest", str(folder)], env=env,
                              capture_output=True).returncode == 0:
                recoveries += 1
            problems += inconsistencies(folder, home)
        print(f"round {rounds}: {kills} kills, {recoveries} recoveries, {len(problems)} inconsistencies",
              file=sys.stderr)
    print(json.dumps({
        "kills": kills, "rounds": rounds, "recoveries_checked": recoveries, "inconsistencies": len(problems),
        "examples": problems[:3], "files": len(list(folder.iterdir())), "seconds": round(time.perf_counter() - started, 1),
    }))


if __name__ == "__main__":
    main()
