"""What every request to `rag serve` passes before any route sees it.

`RequestGuard` is the outermost layer of the app. In order, it:
- refuses a `Host` that names no address of this server (421): a web page the user visits could
  otherwise reach the server through a DNS-rebinding name and read the documents;
- refuses an `Origin` other than the request's own or a configured CORS origin (403): a page of
  another site may send a request, but never have it served;
- answers `OPTIONS` that is no CORS preflight with 405, so it creates nothing (an MCP session);
- refuses a body larger than the limit (413), by its Content-Length or as it arrives;
- puts the security headers on every response (a Content-Security-Policy that runs the page's own
  script only, no framing, no MIME sniffing, no referrer).

`TokenGuard` sits inside it: it finds who sent the request (the server's token, a named token
with scopes, or nobody on a server without tokens), and routes `authorize` what that token may do.
`AccessLog`, outside everything, logs each request with the token's name.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Iterable, Sequence
from urllib.parse import urlsplit

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ingest.settings import is_ip_address
from rag.server.tokens import Identity, TokenKeeper, TokensFileError, admin_identity

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
# Open without the token: the health check, and the page, which asks for the token itself.
OPEN_PATHS = ("/health", "/")
# Names in the log for the server's single token and for a server without tokens; no token name has parentheses.
SERVER_TOKEN_NAME = "(server token)"
NO_TOKEN_NAME = "(no token)"
# Where a request's identity and the collection it acted on travel in its ASGI scope.
IDENTITY = "rag.identity"
LOGGED_COLLECTION = "rag.collection"
CLIENT_CLOSED_REQUEST = 499
ACCESS_LOG = logging.getLogger("rag.serve.access")


def error_body(message: str, kind: str, code: int) -> dict[str, Any]:
    """Every error of the server, in the shape OpenAI clients read."""
    return {"error": {"message": message, "type": kind, "code": code}}


def error_response(message: str, kind: str, code: int, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(message, kind, code), status_code=code, headers=headers)


def _host_name(host: str) -> str:
    """The name or address of a Host header or bind address, lower case, without port, brackets or final dot."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].partition("]")[0]
    if host.count(":") == 1:  # name:port; an IPv6 address has more than one colon and no port without brackets
        host = host.partition(":")[0]
    return host.rstrip(".")


@dataclass(frozen=True)
class HostRule:
    """The Host names a request may carry: those of the address the server is bound to, and any configured."""

    names: frozenset[str]
    suffixes: tuple[str, ...]  # from *.example.org: any name ending in .example.org
    any_local_address: bool  # bound to every interface: the address a connection arrived at is the server's

    @classmethod
    def for_bind(cls, bind_host: str, allowed: Iterable[str] = ()) -> "HostRule":
        bound = _host_name(bind_host)
        names = {bound} if bound not in WILDCARD_ADDRESSES else set()
        loopback = bound in LOOPBACK_NAMES or (is_ip_address(bound) and ipaddress.ip_address(bound).is_loopback)
        if loopback or bound in WILDCARD_ADDRESSES:
            names |= LOOPBACK_NAMES
        if not loopback:  # reachable from the network: by this machine's own names too
            names |= {_host_name(socket.gethostname()), _host_name(socket.getfqdn())}
        suffixes = []
        for entry in allowed:
            name = _host_name(entry)
            if name.startswith("*."):
                suffixes.append(name[1:])
            elif name:
                names.add(name)
        return cls(frozenset(names), tuple(suffixes), bound in WILDCARD_ADDRESSES)

    def allows(self, host: str, local_address: str | None) -> bool:
        name = _host_name(host)
        if name in self.names or any(name.endswith(suffix) for suffix in self.suffixes):
            return True
        # An address literal cannot be rebound; it is ours when it is where the connection arrived.
        return self.any_local_address and is_ip_address(name) and local_address is not None and name == _host_name(local_address)


def _inline_hashes(page: str, tag: str) -> str:
    """CSP sources allowing exactly the page's inline <tag> elements, by their SHA-256."""
    blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", page, flags=re.S)
    digests = [base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() for block in blocks]
    return " ".join(f"'sha256-{digest}'" for digest in digests) or "'none'"


def content_security_policy(page: str) -> str:
    """The page's policy: its own inline script and style, requests to its own origin, nothing else."""
    return (
        f"default-src 'none'; script-src {_inline_hashes(page, 'script')}; style-src {_inline_hashes(page, 'style')}; "
        "connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


class BodyTooLarge(HTTPException):
    """Raised while a body arrives: routes pass it on as the 413 it is (FastAPI makes other errors a 400)."""

    def __init__(self, limit: int):
        super().__init__(413, f"The request body is larger than this server takes ({limit // 1024} KiB, serve.max_body_kb).")


class RequestGuard:
    """Host, Origin, OPTIONS and body-size checks, and the security headers (see the module's docstring)."""

    def __init__(
        self, app: ASGIApp, hosts: HostRule, cors_origins: Sequence[str], max_body_bytes: int, page_policy: str
    ):
        self.app = app
        self.hosts = hosts
        self.cors_origins = {origin.rstrip("/").lower() for origin in cors_origins}
        self.max_body_bytes = max_body_bytes
        self.headers = [
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"content-security-policy", page_policy.encode()),
        ]

    def refusal(self, scope: Scope) -> JSONResponse | None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        local = scope.get("server") or (None, None)
        if not host or not self.hosts.allows(host, local[0]):
            return error_response(
                f"This server does not answer for the host {host!r}: use the address it listens on "
                "(serve.allowed_hosts names more, such as a reverse proxy's).",
                "misdirected_request", 421,
            )
        origin = headers.get("origin")
        if origin is not None and not self._origin_allowed(origin, host):
            return error_response(
                f"Requests from pages at {origin} are not served: only this server's own page, "
                "and the origins in serve.cors_origins, may call it.",
                "forbidden_origin", 403,
            )
        preflight = origin is not None and "access-control-request-method" in headers and self.cors_origins
        if scope["method"] == "OPTIONS" and not preflight:
            return error_response("OPTIONS is answered only as a CORS preflight.", "method_not_allowed", 405, {"Allow": "GET, POST"})
        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body_bytes):
            return self._too_large()
        return None

    def _origin_allowed(self, origin: str, host: str) -> bool:
        origin = origin.rstrip("/").lower()
        return origin in self.cors_origins or (origin != "null" and urlsplit(origin).netloc == host.strip().lower())

    def _too_large(self) -> JSONResponse:
        return error_response(BodyTooLarge(self.max_body_bytes).detail, "request_too_large", 413)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                known = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = [*message.get("headers", []), *(h for h in self.headers if h[0] not in known)]
            await send(message)

        if scope["type"] == "websocket":  # no route speaks it; still, only for this server's own names
            if (refused := self.refusal({**scope, "method": "GET"})) is not None:
                await send({"type": "websocket.close", "code": 1008})
                return
            await self.app(scope, receive, send)
            return
        if (refused := self.refusal(scope)) is not None:
            await refused(scope, receive, send_with_headers)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        try:
            await self.app(scope, bounded_receive, send_with_headers)
        except BodyTooLarge:
            if started:
                raise
            await self._too_large()(scope, receive, send_with_headers)


class TokenGuard:
    """Who sent a request: its token's `Identity` in the scope, or 401, except on the open paths.

    The server's single token (`--token`) is admin on every collection; a named token from the tokens
    file has its own scopes, read from the file as it is now (a revoked one is refused at once). A
    server with neither serves only this machine, and every request is admin as `(no token)`.
    """

    def __init__(self, app: ASGIApp, token: str | None, keeper: TokenKeeper | None):
        self.app = app
        self.expected = token.encode() if token else None
        self.keeper = keeper

    def identify(self, scope: Scope) -> Identity | None:
        if self.expected is None and self.keeper is None:
            return admin_identity(NO_TOKEN_NAME)
        given = dict(scope["headers"]).get(b"authorization", b"")
        scheme, _, credentials = given.strip().partition(b" ")
        credentials = credentials.strip()
        if scheme.lower() != b"bearer" or not credentials:
            return None
        # compare_digest takes constant time: the token cannot be guessed byte by byte
        if self.expected is not None and hmac.compare_digest(credentials, self.expected):
            return admin_identity(SERVER_TOKEN_NAME)
        return self.keeper.identify(credentials.decode("latin-1")) if self.keeper else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            identity = self.identify(scope)
        except TokensFileError as exc:  # made unreadable, or opened to others, while serving: refuse everyone
            await error_response(str(exc), "server_error", 500)(scope, receive, send)
            return
        if identity is None:
            message = "Missing or wrong token: send the header `Authorization: Bearer TOKEN` (a token this server accepts)."
            response = error_response(message, "unauthorized", 401, {"WWW-Authenticate": "Bearer"})
            await response(scope, receive, send)
            return
        scope[IDENTITY] = identity
        await self.app(scope, receive, send)


def identity_of(scope: Scope) -> Identity:
    """The identity TokenGuard found for the request."""
    return scope[IDENTITY]


def authorize(scope: Scope, collection: str, needed: str) -> None:
    """MissingScopeError unless the request's token has `needed` on `collection`, which the log names either way."""
    scope[LOGGED_COLLECTION] = collection
    identity_of(scope).require(collection, needed)


class AccessLog:
    """One line per request, once its response is complete: the token's name (never the token), the route,
    the collection it acted on, the status and the duration."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = CLIENT_CLOSED_REQUEST  # no response began: the client left first

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            identity = scope.get(IDENTITY)
            ACCESS_LOG.info(
                "%s %s %s collection=%s status=%s %.0f ms",
                identity.name if identity else "-", scope["method"], scope["path"], scope.get(LOGGED_COLLECTION, "-"),
                status, (time.monotonic() - started) * 1000,
            )
