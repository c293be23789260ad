"""`rag models` asks, it does not load: each backend's probe reads a model file's header or a
server's answers, imports neither LangChain's client nor the engine, and probes servers at once."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from rag.backends import backend_statuses
from rag.backends.gguf_header import read_header
from tests.conftest import REPO, make_settings
from tests.tiny_gguf import LLAMA2_CHAT_TEMPLATE, VOCAB_SIZE, write_tiny_llama_gguf

# What loading a model would import; a probe needs none of them.
ENGINE_MODULES = ("llama_cpp", "langchain_community", "langchain_openai", "langchain_ollama", "openai", "rag.prompting")


def test_the_header_is_read_past_the_vocabulary_as_gguf_reads_it(tmp_path):
    import gguf

    path = write_tiny_llama_gguf(tmp_path / "tiny.gguf", chat_template=LLAMA2_CHAT_TEMPLATE)
    header = read_header(path)
    reference = gguf.GGUFReader(path)
    scalars = {
        name: field.contents()
        for name, field in reference.fields.items()
        if not name.startswith("GGUF.") and field.types[0] != gguf.GGUFValueType.ARRAY
    }
    assert header == pytest.approx(scalars)
    assert len(reference.fields["tokenizer.ggml.tokens"].data) == VOCAB_SIZE  # the array skipped is there
    assert header["tokenizer.chat_template"] == LLAMA2_CHAT_TEMPLATE  # a key after the vocabulary


def test_a_header_cut_or_damaged_inside_the_vocabulary_is_refused(tmp_path):
    data = write_tiny_llama_gguf(tmp_path / "tiny.gguf").read_bytes()
    first_token = data.index(b"<unk>")  # the vocabulary's first string, after its 8-byte length
    for end in (first_token - 3, first_token + 2, first_token + 900):
        cut = tmp_path / f"cut-{end}.gguf"
        cut.write_bytes(data[:end])
        with pytest.raises(ValueError, match="cut short"):
            read_header(cut)
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(data[: first_token - 8] + (2**63).to_bytes(8, "little") + data[first_token:])
    with pytest.raises(ValueError, match="cut short"):
        read_header(damaged)


def test_models_all_loads_no_engine_and_no_langchain_client(tmp_path):
    model = write_tiny_llama_gguf(tmp_path / "tiny.gguf", chat_template=LLAMA2_CHAT_TEMPLATE)
    dead = f"http://127.0.0.1:{_refusing_port()}"
    code = (
        "import json, sys\n"
        "import rag\n"
        "from rag.backends import BACKENDS, backend_statuses\n"
        f"settings = rag.load_settings(home={str(tmp_path)!r})\n"
        "statuses = backend_statuses(list(BACKENDS), settings)\n"
        f"print(json.dumps({{'ok': {{s.backend: s.ok for s in statuses}}, 'loaded': sorted(m for m in {ENGINE_MODULES!r} if m in sys.modules)}}))\n"
    )
    env = {
        **os.environ, "PYTHONPATH": str(REPO), "RAG_LLM__MODEL_PATH": str(model), "RAG_LLM__OLLAMA__BASE_URL": dead,
        "RAG_LLM__LLAMAFILE__BASE_URL": dead, "RAG_LLM__OPENAI__BASE_URL": f"{dead}/v1",
    }
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found == {
        "ok": {"llamacpp": True, "ollama": False, "gpt4all": True, "llamafile": False, "openai": False},
        "loaded": [],
    }


def test_servers_that_never_answer_are_probed_at_once(home):
    from rag.backends.http import PROBE_TIMEOUT_S

    with _silent_server() as url:
        settings = make_settings(home, llm={
            "ollama": {"base_url": url}, "llamafile": {"base_url": url}, "openai": {"base_url": f"{url}/v1"},
        })
        started = time.monotonic()
        statuses = backend_statuses(["ollama", "llamafile", "openai"], settings)
        elapsed = time.monotonic() - started
    assert [status.ok for status in statuses] == [False, False, False]
    assert "Ollama is not running" in statuses[0].problem and "No llamafile" in statuses[1].problem
    # One probe's timeout, not three of them one after another.
    assert PROBE_TIMEOUT_S <= elapsed < 2 * PROBE_TIMEOUT_S, f"{elapsed:.1f}s"


def test_gpt4all_is_asked_about_the_architecture_without_loading_the_weights(home, tmp_path):
    from rag.backends import backend_status

    model = write_tiny_llama_gguf(tmp_path / "tiny.gguf")
    unsupported = tmp_path / "other.gguf"
    unsupported.write_bytes(model.read_bytes().replace(b"llama.", b"lxama.").replace(b"\x05\x00\x00\x00\x00\x00\x00\x00llama", b"\x05\x00\x00\x00\x00\x00\x00\x00lxama"))
    assert backend_status("gpt4all", make_settings(home, llm={"model_path": str(model)})).ok
    refused = backend_status("gpt4all", make_settings(home, llm={"model_path": str(unsupported)}))
    assert not refused.ok
    assert refused.problem == (
        f"GPT4All cannot load {unsupported}: unsupported model architecture 'lxama' in gpt4all; "
        "use the llamacpp backend for it."
    )


def _refusing_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _silent_server:
    """A loopback port that takes connections and never answers: a hung server, not a dead one."""

    def __enter__(self) -> str:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.sock.close()
