"""`rag serve` for a team, for real: a four-slot llama-server (the packaged test model) through the
openai backend, uvicorn on a free loopback port, real HTTP, OpenAI and MCP clients.

Capacity: sixteen chat completions at once all complete with at most four in flight at the model
server; past the running answers and the queue a request is a 503 with Retry-After; a client that
leaves (streaming or not, running or waiting) gives its slot or its place back, and the model
server's request is cancelled. Tokens: two named tokens, `reader` (read on alpha) and `writer`
(write on beta), across every route including /mcp and the OpenAI routes; the server's own token
stays admin; a revoked token is refused without a restart; the tokens file stays private.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import threading
import time
import unicodedata
from typing import Iterator

import httpx
import openai
import pytest
from typer.testing import CliRunner

import rag
from rag.backends.base import ModelTraits
from rag.backends.packaged_models import packaged_model_path
from rag.cli import app as cli
from tests.conftest import SAMPLE_NOTES, TEST_MODEL, installed_command, make_settings
from tests.helpers import free_port, headless_browser, running_server
from tests.e2e.test_serve import sse_events, uvicorn_server

runner = CliRunner()
SLOTS = 4
ADMIN_TOKEN = "the-admin-token-of-the-team-tests"
LONG_ANSWER = "Count from 1 to 500, one number a line: 1, 2, 3,"
QUESTIONS = [
    "What oven temperature are the cardamom buns baked at?",
    "What soil pH did the 2023 soil test of the allotment show?",
    "When is Dad's hip operation booked?",
    "What is the booking reference for the Rorbu cabin in Reine?",
]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    """(settings, llama-server URL): SAMPLE_NOTES/work as the collection alpha, personal as beta (the
    default), and the test model served with four slots by llama-server as the openai backend."""
    home = tmp_path_factory.mktemp("team-home")
    inbox = tmp_path_factory.mktemp("team-inbox")
    (inbox / "note.md").write_text("# Inbox\n\nThe team's inbox note.\n", encoding="utf-8")
    settings = make_settings(home, collection="beta")
    rag.ingest([SAMPLE_NOTES / "work"], settings.model_copy(update={"collection": "alpha"}))
    rag.ingest([SAMPLE_NOTES / "personal"], settings)
    model = packaged_model_path(TEST_MODEL, settings.cache_path)
    port = free_port()
    command = [
        installed_command("llama-cpp-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", str(1024 * SLOTS), "--", "--threads", "2", "--parallel", str(SLOTS), "--alias", "served",
    ]
    url = f"http://127.0.0.1:{port}"
    llm = {
        "backend": "openai", "model": "served", "openai": {"base_url": f"{url}/v1"},
        "temperature": 0.0, "max_tokens": 16, "n_ctx": 1024,
    }
    served = make_settings(home, collection="beta", llm=llm, search={"k": 3}, serve={"ingest_roots": [str(inbox)]})
    with running_server(command, f"{url}/health", timeout=120):
        yield served, url


@pytest.fixture(scope="module")
def service(team):
    from rag.server.service import KnowledgeService

    loaded = KnowledgeService(team[0])
    yield loaded
    loaded.close()


def busy_slots(llama_url: str) -> int:
    return sum(slot["is_processing"] for slot in httpx.get(f"{llama_url}/slots", timeout=5).json())


class Watcher(threading.Thread):
    """Polls the model server's /slots and rag's /health until stopped; the most seen of each."""

    def __init__(self, llama_url: str, rag_url: str):
        super().__init__(daemon=True)
        self.llama_url, self.rag_url = llama_url, rag_url
        self.stopped = threading.Event()
        self.most_slots = self.most_in_flight = self.most_queued = 0

    def run(self) -> None:
        while not self.stopped.is_set():
            health = httpx.get(f"{self.rag_url}/health", timeout=5).json()
            self.most_slots = max(self.most_slots, busy_slots(self.llama_url))
            self.most_in_flight = max(self.most_in_flight, health["in_flight"])
            self.most_queued = max(self.most_queued, health["queued"])
            time.sleep(0.02)


def wait_for(condition, seconds: float, what: str) -> float:
    """How long `condition()` took to hold; fails after `seconds`."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, what
        time.sleep(0.05)
    return time.monotonic() - started


def health(url: str) -> dict:
    return httpx.get(f"{url}/health", timeout=5).json()


# -- capacity --------------------------------------------------------------------------------------------


def test_sixteen_concurrent_chat_completions_all_complete_with_at_most_four_in_flight(team, service):
    from rag.server.app import create_app

    _, llama_url = team
    with uvicorn_server(create_app(service)) as url:
        assert health(url) == {
            "status": "ok", "in_flight": 0, "queued": 0, "capacity": SLOTS, "queue": 32,
            "capacity_from": "the model server's slots",
        }
        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=600)
        answers: dict[int, object] = {}

        def ask(number: int) -> None:
            answers[number] = client.chat.completions.create(
                model="rag:beta", messages=[{"role": "user", "content": QUESTIONS[number % 4]}], max_tokens=12
            )

        watcher = Watcher(llama_url, url)
        watcher.start()
        askers = [threading.Thread(target=ask, args=(number,)) for number in range(16)]
        for asker in askers:
            asker.start()
        for asker in askers:
            asker.join(600)
        watcher.stopped.set()
        watcher.join()
        assert sorted(answers) == list(range(16))
        for answer in answers.values():
            assert answer.choices[0].message.content and answer.model_extra["sources"]
        assert watcher.most_in_flight == SLOTS and watcher.most_queued >= 1
        assert 2 <= watcher.most_slots <= SLOTS, "the model server had one request at a time, or more than its slots"
        assert (health(url)["in_flight"], health(url)["queued"]) == (0, 0)


@contextlib.contextmanager
def long_stream(url: str) -> Iterator[httpx.Response]:
    """A streamed chat completion that would run for minutes; the connection closes on leaving the block."""
    body = {"model": "llm", "messages": [{"role": "user", "content": LONG_ANSWER}], "max_tokens": 900, "stream": True}
    with httpx.Client(timeout=300) as client, client.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        yield response


def hold_a_slot(url: str, generating: threading.Event, leave: threading.Event) -> None:
    """Reads a long answer until told to leave (leaving the lines unread would close the connection at once)."""
    with long_stream(url) as response:
        for line in response.iter_lines():
            if line.startswith("data: {") and json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content"):
                generating.set()
            if leave.is_set():
                return


def test_a_full_queue_answers_503_and_clients_that_leave_free_their_slots_and_places(team, service):
    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    settings, llama_url = team
    one_place = settings.model_copy(update={"serve": settings.serve.model_copy(update={"queue": 1})})
    busy = KnowledgeService(one_place, llm=service.llm)
    try:
        with uvicorn_server(create_app(busy)) as url:
            leave = threading.Event()
            generating = [threading.Event() for _ in range(SLOTS)]
            holders = [threading.Thread(target=hold_a_slot, args=(url, event, leave), daemon=True) for event in generating]
            for holder in holders:
                holder.start()
            for event in generating:
                assert event.wait(300)
            assert health(url)["in_flight"] == SLOTS and busy_slots(llama_url) == SLOTS

            with long_stream(url) as waiting:  # the one place in the queue: its response begins, no token comes
                assert waiting.status_code == 200
                wait_for(lambda: health(url)["queued"] == 1, 10, "the fifth answer did not wait in the queue")
                refused = httpx.post(f"{url}/api/ask", json={"question": QUESTIONS[0]}, timeout=10)
                assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
                message = refused.json()["error"]["message"]
                assert message.startswith(f"The server is busy: its {SLOTS} generation slots are taken and its queue of 1 is full")
                chat = {"model": "rag:beta", "messages": [{"role": "user", "content": QUESTIONS[0]}]}
                assert httpx.post(f"{url}/v1/chat/completions", json=chat, timeout=10).status_code == 503
            wait_for(lambda: health(url)["queued"] == 0, 5, "a waiting client that left kept its place")
            assert health(url)["in_flight"] == SLOTS

            leave.set()  # the four streaming clients close their connections
            for holder in holders:
                holder.join(60)
            freed = wait_for(lambda: health(url)["in_flight"] == 0, 10, "slots stayed taken for clients that left")
            wait_for(lambda: busy_slots(llama_url) == 0, 10, "the model server kept generating for clients that left")
            assert freed < 10

            body = {"model": "llm", "messages": [{"role": "user", "content": LONG_ANSWER}], "max_tokens": 900}
            with pytest.raises(httpx.ReadTimeout):  # not streaming: the client gives up waiting for the whole answer
                httpx.post(f"{url}/v1/chat/completions", json=body, timeout=3)
            wait_for(lambda: health(url)["in_flight"] == 0, 10, "a non-streaming client that left kept its slot")
            wait_for(lambda: busy_slots(llama_url) == 0, 10, "the model server kept generating for a client that left")
    finally:
        busy.close()


def test_engines_in_this_process_answer_one_at_a_time_and_say_so(team):
    from rag.server.capacity import DEFAULT_PARALLEL, capacity_for
    from rag.server.service import KnowledgeService

    settings = make_settings(team[0].home, collection="beta", serve={"parallel": 8})  # llama.cpp in this process
    in_process = KnowledgeService(settings)
    try:
        capacity = in_process.gate.capacity
        assert (capacity.parallel, capacity.reason) == (1, "one at a time: the llamacpp backend generates in this process")
    finally:
        in_process.close()
    nobody = settings.llm.openai.model_copy(update={"base_url": f"http://127.0.0.1:{free_port()}/v1"})
    silent = settings.model_copy(update={"llm": settings.llm.model_copy(update={"backend": "openai", "openai": nobody})})
    assert capacity_for(silent, FakeServerModel()).parallel == 8  # serve.parallel wins over the server's slots
    unset = silent.model_copy(update={"serve": silent.serve.model_copy(update={"parallel": None})})
    assert capacity_for(unset, FakeServerModel()).parallel == DEFAULT_PARALLEL  # no server answers its /props


class FakeServerModel(ModelTraits):
    """Fake for the capacity rule alone: a model behind a server, which takes requests in parallel."""

    def rag_parallel_requests(self) -> bool:
        return True


# -- named tokens and scopes -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokens(team, service):
    """(URL, tokens file, {name: token}): `reader` reads alpha, `writer` writes beta, the server's token is admin."""
    from rag.server.app import create_app
    from rag.server.tokens import TokenKeeper, add_token, tokens_path

    path = tokens_path(team[0])
    issued = {
        "reader": add_token(path, "reader", {"alpha": "read"}),
        "writer": add_token(path, "writer", {"beta": "write"}),
        "admin": ADMIN_TOKEN,
    }
    with uvicorn_server(create_app(service, token=ADMIN_TOKEN, tokens=TokenKeeper(path))) as url:
        yield url, path, issued


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def chunk_of(url: str, collection: str) -> str:
    hits = httpx.post(f"{url}/api/search", json={"query": "the", "collection": collection}, headers=bearer(ADMIN_TOKEN)).json()
    return hits[0]["chunk_id"]


def reads(url: str, token: str, collection: str, chunk_id: str) -> dict[str, httpx.Response]:
    """Every route that reads `collection`, sent with `token`."""
    headers = bearer(token)
    chat = {"model": f"rag:{collection}", "messages": [{"role": "user", "content": QUESTIONS[0]}], "max_tokens": 4}
    with httpx.Client(headers=headers, timeout=300) as client:
        responses = {
            "search": client.post(f"{url}/api/search", json={"query": "oven", "collection": collection}),
            "status": client.get(f"{url}/api/status", params={"collection": collection}),
            "chunk": client.get(f"{url}/api/chunks/{chunk_id}", params={"collection": collection}),
            "chat": client.post(f"{url}/v1/chat/completions", json=chat),
            "chat stream": client.post(f"{url}/v1/chat/completions", json={**chat, "stream": True}),
        }
        with client.stream("POST", f"{url}/api/ask", json={"question": QUESTIONS[0], "collection": collection, "max_tokens": 4}) as ask:
            ask.read()
            responses["ask"] = ask
    return responses


def assert_missing_scope(response: httpx.Response, name: str, scope: str, collection: str) -> None:
    assert response.status_code == 403, response.text
    assert response.json()["error"]["message"].startswith(f"The token {name!r} lacks the {scope} scope on the collection {collection!r}")


def test_two_scoped_tokens_across_every_native_and_openai_route(tokens):
    url, _, issued = tokens
    chunks = {collection: chunk_of(url, collection) for collection in ("alpha", "beta")}
    for name, readable, other in (("reader", "alpha", "beta"), ("writer", "beta", "alpha"), ("admin", None, None)):
        for collection in ("alpha", "beta"):
            answered = reads(url, issued[name], collection, chunks[collection])
            for route, response in answered.items():
                if collection == other:
                    assert_missing_scope(response, name, "read", collection)
                else:
                    assert response.status_code == 200, (name, route, collection, response.text)
            if collection != other:
                assert json.loads(sse_events(answered["ask"])[-1][1])["sources"], name
        with httpx.Client(headers=bearer(issued[name]), timeout=300) as client:
            listed = client.get(f"{url}/api/collections").json()
            models = [model["id"] for model in client.get(f"{url}/v1/models").json()["data"]]
            direct = {"model": "llm", "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
            assert client.post(f"{url}/v1/chat/completions", json=direct).status_code == 200  # reads no document
            assert client.post(f"{url}/v1/embeddings", json={"input": "oven"}).status_code == 200
        expected = sorted(["alpha", "beta"] if readable is None else [readable])
        assert sorted(listed) == expected and models == [f"rag:{c}" for c in listed] + ["llm"], name


def test_ingest_needs_write_on_the_servers_collection(tokens, team):
    url, _, issued = tokens
    body = {"paths": [str(team[0].serve.ingest_roots[0])], "dry_run": True}
    refused = httpx.post(f"{url}/api/ingest", json=body, headers=bearer(issued["reader"]))
    assert_missing_scope(refused, "reader", "write", "beta")
    for name in ("writer", "admin"):
        with httpx.stream("POST", f"{url}/api/ingest", json=body, headers=bearer(issued[name]), timeout=60) as response:
            assert response.status_code == 200
            events = sse_events(response)
        assert events[-1][0] == "report" and json.loads(events[-1][1])["added"], name


def test_without_a_token_only_health_and_the_page_answer(tokens):
    url, _, issued = tokens
    for method, path in (("GET", "/api/collections"), ("GET", "/v1/models"), ("POST", "/api/search"), ("POST", "/mcp")):
        for headers in ({}, bearer("not-a-token-anyone-was-given"), {"Authorization": issued["reader"]}):
            assert httpx.request(method, f"{url}{path}", headers=headers, json={}).status_code == 401, (path, headers)
    assert httpx.get(f"{url}/health").status_code == 200 and httpx.get(f"{url}/").status_code == 200


def mcp_session(url: str, token: str, calls: list[tuple[str, dict]]) -> list:
    import anyio
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    async def session() -> list:
        async with create_mcp_http_client(headers=bearer(token)) as http:
            async with Client(streamable_http_client(f"{url}/mcp", http_client=http), read_timeout_seconds=120) as client:
                return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(session)


def tool_text(result) -> str:
    return "".join(getattr(part, "text", "") for part in result.content)


def test_mcp_lists_and_reaches_only_what_the_token_may_read(tokens):
    url, _, issued = tokens
    beta_chunk = chunk_of(url, "beta")
    calls = [
        ("collections", {}),
        ("search", {"query": "harbor", "collection": "alpha", "k": 2}),
        ("ask", {"question": QUESTIONS[0], "collection": "alpha", "max_tokens": 4}),
        ("search", {"query": "oven", "collection": "beta"}),
        ("search", {"query": "oven"}),  # the server's collection, beta
        ("get_chunk", {"chunk_id": beta_chunk, "collection": "beta"}),
        ("status", {"collection": "beta"}),
        ("ask", {"question": QUESTIONS[0], "collection": "beta", "max_tokens": 4}),
    ]
    listed, search, ask, *refused = mcp_session(url, issued["reader"], calls)
    assert [part.text for part in listed.content] == ["alpha"]
    assert not search.is_error and "work/" in tool_text(search)
    assert not ask.is_error and json.loads(tool_text(ask))["sources"]
    for result in refused:
        assert result.is_error and "The token 'reader' lacks the read scope on the collection 'beta'" in tool_text(result)
    [everything] = mcp_session(url, ADMIN_TOKEN, [("collections", {})])
    assert sorted(part.text for part in everything.content) == ["alpha", "beta"]


def test_a_token_added_and_revoked_with_the_cli_works_and_stops_without_a_restart(tokens, team):
    url, path, _ = tokens
    env = {"RAG_HOME": str(team[0].home)}
    added = runner.invoke(cli, ["serve", "token", "add", "guest", "--collection", "alpha", "--scope", "read"], env=env)
    assert added.exit_code == 0, added.output
    assert "Note:" not in added.stderr  # alpha exists
    token = added.stdout.strip()
    assert len(token) >= 32 and token not in path.read_text() and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert httpx.get(f"{url}/api/collections", headers=bearer(token)).json() == ["alpha"]
    listed = runner.invoke(cli, ["serve", "token", "list", "--json"], env=env)
    assert {entry["name"]: entry["scopes"] for entry in json.loads(listed.stdout)}["guest"] == {"alpha": "read"}
    assert token not in listed.output and "hash" not in listed.stdout
    revoked = runner.invoke(cli, ["serve", "token", "revoke", "guest"], env=env)
    assert revoked.exit_code == 0, revoked.output
    assert httpx.get(f"{url}/api/collections", headers=bearer(token)).status_code == 401
    again = runner.invoke(cli, ["serve", "token", "revoke", "guest"], env=env)
    assert again.exit_code == 2 and again.stderr.startswith("Error: No token named 'guest'")
    early = runner.invoke(cli, ["serve", "token", "add", "early", "--collection", "gamma"], env=env)
    assert early.exit_code == 0 and early.stderr.splitlines()[-1] == (
        "Note: the index has no collection 'gamma' (it holds alpha, beta); the token reaches it once it is made."
    )


def test_a_tokens_file_others_may_read_is_refused_in_one_line(tokens, team, tmp_path):
    from rag.server.tokens import TokenKeeper, TokensFileError

    url, path, issued = tokens
    path.chmod(0o644)
    try:
        with pytest.raises(TokensFileError, match=r"open to its group or others \(mode 644\): run `chmod 600"):
            TokenKeeper(path)
        answered = httpx.get(f"{url}/api/collections", headers=bearer(issued["reader"]))
        assert answered.status_code == 500 and "chmod 600" in answered.json()["error"]["message"]
        listed = runner.invoke(cli, ["serve", "token", "list"], env={"RAG_HOME": str(team[0].home)})
        assert listed.exit_code == 2 and listed.stderr.count("\n") == 1 and "chmod 600" in listed.stderr
        served = runner.invoke(cli, ["serve", "--port", str(free_port())], env={"RAG_HOME": str(team[0].home)})
        assert served.exit_code == 2 and served.stderr.startswith(f"Error: The tokens file {path} is open")
    finally:
        path.chmod(0o600)
    assert httpx.get(f"{url}/api/collections", headers=bearer(issued["reader"])).status_code == 200


def test_each_request_is_logged_with_its_tokens_name_never_the_token(tokens, caplog):
    url, _, issued = tokens
    with caplog.at_level(logging.INFO, logger="rag.serve.access"):
        httpx.post(f"{url}/api/search", json={"query": "harbor", "collection": "alpha"}, headers=bearer(issued["reader"]))
        httpx.get(f"{url}/api/status", params={"collection": "beta"}, headers=bearer(issued["reader"]))
        httpx.get(f"{url}/v1/models", headers=bearer(issued["admin"]))
        httpx.get(f"{url}/api/collections")
        wait_for(lambda: sum(r.name == "rag.serve.access" for r in caplog.records) >= 4, 5, "a request was not logged")
    lines = [record.getMessage() for record in caplog.records if record.name == "rag.serve.access"]
    assert lines[0].startswith("reader POST /api/search collection=alpha status=200 ")
    assert lines[1].startswith("reader GET /api/status collection=beta status=403 ")
    assert lines[2].startswith("(server token) GET /v1/models collection=- status=200 ")
    assert lines[3].startswith("- GET /api/collections collection=- status=401 ")
    assert all(line.endswith(" ms") for line in lines)
    assert not any(token in caplog.text for token in issued.values())


def test_a_server_on_the_network_takes_named_tokens_instead_of_its_own(tmp_path):
    from rag.errors import UsageError
    from rag.server.access import check_bind

    check_bind("0.0.0.0", None, named_tokens=True)
    with pytest.raises(UsageError, match="rag serve token add"):
        check_bind("0.0.0.0", None)


def test_tokens_file_is_private_hashed_and_names_are_checked(tmp_path):
    from rag.errors import UsageError
    from rag.server.tokens import TokenKeeper, add_token, list_tokens, revoke_token, token_hash

    path = tmp_path / "config" / "tokens.json"
    token = add_token(path, "ann@example.org", {"*": "admin"})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and token not in path.read_text()
    assert token_hash(token) in path.read_text()
    keeper = TokenKeeper(path)
    identity = keeper.identify(token)
    assert identity is not None and identity.name == "ann@example.org" and identity.allows("anything", "admin")
    for name, scopes, message in (
        ("ann@example.org", {"notes": "read"}, "exists"), ("two words", {"notes": "read"}, "no token name"),
        ("bo", {"notes": "owner"}, "no scope"), ("bo", {}, "at least one collection"),
    ):
        with pytest.raises(UsageError, match=message):
            add_token(path, name, scopes)
    revoke_token(path, "ann@example.org")
    assert keeper.identify(token) is None and list_tokens(path) == []
    assert os.listdir(path.parent) == ["tokens.json"]  # no temporary file left behind
    # A name in Hangul, and a collection named as a macOS folder gives it (decomposed): kept as collections are known.
    korean = add_token(path, "김철수", {unicodedata.normalize("NFD", "회의록"): "read"})
    assert [(entry["name"], entry["scopes"]) for entry in list_tokens(path)] == [("김철수", {"회의록": "read"})]
    assert keeper.identify(korean).allows("회의록", "read")
    with pytest.raises(UsageError, match="'xn--3o2bz7yuol' is no collection name"):
        add_token(path, "bo", {"xn--3o2bz7yuol": "read"})


# -- the page for a team ---------------------------------------------------------------------------------


def test_documents_are_served_only_as_indexed_and_only_to_who_may_read_them(tokens):
    url, _, issued = tokens
    manual = SAMPLE_NOTES / "work" / "vendors" / "brandt-ro350-manual.pdf"
    recipe = SAMPLE_NOTES / "personal" / "recipes" / "cardamom-buns.md"

    def document(token: str, source, collection: str) -> httpx.Response:
        return httpx.get(f"{url}/api/documents", params={"source": str(source), "collection": collection}, headers=bearer(token))

    for name in ("reader", "admin"):
        pdf = document(issued[name], manual, "alpha")
        assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf" and pdf.content == manual.read_bytes()
    assert_missing_scope(document(issued["reader"], recipe, "beta"), "reader", "read", "beta")
    markdown = document(issued["admin"], recipe, "beta")
    assert markdown.headers["content-type"] == "text/plain; charset=utf-8" and markdown.text == recipe.read_text()
    page = document(issued["admin"], SAMPLE_NOTES / "work" / "intranet" / "office-it-essentials.html", "alpha")
    assert page.headers["content-type"] == "text/plain; charset=utf-8"  # no document runs script in the page's origin
    for source, collection in (("/etc/passwd", "alpha"), (f"{SAMPLE_NOTES}/work/../../../../etc/passwd", "alpha"), (manual, "beta")):
        refused = document(issued["admin"], source, collection)
        assert refused.status_code == 404 and refused.json()["error"]["message"].startswith("No indexed document "), source
    me = httpx.get(f"{url}/api/me", headers=bearer(issued["reader"])).json()
    assert me == {"name": "reader", "collections": ["alpha"], "default": "beta"}
    status = httpx.get(f"{url}/api/status", params={"collection": "alpha"}, headers=bearer(issued["reader"])).json()
    assert status["documents_root"] == str(SAMPLE_NOTES / "work")


def test_the_page_signs_in_lists_readable_collections_keeps_a_conversation_and_opens_a_document(tokens):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    url, _, issued = tokens
    with headless_browser(1024, 900) as browser:
        browser.get(f"{url}/")
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "token-row").is_displayed())
        browser.find_element(By.ID, "token").send_keys(issued["reader"])
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "who").text == "Signed in as reader")
        picker = browser.find_element(By.ID, "collection")
        assert [option.get_attribute("value") for option in Select(picker).options] == ["alpha"] and not picker.is_displayed()
        assert not browser.find_element(By.ID, "empty").is_displayed()

        def ask(question: str, turns: int) -> None:
            field = browser.find_element(By.ID, "question")
            field.clear()
            field.send_keys(question)
            browser.find_element(By.CSS_SELECTOR, "#ask-form button[type=submit], #ask-form button:not([type])").click()
            WebDriverWait(browser, 300, poll_frequency=0.1).until(
                lambda driver: len(driver.find_elements(By.CSS_SELECTOR, ".turn")) == turns
                and driver.find_elements(By.CSS_SELECTOR, "#sources .card")
            )

        ask("What time does the platform sync meeting start?", 1)
        ask("And who leads it?", 2)
        turns = browser.find_elements(By.CSS_SELECTOR, ".turn")
        assert [turn.find_element(By.CSS_SELECTOR, ".asked").text for turn in turns] == [
            "What time does the platform sync meeting start?", "And who leads it?",
        ]
        cards = browser.find_elements(By.CSS_SELECTOR, "#sources .card")
        titles = [card.find_element(By.TAG_NAME, "a").text for card in cards]
        assert all(str(SAMPLE_NOTES) not in title for title in titles), titles  # shown from the collection's folder
        markdown = next(card for card in cards if ".md" in card.find_element(By.TAG_NAME, "a").text and card.find_elements(By.CLASS_NAME, "open-document"))
        markdown.find_element(By.CLASS_NAME, "open-document").click()
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "document-view").is_displayed())
        path = markdown.find_element(By.TAG_NAME, "a").text.split("] ", 1)[1].split(" — ")[0]
        lines = (SAMPLE_NOTES / "work" / path).read_text().split("\n")
        cited = browser.find_elements(By.CSS_SELECTOR, "#document .cited")
        assert cited and [row.text.strip() for row in cited] == [
            lines[int(row.get_attribute("data-line")) - 1].strip() for row in cited
        ]
        assert browser.find_element(By.ID, "document-where").text.startswith(path + " — lines ")
        console = [entry["message"] for entry in browser.get_log("browser")]
        assert not [message for message in console if "Content Security Policy" in message], console

    with headless_browser(1024, 900) as browser:  # the admin token may read both collections
        browser.get(f"{url}/")
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "token-row").is_displayed())
        browser.find_element(By.ID, "token").send_keys(issued["admin"])
        browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "collection").is_displayed())
        picker = Select(browser.find_element(By.ID, "collection"))
        assert [option.text for option in picker.options] == ["alpha", "beta"] and picker.first_selected_option.text == "beta"
        picker.select_by_visible_text("alpha")
        WebDriverWait(browser, 30).until(lambda driver: driver.execute_script("return sessionStorage.getItem('rag-collection')") == "alpha")


def test_a_document_swapped_for_a_link_to_a_file_outside_the_documents_is_not_served(tmp_path):
    from rag.server.service import DocumentNotIndexedError, KnowledgeService

    notes = tmp_path / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "sub" / "a.md").write_text("# A\n\nThe first note.\n", encoding="utf-8")
    (notes / "b.md").write_text("# B\n\nThe second note.\n", encoding="utf-8")
    secret = tmp_path / "secret.txt"
    secret.write_text("not a document", encoding="utf-8")
    settings = make_settings(tmp_path / "home")
    rag.ingest([notes], settings)
    service = KnowledgeService(settings)
    try:
        assert service.document(str(notes / "b.md")).read_text(encoding="utf-8").startswith("# B")
        (notes / "b.md").unlink()
        (notes / "b.md").symlink_to(secret)
        with pytest.raises(DocumentNotIndexedError):
            service.document(str(notes / "b.md"))
    finally:
        service.close()


@pytest.mark.parametrize("language,buttons,empty", [
    ("en-US", ["Ask", "Search", "Status"], "This collection holds no documents yet. On the server's machine, add a "
     "folder with rag ingest ~/notes; its documents can then be asked about here."),
    ("ko-KR", ["질문", "검색", "상태"], "이 컬렉션에는 아직 문서가 없습니다. 서버가 있는 컴퓨터에서 rag ingest ~/notes 명령으로 "
     "폴더를 추가하면 그 문서에 대해 여기서 질문할 수 있습니다."),
    ("zh-CN", ["提问", "搜索", "状态"], "此集合中还没有文档。请在服务器所在的机器上用 rag ingest ~/notes 添加一个文件夹，之后即可在这里就其中的文档提问。"),
    ("ja-JP", ["質問", "検索", "状態"], "このコレクションにはまだ文書がありません。サーバーのマシンで rag ingest ~/notesを実行してフォルダーを追加すると、"
     "その文書についてここで質問できます。"),
    ("zh-TW", ["提問", "搜尋", "狀態"], "此集合中還沒有文件。請在伺服器所在的電腦上用 rag ingest ~/notes 加入一個資料夾，之後即可在這裡就其中的文件提問。"),
])
def test_the_page_of_a_collection_with_no_documents_says_how_to_ingest_in_the_browsers_language(
    tmp_path, language, buttons, empty
):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "gone.md").write_text("# Gone\n\nA note removed again.\n", encoding="utf-8")
    settings = make_settings(tmp_path / "home")
    rag.ingest([notes], settings)
    (notes / "gone.md").unlink()
    rag.ingest([notes], settings)  # the collection is there, with no documents left in it
    service = KnowledgeService(settings)
    try:
        with uvicorn_server(create_app(service, token=ADMIN_TOKEN)) as url, headless_browser(1024, 900, language) as browser:
            assert httpx.get(f"{url}/api/status", headers=bearer(ADMIN_TOKEN)).json()["files"] == 0
            browser.get(f"{url}/")
            WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "token-row").is_displayed())
            browser.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
            browser.find_element(By.CSS_SELECTOR, "#token-form button").click()
            WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "empty").is_displayed())
            assert browser.find_element(By.ID, "empty").text == empty
            assert [button.text for button in browser.find_elements(By.CSS_SELECTOR, "nav button")] == buttons
            page_language = "zh-Hant" if language == "zh-TW" else language.split("-")[0]
            assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == page_language
    finally:
        service.close()
