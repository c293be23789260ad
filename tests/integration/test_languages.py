"""The question's language: told by py3langid, and what rag says and asks in it (prompts/languages.toml)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import rag
from rag.backends.packaged_models import DEFAULT_MODEL
from ingest.loaders import load_markdown
from ingest.scripts import columns, simplified_only
from rag.answer_eval import is_declined
from rag.batch.jobs import unsupported_values
from rag.evidence import expected_kind, quote_evidence, sentence_spans
from rag.grounding import check_grounding, unmentioned
from rag.languages import detect_language, languages, reply_language, run_on_stops, texts
from rag.prompting import text_prompt
from tests.conftest import REPO, make_settings

QA_INPUT = {"context": "[1] notes.md\nThe key is under the mat.", "question": "열쇠는 어디에 있나요?"}


@pytest.mark.fast
@pytest.mark.parametrize("question,language", [
    ("When does the warranty of the Brandt RO-350 end?", "en"),
    ("kubectl get pods", "en"),
    ("maxmemory?", "en"),
    ("Minikube에서 서비스를 여는 명령은 무엇인가요?", "ko"),
    ("StatefulSet의 Pod 이름은 어떻게 정해지나요?", "ko"),
    ("如何查看 Pod 的日志？", "zh"),
    ("Redis 的 maxmemory 是多少？", "zh"),
    ("StatefulSet の Pod の名前はどう決まりますか？", "ja"),
    # Han letters alone: told by forms only Japanese (営, 議, 務) or simplified Chinese (这, 么, 时) writes.
    ("在宅勤務手当金額", "ja"),
    ("会議室番号", "ja"),
    ("这个命令是什么", "zh"),
    # Traditional Chinese, as Taiwan (這, 設) and Hong Kong (裏) write it: Japanese writes most of
    # these forms too, but a Japanese question has kana.
    ("如何設定環境變數？", "zh-Hant"),
    ("這個命令是什麼", "zh-Hant"),
    ("Pod 規約裏哪個欄位設定重啟策略？", "zh-Hant"),
    ("為什麼啓動失敗？", "zh-Hant"),  # 啓: Hong Kong's form
    ("服務的連接埠是多少", "zh-Hant"),  # letters Japanese writes too, with Chinese's 的 and 是
    ("這家の拉麵店在哪？", "zh-Hant"),  # a kana quoted in a Chinese question
    ("這個 Pod 要等多久？", "zh-Hant"),  # letters Japanese writes too, with Chinese's 這
    ("社員食堂営業時間", "ja"),
    ("勤務時間", "ja"),
    ("日本語", "ja"),
    ("1234", "en"),
    ("", "en"),
])
def test_the_language_of_a_question(question, language):
    assert detect_language(question) == language


TRADITIONAL_NOTE = "部署完成後，Pod 需要等待大約三十秒才會進入就緒狀態。若超過兩分鐘仍未就緒，請檢查映像檔是否下載成功。"
SIMPLIFIED_NOTE = "部署完成后，Pod 需要等待大约三十秒才会进入就绪状态。若超过两分钟仍未就绪，请检查镜像是否下载成功。"


@pytest.mark.fast
@pytest.mark.parametrize("question,passages,language", [
    # 要, 等, 多 and 久 are written alike in both scripts: the passages say which Chinese to answer in.
    ("Pod 要等多久？", [TRADITIONAL_NOTE], "zh-Hant"),
    ("Pod 要等多久？", [SIMPLIFIED_NOTE], "zh"),
    ("Pod 要等多久？", [], "zh"),
    ("Pod 要等多久？", ["Pods become ready about thirty seconds after the rollout."], "zh"),
    # A question whose letters tell its script keeps it, whatever its passages are written in.
    ("這個 Pod 要等多久？", [SIMPLIFIED_NOTE], "zh-Hant"),
    ("这个 Pod 要等多久？", [TRADITIONAL_NOTE], "zh"),
    ("Pod は何秒待ちますか？", [TRADITIONAL_NOTE], "ja"),
    # Passages in another language say nothing of the script: a Japanese one's kana are no Chinese.
    ("Pod 要等多久？", ["Podの起動時間は設定で決まります。", TRADITIONAL_NOTE], "zh-Hant"),
    ("Pod 要等多久？", ["Podの起動時間は設定で決まります。"], "zh"),
    # Most passages decide, not the longest: the best ranked at a tie.
    ("Pod 要等多久？", [SIMPLIFIED_NOTE * 3, TRADITIONAL_NOTE, TRADITIONAL_NOTE], "zh-Hant"),
    ("Pod 要等多久？", [SIMPLIFIED_NOTE, TRADITIONAL_NOTE], "zh"),
    # Letters Japanese and traditional Chinese both write, and nothing of either's grammar.
    ("請問 Pod 要等多久？", [TRADITIONAL_NOTE], "zh-Hant"),
    ("請問 Pod 要等多久？", ["Podの起動時間は設定で決まります。"], "ja"),
    ("請問 Pod 要等多久？", [], "ja"),
])
def test_a_chinese_question_written_alike_in_both_scripts_is_answered_in_its_passages_chinese(question, passages, language):
    assert reply_language(question, passages) == language


@pytest.mark.fast
def test_every_language_has_every_text_and_english_is_the_fallback():
    assert sorted(languages()) == ["en", "ja", "ko", "zh", "zh-Hant"]
    assert texts("de") == texts("en")
    assert texts("zh-TW") == texts("yue-HK") == texts("zh-Hant") and texts("zh-CN") == texts("zh") and texts("ko-KR") == texts("ko")
    for language in languages().values():
        assert all(getattr(language, name) for name in ("sources_label", "quotes_header", "question_label", "no_context"))
        assert "{names}" in language.unmentioned and "{claims}" in language.nothing_supported


@pytest.mark.fast
def test_a_korean_question_gets_a_korean_prompt_that_asks_for_a_korean_answer():
    rendered = text_prompt("chatml", "qa_quotes", "ko").format(**QA_INPUT, quotes="[1] The key is under the mat.")
    assert rendered.endswith(
        "<|im_start|>user\n출처:\n\n[1] notes.md\nThe key is under the mat.\n\n질문과 가장 잘 맞는 출처의 문장:\n"
        "[1] The key is under the mat.\n\n질문: 열쇠는 어디에 있나요?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert rendered.startswith(
        "<|im_start|>system\n아래 번호가 붙은 출처만 사용해 질문에 한국어로 답하세요. 출처는 사용자의 문서에서 가져온 것입니다. "
        "사용한 출처는 [1]처럼 번호로 밝히세요. 출처에 답이 없으면 \"문서에 나와 있지 않습니다.\"라고만 답하고 추측하지 마세요.<|im_end|>\n"
    )
    chinese = text_prompt("plain", "qa", "zh").format(context="[1] a.md\n钥匙在垫子下面。", question="钥匙在哪里？")
    assert chinese.endswith("资料：\n\n[1] a.md\n钥匙在垫子下面。\n\n问题： 钥匙在哪里？\nAnswer:")
    assert chinese.startswith("请只根据下面编号的资料用中文回答问题") and "如果资料中没有答案，请说明文档中没有提到，不要猜测。" in chinese
    traditional = text_prompt("plain", "qa", "zh-Hant").format(context="[1] a.md\n鑰匙在墊子下面。", question="鑰匙在哪裡？")
    assert traditional.endswith("資料：\n\n[1] a.md\n鑰匙在墊子下面。\n\n問題： 鑰匙在哪裡？\nAnswer:")
    assert traditional.startswith("請只根據下面編號的資料用繁體中文回答問題，這些資料來自使用者自己的文件。")
    japanese = text_prompt("plain", "qa", "ja").format(context="[1] a.md\n鍵はマットの下です。", question="鍵はどこ？")
    assert "出典：\n\n[1] a.md\n鍵はマットの下です。\n\n質問： 鍵はどこ？\nAnswer:" in japanese
    assert japanese.startswith("以下の番号付きの出典だけを使って、質問に日本語で答えてください。")


@pytest.mark.fast
@pytest.mark.parametrize("answer", [
    "I found nothing relevant to this question in your documents, so I will not guess.",
    "The documents do not say.",
    "문서에서 이 질문과 관련된 내용을 찾지 못했으므로 추측하지 않겠습니다.",
    "출처에 나와 있지 않습니다.",
    "资料中没有提到这个端口。",
    "无法确定。",
    "出典には記載されていません。",
    "文書には記載されていません。",
    "文档中没有提到。",
    "文件中沒有提到這個連接埠。",
    "資料中未提及。",
    "提供的資料中沒有提供相關資訊。",
    "文件裡沒有提到。",
    "資料中找不到答案。",
    "文件中未有提及。",
    "文件未提供此資訊。",
    "資料中沒有明確說明。",
    "資料中並無記載。",
    "無法從資料中得知。",
    "所提供的文件並沒有涵蓋這一點。",
    "文档里没有提到。",
    "资料中找不到答案。",
    "无法从资料中得知。",
    "资料中没有明确说明。",
    "没有找到相关信息。",
    "문서에 나와 있지 않습니다.",
    "見つかりません。",
    # The default model's own words for ko21 ("an exact answer is not provided"), before it copied the question.
    "문제에 대한 정확한 답변은 제공되지 않습니다.",
])
def test_declines_are_recognised_in_every_language(answer):
    assert is_declined(answer)


@pytest.mark.fast
@pytest.mark.parametrize("answer", [
    "28 days.", "포트는 8080입니다 [1].", "端口是 8080 [1]。", "ポートは8080です [1]。", "이 기능은 베타 버전에서는 제공되지 않습니다 [2].",
    # 檔案 is a file and 資料 data in Taiwan: these say what a file or data lacks.
    "如果 YAML 檔案中沒有包含 namespace 欄位，就會使用 default [1]。",
    "Secret 的資料中沒有包含密碼時，Pod 無法啟動 [2]。",
    "當 kubelet 無法找到映像時，Pod 會停在 ImagePullBackOff [1]。",
    "空的 ConfigMap 沒有內容 [3]。",
    "Secret 的资料中没有包含密码时，Pod 无法启动 [2]。",
    "当 kubelet 无法找到镜像时，Pod 会停在 ImagePullBackOff [1]。",
    "空的 ConfigMap 没有内容 [3]。",
])
def test_answers_are_not_taken_for_declines(answer):
    assert not is_declined(answer)


@pytest.mark.fast
def test_every_languages_declines_are_declines():
    for language in languages().values():
        assert is_declined(language.no_context) and is_declined(language.unmentioned_answer(["RO-450"]))
        assert is_declined(language.unsupported_answer.format(claims="8080"))
        assert is_declined(language.off_subject_answer.format(claims="8080", subject="Redis"))
        assert is_declined(language.repeated_question)
        assert not is_declined(language.cited_only.format(quote="[1] 8080"))
        assert not is_declined(language.repeated_question_quote.format(quote="[1] 8080"))


@pytest.mark.fast
def test_the_name_check_takes_no_possessive_particle_or_suffix_for_a_name():
    sources = ["Harbor writes failed batches to the harbor-dlq stream.", "A Pod with restartPolicy: Always"]
    assert unmentioned("What is the name of Harbor's dead-letter stream?", sources) == []
    assert unmentioned("Pod의 restartPolicy가 Always일 때 어떻게 되나요?", sources) == []
    assert unmentioned("Always일 때 Pod는 어떻게 되나요?", sources) == []
    assert unmentioned("Who maintains the Kestrel-9 pipeline for Harbor?", sources) == ["Kestrel-9"]


@pytest.mark.fast
def test_an_acronym_the_question_names_that_no_source_mentions_is_unmentioned():
    # The QA sets' questions whose acronym no retrieved source mentions, each of them unanswerable.
    sources = ["kube-proxy 在 iptables 模式下运行。", "Redis 리더 디플로이먼트는 파드 하나를 실행한다.", "Lindqvist Instruments was founded in 1998."]
    assert unmentioned("要把 kube-proxy 切换成 IPVS 代理模式，需要修改哪个配置参数？", sources) == ["IPVS"]
    assert unmentioned("Redis 리더 디플로이먼트에 수평 파드 오토스케일러(HPA)를 설정하는 명령은?", sources) == ["HPA"]
    assert unmentioned("Who is the CEO of Lindqvist Instruments?", sources) == ["CEO"]
    # Mentioned in any case ("cpu: 100m"), or inside a name already named, it is no second decline.
    assert unmentioned("Redis 리더 컨테이너의 CPU 요청량은?", ["resources:\n  requests:\n    cpu: 100m"]) == []
    assert unmentioned("Which port does the Harbor API use?", sources) == ["Harbor API"]
    # At the end of a sentence, or written full-width, it is the same acronym.
    assert unmentioned("How do I switch kube-proxy to IPVS.", sources) == ["IPVS"]
    assert unmentioned("kube-proxy를 ＩＰＶＳ 모드로 바꾸려면?", sources) == ["IPVS"]
    # Two capitals (a unit, a generic word), a code's part, a Roman numeral, a word of a link and
    # the words of a question written in capitals are no acronyms.
    assert unmentioned("Minikube를 메모리 몇 MB로 시작하나요?", sources) == []
    assert unmentioned("What does section III of the Lindqvist Instruments report say?", sources) == []
    assert unmentioned("Is https://lindqvist.example/?ref=ABC the Lindqvist Instruments site?", sources) == []
    assert unmentioned("WHEN WAS LINDQVIST INSTRUMENTS FOUNDED?", sources) == []
    assert unmentioned("그 컨테이너에서 CASSANDRA_CLUSTER_NAME 환경 변수의 기본값은?", ["env:\n  - name: CASSANDRA_CLUSTER_NAME"]) == []


@pytest.mark.fast
@pytest.mark.parametrize("body,sentences", [
    ("파드는 쿠버네티스의 가장 작은 단위이다. 디플로이먼트는 파드를 관리한다.",
     ["파드는 쿠버네티스의 가장 작은 단위이다.", "디플로이먼트는 파드를 관리한다."]),
    ("帕德是最小的单元。部署管理帕德！版本 1.2 以后呢？", ["帕德是最小的单元。", "部署管理帕德！", "版本 1.2 以后呢？"]),
    ("ポッドは最小単位です。デプロイメントはポッドを管理します！", ["ポッドは最小単位です。", "デプロイメントはポッドを管理します！"]),
    ("Run kubectl get pods. The output lists v1.2 pods.", ["Run kubectl get pods.", "The output lists v1.2 pods."]),
])
def test_evidence_splits_sentences_in_every_language(body, sentences):
    assert [body[start:end] for start, end in sentence_spans(body)] == sentences


@pytest.mark.fast
def test_evidence_joins_korean_and_chinese_lines_wrapped_at_the_same_columns_as_english():
    body = (
        "방명록 앱은 PHP 프론트엔드를 사용한다. DB에 대한 요청이 읽기인지 쓰기인지에 따라,\n"
        "프론트엔드는 Redis 팔로워 또는 리더 서비스와 통신한다.\n"
        "\n"
        "개요\n"
        "짧은 줄이다."
    )
    assert [" ".join(body[start:end].split()) for start, end in sentence_spans(body)] == [
        "방명록 앱은 PHP 프론트엔드를 사용한다.",
        "DB에 대한 요청이 읽기인지 쓰기인지에 따라, 프론트엔드는 Redis 팔로워 또는 리더 서비스와 통신한다.",
        "짧은 줄이다.",
    ]


@pytest.mark.fast
def test_evidence_joins_a_short_chinese_line_wrapped_after_a_clause_but_not_a_title_that_opens_its_paragraph():
    body = (
        "它通过调整配置文件进行配置，以允许特定程序或容器所需的访问，\n"
        "如 Linux 权能字、网络访问、文件权限等。\n"
        "每个配置文件都可以在 **强制（enforcing）**\n"
        "模式（阻止访问不允许的资源）或 **投诉（complain）** 模式（仅报告冲突）下运行。\n"
        "\n"
        "使用 AppArmor 的模式\n"
        "本节说明如何加载配置文件。"
    )
    assert [" ".join(body[start:end].split()) for start, end in sentence_spans(body)] == [
        "它通过调整配置文件进行配置，以允许特定程序或容器所需的访问， 如 Linux 权能字、网络访问、文件权限等。",
        "每个配置文件都可以在 **强制（enforcing）** 模式（阻止访问不允许的资源）或 **投诉（complain）** 模式（仅报告冲突）下运行。",
        "使用 AppArmor 的模式",
        "本节说明如何加载配置文件。",
    ]


@pytest.mark.fast
def test_a_quoted_chinese_or_japanese_sentence_wrapped_inside_a_word_is_quoted_whole():
    from langchain_core.documents import Document

    body = "修改完成后，请先在本地运行全部单元测试和集成测试，确认没有失败以后再提\n交代码给审查人。\n\n审查人会在两天内回复。"
    sources = [Document(page_content=body, metadata={"source": "/docs/代码审查.md"})]
    [quote] = quote_evidence("提交代码之前要做什么？", "", sources, lambda texts: np.ones((len(texts), 4)) / 2, max_quotes=1)
    assert quote.text == "修改完成后，请先在本地运行全部单元测试和集成测试，确认没有失败以后再提交代码给审查人。"
    # An answer that repeats the quote is known to repeat it, the source being read the same way.
    assert check_grounding(f"[1] {quote.text}", [body]).echoes == {0}


@pytest.mark.fast
@pytest.mark.parametrize("question,kind", [
    ("When does the warranty end?", "date"),
    ("What time is the platform sync?", "time"),
    ("How many seats does the lab have?", "number"),
    ("Which flag prints only the dashboard URL?", "code"),
    ("What does the manual recommend?", None),
    ("클러스터의 각 노드에 열린 포트는 몇 번이었나요?", "number"),
    ("로컬 포트를 서비스로 전달하는 명령은 무엇인가요?", "code"),
    ("작업은 언제 끝나나요?", "date"),
    ("Cassandra 教程建议用多少内存启动 Minikube？", "number"),
    ("要检查 AppArmor 是否启用，应该查看哪个文件？", "code"),
    ("ポートを転送するコマンドは何ですか？", "code"),
    ("Minikubeを何MBのメモリで起動しますか？", "number"),
    ("Which environment variable sets the ternlog cache directory?", "code"),
    ("LangSmith API 키는 어떤 환경 변수에 넣어야 하나요？", "code"),
    ("대화 턴 형식을 처리하는 Ollama의 채팅 모델 래퍼 클래스 이름은 무엇인가요?", "code"),
    ("可以根据模型类型选择不同提示词的 LangChain 类是什么？", "code"),
    ("在 LangChain 中使用 Ollama 模型需要用 pip 安装哪个包？", "code"),
    ("这个服务是什么类型？", None),
    ("LangChainでOllamaを使うにはどのパッケージを入れますか？", "code"),
    ("クラスターの名前は何ですか？", None),
    ("憑證甚麼時候到期？", "date"),
    ("憑證幾時到期？", "date"),
    ("服務的連接埠是多少？", "number"),
    ("要用哪個指令列出所有外掛？", "code"),
])
def test_the_kind_of_fact_a_question_asks_for_is_read_in_its_language(question, kind):
    assert expected_kind(question) == kind


@pytest.mark.fast
def test_a_question_asking_for_a_command_is_quoted_the_command_under_the_sentence_that_introduces_it():
    from langchain_core.documents import Document

    body = (
        "1. 다음 명령어를 실행해서 로컬 머신의 `8080` 포트를 서비스의 `80` 포트로 전달한다.\n\n"
        "   ```shell\n   kubectl port-forward svc/frontend 8080:80\n   ```\n\n"
        "   결과는 아래와 같은 형태로 나타난다."
    )
    sources = [Document(page_content=body, metadata={"source": "/docs/guestbook.md"})]
    question = "방명록 예제에서 로컬 머신의 8080 포트를 frontend 서비스의 80 포트로 전달하는 명령은 무엇인가요?"
    [quote] = quote_evidence(question, "", sources, lambda texts: np.ones((len(texts), 4)) / 2, max_quotes=1)
    assert "kubectl port-forward svc/frontend 8080:80" in quote.text


@pytest.mark.fast
@pytest.mark.parametrize("answer,sources,unsupported", [
    ("포트는 9090입니다.", ["서비스는 포트 8080을 사용한다."], ["9090"]),
    ("포트는 8080입니다.", ["서비스는 포트 8080을 사용한다."], []),
    ("端口是9090。", ["服务使用端口8080。"], ["9090"]),
    ("ポートは9090です。", ["サービスはポート8080を使います。"], ["9090"]),
    ("버전은 v1.27이고 Harbor를 씁니다.", ["v1.26 버전이다."], ["v1.27", "Harbor"]),
    # A date or number written the way another language, or the other width, writes it is the same fact.
    ("交货日期是2025年6月18日。", ["| 4 | 2025-06-18 |"], []),
    ("납기는 2025년 6월 18일입니다.", ["납기: 2025-06-18"], []),
    ("6月18日に納品します。", ["納期 2025/6/18"], []),
    ("회의는 2025-03-05에 열린다.", ["2025. 3. 5. 회의"], []),
    ("VPN装置は2025年4月7日に交換され、内線は4412です。", ["ＶＰＮ装置は２０２５年４月７日に交換します。内線４４１２。"], []),
    ("交货日期是2025年6月19日。", ["| 4 | 2025-06-18 |"], ["2025年6月19日"]),
    ("납기는 2025년 7월 18일입니다.", ["납기: 2025-06-18"], ["2025년 7월 18일"]),
    # An amount with a multiplier (만, 万, 億) is the number it multiplies to, either way round.
    ("계약 금액은 4,800만 원입니다.", ["계약 금액: 48,000,000원"], []),
    ("계약 금액은 48,000,000원입니다.", ["계약 금액은 4,800만 원이다."], []),
    ("총액은 1억 2,000만 원입니다.", ["총액 120,000,000원"], []),
    ("合同金额为4800万元。", ["合同金额：48,000,000元"], []),
    ("予算は1.5億円です。", ["予算 150,000,000円"], []),
    ("매출은 4,800만 원입니다.", ["(단위: 만 원)\n| 매출 | 4,800 |"], []),  # the table states the multiplier once
    ("계약 금액은 4,900만 원입니다.", ["계약 금액: 48,000,000원"], ["4,900만"]),
    ("合同金额为4900万元。", ["合同金额：48,000,000元"], ["4900万"]),
    # 천 and 백 count within the group that 만 multiplies; the claim is shown as the answer writes it.
    ("예산은 4천8백만 원입니다.", ["예산은 48,000,000원이다."], []),
    ("预算为4千8百万元。", ["48,000,000元"], []),
    ("예산은 4천8백만 원입니다.", ["예산은 5,000만 원이다."], ["4천8백만"]),
    # The same digits with another multiplier, or with none where no table states one, are another fact.
    ("4,800억 원입니다.", ["4,800만 원"], ["4,800억"]),
    ("비용은 5백만 원입니다.", ["비용은 5천만 원"], ["5백만"]),
    ("4,800만 원입니다.", ["4,800원을 만들기 위해"], ["4,800만"]),
    ("1억 원입니다.", ["1억 2,000만 원"], ["1억"]),
    ("売上は4,800万円です。", ["（単位：万円）\n売上 4,800"], []),
    # English writes its multipliers as words: 48 million is 4,800만 and 48,000,000 too.
    ("The budget is 48 million won.", ["예산 4,800만 원"], []),
    ("The budget is $4.8 million.", ["Budget: $4,800,000"], []),
    ("The budget is $4.9 million.", ["Budget: $4,800,000"], ["4.9 million"]),
])
def test_the_grounding_check_finds_numbers_codes_and_names_inside_cjk_text(answer, sources, unsupported):
    assert check_grounding(answer, sources).unsupported == unsupported


JAPANESE_RULES = "出張前には必ず出張申請を行い、部長の承認を得てから航空券とホテルを予約してください。" * 6
KOREAN_RULES = "회의는 매주 월요일 오전 열 시에 본관 사 층 대회의실에서 열립니다. " * 8


@pytest.mark.fast
def test_a_search_snippet_is_cut_to_the_terminal_columns_cjk_letters_take():
    from rag.retrieval import SearchHit

    def snippet(body: str) -> str:
        return SearchHit(rank=1, score=1.0, source="notes.md", text=body, chunk_id="c").snippet()

    # Japanese has no spaces between words: cut after the last letter that fits (two columns each),
    # not back at the only space, after 注意.
    assert snippet(f"注意 {JAPANESE_RULES}") == f"注意 {JAPANESE_RULES[:117]}…"
    # Korean has: cut after a word, within a word of the edge.
    korean = snippet(KOREAN_RULES)
    assert KOREAN_RULES.startswith(korean[:-1]) and KOREAN_RULES[len(korean) - 1] == " "
    assert 240 - 12 < columns(korean) <= 240
    assert snippet("Short English text.") == "Short English text."
    # A Chinese line wrapped inside a word is joined without a space; Korean's and English lines with one.
    assert snippet("其他城\n市每晚不超过四百元。\n\n한국어 줄은\n띄어 씁니다. English\nline.") == (
        "其他城市每晚不超过四百元。 한국어 줄은 띄어 씁니다. English line."
    )


@pytest.mark.fast
@pytest.mark.parametrize("record,source,unsupported", [
    ({"店名": "東京ラーメン", "金額": 10}, "東京ラーメン 合計 5000円", {"金額": ["10"]}),
    ({"店名": "東京ラーメン", "金額": 5000.0}, "東京ラーメン 合計 5,000円", {}),
    ({"호텔": "시그니엘", "금액": 125000, "체크인": "오후 3시"}, "시그니엘 1박 125,000원, 체크인 15:00", {}),
    ({"航班号": "CA1832", "座位": ["32A", "32B"]}, "航班号CA1831，座位32A。", {"航班号": ["CA1832"], "座位[1]": ["32B"]}),
])
def test_an_extracted_value_in_cjk_text_is_checked_against_its_document(record, source, unsupported):
    assert unsupported_values(record, [source]) == unsupported


# -- the whole pipeline, with the test model, on real Korean, Chinese and Japanese pages -----------------

CJK_DOCS = REPO.parent / "shared" / "data" / "cjkdocs" / "k8s-tutorials"
requires_cjkdocs = pytest.mark.skipif(
    not CJK_DOCS.is_dir(), reason=f"needs the Kubernetes tutorials in Korean, Chinese and Japanese at {CJK_DOCS} (shared data)"
)
HANGUL, HAN, KANA = re.compile("[가-힣]"), re.compile("[\u4e00-\u9fff]"), re.compile("[\u3040-\u30ff]")


@requires_cjkdocs
@pytest.mark.parametrize("page,encoding", [
    ("ko/configuration/configure-java-microservice/configure-java-microservice.md", "cp949"),
    ("zh-cn/stateful-application/zookeeper.md", "gbk"),
    ("ja/services/source-ip.md", "cp932"),
    ("ja/stateful-application/basic-stateful-set.md", "euc_jp"),
])
def test_a_page_saved_in_its_languages_legacy_encoding_is_read_as_written(page, encoding):
    # Korean, Chinese or Japanese mixed with commands and English terms: refused once as no encoding at all.
    text = (CJK_DOCS / page).read_text(encoding="utf-8")
    assert load_markdown(text.encode(encoding))[0].page_content == text


@pytest.fixture(scope="module")
def minikube_pages(tmp_path_factory) -> rag.Settings:
    """The Hello Minikube page in each language, ingested together."""
    settings = make_settings(tmp_path_factory.mktemp("cjk-minikube-home"))
    llm = settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 48})
    settings = settings.model_copy(update={"llm": llm})
    rag.ingest([CJK_DOCS / language / "hello-minikube.md" for language in ("ko", "zh-cn", "ja")], settings)
    return settings


@pytest.fixture(scope="module")
def assistant(minikube_pages):
    from rag.answering import Assistant

    return Assistant(minikube_pages)


@requires_cjkdocs
@pytest.mark.parametrize("question,language,folder,script,fact", [
    ("minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?", "ko", "ko", HANGUL, "--url"),
    ("如何只获取 minikube 仪表板的 URL 而不打开浏览器？", "zh", "zh-cn", HAN, "--url"),
    # The Japanese page is an older translation, without --url.
    ("Katacoda環境で、Display Portをクリックする前に入力する番号は何ですか？", "ja", "ja", KANA, "30000"),
])
def test_a_question_is_answered_from_its_languages_page_with_evidence_in_that_language(
    assistant, question, language, folder, script, fact
):
    answer = assistant.ask(question)
    assert answer.language == language
    assert texts(language).qa_system in answer.prompt and f"{texts(language).question_label} {question}" in answer.prompt
    assert answer.sources[0].metadata["source"] == str(CJK_DOCS / folder / "hello-minikube.md")
    # The evidence quotes where the answer's fact comes from and the page's sentence that best
    # matches the question: whatever the test model answers, the page's fact is shown.
    assert answer.evidence and all(script.search(evidence.text) for evidence in answer.evidence)
    assert any(fact in evidence.text for evidence in answer.evidence)
    assert answer.answer.strip()


@pytest.mark.parametrize("note,language", [(TRADITIONAL_NOTE, "zh-Hant"), (SIMPLIFIED_NOTE, "zh")])
def test_a_chinese_question_written_alike_in_both_scripts_is_answered_in_its_notes_chinese(tmp_path, note, language):
    from rag.answering import Assistant

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "部署.md").write_text(f"# Pod\n\n{note}\n", encoding="utf-8")
    settings = make_settings(tmp_path / "home")
    settings = settings.model_copy(update={"llm": settings.llm.model_copy(update={"temperature": 0.0, "max_tokens": 32})})
    rag.ingest([tmp_path / "notes"], settings)
    answer = Assistant(settings).ask("Pod 要等多久？")
    assert answer.language == language and answer.sources[0].metadata["source"].endswith("部署.md")
    assert language == "zh" or not simplified_only(answer.answer)
    assert texts(language).qa_system in answer.prompt and f"{texts(language).question_label} Pod 要等多久？" in answer.prompt


def test_a_model_kept_from_simplified_letters_writes_none_even_when_asked_for_them(tmp_path):
    """Models slip into simplified letters in traditional Chinese answers (开源 for 開源): kept from
    them, llama.cpp samples none of the model's tokens that hold one, even where they are due."""
    from rag.backends import create_llm, with_generation, writing_in

    llm = with_generation(create_llm(make_settings(tmp_path)), max_tokens=24, temperature=0.0)
    prompt = "简体中文：这个设置会在重新启动时加载。请检查镜像是否下载成功。这个服务会在开机时启动。这个"
    asked_for = llm.invoke(prompt)
    kept = llm.invoke(prompt, **writing_in(llm, "zh-Hant"))
    assert simplified_only(asked_for)  # it goes on as the text does
    assert HAN.search(kept) and not simplified_only(kept)


def test_a_traditional_chinese_note_is_summarized_in_traditional_letters(tmp_path):
    (tmp_path / "notes").mkdir()
    note = tmp_path / "notes" / "部署.md"
    note.write_text(f"# 部署\n\n{TRADITIONAL_NOTE}\n", encoding="utf-8")
    # The test model summarizes in English; the default one writes the note's language.
    settings = make_settings(tmp_path / "home", llm={"model": DEFAULT_MODEL})
    rag.ingest([note], settings)
    [summary] = list(rag.summarize([str(note)], settings))
    assert HAN.search(summary.summary) and not simplified_only(summary.summary)


@requires_cjkdocs
def test_a_question_gets_the_same_answer_whatever_was_asked_before_it(minikube_pages):
    """llama.cpp reuses the state of the previous prompt; evaluated from there, the Chinese question
    was answered with `service` instead of the page's `--url`."""
    from rag.answering import Assistant

    question = "如何只获取 minikube 仪表板的 URL 而不打开浏览器？"
    assistant = Assistant(minikube_pages)
    first = assistant.ask(question).answer
    assistant.ask("minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?")
    assert first.strip() and assistant.ask(question).answer == first


@requires_cjkdocs
def test_a_sampled_answer_is_the_same_each_time_with_the_same_seed(minikube_pages):
    """llama.cpp draws each completion's seed from the previous one; rag starts every answer from llm.seed."""
    from rag.answering import Assistant

    sampling = minikube_pages.model_copy(update={"llm": minikube_pages.llm.model_copy(update={"temperature": 1.5})})
    assistant = Assistant(sampling)
    question = "minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?"
    assert len({assistant.ask(question).answer for _ in range(3)}) == 1


@requires_cjkdocs
@pytest.mark.parametrize("question,language", [("페루의 수도는 어디입니까?", "ko"), ("秘鲁的首都是哪里？", "zh"), ("ペルーの首都はどこですか？", "ja")])
def test_an_off_topic_question_is_declined_in_its_language(assistant, question, language):
    answer = assistant.ask(question)
    assert answer.language == language and answer.answer == texts(language).no_context and answer.sources == []


@pytest.fixture(scope="module")
def korean_tutorials(tmp_path_factory) -> rag.Settings:
    """Hello Minikube and the stateful tutorials in Korean, ingested together."""
    settings = make_settings(tmp_path_factory.mktemp("cjk-korean-tutorials-home"))
    pages = ["hello-minikube.md", *(f"stateful-application/{name}.md" for name in ("basic-stateful-set", "cassandra", "zookeeper"))]
    rag.ingest([CJK_DOCS / "ko" / page for page in pages], settings)
    return settings


@requires_cjkdocs
def test_the_chunk_that_answers_without_the_questions_words_comes_with_the_chunks_of_its_page_that_hold_them(korean_tutorials):
    """Hello Minikube's `minikube stop` sits under a sentence about removing what was made, which
    shares almost none of the question's words: the page's chunks that do hold them bring it in."""
    from ingest.index.keywords import term_coverage
    from rag.chain import IndexRetriever

    question = "minikube 실습을 마친 뒤 환경을 지우지는 않고 잠시 꺼 두기만 하고 싶다면 어떤 명령을 실행하나요?"
    documents = IndexRetriever.from_settings(korean_tutorials).invoke(question)
    coverage = {doc.page_content: term_coverage(question, doc.page_content) for doc in documents}
    answering = [doc for doc in documents if "minikube stop" in doc.page_content]
    assert answering and coverage[answering[0].page_content] < korean_tutorials.search.min_unread_coverage
    holding_the_words = {doc.metadata["source"] for doc in documents if coverage[doc.page_content] >= korean_tutorials.search.min_unread_coverage}
    assert answering[0].metadata["source"] in holding_the_words
    assert {doc.metadata["source"] for doc in documents} == holding_the_words


@requires_cjkdocs
@pytest.mark.parametrize("question,answer,retraction", [
    ("minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?", "`--no-browser` 플래그를 붙입니다 [1].",
     "문서에 나와 있지 않습니다: --no-browser은(는) 어느 출처에도 없으니 이 답을 믿지 마세요."),
    ("如何只获取 minikube 仪表板的 URL 而不打开浏览器？应该加什么参数？", "加上 `--no-browser` 参数 [1]。",
     "文档中没有提到--no-browser，这个回答在资料中找不到依据，请不要依赖它。"),
    ("Katacoda環境で、Display Portをクリックする前に入力する番号は何番ですか？", "番号は31000です [1]。",
     "文書には記載されていません：31000はどの出典にもないため、この回答を信頼しないでください。"),
])
def test_an_answer_whose_asked_for_fact_no_source_has_ends_with_a_decline_in_its_language(minikube_pages, question, answer, retraction):
    from langchain_core.language_models.fake import FakeStreamingListLLM

    from rag.answering import Assistant

    result = Assistant(minikube_pages, llm=FakeStreamingListLLM(responses=[answer])).ask(question)
    assert result.answer == f"{answer}\n\n{retraction}" and is_declined(result.answer)
    right = {"ko": "`--url` 플래그를 붙입니다 [1].", "zh": "加上 `--url` 参数 [1]。", "ja": "番号は30000です [1]。"}[result.language]
    assert Assistant(minikube_pages, llm=FakeStreamingListLLM(responses=[right])).ask(question).answer == right


@requires_cjkdocs
@pytest.mark.parametrize("question,language,said,answer", [
    ("minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?", "ko",
     "모델이 답하지 않고 질문을 되풀이했습니다. 질문에 가장 잘 맞는 출처의 문장: ", "--url"),
    ("如何只获取 minikube 仪表板的 URL 而不打开浏览器？", "zh", "模型没有回答，只是重复了问题。与问题最相符的来源句子：", "--url"),
    ("Katacoda環境で、Display Portをクリックする前に入力する番号は何ですか？", "ja",
     "モデルは答えずに質問を繰り返しました。質問に最も合う出典の文：", "30000"),
])
def test_an_answer_that_repeats_the_question_ends_with_the_sentence_that_best_matches_it_in_its_language(
    minikube_pages, question, language, said, answer
):
    from langchain_core.language_models.fake import FakeStreamingListLLM

    from rag.answering import Assistant

    stream = Assistant(minikube_pages, llm=FakeStreamingListLLM(responses=[question])).stream(question)
    streamed = "".join(stream)
    quote = stream.answer.evidence[0]
    assert stream.answer.language == language and answer in quote.text
    assert streamed == stream.answer.answer == f"{question}\n\n{said}[{quote.source_number}] {quote.text}"
    assert not is_declined(streamed)


@requires_cjkdocs
@pytest.mark.parametrize("question,answer,evidence_label,sources_label,similarity_label", [
    ("minikube 대시보드를 열지 않고 URL만 출력하려면 어떤 플래그를 붙이나요?", "`--url` 플래그를 붙입니다 [1].", "근거:", "출처:", "유사도"),
    ("如何只获取 minikube 仪表板的 URL 而不打开浏览器？", "加上 `--url` 参数 [1]。", "证据：", "资料：", "相似度"),
])
def test_the_cli_heads_an_answers_evidence_and_sources_in_its_language(
    minikube_pages, monkeypatch, question, answer, evidence_label, sources_label, similarity_label
):
    import importlib

    from langchain_core.language_models.fake import FakeStreamingListLLM
    from typer.testing import CliRunner

    from rag.cli import app

    monkeypatch.setattr(importlib.import_module("rag.answering"), "create_llm", lambda _: FakeStreamingListLLM(responses=[answer]))
    result = CliRunner().invoke(app, ["ask", question], env={"RAG_HOME": str(minikube_pages.home)})
    assert result.exit_code == 0, result.output
    said, rest = result.stdout.split(f"\n{evidence_label}\n")
    evidence, sources = rest.split(f"\n{sources_label}\n")
    assert said == f"{answer}\n" and "--url" in evidence.splitlines()[0]
    assert sources.splitlines()[0].startswith("  [1] ") and "hello-minikube.md" in sources.splitlines()[0]
    assert f"({similarity_label} 0." in sources
    assert "Evidence" not in result.stdout and "Sources" not in result.stdout
    assert " lines " not in result.stdout and " line " not in result.stdout  # where it is, said in its language too


@pytest.mark.fast
@pytest.mark.parametrize("language,label,prose", [
    ("en", "page 2, § Install > Linux, lines 3-9", "message 3, attachment a.pdf, page 1, line 12"),
    ("ko", "2쪽, § Install > Linux, 3-9줄", "메일 3, 첨부 a.pdf, 1쪽, 12줄"),
    ("zh", "第 2 页，§ Install > Linux，第 3-9 行", "第 3 封邮件，附件 a.pdf，第 1 页，第 12 行"),
    ("ja", "2ページ、§ Install > Linux、3～9行目", "メール 3、添付 a.pdf、1ページ、12行目"),
    ("zh-Hant", "第 2 頁，§ Install > Linux，第 3-9 行", "第 3 封郵件，附件 a.pdf，第 1 頁，第 12 行"),
])
def test_where_a_quote_is_is_said_in_the_answers_language_and_in_english_to_the_model(language, label, prose):
    from rag.retrieval import location_label

    location = {"page": 2, "heading": "Install {#install} > Linux", "start_line": 3, "end_line": 9}
    assert location_label(location, language=language) == label
    assert location_label({"message": 3, "attachment": "a.pdf", "page": 1, "start_line": 12, "end_line": 12}, language=language) == prose
    assert location_label(location, in_prompt=True, language=language) == "page 2, § Install {#install} > Linux, lines 3-9"
    assert location_label({"sheet": "Sales", "row": 2, "end_row": 40}, language=language).startswith(
        {"en": "sheet Sales, rows 2-40", "ko": "시트 Sales, 2-40행", "zh": "工作表 Sales，第 2-40 行", "zh-Hant": "工作表 Sales，第 2-40 列",
         "ja": "シート Sales、2～40行目"}[language]
    )


@pytest.mark.fast
@pytest.mark.parametrize("answer,source,unsupported", [
    ("The deployment window is 10:00 AM to 4:00 PM.", "The deployment window is 10:00-16:00 on Thursdays.", []),
    ("It opens at 9 a.m. and closes at 5pm.", "Opening hours: 09:00-17:00.", []),
    ("The cleanup job runs at 3:30 AM.", "The cleanup job runs nightly at 02:30.", ["3:30 AM"]),
    ("배포 창구는 매주 목요일 오후 3시입니다.", "배포 창구는 매주 목요일 15:00입니다.", []),
    ("배포 창구는 오후 4시 30분입니다.", "배포 창구는 15:00입니다.", ["오후 4시 30분"]),
    ("会议在下午4点半开始。", "会议 16:30 开始。", []),
    ("午後3時に開始します。", "開始は15時です。", []),
])
def test_a_time_of_day_is_one_fact_however_the_clock_is_written(answer, source, unsupported):
    found = check_grounding(answer, [source])
    assert found.unsupported == unsupported and all(found.kinds[claim] == "time" for claim in found.checked)


@pytest.mark.fast
def test_a_command_an_answer_quotes_as_code_must_be_in_a_source_as_written():
    sources = ["전체를 삭제하지 않고 멈추려면 `minikube stop`을 실행한다.", "Use kubectl get pods -o wide to see the nodes."]
    assert check_grounding("`minikube stop`을 실행합니다.", sources).unsupported == []
    assert check_grounding("Run `kubectl get pods -o wide`.", sources).unsupported == []
    found = check_grounding("`kubectl autoscale deployment hello-node --max=10`을 실행합니다.", sources)
    assert found.unsupported == ["kubectl autoscale deployment hello-node --max=10"] and found.kinds[found.unsupported[0]] == "code"


@pytest.mark.fast
def test_an_answer_is_retracted_for_the_kind_of_fact_its_question_asks_for_only():
    sources = ["The lab has 24 seats and opens at 08:00."]
    made_up_seats = check_grounding("The lab has 30 seats; ask Henrik.", sources)
    assert made_up_seats.unsupported_answer("number") == ["30"]
    assert made_up_seats.unsupported_answer(None) == []
    assert check_grounding("The lab has 24 seats; ask Henrik.", sources).unsupported_answer("number") == []
    assert check_grounding("It has 24 seats and is run by Henrik.", sources).unsupported_answer("code") == []


@pytest.mark.fast
def test_a_quantity_read_off_a_command_the_answer_copies_is_no_fact_of_its_own():
    # The default model's answer to the Chinese Cassandra question: the command is the source's,
    # the unit its reading of the command.
    sources = ["Minikube 默认需要 2048MB 内存，本教程请用下面的命令启动：\n\n```shell\nminikube start --memory 5120 --cpus=4\n```"]
    answer = (
        "建议使用以下命令启动 Minikube：\n\n```shell\nminikube start --memory 5120 --cpus=4\n```\n\n"
        "这个命令会启动一个带有 5120MB 内存和 4 个 CPU 的 Minikube 实例。"
    )
    found = check_grounding(answer, sources)
    assert found.unsupported == ["5120MB"] and found.restated == ["5120MB"]
    assert found.unsupported_answer("code") == []
    # Without the copied command, or with a command of its own, the size is the answer's own claim.
    assert check_grounding("它会启动一个带有 5120MB 内存的实例。", sources).unsupported_answer("code") == ["5120MB"]
    made_up = check_grounding(answer.replace("--memory 5120", "--memory 6144").replace("5120MB", "6144MB"), sources)
    assert made_up.unsupported_answer("code") == ["minikube start --memory 6144 --cpus=4"]
    assert made_up.unsupported == ["minikube start --memory 6144 --cpus=4", "6144MB"]  # the next paragraph's size is flagged


@pytest.mark.fast
def test_a_sources_number_in_the_unit_the_question_asks_for_is_no_fact_of_its_own():
    # The default model's answer to the Korean Cassandra question, which asks how many MB: the
    # number is the source's command's, the unit the question's.
    sources = ["이런 오류를 피하려면 Minikube를 다음 설정으로 실행하자.\n\n```shell\nminikube start --memory 5120 --cpus=4\n```"]
    question = "카산드라 스테이트풀셋 튜토리얼에서 리소스 부족 오류를 피하려면 Minikube를 메모리 몇 MB로 시작하라고 하나요?"
    assert check_grounding("Minikube를 메모리 5120MB로 시작하라고 합니다.", sources, question).unsupported == []
    assert check_grounding("Minikube 需要 5120MB 内存。", sources, "Minikube 要用多少MB内存启动？").unsupported == []
    assert check_grounding("Start it with 5120MB.", sources, "How many mb of memory should Minikube start with?").unsupported == []
    # A number no source has, a unit the question does not name, or a unit inside a longer word
    # stays the answer's own claim.
    assert check_grounding("Minikube를 메모리 4096MB로 시작하라고 합니다.", sources, question).unsupported == ["4096MB"]
    assert check_grounding("Minikube를 메모리 5120GB로 시작하라고 합니다.", sources, question).unsupported == ["5120GB"]
    assert check_grounding("Start it with 5120MB.", sources, "How much memory, per MBps of traffic?").unsupported == ["5120MB"]
    # A unit is written as units are, with a capital: a word of the question ("a", "in") is none;
    # a full-width unit in the question ("ＭＢ") is the same unit.
    assert check_grounding("Gate 5120A.", sources, "At which gate is a flight to Oslo?").unsupported == ["5120A"]
    assert check_grounding("It is 5120in long.", sources, "How long is the cable in the kit?").unsupported == ["5120in"]
    assert check_grounding("5120MB로 시작합니다.", sources, "몇 ＭＢ로 시작하나요?").unsupported == []


@pytest.mark.fast
def test_an_answer_is_retracted_for_any_made_up_number_a_number_question_asks_for():
    # Real answers of the default model to questions the pages do not answer.
    sources = ["Redis 跟随者容器请求 1 CPU。", "카산드라 `스테이트풀셋`은 파드마다 볼륨을 요청한다."]
    both = check_grounding("每个 Redis 跟随者容器请求了 1 CPU 和 512 MiB 内存。", sources)
    assert both.unsupported_answer("number") == ["512"]
    # A term in backticks answers no number question: the made-up size alone decides.
    korean = check_grounding("[1] `스테이트풀셋`의 파드에는 20GiB 크기의 퍼시스턴트 볼륨이 요청되나요.", sources)
    assert korean.unsupported_answer("number") == ["20GiB"]
    assert check_grounding("`스테이트풀셋`은 볼륨을 요청합니다.", sources).unsupported_answer("number") == []


@pytest.mark.fast
def test_a_term_the_question_names_is_no_answer_that_shields_a_made_up_value_after_it():
    # The default model's reply to an unanswerable traditional Chinese question: it repeats the
    # question, explains the field the question names, and only then states a default no source has.
    sources = ["StatefulSet 控制器會按順序建立 Pod，設定 `minReadySeconds` 可延後 Pod 被視為可用的時間。"]
    question = "StatefulSet 的 minReadySeconds 欄位有什麼作用，預設值是多少？"
    answer = (
        f"{question}\n\n`minReadySeconds` 是 StatefulSet 控制器中用于控制 Pod 可以被重新部署到集群中的最小等待時間。\n\n"
        "預設值是 0。"
    )
    found = check_grounding(answer, sources, question)
    assert found.from_question == {"minReadySeconds"}
    assert found.unsupported_answer("code") == ["0"]
    english = check_grounding(
        "`retry_limit` sets how often a failed upload is tried again.\n\nIts default is 5.",
        ["Set `retry_limit` in uploads.toml to try a failed upload again."],
        "What does the retry_limit field do, and what is its default?",
    )
    assert english.unsupported_answer("code") == ["5"]
    # Only codes count: a number the question holds may be the answer it offers to choose or confirm.
    choice = check_grounding("The API uses 9090.\n\nOlder releases used 7070.", ["port 9090"], "Does the API use port 8080 or 9090?")
    assert choice.from_question == set() and choice.unsupported_answer("number") == []
    # A code inside a longer one the question writes is no term of the question.
    assert check_grounding("Use `v1`.", sources, "What changed in v1.30?").from_question == set()


@pytest.mark.fast
@pytest.mark.parametrize("answer,question,repeated", [
    # The default model's replies to an unanswerable and an answerable Chinese question.
    ("每个 Pod 的 PersistentVolumeClaim 申请了多大的存储容量？", "Cassandra 示例中，每个 Pod 的 PersistentVolumeClaim 申请了多大的存储容量？", True),
    ("在教程中，哪一项显示外部 IP 地址？ [1]", "在教程中，哪一项显示外部 IP 地址？", True),
    ("kind", "用 kind 创建的集群叫什么名字？", False),
    ("用 kind 创建的集群叫 `kind`。", "用 kind 创建的集群叫什么名字？", False),
    ("", "Where is the key?", False),
])
def test_an_answer_that_only_repeats_the_question_is_told_apart(answer, question, repeated):
    from rag.answering import repeats_question

    assert repeats_question(answer, question) is repeated


@pytest.mark.fast
def test_a_section_is_about_what_its_page_names_where_it_opens():
    # From the Chroma docs: the section holding the example does not repeat the product's name.
    titles = [
        "add-data.mdx\nAdding Data to Chroma Collections > Metadata",
        "full-text-search.mdx\nFull Text Search > Combining with Metadata Filtering",
    ]
    sources = [
        f"{titles[0]}\nEach record can carry metadata: a dictionary of keys and values.",
        f"{titles[1]}\ncollection.query(where={{\"page\": 10}}, where_document={{\"$contains\": \"search\"}})",
    ]
    question = "How do I filter query results by metadata in Chroma?"
    answer = "Pass `where={\"page\": 10}` to `collection.query` [2]."
    alone = check_grounding(answer, sources, question, titles)
    assert alone.subject == ["Chroma"] and alone.off_subject == ['where={"page": 10}', "collection.query"]
    asked = []

    def page_opens_with(number, terms):
        asked.append((number, terms))
        return number == 1

    assert check_grounding(answer, sources, question, titles, page_opens_with).off_subject == []
    assert asked == [(1, ["Chroma"])]  # only a source whose own text and title do not name the subject
    assert check_grounding(answer, sources, question, titles, lambda number, terms: False).off_subject == alone.off_subject


@pytest.mark.fast
def test_a_fact_that_only_a_page_about_something_else_holds_is_off_subject():
    titles = ["cassandra.md\n示例：使用 StatefulSet 部署 Cassandra", "zookeeper.md\n运行 ZooKeeper，一个分布式协调系统 > 提供持久存储"]
    sources = [f"{titles[0]}\nMinikube 默认需要 2048MB 内存。", f"{titles[1]}\nvolumeClaimTemplates:\n  storage: 20Gi"]
    question = "Cassandra 示例中，每个 Pod 的 PersistentVolumeClaim 申请了多大的存储容量？"
    borrowed = check_grounding("申请了 20Gi [2]。", sources, question, titles)
    assert borrowed.subject == ["Cassandra"] and borrowed.unsupported == [] and borrowed.off_subject == ["20Gi"]
    assert borrowed.unsupported_answer("number") == ["20Gi"]
    # The subject's names and the question's words are no facts about something else, though no source is about all it names.
    claims_titles = [titles[0], titles[1] + " > PersistentVolumeClaim"]
    claims_sources = [sources[0], f"{claims_titles[1]}\nvolumeClaimTemplates:\n  storage: 20Gi"]
    named = check_grounding("每个 PersistentVolumeClaim 申请了 20Gi [2]。", claims_sources, question, claims_titles)
    assert named.subject == ["Cassandra", "PersistentVolumeClaim"] and named.off_subject == ["20Gi"]
    assert check_grounding("2048MB [1]。", sources, question, titles).unsupported_answer("number") == []
    # Hangul has no capitals: a Korean word (less its particles) names a page its title holds, unless every page's does.
    korean_titles = ["cassandra.md\n예시: 스테이트풀셋으로 카산드라 배포하기 > 목적", "zookeeper.md\n분산 시스템 코디네이터 ZooKeeper 실행하기 > 스테이트풀셋 생성"]
    korean_sources = [f"{korean_titles[0]}\nMinikube의 기본 메모리는 2048MB이다.", f"{korean_titles[1]}\nvolumeClaimTemplates:\n  storage: 20Gi"]
    korean = check_grounding("20Gi를 요청합니다 [2].", korean_sources, "카산드라 스테이트풀셋의 각 파드에는 몇 GiB 크기의 볼륨이 요청되나요?", korean_titles)
    assert korean.subject == ["카산드라", "스테이트풀셋"] and korean.off_subject == ["20Gi"]
    both_titled = [korean_titles[0], "zookeeper.md\n스테이트풀셋으로 ZooKeeper 실행하기"]
    assert check_grounding("20Gi [2].", korean_sources, "스테이트풀셋의 각 파드에는 몇 GiB 크기의 볼륨이 요청되나요?", both_titled).subject == []
    # The subject is what the title holding the most of the question's names holds, and a section
    # is about what its title names though its text does not repeat it.
    minikube_titles = ["hello-minikube.md\nHello Minikube > 디플로이먼트 만들기", "cassandra.md\n튜토리얼: 카산드라 > 시작하기 전에"]
    minikube_sources = ["kubectl create deployment hello-node --image=registry.k8s.io/e2e-test-images/agnhost:2.39", "minikube start --memory 5120"]
    named_page = "Hello Minikube 튜토리얼에서 hello-node 디플로이먼트를 만드는 명령은 무엇인가요?"
    command = check_grounding("`kubectl create deployment hello-node --image=registry.k8s.io/e2e-test-images/agnhost:2.39` [1]",
                              minikube_sources, named_page, minikube_titles)
    assert command.subject == ["Hello", "Minikube"] and command.unsupported == command.off_subject == []
    # A question that names no retrieved document by a term of its title leaves every source about it.
    assert check_grounding("20Gi [2]。", sources, "每个 Pod 申请了多大的存储容量？", titles).off_subject == []
    notes = ["trips/reine.md\nCabin in Reine", "trips/lofoten-ferry.md\nFerry to Lofoten"]
    booked = [f"{notes[0]}\nBooked through Hamnøy Rorbuer, reference HR-5521.", f"{notes[1]}\nThe ferry booking reference is LQ7M2P."]
    wrong_trip = check_grounding("The reference is LQ7M2P.", booked, "What is the booking reference for the cabin in Reine?", notes)
    assert wrong_trip.subject == ["Reine"] and wrong_trip.unsupported_answer("number") == ["LQ7M2P"]
    assert texts("en").retraction(["LQ7M2P"], wrong_trip.unsupported, wrong_trip.subject) == (
        "The documents do not say this: LQ7M2P is said in the sources of something other than Reine, so do not rely on this answer."
    )


@pytest.mark.fast
def test_an_answer_is_retracted_for_the_block_that_states_its_answer_and_flagged_for_what_follows():
    # The default model's answer to ja19: the right field, then values it made up, one of them a
    # type that only the page about ClusterIP names.
    titles = ["source-ip.md\nソースIPを使用する > Type=NodePort の Service でのソース IP", "connect-applications-service.md\nServiceとアプリケーションの接続 > ClusterIP"]
    sources = [
        f"{titles[0]}\n`service.spec.externalTrafficPolicy` フィールドを `Local` に設定すると、クライアントのIPアドレスが保たれます。",
        f"{titles[1]}\nこれは`ClusterIP`のServiceで、クラスター内からのみアクセスできます。",
    ]
    question = "NodePort型のServiceで、クライアントの本来のIPアドレスがノードのアドレスに書き換えられないようにするには、Serviceのどのフィールドを設定しますか？"
    answer = (
        "Serviceの`spec.externalTrafficPolicy`フィールドを設定します。\n\n以下のような値があります：\n\n"
        "- `Local`: Serviceは内部IPアドレスで直接アクセスします。\n- `ClusterIP`: Serviceはクラスタ内からのみアクセスできます。"
    )
    found = check_grounding(answer, sources, question, titles)
    assert found.off_subject == ["ClusterIP"] and found.unsupported_answer("code") == []
    assert texts("ja").warnings(found.unsupported, found.all_unsupported, found.off_subject, found.subject) == [
        "NodePortまたはServiceではなく別の対象についての出典の内容：ClusterIP"
    ]
    # The same value as the answer's first statement is its answer, and retracted.
    stated_first = check_grounding("`ClusterIP`を設定します。\n\n- `spec.externalTrafficPolicy`: 外部から", sources, question, titles)
    assert stated_first.unsupported_answer("code") == ["ClusterIP"]


@pytest.mark.fast
def test_code_copied_from_a_quote_the_prompt_cut_short_is_the_sources_up_to_the_cut():
    from langchain_core.documents import Document

    # The page ja21 asks about: its Deployment's YAML is one sentence, too long to quote whole.
    lines = [
        "apiVersion: apps/v1", "kind: Deployment", "metadata:", "  name: nginx-deployment", "spec:",
        "  template:", "    spec:", "      terminationGracePeriodSeconds: 120 # 非常に長い猶予期間", "      containers:",
        "      - name: nginx", "        image: nginx:latest", "        lifecycle:", "          preStop:", "            exec:",
        *(f"              # {comment}" for comment in [
            "実際の活動終了はterminationGracePeriodSecondsまでかかる可能性がある。",
            "この例においては、少なくともterminationGracePeriodSecondsの間は待機し、",
            "120秒経過すると、コンテナは強制終了される。", "この間ずっとnginxはリクエストを処理し続けていることに注意。",
        ]),
        '              command: ["/bin/sh", "-c", "sleep 180"]',
    ]
    body = "1つの`nginx`レプリカを含むDeploymentがあるとします:\n\n```yaml\n" + "\n".join(lines) + "\n```"
    sources = [Document(page_content=body, metadata={"source": "/docs/pods-and-endpoint-termination-flow.md"})]
    question = "Podの終了動作の例で、nginxコンテナが強制的に停止されるまでに与えられている猶予は何秒ですか？"
    quote = next(q.text for q in quote_evidence(question, "", sources, lambda texts: np.ones((len(texts), 4)) / 2) if "…" in q.text)
    # The default model's reply: the quote's flattened YAML in a code block, with the mark of the cut.
    copied = f"この出力は以下のようなものになります:\n\n```yaml\n{quote[quote.index('apiVersion'):]}\n```"
    found = check_grounding(copied, [body], question)
    assert found.unsupported == [] and found.unsupported_answer("number") == []
    made_up = check_grounding(copied.replace("Seconds: 120", "Seconds: 30"), [body], question)
    assert made_up.unsupported_answer("number") == [made_up.unsupported[0]] and "Seconds: 30" in made_up.unsupported[0]


@pytest.mark.fast
def test_the_prompts_quoted_sentences_an_answer_repeats_are_not_its_statement():
    # The default model's reply to ja36 (unanswerable): two quoted sentences, then its own command.
    sources = ["次のコマンドを実行すると、フロントエンドのPodの数をスケールアップできます。\n```shell\nkubectl scale deployment frontend --replicas=5\n```"]
    answer = (
        "[1] 次のコマンドを実行すると、フロントエンドのPodの数をスケールアップできます。 ```shell kubectl scale deployment frontend --replicas=5 ```\n"
        "[1] HPAさせるには、以下のコマンドを使います。\n\n```shell\nkubectl autoscale deployment frontend --min=3 --max=5\n```"
    )
    found = check_grounding(answer, sources)
    assert found.unsupported_answer("code") == ["kubectl autoscale deployment frontend --min=3 --max=5"]


@pytest.mark.fast
def test_a_reply_of_quoted_sentences_only_answers_with_the_first():
    zookeeper = "The zk StatefulSet requests storage: 20Gi for each Pod."
    cassandra = "Each Cassandra Pod requests a PersistentVolume of storage: 1Gi."
    question = "How many GiB does each Cassandra pod request?"
    titles = ["zookeeper.md > Running ZooKeeper", "cassandra.md > Deploying Cassandra with a StatefulSet"]
    right_first = check_grounding(f"[2] {cassandra}\n[1] {zookeeper}", [zookeeper, cassandra], question, titles)
    assert "20Gi" in right_first.off_subject and right_first.unsupported_answer("number") == []
    wrong_first = check_grounding(f"[1] {zookeeper}\n[2] {cassandra}", [zookeeper, cassandra], question, titles)
    assert wrong_first.unsupported_answer("number") == ["20Gi"]


@pytest.mark.fast
@pytest.mark.parametrize("language,warnings", [
    ("en", ["Not in the sources: 6144MB", "From sources about something other than Cassandra: 20Gi"]),
    ("ko", ["출처에 없음: 6144MB", "Cassandra이(가) 아닌 다른 대상에 관한 출처의 내용: 20Gi"]),
    ("zh", ["资料中没有: 6144MB", "出自关于Cassandra以外内容的资料：20Gi"]),
    ("ja", ["出典にない: 6144MB", "Cassandraではなく別の対象についての出典の内容：20Gi"]),
])
def test_the_lines_under_an_answer_name_its_unfounded_facts_in_the_questions_language(language, warnings):
    assert texts(language).warnings(["6144MB"], False, ["20Gi"], ["Cassandra"]) == warnings
    assert texts(language).warnings(["6144MB"], True, [], [])[0] == texts(language).nothing_supported.format(claims="6144MB")
    assert texts(language).warnings([], False, [], ["Cassandra"]) == []


@pytest.mark.fast
def test_a_message_names_a_code_of_several_words_in_backticks():
    answer = "Run `kubectl get addons` on port 8081 with `--all` [1], says Maria Lindqvist."
    found = check_grounding(answer, ["Nothing here."])
    assert found.shown(found.unsupported) == ["`kubectl get addons`", "--all", "8081", "Maria Lindqvist"]
    substituted = check_grounding("```\nkubectl exec `kubectl get pod -o name` -- ls\n```", ["Nothing here."])
    assert substituted.shown(substituted.unsupported) == ["``kubectl exec `kubectl get pod -o name` -- ls``"]


@pytest.fixture(scope="module")
def security_pages(tmp_path_factory) -> rag.Settings:
    """The tutorials on Pod Security Standards per namespace and per cluster in Korean and Japanese."""
    settings = make_settings(tmp_path_factory.mktemp("cjk-security-home"))
    pages = [CJK_DOCS / language / "security" / page for language in ("ko", "ja") for page in ("ns-level-pss.md", "cluster-level-pss.md")]
    rag.ingest(pages, settings)
    return settings


@requires_cjkdocs
@pytest.mark.parametrize("question,answer,fact", [
    # The default model's right answers, whose evidence quoted the pages' openings before.
    ("파드 시큐리티 스탠다드를 네임스페이스 수준에 적용하는 튜토리얼에서 kind로 만드는 클러스터의 이름은 무엇인가요?",
     "파드 시큐리티 스탠다드를 네임스페이스 수준에 적용하는 튜토리얼에서 kind로 만드는 클러스터의 이름은 `psa-ns-level`입니다.",
     "psa-ns-level"),
    ("クラスターレベルでPodセキュリティの標準を適用するチュートリアルで、Kubernetes v1.23とv1.24の場合、PodSecurityConfigurationの設定にはどのAPIバージョンを使いますか？",
     "Kubernetes v1.23とv1.24の場合、PodSecurityConfigurationの設定には[v1beta1](https://v1-24.docs.kubernetes.io/docs/tasks/configure-pod-container/enforce-standards-admission-controller/)を使用します。",
     "v1beta1"),
])
def test_the_evidence_of_an_answer_is_the_sentence_its_fact_comes_from(security_pages, question, answer, fact):
    from langchain_core.language_models.fake import FakeStreamingListLLM

    from rag.answering import Assistant

    result = Assistant(security_pages, llm=FakeStreamingListLLM(responses=[answer])).ask(question)
    assert result.answer == answer and fact in result.evidence[0].text


@pytest.fixture(scope="module")
def statefulset_pages(tmp_path_factory) -> rag.Settings:
    """The Cassandra and ZooKeeper tutorials in each language, ingested together."""
    settings = make_settings(tmp_path_factory.mktemp("cjk-statefulset-home"))
    pages = [CJK_DOCS / language / "stateful-application" / page for language in ("ko", "zh-cn", "ja") for page in ("cassandra.md", "zookeeper.md")]
    rag.ingest(pages, settings)
    return settings


@requires_cjkdocs
@pytest.mark.parametrize("question,answer,retraction", [
    ("Cassandra 스테이트풀셋에서 각 파드의 퍼시스턴트볼륨클레임은 얼마의 용량을 요청하나요?", "20Gi를 요청합니다 [1].",
     "문서에 나와 있지 않습니다: 출처의 20Gi은(는) Cassandra 또는 스테이트풀셋이(가) 아닌 다른 대상에 관한 내용이니 이 답을 믿지 마세요."),
    ("카산드라 스테이트풀셋의 각 파드에는 몇 GiB 크기의 퍼시스턴트 볼륨이 요청되나요?", "20Gi를 요청합니다 [1].",
     "문서에 나와 있지 않습니다: 출처의 20Gi은(는) 카산드라 또는 스테이트풀셋이(가) 아닌 다른 대상에 관한 내용이니 이 답을 믿지 마세요."),
    ("Cassandra 示例中，每个 Pod 的 PersistentVolumeClaim 申请了多大的存储容量？", "每个 PVC 申请了 20Gi [1]。",
     "文档中没有提到：资料中的20Gi说的不是Cassandra，而是别的内容，请不要依赖这个回答。"),
    ("CassandraのStatefulSetで、各Podのために用意される永続ボリュームの容量はいくつですか？", "20Giです [1]。",
     "文書には記載されていません：出典の20GiはCassandraまたはStatefulSetではなく別の対象についての記述のため、この回答を信頼しないでください。"),
])
def test_an_answer_that_takes_its_fact_from_another_tutorial_ends_with_a_decline_in_its_language(
    statefulset_pages, question, answer, retraction
):
    from langchain_core.language_models.fake import FakeStreamingListLLM

    from rag.answering import Assistant

    result = Assistant(statefulset_pages, llm=FakeStreamingListLLM(responses=[answer])).ask(question)
    assert result.answer == f"{answer}\n\n{retraction}" and is_declined(result.answer) and result.retracted == ["20Gi"]
    assert any(doc.metadata["source"].endswith("zookeeper.md") and "20Gi" in doc.page_content for doc in result.sources)
    right_page = "ZooKeeper 教程中每个 PersistentVolumeClaim 申请多大的存储？"
    assert Assistant(statefulset_pages, llm=FakeStreamingListLLM(responses=["20Gi [1]。"])).ask(right_page).retracted == []


@requires_cjkdocs
def test_an_answer_that_only_repeats_a_quoted_sentence_of_another_tutorial_is_retracted(statefulset_pages):
    from langchain_core.language_models.fake import FakeStreamingListLLM

    from rag.answering import Assistant

    # The default model's reply to ko32 (unanswerable): the ZooKeeper tutorial's quoted sentence, then
    # a sentence of the Cassandra tutorial's stating nothing asked (a fake text model's reply is cut
    # to its first line, as a base model's is: the quoted sentence alone is judged here).
    code = (
        'yaml volumeClaimTemplates: - metadata: name: datadir annotations: volume.alpha.kubernetes.io/storage-class: '
        'anything spec: accessModes: [ "ReadWriteOnce" ] resources: requests: storage: 20Gi'
    )
    reply = (
        f"[2] `zk` 스테이트풀셋의 `spec`에 `volumeClaimTemplates` 필드는 각 파드에 프로비전될 퍼시스턴트볼륨을 지정한다. ```{code} ```\n"
        "이 튜토리얼에서는 데이터베이스가 쿠버네티스 클러스터 내부에 나타날 때 새로운 카산드라 파드를 검색할 수 있는 사용자 지정 카산드라 시드 공급자를 배포한다."
    )
    question = "카산드라 스테이트풀셋의 각 파드에는 몇 GiB 크기의 퍼시스턴트 볼륨이 요청되나요?"
    result = Assistant(statefulset_pages, llm=FakeStreamingListLLM(responses=[reply])).ask(question)
    assert result.retracted == [code] and is_declined(result.answer)
    assert result.answer.endswith(
        f" ```\n\n문서에 나와 있지 않습니다: 출처의 `{code}`은(는) 카산드라 또는 스테이트풀셋이(가) 아닌 다른 대상에 관한 내용이니 이 답을 믿지 마세요."
    )
    right_page = "ZooKeeper 튜토리얼에서 각 파드에는 몇 GiB 크기의 퍼시스턴트 볼륨이 요청되나요?"
    assert Assistant(statefulset_pages, llm=FakeStreamingListLLM(responses=[reply])).ask(right_page).retracted == []


@pytest.mark.fast
def test_an_answer_stops_where_it_would_open_a_turn_of_its_own_in_any_language():
    assert run_on_stops() == (
        "\nContext:", "\nHuman:", "\nQuestion:", "\nSources:", "\nUser:", "\n出典：", "\n問題：", "\n資料：", "\n質問：", "\n资料：",
        "\n问题：", "\n질문:", "\n출처:",
    )


def test_the_model_stops_at_a_run_on_turn(tmp_path):
    """A few-shot transcript a base model continues with a question of its own: cut where it starts."""
    from rag.backends import create_llm

    llm = create_llm(make_settings(tmp_path)).bind(max_tokens=40, temperature=0.0)
    transcript = "Question: What is 2+2?\nAnswer: 4\nQuestion: What is 3+3?\nAnswer: 6\nQuestion: What is 5+5?\nAnswer:"
    assert "\nQuestion:" in llm.invoke(transcript)
    assert not any(stop in llm.invoke(transcript, stop=list(run_on_stops())) for stop in run_on_stops())
