"""End to end with the real packaged Gemma 3 270M through llama.cpp: retrieve, prompt, stream, cite."""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from typer.testing import CliRunner

from rag.answering import Assistant
from rag.chain import NO_CONTEXT_ANSWER
from rag.cli import app, display_path
from tests.conftest import SAMPLE_NOTES, installed_command
from tests.helpers import ctrl_c_reaches_it

WARRANTY_QUESTION = "When does the warranty of the Brandt RO-350 reflow oven end?"
WARRANTY_FILE = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
runner = CliRunner()


@pytest.fixture(scope="module")
def gemma(sample_index):
    settings, _ = sample_index
    fast = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 32, "n_ctx": 1536})}
    )
    return Assistant(fast, k=3)


def cli(settings, *args: str, **env: str):
    return runner.invoke(app, list(args), env={"RAG_HOME": str(settings.home), **env})


def test_answer_streams_token_by_token_and_cites_the_right_file(gemma):
    stream = gemma.stream(WARRANTY_QUESTION)
    tokens = list(stream)
    answer = stream.answer
    assert len(tokens) > 1 and "".join(tokens) == answer.answer and answer.answer.strip()
    assert answer.sources[0].metadata["source"] == WARRANTY_FILE
    assert answer.sources[0].metadata["page"] == 2
    assert answer.prompt_family == "plain"  # the packaged model is a base model: no chat template
    # Labelled by its path under the sources' shared folder: where the notes live is not in the prompt.
    assert re.search(r"^\[1\] (?:[\w-]+/)*brandt-ro350-manual\.pdf \(page 2\)\n", answer.prompt, re.MULTILINE)
    assert str(SAMPLE_NOTES) not in answer.prompt
    assert answer.prompt.endswith(f"Question: {WARRANTY_QUESTION}\nAnswer:")
    assert "\n" not in answer.answer  # the plain family stops a base model at the end of its line


def test_off_topic_question_is_not_answered_from_nothing(gemma):
    answer = gemma.ask("What is the capital of Peru?")
    assert answer.answer == NO_CONTEXT_ANSWER
    assert answer.sources == []
    assert "first_token_ms" not in answer.timings  # the model was never asked


def test_context_is_fitted_to_the_model_window_with_its_own_tokenizer(sample_index):
    settings, _ = sample_index
    small = settings.model_copy(
        update={"llm": settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 16, "n_ctx": 640})}
    )
    assistant = Assistant(small, k=5)
    answer = assistant.ask(WARRANTY_QUESTION)
    budget = 640 - 16
    assert assistant.count_tokens(answer.prompt) <= budget
    assert 1 <= len(answer.sources) < 5
    # one more source would not have fitted
    assert answer.sources[0].metadata["source"] == WARRANTY_FILE


def test_cli_ask_streams_then_lists_sources(sample_index):
    settings, _ = sample_index
    result = cli(settings, "ask", WARRANTY_QUESTION, "-k", "2", RAG_LLM__MAX_TOKENS="24", RAG_LLM__TEMPERATURE="0")
    assert result.exit_code == 0, result.output
    answer, sources = result.stdout.split("\nSources:\n")
    assert answer.strip()
    assert sources.splitlines()[0].startswith(f"  [1] {display_path(WARRANTY_FILE)} (page 2)  (similarity 0.")


def test_cli_ask_json_has_every_field(sample_index):
    settings, _ = sample_index
    result = cli(settings, "ask", WARRANTY_QUESTION, "--json", "--show-prompt", "-k", "2", RAG_LLM__MAX_TOKENS="24")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {
        "question", "language", "standalone_question", "queries", "answer", "sources", "evidence", "unsupported", "retracted",
        "warnings", "prompt_family", "timings", "prompt",
    }
    assert payload["queries"] == []  # search.queries is 0: the question was searched alone
    assert payload["language"] == "en"
    assert payload["sources"][0]["source"] == WARRANTY_FILE
    assert set(payload["sources"][0]) == {"number", "source", "score", "similarity", "location", "chunk_id"}
    assert payload["sources"][0]["location"] == {"page": 2}
    assert set(payload["timings"]) == {"retrieval_ms", "first_token_ms", "tokens", "tokens_per_s", "total_ms", "evidence_ms"}
    assert payload["timings"]["tokens_per_s"] > 0
    assert payload["prompt"].endswith("\nAnswer:")


def test_show_prompt_prints_the_exact_prompt_before_the_answer(sample_index):
    settings, _ = sample_index
    result = cli(settings, "ask", WARRANTY_QUESTION, "--show-prompt", "--no-stream", "-k", "1", RAG_LLM__MAX_TOKENS="8")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("--- prompt ---\nYou answer questions using only the numbered sources")
    assert f"\nQuestion: {WARRANTY_QUESTION}\nAnswer:\n--- answer ---\n" in result.stdout


def test_model_problems_are_one_line_errors(sample_index, tmp_path):
    settings, _ = sample_index
    missing = cli(settings, "ask", "anything", "--model", str(tmp_path / "nope.gguf"))
    assert missing.exit_code == 1
    assert missing.stderr.strip() == f"Error: Model file {tmp_path / 'nope.gguf'} does not exist; set llm.model_path to a GGUF file."
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("this is not a model")
    broken = cli(settings, "ask", "anything", "--model", str(not_gguf))
    assert broken.exit_code == 1
    assert broken.stderr.startswith(f"Error: llama.cpp cannot load {not_gguf}") and len(broken.stderr.splitlines()) == 1


def test_question_longer_than_the_context_is_refused(sample_index):
    settings, _ = sample_index
    long_question = "Where is the reflow oven warranty? " * 60
    result = cli(settings, "ask", long_question, RAG_LLM__N_CTX="256", RAG_LLM__MAX_TOKENS="64")
    assert result.exit_code == 1
    assert "too long for the model's context window" in result.stderr


@pytest.mark.fast
def test_ask_without_an_index_fails_before_loading_a_model(home):
    result = runner.invoke(app, ["ask", "anything"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: No index at {home / 'index'}. Run `rag ingest PATH` first."


def test_chat_condenses_follow_ups_and_handles_commands(sample_index):
    settings, _ = sample_index
    session = "\n".join(
        [WARRANTY_QUESTION, "/sources", "and what about the door gasket?", "/reset", "/sources", "/bogus", "/exit"]
    )
    result = runner.invoke(
        app, ["chat", "-k", "2"], input=session + "\n",
        env={"RAG_HOME": str(settings.home), "RAG_LLM__MAX_TOKENS": "24", "RAG_LLM__TEMPERATURE": "0"},
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.count("\nSources:\n") == 3  # after each answer, and once for /sources
    assert "(searching for: " in result.stderr  # the follow-up was rewritten with the history
    assert "Conversation forgotten." in result.stderr and "No sources yet." in result.stderr
    assert "Unknown command /bogus" in result.stderr


def test_ctrl_c_stops_the_running_answer_but_not_the_chat(sample_index):
    """A real `rag chat` process, interrupted with SIGINT while it streams an answer."""
    import os
    import select
    import signal
    import subprocess
    import time

    settings, _ = sample_index
    rag_bin = installed_command("rag")
    env = {
        **os.environ,
        "RAG_HOME": str(settings.home),
        # a chat format makes the base model ramble on: plenty of answer to interrupt
        "RAG_LLM__PROMPT_STYLE": "llama2",
        "RAG_LLM__MAX_TOKENS": "600",
        "RAG_LLM__TEMPERATURE": "0",
    }
    chat = subprocess.Popen(
        [rag_bin, "chat", "-k", "1"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=ctrl_c_reaches_it,
    )
    chat.stdin.write(f"{WARRANTY_QUESTION}\n".encode())
    chat.stdin.flush()
    # Wait for the first streamed byte of the answer, however loaded the machine: the point is a
    # Ctrl-C while it streams.
    deadline = time.monotonic() + 600
    streaming = False
    while not streaming and time.monotonic() < deadline:
        streaming = bool(select.select([chat.stdout], [], [], 1)[0] and os.read(chat.stdout.fileno(), 1))
    assert streaming, "the answer did not start streaming within 10 minutes"
    chat.send_signal(signal.SIGINT)
    chat.stdin.write(b"/sources\n/exit\n")
    chat.stdin.flush()
    out, err = chat.communicate(timeout=120)
    assert chat.returncode == 0, err.decode()
    assert "(answer stopped)" in err.decode()
    assert "No sources yet." in err.decode()  # the stopped answer left no half-finished turn behind


def test_chat_on_a_terminal_edits_its_line(sample_index):
    """A real `rag chat` process on a pseudo-terminal: the left arrow moves back in the line typed
    (without line editing it went into the question as ^[[D)."""
    import os
    import pty
    import subprocess

    settings, _ = sample_index
    leader, follower = pty.openpty()
    chat = subprocess.Popen(
        [installed_command("rag"), "chat"], env={**os.environ, "RAG_HOME": str(settings.home)},
        stdin=follower, stdout=follower, stderr=follower, close_fds=True,
    )
    os.close(follower)
    os.write(leader, "/ext\x1b[Di\r".encode())  # "/ext", left, "i": /exit
    os.write(leader, b"\x04")  # Ctrl-D: leaves a chat that did not take the line for /exit
    shown = b""
    with contextlib.suppress(OSError):  # the terminal closes with the process
        while chunk := os.read(leader, 4096):
            shown += chunk
    assert chat.wait(timeout=120) == 0
    assert b"Unknown command" not in shown, shown.decode(errors="replace")
    os.close(leader)


@pytest.mark.fast
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt, on purpose
def test_a_ctrl_c_swallowed_in_a_c_callback_still_stops_the_answer():
    """llama.cpp calls its Python log callback while the model loads, through ctypes, which
    swallows a KeyboardInterrupt raised there: the Ctrl-C must still stop the answer."""
    import ctypes
    import os
    import signal
    import time

    from rag.cli.answers import _stream_answer
    from rag.cli.errors import ctrl_c_noticed

    class TokenStreamFake:
        state: dict = {}

        def __iter__(self):
            yield from ["The answer", " runs on"]

    def press_ctrl_c():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.1)  # the handler runs here, inside the callback

    parents_handler = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with ctrl_c_noticed() as interrupted:
            ctypes.CFUNCTYPE(None)(press_ctrl_c)()  # returns normally: ctypes swallowed the KeyboardInterrupt
            with pytest.raises(KeyboardInterrupt):
                _stream_answer(TokenStreamFake(), show_prompt=False, interrupted=interrupted)
    finally:
        signal.signal(signal.SIGINT, parents_handler)
