"""The prompt selector on real GGUF files llama.cpp loads and generates from (tests/tiny_gguf.py): the
family it reads from each, and a chat template the file carries honoured for a family it does not know."""

from __future__ import annotations

import pytest

from rag.prompting import select_prompt
from tests.unit.test_prompts import EXPECTED, LLAMA2_SEARCH_PROMPT, PLAIN_SEARCH_PROMPT, QA_INPUT, QA_SYSTEM, QA_USER


@pytest.fixture(scope="module")
def tiny_llama_files(tmp_path_factory):
    from tests.tiny_gguf import LLAMA2_CHAT_TEMPLATE, write_tiny_llama_gguf

    folder = tmp_path_factory.mktemp("models")
    return {
        "chat": write_tiny_llama_gguf(
            folder / "tiny-llama-2-chat.gguf",
            name="Tiny Llama 2 Chat",
            chat_template=LLAMA2_CHAT_TEMPLATE,
        ),
        "instruct-by-name": write_tiny_llama_gguf(folder / "tiny-llama-2-instruct.gguf", name="Tiny Llama 2 Instruct"),
        "base": write_tiny_llama_gguf(folder / "tiny-llama-base.gguf", name="Tiny Llama"),
    }


@pytest.mark.parametrize("kind,family", [("chat", "llama2"), ("instruct-by-name", "llama2"), ("base", "plain")])
def test_selector_reads_the_real_gguf_a_text_llm_runs(tiny_llama_files, kind, family, tmp_path):
    from rag.backends import create_llm
    from rag.settings import load_settings

    settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path, llm={"model_path": str(tiny_llama_files[kind])})
    llm = create_llm(settings)
    chosen = select_prompt(llm, "qa")
    assert chosen.family == family
    assert chosen.prompt.format(**QA_INPUT) == (
        EXPECTED["llama2"].replace("{system}", QA_SYSTEM).replace("{user}", QA_USER)
        if family == "llama2"
        else f"{QA_SYSTEM}\n\n{QA_USER}\nAnswer:"
    )
    assert llm.invoke("Question: hi\nAnswer:", max_tokens=4)  # it really generates
    assert select_prompt(llm, "qa", "gemma").family == "gemma"  # the override still wins


def test_a_chat_template_in_the_gguf_is_honoured_even_for_an_unknown_family(tmp_path):
    from rag.backends import create_llm
    from rag.settings import load_settings
    from tests.tiny_gguf import write_tiny_llama_gguf

    phi_style = (
        "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + '<|end|>\\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
    )
    model = write_tiny_llama_gguf(tmp_path / "tiny-phi.gguf", name="Tiny Phi Instruct", chat_template=phi_style)
    settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path, llm={"model_path": str(model)})
    chosen = select_prompt(create_llm(settings), "qa")
    assert chosen.prompt.format(**QA_INPUT) == (
        f"<|system|>\n{QA_SYSTEM}<|end|>\n<|user|>\n{QA_USER}<|end|>\n<|assistant|>\n"
    )


@pytest.mark.parametrize("kind,family", [("chat", "llama2"), ("instruct-by-name", "llama2"), ("base", "plain")])
def test_selector_picks_the_search_queries_form_from_the_real_gguf(tiny_llama_files, kind, family, tmp_path):
    from rag.backends import create_llm
    from rag.query_generation import QueryWriter
    from rag.settings import load_settings

    settings = load_settings(environ={}, cwd=tmp_path, home=tmp_path, llm={"model_path": str(tiny_llama_files[kind])})
    writer = QueryWriter(create_llm(settings))
    prompt, _ = writer.prompt("Where is the key?", 3)
    assert select_prompt(writer.llm, "search_queries").family == family
    assert prompt.to_string() == (LLAMA2_SEARCH_PROMPT if family == "llama2" else PLAIN_SEARCH_PROMPT)
    assert isinstance(writer.reply("Where is the key?", 1), str)  # the tiny model really generates
