"""Chunking of real-world document shapes: each test is a small copy of a pattern found in real docs.

A TokenCounter needs only the packaged model's tokenizer.json (no torch, no model weights), so
these tests are fast. The last tests run the chunk-quality report on ../shared/data/realdocs.
"""

from __future__ import annotations

import importlib.util
import io
import re
import sys
from pathlib import Path

import pytest

from ingest.chunking.chunker import MIN_TEXT_CHARS, Chunker, text_chars
from ingest.embedding import LocalEmbeddings
from ingest.loaders import load_docx, load_html, load_markdown, load_mdx, load_plain, load_rst, loader_for
from rag.settings import ChunkingSettings, load_settings
from tests.conftest import REPO
from tests.helpers import REALDOCS, requires_realdocs


def _load_bench():
    spec = importlib.util.spec_from_file_location("chunk_quality", REPO / "bench" / "chunk_quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


chunk_quality = _load_bench()


@pytest.fixture(scope="module")
def counter(tmp_path_factory):
    home = tmp_path_factory.mktemp("chunking-home")
    settings = load_settings(environ={}, cwd=home, home=home)
    return LocalEmbeddings(settings.embedding, settings.cache_path).token_counter


@pytest.fixture(scope="module")
def chunker(counter):
    return Chunker(counter, ChunkingSettings())


def chunks_of(chunker, text: str, loader=load_markdown):
    return chunker.split(loader(text.encode()))


def body(chunk) -> str:
    return chunk_quality.chunk_body(chunk)


def file_lines(text: str, chunk) -> str:
    return "\n".join(text.split("\n")[chunk.metadata["start_line"] - 1 : chunk.metadata["end_line"]])


def assert_no_junk(chunks):
    assert [(chunk_quality.junk_reason(chunk), chunk.text) for chunk in chunks if chunk_quality.junk_reason(chunk)] == []


# From the Chinese/Korean "Run models locally" guide, a notebook export: "``````output" closes one
# fence and opens the next in a single line, and a ````markdown fence holds a ```python block.
NOTEBOOK_EXPORT = """# Run models locally

## Quickstart

```python
# Set our LLM
llm = Ollama(model="llama2")
llm.invoke("The first man on the moon was ...")
```
```output
...|
``````output
Neil| Armstrong|,| an| American| astronaut|.
```
Ollama also includes a chat model wrapper that handles formatting conversation turns.

## Prompts

````markdown
Here is how to call it:
```python
# Chain
chain = prompt | llm
```
````
Some LLMs will benefit from specific prompts.
"""


def test_fence_shapes_of_notebook_exports_never_make_code_comments_headings(chunker):
    chunks = chunks_of(chunker, NOTEBOOK_EXPORT)
    assert [(c.metadata["heading"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] == [
        ("Run models locally > Quickstart", 5, 15),
        ("Run models locally > Prompts", 19, 26),
    ]
    for chunk in chunks:
        assert body(chunk) == file_lines(NOTEBOOK_EXPORT, chunk)
    assert "# Chain" in chunks[1].text and "Some LLMs will benefit" in chunks[1].text


def test_setext_headings_give_the_heading_path(chunker):
    text = "User Guide\n==========\n\nThis guide explains the installation steps.\n\nInstalling\n----------\n\nRun the installer and accept the licence terms.\n"
    chunks = chunks_of(chunker, text)
    assert [(c.metadata["heading"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] == [
        ("User Guide", 4, 4),
        ("User Guide > Installing", 9, 9),
    ]


def test_a_headings_anchor_is_kept_in_the_index_and_the_prompt_and_left_out_where_it_is_shown(chunker):
    # As the Kubernetes translations keep the English anchors: `## 基础知识 {#basics}`.
    from langchain_core.documents import Document

    from rag.chain import source_label
    from rag.retrieval import location_label

    sections = {"# 你好 Minikube {#hello}": "本教程展示如何运行示例应用。", "## 基础知识  {#basics .intro}": "使用 minikube dashboard --url 获取链接。",
                "## Use {braces} in templates": "A template writes {name} for a value. "}
    text = "".join(f"{heading}\n\n{sentence * 40}\n\n" for heading, sentence in sections.items())
    chunks = chunks_of(chunker, text)
    headings = list(dict.fromkeys(c.metadata["heading"] for c in chunks))
    assert headings == ["你好 Minikube {#hello}", "你好 Minikube {#hello} > 基础知识 {#basics .intro}",
                        "你好 Minikube {#hello} > Use {braces} in templates"]
    shown = [location_label({"heading": heading}) for heading in headings]
    assert shown == ["§ 你好 Minikube", "§ 你好 Minikube > 基础知识", "§ 你好 Minikube > Use {braces} in templates"]
    basics = next(c for c in chunks if c.metadata["heading"] == headings[1])
    document = Document(basics.text, metadata={"source": "/notes/minikube.md", **basics.metadata})
    assert source_label(document, "minikube.md") == "minikube.md (§ 你好 Minikube > 基础知识, line 7)"
    assert source_label(document, "minikube.md", in_prompt=True) == f"minikube.md (§ {headings[1]}, lines 7-7)"


def test_yaml_front_matter_title_heads_the_chunks_and_is_no_chunk_text(chunker):
    # From the Chroma docs: the page title lives only in the front matter.
    text = '---\ntitle: "Streaming"\ndescription: "Stream results"\n---\n\nResults arrive in batches as the server produces them.\n\n## Options\n\nSet the batch size to trade latency for throughput.\n'
    chunks = chunks_of(chunker, text)
    assert [(c.metadata["heading"], c.metadata["start_line"]) for c in chunks] == [
        ("Streaming", 6),
        ("Streaming > Options", 10),
    ]
    assert not any("title:" in c.text or c.text.startswith("---") for c in chunks)


def test_a_first_heading_that_repeats_the_front_matter_title_is_not_doubled(chunker):
    text = "---\ntitle: Usage\n---\n# Usage\n\nThe command to run a prompt is llm prompt.\n"
    assert [c.metadata["heading"] for c in chunks_of(chunker, text)] == ["Usage"]


def test_toml_front_matter_title_heads_the_chunks(chunker):
    text = '+++\ntitle = "Release notes"\ndate = 2024-01-01\n+++\n\nVersion two removes the legacy sync command.\n'
    chunks = chunks_of(chunker, text)
    assert [(c.metadata["heading"], c.metadata["start_line"]) for c in chunks] == [("Release notes", 6)]
    assert "+++" not in chunks[0].text


def test_a_page_of_only_front_matter_gives_no_chunk(chunker):
    assert chunks_of(chunker, "---\ntitle: FAQ\n---\n") == []


def test_a_wide_table_repeats_its_header_and_separator_in_every_piece(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    rows = [f"| model-{n} | full | {n * 3} ms |" for n in range(40)]
    text = "# Models\n\n| name | support | latency |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    chunks = chunks_of(chunker, text)
    assert len(chunks) > 3
    seen = []
    for chunk in chunks:
        lines = body(chunk).split("\n")
        assert lines[:2] == ["| name | support | latency |", "|---|---|---|"]
        seen.extend(lines[2:])
        # The rows are the file's lines at the cited range (the first piece cites its real header too).
        cited = file_lines(text, chunk).split("\n")
        assert cited[-len(lines[2:]):] == lines[2:]
    assert seen == rows


def test_a_long_code_block_is_split_on_lines_and_fenced_again(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=60, overlap_tokens=0))
    code = [f"    result_{n} = compute(value_{n}, factor={n})" for n in range(30)]
    text = "# Script\n\n```python\n" + "\n".join(code) + "\n```\n"
    chunks = chunks_of(chunker, text)
    assert len(chunks) > 2
    seen = []
    for chunk in chunks:
        lines = body(chunk).split("\n")
        assert lines[0] == "```python" and lines[-1] == "```"
        seen.extend(lines[1:-1])
        assert set(lines[1:-1]) <= set(file_lines(text, chunk).split("\n"))
    assert seen == code
    # Every piece closes with a fence of its own: the file's closing fence (line 34) is cited by none.
    assert chunks[0].metadata["start_line"] == 3 and chunks[-1].metadata["end_line"] == 33


# From the Kubernetes tutorials (Korean and English alike): numbered steps, each a sentence and
# a command or its output indented under it.
STEPS = """# Expose a service

{steps}

Cleaning up comes last.
"""
STEP = """1. Look at the service number {n}:

    ```shell
    kubectl describe services my-service-{n}
    ```

    The output shows `NodePort` {port} for service {n}.
"""


def test_a_long_list_splits_between_its_blocks_never_inside_a_code_block(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    text = STEPS.format(steps="\n".join(STEP.format(n=n, port=32000 + n) for n in range(8)))
    chunks = chunks_of(chunker, text)
    assert len(chunks) > 3
    for chunk in chunks:
        fences = [line for line in body(chunk).split("\n") if line.strip().startswith("```")]
        # Each code block whole, with its opening and closing fence: no chunk starts or ends inside one.
        assert [fence.strip() for fence in fences] == ["```shell", "```"] * (len(fences) // 2), body(chunk)
        assert body(chunk) in text or body(chunk).split("\n\n", 1)[1] in text
    # Overlap 0: each step's sentence is in exactly one chunk.
    for n in range(8):
        assert sum(f"`NodePort` {32000 + n}" in chunk.text for chunk in chunks) == 1


def test_a_list_that_fits_a_chunk_is_not_split_to_fill_the_one_before(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    prose = "The pump is serviced every spring by the facilities team, who also log the pressure readings."
    steps = "1. Close the intake valve.\n2. Drain the housing.\n3. Replace the seal and the filter."
    chunks = chunks_of(chunker, f"# Pump\n\n{prose}\n\n{prose}\n\n{steps}\n")
    assert [steps in body(chunk) for chunk in chunks] == [False] * (len(chunks) - 1) + [True]


@pytest.mark.parametrize("introduction,block", [
    ("Start the cluster with enough memory:", "```shell\nminikube start --memory 5120 --cpus=4\n```"),
    ("用以下命令启动集群，内存要足够大：", "```shell\nminikube start --memory 5120 --cpus=4\n```"),
    ("클러스터를 시작한다", "```shell\nminikube start --memory 5120 --cpus=4\n```"),
    ("The two settings that matter:", "- `n_ctx`: the context window, 2048 tokens\n- `n_batch`: tokens evaluated at once, 512"),
])
def test_the_paragraph_introducing_a_block_moves_with_it_to_the_next_chunk(counter, introduction, block):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    prose = "The pump is serviced every spring by the facilities team, who also log the pressure readings."
    chunks = chunks_of(chunker, f"# Pump\n\n{prose}\n\n{prose}\n\n{prose}\n\n{introduction}\n\n{block}\n")
    assert [introduction in body(chunk) for chunk in chunks] == [False, True]
    assert f"{introduction}\n\n{block}" in body(chunks[1])


def test_a_paragraph_before_a_list_stays_unless_it_ends_in_a_colon(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    prose = "The pump is serviced every spring by the facilities team, who also log the pressure readings."
    steps = "- Close the intake valve and drain the housing.\n- Replace the seal and the filter, then log it."
    chunks = chunks_of(chunker, f"# Pump\n\n{prose}\n\n{prose}\n\n{prose}\n\nThe seal was replaced in May.\n\n{steps}\n")
    assert ["The seal was replaced in May." in body(chunk) for chunk in chunks] == [True, False]
    assert steps in body(chunks[1])


def test_base64_blobs_and_data_uris_are_dropped(chunker):
    # From llm's plugin docs: an attachment sent as base64 in a JSON example.
    blob = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg" * 3
    text = (
        "# Attachments\n\nImages are sent inline as base64 strings in the request body:\n\n```json\n"
        f'{{"type": "image", "data": "{blob}",\n "url": "data:image/png;base64,{blob[:60]}"}}\n```\n'
    )
    chunks = chunks_of(chunker, text)
    assert len(chunks) == 1
    assert blob[:40] not in chunks[0].text
    assert '"data": "…"' in chunks[0].text and '"url": "data:image/png;base64,…"' in chunks[0].text
    assert chunks[0].metadata["end_line"] - chunks[0].metadata["start_line"] == 5  # lines kept
    assert_no_junk(chunks)


def test_html_blocks_and_comments_are_reduced_to_their_text(chunker):
    text = "# FAQ\n\n<!-- TODO: update for v2 -->\n<details>\n<summary>Why is my index empty?</summary>\n\nThe folder had no supported files.\n</details>\n"
    chunks = chunks_of(chunker, text)
    assert len(chunks) == 1
    assert "<" not in chunks[0].text and "TODO" not in chunks[0].text
    assert "Why is my index empty?" in chunks[0].text and "no supported files" in chunks[0].text
    assert (chunks[0].metadata["start_line"], chunks[0].metadata["end_line"]) == (5, 7)


MDX_PAGE = """---
title: "Getting Started"
---
import { Callout } from '/snippets/callout.mdx';

<Callout>
For production, Chroma offers Chroma Cloud, a serverless database-as-a-service.
</Callout>

## Install

<Steps>
  <Step title="Install the client">
    <CodeGroup>
    ```bash pip
    # install from PyPI

    pip install chromadb
    ```
    </CodeGroup>
  </Step>
</Steps>

<ParamField path="ef_search" type="Optional[int]" />
"""


def test_mdx_components_reduce_to_their_text_and_imports_are_dropped(chunker):
    chunks = chunks_of(chunker, MDX_PAGE, load_mdx)
    assert loader_for(Path("page.mdx")) is load_mdx
    assert [c.metadata["heading"] for c in chunks] == ["Getting Started", "Getting Started > Install"]
    texts = "\n".join(c.text for c in chunks)
    assert "<" not in texts and "import" not in texts
    assert "serverless database-as-a-service" in chunks[0].text
    assert "Install the client" in chunks[1].text and "ef_search Optional[int]" in chunks[1].text
    # The fence after <CodeGroup> is code: its comment is no heading.
    assert "    # install from PyPI\n\n    pip install chromadb" in chunks[1].text
    assert (chunks[1].metadata["start_line"], chunks[1].metadata["end_line"]) == (13, 24)


def test_myst_targets_and_directives_are_no_text(chunker):
    text = "(usage)=\n# Usage\n\n```{note}\n:class: tip\nTemplates are stored in the templates folder.\n```\n\n```{toctree}\n---\nmaxdepth: 3\n---\nsetup\n```\n"
    chunks = chunks_of(chunker, text)
    assert [c.metadata["heading"] for c in chunks] == ["Usage"]
    assert body(chunks[0]) == "Templates are stored in the templates folder.\n\n\n\n\n\n\nsetup"


def test_small_sections_join_their_neighbour_under_the_shared_heading(chunker):
    text = "# Guide\n\n## Install\n\nSee below.\n\n### pip\n\nRun pip install chromadb in a fresh virtual environment.\n\n## Usage\n\nCreate a client, then a collection, then add documents.\n"
    chunks = chunks_of(chunker, text)
    assert [(c.metadata["heading"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] == [
        ("Guide > Install", 5, 9),
        ("Guide > Usage", 13, 13),
    ]
    assert body(chunks[0]) == "See below.\n\n### pip\n\nRun pip install chromadb in a fresh virtual environment."
    assert all(len(text_chars(body(c))) >= MIN_TEXT_CHARS for c in chunks)


def test_rst_titles_with_over_and_underlines_give_the_heading_path(chunker):
    text = (
        "==========\nUser Guide\n==========\n\nThis guide covers the command line.\n\n"
        "Installing\n----------\n\nRun the installer, then restart the shell.\n\n"
        "Configuring\n-----------\n\nEdit the config file in your home folder.\n"
    )
    chunks = chunks_of(chunker, text, load_rst)
    assert [(c.metadata["heading"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] == [
        ("User Guide", 5, 5),
        ("User Guide > Installing", 10, 10),
        ("User Guide > Configuring", 15, 15),
    ]
    assert not any("-----" in c.text or "=====" in c.text for c in chunks)


MAN_PAGE = """LS(1)\t\t\t\tUser Commands\t\t\t\tLS(1)

NAME
       ls - list directory contents

SYNOPSIS
       ls [OPTION]... [FILE]...

DESCRIPTION
       List information about the FILEs (the current directory by default).

OPTIONS
       -a, --all
              do not ignore entries starting with .
"""


def test_man_pages_chunk_by_their_sections(chunker):
    chunks = chunks_of(chunker, MAN_PAGE, load_plain)
    # SYNOPSIS alone is too short to be a chunk: it joins DESCRIPTION under the heading both share.
    assert [(c.metadata["heading"], c.metadata["start_line"], c.metadata["end_line"]) for c in chunks] == [
        ("LS(1) > NAME", 4, 4),
        ("LS(1)", 7, 10),
        ("LS(1) > OPTIONS", 13, 14),
    ]
    assert chunks[1].text == "LS(1)\n\nls [OPTION]... [FILE]...\n\nDESCRIPTION\n" + MAN_PAGE.split("\n")[9]


def test_a_plain_text_title_written_with_markdowns_marks_heads_the_chunks_without_them(chunker):
    note = "# 회의 메모\n\n신규 VPN 장비는 4월 7일에 교체합니다. 담당자는 김민수입니다.\n"
    [chunk] = chunks_of(chunker, note, load_plain)
    assert chunk.metadata["heading"] == "회의 메모"
    [closed] = chunks_of(chunker, note.replace("# 회의 메모", "## 회의 메모 ##"), load_plain)
    assert closed.metadata["heading"] == "회의 메모"
    [untitled] = chunks_of(chunker, note.replace("# 회의 메모", "#"), load_plain)
    assert "heading" not in untitled.metadata


def test_python_chunks_carry_their_enclosing_class_and_function(counter):
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=60, overlap_tokens=0))
    source = (
        "class Reading:\n"
        '    """One sensor reading, with the calibration it was taken under."""\n\n'
        "    def __init__(self, value, offset):\n        self.value = value\n        self.offset = offset\n\n"
        "    def calibrated(self):\n"
        '        """The value with the offset of the last calibration run taken off,\n'
        '        in the unit the sensor reports; the offset is measured against a reference."""\n'
        "        return self.value - self.offset\n\n"
        "    def __repr__(self):\n        return f'Reading(value={self.value!r}, offset={self.offset!r})'\n"
    )
    from ingest.loaders import code_loader

    chunks = chunker.split(code_loader("python")(source.encode()))
    repr_chunk = next(c for c in chunks if body(c).startswith("def __repr__"))
    assert repr_chunk.metadata["heading"] == "class Reading > def __repr__"
    assert repr_chunk.text.startswith("class Reading > def __repr__\n\n")


def test_docx_text_before_the_first_heading_gets_a_location(chunker):
    import docx

    document = docx.Document()
    document.add_paragraph("Welcome to the team. This handbook explains how we work together every day.")
    document.add_heading("Vacation", level=1)
    document.add_paragraph("Employees get 28 days of paid vacation per year.")
    buffer = io.BytesIO()
    document.save(buffer)
    chunks = chunker.split(load_docx(buffer.getvalue()))
    assert [c.metadata["heading"] for c in chunks] == ["Welcome to the team. This handbook explains how we work …", "Vacation"]


NAVIGATION_PAGE = b"""<html><head><title>Types - libffi</title></head><body>
<div class="sidebar" role="navigation"><ul><li>Introduction</li><li>Using libffi</li></ul></div>
<div class="header"><p>Next: <a href="x">Multiple ABIs</a>, Previous: <a href="y">Closures</a>, Up: <a href="z">Using libffi</a></p></div>
<h2>Types</h2>
<p>Every argument passed to a foreign function needs a type descriptor.</p>
<pre># describe a struct
ffi_type point = { 0, 0, FFI_TYPE_STRUCT, elements };</pre>
<button class="copy-button">copy</button>
</body></html>"""


def test_html_navigation_and_buttons_are_dropped_and_code_stays_code(chunker):
    chunks = chunker.split(load_html(NAVIGATION_PAGE))
    texts = "\n".join(c.text for c in chunks)
    assert [c.metadata["heading"] for c in chunks] == ["Types"]
    for noise in ("Introduction", "Next:", "Previous:", "copy\n", "Multiple ABIs"):
        assert noise not in texts
    assert "```\n# describe a struct\nffi_type point" in texts
    assert_no_junk(chunks)


def test_korean_is_sized_by_syllables_not_jamo_tokens(chunker, counter):
    sentence = "로컬에서 모델을 실행할 때 추론 속도가 도전 과제가 됩니다. "
    text = "# 환경\n\n" + "\n".join(sentence * 2 for _ in range(6)) + "\n"
    chunks = chunks_of(chunker, text)
    syllables = len(re.findall("[가-힣]", text))
    # Token-sized, these six lines would take three chunks (about 2.5 jamo tokens per syllable).
    assert counter.count(text) > 2 * chunker.chunk_tokens
    assert len(chunks) == 1 and syllables > 250
    assert chunker.size(chunks[0].text) <= chunker.chunk_tokens


def test_quality_report_counts_junk_of_the_old_kinds(chunker):
    from ingest.chunking.chunker import Chunk

    assert chunk_quality.junk_reason(Chunk("Usage\n\n```", {"heading": "Usage"})).startswith("under 20 characters")
    assert chunk_quality.junk_reason(Chunk("---\ntitle: FAQ\n---")) == "front matter"
    assert chunk_quality.junk_reason(Chunk("Next: Types, Previous: Intro, Up: Top\n\nSome more text here")) == "navigation or button text"
    assert chunk_quality.junk_reason(Chunk('{"data": "' + "iVBORw0KGgoAAAANSUhEUg" * 6 + '"}')) == "base64 data"
    assert chunk_quality.junk_reason(Chunk("Results arrive in batches as the server produces them.")) is None


@requires_realdocs
def test_every_realdocs_file_chunks_without_junk_or_headings_from_code(chunker):
    report = chunk_quality.quality_report(REALDOCS, chunker)
    assert report.files > 150 and not report.failed
    assert [(name, reason) for name, reason, _ in report.junk] == []
    assert [(name, detail) for name, detail, _ in report.code_headings] == []
    assert [(name, expected) for name, expected, _ in report.wrong_headings] == []
    assert all(name.endswith(".mdx") for name in report.chunks_per_file if name.startswith("chroma-docs/"))


@requires_realdocs
def test_realdocs_chunks_cite_the_lines_they_quote(chunker):
    """Every chunk's text, but for a repeated fence or table header, is its file's lines at start_line-end_line."""
    path = REALDOCS / "langchain-local-llms" / "local_llms.zh.md"
    text = path.read_text()
    chunks = chunker.split(load_markdown(path.read_bytes()))
    assert len({c.metadata["heading"] for c in chunks}) == 14  # the guide's sections, each with its own heading
    for chunk in chunks:
        assert any(part in file_lines(text, chunk) for part in without_repeated_context(body(chunk))), chunk.metadata


def without_repeated_context(text: str) -> list[str]:
    """text, and text less a fence repeated at its top and/or bottom (what a continued code block adds)."""
    lines = text.split("\n")
    top = lines[1:] if re.match(r"(`{3,}|~{3,})", lines[0]) else lines
    bottom = top[:-1] if re.fullmatch(r"`{3,}|~{3,}", top[-1]) else top
    return ["\n".join(candidate) for candidate in (lines, top, bottom)]


@pytest.mark.parametrize("kind", ["code", "table"])
def test_the_last_piece_of_a_split_block_is_never_a_fragment(counter, kind):
    # An API page's response example one line too long for two chunks: greedy filling leaves the
    # closing lines alone under the heading path; they take lines from the piece before instead.
    chunker = Chunker(counter, ChunkingSettings(chunk_tokens=80, overlap_tokens=0))
    if kind == "code":
        rows = [f'    "field_{n}": "value number {n} of the response",' for n in range(8)] + ["  }", "}"]
        text = "# API\n\n## Show Model Information\n\n### Response\n\n```json\n{\n  \"model\": {\n" + "\n".join(rows) + "\n```\n"
    else:
        rows = [f"| model-{n} | supports tools and vision | {n * 3} ms |" for n in range(9)]
        text = "# Models\n\n| name | support | latency |\n|---|---|---|\n" + "\n".join(rows) + "\n"
    chunks = chunks_of(chunker, text)
    assert len(chunks) >= 2
    sizes = [counter.count(body(chunk)) for chunk in chunks]
    assert all(size <= 80 for size in sizes), sizes
    assert min(sizes) >= 0.6 * max(sizes), sizes  # greedy filling made [59, 68, 25] and [73, 73, 34]
    seen = [line for chunk in chunks for line in body(chunk).split("\n")]
    assert all(row in seen for row in rows) and len(set(seen) & set(rows)) == len(rows)
