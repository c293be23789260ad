"""Serve benchmark: `rag serve` over HTTP against the same searches and answers in-process.

    .venv/bin/python bench/serve_bench.py [--clients 8] [--requests 160] [--rounds 2] [--questions 4] [--runs 2]
                                          [--max-tokens 32] [--model FILE.gguf]

Ingests the sample corpus into a temporary RAG_HOME (a config file there sets the packaged Gemma 3
270M, temperature 0 and --max-tokens), then starts a real `rag serve` process on a free loopback
port with the same settings, and in this process loads the same knowledge base through the library.

Search: --clients threads, each with its own keep-alive `httpx.Client`, send `POST /api/search`
(`{"query": q}`, the configured k and hybrid mode) for the first --questions questions of
tests/helpers.py in turn, --requests in all; the baseline is the same searches as `rag.search` calls
in --clients threads of this process (and, for reference, one after another). Latency is each
request's (or call's) own time; requests per second is the requests over the wall time of the phase.
Both phases take turns, --rounds times each, so background load falls on both alike.

First token: for each question, --runs times, the time from sending the request to the first
`token` event of `POST /api/ask` (SSE) and to the first non-empty content delta of a streaming
`POST /v1/chat/completions`, against `rag ask`'s own first-token time in-process
(`rag.ask.Assistant(settings).stream(question)`, timed as bench/ask_bench.py does: retrieval
included). Every stream is read to its end. Each of the three goes through all the questions in
turn, then the next, --runs times. No KV cache is reset on either side (the server's cannot be):
no model ever reads the prompt it has just read, so each reuses only the prompt template's prefix.

Prints one JSON line: the server's figures and the in-process baseline from the same run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import QUESTIONS, SAMPLE_NOTES, free_port  # noqa: E402 (imports nothing of rag)


@contextlib.contextmanager
def rag_serve(env: dict[str, str], log: Path, timeout: float = 180) -> Iterator[str]:
    """A real `rag serve` process on a free loopback port, up once /health answers; its base URL."""
    import httpx

    port = free_port()
    command = [str(Path(sys.executable).with_name("rag")), "serve", "--port", str(port)]
    with log.open("wb") as stderr:
        server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"rag serve did not come up; its stderr: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGINT)  # uvicorn's graceful stop
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def percentile(values: list[float], pct: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[pct - 1]


def concurrent_phase(call: Callable[[int, str], None], queries: list[str], clients: int) -> tuple[float, list[float]]:
    """Wall seconds and per-call milliseconds for `queries` shared among `clients` threads.

    `call(worker, query)`: `worker` numbers the thread, so each client keeps its own connection.
    """
    latencies: list[float] = []
    position = iter(range(len(queries)))
    lock = threading.Lock()

    def worker(number: int) -> None:
        while True:
            with lock:
                index = next(position, None)
            if index is None:
                return
            started = time.perf_counter()
            call(number, queries[index])
            elapsed = (time.perf_counter() - started) * 1000
            with lock:
                latencies.append(elapsed)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        for future in [pool.submit(worker, number) for number in range(clients)]:
            future.result()
    return time.perf_counter() - started, latencies


def search_figures(wall: float, latencies: list[float]) -> dict[str, float]:
    return {
        "rps": round(len(latencies) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p95_ms": round(percentile(latencies, 95), 1),
    }


def http_first_token_ask(client, url: str, question: str) -> float:
    started = time.perf_counter()
    first, event = None, None
    with client.stream("POST", f"{url}/api/ask", json={"question": question}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "token" and first is None:
                first = time.perf_counter()
            elif line.startswith("data: ") and event == "error":
                raise RuntimeError(line)
    if first is None:
        raise RuntimeError(f"no token from /api/ask for {question!r}")
    return (first - started) * 1000


def http_first_token_chat(client, url: str, question: str) -> float:
    body = {"model": "rag:default", "stream": True, "messages": [{"role": "user", "content": question}]}
    started = time.perf_counter()
    first = None
    with client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            frame = json.loads(line.removeprefix("data: "))
            if "error" in frame:
                raise RuntimeError(line)
            if first is None and any(choice["delta"].get("content") for choice in frame.get("choices", [])):
                first = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no content from /v1/chat/completions for {question!r}")
    return (first - started) * 1000


def inprocess_first_token(assistant, question: str) -> float:
    started = time.perf_counter()
    first = None
    for _ in assistant.stream(question):
        first = first or time.perf_counter()
    return (first - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent search clients (and in-process threads)")
    parser.add_argument("--requests", type=int, default=160, help="searches per phase")
    parser.add_argument("--rounds", type=int, default=2, help="turns of the HTTP and in-process search phases")
    parser.add_argument("--questions", type=int, default=4, help="how many of tests/helpers.py QUESTIONS")
    parser.add_argument("--runs", type=int, default=2, help="first-token runs per question and path")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the packaged Gemma 3 270M)")
    options = parser.parse_args()
    if options.questions < 2:
        parser.error("--questions must be at least 2: a repeated prompt would come from the KV cache")

    import httpx

    import rag
    from rag.ask import Assistant

    home = Path(tempfile.mkdtemp(prefix="rag-serve-bench-"))
    model = f'model_path = "{options.model.resolve()}"' if options.model else 'model = "gemma-3-270m"'
    config = home / "rag.toml"
    config.write_text(f"[llm]\n{model}\ntemperature = 0.0\nmax_tokens = {options.max_tokens}\n")
    # The server process and this one read the same settings: this file and this RAG_HOME, nothing else.
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAG_")}
    env.update({"RAG_HOME": str(home), "RAG_CONFIG": str(config)})
    settings = rag.load_settings(environ=env)
    print("ingesting the sample corpus ...", file=sys.stderr)
    rag.ingest([SAMPLE_NOTES], settings)
    questions = [question for question, _ in QUESTIONS[: options.questions]]
    queries = [questions[i % len(questions)] for i in range(options.requests)]

    print("starting rag serve and loading the model in-process ...", file=sys.stderr)
    with rag_serve(env, home / "serve.log") as url:
        assistant = Assistant(settings)
        clients = [httpx.Client(timeout=120) for _ in range(options.clients)]  # one keep-alive connection each

        def http_search(worker: int, query: str) -> None:
            response = clients[worker].post(f"{url}/api/search", json={"query": query})
            response.raise_for_status()
            response.json()

        def library_search(worker: int, query: str) -> None:
            rag.search(query, settings)

        # Warm-up: the first searches and the first generation on each side.
        concurrent_phase(http_search, questions * 2, options.clients)
        concurrent_phase(library_search, questions * 2, options.clients)
        print("searching ...", file=sys.stderr)
        http_runs, library_runs, sequential_runs = [], [], []
        for _ in range(options.rounds):
            http_runs.append(concurrent_phase(http_search, queries, options.clients))
            library_runs.append(concurrent_phase(library_search, queries, options.clients))
            sequential_runs.append(concurrent_phase(library_search, queries, 1))

        def pooled(runs: list[tuple[float, list[float]]]) -> dict[str, float]:
            return search_figures(sum(wall for wall, _ in runs), [ms for _, latencies in runs for ms in latencies])

        print("first tokens ...", file=sys.stderr)
        with httpx.Client(timeout=300) as client:
            inprocess_first_token(assistant, questions[-1])
            http_first_token_ask(client, url, questions[-1])
            http_first_token_chat(client, url, questions[-1])
            # Each path goes through all the questions in turn: no model sees the prompt it has just read.
            ask_ms, chat_ms, library_ms = [], [], []
            for _ in range(options.runs):
                library_ms += [inprocess_first_token(assistant, question) for question in questions]
                ask_ms += [http_first_token_ask(client, url, question) for question in questions]
                chat_ms += [http_first_token_chat(client, url, question) for question in questions]
                done = len(library_ms) - len(questions)
                print(
                    f"  run {done // len(questions) + 1} of {options.runs}, first token ms: in-process "
                    f"{[round(ms) for ms in library_ms[done:]]}, /api/ask {[round(ms) for ms in ask_ms[done:]]}, "
                    f"/v1/chat/completions {[round(ms) for ms in chat_ms[done:]]}",
                    file=sys.stderr,
                )
        for http_client in clients:
            http_client.close()

    http, library, sequential = pooled(http_runs), pooled(library_runs), pooled(sequential_runs)
    result = {
        "model": Path(assistant.llm.model_path).name,
        "clients": options.clients,
        "searches": options.requests * options.rounds,
        "http_search_rps": http["rps"],
        "http_search_p50_ms": http["p50_ms"],
        "http_search_p95_ms": http["p95_ms"],
        "inprocess_threads_search_rps": library["rps"],
        "inprocess_threads_search_p50_ms": library["p50_ms"],
        "inprocess_threads_search_p95_ms": library["p95_ms"],
        "inprocess_sequential_search_rps": sequential["rps"],
        "inprocess_sequential_search_p50_ms": sequential["p50_ms"],
        "first_token_runs": len(library_ms),
        "http_api_ask_first_token_ms": round(statistics.median(ask_ms), 1),
        "http_chat_completions_first_token_ms": round(statistics.median(chat_ms), 1),
        "inprocess_ask_first_token_ms": round(statistics.median(library_ms), 1),
        "http_first_token_overhead_ms": round(statistics.median(ask_ms) - statistics.median(library_ms), 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
