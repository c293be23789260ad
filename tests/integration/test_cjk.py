"""Chinese and Korean: words inside a run of letters are found, a ranking the embedding model
cannot make does not outvote the keyword matches, a question it cannot read is answered only
from the pages whose chunks hold its words, and ingest says which documents it cannot read.

The small corpus is written here; the real one is LangChain's "Run models locally" guide in
Chinese and Korean from the shared realdocs folder (skipped where that folder is absent).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
import unicodedata
from functools import partial

import pytest
from langchain_core.language_models.fake import FakeListLLM

import rag
from ingest.embedding.embedders import model_tokenizer
from ingest.index import keywords
from ingest.index.keywords import KeywordIndex, index_text, query_terms, term_coverage
from ingest.index.schema import connect
from ingest.scripts import UnreadScripts, readability
from rag.chain import IndexRetriever, build_rag_chain
from rag import languages
from rag.prompting import text_prompt
from rag.retrieval import fuse, separation
from rag.settings import SearchSettings
from tests.helpers import REALDOCS, write_files
from tests.conftest import REPO, make_settings

MODEL = "sentence-transformers/all-MiniLM-L6-v2"
GUIDE = REALDOCS / "langchain-local-llms"
CHINESE_GUIDE, KOREAN_GUIDE = GUIDE / "local_llms.zh.md", GUIDE / "local_llms.ko.md"

# Three short pages per language, each on its own topic; the keyword of each sits inside a run.
NOTES = {
    "zh/量化.md": "# 模型量化\n\n量化可以减少模型权重的内存占用，让大型语言模型在笔记本电脑上运行。\n",
    "zh/隐私.md": "# 隐私\n\n在本地运行模型时，您的数据不会发送给第三方，这保护了隐私。\n",
    "zh/烹饪.md": "# 红烧肉\n\n红烧肉需要五花肉、冰糖和酱油，用小火慢炖一个小时。\n",
    "ko/양자화.md": "# 양자화\n\n양자화는 모델 가중치의 메모리 사용량을 줄여서 노트북에서도 모델을 실행할 수 있게 합니다.\n",
    "ko/프롬프트.md": "# 프롬프트\n\n로컬 모델에는 모델에 맞는 특별한 프롬프트 형식이 필요할 수 있습니다.\n",
    "ko/요리.md": "# 김치찌개\n\n김치찌개는 잘 익은 김치와 돼지고기로 끓입니다.\n",
}


def keyword_index(db: sqlite3.Connection, texts: dict[str, str]) -> KeywordIndex:
    index = KeywordIndex(lambda: db, "notes")
    db.execute("BEGIN")
    index.add(list(texts), list(texts.values()), list(texts))
    db.execute("COMMIT")
    return index


@pytest.mark.fast
def test_cjk_runs_are_indexed_as_bigrams_and_other_text_as_it_is():
    assert index_text("运行大型语言模型") == " 运行 行大 大型 型语 语言 言模 模型 "
    assert index_text("The quick brown fox, twice.") == "The quick brown fox, twice."
    # A Latin word glued to Chinese letters becomes a word of its own, which unicode61 could not see.
    assert query_terms("在macOS上运行") == ["macos", "ｍａｃｏｓ", "上运", "运行"]
    assert query_terms("什么是量化？") == ["量化"]  # question and function words go, as English stopwords do
    assert query_terms("什麼是量化？請問這個怎麼設定") == ["量化", "设定"]  # in traditional Chinese too, read as simplified
    assert query_terms("甚麼是量化？") == ["量化"]
    assert query_terms("每个容器请求了多少内存？") == ["每个", "个容", "容器", "器请", "请求", "多少", "少内", "内存"]  # 请 begins 请求
    assert query_terms("양자화란 무엇인가요?") == ["양자", "자화"]


@pytest.mark.fast
def test_a_word_inside_a_run_is_found_and_ranked_by_bm25(tmp_path):
    index = keyword_index(connect(tmp_path / "manifest.sqlite3"), NOTES)
    assert [chunk_id for chunk_id, _ in index.query("量化", 5)] == ["zh/量化.md"]
    assert [chunk_id for chunk_id, _ in index.query("양자화", 5)] == ["ko/양자화.md"]
    # 大型语言模型 is one unicode61 token; its words are found inside "让大型语言模型在笔记本电脑上运行".
    assert index.query("语言模型", 5)[0][0] == "zh/量化.md"
    assert index.query("프롬프트 형식", 5)[0][0] == "ko/프롬프트.md"
    assert index.query("秘鲁首都", 5) == []


@pytest.mark.fast
def test_a_chinese_or_japanese_word_wrapped_over_two_lines_is_found(tmp_path):
    assert index_text("请先\n提交代码") == " 请先 先提 提交 交代 代码 "
    # Korean puts spaces between words: its line break is one.
    assert index_text("쿠버네티스\n클러스터") == " 쿠버 버네 네티 티스 \n 클러 러스 스터 "
    notes = {
        "zh/代码审查.md": "修改完成后，请先运行全部测试，然后再提\n交代码给审查人。",
        "ja/経費.md": "経費の申請は、月末までに上長の承\n  認を受けてください。",
    }
    index = keyword_index(connect(tmp_path / "manifest.sqlite3"), notes)
    assert [chunk_id for chunk_id, _ in index.query("提交", 5)] == ["zh/代码审查.md"]
    assert [chunk_id for chunk_id, _ in index.query("承認", 5)] == ["ja/経費.md"]


def test_a_one_letter_chinese_korean_or_japanese_word_is_found_inside_the_words_that_hold_it(store, home, tmp_path):
    notes = write_files(tmp_path / "letters", {
        "衣柜.md": "# 家具\n\n上周末我在家具店买了一个新的白色衣柜。\n",
        "柜台.md": "# 服务\n\n办理手续的柜台在一楼大厅的左边。\n",
        "天气.md": "# 天气\n\n今天天气很好，适合出去散步。\n",
        "모임.md": "# 모임\n\n이번 주 토요일에는 우리 집에서 가족 모임을 합니다.\n",
        "部屋.md": "# 部屋\n\n昨日、ホテルの部屋の鍵をなくしてしまいました。\n",
    })
    settings = store(home)
    rag.ingest([notes], settings)

    def found(query: str) -> list[str]:
        return sorted(Path(hit.source).name for hit in rag.search(query, settings, mode="keyword", k=10))

    assert found("柜") == ["柜台.md", "衣柜.md"]  # 衣柜 ends its run: 柜 is in no bigram it begins
    assert found("집") == ["모임.md"]  # 집에서
    assert found("鍵") == ["部屋.md"]
    assert found("衣柜") == ["衣柜.md"]  # a word of two letters is searched as before


@pytest.mark.fast
def test_a_chinese_word_is_found_in_traditional_or_simplified_letters(tmp_path):
    assert index_text("請先瞭解這個設定") == " 请先 先了 了解 解这 这个 个设 设定 "
    notes = {
        "zh-Hant/記憶體.md": "調整伺服器的記憶體上限之前，請先瞭解這個設定。",
        "zh/备份.md": "修改配置之前，请先备份数据库。",
        "ja/機能.md": "この機能の設定は管理画面で変更できます。",
    }
    index = keyword_index(connect(tmp_path / "manifest.sqlite3"), notes)
    for query, found in [("记忆体", "zh-Hant/記憶體.md"), ("記憶體", "zh-Hant/記憶體.md"), ("備份", "zh/备份.md"),
                         ("备份", "zh/备份.md"), ("管理画面", "ja/機能.md")]:
        assert [chunk_id for chunk_id, _ in index.query(query, 5)] == [found], query
    # A Japanese question finds its kanji as the page writes them, in the same reading as the page's.
    assert {chunk_id for chunk_id, _ in index.query("機能の設定", 5)} == {"ja/機能.md", "zh-Hant/記憶體.md"}
    assert term_coverage("怎麼備份數據庫？", "修改配置之前，请先备份数据库。") == 1.0


@pytest.mark.fast
def test_a_latin_word_or_number_is_found_in_either_width(tmp_path):
    notes = {
        "ja/ネットワーク.md": "本社のＶＰＮ装置は２０２５年４月７日に交換します。新しいルーターはＲＴＸ８３０、内線４４１２。",
        "en/network.md": "The office VPN router is an RTX830; call extension 4412.",
    }
    index = keyword_index(connect(tmp_path / "manifest.sqlite3"), notes)
    for query in ("VPN", "RTX830", "4412", "ＶＰＮ", "ｒｔｘ８３０"):
        assert {chunk_id for chunk_id, _ in index.query(query, 5)} == set(notes), query
    assert query_terms("VPN 장비") == ["vpn", "ｖｐｎ", "장비"]


@pytest.mark.fast
def test_an_index_from_before_bigrams_is_reindexed_once_when_opened(tmp_path):
    path = tmp_path / "manifest.sqlite3"
    old = sqlite3.connect(path, isolation_level=None)
    old.executescript(keywords.SCHEMA.replace("chunk_terms", "chunk_words"))
    for rowid, (chunk_id, text) in enumerate(NOTES.items(), start=1):
        old.execute("INSERT INTO chunks (id, collection, chunk_id, source) VALUES (?, 'notes', ?, ?)", (rowid, chunk_id, chunk_id))
        old.execute("INSERT INTO chunk_words (rowid, text) VALUES (?, ?)", (rowid, text))
    old.close()

    db = connect(path)
    index = KeywordIndex(lambda: db, "notes")
    assert [chunk_id for chunk_id, _ in index.query("量化", 5)] == ["zh/量化.md"]
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "chunk_words" not in tables and index.chunk_ids() == set(NOTES)


@pytest.mark.fast
def test_a_ranking_of_ties_does_not_outvote_the_keyword_matches():
    # What all-MiniLM-L6-v2 gives Chinese chunks: the best ten nearly tied, the keyword index sure of one.
    dense = [(f"unread-{i}", 0.92) for i in range(8)] + [("privacy", 0.90), ("cooking", 0.30)]
    keyword = [("privacy", 9.5), ("unread-3", 2.0)]
    fused = fuse(dense, keyword, SearchSettings(dense_weight=0.5))
    assert max(fused, key=lambda chunk_id: fused[chunk_id].fused_score) == "privacy"
    assert separation({chunk_id: 1.0 for chunk_id in "abcdefghijkl"}) == 0.0
    assert separation({"a": 1.0, "b": 0.0}) == pytest.approx(0.9)


@pytest.mark.fast
def test_coverage_counts_content_letters_not_question_words():
    privacy = NOTES["zh/隐私.md"]
    assert term_coverage("在本地运行模型有什么好处？", privacy) == 0.75  # 本地运行模型 of 本地运行模型 and 好处
    assert term_coverage("什么是隐私？", privacy) == 1.0
    assert term_coverage("秘鲁的首都是哪里？", privacy) == 0.0
    assert term_coverage("양자화란 무엇인가요?", NOTES["ko/양자화.md"]) == 1.0
    assert term_coverage("김치는 어떻게 만드나요?", NOTES["ko/양자화.md"]) == 0.0


@pytest.mark.fast
def test_the_tokenizer_says_what_the_model_cannot_read():
    tokenizer = model_tokenizer(MODEL)
    assert readability("How do I run a model locally?", tokenizer).unread_share == 0.0
    chinese = readability("秘鲁的首都是哪里？", tokenizer)  # most of it [UNK]
    assert chinese.unread_share > 0.5 and chinese.scripts_not_read() == ["Han (Chinese, Japanese kanji)"]
    korean = readability("로컬에서 모델 실행하기", tokenizer)  # no [UNK]: every syllable falls apart into jamo
    assert korean.unread_share == 1.0 and korean.scripts_not_read() == ["Hangul (Korean)"]
    # An English page that quotes a Chinese name is not a Chinese page.
    page = (
        "The text2vec models (文本向量) embed Chinese text. Install the package, then pass the model name "
        "to the embedding function when you create the collection."
    )
    assert readability(page, tokenizer).scripts_not_read() == []


@pytest.mark.fast
def test_ingest_warning_names_the_files_their_script_and_the_setting():
    check = UnreadScripts(MODEL, lambda: model_tokenizer(MODEL))
    for path, text in NOTES.items():
        check.check(path, text)
    check.check("en/readme.md", "Run large language models on your own laptop.")
    warning = check.warning()
    assert "embedding.model" in warning and "en/readme.md" not in warning
    assert "Han (Chinese, Japanese kanji): zh/量化.md, zh/隐私.md, zh/烹饪.md" in warning
    assert "Hangul (Korean): ko/양자화.md" in warning
    english_only = UnreadScripts(MODEL, lambda: model_tokenizer(MODEL))
    english_only.check("en/readme.md", "Run large language models on your own laptop.")
    assert english_only.warning() is None


@pytest.fixture(scope="module")
def notes_index(tmp_path_factory) -> rag.Settings:
    folder = tmp_path_factory.mktemp("cjk-notes")
    write_files(folder, NOTES)
    settings = make_settings(tmp_path_factory.mktemp("cjk-notes-home"))
    rag.ingest([folder], settings)
    return settings


def declined(settings: rag.Settings, question: str) -> bool:
    """Whether the chain answers "nothing relevant", in the question's language, without asking the model."""
    prompt = partial(text_prompt, "plain", "qa")
    chain = build_rag_chain(IndexRetriever.from_settings(settings), prompt, FakeListLLM(responses=["guess"]))
    state = chain.invoke({"question": question})
    assert state["language"] == ("ko" if any("가" <= char <= "힣" for char in question) else "zh")
    return state["answer"] == languages.texts(state["language"]).no_context


@pytest.mark.parametrize("question,source", [("大型语言模型怎样减少内存占用？", "zh/量化.md"), ("양자화는 무엇인가요?", "ko/양자화.md")])
def test_hybrid_search_finds_the_page_by_the_words_inside_a_run(notes_index, question, source):
    assert rag.search(question, notes_index, 3, mode="hybrid")[0].source.endswith(source)


@pytest.mark.parametrize("question", ["秘鲁的首都是哪里？", "페루의 수도는 어디입니까?"])
def test_an_off_topic_question_the_model_cannot_read_is_declined(notes_index, question):
    assert declined(notes_index, question)


@pytest.mark.parametrize("question,source", [("什么是量化？", "zh/量化.md"), ("프롬프트 형식이 필요한가요?", "ko/프롬프트.md")])
def test_a_question_the_model_cannot_read_is_answered_from_the_page_holding_its_words(notes_index, question, source):
    documents = IndexRetriever.from_settings(notes_index).invoke(question)
    assert any(doc.metadata["source"].endswith(source) for doc in documents)
    assert not any(doc.metadata["source"].endswith(("烹饪.md", "요리.md")) for doc in documents)


def test_hangul_written_as_separate_jamo_is_indexed_and_shown_as_the_syllables_questions_are_typed_in(tmp_path):
    # macOS, and PDFs made on it, can write Hangul decomposed (NFD): 회 as ᄒ + ᅬ.
    note = "# 회의실 변경\n\n다음 주부터 주간 회의는 C305 회의실에서 열립니다. 예약은 엘린이 합니다.\n"
    decomposed = unicodedata.normalize("NFD", note)
    assert decomposed != note
    write_files(tmp_path / "notes", {"회의.md": decomposed, **{name: text for name, text in NOTES.items() if name.startswith("ko/")}})
    settings = make_settings(tmp_path / "home")
    rag.ingest([tmp_path / "notes"], settings)
    [hit] = rag.search("주간 회의는 어느 회의실에서 열리나요?", settings, 1, mode="hybrid")
    assert hit.source.endswith("회의.md") and "C305 회의실에서 열립니다" in hit.text and hit.location["heading"] == "회의실 변경"
    assert not declined(settings, "주간 회의는 어느 회의실에서 열리나요?")


requires_guide = pytest.mark.skipif(
    not (CHINESE_GUIDE.is_file() and KOREAN_GUIDE.is_file()),
    reason=f"the Chinese and Korean 'Run models locally' guide is not at {GUIDE} (shared realdocs data)",
)


@pytest.fixture(scope="module")
def guide_index(tmp_path_factory) -> rag.Settings:
    settings = make_settings(tmp_path_factory.mktemp("cjk-guide-home"))
    rag.ingest([GUIDE], settings)
    return settings


def texts(settings: rag.Settings, query: str, mode: str, k: int = 5) -> list[str]:
    return [hit.text for hit in rag.search(query, settings, k, mode=mode)]


@requires_guide
@pytest.mark.parametrize("phrase,guide", [("大型语言模型", CHINESE_GUIDE), ("量化", CHINESE_GUIDE), ("양자화", KOREAN_GUIDE)])
def test_keyword_search_finds_every_top_chunk_by_a_word_inside_runs(guide_index, phrase, guide):
    every_chunk = texts(guide_index, phrase, "dense", k=rag.status(guide_index).chunks)
    holding = sum(phrase in text for text in every_chunk)
    assert holding >= 3
    hits = rag.search(phrase, guide_index, 5, mode="keyword")
    assert len(hits) == min(5, holding) and all(phrase in hit.text and hit.source == str(guide) for hit in hits)


@requires_guide
@pytest.mark.parametrize(
    "question,expected",
    [
        ("如何用Ollama下载模型？", "ollama pull"),  # the Ollama section
        ("在本地运行模型有什么好处？", "两个重要的好处"),  # the use case: two important benefits
        ("如何在Apple设备上使用GPU？", "自动利用 Apple 设备上的 GPU"),  # running on Apple silicon GPUs
        ("양자화란 무엇인가요?", "양자화"),
        ("Ollama로 모델을 다운로드하는 방법", "ollama pull"),
        ("로컬에서 모델을 실행하면 어떤 이점이 있나요?", "중요한 이점"),
    ],
)
def test_hybrid_search_finds_the_section_a_reader_would_pick(guide_index, question, expected):
    found = texts(guide_index, question, "hybrid", k=3)
    assert any(expected in text for text in found), found


@requires_guide
@pytest.mark.parametrize("question", ["秘鲁的首都是哪里？", "今天天气怎么样？", "페루의 수도는 어디입니까?"])
def test_an_off_topic_question_on_the_guide_is_declined(guide_index, question):
    assert declined(guide_index, question)


@requires_guide
@pytest.mark.parametrize(
    "question,expected,guide", [("什么是量化？", "量化", CHINESE_GUIDE), ("양자화란 무엇인가요?", "양자화", KOREAN_GUIDE)]
)
def test_a_question_on_the_guide_is_answered_from_its_languages_page_led_by_the_chunks_that_hold_its_words(
    guide_index, question, expected, guide
):
    documents = IndexRetriever.from_settings(guide_index).invoke(question)
    assert documents and expected in documents[0].page_content
    assert {doc.metadata["source"] for doc in documents} == {str(guide)}


@requires_guide
def test_ingest_warns_about_both_guides_and_no_english_page():
    check = UnreadScripts(MODEL, lambda: model_tokenizer(MODEL))
    for path in (CHINESE_GUIDE, KOREAN_GUIDE, REPO / "README.md"):
        check.check(path.name, path.read_text(encoding="utf-8"))
    assert check.sources == {"Han (Chinese, Japanese kanji)": ["local_llms.zh.md"], "Hangul (Korean)": ["local_llms.ko.md"]}
