"""Models other apps downloaded, asked with: `rag ask --model ollama:NAME` on the sample index runs
the tiny GGUF of tests/unit/test_local_models.py's Ollama store with llama.cpp, and names what the
store has when the model is not there."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from rag.cli import app
from tests.unit import test_local_models

runner = CliRunner()
# The fixture itself: the four stores as their apps write them.
stores = test_local_models.stores


def test_a_missing_model_lists_what_the_store_has(stores, sample_index):
    env = stores["env"] | {"RAG_HOME": str(sample_index[0].home)}
    result = runner.invoke(app, ["ask", "Anything?", "--model", "ollama:llama3.2"], env=env)
    assert result.exit_code == 1
    assert result.stderr == (
        f"Error: No Ollama model 'llama3.2' in {stores['ollama']}; it has ollama:hf.co/TinyOrg/tiny-GGUF:Q4_K_M, "
        "ollama:tiny:latest.\n"
    )


def test_ask_runs_an_ollama_model_with_llama_cpp_without_ollama(stores, sample_index):
    settings, _ = sample_index
    env = stores["env"] | {"RAG_HOME": str(settings.home), "RAG_LLM__MAX_TOKENS": "4", "RAG_LLM__LLAMACPP__N_THREADS": "1"}
    question = "When does the warranty of the Brandt RO-350 reflow oven end?"
    result = runner.invoke(app, ["ask", question, "--model", "ollama:tiny:latest", "--json", "--show-prompt", "-k", "1"], env=env)
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["answer"].strip()
    # The LLaMA 2 template in the blob's header formatted the prompt: the file ran, not the packaged model.
    assert answer["prompt"].startswith("[INST] <<SYS>>\n")
