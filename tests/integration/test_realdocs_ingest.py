"""The real documents (tests/helpers.REALDOCS, read where they are): every file loads, and search
over an ingested part of them cites the notebook cell, heading and lines a phrase is in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rag
from tests.conftest import make_settings
from tests.helpers import REALDOCS, requires_realdocs

pytestmark = requires_realdocs
# The one file with nothing to index: Mintlify component definitions, JSX without a word of text.
COMPONENTS_ONLY = "chroma-docs/snippets/callout.mdx"


def test_every_real_document_loads(tmp_path):
    report = rag.ingest([REALDOCS], make_settings(tmp_path), dry_run=True)
    assert report.failed == []
    assert report.skipped == [(str(REALDOCS / COMPONENTS_ONLY), "no text to index")]
    files = [path for path in REALDOCS.rglob("*") if path.is_file()]
    assert len(report.added) == len(files) - 1  # every file but that one: none ignored, none unread
    assert report.chunks_added > 3000


@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    # The headings below are those of chunks sized in all-MiniLM-L6-v2's word pieces; with the Korean
    # and Chinese guides beside them, auto would choose the multilingual model, whose chunks differ.
    settings = make_settings(tmp_path_factory.mktemp("realdocs-home"), embedding={"model": "sentence-transformers/all-MiniLM-L6-v2"})
    report = rag.ingest([REALDOCS / "chroma-notebooks", REALDOCS / "langchain-local-llms"], settings)
    assert len(report.added) == 8 and not report.failed and not report.skipped
    return settings


def cell_holding(notebook: Path, phrase: str) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return next(number for number, cell in enumerate(cells, start=1) if phrase in "".join(cell["source"]))


def line_holding(path: Path, phrase: str) -> int:
    return next(number for number, line in enumerate(path.read_text().splitlines(), start=1) if phrase in line)


@pytest.mark.parametrize(
    ("notebook", "phrase", "heading"),
    [
        ("late_chunking.ipynb", "Late chunking works best with Chroma when a group of documents share similar context",
         "Late Chunking > Documents & When to use Late Chunking"),
        ("where_filtering.ipynb", "Get documents that are about global affairs or domestic policy", "Where Filtering"),
    ],
    ids=["markdown cell", "code cell"],
)
def test_a_phrase_in_a_notebook_cell_is_cited_by_that_cell(ingested, notebook, phrase, heading):
    [hit] = rag.search(phrase, ingested, k=1)
    assert hit.source == str(REALDOCS / "chroma-notebooks" / notebook)
    cell = cell_holding(REALDOCS / "chroma-notebooks" / notebook, phrase)
    assert hit.location["cell"] <= cell <= hit.location.get("end_cell", hit.location["cell"]), hit.location_label
    assert hit.location["heading"] == heading


@pytest.mark.parametrize(
    ("name", "phrase", "heading"),
    [
        ("local_llms.ko.md", "그래픽 및 컴퓨팅 API", "로컬에서 모델 실행하기 > 환경 > Apple 실리콘 GPU 실행"),
        ("local_llms.zh.md", "由 Apple 创建的图形和计算", "在本地运行模型 > 环境 > 运行 Apple 硅 GPU"),
    ],
    ids=["Korean", "Chinese"],
)
def test_a_korean_or_chinese_phrase_is_cited_by_its_heading_and_lines(ingested, name, phrase, heading):
    [hit] = rag.search(phrase, ingested, k=1)
    path = REALDOCS / "langchain-local-llms" / name
    assert hit.source == str(path)
    assert hit.location["heading"] == heading
    assert hit.location["start_line"] <= line_holding(path, phrase) <= hit.location["end_line"], hit.location_label
    assert phrase in hit.text
