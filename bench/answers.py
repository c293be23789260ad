"""Answer benchmark: every packaged model x prompt variant on the project's QA set, in one run.

    .venv/bin/python bench/answers.py [--qa data/sample-notes-qa.jsonl] [--docs data/sample-notes]
                                      [--only MODEL[:QA_PROMPT[:STYLE]] ...] [--limit N]
    .venv/bin/python bench/answers.py --languages [--language ko ...] [--model MODEL ...] [--queries N ...]
                                      [--embedding-model M ...] [--chunk-tokens N ...] [--limit N]

--chunk-tokens N (repeated) builds each language's index once per chunk size, the sizes side by
side in one run (without it, the size chosen with the embedding model).

Either form takes --queries N: the model first writes N search queries like each question
(search.queries), each searched too; without it, the settings' default (0: the question alone).

Either form answers with the settings' sampling temperature (llm.temperature), as a user's `rag ask`
does; --temperature T answers with T instead.

With --languages, the default model (or each --model in turn, packaged or a GGUF) with its default
prompt answers every language's QA set over its own documents: English over the sample notes,
Korean, Chinese and Japanese over the Kubernetes tutorials in ../shared/data/cjkdocs, and Korean
and Chinese over the "Run models locally" guide in ../shared/data/realdocs/langchain-local-llms,
whose folder holds both translations (`ko-guide`, `zh-guide`; all read in place); each --queries N
in turn too. One row per model, query count and set: the same columns, plus "lang", the share of
answers written in the question's language (by script: Hangul for Korean, kana for Japanese, Han
without kana for Chinese, Latin for English), and p95 latency.

Each candidate is a real `rag eval --answers` process (so its peak RSS is its own) against the
same index of the sample notes, built once in a temporary RAG_HOME. Prints one table (answer
accuracy, evidence accuracy, answered/declined rates, grounding flags, time to first token,
tokens/s, latency, peak RSS) and one JSON line per candidate. A packaged model that is not
installed is reported as such, not skipped silently.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

from rag.cli.evaluate import figure

if TYPE_CHECKING:
    from rag.settings import Settings

REPO = Path(__file__).resolve().parents[1]
# (packaged model, qa prompt, prompt style): every model with each question prompt in the format
# the selector picks for it ("auto": the base model's plain prompt, the instruct models' own chat
# templates); the few-shot prompt is for the base model.
CANDIDATES = [
    ("gemma-3-270m", "qa", "auto"),
    ("gemma-3-270m", "qa_fewshot", "auto"),
    ("gemma-3-270m", "qa_quotes", "auto"),
    ("smollm2-135m-instruct", "qa", "auto"),
    ("smollm2-135m-instruct", "qa_quotes", "auto"),
    ("qwen2.5-coder-0.5b-instruct", "qa", "auto"),
    ("qwen2.5-coder-0.5b-instruct", "qa_quotes", "auto"),
    ("qwen2.5-coder-1.5b-instruct", "qa", "auto"),
    ("qwen2.5-coder-1.5b-instruct", "qa_quotes", "auto"),
]
COLUMNS = [
    ("accuracy", "acc"), ("f1", "F1"), ("evidence_accuracy", "evid"), ("gold_cited", "cited"),
    ("answered_when_answerable", "answd"), ("declined_when_unanswerable", "decl"),
    ("flagged_when_wrong", "flagW"), ("flagged_when_right", "flagR"),
]


SHARED_DATA = REPO.parent / "shared" / "data"
CJK_DOCS = SHARED_DATA / "cjkdocs" / "k8s-tutorials"
# The guide this project grew from, in Korean and Chinese, one folder holding both translations.
GUIDE_DOCS = SHARED_DATA / "realdocs" / "langchain-local-llms"


class QASet(NamedTuple):
    """Questions in one language over documents written in it; `name` labels its rows and index."""

    name: str
    language: str
    qa: Path
    docs: Path
    # The OpenCC conversion the documents are read through, for a language no shared document is
    # written in (traditional Chinese, as Taiwan writes it: "s2twp").
    converted: str | None = None

    def documents(self, folder: Path) -> Path:
        """The set's documents: `docs` as they are, or converted into a folder under `folder`
        the first time (the shared data stays as it is)."""
        if not self.converted:
            return self.docs
        target = folder / f"{self.name}-documents"
        if not target.is_dir():
            import opencc

            converter = opencc.OpenCC(self.converted)
            partial = folder / f"{self.name}-documents.partial"
            partial.mkdir(parents=True, exist_ok=True)
            for path in sorted(self.docs.rglob("*")):
                if path.is_file():
                    written = partial / path.relative_to(self.docs)
                    written.parent.mkdir(parents=True, exist_ok=True)
                    written.write_text(converter.convert(path.read_text(encoding="utf-8")), encoding="utf-8")
            partial.rename(target)
        return target


QA_SETS = [
    QASet("en", "en", REPO / "data" / "sample-notes-qa.jsonl", REPO / "data" / "sample-notes"),
    QASet("ko", "ko", REPO / "data" / "k8s-tutorials-ko-qa.jsonl", CJK_DOCS / "ko"),
    QASet("zh", "zh", REPO / "data" / "k8s-tutorials-zh-cn-qa.jsonl", CJK_DOCS / "zh-cn"),
    QASet("zh-Hant", "zh-Hant", REPO / "data" / "k8s-tutorials-zh-tw-qa.jsonl", CJK_DOCS / "zh-cn", converted="s2twp"),
    QASet("ja", "ja", REPO / "data" / "k8s-tutorials-ja-qa.jsonl", CJK_DOCS / "ja"),
    QASet("ko-guide", "ko", REPO / "data" / "local-llms-guide-ko-qa.jsonl", GUIDE_DOCS),
    QASet("zh-guide", "zh", REPO / "data" / "local-llms-guide-zh-qa.jsonl", GUIDE_DOCS),
]
SET_CHOICES = sorted({qa_set.name for qa_set in QA_SETS} | {qa_set.language for qa_set in QA_SETS})


def chosen_sets(wanted: list[str] | None) -> Iterator[QASet]:
    """The QA sets `wanted` names, by set name or by language (`ko`: every Korean set); all if None."""
    return (qa_set for qa_set in QA_SETS if not wanted or qa_set.name in wanted or qa_set.language in wanted)


def language_options(description: str, prefix: str) -> tuple[list[str] | None, Path]:
    """The QA sets asked for (--language, by set name or language; None: all) and the folder of
    their indexes (--home, else a new temporary one named with `prefix`), from the command line of
    a per-language bench."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--language", action="append", choices=SET_CHOICES, help="only these QA sets or languages")
    parser.add_argument("--home", type=Path, help="keep each set's index under this folder between runs")
    args = parser.parse_args()
    return args.language, args.home or Path(tempfile.mkdtemp(prefix=prefix))


def language_homes(wanted: list[str] | None, base: Path) -> Iterator[tuple[QASet, Path]]:
    """Each QA set in `wanted` (all if None) whose documents are here, with a home for its index
    under `base`; a missing one is said and skipped."""
    for qa_set in chosen_sets(wanted):
        if not qa_set.docs.is_dir():
            print(f"{qa_set.name}: needs {qa_set.docs} (the shared data beside the checkout)")
            continue
        home = base / qa_set.name
        home.mkdir(parents=True, exist_ok=True)
        yield qa_set._replace(docs=qa_set.documents(home), converted=None), home


def indexed_settings(docs: Path, home: Path, **overrides: Any) -> "Settings":
    """rag's settings for `docs` in `home`, ingested there with rag's defaults the first time."""
    import rag
    from rag.answer_eval import docs_settings

    settings = docs_settings(rag.load_settings(environ={}, cwd=home, home=home, **overrides), docs)
    if not (home / ".ingested").exists():
        rag.ingest(docs, settings)
        (home / ".ingested").touch()
    return settings


def run_candidate(
    model: str | None, qa_prompt: str | None, style: str | None, qa: Path, docs: Path, home: Path, embedding: str | None = None,
    queries: int | None = None, chunk_tokens: int | None = None, temperature: float | None = None,
) -> dict:
    """One `rag eval --answers` process; a None option keeps the settings' default."""
    options = {
        "RAG_LLM__TEMPERATURE": None if temperature is None else str(temperature),
        "RAG_LLM__QA_PROMPT": qa_prompt, "RAG_LLM__PROMPT_STYLE": style, "RAG_EMBEDDING__MODEL": embedding,
        "RAG_SEARCH__QUERIES": None if queries is None else str(queries),
        "RAG_CHUNKING__CHUNK_TOKENS": None if chunk_tokens is None else str(chunk_tokens),
    }
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAG_")},
        "RAG_HOME": str(home), **{k: v for k, v in options.items() if v},
    }
    command = [str(Path(sys.executable).parent / "rag"), "eval", "--answers", str(qa), str(docs), "--json", "-v"]
    command += ["--model", model] if model else []
    with tempfile.TemporaryFile("w+") as stdout_file, tempfile.TemporaryFile("w+") as stderr_file:
        process = subprocess.Popen(command, env=env, stdout=stdout_file, stderr=stderr_file, text=True)
        _, status, usage = os.wait4(process.pid, 0)  # the child's own peak RSS, not the largest child's so far
        stdout_file.seek(0)
        stderr_file.seek(0)
        stdout, stderr = stdout_file.read(), stderr_file.read()
    returncode = os.waitstatus_to_exitcode(status)
    result = {
        "model": model or "default", "qa_prompt": qa_prompt or "default", "prompt_style": style or "default",
        "embedding": embedding or "default", "queries": "default" if queries is None else queries,
        "chunk_tokens": chunk_tokens or "default", "temperature": "default" if temperature is None else temperature,
    }
    if returncode != 0:
        return {**result, "error": stderr.strip().splitlines()[-1] if stderr.strip() else f"exit {returncode}"}
    report = json.loads(stdout)
    answers = report.pop("results")
    return {**result, **report, "peak_rss_mb": usage.ru_maxrss / 1024, "results": answers}


# Six Latin-script words in a row are a sentence, not a name ("Contexts and Dependency Injection").
_LATIN_SENTENCE = re.compile(r"[A-Za-z][\w'’-]*(?:[\s,;:]+[A-Za-z][\w'’-]*){5,}")
_LATIN_WORD = re.compile(r"[A-Za-z][\w'’-]*")


def written_in(text: str) -> str | None:
    """The language `text` is written in, told by script: English when it holds a Latin-script
    sentence or only Latin-script words, otherwise the CJK script it holds (kana: Japanese, Hangul:
    Korean, Han alone: Chinese, traditional where its letters' forms say so). None for no prose, a
    bare term of a word or two ("OrderedReady", "20Gi"), which has no language of its own, or Han
    letters simplified and traditional Chinese write alike."""
    counts = {"ko": 0, "ja": 0, "han": 0}
    for char in text:
        name = unicodedata.name(char, "")
        if name.startswith("HANGUL"):
            counts["ko"] += 1
        elif name.startswith(("HIRAGANA", "KATAKANA")):
            counts["ja"] += 1
        elif name.startswith("CJK UNIFIED"):
            counts["han"] += 1
    if _LATIN_SENTENCE.search(text):
        return "en"
    if counts["ja"]:  # Japanese mixes kana with Han; Chinese has no kana
        return "ja"
    if counts["ko"] or counts["han"]:
        return "ko" if counts["ko"] >= counts["han"] else _chinese(text)
    return "en" if len(_LATIN_WORD.findall(text)) > 2 else None


def _chinese(text: str) -> str | None:
    """'zh-Hant' or 'zh' for Chinese prose, as its letters' forms tell; None where they do not."""
    from ingest.scripts import han_language

    form = han_language(text)
    return form if form in ("zh", "zh-Hant") else None


def in_language(language: str, answers: list[dict]) -> float:
    """The share of answers (rag's declines included) whose prose is in `language`.

    Citations, commands and code (code blocks too, closed or not) are left out first: a Korean
    answer quoting `kubectl` is Korean.
    """
    prose = [re.sub(r"```.*?(?:```|$)|`[^`]*`|\[\d+\]|\S*[/=_.-]\S*", " ", row["answer"], flags=re.S) for row in answers]
    judged = [written_in(text) for text in prose]
    judged = [found for found in judged if found is not None]
    return sum(found == language for found in judged) / len(judged) if judged else 0.0


def language_rows(
    models: list[str | None] | None, limit: int | None, tmp: Path, answers_file: Path | None, only: list[str] | None = None,
    embeddings: list[str | None] | None = None, query_counts: list[int | None] | None = None,
    chunk_sizes: list[int | None] | None = None, temperature: float | None = None,
) -> list[dict]:
    rows = []
    for model, queries, qa_set, embedding, chunk_tokens in itertools.product(
        models or [None], query_counts or [None], list(chosen_sets(only)), embeddings or [None], chunk_sizes or [None]
    ):
        labels = {"set": qa_set.name, "language": qa_set.language}
        if not qa_set.docs.is_dir():
            rows.append({**labels, "error": f"needs {qa_set.docs} (the shared data beside the checkout)"})
            continue
        qa = qa_set.qa
        if limit:
            qa = tmp / f"{qa_set.name}-qa.jsonl"
            qa.write_text("\n".join(qa_set.qa.read_text().splitlines()[:limit]) + "\n")
        home = tmp / f"home-{qa_set.name}-{embedding}-{chunk_tokens}"  # one index per setting that shapes it, whatever the model
        docs = qa_set.documents(tmp)
        row = {**labels, **run_candidate(model, None, None, qa, docs, home, embedding, queries, chunk_tokens, temperature)}
        results = row.pop("results", [])
        row["in_question_language"] = in_language(qa_set.language, results)
        if answers_file:
            with answers_file.open("a") as fh:
                fh.write(json.dumps({**row, "results": results}, ensure_ascii=False) + "\n")
        print(json.dumps(row), file=sys.stderr, flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--languages", action="store_true", help="every language's QA set with the default model")
    parser.add_argument(
        "--model", action="append", help="with --languages: this packaged model or GGUF instead of the default (repeat: each in turn)"
    )
    parser.add_argument(
        "--language", action="append", choices=SET_CHOICES, help="with --languages: only these QA sets, or every set of these languages"
    )
    parser.add_argument(
        "--embedding-model", action="append", help="with --languages: this embedding model (repeat: each language with each)"
    )
    parser.add_argument(
        "--chunk-tokens", type=int, action="append",
        help="with --languages: this chunk size (repeat: each language with each, in one run)",
    )
    parser.add_argument("--qa", type=Path, default=REPO / "data" / "sample-notes-qa.jsonl")
    parser.add_argument("--docs", type=Path, default=REPO / "data" / "sample-notes")
    parser.add_argument("--only", nargs="*", help="MODEL[:QA_PROMPT[:STYLE]] candidates instead of the default list")
    parser.add_argument("--limit", type=int, help="the first N questions only (a quicker, noisier run)")
    parser.add_argument("--answers", type=Path, help="also write every candidate's per-question results here (JSONL)")
    parser.add_argument(
        "--queries", type=int, action="append",
        help="search queries the model writes like each question (search.queries; with --languages, repeat: each in turn)",
    )
    parser.add_argument("--temperature", type=float, help="the model's sampling temperature instead of the settings' default")
    args = parser.parse_args()
    if args.languages:
        with tempfile.TemporaryDirectory(prefix="rag-answers-bench-") as tmp:
            rows = language_rows(
                args.model, args.limit, Path(tmp), args.answers, args.language, args.embedding_model, args.queries,
                args.chunk_tokens, args.temperature,
            )
        columns = [*COLUMNS, ("in_question_language", "lang")]
        print_rows(
            rows,
            f"{'set':<10}{'model':<30}{'queries':>8}  {'embedding':<42}{'chunk':>8}" + "".join(f"{short:>7}" for _, short in columns)
            + f"{'TTFT ms':>9}{'tok/s':>7}{'p50 s':>7}{'p95 s':>7}{'RSS MB':>8}",
            lambda row: f"{row['set']:<10}{row.get('model', ''):<30}{row.get('queries', ''):>8}  {row.get('embedding', ''):<42}"
            f"{row.get('chunk_tokens', ''):>8}",
            lambda row: "".join(figure(row[key], ">7.3f") for key, _ in columns)
            + f"{figure(row['first_token_p50_ms'], '>9.0f')}{figure(row['tokens_per_s_p50'], '>7.1f')}{row['latency_p50_ms'] / 1000:>7.2f}"
            + f"{row['latency_p95_ms'] / 1000:>7.2f}{row['peak_rss_mb']:>8.0f}",
        )
        return
    candidates = CANDIDATES
    if args.only:
        defaults = ("", "qa_quotes", "auto")
        candidates = [tuple(spec.split(":") + list(defaults[len(spec.split(":")) :])) for spec in args.only]
    with tempfile.TemporaryDirectory(prefix="rag-answers-bench-") as tmp:
        qa = args.qa
        if args.limit:
            qa = Path(tmp) / "qa.jsonl"
            qa.write_text("\n".join(args.qa.read_text().splitlines()[: args.limit]) + "\n")
        home = Path(tmp) / "home"
        rows = []
        for model, qa_prompt, style in candidates:
            row = run_candidate(
                model, qa_prompt, style, qa, args.docs.resolve(), home, queries=(args.queries or [None])[-1],
                temperature=args.temperature,
            )
            answers = row.pop("results", [])
            if args.answers:
                with args.answers.open("a") as fh:
                    fh.write(json.dumps({**row, "results": answers}) + "\n")
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print_rows(
        rows,
        f"{'model':<30}{'prompt':<11}" + "".join(f"{short:>7}" for _, short in COLUMNS) + f"{'TTFT ms':>9}{'tok/s':>7}{'p50 s':>7}{'RSS MB':>8}",
        lambda row: f"{row['model']:<30}{row['qa_prompt']:<11}",
        lambda row: "".join(figure(row[key], ">7.3f") for key, _ in COLUMNS)
        + f"{figure(row['first_token_p50_ms'], '>9.0f')}{figure(row['tokens_per_s_p50'], '>7.1f')}{row['latency_p50_ms'] / 1000:>7.2f}"
        + f"{row['peak_rss_mb']:>8.0f}",
    )


def print_rows(rows: list[dict], header: str, head: Callable[[dict], str], cells: Callable[[dict], str]) -> None:
    """The table (a row that failed shows its error), then each row as one JSON line."""
    print(header)
    for row in rows:
        print(head(row) + (f"  {row['error']}" if "error" in row else cells(row)))
    for row in rows:
        print(json.dumps(row, ensure_ascii=False))

if __name__ == "__main__":
    main()
