"""Named tokens for `rag serve`, each with scopes per collection, kept hashed in a file only its owner reads.

    add_token(path, "alice", {"notes": "read"})   # the token, shown once
    list_tokens(path)                             # names and scopes, never the tokens
    revoke_token(path, "alice")

Scopes: `read` (search, ask, chat, chunks, status), `write` (ingest, and read), `admin` (everything);
on a collection by name, or on every collection as `*`. The file holds each token's SHA-256 only:
a token is random and long, so its hash cannot be reversed by guessing. The file is written with
mode 0600 and refused when its group or others may read it. A running server reads it again when it
changes, so a revoked token stops working at its next request.

No server packages are imported here: `rag serve token` runs without the serve extra.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import re
import secrets
import stat
import tempfile
import threading
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ingest.settings import collection_name
from rag.errors import RagError, UsageError
from rag.settings import Settings

SCOPES = ("read", "write", "admin")  # each includes the ones before it
EVERY_COLLECTION = "*"
TOKEN_NAME = re.compile(r"^[^\W_][\w.@-]{0,63}$")
TOKEN_BYTES = 24
FILE_VERSION = 1


class MissingScopeError(RagError):
    """A token without the scope a request needs (a 403)."""

    def __init__(self, name: str, scope: str, collection: str):
        self.name, self.scope, self.collection = name, scope, collection
        super().__init__(
            f"The token {name!r} lacks the {scope} scope on the collection {collection!r}:",
            f"the server's owner can issue one that has it (add_token with the scopes {{{collection!r}: {scope!r}}}).",
        )


class NoScopesGivenError(UsageError):
    """A token asked for without a scope on any collection."""

    def __init__(self) -> None:
        super().__init__(
            "A token needs a scope on at least one collection:", "give add_token scopes such as {'notes': 'read'}."
        )


class TokenExistsError(UsageError):
    def __init__(self, name: str):
        self.name = name
        super().__init__(
            f"A token named {name!r} exists:", "revoke it first (revoke_token), or choose another name."
        )


class UnknownTokenError(UsageError):
    """`known` are the names the file holds."""

    def __init__(self, name: str, known: list[str]):
        self.name, self.known = name, known
        super().__init__(f"No token named {name!r} (tokens: {', '.join(known) or 'none'});", "revoke one of those.")


def tokens_path(settings: Settings) -> Path:
    return (settings.serve.tokens_file or settings.home / "serve-tokens.json").expanduser()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """Who sent a request: a token's name and its scopes per collection (`*`: every collection)."""

    name: str
    scopes: Mapping[str, str] = field(default_factory=dict)

    def allows(self, collection: str, scope: str) -> bool:
        granted = [self.scopes.get(collection), self.scopes.get(EVERY_COLLECTION)]
        return any(level is not None and SCOPES.index(level) >= SCOPES.index(scope) for level in granted)

    def require(self, collection: str, scope: str) -> None:
        if not self.allows(collection, scope):
            raise MissingScopeError(self.name, scope, collection)


def admin_identity(name: str) -> Identity:
    return Identity(name, {EVERY_COLLECTION: "admin"})


@dataclass(frozen=True)
class StoredToken:
    name: str
    hash: str
    scopes: dict[str, str]
    created: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "hash": self.hash, "scopes": self.scopes, "created": self.created}


class TokensFileError(UsageError):
    pass


def check_private(path: Path) -> None:
    """A file of token hashes that others may read invites them to guess offline: refuse it."""
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokensFileError(
            f"The tokens file {path} is open to its group or others (mode {stat.S_IMODE(mode):o}): run `chmod 600 {path}`."
        )


def read_tokens(path: Path) -> list[StoredToken]:
    """The tokens in the file; none when it does not exist. A file others may read, or not ours, is an error."""
    try:
        check_private(path)
        data = json.loads(path.read_text(encoding="utf-8"))
        return [
            StoredToken(entry["name"], entry["hash"], dict(entry["scopes"]), entry.get("created", ""))
            for entry in data["tokens"]
        ]
    except FileNotFoundError:
        return []
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokensFileError(f"The tokens file {path} cannot be read ({exc}): fix it, or move it away and add the tokens again.") from None


def _write_tokens(path: Path, tokens: list[StoredToken]) -> None:
    """Written whole to a private temporary file, then renamed: a server reading it sees the old or the new."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump({"version": FILE_VERSION, "tokens": [token.to_dict() for token in tokens]}, file, indent=2)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_token(path: Path, name: str, scopes: Mapping[str, str]) -> str:
    """A new random token named `name` with `scopes` ({collection or "*": scope}); returned once, stored hashed.
    Names are kept in their compatibility form (NFKC), as collections are."""
    name = unicodedata.normalize("NFKC", name)
    if not TOKEN_NAME.match(name):
        raise UsageError(f"{name!r} is no token name: use up to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit.")
    if not scopes:
        raise NoScopesGivenError()
    for collection, scope in scopes.items():
        if scope not in SCOPES:
            raise UsageError(f"{scope!r} is no scope: use {', '.join(SCOPES)}.")
        if not collection.strip():
            raise UsageError("A collection name is empty: name one, or * for every collection.")
    scopes = {scoped_collection(collection): scope for collection, scope in scopes.items()}
    tokens = read_tokens(path)
    if any(token.name == name for token in tokens):
        raise TokenExistsError(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    created = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    _write_tokens(path, [*tokens, StoredToken(name, token_hash(token), dict(scopes), created)])
    return token


def scoped_collection(collection: str) -> str:
    """A collection as a token's scope names it: as the collection is known (`collection_name`), or *."""
    if collection == "*":
        return collection
    try:
        return collection_name(collection)
    except ValueError as problem:
        raise UsageError(f"{collection!r} is no collection name: {problem}.") from None


def list_tokens(path: Path) -> list[dict[str, Any]]:
    """Each token's name, scopes and creation time; never its hash."""
    return [{"name": token.name, "scopes": token.scopes, "created": token.created} for token in read_tokens(path)]


def revoke_token(path: Path, name: str) -> None:
    tokens = read_tokens(path)
    kept = [token for token in tokens if token.name != name]
    if len(kept) == len(tokens):
        raise UnknownTokenError(name, [token.name for token in tokens])
    _write_tokens(path, kept)


class TokenKeeper:
    """The tokens a running server accepts: the file, read again whenever it changes on disk."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()
        self._signature: tuple[int, ...] | None = None
        self._tokens: list[StoredToken] = []
        self._refresh()  # a broken or open file stops the server before it loads anything

    def _refresh(self) -> None:
        try:
            status = self.path.stat()
            # ctime and mode too: a chmod that opens the file to others changes nothing else
            signature = (status.st_ino, status.st_mtime_ns, status.st_ctime_ns, status.st_size, status.st_mode)
        except FileNotFoundError:  # deleted while serving: no named token works any more
            signature = None
        with self._lock:
            if signature == self._signature and signature is not None:
                return
            self._tokens = read_tokens(self.path) if signature is not None else []
            self._signature = signature

    def identify(self, token: str) -> Identity | None:
        """The identity of a presented token, or None for one the file does not hold (any more)."""
        self._refresh()
        presented = token_hash(token)
        found = None
        for stored in self._tokens:  # every entry compared, in constant time each: no timing tells which matched
            if hmac.compare_digest(stored.hash, presented):
                found = stored
        return Identity(found.name, found.scopes) if found else None
