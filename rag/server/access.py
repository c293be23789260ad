"""Who may reach `rag serve`: this machine alone, or whoever holds a token too long to guess.

`serve` checks before it loads anything, and the app again for whoever builds it; a module of its
own, so the app does not import the package that starts it.
"""

from __future__ import annotations

import ipaddress

from rag.errors import UsageError

TOKEN_VARIABLE = "RAG_SERVER_TOKEN"
MIN_TOKEN_LENGTH = 16


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def check_token(token: str | None) -> None:
    """A token anyone could guess protects nothing: refuse it before the server starts."""
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.strip()):
        raise UsageError(
            f"The token is too short to protect the documents: use at least {MIN_TOKEN_LENGTH} characters, "
            "not all spaces, such as the output of `openssl rand -hex 16`."
        )


def check_bind(host: str, token: str | None, named_tokens: bool = False) -> None:
    """Refuse to expose the documents beyond this machine without a token (the server's own, or named ones
    in the tokens file), or with one anyone could guess."""
    check_token(token)
    if not token and not named_tokens and not is_loopback(host):
        raise UsageError(
            f"Refusing to serve on {host} without a token: anyone who can reach it could read your documents. "
            f"Pass --token T (or set {TOKEN_VARIABLE}), and clients send `Authorization: Bearer T`; "
            "or give people tokens of their own with `rag serve token add`; or serve on 127.0.0.1."
        )
