"""Retrieval over the ingested sample corpus: each question has its answer in exactly one file."""

from __future__ import annotations

from pathlib import Path

import pytest

import rag
from ingest.embedding import LocalEmbeddings
from tests.conftest import SAMPLE_NOTES
from tests.helpers import QUESTIONS, assert_ranks_first



@pytest.mark.parametrize("question,expected", QUESTIONS, ids=[Path(f).name for _, f in QUESTIONS])
def test_search_ranks_the_right_file_first(sample_index, question, expected):
    assert_ranks_first(sample_index[0], question, expected)


def test_pdf_hits_carry_their_page(sample_index):
    settings, _ = sample_index
    hit = rag.search("When does the warranty of the Brandt RO-350 reflow oven end?", settings, k=1)[0]
    assert hit.location == {"page": 2}
    assert "4 October 2025" in hit.text
    assert hit.location_label == "page 2"


def test_the_python_api_refuses_a_k_or_mode_it_cannot_take_and_reads_one_path_pattern(sample_index):
    from rag.errors import UsageError

    settings, _ = sample_index
    for options, message in [
        ({"mode": "fuzzy"}, "mode is one of dense, keyword, hybrid; got 'fuzzy'."),
        ({"k": 0}, "k is how many chunks to return, a whole number of at least 1; got 0."),
        ({"k": "3"}, "k is how many chunks to return, a whole number of at least 1; got '3'."),
    ]:
        with pytest.raises(UsageError) as refused:
            rag.search("oven", settings, **options)
        assert str(refused.value) == message
        with pytest.raises(UsageError) as refused:  # the retriever too, when it is made
            rag.retriever(settings, **options)
        assert str(refused.value) == message
    recipes = str(SAMPLE_NOTES / "personal/recipes/*")
    hits = rag.search("oven temperature", settings, k=3, paths=recipes)  # a string: one pattern, not its letters
    assert hits and {Path(hit.source).name for hit in hits} == {"cardamom-buns.md"}


def test_a_file_name_macos_spells_decomposed_is_found_by_the_name_as_typed(tmp_path):
    import unicodedata

    from tests.conftest import make_settings

    typed = "회의메모.md"
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / unicodedata.normalize("NFD", typed)).write_text("# 회의\n\n예산은 1,250만 원으로 승인되었습니다.\n")
    settings = make_settings(tmp_path / "home")
    rag.ingest([tmp_path / "notes"], settings)
    for pattern in (str(tmp_path / "notes" / typed), str(tmp_path / "notes" / "회의*")):
        hits = rag.search("예산 승인", settings, k=3, paths=[pattern])
        assert hits and unicodedata.normalize("NFC", Path(hits[0].source).name) == typed, pattern
    assert [Path(listed.path).name for listed in rag.files(settings, [str(tmp_path / "notes" / typed)])] == [
        unicodedata.normalize("NFD", typed)
    ]


def test_markdown_hits_carry_heading_path_and_exact_lines(sample_index):
    settings, _ = sample_index
    hit = rag.search("What soil pH did the 2023 soil test of the allotment show?", settings, k=1)[0]
    assert hit.location["heading"] == "Allotment Plan 2024 > Soil and compost"
    assert hit.text.startswith("Allotment Plan 2024 > Soil and compost\n\n")
    lines = Path(hit.source).read_text().splitlines()
    assert hit.body in "\n".join(lines[hit.location["start_line"] - 1 : hit.location["end_line"]])


def test_every_chunk_fits_the_embedding_window_and_cites_real_lines(sample_index):
    settings, _ = sample_index
    counter = LocalEmbeddings(settings.embedding, settings.cache_path).token_counter
    assert counter.window == 254  # all-MiniLM-L6-v2 reads 256 word pieces, two of them special
    hits = rag.search("anything", settings, k=1000)
    assert len(hits) == sum(1 for _ in hits) > 100
    for hit in hits:
        assert counter.count(hit.text) <= settings.chunking.tokens_for(settings.embedding.model) <= counter.window
        if "start_line" in hit.location:
            lines = Path(hit.source).read_text().splitlines()
            cited = "\n".join(lines[hit.location["start_line"] - 1 : hit.location["end_line"]])
            assert hit.body in cited, (hit.source, hit.location)


def test_html_loader_drops_page_furniture(sample_index):
    settings, _ = sample_index
    html = str(SAMPLE_NOTES / "work/intranet/office-it-essentials.html")
    texts = " ".join(h.text for h in rag.search("intranet page", settings, k=1000) if h.source == html)
    assert "VLAN 240" in texts
    for noise in ("function(", "{color", "cookie", "<div"):
        assert noise not in texts


def test_docx_headings_become_the_heading_path(sample_index):
    settings, _ = sample_index
    hit = rag.search("How many days of paid vacation per year do employees get?", settings, k=1)[0]
    assert hit.location["heading"].endswith("Working Hours and Time Off > Vacation")
    assert "28 days" in hit.text


def test_every_embedding_path_gives_the_same_vectors(sample_index):
    """ONNX Runtime (the fused graph), torch in float32, and the bulk paths of large ingests:
    bfloat16 (CPUs with native bfloat16) and int8 matrix products (other CPUs)."""
    import numpy as np

    settings, _ = sample_index
    texts = [question for question, _ in QUESTIONS] + [(SAMPLE_NOTES / path).read_text()[:900] for _, path in QUESTIONS[:3]]
    onnx = LocalEmbeddings(settings.embedding, settings.cache_path)
    torch_fp32 = LocalEmbeddings(settings.embedding.model_copy(update={"runtime": "torch"}), settings.cache_path)
    reference = onnx.encode(texts)
    assert np.allclose(np.linalg.norm(reference, axis=1), 1.0, atol=1e-5)
    assert np.min(np.sum(reference * torch_fp32.encode(texts), axis=1)) > 0.99999
    for path, agreement in (("bfloat16-torch", 0.999), ("int8-onnx", 0.95)):
        bulk = onnx._encoder(path)(texts)
        assert np.allclose(np.linalg.norm(bulk, axis=1), 1.0, atol=1e-5), path
        assert np.min(np.sum(reference * bulk, axis=1)) > agreement, path


# Cosine similarities closer than this are a tie int8's rounding may turn either way.
NEAR_TIE = 0.01


def test_int8_chunk_vectors_find_the_same_chunks_as_float32(sample_index):
    """What int8 must keep: for every question, the chunk nearest its float32 vector among the
    sample notes' chunks' int8 vectors is the nearest among their float32 vectors too (queries stay
    float32), or one the float32 vectors hold as near: int8's rounding may turn such a tie (on a
    CPU without AVX-512 it picks the calibration script's next chunk, the one stating the baud rate)."""
    import numpy as np

    from ingest.index import Index

    settings, _ = sample_index
    store = Index(settings).store
    chunks = store.get(sorted(store.ids()))
    texts = [chunk.text for chunk in chunks.values()]
    embedder = LocalEmbeddings(settings.embedding, settings.cache_path)
    questions = embedder.encode([question for question, _ in QUESTIONS])
    float32 = embedder.encode(texts)
    int8 = embedder._encoder("int8-onnx")(texts)
    assert len(texts) > 50
    float32_scores = questions @ float32.T
    nearest_in_int8 = np.argmax(questions @ int8.T, axis=1)
    missed = float32_scores.max(axis=1) - float32_scores[np.arange(len(questions)), nearest_in_int8]
    assert list(missed <= NEAR_TIE) == [True] * len(questions), missed


def test_a_large_ingest_embeds_in_int8_on_a_cpu_without_native_bfloat16(monkeypatch):
    from ingest import embedding
    from rag.settings import EmbeddingSettings

    monkeypatch.setattr(embedding, "cpu_flags", lambda: frozenset({"avx2", "fma"}))
    settings = EmbeddingSettings()
    assert embedding.embedding_path(settings, bulk=True) == (
        "int8-onnx", "a large ingest on a CPU without native bfloat16 (neither avx512_bf16 nor amx_bf16)"
    )
    assert embedding.embedding_path(settings, bulk=False) == ("float32-onnx", "a query or a small ingest")
    assert embedding.embedding_path(settings.model_copy(update={"runtime": "onnx"}), bulk=True) == (
        "float32-onnx", "embedding.runtime is 'onnx'"
    )
    monkeypatch.setattr(embedding, "cpu_flags", lambda: frozenset({"avx2", "avx512_bf16"}))
    assert embedding.embedding_path(settings, bulk=True)[0] == "bfloat16-torch"


def test_a_graph_the_quantizer_cannot_handle_is_embedded_in_float32(sample_index, monkeypatch, tmp_path):
    import shutil

    import numpy as np

    from ingest import embedding
    from ingest.embedding import onnx_encoder

    settings, _ = sample_index
    cache = tmp_path / "cache"
    shutil.copytree(settings.cache_path / "onnx", cache / "onnx", ignore=shutil.ignore_patterns("*-int8-*"))

    def refuse(float32_file, target):
        target.write_bytes(b"half a graph")
        raise RuntimeError("an operator the quantizer does not know")

    monkeypatch.setattr(onnx_encoder, "_quantize", refuse)
    monkeypatch.setattr(embedding, "cpu_flags", lambda: frozenset({"avx2"}))
    embedder = LocalEmbeddings(settings.embedding, cache)
    embedder.bulk = True
    assert embedder.path[0] == "int8-onnx"
    texts = [question for question, _ in QUESTIONS[:4]]
    vectors = embedder.encode(texts)
    assert embedder.path == ("float32-onnx", "the model's graph could not be quantized to int8 (RuntimeError)")
    assert np.allclose(vectors, LocalEmbeddings(settings.embedding, cache).encode(texts), atol=1e-6)
    assert not [f.name for f in (cache / "onnx").iterdir() if "int8" in f.name]


def test_copies_of_a_model_share_one_onnx_export_and_older_exports_are_removed(tmp_path):
    """A reinstall (new virtualenv, new mtimes) must not leave another 90 MB export behind."""
    import shutil

    import numpy as np

    from ingest.embedding import onnx_encoder, resolve_model_path

    packaged = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    first, second = tmp_path / "venv-a" / "model", tmp_path / "venv-b" / "model"
    shutil.copytree(packaged, first)
    shutil.copytree(packaged, second)
    cache = tmp_path / "cache"
    (cache / "onnx").mkdir(parents=True)
    older = [cache / "onnx" / "model-0123456789abcdef.onnx", cache / "onnx" / "model-0123456789abcdef-v1.onnx"]
    for stale in older:
        stale.write_bytes(b"an export of an earlier version")

    export = onnx_encoder.cached_export(first, cache)
    exported_at = export.stat().st_mtime_ns
    assert onnx_encoder.cached_export(second, cache) == export
    assert export.stat().st_mtime_ns == exported_at
    assert sorted((cache / "onnx").glob("*.onnx")) == [export]
    vector = onnx_encoder.load_encoder(export, second / "tokenizer.json", 256)(["harbor retention cleanup"], 1)
    assert np.allclose(np.linalg.norm(vector, axis=1), 1.0, atol=1e-5)


def test_a_model_of_another_architecture_embeds_alike_on_every_path(tmp_path):
    """Users point embedding.model at their own folders: MPNet (all-mpnet-base-v2's architecture) has
    no fused ONNX graph and no token types. Random weights, built here: nothing is downloaded."""
    import json
    import shutil

    import numpy as np
    import torch
    from transformers import MPNetConfig, MPNetModel

    from ingest.embedding import resolve_model_path
    from rag.settings import EmbeddingSettings

    packaged = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    model = tmp_path / "tiny-mpnet"
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=30527, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128)
    MPNetModel(config).save_pretrained(model)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt", "modules.json", "sentence_bert_config.json"):
        shutil.copy(packaged / name, model / name)
    pooling = json.loads((packaged / "1_Pooling" / "config.json").read_text())
    (model / "1_Pooling").mkdir()
    (model / "1_Pooling" / "config.json").write_text(json.dumps({**pooling, "word_embedding_dimension": 64}))

    texts = [question for question, _ in QUESTIONS[:4]]
    settings = EmbeddingSettings(model=str(model))
    reference = LocalEmbeddings(settings.model_copy(update={"runtime": "torch"}), tmp_path / "cache").encode(texts)
    onnx = LocalEmbeddings(settings, tmp_path / "cache")
    assert reference.shape == (4, 64)
    assert np.min(np.sum(reference * onnx.encode(texts), axis=1)) > 0.99999
    assert np.min(np.sum(reference * onnx._encoder("bfloat16-torch")(texts), axis=1)) > 0.999
    assert np.min(np.sum(reference * onnx._encoder("int8-onnx")(texts), axis=1)) > 0.95
