"""Whether search finds the chunk that holds the answer, per language, at two chunk sizes.

    .venv/bin/python bench/answer_chunks.py [--language ko ...] [--baseline-tokens 200]

The answer prompt quotes the five best chunks, so a question is lost before the model reads it
when the chunk holding its answer is not among them; the right file alone (what
bench/retrieval_languages.py counts) is not enough. Each language's documents (the sets of
bench/answers.py) are ingested with `rag ingest` into a temporary RAG_HOME twice: with the
defaults (chunking.chunk_tokens decided with the embedding model), and with the baseline size
(`--baseline-tokens`, all-MiniLM-L6-v2's default, the size every collection had before). Then,
for every answerable question, the rank of the first chunk whose text holds one of its accepted
answers, in rag's hybrid, dense and keyword search (k 40). Prints one table, the baseline row
beside the default one for each language, then one JSON line per row with every rank. Takes
about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from answers import SET_CHOICES, chosen_sets

MODES = ("hybrid", "dense", "keyword")
CUTOFFS = (1, 5, 10)
DEPTH = 40


def environment(home: Path, chunk_tokens: int | None) -> dict[str, str]:
    """rag's defaults in `home` (the caller's RAG_* settings left out), with this chunk size if given."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")}, "RAG_HOME": str(home)}
    return {**env, "RAG_CHUNKING__CHUNK_TOKENS": str(chunk_tokens)} if chunk_tokens else env


def ranks_in_process(qa: Path) -> dict:
    """Run inside a process with the environment set: the collection's chunk size and each question's ranks."""
    import rag

    settings = rag.load_settings()
    status = rag.status(settings)
    ranks: dict[str, dict[str, int | None]] = {}
    for line in qa.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not row.get("answers"):
            continue
        accepted = [answer.lower() for answer in row["answers"]]
        ranks[row["id"]] = {}
        for mode in MODES:
            hits = rag.search(row["question"], settings, k=DEPTH, mode=mode)
            found = (hit.rank for hit in hits if any(answer in hit.text.lower() for answer in accepted))
            ranks[row["id"]][mode] = next(found, None)
    return {"chunk_tokens": status.chunk_tokens, "chunks": status.chunks, "model": status.embedding_model, "ranks": ranks}


def measure(language: str, qa: Path, docs: Path, chunk_tokens: int | None, home: Path) -> dict:
    env = environment(home, chunk_tokens)
    rag = str(Path(sys.executable).parent / "rag")
    done = subprocess.run([rag, "ingest", str(docs)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise SystemExit(f"rag ingest {docs} failed (exit {done.returncode}): {done.stderr.strip()}")
    code = f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); " \
        f"from answer_chunks import ranks_in_process; from pathlib import Path; " \
        f"print(json.dumps(ranks_in_process(Path({str(qa)!r}))))"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return {"language": language, "setting": "baseline" if chunk_tokens else "default", **json.loads(out.stdout)}


def found_within(row: dict, mode: str, cutoff: int) -> int:
    return sum(1 for ranks in row["ranks"].values() if ranks[mode] is not None and ranks[mode] <= cutoff)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--language", action="append", choices=SET_CHOICES, help="only these QA sets or languages")
    parser.add_argument("--baseline-tokens", type=int, default=200)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for qa_set in chosen_sets(args.language):
            for chunk_tokens in (args.baseline_tokens, None):
                home = Path(tmp) / f"{qa_set.name}-{chunk_tokens or 'default'}"
                print(f"{qa_set.name}: chunk size {chunk_tokens or 'default'} ...", file=sys.stderr)
                rows.append(measure(qa_set.name, qa_set.qa, qa_set.docs, chunk_tokens, home))
    heading = ["language", "setting", "chunk tokens", "chunks", "questions"]
    heading += [f"{mode} @{cutoff}" for mode in MODES for cutoff in CUTOFFS]
    print("| " + " | ".join(heading) + " |")
    print("|" + "---|" * len(heading))
    for row in rows:
        cells = [row["language"], row["setting"], str(row["chunk_tokens"]), str(row["chunks"]), str(len(row["ranks"]))]
        cells += [str(found_within(row, mode, cutoff)) for mode in MODES for cutoff in CUTOFFS]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
