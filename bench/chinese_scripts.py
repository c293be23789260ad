"""Whether a Chinese question finds its page when the page is written in the other script.

    .venv/bin/python bench/chinese_scripts.py

The Chinese tutorials' questions (bench/answers.py's `zh` set) and the same questions in
traditional Chinese (`zh-Hant`), each asked over the simplified pages and over the pages
converted to traditional Chinese, so each question is asked once in its own script (the
baseline) and once across. Each set of pages is ingested with `rag ingest` into a temporary
RAG_HOME; then, for every answerable question, the rank of the first chunk from the file that
answers it, in rag's keyword and hybrid search (k 10). Prints one table, a row per questions and
pages, then one JSON line per row with every rank. Takes under a minute on two cores.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from answer_chunks import environment
from answers import QA_SETS

MODES = ("keyword", "hybrid")
CUTOFFS = (1, 5, 10)
DEPTH = 10
# (questions, pages): each script's questions over its own pages first, then across.
PAIRS = (("zh", "zh"), ("zh-Hant", "zh-Hant"), ("zh-Hant", "zh"), ("zh", "zh-Hant"))


def ranks_in_process(qa: Path) -> dict[str, dict[str, int | None]]:
    """Run inside a process with RAG_HOME set: each answerable question's rank of its file, per mode."""
    import rag

    settings = rag.load_settings()
    ranks: dict[str, dict[str, int | None]] = {}
    for line in qa.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if not row.get("source"):
            continue
        ranks[row["id"]] = {}
        for mode in MODES:
            hits = rag.search(row["question"], settings, k=DEPTH, mode=mode)
            ranks[row["id"]][mode] = next((hit.rank for hit in hits if hit.source.endswith(row["source"])), None)
    return ranks


def measure(qa: Path, pages: Path, home: Path) -> dict[str, dict[str, int | None]]:
    env = environment(home, None)
    if not home.exists():
        rag = str(Path(sys.executable).parent / "rag")
        done = subprocess.run([rag, "ingest", str(pages)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            raise SystemExit(f"rag ingest {pages} failed (exit {done.returncode}): {done.stderr.strip()}")
    code = (
        f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        f"from chinese_scripts import ranks_in_process; from pathlib import Path; "
        f"print(json.dumps(ranks_in_process(Path({str(qa)!r}))))"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def found_within(ranks: dict[str, dict[str, int | None]], mode: str, cutoff: int) -> int:
    return sum(1 for rank in ranks.values() if rank[mode] is not None and rank[mode] <= cutoff)


def main() -> None:
    sets = {qa_set.name: qa_set for qa_set in QA_SETS}
    rows = []
    with tempfile.TemporaryDirectory(prefix="rag-chinese-scripts-") as tmp:
        for questions, pages in PAIRS:
            print(f"{questions} questions over {pages} pages ...", file=sys.stderr)
            folder = sets[pages].documents(Path(tmp))
            ranks = measure(sets[questions].qa, folder, Path(tmp) / f"home-{pages}")
            rows.append({"questions": questions, "pages": pages, "ranks": ranks})
    heading = ["questions", "pages", "asked"] + [f"{mode} @{cutoff}" for mode in MODES for cutoff in CUTOFFS]
    print("| " + " | ".join(heading) + " |")
    print("|" + "---|" * len(heading))
    for row in rows:
        cells = [row["questions"], row["pages"], str(len(row["ranks"]))]
        cells += [str(found_within(row["ranks"], mode, cutoff)) for mode in MODES for cutoff in CUTOFFS]
        print("| " + " | ".join(cells) + " |")
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))


if __name__ == "__main__":
    main()
