"""Answers people can check: quoted evidence, the grounding check, the relevance gate and the
answer evaluation, on the real index of the sample notes with the real embedding model.

Where a test needs an answer it can predict, langchain-core's own fake LLM writes it; the rest of
the pipeline (retrieval, fitting, evidence, grounding) is the real one.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from langchain_core.language_models.fake import FakeStreamingListLLM
from typer.testing import CliRunner

from ingest.scripts import one_line
from ingest.text import fold
from rag.answer_eval import contains_answer, evaluate_answers, is_declined, load_qa, token_f1
from rag.answering import Assistant, resolves_follow_up
from rag.chain import NO_CONTEXT_ANSWER, IndexRetriever
from rag.cli import app
from rag.errors import UsageError
from rag.evidence import quote_evidence, sentence_spans
from rag.grounding import check_grounding
from rag.retrieval import embed_texts
from tests.conftest import REPO, SAMPLE_NOTES

runner = CliRunner()
WARRANTY_QUESTION = "When does the warranty of the Brandt RO-350 reflow oven end?"
MANUAL = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")


def retriever(settings, k: int = 5) -> IndexRetriever:
    return IndexRetriever.from_settings(settings, k)


def evidence_for(settings, question: str, answer: str = ""):
    sources = retriever(settings).invoke(question)
    return sources, quote_evidence(question, answer, sources, lambda texts: embed_texts(texts, settings))


def fake_assistant(settings, *answers: str) -> Assistant:
    return Assistant(settings, llm=FakeStreamingListLLM(responses=list(answers)), k=3)


@pytest.mark.fast
def test_sentences_join_wrapped_lines_and_split_list_items():
    body = "The warranty is valid for 24 months\nfrom delivery. It covers parts.\n- Item one: 5\n- Item two: 6\n\nSee:\nA new paragraph."
    sentences = [body[start:end] for start, end in sentence_spans(body)]
    assert sentences == [  # "See:" is too short to quote alone
        "The warranty is valid for 24 months\nfrom delivery.", "It covers parts.", "- Item one: 5", "- Item two: 6",
        "A new paragraph.",
    ]


@pytest.mark.fast
def test_a_code_block_is_one_sentence_with_the_sentence_that_introduces_it():
    body = (
        "Create the cluster as follows.\n\n```shell\nkind create cluster --name psa-ns-level\n```\n"
        "Then label it:\n```yaml\n- name: web\n  image: nginx:1.25\n```\nDone here."
    )
    sentences = [" ".join(body[start:end].split()) for start, end in sentence_spans(body)]
    assert sentences == [
        "Create the cluster as follows. ```shell kind create cluster --name psa-ns-level ```",
        "Then label it: ```yaml - name: web image: nginx:1.25 ```",
        "Done here.",
    ]


@pytest.mark.fast
def test_a_body_that_starts_inside_a_code_block_or_at_its_closing_fence_is_read_as_such():
    inside = "  --from-file=redis-config\n```\nThe ConfigMap holds the file."
    assert [" ".join(inside[s:e].split()) for s, e in sentence_spans(inside, in_block=True)] == [
        "--from-file=redis-config ```", "The ConfigMap holds the file.",
    ]
    closing = "```\n\nIn the output above, no warning is shown.\nNext step."
    assert [closing[s:e] for s, e in sentence_spans(closing)] == ["In the output above, no warning is shown.", "Next step."]


@pytest.mark.parametrize(
    ("question", "expected_source", "accepted"),
    [
        (WARRANTY_QUESTION, "work/vendors/brandt-ro350-manual.pdf", "4 October 2025"),
        ("How many days of paid vacation do employees get?", "work/hr/onboarding-guide.docx", "28 days"),
        ("Which VLAN must lab equipment use?", "work/intranet/office-it-essentials.html", "240"),
        ("What baud rate does the Tern-4 service port use in the humidity calibration script?", "work/tools/calibrate.py", "57600"),
    ],
)
def test_evidence_quotes_the_answer_verbatim_from_a_source_whatever_the_model_said(sample_index, question, expected_source, accepted):
    settings, _ = sample_index
    sources, evidence = evidence_for(settings, question, answer="I think it was 12/28/2024.")  # a wrong answer
    assert evidence and contains_answer(" ".join(quote.text for quote in evidence), [accepted])
    for quote in evidence:
        cited = sources[quote.source_number - 1]
        assert quote.source == cited.metadata["source"]
        assert fold(quote.text) in fold(cited.page_content)  # verbatim, up to whitespace
    assert any(quote.source == str(SAMPLE_NOTES / expected_source) for quote in evidence)


def test_evidence_quotes_the_sentence_a_wrong_answers_fact_comes_from_beside_the_one_that_answers(sample_index):
    settings, _ = sample_index
    # The small test model's answer in a CI run: the delivery date taken for the warranty's end.
    wrong = fake_assistant(settings, "The warranty of the RO-350 reflow oven ends on 4 October 2023. [2]").ask(WARRANTY_QUESTION)
    assert ["4 October 2023" in quote.text for quote in wrong.evidence] == [True, False]
    assert "24 months from the delivery" in wrong.evidence[1].text
    right = fake_assistant(settings, "The warranty ends on 4 October 2025 [1].").ask(WARRANTY_QUESTION)
    assert len(right.evidence) == 1 and "24 months from the delivery" in right.evidence[0].text


def test_evidence_locations_are_the_page_the_heading_and_the_lines_of_the_quote(sample_index):
    settings, _ = sample_index
    _, pdf = evidence_for(settings, WARRANTY_QUESTION)
    assert pdf[0].source == MANUAL and pdf[0].location == {"page": 2}

    _, markdown = evidence_for(settings, "How much is the annual fee for the allotment in 2024?")
    quote = next(q for q in markdown if q.source.endswith("allotment-plan-2024.md"))
    assert quote.location["heading"].startswith("Allotment Plan 2024")
    assert quote_is_in_its_lines(quote) and "SEK 1,450" in quote.text

    _, code = evidence_for(settings, "What baud rate does the Tern-4 service port use in the humidity calibration script?")
    quote = next(q for q in code if "57600" in q.text)
    assert quote_is_in_its_lines(quote) and quote.location["end_line"] > quote.location["start_line"]


def quote_is_in_its_lines(quote) -> bool:
    """The quote lies in its line span, and the span's first and last lines each hold part of it."""
    lines = Path(quote.source).read_text().splitlines()[quote.location["start_line"] - 1 : quote.location["end_line"]]
    text = fold(quote.text)
    if len(lines) == 1:
        return text in fold(lines[0])
    return text in fold(" ".join(lines)) and fold(lines[0]).split()[-1] in text and fold(lines[-1]).split()[0] in text


def test_grounding_flags_a_planted_wrong_number_and_passes_the_right_one(sample_index):
    settings, _ = sample_index
    sources = [doc.page_content for doc in retriever(settings).invoke(WARRANTY_QUESTION)]
    right = check_grounding("The warranty ends on 4 October 2025 [1].", sources, WARRANTY_QUESTION)
    assert right.checked == ["4 October 2025"] and right.unsupported == []
    also_right = check_grounding("It ends on 2025-10-04, 24 months after delivery.", sources, WARRANTY_QUESTION)
    assert also_right.unsupported == []
    wrong = check_grounding("It ended on 12/28/2024, see [7].", sources, WARRANTY_QUESTION)
    assert wrong.unsupported == ["12/28/2024", "[7]"] and wrong.all_unsupported
    made_up = check_grounding("Call Siemens Service on 0800 123 456 and quote PO-2023-0878.", sources, WARRANTY_QUESTION)
    assert made_up.unsupported == ["PO-2023-0878", "0800", "123 456", "Siemens Service"]


@pytest.mark.fast
def test_the_numbers_of_an_answers_own_list_are_no_facts_to_check():
    # The default model's steps for zh17, over sources that hold no 3.
    answer = "步骤如下：\n\n1. 检查 ConfigMap：\n2) 查看 Pod 的 3 个事件\n   3. **重启 Redis Pod**（port 6379）"
    found = check_grounding(answer, ["kubectl apply -f redis-pod.yaml 会重新创建 Pod，端口 6379。"])
    assert found.checked == ["3", "6379", "ConfigMap", "Pod", "Redis Pod"] and found.unsupported == ["3", "ConfigMap"]


@pytest.mark.fast
def test_each_line_of_a_code_block_in_an_answer_must_be_in_a_source():
    # The default model's reply to ja13: a command no source has, in a block, and one copied.
    sources = ["`minikube addons list` で有効なアドオンを確認します。", "```shell\nkubectl get pods\nNAME   READY\n```"]
    answer = (
        "以下のコマンドを実行します：\n\n```shell\n# 一覧を表示する\nkubectl get addons --all-namespaces\n```\n\n"
        "```\nkubectl get pods\nNAME   READY\n```\n\nインラインの ```minikube addons list``` も。"
    )
    found = check_grounding(answer, sources)
    assert found.checked == ["kubectl get addons --all-namespaces", "kubectl get pods", "NAME   READY", "minikube addons list"]
    assert found.unsupported == ["kubectl get addons --all-namespaces"]


@pytest.mark.fast
def test_a_command_or_path_with_a_placeholder_is_held_where_the_text_around_it_is():
    # The default model's reply to ko10: the right file, then the same path as a template.
    sources = ["노드에 적재된 프로파일은 `/sys/kernel/security/apparmor/profiles` 파일에 나열된다.", "kubectl logs 명령으로 로그를 본다."]
    answer = (
        "`/sys/kernel/security/apparmor/profiles` 파일을 보면 됩니다. 프로파일 이름은 "
        "`/sys/kernel/security/apparmor/profiles/<profile_name>` 형식입니다. `kubectl logs <pod-name>`, `--name=<name>`, "
        "`/etc/apparmor.d/<profile_name>`."
    )
    found = check_grounding(answer, sources)
    assert found.unsupported == ["--name=<name>", "/etc/apparmor.d/<profile_name>"]


def test_an_answer_carries_its_evidence_and_its_unsupported_facts(sample_index):
    settings, _ = sample_index
    answer = fake_assistant(settings, "It ended on 12/28/2024.").ask(WARRANTY_QUESTION)
    assert answer.unsupported == ["12/28/2024"] and answer.grounding.all_unsupported
    assert "4 October 2025" in answer.evidence[0].text and answer.evidence[0].location == {"page": 2}
    payload = answer.to_dict()
    assert payload["unsupported"] == ["12/28/2024"]
    assert payload["evidence"][0] == {
        "text": answer.evidence[0].text, "source_number": 1, "source": MANUAL, "location": {"page": 2},
        "score": round(answer.evidence[0].score, 4),
    }


def test_cli_shows_evidence_and_the_grounding_warning_under_the_answer(sample_index, monkeypatch):
    settings, _ = sample_index
    ask_module = importlib.import_module("rag.answering")
    monkeypatch.setattr(ask_module, "create_llm", lambda _: FakeStreamingListLLM(responses=["Ask Henrik Olsson, on 12/28/2024."]))
    question = "Who is the HR partner to ask about the onboarding guide?"  # asks for no date: a warning, not a retraction
    result = runner.invoke(app, ["ask", question, "-k", "2"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    answer, rest = result.stdout.split("\nEvidence:\n")
    assert answer == "Ask Henrik Olsson, on 12/28/2024.\n"
    evidence, sources = rest.split("\nSources:\n")
    assert evidence.splitlines()[0].startswith('  [1] "')
    assert evidence.splitlines()[-1] == (
        "Warning: nothing this answer states is in its sources (12/28/2024, Henrik Olsson); do not rely on it, read the evidence."
    )
    assert sources.startswith("  [1] ")


def test_cli_ends_an_answer_whose_asked_for_fact_no_source_has_by_saying_the_documents_do_not_say_it(sample_index, monkeypatch):
    settings, _ = sample_index
    ask_module = importlib.import_module("rag.answering")
    monkeypatch.setattr(ask_module, "create_llm", lambda _: FakeStreamingListLLM(responses=["It ended on 12/28/2024."]))
    result = runner.invoke(app, ["ask", WARRANTY_QUESTION, "-k", "2"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    answer, rest = result.stdout.split("\nEvidence:\n")
    assert answer == (
        "It ended on 12/28/2024.\n\n"
        "The documents do not say this: 12/28/2024 is in none of the sources, so do not rely on this answer.\n"
    )
    evidence, _ = rest.split("\nSources:\n")
    first = evidence.splitlines()[0]
    assert first.startswith('  [1] "') and "4 October 2025" in first and first.endswith('" (page 2)')
    assert "Warning" not in evidence and "Not in the sources" not in evidence


@pytest.mark.parametrize("question,answer,retracted", [
    (WARRANTY_QUESTION, "The warranty ends on 4 October 2025 [1].", []),
    ("How many days of paid vacation do employees get?", "Employees get 35 days of paid vacation [1].", ["35"]),
    ("How many days of paid vacation do employees get?", "Employees get 28 days of paid vacation [1].", []),
    ("Which VLAN must lab equipment use?", "Lab equipment uses VLAN 240 [1].", []),  # asks for no kind
])
def test_an_answer_is_retracted_only_when_its_asked_for_fact_is_in_no_source(sample_index, question, answer, retracted):
    settings, _ = sample_index
    stream = fake_assistant(settings, answer).stream(question)
    streamed = "".join(stream)
    result = stream.answer
    assert result.retracted == retracted and streamed == result.answer
    if retracted:
        assert result.answer == f"{answer}\n\nThe documents do not say this: {retracted[0]} is in none of the sources, so do not rely on this answer."
        assert is_declined(result.answer) and result.to_dict()["retracted"] == retracted
    else:
        assert result.answer == answer and not is_declined(result.answer)


@pytest.mark.fast
def test_an_answer_that_is_only_a_sources_number_gets_that_sources_sentence(sample_index):
    settings, _ = sample_index
    question = "Which number do I call for the security company if I forget my badge after 17:00?"
    stream = fake_assistant(settings, "[1]").stream(question)
    streamed = "".join(stream)
    quote = stream.answer.evidence[0]
    assert quote.source_number == 1 and "018-555 0199" in quote.text
    assert streamed == stream.answer.answer == (
        f"[1]\n\nThe model answered only with a source's number; that source says: [1] {quote.text}"
    )
    assert not is_declined(stream.answer.answer)
    answered = fake_assistant(settings, "Call 018-555 0199 [1].").ask(question)
    assert answered.answer == "Call 018-555 0199 [1]."


@pytest.mark.fast
def test_a_reply_that_only_repeats_the_question_gets_the_sentence_that_best_matches_it(sample_index):
    settings, _ = sample_index
    question = "Which number do I call for the security company if I forget my badge after 17:00?"
    stream = fake_assistant(settings, question).stream(question)
    streamed = "".join(stream)
    quote = stream.answer.evidence[0]
    assert "018-555 0199" in quote.text
    assert streamed == stream.answer.answer == (
        f"{question}\n\nThe model repeated the question instead of answering it; the sentence of the sources that best "
        f"matches it: [{quote.source_number}] {quote.text}"
    )
    assert not is_declined(stream.answer.answer)


def test_gate_answers_a_keyword_only_question_and_declines_an_off_topic_one(sample_index):
    settings, _ = sample_index
    keyword_only = "What is the part number of the flux filter cartridge?"
    sources = retriever(settings).invoke(keyword_only)
    assert sources, "the keyword index finds the page although no chunk's cosine reaches min_score"
    assert max(doc.metadata["similarity"] for doc in sources) < settings.search.min_score
    assert any("BTS-FF-0412" in doc.page_content for doc in sources)
    assistant = fake_assistant(settings, "BTS-FF-0412 [1]", "never asked")
    assert assistant.ask(keyword_only).answer == "BTS-FF-0412 [1]"
    declined = assistant.ask("What is the capital of Peru?")
    assert declined.answer == NO_CONTEXT_ANSWER and declined.sources == [] and declined.evidence == []


def test_a_question_about_a_code_or_name_no_source_mentions_is_declined_without_the_model(sample_index):
    settings, _ = sample_index
    assistant = fake_assistant(settings, "It ends on 4 October 2025 [1].")
    unknown_model = assistant.ask("When does the warranty of the Brandt RO-450 reflow oven end?")
    assert unknown_model.answer == "None of the passages found mentions RO-450, so I will not guess."
    assert unknown_model.sources and "first_token_ms" not in unknown_model.timings  # found passages, asked no model
    assert assistant.ask(WARRANTY_QUESTION).answer == "It ends on 4 October 2025 [1]."  # the model it names is there


def test_a_name_the_knowledge_base_holds_outside_the_passages_found_is_no_reason_to_decline(sample_index):
    settings, _ = sample_index
    question = "When does the warranty of the Brandt RO-350 reflow oven end, and should I tell Helena Borg?"
    assistant = Assistant(settings, llm=FakeStreamingListLLM(responses=["It ends on 4 October 2025 [1]."]), k=1)
    answer = assistant.ask(question)
    assert "Helena Borg" not in answer.sources[0].page_content  # only the onboarding guide names her
    assert answer.answer == "It ends on 4 October 2025 [1]."
    made_up = assistant.ask("When does the warranty of the Brandt RO-350 reflow oven end, and should I tell Henrik Olsson?")
    assert made_up.answer == "None of the passages found mentions Henrik Olsson, so I will not guess."


def test_the_gate_keeps_every_answerable_question_of_the_qa_set_and_declines_the_off_topic_ones(sample_index):
    settings, _ = sample_index
    items = load_qa(REPO / "data" / "sample-notes-qa.jsonl")
    gate = retriever(settings)
    declined = [item.id for item in items if item.answerable and not gate.invoke(item.question)]
    assert declined == []
    off_topic = ["What is the capital of Peru?", "How many moons does Mars have?", "Who wrote Moby-Dick?"]
    assert [question for question in off_topic if gate.invoke(question)] == []


@pytest.mark.fast
def test_answer_metrics_by_hand():
    assert token_f1("It ends on 4 October 2025.", ["4 October 2025"]) == pytest.approx(2 * (3 / 6) * 1 / (3 / 6 + 1))
    assert token_f1("no idea", ["4 October 2025"]) == 0.0
    assert contains_answer("Port  8883\n(TLS)", ["port 8883"])
    assert is_declined("The documents do not say.") and is_declined(NO_CONTEXT_ANSWER) and not is_declined("28 days.")
    assert is_declined("None of the passages found mentions RO-450, so I will not guess.")


def test_eval_answers_on_a_hand_made_qa_set_gives_hand_computed_figures(sample_index, tmp_path):
    settings, _ = sample_index
    qa = tmp_path / "qa.jsonl"
    qa.write_text(
        "\n".join(
            json.dumps(item)
            for item in [
                {"id": "a", "question": WARRANTY_QUESTION, "answers": ["4 October 2025"], "source": "work/vendors/brandt-ro350-manual.pdf"},
                {"id": "b", "question": "How many days of paid vacation do employees get?", "answers": ["28 days"], "source": "work/hr/onboarding-guide.docx"},
                {"id": "c", "question": "What is the booking reference for the cabin in Reine?", "answers": ["RSH-55921"], "source": "personal/travel/lofoten-2024.md"},
                {"id": "e", "question": "Who is the HR partner to ask about the onboarding guide?", "answers": ["Helena Borg"], "source": "work/hr/onboarding-guide.docx"},
                {"id": "d", "question": "What is the capital of Peru?", "answers": [], "source": None},
            ]
        )
        + "\n"
    )
    # right; a made-up number for "how many" (rag retracts it); declined although answerable; wrong
    # with a made-up name (flagged, not retracted: a name is not what "who" is checked for); d never
    # reaches the model
    assistant = fake_assistant(
        settings, "It ends on 4 October 2025 [1].", "93 days of paid vacation.", "The documents do not say.", "Ask Henrik Olsson [1]."
    )
    report = evaluate_answers(load_qa(qa), assistant, SAMPLE_NOTES)
    assert (report.questions, report.answerable, report.unanswerable) == (5, 4, 1)
    assert report.accuracy == pytest.approx(1 / 4)
    # token F1: 3 of 6 answer words against all 3 gold words; the rest nothing
    assert report.f1 == pytest.approx((2 * 0.5 * 1 / 1.5) / 4)
    assert report.gold_cited == 1.0
    assert report.answered_when_answerable == pytest.approx(2 / 4)
    assert report.declined_when_unanswerable == 1.0
    assert report.flagged_when_wrong == 1.0  # "Henrik Olsson" is in no source
    assert report.flagged_when_right == 0.0
    by_id = {result.id: result for result in report.results}
    assert by_id["b"].unsupported == ["93"] and by_id["b"].declined and not by_id["b"].correct
    assert by_id["c"].declined and by_id["d"].answer == NO_CONTEXT_ANSWER
    assert by_id["e"].unsupported == ["Henrik Olsson"] and not by_id["e"].declined
    assert report.evidence_accuracy == 1.0


def test_eval_answers_says_a_share_it_had_nothing_to_count_in_is_none_in_valid_json(sample_index, tmp_path, monkeypatch):
    settings, _ = sample_index
    ask_module = importlib.import_module("rag.answering")
    monkeypatch.setattr(ask_module, "create_llm", lambda _: FakeStreamingListLLM(responses=["It ends on 4 October 2025 [1]."]))
    qa = tmp_path / "qa.jsonl"  # one answerable question, answered right: no unanswerable one, no wrong answer
    qa.write_text(json.dumps({"id": "a", "question": WARRANTY_QUESTION, "answers": ["4 October 2025"]}) + "\n")
    env = {"RAG_HOME": str(settings.home)}
    result = runner.invoke(app, ["eval", "--answers", str(qa), str(SAMPLE_NOTES), "--json", "-k", "3"], env=env)
    assert result.exit_code == 0, result.output

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    report = json.loads(result.stdout, parse_constant=refuse)
    assert report["accuracy"] == 1.0
    assert report["declined_when_unanswerable"] is None and report["flagged_when_wrong"] is None
    result = runner.invoke(app, ["eval", "--answers", str(qa), str(SAMPLE_NOTES), "-k", "3"], env=env)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    # Without a folder, the knowledge base asked is the configured one, or --collection.
    elsewhere = {**env, "RAG_COLLECTION": "nothing-here"}
    asked = runner.invoke(app, ["eval", "--answers", str(qa), "--collection", settings.collection, "--json", "-k", "3"], env=elsewhere)
    assert asked.exit_code == 0, asked.output
    assert json.loads(asked.stdout)["accuracy"] == 1.0
    assert "answer accuracy:            1.000" in lines
    assert "declined when unanswerable: -" in lines and "wrong answers flagged:      -" in lines


@pytest.mark.fast
def test_a_blank_question_is_refused_before_the_model_loads(sample_index, monkeypatch):
    settings, _ = sample_index
    with pytest.raises(UsageError, match=r"^The question is empty: ask something about your documents\.$"):
        fake_assistant(settings, "unused").stream(" \n")
    ask_module = importlib.import_module("rag.answering")
    monkeypatch.setattr(ask_module, "create_llm", lambda _: pytest.fail("the model was loaded"))
    result = runner.invoke(app, ["ask", "  "], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 2 and result.stderr == "Error: The question is empty: ask something about your documents.\n"


@pytest.mark.fast
def test_bad_qa_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "qa.jsonl"
    bad.write_text('{"id": "a", "question": "q", "answers": ["x"]}\nnot json\n')
    with pytest.raises(UsageError, match=r"qa.jsonl, line 2 is not JSON"):
        load_qa(bad)
    bad.write_text('{"id": "a", "question": "q", "answers": "x"}\n')
    with pytest.raises(UsageError, match=r'"answers" must be a list of strings'):
        load_qa(bad)
    bad.write_text('{"id": "a", "question": "q", "answer": ["x"]}\n')  # a typo would make every question unanswerable
    with pytest.raises(UsageError, match=r'qa.jsonl, line 1: "answers" is missing: list the accepted answers, or \[\]'):
        load_qa(bad)
    result = runner.invoke(app, ["eval", "--answers", str(tmp_path / "missing.jsonl")], env={"RAG_HOME": str(tmp_path)})
    assert result.exit_code == 2 and result.stderr.startswith("Error: Cannot read the QA file")


def test_cli_eval_answers_with_the_real_model(sample_index, tmp_path):
    settings, _ = sample_index
    qa = tmp_path / "qa.jsonl"
    lines = (REPO / "data" / "sample-notes-qa.jsonl").read_text().splitlines()
    qa.write_text("\n".join([lines[0], lines[-1]]) + "\n")  # the warranty question and an unanswerable one
    result = runner.invoke(
        app, ["eval", "--answers", str(qa), str(SAMPLE_NOTES), "--json", "-v", "-k", "3"],
        env={"RAG_HOME": str(settings.home), "RAG_LLM__MAX_TOKENS": "32"},
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["questions"], report["answerable"], report["unanswerable"]) == (2, 1, 1)
    assert report["gold_cited"] == 1.0 and report["evidence_accuracy"] == 1.0
    assert [r["id"] for r in report["results"]] == ["q01", json.loads(lines[-1])["id"]]
    assert report["latency_p50_ms"] > 0
    # As text, one line per question, whatever lines its answer has (a retraction's, a list's).
    verbose = runner.invoke(
        app, ["eval", "--answers", str(qa), str(SAMPLE_NOTES), "-v", "-k", "3"],
        env={"RAG_HOME": str(settings.home), "RAG_LLM__MAX_TOKENS": "32"},
    )
    assert verbose.exit_code == 0, verbose.output
    rows = [line for line in verbose.stdout.splitlines() if line[:5] in ("ok   ", "decl ", "---- ", "ans? ")]
    assert [row.split()[1] for row in rows] == ["q01", json.loads(lines[-1])["id"]]
    assert all(one_line(result["answer"])[:60] in row for row, result in zip(rows, report["results"]))


@pytest.mark.fast
def test_a_follow_up_rewrite_is_used_only_when_it_names_something_from_the_conversation():
    history = [("Which VLAN must lab equipment use?", "VLAN 240.")]
    assert resolves_follow_up("Which network must lab equipment register for?", "and what must I register?", history)
    assert not resolves_follow_up("What must I register?", "and what must I register?", history)  # repeated
    assert not resolves_follow_up("VLAN 240.", "and what must I register?", history)  # an answer, not a question
    assert not resolves_follow_up("Lab equipment uses VLAN 240", "and what must I register?", history)


@pytest.mark.fast
def test_a_follow_up_whose_letters_do_not_say_which_chinese_is_answered_in_the_conversations():
    from rag.answering import follow_up_language

    history = [("StatefulSet 的 Pod 名稱是怎麼決定的？", "由 StatefulSet 的名稱加上序號決定 [1]。")]
    rewritten = "StatefulSet 的 Service 名稱是怎麼決定的？"
    # 那 Service 呢？ is written alike in simplified and traditional Chinese: the rewrite is taken all the same.
    assert resolves_follow_up(rewritten, "那 Service 呢？", history)
    assert follow_up_language("那 Service 呢？", rewritten) == "zh-Hant"
    assert follow_up_language("那 Service 呢？", None) is None  # the chain answers in its sources' Chinese
    assert follow_up_language("那这个呢？", rewritten) == "zh"  # its own letters say simplified
    assert follow_up_language("그럼 Service는요?", "What decides the name of a StatefulSet's Service?") == "ko"


@pytest.mark.fast
@pytest.mark.parametrize("first,answer,follow_up,rewritten,kept", [
    # The default model's rewrites and answers (it often answers instead of rewriting).
    ("Cassandra 教程中，启动 Minikube 时要给多少内存？", "2048MB", "那 CPU 要几个？", "Cassandra 教程中，启动 Minikube 时要给几个 CPU？", True),
    ("Cassandra 教程中，启动 Minikube 时要给多少内存？", "2048MB", "那 CPU 要几个？", "CPU 要 4 核心。", False),
    ("ZooKeeperのチュートリアルで、アンサンブルのサーバーはいくつですか？", "3", "それらのサーバーが同じノードに置かれないようにするには、どの設定を使いますか？",
     "ZooKeeperのアンサンブルのサーバーが同じノードに置かれないようにするには、どの設定を使いますか？", True),
    ("카산드라 튜토리얼에서 Minikube는 메모리를 얼마나 주고 시작하나요?", "2048MB로 시작합니다.", "그럼 CPU는 몇 개인가요?",
     "카산드라 튜토리얼에서 Minikube는 CPU를 몇 개로 시작하나요?", True),
    # A rewrite in another language than the follow-up's would turn the answer's language too.
    ("ZooKeeper 튜토리얼에서 앙상블의 서버는 몇 개인가요?", "3개입니다.", "그 서버들이 같은 노드에 놓이지 않게 하려면 어떤 설정을 쓰나요?",
     "Who has the code of the ZooKeeper server?", False),
])
def test_a_follow_up_rewrite_in_chinese_japanese_or_korean_is_kept_in_its_language(first, answer, follow_up, rewritten, kept):
    assert resolves_follow_up(rewritten, follow_up, [(first, answer)]) is kept


def test_chat_searches_the_last_question_with_a_follow_up_the_model_could_not_rewrite(sample_index):
    settings, _ = sample_index
    assistant = fake_assistant(settings, "VLAN 240 is for lab equipment.", "Register the MAC address [1].")
    stream = assistant.stream("and what must I register first?", [("Which VLAN must lab equipment use?", "VLAN 240.")])
    list(stream)
    assert stream.standalone_question == "Which VLAN must lab equipment use? and what must I register first?"
    assert stream.answer.answer == "Register the MAC address [1]."


def test_a_follow_up_is_answered_in_its_own_language_though_searched_with_the_question_before(sample_index):
    from rag.languages import texts

    settings, _ = sample_index
    assistant = fake_assistant(settings, "VLAN 240 is for lab equipment.", "先登记 MAC 地址 [1]。")
    stream = assistant.stream("那么需要先登记什么？", [("랩 장비는 어떤 VLAN을 써야 하나요?", "VLAN 240.")])
    list(stream)
    assert stream.standalone_question == "랩 장비는 어떤 VLAN을 써야 하나요? 那么需要先登记什么？"  # read as Korean
    assert stream.answer.language == "zh" and texts("zh").qa_system in stream.answer.prompt


def test_a_copy_of_a_document_elsewhere_does_not_hide_its_sentences(tmp_path):
    """A page header recurs on every page of a file and is left out; a sentence recurring because
    the same file was ingested from two folders is the evidence all the same (quoted once)."""
    import shutil

    import rag
    from tests.conftest import make_settings

    for folder in ("a", "b"):
        (tmp_path / "docs" / folder).mkdir(parents=True)
        shutil.copy2(MANUAL, tmp_path / "docs" / folder / "manual.pdf")
    settings = make_settings(tmp_path / "home")
    rag.ingest([tmp_path / "docs"], settings)
    sources, evidence = evidence_for(settings, WARRANTY_QUESTION)
    assert {Path(doc.metadata["source"]).parent.name for doc in sources[:2]} == {"a", "b"}
    assert "4 October 2025" in evidence[0].text
    assert len({fold(quote.text) for quote in evidence}) == len(evidence)
    assert not any(quote.text.startswith("Brandt RO-350 Benchtop Reflow Oven - Operator Manual") for quote in evidence)


def test_an_answer_that_repeats_the_prompts_quotes_first_keeps_only_its_answer(sample_index):
    settings, _ = sample_index
    echoed = (
        "The sentences of the sources that best match the question are:\n\n"
        "[1] Lab equipment and test devices must use the separate network LQ-Lab-IoT, VLAN 240.\n\n"
        "Therefore, you must register the device's MAC address with the helpdesk [1]."
    )
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    chat_model = FakeListChatModel(responses=[echoed])  # a chat model's answer is not cut at its first line
    answer = Assistant(settings, llm=chat_model, k=3).ask("What must I register for VLAN 240 first?")
    assert answer.answer == "Therefore, you must register the device's MAC address with the helpdesk [1]."


@pytest.mark.fast
@pytest.mark.parametrize("step", [1, 4, 1000])
@pytest.mark.parametrize("generated,kept", [
    ("The sentences of the sources that best match the question are:\n[1] A.\n[2] B.\n\nIt is B [2].", "It is B [2]."),
    ("질문과 가장 잘 맞는 출처의 문장:\n[1] 다음 명령어를 실행한다.\n\n`minikube stop`을 실행합니다.", "`minikube stop`을 실행합니다."),
    ("资料中与问题最相符的句子：\n[1] 使用端口 8080。\n端口是 8080 [1]。", "端口是 8080 [1]。"),
    ("質問に最もよく合う出典の文：\n\n[1] ポートは8080です。\n\nポートは8080です。", "ポートは8080です。"),
    ("The sentences are short [1].", "The sentences are short [1]."),
    ("[1] says the port is 8080.", "[1] says the port is 8080."),
    ("The sentences of the sources that best match the question:\n[1] Only a quote.", "The sentences of the sources that best match the question:\n[1] Only a quote."),
])
def test_the_prompts_quotes_header_and_quotes_are_cut_from_the_opening_of_an_answer_as_it_streams(step, generated, kept):
    from rag.answering import without_echoed_quotes

    tokens = iter([generated[start : start + step] for start in range(0, len(generated), step)])
    assert "".join(without_echoed_quotes(tokens)) == kept


@pytest.mark.fast
@pytest.mark.parametrize("step", [1, 3, 1000])
@pytest.mark.parametrize("generated,kept", [
    # The default model's own run-on over the Ollama docs, as the issue reported it.
    ("Ollama supports Nvidia GPUs with compute capability 5.0+ and driver version 550 and newer.\n\nQuestion: What min",
     "Ollama supports Nvidia GPUs with compute capability 5.0+ and driver version 550 and newer.\n"),
    ("The key is under the mat [1].\nHuman: thanks!\nAssistant: you're welcome", "The key is under the mat [1]."),
    ("포트는 8080입니다 [1].\n질문: 다른 포트는?", "포트는 8080입니다 [1]."),
    ("端口是 8080 [1]。\n资料：\n[1] a.md", "端口是 8080 [1]。"),
    ("Steps:\n1. Open it.\nQuestions go to Henrik.", "Steps:\n1. Open it.\nQuestions go to Henrik."),
])
def test_an_answer_ends_where_it_runs_on_into_a_turn_of_its_own(step, generated, kept):
    from rag.answering import until_run_on

    tokens = iter([generated[start : start + step] for start in range(0, len(generated), step)])
    assert "".join(until_run_on(tokens)) == kept


@pytest.mark.fast
@pytest.mark.parametrize("step", [1, 3, 1000])
def test_an_answer_ends_where_it_copies_the_header_of_a_source_from_its_prompt(step):
    from rag.answering import until_run_on

    # The default model's reply to ko29, running on into the prompt's second source.
    generated = (
        "이는 `zk` `스테이트풀셋`의 파드에 `파드안티어피니티(PodAntiAffinity)`를 지정했기 때문이다.\n\n"
        "[2] zookeeper.md (§ ZooKeeper 프로세스 관리하기, lines 804-829)\n준비도는 활성도와 동일하지 않다."
    )
    tokens = iter([generated[start : start + step] for start in range(0, len(generated), step)])
    markers = ("\nQuestion:", "\n[1] cassandra.md", "\n[2] zookeeper.md")
    assert "".join(until_run_on(tokens, lambda: markers)) == (
        "이는 `zk` `스테이트풀셋`의 파드에 `파드안티어피니티(PodAntiAffinity)`를 지정했기 때문이다.\n"
    )


def test_an_answer_that_runs_on_into_a_source_of_its_prompt_ends_before_it(sample_index):
    settings, _ = sample_index
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from rag.chain import prompt_paths

    sources = Assistant(settings, llm=FakeListChatModel(responses=["-"]), k=3).ask(WARRANTY_QUESTION).sources
    header = f"[2] {prompt_paths(sources)[1]}"
    run_on = f"It ends on 4 October 2025 [1].\n\n{header} (§ Warranty)\nThe warranty runs two years."
    answer = Assistant(settings, llm=FakeListChatModel(responses=[run_on]), k=3).ask(WARRANTY_QUESTION)
    assert answer.answer.rstrip() == "It ends on 4 October 2025 [1]."


def test_an_answer_ends_where_it_copies_a_sources_header_under_another_sources_number(sample_index):
    settings, _ = sample_index
    from langchain_core.language_models.fake_chat_models import FakeListChatModel
    from rag.chain import prompt_paths

    question = "What should a new hire set up on their laptop, and which Wi-Fi network does the office use?"
    sources = Assistant(settings, llm=FakeListChatModel(responses=["-"]), k=4).ask(question).sources
    listed = list(enumerate(prompt_paths(sources), start=1))
    # A file's header under a number the prompt gave another file, as ko07's reply gave the third source's as "[2]".
    number, path = next((number, path) for number, _ in listed for _, path in listed if (number, path) not in listed)
    header = f"[{number}] {path}"
    run_on = f"The onboarding guide lists it [1].\n\n{header} (§ Notes, lines 400-423)\nSomething else."
    answer = Assistant(settings, llm=FakeListChatModel(responses=[run_on]), k=4).ask(question)
    assert answer.answer.rstrip() == "The onboarding guide lists it [1]." and answer.unsupported == []


def test_a_chat_models_run_on_is_cut_from_its_answer(sample_index):
    settings, _ = sample_index
    from langchain_core.language_models.fake_chat_models import FakeListChatModel

    run_on = "It ends on 4 October 2025 [1].\n\nQuestion: And when was it delivered?\nAnswer: On 4 October 2023."
    answer = Assistant(settings, llm=FakeListChatModel(responses=[run_on]), k=3).ask(WARRANTY_QUESTION)
    assert answer.answer.rstrip() == "It ends on 4 October 2025 [1]."
