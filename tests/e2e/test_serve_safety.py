"""`rag serve` against an attacker and a careless client, over real HTTP on loopback.

A web page reaching the server through a DNS-rebinding name, another site's page, ingest requests
naming files outside the allowed folders, requests past every limit, client mistakes, clients that
leave: each is refused with its status and one line of JSON, or stops what it started.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Iterator

import httpx
import pytest

import rag
from ingest.index import Index
from tests.conftest import SAMPLE_NOTES, make_settings
from tests.integration.test_concurrency import many_notes
from tests.e2e.test_serve import WARRANTY_QUESTION, fast_settings, sse_events, uvicorn_server

FOREIGN_HOST = "rebind.attacker.example"
TOKEN = "a-token-of-20-chars!"


@pytest.fixture(scope="module")
def roots(tmp_path_factory) -> dict[str, Path]:
    """An allowed folder with notes, a private folder beside it, and symlinks from one to the other."""
    base = tmp_path_factory.mktemp("serve-roots")
    allowed, private = base / "allowed", base / "private"
    (allowed / "notes" / ".hidden").mkdir(parents=True)
    private.mkdir()
    (private / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nplanted-fake-key-material\n")
    (allowed / "notes" / "kiln.md").write_text("# Kiln\n\nThe kiln is fired to 1240 degrees for stoneware.\n")
    (allowed / "notes" / ".hidden" / "diary.md").write_text("# Diary\n\nThe spare key is under the blue flowerpot.\n")
    (allowed / "key-link").symlink_to(private / "id_rsa")
    (allowed / "private-link").symlink_to(private)
    (allowed / "notes" / "leak.md").symlink_to(private / "id_rsa")
    return {"base": base, "allowed": allowed, "private": private}


@pytest.fixture(scope="module")
def settings(tmp_path_factory, roots):
    home = tmp_path_factory.mktemp("safety-home")
    ingested = fast_settings(make_settings(home, serve={"ingest_roots": [str(roots["allowed"])]}))
    rag.ingest([SAMPLE_NOTES], ingested)
    return ingested


@pytest.fixture(scope="module")
def service(settings):
    from rag.server.service import KnowledgeService

    loaded = KnowledgeService(settings)
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def app(service):
    from rag.server.app import create_app

    return create_app(service)


@pytest.fixture(scope="module")
def url(app) -> Iterator[str]:
    with uvicorn_server(app) as served:
        yield served


def route_requests(routes, prefix: str = "") -> list[tuple[str, str]]:
    """(method, path) of every route served, those of included routers too, path parameters filled in."""
    found = []
    for route in routes:
        if hasattr(route, "original_router"):  # FastAPI's include_router
            found += route_requests(route.original_router.routes, prefix + route.include_context.prefix)
            continue
        for method in sorted(getattr(route, "methods", None) or {"GET", "POST"}):
            if method != "HEAD":
                found.append((method, prefix + route.path.replace("{chunk_id}", "some-chunk")))
    return found


def error_of(response: httpx.Response) -> dict:
    assert "\n" not in response.text.strip(), response.text
    return response.json()["error"]


# -- DNS rebinding and other sites' pages ---------------------------------------------------------------


def test_a_foreign_host_is_refused_on_every_route_with_or_without_origin(app, url):
    port = url.rsplit(":", 1)[1]
    requests = route_requests(app.routes)
    assert {
        ("POST", "/api/ingest"), ("POST", "/api/search"), ("GET", "/"), ("POST", "/mcp"), ("GET", "/health"),
        ("POST", "/v1/chat/completions"), ("GET", "/v1/models"),
    } <= set(requests)
    for method, path in requests:
        for origin in (None, f"http://{FOREIGN_HOST}:{port}"):
            headers = {"Host": f"{FOREIGN_HOST}:{port}", **({"Origin": origin} if origin else {})}
            refused = httpx.request(method, f"{url}{path}", json={"query": "PRIVATE KEY", "mode": "keyword"}, headers=headers)
            assert refused.status_code == 421, (method, path, origin, refused.text)
            assert error_of(refused)["type"] == "misdirected_request"
            assert FOREIGN_HOST in error_of(refused)["message"]


def test_the_rebinding_attack_of_the_report_reads_nothing(url, roots):
    port = url.rsplit(":", 1)[1]
    headers = {"Host": f"{FOREIGN_HOST}:{port}", "Origin": f"http://{FOREIGN_HOST}:{port}"}
    planted = str(roots["private"] / "id_rsa")
    assert httpx.post(f"{url}/api/ingest", json={"paths": [planted]}, headers=headers).status_code == 421
    searched = httpx.post(f"{url}/api/search", json={"query": "PRIVATE KEY", "mode": "keyword"}, headers=headers)
    assert searched.status_code == 421 and "planted-fake-key-material" not in searched.text


def test_the_servers_own_names_are_answered_and_a_foreign_origin_is_refused(url):
    port = url.rsplit(":", 1)[1]
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost", f"LOCALHOST:{port}"):
        assert httpx.get(f"{url}/health", headers={"Host": host}).status_code == 200, host
    same = httpx.post(f"{url}/api/search", json={"query": "oven", "k": 1}, headers={"Origin": url})
    assert same.status_code == 200  # the page's own requests carry its own origin
    for origin in ("https://evil.example", "null", f"http://localhost:{int(port) + 1}"):
        other = httpx.post(f"{url}/api/search", json={"query": "oven", "k": 1}, headers={"Origin": origin})
        assert other.status_code == 403 and error_of(other)["type"] == "forbidden_origin", origin


def test_a_reverse_proxys_name_is_answered_once_configured(service):
    from rag.server.app import create_app

    proxied = service.settings.serve.model_copy(update={"allowed_hosts": ["rag.example.org", "*.corp.example"]})
    service.settings = service.settings.model_copy(update={"serve": proxied})
    try:
        application = create_app(service)
    finally:
        service.settings = service.settings.model_copy(update={"serve": proxied.model_copy(update={"allowed_hosts": []})})
    with uvicorn_server(application) as served:
        for host in ("rag.example.org", "kb.corp.example:443"):
            assert httpx.get(f"{served}/health", headers={"Host": host}).status_code == 200, host
        assert httpx.get(f"{served}/health", headers={"Host": "corp.example.evil"}).status_code == 421


@pytest.mark.fast
def test_host_rules_follow_the_bind_address():
    from rag.server.security import HostRule

    loopback = HostRule.for_bind("127.0.0.1")
    assert all(loopback.allows(host, "127.0.0.1") for host in ("127.0.0.1:8000", "localhost", "[::1]:8000", "localhost."))
    assert not any(loopback.allows(host, "127.0.0.1") for host in (FOREIGN_HOST, "127.0.0.1.nip.io", "", "10.0.0.5"))
    everywhere = HostRule.for_bind("0.0.0.0")
    assert everywhere.allows("192.168.1.5:8000", "192.168.1.5")  # the address the connection arrived at
    assert not everywhere.allows("192.168.1.6:8000", "192.168.1.5") and not everywhere.allows(FOREIGN_HOST, "192.168.1.5")
    one = HostRule.for_bind("192.168.1.5", ["*.corp.example"])
    assert one.allows("192.168.1.5", "192.168.1.5") and one.allows("kb.corp.example", "192.168.1.5")
    assert not one.allows(FOREIGN_HOST, "192.168.1.5") and not one.allows("corp.example", "192.168.1.5")


# -- ingest only inside the roots -----------------------------------------------------------------------


def ingest(url: str, paths: list[str], dry_run: bool = False) -> httpx.Response:
    return httpx.post(f"{url}/api/ingest", json={"paths": paths, "dry_run": dry_run}, timeout=300)


def test_ingest_outside_the_roots_is_refused_however_the_path_is_spelled(url, roots):
    allowed, private = roots["allowed"], roots["private"]
    outside = [
        "/etc/passwd", "/etc", str(private / "id_rsa"), f"{allowed}/../private/id_rsa", str(allowed / "key-link"),
        str(allowed / "private-link"), "~", "~/.ssh/id_rsa", "notes", str(allowed.parent),
    ]
    for path in outside:
        refused = ingest(url, [path], dry_run=True)
        assert refused.status_code == 403, (path, refused.text)
        assert error_of(refused)["message"].startswith(f"{path!r} is not inside the folders this server may ingest")
    for blank in ("", "  "):
        empty = ingest(url, [blank])
        assert empty.status_code == 400 and "empty path" in error_of(empty)["message"]
    mixed = ingest(url, [str(allowed / "notes"), "/etc/passwd"])
    assert mixed.status_code == 403  # nothing of a request is ingested when one path is refused
    assert not [hit for hit in httpx.post(f"{url}/api/search", json={"query": "kiln stoneware", "k": 3}).json() if "kiln" in hit["source"]]


def test_ingest_inside_the_roots_skips_symlinks_out_and_keeps_what_it_no_longer_sees(url, roots, settings):
    notes = roots["allowed"] / "notes"
    diary = notes / ".hidden" / "diary.md"
    first = ingest(url, [str(diary)])  # a hidden file named explicitly is taken
    assert json.loads(sse_events(first)[-1][1])["added"] == [str(diary)]
    events = sse_events(ingest(url, [str(notes)]))
    report = json.loads(events[-1][1])
    assert events[-1][0] == "report" and report["added"] == [str(notes / "kiln.md")]
    skipped = {entry["path"]: entry["reason"] for entry in report["skipped"]}
    assert skipped[str(notes / "leak.md")] == f"symlink to {roots['private'] / 'id_rsa'}, outside the ingested folder"
    assert report["removed"] == []  # the hidden file is skipped now, not gone: it keeps its chunks
    assert report["kept"] == [{"path": str(diary), "reason": "in .hidden/: hidden folder"}]
    with Index(settings) as index:
        assert str(diary) in index.sources()
    found = httpx.post(f"{url}/api/search", json={"query": "OPENSSH PRIVATE KEY", "mode": "keyword", "k": 50}).json()
    assert not [hit for hit in found if "planted-fake-key-material" in hit["text"]]


def test_ingest_over_http_is_off_without_roots(sample_index, service):
    from rag.server.app import create_app
    from rag.server.service import KnowledgeService

    without_roots = KnowledgeService(fast_settings(sample_index[0]), llm=service.llm)  # the model already loaded
    with uvicorn_server(create_app(without_roots)) as served:
        refused = ingest(served, [str(SAMPLE_NOTES)])
    assert refused.status_code == 403
    assert error_of(refused)["message"] == (
        "Ingest over HTTP is off on this server: its owner turns it on by naming the folders it may read in "
        "serve.ingest_roots."
    )


def test_an_ingest_whose_client_leaves_stops_and_frees_the_index(url, roots):
    big = many_notes(roots["allowed"] / "big", 300)
    with httpx.stream("POST", f"{url}/api/ingest", json={"paths": [str(big)]}, timeout=300) as response:
        for line in response.iter_lines():
            if line.startswith("event: progress"):
                busy = ingest(url, [str(roots["allowed"] / "notes")])  # while it writes: a 409 before any stream
                assert busy.status_code == 409 and error_of(busy)["message"].startswith("Another ingest is writing")
                break  # the client leaves mid-ingest
    deadline = time.monotonic() + 60
    while True:
        again = ingest(url, [str(roots["allowed"] / "notes")])
        if again.status_code == 200 and sse_events(again)[-1][0] == "report":
            break
        busy = again.json()["error"] if again.status_code == 409 else json.loads(sse_events(again)[-1][1])["error"]
        assert busy["type"] == "IndexBusyError" and "--no-wait" not in busy["message"]  # no CLI wording over HTTP
        assert time.monotonic() < deadline, "the abandoned ingest kept the index"
        time.sleep(0.2)
    dry = json.loads(sse_events(ingest(url, [str(big)], dry_run=True))[-1][1])
    assert len(dry["added"]) > 0, "the abandoned ingest ran to its end"


# -- limits ----------------------------------------------------------------------------------------------


def padded(body: dict, size: int) -> bytes:
    """`body` as JSON padded with spaces to exactly `size` bytes."""
    encoded = json.dumps(body).encode()
    return encoded + b" " * (size - len(encoded))


def test_the_body_limit_at_and_past_its_bound(url, settings):
    limit = settings.serve.max_body_kb * 1024
    headers = {"Content-Type": "application/json"}
    at = httpx.post(f"{url}/api/search", content=padded({"query": "oven", "k": 1}, limit), headers=headers)
    assert at.status_code == 200
    past = httpx.post(f"{url}/api/search", content=padded({"query": "oven", "k": 1}, limit + 1), headers=headers)
    assert past.status_code == 413 and error_of(past)["type"] == "request_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for _ in range(limit // 65536 + 2):
            yield b" " * 65536

    streamed = httpx.post(f"{url}/api/search", content=chunks(), headers=headers)
    assert streamed.status_code == 413


def query_of_tokens(service, count: int) -> str:
    query = " ".join(["oven"] * count)
    assert rag.embeddings(service.settings).token_counter.count(query) == count
    return query


def test_the_query_length_at_and_past_its_bound(url, service):
    limit = service.settings.serve.max_query_tokens
    at = httpx.post(f"{url}/api/search", json={"query": query_of_tokens(service, limit), "k": 1})
    assert at.status_code == 200
    past = httpx.post(f"{url}/api/search", json={"query": query_of_tokens(service, limit + 1), "k": 1})
    assert past.status_code == 400
    assert error_of(past)["message"] == (
        f"The query is too long ({limit + 1:,} tokens): this server takes at most {limit} tokens (serve.max_query_tokens)."
    )
    huge = httpx.post(f"{url}/api/ask", json={"question": "x" * 1_000_000})
    assert huge.status_code == 400 and "too long (1,000,000 characters)" in error_of(huge)["message"]


def test_k_at_and_past_the_candidate_limit_on_http_and_its_mistakes(url, service):
    limit = service.settings.search.candidates
    assert httpx.post(f"{url}/api/search", json={"query": "oven", "k": limit}).status_code == 200
    for k in (limit + 1, 10**9, 10**30):
        past = httpx.post(f"{url}/api/search", json={"query": "oven", "k": k})
        assert past.status_code == 400 and error_of(past)["message"].startswith(f"k must be between 1 and {limit}"), k
    for where in ({"foo": 1}, {"$and": "x"}, {"page": {"$gt": 1}}):
        malformed = httpx.post(f"{url}/api/search", json={"query": "oven", "where": where})
        assert malformed.status_code == 400, where
    surrogate = httpx.post(f"{url}/api/search", content=b'{"query": "oven \\ud800"}', headers={"Content-Type": "application/json"})
    assert surrogate.status_code == 400 and "not valid Unicode" in error_of(surrogate)["message"]


def started_stream(url: str, path: str, body: dict) -> int:
    """The status of a streamed answer; the client leaves at once, so nothing is generated for long."""
    with httpx.stream("POST", f"{url}{path}", json=body, timeout=300) as response:
        return response.status_code


def wait_until_idle(url: str) -> None:
    deadline = time.monotonic() + 30
    while httpx.get(f"{url}/health").json()["in_flight"]:
        assert time.monotonic() < deadline, "the model kept generating for a client that left"
        time.sleep(0.05)


def test_generation_limits_at_and_past_their_bounds(url, service):
    window = service.settings.llm.n_ctx
    question = {"question": WARRANTY_QUESTION}
    assert started_stream(url, "/api/ask", {**question, "max_tokens": window, "temperature": 2}) == 200
    wait_until_idle(url)
    for past in ({"max_tokens": window + 1}, {"max_tokens": 10**9}, {"temperature": 2.0001}, {"temperature": 1e308}, {"k": 51}):
        refused = httpx.post(f"{url}/api/ask", json={**question, **past})
        assert refused.status_code == 400, (past, refused.text)
    chat = {"model": "rag:default", "messages": [{"role": "user", "content": WARRANTY_QUESTION}], "stream": True}
    assert started_stream(url, "/v1/chat/completions", {**chat, "max_tokens": window}) == 200
    wait_until_idle(url)
    refused = httpx.post(f"{url}/v1/chat/completions", json={**chat, "max_tokens": window + 1})
    assert refused.status_code == 400 and "llm.n_ctx" in error_of(refused)["message"]
    long = {"model": "llm", "messages": [{"role": "user", "content": "word " * window}]}
    assert httpx.post(f"{url}/v1/chat/completions", json=long).status_code == 400  # no room left for an answer


def test_client_mistakes_are_4xx_with_one_line(url):
    blank = httpx.post(f"{url}/api/ask", json={"question": "   "})
    assert blank.status_code == 400 and error_of(blank)["message"] == "The question is empty."
    for body in ({"question": 5}, {"question": "q", "history": [["only one"]]}, {}):
        assert httpx.post(f"{url}/api/ask", json=body).status_code == 400, body
    assert httpx.post(f"{url}/api/search", content=b"{not json", headers={"Content-Type": "application/json"}).status_code == 400
    assert httpx.get(f"{url}/api/chunks/no-such-chunk").status_code == 404
    assert httpx.post(f"{url}/v1/embeddings", content=b'{"input": ["\\udfff"]}', headers={"Content-Type": "application/json"}).status_code == 400


def test_a_non_streaming_answer_stops_when_its_client_gives_up(url):
    body = {"model": "llm", "messages": [{"role": "user", "content": "Count from 1 to 500: 1, 2, 3,"}], "max_tokens": 900}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{url}/v1/chat/completions", json=body, timeout=3)
    wait_until_idle(url)


# -- MCP -------------------------------------------------------------------------------------------------


def mcp_calls(url: str, calls: list[tuple[str, dict]]) -> list:
    import anyio
    from mcp import Client

    async def session() -> list:
        async with Client(f"{url}/mcp", read_timeout_seconds=60) as client:
            return [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(session)


def test_mcp_tools_answer_mistakes_with_rags_message_and_no_traceback(url, caplog):
    limit_k, window = 50, 1024
    results = mcp_calls(url, [
        ("get_chunk", {"chunk_id": "bogus"}),
        ("search", {"query": "oven", "k": 10**9}),
        ("search", {"query": "oven", "k": limit_k}),
        ("ask", {"question": WARRANTY_QUESTION, "max_tokens": -1}),
        ("ask", {"question": WARRANTY_QUESTION, "max_tokens": window + 1}),
        ("ask", {"question": ""}),
    ] + [("get_chunk", {"chunk_id": f"bogus-{n}"}) for n in range(20)])
    texts = [result.content[0].text if result.content else "" for result in results]
    assert results[0].is_error and texts[0] == (
        "Error executing tool get_chunk: No chunk 'bogus' in this collection; search results and sources give chunk ids."
    )
    assert results[1].is_error and "k must be between 1 and 50" in texts[1]
    assert not results[2].is_error and len(results[2].structured_content["result"]) > 0
    assert results[3].is_error and "max_tokens must be between 1 and" in texts[3]
    assert results[4].is_error and "max_tokens must be between 1 and" in texts[4]
    assert results[5].is_error and texts[5].endswith("The question is empty.")
    assert all(result.is_error for result in results[6:])
    assert "Traceback" not in caplog.text


def test_options_creates_no_mcp_session(url):
    refused = httpx.options(f"{url}/mcp")
    assert refused.status_code == 405 and "mcp-session-id" not in refused.headers
    assert error_of(refused)["message"] == "OPTIONS is answered only as a CORS preflight."


# -- resources, tokens, headers -------------------------------------------------------------------------


def open_files(settings) -> list[str]:
    """What this process (the server's, here) has open, by target, but for Chroma's files: Chroma's core keeps
    a connection pool of its own that opens and closes connections within its own bound."""
    chroma = str(settings.index_path / "chroma")
    targets = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except FileNotFoundError:  # the descriptor of the listing itself, closed by now
            continue
        if not target.startswith(chroma):
            targets.append(target)
    return sorted(targets)


def test_the_open_file_count_stays_flat_under_chunk_requests_and_status(url, settings):
    hit = httpx.post(f"{url}/api/search", json={"query": "oven", "k": 1}).json()[0]
    with httpx.Client(base_url=url) as client:
        for _ in range(10):
            assert client.get(f"/api/chunks/{hit['chunk_id']}").status_code == 200
            assert client.get("/api/status").status_code == 200
        after_ten = open_files(settings)
        for _ in range(2000):
            assert client.get(f"/api/chunks/{hit['chunk_id']}").status_code == 200
        for _ in range(50):
            assert client.get("/api/status").status_code == 200
        assert open_files(settings) == after_ten
    assert str(settings.index_path / "manifest.sqlite3") in after_ten  # the one connection searches share


def test_tokens_in_any_scheme_case_and_short_tokens_refused(service):
    from rag.errors import UsageError
    from rag.server.access import check_bind
    from rag.server.app import create_app

    for weak in ("x", " " * 20, "s3cret-token"):
        with pytest.raises(UsageError, match="at least 16 characters"):
            check_bind("0.0.0.0", weak)
        with pytest.raises(UsageError, match="at least 16 characters"):
            create_app(service, token=weak)
    with uvicorn_server(create_app(service, token=TOKEN)) as served:
        for scheme in ("Bearer", "bearer", "BEARER"):
            answered = httpx.get(f"{served}/api/status", headers={"Authorization": f"{scheme} {TOKEN}"})
            assert answered.status_code == 200, scheme
        for wrong in (f"Basic {TOKEN}", f"Bearer {TOKEN[:-1]}", TOKEN, ""):
            assert httpx.get(f"{served}/api/status", headers={"Authorization": wrong}).status_code == 401, wrong
        assert httpx.options(f"{served}/mcp").status_code == 405


def test_the_page_sends_its_security_headers(url):
    from rag.server.security import content_security_policy

    page = httpx.get(f"{url}/")
    html = page.text
    assert page.headers["content-security-policy"] == content_security_policy(html)
    policy = page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'sha256-" in policy and "'unsafe-inline'" not in policy
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    api = httpx.get(f"{url}/api/status")
    assert api.headers["x-content-type-options"] == "nosniff"
