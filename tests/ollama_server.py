"""A PROTOCOL STAND-IN for an Ollama server, for tests. It is NOT Ollama.

No Ollama binary can be installed on the machines these tests run on, so this
module speaks Ollama's documented REST API
(https://github.com/ollama/ollama/blob/main/docs/api.md) over plain HTTP and
generates with llama-cpp-python from local GGUF files. The real
`langchain-ollama` and `ollama` client packages talk to it unchanged, which is
the point: code under test exercises its actual Ollama client path.

    from tests.ollama_server import start
    with start({"tiny-llama": "/path/tiny.gguf"}) as server:
        OllamaLLM(model="tiny-llama", base_url=server.url).invoke("hi")

    python tests/ollama_server.py --model tiny-llama=/path/tiny.gguf --port 11434

Endpoints: GET|HEAD /, GET /api/version, GET /api/tags, GET /api/ps,
POST /api/show, POST /api/generate, POST /api/chat. Model management
(/api/pull, /api/create, /api/delete, ...) answers 501.

Supported request fields: model, prompt, system, raw, messages, stream,
format ("json" or a JSON schema, enforced with a llama.cpp grammar),
keep_alive (0 unloads the model after the request; any other value keeps it
loaded until close()), truncate, and options num_ctx, num_predict,
temperature, top_k, top_p, min_p, typical_p, repeat_penalty,
presence_penalty, frequency_penalty, mirostat, mirostat_tau, mirostat_eta,
seed, stop. Other Ollama options (num_gpu, num_thread, ...) are ignored, as
Ollama ignores options that do not apply. Requests that ask for something
this stand-in cannot do (suffix, images, tools, think, logprobs, context)
are refused with 400 instead of being silently ignored.

Where it knowingly differs from Ollama:
* Prompts are rendered with the GGUF's own Jinja chat template (as
  llama-cpp-python does), not a Go template; /api/show returns that Jinja
  text as "template". Without a template, chats render as "role: content"
  lines and /api/generate uses "SYSTEM\\n\\nPROMPT".
* llama-cpp-python has no context shift, so a prompt that does not fit is cut
  from the front (keeping the first token) to leave room for generation, and
  generation stops with done_reason "length" when the context is full.
  Ollama drops whole old chat messages instead.
* Requests to one model are served one at a time (one lock per model).
* "digest" is a sha256 over the file's path, size and mtime, not a manifest
  digest; clients treat it as an opaque id anyway.
"""

from __future__ import annotations

import argparse
import ctypes
import hashlib
import json
import logging
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator
from urllib.parse import urlsplit

import llama_cpp
from llama_cpp import llama_chat_format, llama_grammar

log = logging.getLogger("ollama_standin")

VERSION = "0.0.0-standin"  # never mistaken for a real Ollama release
DEFAULT_NUM_CTX = 2048

# Ollama's documented option defaults; the type of each value is also the type
# a request must send (ints are accepted where floats are expected).
DEFAULT_OPTIONS: dict[str, Any] = {
    "num_ctx": DEFAULT_NUM_CTX,
    "num_predict": -1,  # unlimited: until EOS or a full context
    "temperature": 0.8,
    "top_k": 40,
    "top_p": 0.9,
    "min_p": 0.0,
    "typical_p": 1.0,
    "repeat_penalty": 1.1,
    "presence_penalty": 0.0,
    "frequency_penalty": 0.0,
    "mirostat": 0,
    "mirostat_tau": 5.0,
    "mirostat_eta": 0.1,
    "seed": -1,  # random per request
    "stop": [],
}

# Ollama option name -> llama-cpp-python create_completion keyword.
_SAMPLING_KWARGS = {
    "temperature": "temperature",
    "top_k": "top_k",
    "top_p": "top_p",
    "min_p": "min_p",
    "typical_p": "typical_p",
    "repeat_penalty": "repeat_penalty",
    "presence_penalty": "presence_penalty",
    "frequency_penalty": "frequency_penalty",
    "mirostat": "mirostat_mode",
    "mirostat_tau": "mirostat_tau",
    "mirostat_eta": "mirostat_eta",
}

# general.file_type number -> Ollama's quantization_level spelling ("Q4_K_M").
_FILE_TYPES = {
    value: name.removeprefix("LLAMA_FTYPE_MOSTLY_").removeprefix("LLAMA_FTYPE_ALL_")
    for name, value in vars(llama_cpp).items()
    if name.startswith("LLAMA_FTYPE_") and name != "LLAMA_FTYPE_GUESSED"
}

# Real Ollama endpoints this stand-in does not implement: 501, not a bare 404.
_UNSUPPORTED = {
    "/api/pull", "/api/push", "/api/create", "/api/copy", "/api/delete", "/api/embed", "/api/embeddings",
}

_GO_DURATION = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600,
}


class HTTPError(Exception):
    """An error answered as Ollama does: the status code and {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------


def _now() -> str:
    """RFC 3339 UTC timestamp, the form Ollama puts in created_at."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def _rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="microseconds")


def normalize_name(name: str) -> str:
    """"tiny-llama" -> "tiny-llama:latest", as Ollama fills in the default tag."""
    name = name.strip()
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


def human_number(n: int) -> str:
    """Ollama's parameter_size spelling: 53K, 135.27M, 8.0B."""
    if n >= 1_000_000_000:
        value = n / 1_000_000_000
        return f"{value:.0f}B" if value.is_integer() else f"{value:.1f}B"
    if n >= 1_000_000:
        value = n / 1_000_000
        return f"{value:.0f}M" if value.is_integer() else f"{value:.2f}M"
    if n >= 1_000:
        return f"{n / 1_000:.0f}K"
    return str(n)


def _typed(text: str) -> Any:
    """llama.cpp hands metadata over as strings; Ollama's model_info has JSON types."""
    if text in ("true", "false"):
        return text == "true"
    for convert in (int, float):
        try:
            value = convert(text)
        except ValueError:
            continue
        if math.isfinite(value):  # "nan" and "inf" are names, and not valid JSON numbers
            return value
    return text


def keep_alive_is_zero(value: Any) -> bool:
    """Whether keep_alive asks to unload right away (Ollama: seconds or a Go duration)."""
    if value is None:
        return False
    if isinstance(value, bool):
        raise HTTPError(400, f"invalid keep_alive: {value!r}")
    if isinstance(value, (int, float)):
        return value == 0
    if not isinstance(value, str):
        raise HTTPError(400, f"invalid keep_alive: {value!r}")
    text = value.strip().lstrip("+-")
    if text == "0":
        return True
    parts = _GO_DURATION.findall(text)
    if not parts or "".join(a + u for a, u in parts) != text:
        raise HTTPError(400, f'time: invalid duration "{value}"')
    return sum(float(a) * _DURATION_UNITS[u] for a, u in parts) == 0


# --------------------------------------------------------------------------
# Request parsing
# --------------------------------------------------------------------------


def parse_options(raw: Any) -> dict[str, Any]:
    """Ollama's `options`, merged over the defaults and type-checked."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise HTTPError(400, "options must be an object")
    options = dict(DEFAULT_OPTIONS)
    for key, value in raw.items():
        if key not in DEFAULT_OPTIONS or value is None:
            continue  # like Ollama: options that do not apply are ignored
        options[key] = _coerce_option(key, value, DEFAULT_OPTIONS[key])
    return options


def _coerce_option(key: str, value: Any, default: Any) -> Any:
    if isinstance(default, list):
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise HTTPError(400, f'option "{key}" must be a list of strings')
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise HTTPError(400, f'option "{key}" must be a number')
    if isinstance(default, int):
        if isinstance(value, float) and not value.is_integer():
            raise HTTPError(400, f'option "{key}" must be an integer')
        return int(value)
    return float(value)


def make_grammar(fmt: Any) -> llama_cpp.LlamaGrammar | None:
    """Ollama's `format`: "" / null = free text, "json" = any JSON object, or a JSON schema."""
    if fmt in (None, ""):
        return None
    if fmt == "json":
        return llama_cpp.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    if isinstance(fmt, dict):
        try:
            return llama_cpp.LlamaGrammar.from_json_schema(json.dumps(fmt), verbose=False)
        except Exception as exc:  # the converter raises assorted types on bad schemas
            raise HTTPError(400, f"invalid JSON schema in format: {exc}") from None
    raise HTTPError(400, 'invalid format: expected "json" or a valid JSON schema')


def _field(body: dict, key: str, kind: type | tuple[type, ...], default: Any = None) -> Any:
    value = body.get(key, default)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise HTTPError(400, f'invalid value for "{key}"')
    return value


def _refuse_unsupported(body: dict, model: str, fields: dict[str, str]) -> None:
    """400 for requested features this stand-in cannot honour, rather than ignore them."""
    for key, what in fields.items():
        value = body.get(key)
        if value not in (None, False, "", [], {}):
            raise HTTPError(400, f'"{model}" does not support {what} (Ollama protocol stand-in)')


def parse_messages(raw: Any, model: str) -> list[dict[str, str]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise HTTPError(400, "messages must be a list")
    messages = []
    for message in raw:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise HTTPError(400, "each message needs a string role")
        content = message.get("content") or ""
        if not isinstance(content, str):
            raise HTTPError(400, "message content must be a string")
        _refuse_unsupported(message, model, {"images": "images", "tool_calls": "tools"})
        messages.append({"role": message["role"], "content": content})
    return messages


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


@dataclass
class ModelInfo:
    """What Ollama reports about a model, read from the GGUF header by llama.cpp."""

    metadata: dict[str, str]
    n_params: int
    size: int
    modified_at: float
    digest: str

    @property
    def architecture(self) -> str:
        return self.metadata.get("general.architecture", "unknown")

    @property
    def context_length(self) -> int | None:
        value = self.metadata.get(f"{self.architecture}.context_length")
        return int(value) if value else None

    @property
    def chat_template(self) -> str | None:
        return self.metadata.get("tokenizer.chat_template") or None

    @property
    def quantization(self) -> str:
        value = self.metadata.get("general.file_type")
        return _FILE_TYPES.get(int(value), "unknown") if value else "unknown"

    def details(self) -> dict[str, Any]:
        return {
            "parent_model": "",
            "format": "gguf",
            "family": self.architecture,
            "families": [self.architecture],
            "parameter_size": human_number(self.n_params),
            "quantization_level": self.quantization,
        }

    def model_info(self) -> dict[str, Any]:
        info = {key: _typed(value) for key, value in sorted(self.metadata.items())}
        info["general.parameter_count"] = self.n_params
        return info


def read_model_info(path: Path) -> ModelInfo:
    """GGUF metadata via llama.cpp with vocab_only, so no weights are read."""
    # llama.cpp logs every key it loads unless llama-cpp-python's logger is
    # quieted; Llama(verbose=False) does the same thing.
    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    params = llama_cpp.llama_model_default_params()
    params.vocab_only = True
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), params)
    if not model:
        raise ValueError(f"llama.cpp cannot read {path} as a GGUF model")
    try:
        metadata = _read_metadata(model)
        n_params = llama_cpp.llama_model_n_params(model)
    finally:
        llama_cpp.llama_model_free(model)
    stat = path.stat()
    digest = hashlib.sha256(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()
    return ModelInfo(metadata, n_params, stat.st_size, stat.st_mtime, digest)


def _read_metadata(model: Any) -> dict[str, str]:
    def read(getter, index: int) -> str:
        size = 256
        while True:
            buffer = ctypes.create_string_buffer(size)
            needed = getter(model, index, buffer, size)
            if needed < size:  # it returns the untruncated length, like snprintf
                return buffer.value.decode("utf-8", errors="replace")
            size = needed + 1

    return {
        read(llama_cpp.llama_model_meta_key_by_index, i): read(llama_cpp.llama_model_meta_val_str_by_index, i)
        for i in range(llama_cpp.llama_model_meta_count(model))
    }


@dataclass
class LoadedModel:
    llm: llama_cpp.Llama
    n_ctx: int
    formatter: llama_chat_format.Jinja2ChatFormatter | None


@dataclass
class ModelEntry:
    """One served model: its file, cached GGUF info, and the llama context once loaded."""

    name: str
    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    _info: ModelInfo | None = None
    loaded: LoadedModel | None = None

    @property
    def info(self) -> ModelInfo:
        if self._info is None:
            self._info = read_model_info(self.path)
        return self._info

    def context_size(self, num_ctx: int) -> int:
        """Requested num_ctx, capped at the trained context length as Ollama does."""
        n_ctx = num_ctx if num_ctx > 0 else DEFAULT_NUM_CTX
        limit = self.info.context_length
        return min(n_ctx, limit) if limit else n_ctx

    def ensure_loaded(self, n_ctx: int) -> int:
        """Load (or reload for a new n_ctx); returns load time in ns. Caller holds lock."""
        if self.loaded is not None and self.loaded.n_ctx == n_ctx:
            return 0
        self.unload()
        start = time.perf_counter_ns()
        try:
            llm = llama_cpp.Llama(model_path=str(self.path), n_ctx=n_ctx, verbose=False)
        except Exception as exc:
            raise HTTPError(500, f"llama runner process has terminated: {exc}") from None
        self.loaded = LoadedModel(llm, n_ctx, self._formatter(llm))
        return time.perf_counter_ns() - start

    def _formatter(self, llm: llama_cpp.Llama) -> llama_chat_format.Jinja2ChatFormatter | None:
        template = self.info.chat_template
        if template is None:
            return None
        vocab = llama_cpp.llama_model_get_vocab(llm.model)

        def text(token: int) -> str:
            return llama_cpp.llama_vocab_get_text(vocab, token).decode() if token >= 0 else ""

        # The same formatter llama-cpp-python's create_chat_completion uses for GGUF templates.
        return llama_chat_format.Jinja2ChatFormatter(
            template=template, eos_token=text(llm.token_eos()), bos_token=text(llm.token_bos())
        )

    def unload(self) -> None:
        """Free the llama context. Caller holds lock (or the server is closed)."""
        if self.loaded is not None:
            self.loaded.llm.close()
            self.loaded = None


# --------------------------------------------------------------------------
# Prompts and generation
# --------------------------------------------------------------------------


@dataclass
class Prompt:
    tokens: list[int]
    stop: list[str]  # extra stop strings the chat template implies (its EOS text)


Renderer = Callable[["LoadedModel"], Prompt]  # request -> prompt tokens, once the model is loaded
Shaper = Callable[[str], dict]  # text -> {"response": ...} or {"message": {...}}


def render_chat(loaded: LoadedModel, messages: list[dict[str, str]]) -> Prompt:
    llm = loaded.llm
    if loaded.formatter is not None:
        try:
            result = loaded.formatter(messages=messages)
        except Exception as exc:  # template errors, raise_exception() from the template
            raise HTTPError(400, f"chat template: {exc}") from None
        # Templates write their own BOS (added_special), as in llama-cpp-python.
        tokens = llm.tokenize(result.prompt.encode(), add_bos=not result.added_special, special=True)
        stop = [s for s in ([result.stop] if isinstance(result.stop, str) else result.stop or []) if s]
        return Prompt(tokens, stop)
    text = "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant:"
    return Prompt(llm.tokenize(text.encode(), add_bos=True, special=True), [])


def render_generate(loaded: LoadedModel, prompt: str, system: str, raw: bool) -> Prompt:
    if raw:  # the caller already formatted the prompt; special tokens are parsed as in Ollama
        return Prompt(loaded.llm.tokenize(prompt.encode(), add_bos=True, special=True), [])
    if loaded.formatter is not None:
        system_message = [{"role": "system", "content": system}] if system else []
        return render_chat(loaded, system_message + [{"role": "user", "content": prompt}])
    text = f"{system}\n\n{prompt}" if system else prompt
    return Prompt(loaded.llm.tokenize(text.encode(), add_bos=True, special=True), [])


def fit_context(tokens: list[int], n_ctx: int, num_predict: int, truncate: bool) -> list[int]:
    """Cut an over-long prompt from the front, keeping its first (BOS) token.

    llama-cpp-python refuses prompts that fill the context and cannot shift it
    during generation, so room is left for min(num_predict, n_ctx/2) tokens
    (n_ctx/4 when num_predict is unlimited).
    """
    if len(tokens) < n_ctx:
        return tokens
    if not truncate:
        raise HTTPError(400, f"input length ({len(tokens)} tokens) exceeds the context length ({n_ctx})")
    room = min(num_predict, n_ctx // 2) if num_predict > 0 else n_ctx // 4
    keep = max(n_ctx - max(room, 1) - 1, 1)
    log.warning("truncating input prompt: %d tokens, num_ctx %d, keeping %d", len(tokens), n_ctx, keep)
    return tokens[:1] + tokens[len(tokens) - keep + 1 :]


class Generation:
    """One llama-cpp-python completion, as text pieces plus Ollama's counters.

    Iterate it for the text; afterwards done_reason, eval_count and the
    durations are set. Tokens are counted with a stopping criterion that never
    stops: llama-cpp-python calls it once per sampled token, right after the
    prompt is evaluated (which splits prompt time from generation time), and
    once more after its loop with an unchanged context; counting distinct
    context lengths skips that extra call.
    """

    def __init__(self, loaded: LoadedModel, prompt: Prompt, options: dict[str, Any], grammar: Any):
        self.llm = loaded.llm
        self.n_ctx = loaded.n_ctx
        self.prompt = prompt
        self.options = options
        self.grammar = grammar
        self.prompt_eval_count = len(prompt.tokens)
        self.eval_count = 0
        self.done_reason = "stop"
        self.prompt_eval_duration = 0
        self.eval_duration = 0
        self._first_token_ns: int | None = None
        self._last_context_length = -1

    def _count(self, input_ids: Any, logits: Any) -> bool:
        if self._first_token_ns is None:
            self._first_token_ns = time.perf_counter_ns()
        if len(input_ids) != self._last_context_length:
            self._last_context_length = len(input_ids)
            self.eval_count += 1
        return False

    def _kwargs(self) -> dict[str, Any]:
        o = self.options
        kwargs = {llama_key: o[key] for key, llama_key in _SAMPLING_KWARGS.items()}
        # llama.cpp rounds the context up to a multiple of 256 but llama-cpp-python
        # sizes its token buffer by the n_ctx asked for, so the limit is kept here:
        # it is also what num_ctx means in Ollama.
        room = self.n_ctx - len(self.prompt.tokens)
        kwargs["max_tokens"] = min(o["num_predict"], room) if o["num_predict"] > 0 else room
        # llama-cpp-python reuses one seed per Llama when none is given; Ollama's -1 means random.
        kwargs["seed"] = o["seed"] if o["seed"] >= 0 else random.randrange(2**31)
        kwargs["stop"] = o["stop"] + self.prompt.stop
        return kwargs

    def __iter__(self) -> Iterator[str]:
        start = time.perf_counter_ns()
        chunks = self.llm.create_completion(
            self.prompt.tokens,
            stream=True,
            grammar=self.grammar,
            stopping_criteria=llama_cpp.StoppingCriteriaList([self._count]),
            **self._kwargs(),
        )
        try:
            for chunk in chunks:
                choice = chunk["choices"][0]
                if choice["text"]:
                    yield choice["text"]
                if choice.get("finish_reason"):
                    self.done_reason = choice["finish_reason"]
        finally:
            chunks.close()  # a client that hung up stops generation, as in Ollama
            end = time.perf_counter_ns()
            first = self._first_token_ns or end
            self.prompt_eval_duration = first - start
            self.eval_duration = end - first

    def stats(self, total_ns: int, load_ns: int) -> dict[str, Any]:
        return {
            "done_reason": self.done_reason,
            "total_duration": total_ns,
            "load_duration": load_ns,
            "prompt_eval_count": self.prompt_eval_count,
            "prompt_eval_duration": self.prompt_eval_duration,
            "eval_count": self.eval_count,
            "eval_duration": self.eval_duration,
        }


# --------------------------------------------------------------------------
# HTTP
# --------------------------------------------------------------------------


class _Server(ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so close() can end them.

    Clients keep connections alive, so handler threads would otherwise sit in
    a blocking read forever; close() shuts those sockets down and joins the
    threads before any model is freed under a running generation.
    """

    daemon_threads = True

    def __init__(self, address: tuple[str, int], standin: OllamaStandIn):
        self.standin = standin
        self._connections: dict[socket.socket, threading.Thread] = {}
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request, client_address):
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address), daemon=True
        )
        with self._connections_lock:
            self._connections[request] = thread
        thread.start()

    def shutdown_request(self, request):
        with self._connections_lock:
            self._connections.pop(request, None)
        super().shutdown_request(request)

    def end_connections(self, timeout: float) -> None:
        with self._connections_lock:
            connections = list(self._connections.items())
        for sock, _ in connections:
            try:
                # Linger 0: the final close() resets instead of leaving the
                # port in TIME_WAIT, so it is free again at once.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read, fails the next write
            except OSError:
                pass
        for _, thread in connections:
            thread.join(timeout)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive and chunked NDJSON streams, like Ollama
    server: _Server

    # --- plumbing ---

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.standin.log_requests:
            super().log_message(format, *args)

    def _route(self, method: str) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        handler = self.server.standin.routes.get((method, path))
        self.streaming = False
        try:
            # Read the body first, whatever happens next, so a kept-alive
            # connection is left at the start of the client's next request.
            self.body = self._read_body() if method in ("POST", "DELETE") else b""
            if handler is None:
                if path in _UNSUPPORTED:
                    raise HTTPError(501, f"{path} is not supported by this Ollama protocol stand-in")
                self._send(404, b"404 page not found", "text/plain")  # gin's answer
                return
            handler(self)
        except ConnectionError:  # the client hung up, or close() ended the connection
            self.close_connection = True
        except HTTPError as exc:
            self._send_json(exc.status, {"error": exc.message})
        except Exception as exc:  # a bug here must still answer, not hang the client
            log.exception("internal error")
            if self.streaming:
                self.close_connection = True  # a response is half sent; only hanging up is honest
            else:
                self._send_json(500, {"error": f"{type(exc).__name__}: {exc}"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_HEAD(self) -> None:
        self._route("HEAD")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            parts = []
            while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
                parts.append(self.rfile.read(size))
                self.rfile.readline()
            while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def json_body(self) -> dict[str, Any]:
        raw = self.body
        if not raw.strip():
            raise HTTPError(400, "missing request body")
        try:
            body = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPError(400, f"invalid JSON: {exc}") from None
        if not isinstance(body, dict):
            raise HTTPError(400, "request body must be a JSON object")
        return body

    def _send(self, status: int, data: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, ensure_ascii=False).encode(), "application/json; charset=utf-8")

    def send_ok(self, obj: Any) -> None:
        self._send_json(200, obj)

    def start_stream(self) -> None:
        self.streaming = True
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def stream_line(self, obj: Any) -> None:
        data = json.dumps(obj, ensure_ascii=False).encode() + b"\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))

    def end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")


class OllamaStandIn:
    """The running server: `.url`, `.close()`, and a context manager. See start()."""

    def __init__(
        self, models: dict[str, str | Path], host: str = "127.0.0.1", port: int = 0, log_requests: bool = False
    ):
        self.models: dict[str, ModelEntry] = {}
        for name, path in models.items():
            path = Path(path)
            if not path.is_file():
                raise FileNotFoundError(f"model file for {name!r} not found: {path}")
            entry = ModelEntry(normalize_name(name), path)
            self.models[entry.name.casefold()] = entry
        self.log_requests = log_requests
        self.routes = {
            ("GET", "/"): self._root,
            ("HEAD", "/"): self._root,
            ("GET", "/api/version"): self._version,
            ("HEAD", "/api/version"): self._version,
            ("GET", "/api/tags"): self._tags,
            ("HEAD", "/api/tags"): self._tags,
            ("GET", "/api/ps"): self._ps,
            ("POST", "/api/show"): self._show,
            ("POST", "/api/generate"): self._generate,
            ("POST", "/api/chat"): self._chat,
        }
        self._closed = False
        self._httpd = _Server((host, port), self)
        self.host, self.port = self._httpd.server_address[:2]
        # A short poll interval keeps close() (which waits for the loop) quick.
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving, end open connections, free the port, then unload every model."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()
        self._httpd.server_close()
        self._httpd.end_connections(timeout=30)
        self._thread.join()
        for entry in self.models.values():
            with entry.lock:  # waits out a generation that outlived the join timeout
                entry.unload()

    def __enter__(self) -> OllamaStandIn:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- lookups ---

    def entry(self, body: dict[str, Any], *keys: str) -> tuple[str, ModelEntry]:
        """The requested name (as sent) and its model; 400 without one, 404 if unknown."""
        name = next((body[k] for k in keys if isinstance(body.get(k), str) and body[k]), None)
        if name is None:
            raise HTTPError(400, "model is required")
        entry = self.models.get(normalize_name(name).casefold())
        if entry is None:
            raise HTTPError(404, f'model "{name}" not found, try pulling it first')
        return name, entry

    # --- simple endpoints ---

    def _root(self, h: _Handler) -> None:
        h._send(200, b"Ollama is running", "text/plain; charset=utf-8")

    def _version(self, h: _Handler) -> None:
        h.send_ok({"version": VERSION})

    def _model_summary(self, entry: ModelEntry) -> dict[str, Any]:
        info = entry.info
        return {
            "name": entry.name,
            "model": entry.name,
            "modified_at": _rfc3339(info.modified_at),
            "size": info.size,
            "digest": info.digest,
            "details": info.details(),
        }

    def _tags(self, h: _Handler) -> None:
        h.send_ok({"models": [self._model_summary(e) for e in self.models.values()]})

    def _ps(self, h: _Handler) -> None:
        running = []
        for entry in self.models.values():
            loaded = entry.loaded
            if loaded is not None:
                summary = self._model_summary(entry)
                del summary["modified_at"]
                # Loaded models stay until close() (or a keep_alive 0 request).
                expiry = {"expires_at": "9999-12-31T23:59:59Z", "size_vram": 0, "context_length": loaded.n_ctx}
                running.append(summary | expiry)
        h.send_ok({"models": running})

    def _show(self, h: _Handler) -> None:
        body = h.json_body()
        _, entry = self.entry(body, "model", "name")
        info = entry.info
        template = info.chat_template or "{{ .Prompt }}"  # Ollama's default template
        parameters = f"{'num_ctx':<30} {entry.context_size(DEFAULT_NUM_CTX)}"
        modelfile = (
            '# Modelfile generated by "ollama show" (Ollama protocol stand-in)\n'
            f"# To build a new Modelfile based on this, replace FROM with:\n# FROM {entry.name}\n\n"
            f'FROM {entry.path}\nTEMPLATE """{template}"""\nPARAMETER {parameters}\n'
        )
        h.send_ok(
            {
                "modelfile": modelfile,
                "parameters": parameters,
                "template": template,
                "details": info.details(),
                "model_info": info.model_info(),
                "capabilities": ["completion"],
                "modified_at": _rfc3339(info.modified_at),
            }
        )

    # --- generation endpoints ---

    def _generate(self, h: _Handler) -> None:
        body = h.json_body()
        name, entry = self.entry(body, "model")
        unsupported = {"suffix": "insert", "images": "images", "think": "thinking", "context": "context"}
        _refuse_unsupported(body, name, unsupported | {"logprobs": "logprobs"})
        prompt = _field(body, "prompt", str, "")
        system = _field(body, "system", str, "")
        raw = _field(body, "raw", bool, False)

        def render(loaded: LoadedModel) -> Prompt:
            return render_generate(loaded, prompt, system, raw)

        def shape(text: str) -> dict[str, Any]:
            return {"response": text}

        self._serve_generation(h, body, name, entry, render, shape, empty=not prompt)

    def _chat(self, h: _Handler) -> None:
        body = h.json_body()
        name, entry = self.entry(body, "model")
        _refuse_unsupported(body, name, {"tools": "tools", "think": "thinking", "logprobs": "logprobs"})
        messages = parse_messages(body.get("messages"), name)

        def render(loaded: LoadedModel) -> Prompt:
            return render_chat(loaded, messages)

        def shape(text: str) -> dict[str, Any]:
            return {"message": {"role": "assistant", "content": text}}

        self._serve_generation(h, body, name, entry, render, shape, empty=not messages)

    def _serve_generation(
        self, h: _Handler, body: dict, name: str, entry: ModelEntry, render: Renderer, shape: Shaper, empty: bool
    ) -> None:
        """Shared by /api/generate and /api/chat, which differ only in prompt and response shape."""
        start = time.perf_counter_ns()
        options = parse_options(body.get("options"))
        unload_after = keep_alive_is_zero(body.get("keep_alive"))
        stream = _field(body, "stream", bool, True)
        truncate = _field(body, "truncate", bool, True)
        grammar = make_grammar(body.get("format"))
        n_ctx = entry.context_size(options["num_ctx"])

        with entry.lock:
            if empty:  # Ollama: no prompt means "just load (or unload) the model"
                self._load_or_unload(h, name, entry, n_ctx, unload_after, shape)
                return
            load_ns = entry.ensure_loaded(n_ctx)
            loaded = entry.loaded
            prompt = render(loaded)
            if not prompt.tokens:  # llama-cpp-python cannot start from nothing
                raise HTTPError(400, "the prompt is empty after applying the chat template")
            prompt.tokens = fit_context(prompt.tokens, n_ctx, options["num_predict"], truncate)
            generation = Generation(loaded, prompt, options, grammar)
            try:
                if stream:
                    self._stream(h, name, generation, shape, start, load_ns)
                else:
                    text = "".join(generation)
                    h.send_ok(self._final(name, generation, shape(text), start, load_ns))
            finally:
                if unload_after:
                    entry.unload()

    def _load_or_unload(
        self, h: _Handler, name: str, entry: ModelEntry, n_ctx: int, unload: bool, shape: Shaper
    ) -> None:
        if unload:
            entry.unload()
        else:
            entry.ensure_loaded(n_ctx)
        reason = "unload" if unload else "load"
        h.send_ok({"model": name, "created_at": _now(), **shape(""), "done": True, "done_reason": reason})

    def _final(
        self, name: str, generation: Generation, content: dict, start: int, load_ns: int
    ) -> dict[str, Any]:
        total = time.perf_counter_ns() - start
        return {"model": name, "created_at": _now(), **content, "done": True, **generation.stats(total, load_ns)}

    def _stream(
        self, h: _Handler, name: str, generation: Generation, shape: Shaper, start: int, load_ns: int
    ) -> None:
        h.start_stream()
        try:
            for text in generation:
                h.stream_line({"model": name, "created_at": _now(), **shape(text), "done": False})
        except ConnectionError:
            raise
        except Exception as exc:  # headers are out: Ollama reports mid-stream errors as a line
            log.exception("generation failed")
            h.stream_line({"error": str(exc)})
        else:
            h.stream_line(self._final(name, generation, shape(""), start, load_ns))
        h.end_stream()


def start(
    models: dict[str, str | Path], host: str = "127.0.0.1", port: int = 0, *, log_requests: bool = False
) -> OllamaStandIn:
    """Serve `models` ({"tiny-llama": "/path/file.gguf"}) in a background thread.

    port=0 picks a free port; read it back from `.url`. Close with `.close()`
    or use the result as a context manager.
    """
    return OllamaStandIn(models, host, port, log_requests=log_requests)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Ollama protocol stand-in for tests (not Ollama).")
    parser.add_argument(
        "--model", action="append", required=True, metavar="NAME=PATH", help="a GGUF to serve; repeatable"
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434)
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    args = parser.parse_args(argv)

    models = {}
    for spec in args.model:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            parser.error(f"--model wants NAME=PATH, got {spec!r}")
        models[name] = path
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    server = start(models, args.host, args.port, log_requests=not args.quiet)
    names = ", ".join(e.name for e in server.models.values())
    print(f"Ollama protocol stand-in serving {names} at {server.url}", file=sys.stderr)
    # Explicit handlers: a shell starts background jobs with SIGINT ignored,
    # and test harnesses usually stop a subprocess with SIGTERM.
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.close()
        print("Ollama protocol stand-in stopped", file=sys.stderr)


if __name__ == "__main__":
    main()
