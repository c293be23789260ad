"""Every prompt family rendered string by string, and the selector's choice for each kind of model."""

from __future__ import annotations

import pytest
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import HumanMessage, SystemMessage

from rag.backends.families import family_from_gguf_metadata, family_from_model_name
from rag.errors import ConfigError
from rag.prompting import FAMILIES, chat_prompt, select_prompt, text_prompt

QA_SYSTEM = (
    "You answer questions using only the numbered sources below, which come from the user's own documents. "
    "Cite the sources you use by their number, like [1]. "
    "If the sources do not contain the answer, say that the documents do not say, and do not guess."
)
QA_USER = "Sources:\n\n[1] notes.md\nThe key is under the mat.\n\nQuestion: Where is the key?"
CONDENSE_SYSTEM = (
    "You rewrite a follow-up question so that it can be understood without the conversation; you never answer it. "
    "Keep the names, numbers and terms of the conversation that it refers to, and write it in the language of the "
    "follow-up question. Reply with the rewritten question only."
)
CONDENSE_USER = (
    "Example:\nConversation:\nUser: Where is the spare key of the office?\nAssistant: In the grey cabinet by the door [1].\n"
    "Follow-up question: Who has its code?\nStandalone question: Who has the code of the grey cabinet by the office door?\n\n"
    "Conversation:\nUser: Where is the key?\nAssistant: Under the mat.\nFollow-up question: and the spare?\nStandalone question:"
)
QA_INPUT = {"context": "[1] notes.md\nThe key is under the mat.", "question": "Where is the key?"}
CONDENSE_INPUT = {"history": "User: Where is the key?\nAssistant: Under the mat.", "question": "and the spare?"}

EXPECTED = {
    "llama2": "[INST] <<SYS>>\n{system}\n<</SYS>>\n\n{user} [/INST]",
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\n{system}<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "mistral": "[INST] {system}\n\n{user} [/INST]",
    "gemma": "<start_of_turn>user\n{system}\n\n{user}<end_of_turn>\n<start_of_turn>model\n",
    "chatml": "<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{user}<|im_end|>\n<|im_start|>assistant\n",
}


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_qa_prompt_of_each_family(family):
    rendered = text_prompt(family, "qa").format(**QA_INPUT)
    assert rendered == EXPECTED[family].replace("{system}", QA_SYSTEM).replace("{user}", QA_USER)


QUOTES_USER = (
    "Sources:\n\n[1] notes.md\nThe key is under the mat.\n\n"
    "The sentences of the sources that best match the question:\n[1] The key is under the mat.\n\n"
    "Question: Where is the key?"
)
FEWSHOT_USER = (
    "Two examples of answers copied from the sources:\n\n"
    "Sources:\n\n[1] garden/plot.md\nThe shed key hangs on the hook behind the door. The water tap is shared with plot 44.\n\n"
    "Question: Where is the shed key?\nAnswer: On the hook behind the door [1].\n\n"
    "Sources:\n\n[1] car/service.txt\nService booked for 12 May 2024 at the Volvo workshop in Uppsala; the cost is SEK 3,200.\n\n"
    "Question: How much does the car service cost?\nAnswer: SEK 3,200 [1].\n\n"
    "Now the real sources and question.\n\n" + QA_USER
)


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_qa_variants_of_each_family(family):
    quotes = text_prompt(family, "qa_quotes").format(**QA_INPUT, quotes="[1] The key is under the mat.")
    assert quotes == EXPECTED[family].replace("{system}", QA_SYSTEM).replace("{user}", QUOTES_USER)
    fewshot = text_prompt(family, "qa_fewshot").format(**QA_INPUT)
    assert fewshot == EXPECTED[family].replace("{system}", QA_SYSTEM).replace("{user}", FEWSHOT_USER)


def test_qa_variants_share_the_plain_family_answer_line():
    for task_name in ("qa", "qa_quotes", "qa_fewshot"):
        assert text_prompt("plain", task_name).template.endswith("\n\nQuestion: {question}\nAnswer:")
        assert select_prompt(FakeListLLM(responses=[""]), task_name, "plain").first_line_only


SUMMARIZE_SYSTEM = (
    "Summarize the document below for someone who has not read it. "
    "Keep the facts that matter: names, dates, numbers, decisions and open questions. "
    "Write a few plain sentences; do not add anything the document does not say."
)
COMBINE_SYSTEM = (
    "The summaries below each cover one part of the same material, in order. "
    "Combine them into one summary that keeps the facts that matter: names, dates, numbers, decisions and open "
    "questions. Write a few plain sentences; do not add anything the summaries do not say."
)
EXTRACT_SYSTEM = (
    "Extract information from the document below as one JSON value that follows the JSON schema. "
    "Use only what the document says; where it does not say, use null or an empty list. Reply with the JSON only."
)
SCHEMA = '{"type": "object", "properties": {"vendor": {"type": "string"}}}'
BATCH_CASES = {
    "summarize": (SUMMARIZE_SYSTEM, {"source": "a.md", "text": "Alpha."}, "Document: a.md\n\nAlpha.", "Summary:"),
    "combine": (COMBINE_SYSTEM, {"source": "a.md", "text": "One.\n\nTwo."}, "Summaries of a.md:\n\nOne.\n\nTwo.", "Summary:"),
    "extract": (
        EXTRACT_SYSTEM,
        {"schema": SCHEMA, "source": "a.md", "text": "Acme bills 5 EUR.", "feedback": ""},
        f"JSON schema:\n{SCHEMA}\n\nDocument: a.md\n\nAcme bills 5 EUR.",
        "JSON:",
    ),
}


@pytest.mark.parametrize("family", sorted(EXPECTED) + ["plain"])
@pytest.mark.parametrize("task_name", sorted(BATCH_CASES))
def test_batch_job_prompts_of_each_family(family, task_name):
    system, values, user, answer_prefix = BATCH_CASES[task_name]
    rendered = text_prompt(family, task_name).format(**values)
    if family == "plain":
        assert rendered == f"{system}\n\n{user}\n{answer_prefix}"
    else:
        assert rendered == EXPECTED[family].replace("{system}", system).replace("{user}", user)


@pytest.mark.parametrize("language,asked", [("ko", "Korean"), ("zh", "Chinese"), ("ja", "Japanese")])
@pytest.mark.parametrize("task_name", ["summarize", "combine"])
def test_a_summary_is_asked_for_in_its_documents_language(task_name, language, asked):
    system, values, user, answer_prefix = BATCH_CASES[task_name]
    rendered = text_prompt("plain", task_name, language).format(**values)
    assert rendered == f"{system} Write the summary in {asked}.\n\n{user}\n{answer_prefix}"


def test_a_documents_language_is_told_by_its_letters():
    from rag.batch.jobs import text_language

    assert text_language(["# 팀 회의록\n\n새 빌드 서버의 호스트 이름은 `build-seoul-07`입니다."]) == "ko"
    assert text_language(["航班号是 MU5137，酒店是静安区的和平饭店。"]) == "zh"
    assert text_language(["航班號是 CI0104，飯店是信義區的晶華酒店。"]) == "zh-Hant"
    assert text_language(["在宅勤務手当は月額5000円です。"]) == "ja"
    assert text_language(["The oven warranty ends on 4 October 2025.", "Der Ofen ist neu."]) == "en"


def test_an_invalid_extraction_is_shown_to_the_model_on_retry():
    from rag.prompting import task

    assert task("extract")["retry"] == (
        "\n\nYour previous reply was:\n{reply}\nIt is not valid: {problem}. Reply again with corrected JSON only."
    )
    feedback = (
        "\n\nYour previous reply was:\n{\"vendor\": 5}\n"
        "It is not valid: vendor: 5 is not of type 'string'. Reply again with corrected JSON only."
    )
    values = {**BATCH_CASES["extract"][1], "feedback": feedback}
    assert text_prompt("gemma", "extract").format(**values).endswith(
        "Acme bills 5 EUR.\n\nYour previous reply was:\n{\"vendor\": 5}\n"
        "It is not valid: vendor: 5 is not of type 'string'. Reply again with corrected JSON only.<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_condense_prompt_of_each_family(family):
    rendered = text_prompt(family, "condense").format(**CONDENSE_INPUT)
    assert rendered == EXPECTED[family].replace("{system}", CONDENSE_SYSTEM).replace("{user}", CONDENSE_USER)


def test_plain_prompts_end_where_a_base_model_continues():
    assert text_prompt("plain", "qa").format(**QA_INPUT) == f"{QA_SYSTEM}\n\n{QA_USER}\nAnswer:"
    assert (
        text_prompt("plain", "condense").format(**CONDENSE_INPUT)
        == f"{CONDENSE_SYSTEM}\n\n{CONDENSE_USER}\n"  # its own text ends with the label
    )


def test_chat_prompt_is_messages_for_the_server_template():
    messages = chat_prompt("qa").format_messages(**QA_INPUT)
    assert messages == [SystemMessage(content=QA_SYSTEM), HumanMessage(content=QA_USER)]


def test_every_family_file_loads_with_its_stops():
    chosen = {name: select_prompt(FakeListChatModel(responses=[]), "qa", name) for name in FAMILIES}
    assert {name: c.first_line_only for name, c in chosen.items()} == {name: name == "plain" for name in FAMILIES}
    extraction = {name: select_prompt(FakeListChatModel(responses=[]), "extract", name) for name in FAMILIES}
    assert not any(c.first_line_only for c in extraction.values()), "JSON may take several lines"
    assert {name: c.stop for name, c in chosen.items()} == {
        "llama2": ("</s>", "[INST]"),
        "llama3": ("<|eot_id|>", "<|end_of_text|>"),
        "mistral": ("</s>", "[INST]"),
        "gemma": ("<end_of_turn>", "<start_of_turn>"),
        "chatml": ("<|im_end|>", "<|im_start|>"),
        "plain": ("\nQuestion:", "\nSources:", "\nDocument:"),
    }


@pytest.mark.parametrize(
    "metadata,family",
    [
        ({"tokenizer.chat_template": "{{ '<start_of_turn>' + role }}", "general.architecture": "gemma3"}, "gemma"),
        ({"tokenizer.chat_template": "<|start_header_id|>{{ role }}<|end_header_id|>"}, "llama3"),
        ({"tokenizer.chat_template": "{{'<|im_start|>' + message['role']}}"}, "chatml"),
        ({"tokenizer.chat_template": "[INST] <<SYS>>\\n{{ system }}\\n<</SYS>>"}, "llama2"),
        ({"tokenizer.chat_template": "{{ '[INST] ' + content + ' [/INST]' }}"}, "mistral"),
        ({"general.name": "Llama 2 7B Chat", "general.architecture": "llama"}, "llama2"),
        ({"general.name": "Mistral 7B Instruct v0.2", "general.architecture": "llama"}, "mistral"),
        ({"general.name": "Gemma 3 270m", "general.architecture": "gemma3"}, "plain"),  # the packaged base model
        ({"general.name": "Llama 2 7B", "general.architecture": "llama"}, "plain"),
    ],
)
def test_family_from_gguf_metadata(metadata, family):
    assert family_from_gguf_metadata(metadata) == family


@pytest.mark.parametrize(
    "name,family",
    [("llama3.1:8b-instruct", "llama3"), ("mistral:instruct", "mistral"), ("qwen2.5:7b", "chatml"),
     ("gemma2:2b-instruct", "gemma"), ("llama2:7b-chat", "llama2"), ("phi3:mini", "plain")],
)
def test_family_from_model_name(name, family):
    assert family_from_model_name(name) == family


def test_selector_gives_chat_models_messages_and_honours_the_override():
    chat_model = FakeListChatModel(responses=["ok"])
    chosen = select_prompt(chat_model, "qa")
    assert chosen.family == "chat" and chosen.stop == ()
    assert chosen.prompt.format_messages(**QA_INPUT)[0] == SystemMessage(content=QA_SYSTEM)
    forced = select_prompt(chat_model, "qa", "llama2")
    assert forced.family == "llama2"
    assert forced.prompt.format(**QA_INPUT).startswith("[INST] <<SYS>>\n")
    with pytest.raises(ConfigError, match="Unknown prompt_style 'alpaca'"):
        select_prompt(chat_model, "qa", "alpaca")


SEARCH_SYSTEM = "You are an assistant tasked with improving search results."
SEARCH_USER = (
    "Generate THREE search queries that are similar to this question, written in English. "
    "The output should be a numbered list of questions and each should have a question mark at the end:\n\n"
    "Where is the key?"
)
SEARCH_INPUT = {"count": "THREE", "language": "English", "question": "Where is the key?"}
LLAMA2_SEARCH_PROMPT = (
    "[INST] <<SYS>>\nYou are an assistant tasked with improving search results.\n<</SYS>>\n\n"
    "Generate THREE search queries that are similar to this question, written in English. "
    "The output should be a numbered list of questions and each should have a question mark at the end:\n\n"
    "Where is the key? [/INST]"
)
PLAIN_SEARCH_PROMPT = (
    "You are an assistant tasked with improving search results.\n\n"
    "Generate THREE search queries that are similar to this question, written in English. "
    "The output should be a numbered list of questions and each should have a question mark at the end:\n\n"
    "Where is the key?\nSearch queries:\n1."
)


def test_search_queries_prompt_is_the_guides_in_llama_tokens_or_plain():
    assert text_prompt("llama2", "search_queries").format(**SEARCH_INPUT) == LLAMA2_SEARCH_PROMPT
    assert text_prompt("plain", "search_queries").format(**SEARCH_INPUT) == PLAIN_SEARCH_PROMPT
    plain = select_prompt(FakeListLLM(responses=[""]), "search_queries", "plain")
    assert not plain.first_line_only, "the queries come one per line"


@pytest.mark.parametrize("family", sorted(EXPECTED))
def test_search_queries_prompt_of_each_family(family):
    rendered = text_prompt(family, "search_queries").format(**SEARCH_INPUT)
    assert rendered == EXPECTED[family].replace("{system}", SEARCH_SYSTEM).replace("{user}", SEARCH_USER)


def test_search_queries_prompt_asks_for_the_questions_language():
    from rag.query_generation import QueryWriter

    writer = QueryWriter(FakeListLLM(responses=[""]), prompt_style="plain")
    prompt, stop = writer.prompt("대시보드 URL만 출력하려면 어떤 플래그를 붙이나요?", 2)
    assert prompt.to_string() == (
        "You are an assistant tasked with improving search results.\n\n"
        "Generate TWO search queries that are similar to this question, written in Korean. "
        "The output should be a numbered list of questions and each should have a question mark at the end:\n\n"
        "대시보드 URL만 출력하려면 어떤 플래그를 붙이나요?\nSearch queries:\n1."
    )
    assert stop == ["\nQuestion:", "\nSources:", "\nDocument:"]
    assert writer.prompt("Where is the key?", 3)[0].to_string() == PLAIN_SEARCH_PROMPT



def test_the_web_page_has_every_word_in_every_language():
    from rag.languages import page_texts

    words = page_texts()
    assert set(words) == {"en", "ko", "zh", "zh-Hant", "ja"}
    for language, texts in words.items():
        for part in ("page", "location"):
            assert set(texts[part]) == set(words["en"][part]) and all(texts[part].values()), (language, part)
    assert words["ko"]["page"]["signed_in"].format(name="reader") == "reader(으)로 로그인함"
