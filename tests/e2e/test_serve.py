"""`rag serve` for real: uvicorn on a free loopback port, the real packaged model, real clients.

The `openai` Python client, LangChain's ChatOpenAI and plain HTTP talk to the server over HTTP;
one loaded service backs two servers, one open and one that needs a token.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from typing import Iterator

import httpx
import openai
import pytest
from typer.testing import CliRunner

import rag
from ingest.scripts import one_line
from rag.cli import app
from tests.conftest import REPO, SAMPLE_NOTES, installed_command, make_settings
from tests.helpers import free_port, headless_browser, running_server

WARRANTY_QUESTION = "When does the warranty of the Brandt RO-350 reflow oven end?"
WARRANTY_FILE = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
WIFI_PASSWORD_QUESTION = "What is the current password for the LQ-Guest Wi-Fi network?"  # the notes do not say
TOKEN = "s3cret-token-of-the-tests"
runner = CliRunner()


def fast_settings(settings):
    """Short answers from few sources in a small window: each generation takes seconds, not minutes."""
    llm = settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 24, "n_ctx": 1024})
    return settings.model_copy(update={"llm": llm, "search": settings.search.model_copy(update={"k": 3})})


@contextlib.contextmanager
def uvicorn_server(application) -> Iterator[str]:
    """The app served by uvicorn on a free loopback port in a thread; its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def service(sample_index):
    from rag.server.service import KnowledgeService

    loaded = KnowledgeService(fast_settings(sample_index[0]))
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def base_url(service) -> Iterator[str]:
    from rag.server.app import create_app

    with uvicorn_server(create_app(service)) as url:
        yield url


@pytest.fixture(scope="module")
def guarded_url(service) -> Iterator[str]:
    from rag.server.app import create_app

    with uvicorn_server(create_app(service, token=TOKEN)) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="unused", max_retries=0, timeout=300)


def sse_events(response: httpx.Response) -> list[tuple[str | None, str]]:
    """(event name, data) of each server-sent event, in order."""
    events, name = [], None
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            events.append((name, line.removeprefix("data: ")))
            name = None
    return events


def flat(text: str) -> str:
    return one_line(text)


def assert_evidence_quotes_its_source(sources: list[dict]) -> None:
    """Some evidence is quoted, each quote under the source it is quoted from, verbatim (but for line wrapping)."""
    quoted = [(source, quote) for source in sources for quote in source["evidence"]]
    assert quoted
    for source, quote in quoted:
        assert quote["source_number"] == source["number"] and flat(quote["text"]) in flat(source["text"])


# -- the OpenAI-compatible routes, through the real openai client ----------------------------------------


def served_models(settings) -> list[str]:
    """One model per collection of the index (other tests add collections to the shared sample index), then llm."""
    return [f"rag:{collection.name}" for collection in rag.collections(settings)] + ["llm"]


def test_models_lists_one_model_per_collection_and_one_without_retrieval(client, sample_index):
    ids = [model.id for model in client.models.list()]
    assert "rag:default" in ids and ids == served_models(sample_index[0])


def test_a_completion_answers_from_the_documents_with_sources_and_inline_citations(client):
    response = client.chat.completions.create(
        model="rag:default", messages=[{"role": "user", "content": WARRANTY_QUESTION}], max_tokens=24, temperature=0,
        extra_body={"user_rating": 5, "some_future_field": {"a": 1}},  # unknown fields are ignored
    )
    text = response.choices[0].message.content
    assert text.strip() and "[1]" in text  # what the small test model says is its own; the citation is ours
    assert response.choices[0].finish_reason in ("stop", "length")
    sources = response.model_extra["sources"]
    assert sources[0]["path"] == WARRANTY_FILE and sources[0]["location"] == {"page": 2}
    assert {"number", "path", "location", "score", "chunk_id", "text", "evidence"} <= set(sources[0])
    assert_evidence_quotes_its_source(sources)
    assert response.usage.prompt_tokens > 100 and 0 < response.usage.completion_tokens <= 24


def test_a_question_rag_declines_itself_uses_no_token_of_the_model(client):
    from rag.chain import NO_CONTEXT_ANSWER

    response = client.chat.completions.create(
        model="rag:default", messages=[{"role": "user", "content": "What is the capital of Peru?"}], temperature=0,
    )
    assert response.choices[0].message.content == NO_CONTEXT_ANSWER
    assert (response.usage.prompt_tokens, response.usage.completion_tokens, response.usage.total_tokens) == (0, 0, 0)


def test_a_completion_carries_the_grounding_checks_lines(client):
    response = client.chat.completions.create(
        model="rag:default", messages=[{"role": "user", "content": WIFI_PASSWORD_QUESTION}], temperature=0,
    )
    warnings = response.model_extra["warnings"]  # the test model makes a password up
    assert len(warnings) == 1 and warnings[0].startswith("Not in the sources: ")
    assert warnings[0].removeprefix("Not in the sources: ") in response.choices[0].message.content


def test_a_streamed_completion_sends_chunks_then_sources_then_usage(client):
    stream = client.chat.completions.create(
        model="rag:default",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": WARRANTY_QUESTION}]}],
        max_completion_tokens=16, stream=True, stream_options={"include_usage": True}, stop=["\n\n"],
    )
    chunks = list(stream)
    assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    finished = [chunk for chunk in chunks if chunk.choices and chunk.choices[0].finish_reason]
    assert len(finished) == 1 and finished[0].model_extra["sources"][0]["path"] == WARRANTY_FILE
    assert isinstance(finished[0].model_extra["warnings"], list)
    assert "[1]" in text and len([chunk for chunk in chunks if chunk.choices and chunk.choices[0].delta.content]) > 3
    assert chunks[-1].choices == [] and 0 < chunks[-1].usage.completion_tokens <= 17  # 16, and the [n] markers


def test_a_follow_up_is_condensed_with_the_conversation(client):
    response = client.chat.completions.create(
        model="rag:default",
        messages=[
            {"role": "user", "content": WARRANTY_QUESTION},
            {"role": "assistant", "content": "It ends on 4 October 2025 [1]."},
            {"role": "user", "content": "And how long is the door gasket covered?"},
        ],
        max_tokens=16,
    )
    assert response.model_extra["standalone_question"] != "And how long is the door gasket covered?"
    assert response.model_extra["sources"][0]["path"] == WARRANTY_FILE


def test_embeddings_are_the_index_models_vectors(client, service):
    floats = client.embeddings.create(model="rag:default", input=["oven warranty", "cardamom buns"], encoding_format="float")
    packed = client.embeddings.create(model="rag:default", input="oven warranty")  # the client asks for base64
    expected = rag.embeddings(service.settings).embed_documents(["oven warranty", "cardamom buns"])
    assert len(floats.data) == 2 and floats.model == "sentence-transformers/all-MiniLM-L6-v2"  # what auto chose
    assert floats.data[1].embedding == pytest.approx(expected[1], abs=1e-5)
    assert packed.data[0].embedding == pytest.approx(expected[0], abs=1e-5)
    assert floats.usage.prompt_tokens > 2


def test_the_direct_model_streams_sse_frames_ending_in_done(base_url):
    body = {"model": "llm", "messages": [{"role": "user", "content": "Say hello."}], "max_tokens": 4, "stream": True}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=300) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        frames = [data for _, data in sse_events(response)]
    assert frames[-1] == "[DONE]"
    chunks = [json.loads(frame) for frame in frames[:-1]]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length") and chunks[-1]["sources"] == []


def test_langchain_chat_openai_talks_to_it(base_url):
    from langchain_openai import ChatOpenAI

    chat = ChatOpenAI(base_url=f"{base_url}/v1", api_key="unused", model="llm", max_tokens=4, max_retries=0)
    reply = chat.invoke("Say hello.")
    assert isinstance(reply.content, str) and reply.response_metadata["finish_reason"] in ("stop", "length")


def test_errors_are_one_line_json_with_their_status(client, base_url):
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert "rag:<collection>" in missing.value.message
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="rag:nonexistent", messages=[{"role": "user", "content": "hi"}])
    invalid = httpx.post(f"{base_url}/v1/chat/completions", json={"model": "llm"})
    assert invalid.status_code == 400 and "messages" in invalid.json()["error"]["message"]
    assert "\n" not in invalid.text
    broken = httpx.post(f"{base_url}/api/search", content=b'{"query": ', headers={"Content-Type": "application/json"})
    assert (broken.status_code, broken.json()["error"]["message"]) == (
        400, "Invalid request: the body is not valid JSON (at character 10); send a JSON object",
    )
    gone = httpx.get(f"{base_url}/api/chunks/no-such-chunk")
    assert gone.status_code == 404 and gone.json()["error"]["type"] == "ChunkNotFoundError"


# -- native routes --------------------------------------------------------------------------------------


def test_search_gives_what_rag_search_json_prints(base_url, service):
    for explain in (False, True):
        served = httpx.post(f"{base_url}/api/search", json={"query": WARRANTY_QUESTION, "k": 3, "explain": explain}).json()
        flags = ["--explain"] if explain else []
        printed = runner.invoke(
            app, ["search", WARRANTY_QUESTION, "-k", "3", "--json", *flags], env={"RAG_HOME": str(service.settings.home)}
        )
        assert printed.exit_code == 0, printed.output
        assert served == json.loads(printed.stdout)
    assert served["hits"][0]["source"] == WARRANTY_FILE and "explain" in served["hits"][0]


def test_status_and_a_chunk_with_its_neighbours(base_url):
    status = httpx.get(f"{base_url}/api/status").json()
    assert status["files"] > 10 and status["chunks"] > status["files"] and status["consistency"]["ok"] is True
    hit = httpx.post(f"{base_url}/api/search", json={"query": WARRANTY_QUESTION, "k": 1}).json()[0]
    chunk = httpx.get(f"{base_url}/api/chunks/{hit['chunk_id']}").json()
    assert chunk["source"] == WARRANTY_FILE and chunk["location"] == {"page": 2} and chunk["text"] == hit["text"]
    before = httpx.get(f"{base_url}/api/chunks/{chunk['previous']}").json()
    assert before["next"] == hit["chunk_id"] and before["position"] == chunk["position"] - 1
    # A relative source or path pattern is read from the documents' folder, as the page shows paths.
    relative = os.path.relpath(WARRANTY_FILE, status["documents_root"])
    for body in ({"where": {"source": relative}}, {"paths": [os.path.join(os.path.dirname(relative), "*.pdf")]}):
        hits = httpx.post(f"{base_url}/api/search", json={"query": "warranty", "k": 3, **body}).json()
        assert hits and {found["source"] for found in hits} == {WARRANTY_FILE}, body


def test_ask_streams_tokens_then_sources_evidence_and_the_answer(base_url):
    with httpx.stream("POST", f"{base_url}/api/ask", json={"question": WARRANTY_QUESTION, "max_tokens": 16}, timeout=300) as response:
        events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-3:] == ["sources", "evidence", "answer"] and set(names[:-3]) == {"token"} and len(names) > 5
    tokens = "".join(json.loads(data)["text"] for name, data in events if name == "token")
    answer = json.loads(events[-1][1])
    assert answer["answer"] == tokens and answer["sources"][0]["source"] == WARRANTY_FILE
    assert_evidence_quotes_its_source(json.loads(events[-3][1]))


def test_health_and_search_answer_while_the_model_generates_and_askers_queue(base_url, client):
    """A long answer holds the model; a second asker waits its turn; /health and a search answer meanwhile."""
    first_token = threading.Event()
    results: dict[str, object] = {}

    def long_answer() -> None:
        stream = client.chat.completions.create(
            model="llm", messages=[{"role": "user", "content": "Count from 1 to 200: 1, 2, 3, 4,"}], max_tokens=200,
            stream=True,
        )
        pieces = []
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                first_token.set()
                pieces.append(chunk.choices[0].delta.content)
        results["long"] = "".join(pieces)

    def second_asker() -> None:
        response = client.chat.completions.create(
            model="rag:default", messages=[{"role": "user", "content": WARRANTY_QUESTION}], max_tokens=12
        )
        results["second"] = response

    asker = threading.Thread(target=long_answer)
    asker.start()
    assert first_token.wait(300)
    queued = threading.Thread(target=second_asker)
    queued.start()
    deadline = time.monotonic() + 10
    while httpx.get(f"{base_url}/health").json()["queued"] == 0:  # the second asker reached the queue
        assert time.monotonic() < deadline
        time.sleep(0.05)
    started = time.monotonic()
    health = httpx.get(f"{base_url}/health", timeout=5).json()
    hits = httpx.post(f"{base_url}/api/search", json={"query": "cardamom buns", "k": 2}, timeout=30).json()
    answered_in = time.monotonic() - started
    still = httpx.get(f"{base_url}/health", timeout=5).json()
    assert (health["in_flight"], health["queued"], health["capacity"]) == (1, 1, 1)
    assert health["capacity_from"] == "one at a time: the llamacpp backend generates in this process"
    assert "cardamom-buns" in hits[0]["source"]
    assert still["in_flight"] == 1, "the search answered while the model was still generating"
    assert answered_in < 5
    asker.join(300)
    queued.join(300)
    assert len(str(results["long"])) > 20
    assert results["second"].model_extra["sources"][0]["path"] == WARRANTY_FILE
    idle = httpx.get(f"{base_url}/health").json()
    assert (idle["status"], idle["in_flight"], idle["queued"]) == ("ok", 0, 0)


def test_ingest_syncs_paths_and_sends_progress_then_the_report(service, notes, tmp_path):
    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    (tmp_path / "kb").mkdir()
    settings = fast_settings(make_settings(tmp_path / "kb", serve={"ingest_roots": [str(notes)]}))
    rag.ingest([notes / "personal"], settings)  # a service opens an index that exists
    own = KnowledgeService(settings, llm=service.llm)  # the model already loaded, shared
    with uvicorn_server(create_app(own)) as url:
        with httpx.stream("POST", f"{url}/api/ingest", json={"paths": [str(notes)]}, timeout=300) as response:
            events = sse_events(response)
        found = httpx.post(f"{url}/api/search", json={"query": "calibrate", "k": 4}).json()
    names = [name for name, _ in events]
    assert names[0] == "start" and "progress" in names and names[-1] == "report"
    total = json.loads(events[0][1])
    done = [json.loads(data) for name, data in events if name == "progress"]
    assert [step["done_bytes"] for step in done] == sorted(step["done_bytes"] for step in done)  # so far, not each step's
    assert (done[-1]["files"], done[-1]["done_bytes"]) == (total["files"], total["bytes"])
    report = json.loads(events[-1][1])
    assert sorted(report["added"]) == sorted(str(path) for path in (notes / "work").rglob("*") if path.is_file())
    assert report["unchanged"] == 2 and report["chunks_added"] > 0
    assert any(hit["source"].endswith("calibrate.py") for hit in found)


def test_a_client_that_goes_away_frees_the_model(base_url):
    body = {"model": "llm", "messages": [{"role": "user", "content": "Count from 1 to 500: 1, 2, 3,"}], "max_tokens": 900, "stream": True}
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json=body, timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("data: ") and json.loads(line.removeprefix("data: "))["choices"][0]["delta"].get("content"):
                assert httpx.get(f"{base_url}/health").json()["in_flight"] == 1
                break  # at the first token the client leaves: leaving the lines unread closes the connection
    closed = time.monotonic()
    while httpx.get(f"{base_url}/health").json()["in_flight"]:  # 900 tokens take half a minute or more
        assert time.monotonic() - closed < 10, "the model kept generating for a client that left"
        time.sleep(0.05)


# -- the token rules ------------------------------------------------------------------------------------


def test_serving_beyond_loopback_without_a_token_is_refused_with_the_fix(sample_index):
    result = runner.invoke(app, ["serve", "--host", "0.0.0.0"], env={"RAG_HOME": str(sample_index[0].home)})
    assert result.exit_code == 2
    assert "without a token" in result.output and "--token" in result.output and "RAG_SERVER_TOKEN" in result.output


def test_with_a_token_every_route_but_health_needs_it(guarded_url, sample_index):
    assert httpx.get(f"{guarded_url}/health").status_code == 200
    routes = (("GET", "/v1/models"), ("POST", "/api/search"), ("GET", "/api/status"), ("POST", "/v1/chat/completions"), ("POST", "/mcp"))
    for method, path in routes:
        refused = httpx.request(method, f"{guarded_url}{path}", json={})
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized", path
        wrong = httpx.request(method, f"{guarded_url}{path}", json={}, headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401, path
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=f"{guarded_url}/v1", api_key="guess", max_retries=0).models.list()
    allowed = openai.OpenAI(base_url=f"{guarded_url}/v1", api_key=TOKEN, max_retries=0)
    assert [model.id for model in allowed.models.list()] == served_models(sample_index[0])
    searched = httpx.post(f"{guarded_url}/api/search", json={"query": "cardamom"}, headers={"Authorization": f"Bearer {TOKEN}"})
    assert searched.status_code == 200 and searched.json()


def test_rag_serve_runs_as_a_process_with_the_token_from_the_environment(sample_index, monkeypatch):
    port = free_port()
    monkeypatch.setenv("RAG_HOME", str(sample_index[0].home))
    monkeypatch.setenv("RAG_SERVER_TOKEN", TOKEN)
    command = [installed_command("rag"), "serve", "--port", str(port), "--cors-origin", "http://127.0.0.1:9999"]
    with running_server(command, f"http://127.0.0.1:{port}/health", timeout=120):
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/v1/models").status_code == 401
        allowed = openai.OpenAI(base_url=f"{base}/v1", api_key=TOKEN, max_retries=0)
        assert [model.id for model in allowed.models.list()] == served_models(sample_index[0])
        preflight = httpx.options(
            f"{base}/api/search", headers={"Origin": "http://127.0.0.1:9999", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:9999"


def test_rag_serve_takes_its_address_and_origins_from_the_serve_settings(sample_index, tmp_path, monkeypatch):
    port = free_port()
    config = tmp_path / "rag.toml"
    config.write_text(f'[serve]\nport = {port}\ncors_origins = ["http://127.0.0.1:9998"]\n')
    monkeypatch.setenv("RAG_HOME", str(sample_index[0].home))
    monkeypatch.setenv("RAG_CONFIG", str(config))
    with running_server([installed_command("rag"), "serve"], f"http://127.0.0.1:{port}/health", timeout=120):
        preflight = httpx.options(
            f"http://127.0.0.1:{port}/api/search", headers={"Origin": "http://127.0.0.1:9998", "Access-Control-Request-Method": "POST"}
        )
        assert preflight.headers["access-control-allow-origin"] == "http://127.0.0.1:9998"
    refused = runner.invoke(app, ["serve"], env={"RAG_HOME": str(sample_index[0].home), "RAG_SERVE__HOST": "0.0.0.0"})
    assert refused.exit_code == 2 and "without a token" in refused.output  # the settings' host obeys the token rule


def test_rag_serve_on_a_port_in_use_is_one_line_before_anything_loads(sample_index):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = runner.invoke(app, ["serve", "--port", str(port)], env={"RAG_HOME": str(sample_index[0].home)})
    assert refused.exit_code == 2
    assert refused.output == (
        f"Error: Cannot serve on 127.0.0.1:{port}: Address already in use; stop what uses it or choose another --port.\n"
    )


def test_no_cors_headers_unless_configured(base_url):
    preflight = httpx.options(
        f"{base_url}/v1/models", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    plain = httpx.get(f"{base_url}/v1/models", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in plain.headers


# -- the web page ----------------------------------------------------------------------------------------


def test_the_page_is_served_by_rag_itself_without_any_cdn(base_url):
    page = httpx.get(f"{base_url}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "/api/ask" in page.text and "/api/chunks/" in page.text and "/api/search" in page.text
    assert "https://" not in page.text and "http://" not in page.text


def test_a_chunk_says_where_it_is_in_the_language_the_page_asks_for(base_url):
    from rag.retrieval import location_label

    [hit] = httpx.post(f"{base_url}/api/search", json={"query": WARRANTY_QUESTION, "k": 1}).json()
    english = httpx.get(f"{base_url}/api/chunks/{hit['chunk_id']}").json()
    korean = httpx.get(f"{base_url}/api/chunks/{hit['chunk_id']}", params={"language": "ko"}).json()
    assert english["location_label"].startswith(f"page {hit['location']['page']}")
    assert korean["location_label"] == location_label(hit["location"], language="ko")
    assert korean["location_label"].startswith(f"{hit['location']['page']}쪽")


def test_the_page_marks_a_quote_whose_chinese_source_line_wraps_inside_a_word(base_url):
    chunk = "代码审查\n\n修改完成后，请先在本地运行全部单元测试和集成测试，确认没有失败以后再提\n交代码给审查人。"
    quote = "修改完成后，请先在本地运行全部单元测试和集成测试，确认没有失败以后再提交代码给审查人。"  # as evidence quotes it
    with headless_browser() as browser:
        browser.get(f"{base_url}/")
        marked = browser.execute_script(
            "return highlighted(arguments[0], [arguments[1]])"
            ".filter((part) => part.tagName === 'MARK').map((part) => part.textContent)",
            chunk, quote,
        )
        # The search table shows a chunk's text as a reader reads it, the wrapped word whole.
        shown = browser.execute_script("return arguments[0].replace(UNSPACED_WRAP, '')", chunk)
    assert marked == [chunk.split("\n\n")[1]]
    assert shown == "代码审查\n\n" + quote


def test_a_real_browser_asks_sees_tokens_arrive_and_opens_a_citation(base_url, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with headless_browser() as browser:
        browser.get(f"{base_url}/")
        browser.find_element(By.ID, "question").send_keys(WARRANTY_QUESTION)
        browser.find_element(By.CSS_SELECTOR, "#ask-form button").click()
        seen: list[str] = []

        def answered(driver) -> bool:
            text = driver.find_element(By.ID, "answer").text
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            return bool(driver.find_elements(By.CSS_SELECTOR, "#sources .card"))

        WebDriverWait(browser, 300, poll_frequency=0.05).until(answered)
        assert len(seen) >= 2 and seen[-1].startswith(seen[0]), seen  # the answer grew token by token
        sources = len(browser.find_elements(By.CSS_SELECTOR, "#sources .card"))
        # [1] unless the model cited another source itself: the first citation of a source there is
        citation = next(
            link for link in browser.find_elements(By.CSS_SELECTOR, "#answer a.cite")
            if int(link.get_attribute("data-number")) <= sources
        )
        number = citation.get_attribute("data-number")
        citation.click()
        WebDriverWait(browser, 30).until(lambda driver: driver.find_element(By.ID, "chunk-view").is_displayed())
        card = browser.find_element(By.ID, f"source-{number}")
        where = browser.find_element(By.ID, "chunk-where").text
        assert "brandt-ro350-manual.pdf" in where and "page " in where
        assert card.find_element(By.TAG_NAME, "a").text.removeprefix(f"[{number}] ") in where  # the cited source's chunk
        quotes = [quote.text.strip("“”") for quote in card.find_elements(By.CSS_SELECTOR, ".where")]
        marked = [flat(mark.text) for mark in browser.find_elements(By.CSS_SELECTOR, "#chunk mark")]
        assert marked == [flat(quote) for quote in quotes]  # its evidence, highlighted in the chunk
        screenshot = tmp_path / "rag-page.png"
        browser.save_screenshot(str(screenshot))
        assert screenshot.stat().st_size > 1000
        # The test model makes a password up for this one: the grounding check's line shows under its answer.
        browser.find_element(By.ID, "new-conversation").click()
        question = browser.find_element(By.ID, "question")
        question.clear()
        question.send_keys(WIFI_PASSWORD_QUESTION)
        browser.find_element(By.CSS_SELECTOR, "#ask-form button").click()
        WebDriverWait(browser, 300).until(lambda driver: driver.find_elements(By.CSS_SELECTOR, "#warnings p"))
        warning = browser.find_element(By.CSS_SELECTOR, "#warnings p").text
        made_up = warning.removeprefix("Not in the sources: ")
        assert made_up != warning and made_up in browser.find_element(By.ID, "answer").text, warning
        assert browser.find_element(By.ID, "answer").get_attribute("lang") == "en"
        console = [entry["message"] for entry in browser.get_log("browser")]
        assert not [message for message in console if "Content Security Policy" in message], console


# -- MCP over stdio, with the SDK's own client -----------------------------------------------------------


def test_mcp_over_stdio_lists_tools_and_answers_search_and_ask(sample_index):
    import anyio
    from mcp import Client, StdioServerParameters

    settings = sample_index[0]
    env = {
        **{key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "RAG_HOME": str(settings.home), "RAG_LLM__MAX_TOKENS": "16", "RAG_LLM__N_CTX": "1024", "RAG_SEARCH__K": "3",
    }
    parameters = StdioServerParameters(command=installed_command("rag"), args=["mcp"], env=env, cwd=str(REPO))

    async def session() -> tuple[list[str], object, object, object]:
        async with Client(parameters, read_timeout_seconds=300) as mcp_client:
            tools = sorted(tool.name for tool in (await mcp_client.list_tools()).tools)
            searched = await mcp_client.call_tool("search", {"query": WARRANTY_QUESTION, "k": 2})
            asked = await mcp_client.call_tool("ask", {"question": WARRANTY_QUESTION})
            chunk_id = searched.structured_content["result"][0]["chunk_id"]
            chunk = await mcp_client.call_tool("get_chunk", {"chunk_id": chunk_id})
            return tools, searched, asked, chunk

    tools, searched, asked, chunk = anyio.run(session)
    assert tools == ["ask", "collections", "get_chunk", "search", "status"]
    assert not searched.is_error and searched.structured_content["result"][0]["source"] == WARRANTY_FILE
    assert not asked.is_error and asked.structured_content["sources"][0]["path"] == WARRANTY_FILE
    assert "[1]" in asked.structured_content["answer"] and asked.structured_content["warnings"] == []
    assert chunk.structured_content["location"] == {"page": 2}


def test_mcp_over_streamable_http_at_slash_mcp(base_url):
    import anyio
    from mcp import Client

    async def session() -> tuple[list[str], object, object, object]:
        async with Client(f"{base_url}/mcp", read_timeout_seconds=60) as mcp_client:
            tools = sorted(tool.name for tool in (await mcp_client.list_tools()).tools)
            searched = await mcp_client.call_tool("search", {"query": "cardamom buns", "k": 1})
            status = await mcp_client.call_tool("status", {})
            chunk_id = searched.structured_content["result"][0]["chunk_id"]
            resource = await mcp_client.read_resource(f"chunk://{chunk_id}")
            return tools, searched, status, resource

    tools, searched, status, resource = anyio.run(session)
    assert tools == ["ask", "collections", "get_chunk", "search", "status"]
    hit = searched.structured_content["result"][0]
    assert "cardamom-buns" in hit["source"]
    assert status.structured_content["consistency"]["ok"] is True
    assert resource.contents[0].text == hit["text"]  # the chunk as a resource


# -- no model needed ---------------------------------------------------------------------------------------


@pytest.mark.fast
def test_loopback_needs_no_token_and_anything_else_does():
    from rag.errors import UsageError
    from rag.server.access import check_bind, is_loopback

    assert all(is_loopback(host) for host in ("127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(host) for host in ("0.0.0.0", "::", "192.168.1.5", "example.org"))
    check_bind("0.0.0.0", "a-token-of-20-chars!")
    with pytest.raises(UsageError, match="RAG_SERVER_TOKEN"):
        check_bind("0.0.0.0", None)


@pytest.mark.fast
def test_a_conversation_becomes_the_question_and_its_turns():
    from rag.server.openai_routes import ChatMessage, question_and_history

    messages = [ChatMessage(role=role, content=content) for role, content in (
        ("system", "Be brief."), ("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"), ("user", "q3"),
    )]
    assert question_and_history(messages) == ("q3", [("q1", "a1"), ("q2", "a2")])


@pytest.mark.fast
def test_importing_rag_and_its_cli_does_not_import_the_server_stack():
    code = "import sys, rag, rag.cli; print(sorted(m for m in ('fastapi', 'uvicorn', 'mcp', 'starlette') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_text_document_is_served_in_utf8_as_the_index_read_it_whatever_its_encoding(tmp_path):
    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    notes = {
        "회의록-cp949.txt": ("# 3월 운영 회의록\n\n신규 VPN 장비는 4월 7일에 교체합니다.\n", "cp949"),
        "笔记-utf16.txt": ("项目周报\n\n本周完成了数据库迁移。\n", "utf-16"),
        "議事録-sjis.md": ("# 議事録\n\n会議室は来週からC305に変わります。\n", "cp932"),
    }
    folder = tmp_path / "notes"
    folder.mkdir()
    for name, (text, encoding) in notes.items():
        (folder / name).write_bytes(text.encode(encoding))
    settings = make_settings(tmp_path / "home")
    rag.ingest([folder], settings)
    service = KnowledgeService(settings)
    try:
        with uvicorn_server(create_app(service)) as url:
            for name, (text, _) in notes.items():
                served = httpx.get(f"{url}/api/documents", params={"source": str(folder / name)})
                assert served.status_code == 200 and served.headers["content-type"] == "text/plain; charset=utf-8"
                assert served.text == text
    finally:
        service.close()
