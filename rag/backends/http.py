"""Small JSON-over-HTTP helpers for probing local model servers, with short timeouts."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

# A server that is up answers a health probe at once; a dead one is reported within this.
PROBE_TIMEOUT_S = 2.0


class ServerUnreachable(Exception):
    pass


def get_json(url: str, timeout: float = PROBE_TIMEOUT_S, headers: dict[str, str] | None = None) -> Any:
    return _request(urllib.request.Request(url, headers=headers or {}), timeout)


def post_json(
    url: str, payload: dict[str, Any], timeout: float = PROBE_TIMEOUT_S, headers: dict[str, str] | None = None
) -> Any:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    return _request(request, timeout)


def _request(request: urllib.request.Request, timeout: float) -> Any:
    # No proxy: these are servers the user configured, usually on loopback.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"null")
    except urllib.error.HTTPError:
        raise
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise ServerUnreachable(str(getattr(exc, "reason", exc))) from exc
