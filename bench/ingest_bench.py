"""Ingest benchmark: full ingest and unchanged re-sync of a folder, against the plain LangChain stack and the floor.

    .venv/bin/python bench/ingest_bench.py                 # SciFact corpus, one file per abstract
    .venv/bin/python bench/ingest_bench.py --limit 500     # a quick run
    .venv/bin/python bench/ingest_bench.py --ndcg          # and SciFact nDCG@10 (hybrid) of the index built
    .venv/bin/python bench/ingest_bench.py --folder ~/notes
    .venv/bin/python bench/ingest_bench.py --realdocs      # ../shared/data/realdocs: real PDFs, docs, notebooks
    .venv/bin/python bench/ingest_bench.py --ocr-pages 20  # OCR alone: 20 scanned pages in one PDF
    .venv/bin/python bench/ingest_bench.py --rag-env RAG_CHUNKING__OVERLAP_TOKENS=0 --no-peer
    .venv/bin/python bench/avx2_only.py -- .venv/bin/python bench/ingest_bench.py --ndcg   # as on an AVX2-only CPU

What each figure is (one JSON line on stdout; progress on stderr):

- `full_ingest_s`, `full_peak_rss_mb`: a real `rag ingest` CLI process into an empty index, timed
  from its start to its exit (interpreter start, imports, reading, chunking, embedding, writing);
  the peak RSS is the kernel's accounting of that child. `full_ingest_library_s` is the time the
  library itself reports. `resync_*`: the same command again with nothing changed.
- `embedding_path`, `embedding_path_reason`: how that ingest embedded (`ingest.embedding.embedding_path`
  for its settings; it is bulk when the files to read add up to `ingest.sync.BULK_INGEST_BYTES`).
  `cpu_flags`: which of the vector extensions that decide it this CPU has.
- `langchain_s`, `langchain_peak_rss_mb`: the peer, the plain LangChain stack on the same files in the
  same run (bench/langchain_stack.py), as its own process timed the same way: one Document per file,
  the file's whole text (utf-8, undecodable bytes replaced; a PDF or a .docx is read as that text too,
  which is what the plain stack does with a bare file read), `HuggingFaceEmbeddings` on the packaged
  all-MiniLM-L6-v2 folder (sentence-transformers, torch float32, CPU, normalized vectors, with
  HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1: nothing downloaded) and `Chroma.from_documents` into a
  collection on disk. It runs after the rag ingest, so the files are in the page cache for it at least
  as much as for rag. `langchain_tokens_embedded`: word pieces that stack feeds the model, min(tokens + 2,
  256) per document (sentence-transformers cuts each at max_seq_length 256, the rest of a long document
  is never embedded). `ratio_rag_to_langchain`: full_ingest_s / langchain_s. `--no-peer` skips it.
- `baseline_embedding_only_s`: the embedding model alone on ONNX Runtime in float32 (the path of
  queries and small ingests), in this process, encoding exactly the chunk texts the ingest stored.
  A large ingest embeds in bfloat16 on a CPU with native bfloat16 and with int8 matrix products on
  other CPUs, so it can finish before it does.
- `embedding_matmul_floor_s`: what the encoder's matrix products alone (the bulk of its arithmetic)
  take for `tokens_embedded` at `matmul_gflops`, the rate this CPU reaches on one representative
  product (activations [batch * chunk_tokens, hidden] x weights [hidden, intermediate]) in the dtype
  (`floor_dtype`) and library of the path the ingest took: torch for a torch path, an ONNX Runtime
  session holding that single MatMul for an ONNX one. No implementation of that path embeds the
  tokens faster. `numpy_blas` is threadpoolctl's view of numpy's BLAS (not used by either path).
- `edited_*`: after all the above, one file in ten (by path) gets a sentence at its end and the
  folder is synced again: `edited_files` updated, `edited_chunks_added` chunks written for them,
  `edited_chunks_reused` of those kept the vectors of an unchanged text instead of being embedded,
  `edited_resync_s` the whole `rag ingest` process. The baseline, `edited_fresh_ingest_s`: copies
  of just those edited files ingested into an empty index (`edited_fresh_chunks` chunks, every one
  embedded), what such a re-sync cost when it embedded every chunk of a changed file. The files
  get their bytes back afterwards.
- `ndcg_at_10_hybrid` (`--ndcg`, whole SciFact corpus only): nDCG@10 of the index just built, hybrid
  search, over SciFact's 300 test queries, as `rag eval` computes it.
- `folder`: what was ingested. `files`, `failed`, `skipped`: the files the full ingest added, failed
  and skipped (its report's lists). `files_per_s`, `chunks_per_s`: files added and chunks stored
  per second of `full_ingest_s` (the whole process, cold start included). `--realdocs` is
  `--folder ../shared/data/realdocs` (next to the repository), real documents of mixed formats.

`--ocr-pages N` stands alone (no SciFact or folder ingest, no peer; its own JSON line): N scanned
pages, each a Letter page at 200 dpi with 27 lines of 12 pt body text (Pillow's own font at 33 pixels,
as tests/integration/test_ocr.py draws them; SciFact's titles and abstracts, ASCII words only, different on each
page, or made-up sentences without SciFact), saved as one PDF of page images with no text layer, as
a scanner writes it:

- `ocr_s`, `ocr_peak_rss_mb`, `ocr_library_s`: a real `rag ingest` CLI process of that PDF into an
  empty index, timed as `full_ingest_s` is (cold start and OCR model load included; then chunking,
  embedding, writing). `ocr_pages_per_s`: ocr_pages / ocr_s.
- `ocr_pages_per_s_warm`: OCR alone, in this process, through `ingest.loaders.ocr.read_pdf_pages` (render
  and read) on the same PDF, all N pages, after one page read as a warm-up (models loaded, threads
  started; the engine keeps no results); `ocr_warm_s` is its time.
- `ocr_words`: words drawn; `ocr_words_found_share`: the share of them (lower-cased, punctuation
  stripped, counted per page with repeats) found in the chunk texts the index stored for that page.

`--rag-env KEY=VALUE` (repeatable) goes into the rag ingest processes' environment and into the
settings this process reads back (chunks, embedding path, floor, nDCG), e.g. RAG_CHUNKING__OVERLAP_TOKENS=0.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCIFACT = REPO.parent / "shared" / "data" / "scifact"
REALDOCS = REPO.parent / "shared" / "data" / "realdocs"
PEER = REPO / "bench" / "langchain_stack.py"
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "avx_vnni")
OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
MATMUL_RUNS = 20
# Scanned pages, drawn as the OCR tests draw them (tests.helpers.scanned_page): 12 pt at 200 dpi.
OCR_LINES = 27  # per page, its title included
OCR_PARAGRAPH_LINES = 7
OCR_WORDS = (  # for made-up pages when SciFact is not there
    "pump valve boiler gauge pressure inlet outlet filter seal bearing motor shaft cabinet store east west "
    "north south spare replaced checked cleaned measured logged reported fitted drained tested monday "
    "tuesday march april june october three four seven twelve fifteen the a of in on at was were and "
    "with after before every second morning evening crew engineer report reading normal high low"
).split()


EDIT_EVERY = 10
EDIT_SENTENCE = "This abstract was revised in a later edition.\n"


def build_scifact_folder(target: Path, limit: int | None) -> Path:
    """One .txt file per abstract (title, blank line, text), written once and reused."""
    marker = target / f".complete-{limit or 'all'}"
    if marker.exists():
        return target
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    with (SCIFACT / "corpus.jsonl").open() as corpus:
        for number, line in enumerate(corpus):
            if limit is not None and number >= limit:
                break
            doc = json.loads(line)
            (target / f"{doc['_id']}.txt").write_text(f"{doc.get('title', '')}\n\n{doc['text']}\n")
    marker.touch()
    return target


def timed_process(command: list[str], env: dict[str, str]) -> tuple[str, int, float, float]:
    """(stdout, exit code, wall seconds, peak RSS in MB) of one child process; its stderr passes through."""
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    return stdout, os.waitstatus_to_exitcode(status), seconds, usage.ru_maxrss / 1024


def run_cli(args: list[str], home: Path, extra_env: dict[str, str]) -> tuple[dict, float, float]:
    """(JSON report, wall seconds, peak RSS in MB) of one `rag` process."""
    rag = Path(sys.executable).with_name("rag")
    env = {**os.environ, **extra_env, "RAG_HOME": str(home)}
    stdout, code, seconds, rss = timed_process([str(rag), *args, "--json"], env)
    if code not in (0, 1):
        raise SystemExit(f"rag {' '.join(args)} failed with exit code {code}")
    return json.loads(stdout), seconds, rss


def edited_resync(files: list[Path], home: Path, workdir: Path, rag_env: dict[str, str]) -> dict:
    """The `edited_*` figures: a re-sync after one file in EDIT_EVERY got a sentence at its end,
    against a fresh ingest of copies of just those files (every chunk embedded, as a re-sync did
    before unchanged chunks kept their vectors). The files get their bytes back afterwards."""
    chosen = sorted(files)[::EDIT_EVERY]
    originals = {path: path.read_bytes() for path in chosen}
    copies, fresh_home = workdir / "edited-copies", workdir / "edited-home"
    for folder in (copies, fresh_home):
        shutil.rmtree(folder, ignore_errors=True)
    copies.mkdir()
    try:
        for path, data in originals.items():
            path.write_bytes(data + EDIT_SENTENCE.encode())
            (copies / path.name).write_bytes(data + EDIT_SENTENCE.encode())
        resync, resync_seconds, _ = run_cli(["ingest", str(chosen[0].parent)], home, rag_env)
        fresh, fresh_seconds, _ = run_cli(["ingest", str(copies)], fresh_home, rag_env)
    finally:
        for path, data in originals.items():
            path.write_bytes(data)
        for folder in (copies, fresh_home):
            shutil.rmtree(folder, ignore_errors=True)
    return {
        "edited_files": len(resync["updated"]),
        "edited_chunks_added": resync["chunks_added"],
        "edited_chunks_reused": resync["chunks_reused"],
        "edited_resync_s": round(resync_seconds, 2),
        "edited_fresh_ingest_s": round(fresh_seconds, 2),
        "edited_fresh_chunks": fresh["chunks_added"],
    }


def run_peer(files: list[str], workdir: Path, model_path: Path) -> dict:
    """The plain LangChain stack on `files`, as its own process: its figures for the JSON line."""
    sys.path.insert(0, str(PEER.parent))
    from langchain_stack import read_documents, tokens_embedded

    listing = workdir / "langchain-files.txt"
    listing.write_text("".join(f"{path}\n" for path in files))
    persist = workdir / "langchain-chroma"
    shutil.rmtree(persist, ignore_errors=True)
    env = {**os.environ, **OFFLINE}
    try:
        stdout, code, seconds, rss = timed_process([sys.executable, str(PEER), str(listing), str(persist)], env)
    finally:
        shutil.rmtree(persist, ignore_errors=True)
    if code != 0:
        raise SystemExit(f"the LangChain peer failed with exit code {code}")
    inner = json.loads(stdout)
    if inner["vectors_stored"] != len(files):
        raise SystemExit(f"the LangChain peer stored {inner['vectors_stored']} vectors for {len(files)} files")
    texts = [text for _, text in read_documents(files)]
    return {
        "langchain_s": round(seconds, 2),
        "langchain_peak_rss_mb": round(rss),
        "langchain_documents": inner["documents"],
        "langchain_tokens_embedded": tokens_embedded(texts, str(model_path)),
        "langchain_from_documents_s": inner["from_documents_s"],
    }


def stored_chunks(settings) -> list:
    """Every chunk (StoredChunk: text and metadata) the index's vector store holds, in chunk id order."""
    from ingest.index import Index

    store = Index(settings).store
    ids = sorted(store.ids())
    stored: list = []
    for start in range(0, len(ids), 1000):
        chunks = store.get(ids[start : start + 1000])
        stored.extend(chunks[chunk_id] for chunk_id in ids[start : start + 1000] if chunk_id in chunks)
    return stored


def stored_texts(settings) -> list[str]:
    """Every chunk text the index's vector store holds, in chunk id order."""
    return [chunk.text for chunk in stored_chunks(settings)]


def embedding_baseline(embedder, texts: list[str]) -> float:
    """Seconds for the embedding model alone (ONNX Runtime, float32) to encode `texts`."""
    embedder.encode(texts[:8])  # load the model outside the timing, as the ingest's own load is small
    started = time.perf_counter()
    embedder.encode(texts)
    return time.perf_counter() - started


def cpu_flags() -> list[str]:
    from ingest.embedding import cpu_flags

    return [flag for flag in CPU_FLAGS if flag in cpu_flags()]


def numpy_blas() -> list[dict]:
    """threadpoolctl's record of the BLAS numpy loaded (OpenBLAS honours OPENBLAS_CORETYPE, set on some machines)."""
    try:
        import numpy  # noqa: F401  (loads its BLAS)
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keys = ("internal_api", "version", "architecture", "threading_layer", "num_threads")
    return [
        {**{key: info.get(key) for key in keys}, "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE")}
        for info in threadpool_info()
        if info.get("user_api") == "blas" and "numpy" in info.get("filepath", "")
    ]


def split_path(path: str) -> tuple[str, str]:
    """("float32", "onnx") from "float32-onnx"; a bare library name ("torch") is float32."""
    dtype, _, library = path.partition("-")
    return ("float32", dtype) if not library else (dtype, library)


def best_of(run, times: int = MATMUL_RUNS) -> float:
    run()  # warm-up: weights packed, threads started
    best = float("inf")
    for _ in range(times):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def torch_matmul_seconds(dtype: str, rows: int, hidden: int, inner: int) -> float:
    import torch

    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    activations = torch.randn(rows, hidden, dtype=torch_dtype)
    weights = torch.randn(inner, hidden, dtype=torch_dtype)  # nn.Linear's layout
    with torch.inference_mode():
        return best_of(lambda: torch.nn.functional.linear(activations, weights))


def onnx_matmul_seconds(dtype: str, rows: int, hidden: int, inner: int) -> float:
    """One MatMul (MatMulInteger for int8) in an ONNX Runtime session set up as the encoder's is."""
    import numpy as np
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    generator = np.random.default_rng(0)
    if dtype == "float32":
        activations = generator.standard_normal((rows, hidden), dtype=np.float32)
        weights = generator.standard_normal((hidden, inner), dtype=np.float32)
        node, in_type, out_type = helper.make_node("MatMul", ["A", "W"], ["Y"]), TensorProto.FLOAT, TensorProto.FLOAT
    elif dtype == "int8":
        activations = generator.integers(0, 256, (rows, hidden), dtype=np.uint8)
        weights = generator.integers(-128, 128, (hidden, inner), dtype=np.int8)
        node, in_type, out_type = helper.make_node("MatMulInteger", ["A", "W"], ["Y"]), TensorProto.UINT8, TensorProto.INT32
    else:
        raise ValueError(dtype)
    graph = helper.make_graph(
        [node],
        "one_matmul",
        [helper.make_tensor_value_info("A", in_type, [rows, hidden])],
        [helper.make_tensor_value_info("Y", out_type, [rows, inner])],
        initializer=[numpy_helper.from_array(weights, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what this onnxruntime reads for sure
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as ingest.embedding.onnx_encoder's session
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return best_of(lambda: session.run(None, {"A": activations}))


def matmul_floor(path: str, model_path: Path, tokens: int, batch: int, chunk_tokens: int) -> dict:
    """floor_dtype, the rate of one encoder matrix product on the path's library and dtype, and the floor."""
    config = json.loads((model_path / "config.json").read_text())
    hidden, inner, layers = config["hidden_size"], config["intermediate_size"], config["num_hidden_layers"]
    # Per token and layer: query, key, value and output projections, and the two feed-forward ones.
    flops_per_token = layers * 2 * (4 * hidden * hidden + 2 * hidden * inner)
    dtype, library = split_path(path)
    rows = batch * chunk_tokens  # one batch of full chunks
    if library == "torch" and dtype in ("float32", "bfloat16"):
        seconds = torch_matmul_seconds(dtype, rows, hidden, inner)
    elif library == "onnx" and dtype in ("float32", "int8"):
        seconds = onnx_matmul_seconds(dtype, rows, hidden, inner)
    else:
        print(f"no floor for the embedding path {path!r}", file=sys.stderr)
        return {"floor_dtype": None, "floor_library": None, "matmul_gflops": None, "embedding_matmul_floor_s": None}
    rate = 2 * rows * hidden * inner / seconds
    return {
        "floor_dtype": dtype,
        "floor_library": {"torch": "torch", "onnx": "onnxruntime"}[library],
        "matmul_gflops": round(rate / 1e9),
        "embedding_matmul_floor_s": round(tokens * flops_per_token / rate, 1),
    }


def scifact_ndcg(settings) -> float:
    """nDCG@10 of the bench's index (its own home and collection), hybrid, over SciFact's test queries."""
    from rag import evaluation

    dataset = evaluation.load_dataset(SCIFACT)
    (report,) = evaluation.evaluate(dataset, settings, ["hybrid"], deep=False)
    return report.ndcg_at_10


def page_texts(pages: int) -> list[list[str]]:
    """Text for `pages` scanned pages: per page a title and paragraphs, OCR_LINES lines in all once
    wrapped at SCAN_LINE_CHARS. SciFact's titles and abstracts (ASCII words only: the font has no
    Greek), each page its own; made-up sentences from OCR_WORDS without SciFact."""
    import random
    import textwrap

    sys.path.insert(0, str(REPO))
    from tests.helpers import SCAN_LINE_CHARS

    def documents():
        corpus = SCIFACT / "corpus.jsonl"
        if corpus.exists():
            with corpus.open() as lines:
                for line in lines:
                    doc = json.loads(line)
                    yield tuple(" ".join(w for w in doc[key].split() if w.isascii()) for key in ("title", "text"))
        generator = random.Random(0)
        while True:
            sentences = (" ".join(generator.choices(OCR_WORDS, k=generator.randint(6, 14))) for _ in range(40))
            yield generator.choice(OCR_WORDS).title() + " log", ". ".join(s.capitalize() for s in sentences) + "."

    source = documents()
    result = []
    for _ in range(pages):
        title, text = next(source)
        while len(text) < OCR_LINES * SCAN_LINE_CHARS:  # a short abstract: the next one follows
            text += " " + next(source)[1]
        title_line = textwrap.wrap(title, SCAN_LINE_CHARS)[0]
        # Not broken after hyphens here: the page's own wrapping may, and OCR joins "diffusion-" "weighted".
        body = textwrap.wrap(text, SCAN_LINE_CHARS, break_on_hyphens=False)[: OCR_LINES - 1]
        paragraphs = [body[start : start + OCR_PARAGRAPH_LINES] for start in range(0, len(body), OCR_PARAGRAPH_LINES)]
        result.append([title_line, *(" ".join(lines) for lines in paragraphs)])
    return result


def words(text: str) -> list[str]:
    """Lower-cased words, punctuation stripped ("Beta-cell," is "betacell"); tokens of punctuation alone dropped."""
    found = ("".join(char for char in token if char.isalnum()) for token in text.lower().split())
    return [word for word in found if word]


def words_found(drawn: list[str], stored: list[str]) -> int:
    """How many of the drawn words (with repeats) the stored ones hold."""
    from collections import Counter

    have = Counter(stored)
    return sum(min(count, have[word]) for word, count in Counter(drawn).items())


def ocr_bench(pages: int, workdir: Path, rag_env: dict[str, str]) -> dict:
    """The --ocr-pages figures (see the module's docstring)."""
    import rag
    from ingest.loaders.ocr import read_pdf_pages

    print(f"drawing {pages} scanned pages ...", file=sys.stderr)
    texts = page_texts(pages)
    from tests.helpers import scanned_page, scanned_pdf

    data = scanned_pdf(*(scanned_page(*paragraphs) for paragraphs in texts))
    folder = workdir / "ocr-pages"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pdf = folder / f"scanned-{pages}.pdf"
    pdf.write_bytes(data)
    home = workdir / "home-ocr"
    shutil.rmtree(home, ignore_errors=True)

    print(f"ingest of {pdf} ({len(data) / 1e6:.1f} MB) ...", file=sys.stderr)
    report, seconds, rss = run_cli(["ingest", str(folder)], home, rag_env)
    if report["failed"] or len(report["added"]) != 1:
        raise SystemExit(f"the scanned PDF was not ingested: {report['failed'] or report['skipped']}")
    settings = rag.load_settings(home=home, environ={**os.environ, **rag_env})
    chunks = [chunk for chunk in stored_chunks(settings) if Path(chunk.metadata.get("source", "")).name == pdf.name]
    found = total = 0
    for number, paragraphs in enumerate(texts, start=1):
        drawn = words(" ".join(paragraphs))
        stored = [word for chunk in chunks if chunk.metadata.get("page") == number for word in words(chunk.text)]
        found, total = found + words_found(drawn, stored), total + len(drawn)

    print("OCR alone, in this process, after a warm-up page ...", file=sys.stderr)
    read_pdf_pages(data, [1])
    started = time.perf_counter()
    read_pdf_pages(data, list(range(1, pages + 1)))
    warm_seconds = time.perf_counter() - started
    return {
        "ocr_pages": pages,
        "ocr_words": total,
        "ocr_pdf_mb": round(len(data) / 1e6, 2),
        "rag_env": rag_env,
        "chunks": len(chunks),
        "ocr_report": report["ocr"],
        "ocr_s": round(seconds, 2),
        "ocr_library_s": report["seconds"],
        "ocr_peak_rss_mb": round(rss),
        "ocr_pages_per_s": round(pages / seconds, 3),
        "ocr_warm_s": round(warm_seconds, 2),
        "ocr_pages_per_s_warm": round(pages / warm_seconds, 3),
        "ocr_words_found_share": round(found / total, 4) if total else None,
        "cpu_flags": cpu_flags(),
    }


def parse_env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--rag-env takes KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, help="ingest this folder instead of SciFact")
    parser.add_argument("--realdocs", action="store_true", help=f"ingest {REALDOCS} (--folder of it)")
    parser.add_argument(
        "--ocr-pages", type=int, metavar="N", help="only OCR: N scanned pages in one PDF, ingested and read"
    )
    parser.add_argument("--limit", type=int, help="only the first N SciFact abstracts")
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "rag-bench")
    parser.add_argument("--no-peer", action="store_true", help="skip the plain LangChain stack")
    parser.add_argument("--ndcg", action="store_true", help="SciFact nDCG@10 (hybrid) of the index built")
    parser.add_argument(
        "--rag-env", action="append", default=[], metavar="KEY=VALUE", help="environment of the rag ingest (repeatable)"
    )
    options = parser.parse_args()
    if options.realdocs:
        if options.folder:
            parser.error("--realdocs is a --folder: not both")
        if not REALDOCS.is_dir():
            raise SystemExit(f"--realdocs: no folder of real documents at {REALDOCS}")
        options.folder = REALDOCS
    if options.ndcg and (options.folder or options.limit):
        parser.error("--ndcg needs the whole SciFact corpus: not with --folder, --realdocs or --limit")
    rag_env = parse_env(options.rag_env)
    if options.ocr_pages is not None:
        if options.ocr_pages < 1:
            parser.error("--ocr-pages takes a number of pages, 1 or more")
        if options.folder or options.limit or options.ndcg:
            parser.error("--ocr-pages stands alone: not with --folder, --realdocs, --limit or --ndcg")
        print(json.dumps(ocr_bench(options.ocr_pages, options.workdir, rag_env)))
        return

    folder = options.folder or build_scifact_folder(
        options.workdir / f"scifact-{options.limit or 'all'}", options.limit
    )
    home = options.workdir / "home"
    shutil.rmtree(home, ignore_errors=True)

    import rag
    from ingest.discover import discover
    from ingest.embedding import BULK_BATCH_SIZE, SPECIAL_TOKENS_PER_INPUT, LocalEmbeddings, embedding_path
    from ingest.sync import BULK_INGEST_BYTES

    settings = rag.load_settings(home=home, environ={**os.environ, **rag_env})
    candidates = discover([Path(os.path.abspath(os.path.expanduser(folder)))], settings.ingest).candidates
    bulk = sum(candidate.size for candidate in candidates) >= BULK_INGEST_BYTES
    path, reason = embedding_path(settings.embedding, bulk=bulk)

    print(f"full ingest of {folder} ({path}: {reason}) ...", file=sys.stderr)
    full, full_seconds, full_rss = run_cli(["ingest", str(folder)], home, rag_env)
    print("unchanged re-sync ...", file=sys.stderr)
    resync, resync_seconds, resync_rss = run_cli(["ingest", str(folder)], home, rag_env)
    # The ONNX baseline below reads the same model; its path does not depend on the ingest's settings.
    baseline_settings = settings.embedding.model_copy(update={"runtime": "onnx"})
    embedder = LocalEmbeddings(baseline_settings, settings.cache_path)
    peer: dict = dict.fromkeys(
        ("langchain_s", "langchain_peak_rss_mb", "langchain_documents", "langchain_tokens_embedded",
         "langchain_from_documents_s")
    )
    if not options.no_peer:
        print(f"peer: the plain LangChain stack on the same {len(candidates)} files ...", file=sys.stderr)
        peer = run_peer([candidate.path for candidate in candidates], options.workdir, embedder.model_path)
    print("baseline: the embedding model alone on the same chunks ...", file=sys.stderr)
    texts = stored_texts(settings)
    embed_seconds = embedding_baseline(embedder, texts)
    counter = embedder.token_counter
    tokens = sum(min(counter.count(text), counter.window) + SPECIAL_TOKENS_PER_INPUT for text in texts)
    print(f"floor: the encoder's matrix products on the {path} path ...", file=sys.stderr)
    batch = BULK_BATCH_SIZE if path == "bfloat16-torch" else settings.embedding.batch_size
    floor = matmul_floor(path, embedder.model_path, tokens, batch, settings.chunking.tokens_for(settings.embedding.model))
    ndcg = None
    if options.ndcg:
        print("nDCG@10 of the index, hybrid, SciFact's test queries ...", file=sys.stderr)
        ndcg = round(scifact_ndcg(settings), 4)
    print(f"edited re-sync: one file in {EDIT_EVERY} gets a sentence at its end ...", file=sys.stderr)
    edited = edited_resync([Path(candidate.path) for candidate in candidates], home, options.workdir, rag_env)

    result = {
        "folder": str(folder),
        "files": len(full["added"]),
        "failed": len(full["failed"]),
        "skipped": len(full["skipped"]),
        "chunks": len(texts),
        "tokens_embedded": tokens,
        "rag_env": rag_env,
        "embedding_path": path,
        "embedding_path_reason": reason,
        "cpu_flags": cpu_flags(),
        "full_ingest_s": round(full_seconds, 2),
        "full_ingest_library_s": full["seconds"],
        "files_per_s": round(len(full["added"]) / full_seconds, 2),
        "chunks_per_s": round(len(texts) / full_seconds, 1),
        "full_peak_rss_mb": round(full_rss),
        "resync_unchanged_files": resync["unchanged"],
        "resync_s": round(resync_seconds, 3),
        "resync_library_s": resync["seconds"],
        "resync_peak_rss_mb": round(resync_rss),
        **edited,
        **peer,
        "ratio_rag_to_langchain": round(full_seconds / peer["langchain_s"], 3) if peer["langchain_s"] else None,
        "baseline_embedding_only_s": round(embed_seconds, 2),
        "overhead_beyond_embedding_s": round(full_seconds - embed_seconds, 2),
        "embedding_share_of_ingest": round(embed_seconds / full_seconds, 3),
        **floor,
        "numpy_blas": numpy_blas(),
        "ndcg_at_10_hybrid": ndcg,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
