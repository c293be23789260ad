"""Hybrid retrieval, its explanation, filters, and the evaluation metrics."""

from __future__ import annotations

import json
import math
import shutil

import pytest
from typer.testing import CliRunner

import rag
from rag.cli import app
from rag.evaluation import mrr_at, ndcg_at, recall_at
from tests.conftest import SAMPLE_NOTES, make_settings
from tests.helpers import FIXTURE_CORPUS, write_beir_fixture

runner = CliRunner()


@pytest.mark.fast
def test_metrics_on_a_hand_made_example():
    ranked = ["d1", "d2", "d3"]
    binary = {"d2": 1, "d4": 1}
    assert ndcg_at(ranked, binary, 10) == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert ndcg_at(ranked, binary, 10) == pytest.approx(0.386853, abs=1e-6)
    assert recall_at(ranked, binary, 10) == 0.5
    assert recall_at(ranked, binary, 1) == 0.0
    assert mrr_at(ranked, binary, 10) == 0.5
    assert mrr_at(ranked, binary, 1) == 0.0
    graded = {"d1": 2, "d3": 1}
    assert ndcg_at(["d3", "d1"], graded, 10) == pytest.approx((1 + 2 / math.log2(3)) / (2 + 1 / math.log2(3)))
    assert ndcg_at(["d1", "d3"], graded, 10) == 1.0
    assert ndcg_at([], graded, 10) == 0.0


@pytest.mark.fast
def test_fusion_by_weighted_scores_and_by_reciprocal_rank():
    from rag.retrieval import fuse
    from rag.settings import SearchSettings

    dense, keyword = [("a", 0.9), ("b", 0.5), ("c", 0.1)], [("c", 8.0), ("d", 2.0)]
    # min-max: a 1, b 0.5, c 0 and c 1, d 0; each ranking weighed by its separation, 1 minus the mean of
    # its top 10 scaled scores (empty places count as its lowest): 1 - 1.5/10 = 0.85 and 1 - 1/10 = 0.9
    weighted = fuse(dense, keyword, SearchSettings(dense_weight=0.5))
    assert {c: pytest.approx(v.fused_score) for c, v in weighted.items()} == {"a": 0.425, "b": 0.2125, "c": 0.45, "d": 0.0}
    assert (weighted["c"].dense_rank, weighted["c"].keyword_rank, weighted["d"].dense_rank) == (3, 1, None)
    rrf = fuse(dense, keyword, SearchSettings(fusion="rrf", dense_weight=0.5, rrf_k=60))
    assert {c: pytest.approx(v.fused_score) for c, v in rrf.items()} == {
        "a": 0.425 / 61, "b": 0.425 / 62, "c": 0.425 / 63 + 0.45 / 61, "d": 0.45 / 62,
    }


@pytest.mark.fast
def test_mmr_picks_the_unlike_chunk_over_a_copy_once_diversity_counts():
    import numpy as np

    from rag.retrieval import mmr_select

    query = np.array([1.0, 0.0])
    vectors = {"a": np.array([1.0, 0.0]), "copy-of-a": np.array([1.0, 0.0]), "b": np.array([0.8, 0.6])}
    ranked = ["a", "copy-of-a", "b"]
    assert mmr_select(query, ranked, vectors, 2, diversity=0.0) == ["a", "copy-of-a"]  # relevance only
    # copy-of-a: 0.4 * 1 - 0.6 * 1 = -0.2; b: 0.4 * 0.8 - 0.6 * 0.8 = -0.16
    assert mmr_select(query, ranked, vectors, 2, diversity=0.6) == ["a", "b"]
    assert mmr_select(query, ranked, vectors, 5, diversity=0.6) == ["a", "b", "copy-of-a"]




@pytest.mark.fast
@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda f: (f / "queries.jsonl").write_text('{"_id": "q1", "text": "QX-7731"}\n{"_id": "q2", "text": \n'),
         "queries.jsonl:2: not valid JSON (Expecting value); each line holds one JSON object."),
        (lambda f: (f / "corpus.jsonl").write_text('{"title": "no id", "text": "a"}\n'),
         "corpus.jsonl:1: a line without '_id'."),
        (lambda f: (f / "qrels" / "test.tsv").write_text("q1\tpump-7731\t1\n"),
         "test.tsv needs the header line query-id<TAB>corpus-id<TAB>score (BEIR's qrels format); "
         "its first line is q1<TAB>pump-7731<TAB>1."),
        (lambda f: (f / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\tpump-7731\thigh\n"),
         "test.tsv:2: score 'high' is not a whole number."),
        (lambda f: (f / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\nq1\tpump-7731\t1\nq9\tpump-7731\t1\nq1\tpump-0000\t1\n"),
         "test.tsv judges 1 query queries.jsonl lacks (q9) and 1 document corpus.jsonl lacks (pump-0000): "
         "give the qrels file of this dataset (--qrels)."),
        (lambda f: (f / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq1 pump-7731 1\n"),
         "test.tsv:2: a line holds query-id, corpus-id and score, separated by tabs."),
        (lambda f: (f / "corpus.jsonl").write_text('{"_id": "a", "text": "one"}\n{"_id": "a", "text": "two"}\n'),
         "corpus.jsonl:2: the _id 'a' is used twice; ids must be unique."),
        (lambda f: shutil.rmtree(f), "fixture: evaluation needs a BEIR folder (corpus.jsonl, queries.jsonl, qrels/*.tsv)."),
    ],
    ids=["bad-json", "no-id", "qrels-without-header", "bad-score", "unknown-ids", "spaces", "twice", "no-folder"],
)
def test_a_damaged_beir_folder_is_one_line_naming_the_place(tmp_path, damage, message):
    dataset = write_beir_fixture(tmp_path / "fixture")
    damage(dataset)
    result = runner.invoke(app, ["eval", str(dataset)], env={"RAG_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("Error: ") and result.stderr.endswith(message + "\n"), result.stderr
    assert not (tmp_path / "home").exists(), "nothing was ingested"


def test_rag_eval_reports_every_mode_and_hybrid_beats_both(home, tmp_path):
    dataset = write_beir_fixture(tmp_path / "fixture")
    result = runner.invoke(app, ["eval", str(dataset), "--json"], env={"RAG_HOME": str(home)})
    assert result.exit_code == 0, result.output
    reports = {report["mode"]: report for report in json.loads(result.stdout)}
    assert set(reports) == {"dense", "keyword", "hybrid"}
    for report in reports.values():
        assert set(report) == {
            "mode", "queries", "ndcg_at_10", "recall_at_10", "recall_at_100", "mrr_at_10",
            "latency_p50_ms", "latency_p95_ms",
        }
        assert report["queries"] == 6
    print({mode: r["ndcg_at_10"] for mode, r in reports.items()})
    assert reports["hybrid"]["ndcg_at_10"] > reports["dense"]["ndcg_at_10"]
    assert reports["hybrid"]["ndcg_at_10"] > reports["keyword"]["ndcg_at_10"]
    assert reports["hybrid"]["mrr_at_10"] == 1.0

    again = runner.invoke(app, ["eval", str(dataset)], env={"RAG_HOME": str(home)})
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0].split() == ["mode", "nDCG@10", "R@10", "R@100", "MRR@10", "p50", "ms", "p95", "ms", "queries"]
    assert rag.status(make_settings(home, collection="eval-fixture")).files == len(FIXTURE_CORPUS)


def test_explain_shows_both_rankings_and_what_fusion_dropped(sample_index):
    settings, _ = sample_index
    result = runner.invoke(
        app, ["search", "SERIAL_BAUD 57600", "--explain", "--json", "-k", "2"], env={"RAG_HOME": str(settings.home)}
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["mode"] == "hybrid"
    fields = {"chunk_id", "dense_rank", "dense_score", "keyword_rank", "keyword_score", "fused_score", "dropped_by"}
    for hit in payload["hits"]:
        assert set(hit["explain"]) == fields
        assert hit["explain"]["fused_score"] == hit["score"]
    assert payload["hits"][0]["source"].endswith("calibrate.py")
    assert payload["hits"][0]["explain"]["keyword_rank"] == 1
    for dropped in payload["dropped"]:
        assert set(dropped) == fields and dropped["dropped_by"] == "fusion"
        assert min(r for r in (dropped["dense_rank"], dropped["keyword_rank"]) if r is not None) <= 2
    text = runner.invoke(app, ["search", "SERIAL_BAUD 57600", "--explain", "-k", "2"], env={"RAG_HOME": str(settings.home)})
    assert "   dense #" in text.stdout and "keyword #1 (" in text.stdout


def test_a_pages_opening_is_its_first_chunk(sample_index):
    from rag.retrieval import opening_names

    settings, _ = sample_index
    trip = str(SAMPLE_NOTES / "personal" / "travel" / "lofoten-2024.md")
    # The trip's title opens the page; Reine, where it is based, first comes in the next section.
    assert opening_names(trip, ["Lofoten", "august"], settings)
    assert not opening_names(trip, ["Reine"], settings)
    assert not opening_names(trip, ["Lofoten", "Brandt"], settings)
    assert not opening_names(str(SAMPLE_NOTES / "no-such-file.md"), ["Lofoten"], settings)


@pytest.mark.parametrize("mode", ["dense", "keyword", "hybrid"])
def test_every_mode_finds_an_identifier_and_keyword_mode_needs_no_model(sample_index, mode):
    settings, _ = sample_index
    hits = rag.search("RSH-55921 booking reference", settings, k=3, mode=mode)
    assert hits[0].source == str(SAMPLE_NOTES / "personal/travel/lofoten-2024.md")
    assert (hits[0].similarity is None) == (mode == "keyword")


def test_filters_by_metadata_and_path_glob(sample_index):
    settings, _ = sample_index
    pdf = str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")
    on_page_3 = rag.search("maintenance", settings, k=5, where={"source": pdf, "page": 3})
    assert on_page_3.hits and all(h.source == pdf and h.location["page"] == 3 for h in on_page_3)
    personal = rag.search("budget and money", settings, k=10, paths=[str(SAMPLE_NOTES / "personal" / "*")])
    assert personal.hits and all(h.source.startswith(str(SAMPLE_NOTES / "personal")) for h in personal)
    assert rag.search("anything", settings, paths=["/nowhere/*"]).hits == []
    cli = runner.invoke(
        app, ["search", "warranty", "--where", f"source={pdf}", "--json"], env={"RAG_HOME": str(settings.home)}
    )
    assert {hit["source"] for hit in json.loads(cli.stdout)} == {pdf}
    bad = runner.invoke(app, ["search", "warranty", "--where", "page"], env={"RAG_HOME": str(settings.home)})
    assert bad.exit_code == 2 and "--where takes KEY=VALUE" in bad.stderr


def test_mmr_trades_redundancy_for_coverage(sample_index):
    settings, _ = sample_index
    plain = rag.search("reflow oven", settings, k=4, mode="dense")
    diverse = rag.search("reflow oven", settings, k=4, mode="dense", mmr=True)
    assert diverse.hits[0].chunk_id == plain.hits[0].chunk_id  # the best match stays first
    assert len({h.chunk_id for h in diverse}) == 4
    assert diverse.dropped and all(c.dropped_by == "mmr" for c in diverse.dropped)


def test_keyword_index_follows_the_files(notes, home):
    settings = make_settings(home)
    rag.ingest([notes], settings)
    recipe = notes / "personal/recipes/cardamom-buns.md"
    assert rag.search("Kardemummabullar", settings, mode="keyword")[0].source == str(recipe)
    recipe.write_text("# Buns\n\nNow a plain recipe for zucchini bread.\n")
    rag.ingest([notes], settings)
    assert rag.search("Kardemummabullar", settings, mode="keyword").hits == []
    assert rag.search("zucchini", settings, mode="keyword")[0].source == str(recipe)
    recipe.unlink()
    rag.ingest([notes], settings)
    assert rag.search("zucchini", settings, mode="keyword").hits == []


def test_search_after_a_rebuild_in_the_same_process(notes, home):
    settings = make_settings(home)
    rag.ingest([notes], settings)
    assert rag.search("baud rate", settings, k=1).hits
    rag.ingest([notes], settings, rebuild=True)
    hit = rag.search("What baud rate does the calibration script use?", settings, k=1)[0]
    assert hit.source.endswith("calibrate.py")
