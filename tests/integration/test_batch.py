"""Batch jobs (`rag summarize`, `rag extract`) with the real packaged Gemma 3 270M through llama.cpp,
on a real index of a small corpus: records valid for their schema, provenance, the errors file,
and a job killed part way that resumes without losing or repeating an item."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import time

import jsonschema
import pytest
from typer.testing import CliRunner

import rag
from ingest.index import Index
from rag.batch.schema import bounded, fields_schema, merge, parse_reply
from rag.batch.selection import without_overlap
from rag.batch.jobs import pack
from rag.cli import app
from rag.errors import UsageError
from tests.helpers import INVOICES, write_files
from tests.conftest import installed_command, make_settings

runner = CliRunner()

DOCUMENTS = {
    **INVOICES,
    "notes/standup.txt": """Standup, 5 April 2024

Priya finished the firmware release notes. Jonas is still waiting for the Nordic Cables delivery.
Decision: the lab move happens on 20 April.
""",
}
INVOICE_FIELDS = "vendor:str, amount:float, people:list[str]"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(settings, folder): the small corpus ingested into its own index; settings for quick generation."""
    folder = tmp_path_factory.mktemp("batch-corpus")
    write_files(folder, DOCUMENTS)
    settings = make_settings(
        tmp_path_factory.mktemp("batch-home"), llm={"n_ctx": 1024}, batch={"max_tokens": 96, "temperature": 0.0}
    )
    rag.ingest([folder], settings)
    return settings, folder


def cli(settings, *args: str, **env: str):
    environment = {"RAG_HOME": str(settings.home), "RAG_BATCH__TEMPERATURE": "0", "RAG_LLM__N_CTX": "1024",
                   "RAG_BATCH__MAX_TOKENS": "96", **env}
    return runner.invoke(app, list(args), env=environment)


def indexed_chunks(settings) -> dict[str, list[str]]:
    return {path: record.chunk_ids for path, record in Index(settings).sources().items()}


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# -- the parts, without a model ------------------------------------------------------------------


@pytest.mark.fast
def test_fields_shorthand_is_a_bounded_schema_where_scalars_may_be_null():
    assert fields_schema("vendor:str, amount:float, paid:bool, count:int, tags:list[str]") == {
        "type": "object",
        "properties": {
            "vendor": {"type": ["string", "null"], "maxLength": 200},
            "amount": {"type": ["number", "null"]},
            "paid": {"type": ["boolean", "null"]},
            "count": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 200}, "maxItems": 10},
        },
        "required": ["vendor", "amount", "paid", "count", "tags"],
        "additionalProperties": False,
    }
    for bad in ("vendor", "vendor:text", "tags:list[date]", " , ", "vendor:str, vendor:int", "9lives:str"):
        with pytest.raises(UsageError):
            fields_schema(bad)
    # A field is named in the documents' language as well.
    assert list(fields_schema("航班号:str, 호텔:str, 型番:int")["properties"]) == ["航班号", "호텔", "型番"]


@pytest.mark.fast
def test_a_schema_of_anything_but_an_object_is_refused_before_the_model_runs():
    from rag.batch.schema import check_schema

    with pytest.raises(UsageError, match='^str.json describes a "string", and each record is a JSON object'):
        check_schema({"type": "string"}, "str.json")
    assert check_schema({"properties": {"a": {"type": "string"}}}) == {"properties": {"a": {"type": "string"}}}


@pytest.mark.fast
def test_a_schema_without_bounds_gets_them_sized_to_the_reply_budget():
    plain = {"type": "object", "properties": {"title": {"type": "string"}, "topics": {"type": "array", "items": {"type": "string"}}}}
    result = bounded(plain, 384)
    # 384 tokens, a quarter for the JSON's syntax, 3 characters a token, shared by the title and 10 topics
    assert result.schema == {
        "type": "object",
        "properties": {
            "title": {"type": "string", "maxLength": 78},
            "topics": {"type": "array", "items": {"type": "string", "maxLength": 78}, "maxItems": 10},
        },
    }
    assert result.paths == ["topics", "title", "topics[]"] and (result.max_items, result.max_length) == (10, 78)
    small = bounded(plain, 96)  # fewer topics, so that each still has room to say something
    assert (small.max_items, small.max_length) == (4, 43)
    assert plain["properties"]["title"] == {"type": "string"}  # the given schema is left as it was
    own = {"type": "object", "properties": {
        "kind": {"type": "string", "enum": ["invoice", "note"]}, "code": {"type": "string", "pattern": "^[A-Z]+$"},
        "summary": {"type": "string", "minLength": 500}, "tags": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
    }}
    kept = bounded(own, 96)
    assert kept.schema["properties"]["summary"] == {"type": "string", "minLength": 500, "maxLength": 500}
    assert {name: kept.schema["properties"][name] for name in ("kind", "code", "tags")} == {
        name: own["properties"][name] for name in ("kind", "code", "tags")
    }
    assert kept.paths == ["summary"]
    assert bounded(fields_schema("vendor:str, tags:list[str]"), 96).paths == []  # the shorthand is bounded already


@pytest.mark.fast
def test_replies_are_parsed_and_checked_against_the_schema():
    schema = fields_schema(INVOICE_FIELDS)
    good = {"vendor": "Acme", "amount": 12.5, "people": ["Maria"]}
    assert parse_reply(f"```json\n{json.dumps(good)}\n```", schema) == (good, None)
    assert parse_reply(f"Sure! {json.dumps(good)} Anything else?", schema) == (good, None)
    assert parse_reply("I cannot tell.", schema) == (None, "the reply holds no JSON value")
    assert parse_reply('{"vendor": "Acme", "amount": 1', schema) == (
        None, "the reply is not valid JSON (Expecting ',' delimiter at character 30)"
    )
    assert parse_reply('{"vendor": "Acme", "amount": "lots", "people": []}', schema) == (
        None, "amount: 'lots' is not of type 'number', 'null'"
    )
    assert parse_reply('{"vendor": "Acme", "amount": 1}', schema) == (None, "'people' is a required property")


@pytest.mark.fast
def test_parts_of_a_document_merge_into_one_record():
    schema = fields_schema(INVOICE_FIELDS)
    parts = [
        {"vendor": None, "amount": 10.0, "people": ["Maria", "Olof"]},
        {"vendor": "Acme", "amount": 99.0, "people": ["Olof", *[f"p{i}" for i in range(20)]]},
    ]
    merged = merge(parts, schema)
    assert merged == {"vendor": "Acme", "amount": 10.0, "people": ["Maria", "Olof", *[f"p{i}" for i in range(8)]]}
    assert jsonschema.validate(merged, schema) is None


@pytest.mark.fast
def test_overlapping_chunks_are_joined_without_repeating_text():
    first = "The lab moves on 20 April. Everyone packs their own desk before the move."
    second = "packs their own desk before the move. The movers arrive at eight."
    assert without_overlap(first, second) == "The movers arrive at eight."
    assert without_overlap(first, "Something else entirely, long enough.") == "Something else entirely, long enough."


@pytest.mark.fast
def test_texts_are_packed_into_groups_that_fit():
    words = [f"w{i} " * 10 for i in range(7)]
    groups = pack(words, room=25, count=lambda text: len(text.split()))
    assert [len(group) for group in groups] == [2, 2, 2, 1]
    assert [text for group in groups for text in group] == words


# -- with the real model -------------------------------------------------------------------------


def test_extraction_with_gemma_gives_valid_records_with_provenance(corpus):
    settings, folder = corpus
    schema = fields_schema(INVOICE_FIELDS)
    chunks = indexed_chunks(settings)
    for per in ("document", "chunk"):
        job = rag.extract(schema, [str(folder / "invoices")], settings, per=per)
        records = list(job)
        invoices = sorted(str(folder / name) for name in DOCUMENTS if name.startswith("invoices/"))
        expected = sum(len(chunks[path]) for path in invoices) if per == "chunk" else len(invoices)
        assert len(job) == len(records) == expected
        for record in records:
            assert record.ok and record.constrained and record.attempts == 1, record.error
            jsonschema.validate(record.data, schema)
            assert record.source in invoices
            assert set(record.chunk_ids) <= set(chunks[record.source])
            assert record.to_dict() == {
                "source": record.source, "location": record.location, "chunk_ids": record.chunk_ids, "data": record.data,
                "unsupported": record.unsupported,
            }
        assert {record.source for record in records} == set(invoices)
    assert records[0].location["heading"].startswith("Invoice from")  # a chunk knows its section


def test_summarize_writes_one_record_per_document_then_one_for_all(corpus, tmp_path):
    settings, folder = corpus
    out = tmp_path / "summaries.jsonl"
    result = cli(settings, "summarize", str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    records = lines(out)
    assert sorted(r["source"] for r in records) == sorted(str(folder / name) for name in DOCUMENTS)
    chunks = indexed_chunks(settings)
    for record in records:
        assert record["summary"].strip()
        assert record["chunk_ids"] == chunks[record["source"]]
    assert "summarize: 3 written, 0 failed" in result.stderr

    markdown = tmp_path / "all.md"
    result = cli(settings, "summarize", "--all", str(folder / "invoices"), "--out", str(markdown))
    assert result.exit_code == 0, result.output
    text = markdown.read_text()
    assert text.startswith("## All 2 documents\n\n")
    summary, _, flagged = text.removeprefix("## All 2 documents\n\n").strip().partition("\n\nNot in the sources: ")
    assert summary.strip() and "\n" not in flagged  # the small model's slips, if any, in one line after it

    on_stdout = cli(settings, "summarize", "--query", "who sent invoice NC-7781?", "-k", "1")
    assert on_stdout.exit_code == 0, on_stdout.output
    assert [json.loads(line)["source"] for line in on_stdout.stdout.splitlines()] == [
        str(folder / "invoices/nordic-2024-04.md")
    ]


def test_a_summary_names_the_facts_it_states_that_its_document_does_not(corpus, tmp_path):
    from langchain_core.language_models.fake import FakeListLLM

    from rag.batch.output import render

    settings, folder = corpus
    acme = str(folder / "invoices/acme-2024-03.md")
    reply = "Acme Tools billed 1250 EUR on 12 March 2024 (INV-2024-031), due by 30 April 2024; contact Maria Lindqvist."
    job = rag.summarize([acme], settings, llm=FakeListLLM(responses=[reply]))
    [record] = list(job)
    assert record.unsupported == ["30 April 2024", "Maria Lindqvist"]
    assert json.loads(render(record, job, "jsonl"))["unsupported"] == ["30 April 2024", "Maria Lindqvist"]
    assert render(record, job, "md") == f"## {acme}\n\n{reply}\n\nNot in the sources: 30 April 2024, Maria Lindqvist\n\n"
    faithful = "Acme Tools billed 1250 EUR on 12 March 2024 (INV-2024-031); contact Maria Lind."
    job = rag.summarize([str(folder / "invoices")], settings, combine=True, llm=FakeListLLM(responses=[faithful, faithful, faithful]))
    [combined] = list(job)
    assert combined.key == "all" and combined.unsupported == [] and render(combined, job, "md").endswith(f"{faithful}\n\n")


def test_an_extracted_record_names_the_values_its_document_does_not_state(corpus, tmp_path):
    from langchain_core.language_models.fake import FakeListLLM

    from rag.batch.output import header, render

    settings, folder = corpus
    acme = str(folder / "invoices/acme-2024-03.md")
    schema = fields_schema("vendor:str, amount:float, invoice:str, due:str, paid:bool, people:list[str]")
    reply = {"vendor": "Acme Tools", "amount": 1250.0, "invoice": "INV-2024-013", "due": "30 April 2024", "paid": False,
             "people": ["Maria Lind", "Olof Berg", "Erik Sandberg"]}
    job = rag.extract(schema, [acme], settings, llm=FakeListLLM(responses=[json.dumps(reply)]))
    [record] = list(job)
    assert record.ok and record.data == reply
    # 1250.0 is the document's 1250, and Olof Berg is named by the other invoice, which is not this record's
    # source; a value's first word is read as a sentence's (capitalised anyway), so a name's surname is flagged.
    assert record.unsupported == {"invoice": ["INV-2024-013"], "due": ["30 April 2024"], "people[1]": ["Berg"],
                                  "people[2]": ["Sandberg"]}
    assert record.to_dict()["unsupported"] == record.unsupported

    row = next(csv.DictReader(io.StringIO(render(record, job, "csv")), fieldnames=header(job, "csv").lstrip("\ufeff").strip().split(",")))
    assert json.loads(row["unsupported"]) == record.unsupported

    job = rag.extract(schema, [acme], settings, llm=FakeListLLM(responses=[json.dumps(reply)]))
    result = rag.run_job(job, tmp_path / "invoices.csv")
    assert result.written == 1 and result.flagged == 1 and result.to_dict()["flagged"] == 1
    faithful = {**reply, "invoice": "INV-2024-031", "due": None, "people": ["Maria Lind"]}
    job = rag.extract(schema, [acme], settings, llm=FakeListLLM(responses=[json.dumps(faithful)]))
    [record] = list(job)
    assert record.unsupported == {} and render(record, job, "csv").rstrip("\n").endswith(",")


def test_records_that_stay_invalid_go_to_the_errors_file_with_the_raw_reply(corpus, tmp_path):
    settings, folder = corpus
    # A schema no value meets, through a keyword (`not`) that a grammar cannot express: every reply
    # is JSON the grammar allows, every check refuses it, whatever the model learns from the retry.
    schema = {
        "type": "object",
        "properties": {"amount": {"type": "integer", "not": {"type": "integer"}}},
        "required": ["amount"],
    }
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    out = tmp_path / "amounts.jsonl"
    result = cli(
        settings, "extract", "--schema", str(tmp_path / "schema.json"), str(folder / "invoices"), "--out", str(out),
        RAG_BATCH__MAX_ATTEMPTS="2",
    )
    assert result.exit_code == 1, result.output
    assert out.read_text() == ""
    failures = lines(tmp_path / "amounts.jsonl.errors.jsonl")
    assert sorted(f["source"] for f in failures) == sorted(str(folder / n) for n in DOCUMENTS if n.startswith("invoices/"))
    for failure in failures:
        assert failure["attempts"] == 2
        assert failure["error"].startswith("amount: ") and "should not be valid under {'type': 'integer'}" in failure["error"]
        assert isinstance(json.loads(failure["raw"])["amount"], int)  # the grammar held
        assert failure["chunk_ids"]
    assert "extract: 0 written, 2 failed" in result.stderr and "amounts.jsonl.errors.jsonl" in result.stderr


def test_a_reply_cut_off_by_the_token_budget_says_which_setting_to_change(corpus, tmp_path):
    settings, folder = corpus
    # The grammar makes the model write at least 200 characters, which 16 tokens cannot hold.
    schema = {"type": "object", "properties": {"summary": {"type": "string", "minLength": 200}}, "required": ["summary"]}
    (tmp_path / "schema.json").write_text(json.dumps(schema))
    out = tmp_path / "summaries.jsonl"
    result = cli(
        settings, "extract", "--schema", str(tmp_path / "schema.json"), str(folder / "notes"), "--out", str(out),
        RAG_BATCH__MAX_TOKENS="16", RAG_BATCH__MAX_ATTEMPTS="1",
    )
    assert result.exit_code == 1, result.output
    [failure] = lines(tmp_path / "summaries.jsonl.errors.jsonl")
    assert failure["error"].startswith("the reply reached batch.max_tokens (16 tokens) before its JSON closed (")
    assert failure["error"].endswith(
        "), and again with 32 tokens; raise batch.max_tokens, or bound the schema's strings and lists (maxLength, maxItems) more tightly"
    )
    assert failure["raw"].startswith('{"summary') and failure["attempts"] == 2  # asked once more, with twice the budget


def test_a_schema_without_bounds_still_gives_a_record_for_every_document(corpus, tmp_path):
    settings, folder = corpus
    plain = {"type": "object", "properties": {"title": {"type": "string"}, "topics": {"type": "array", "items": {"type": "string"}}}}
    (tmp_path / "schema.json").write_text(json.dumps(plain))
    out = tmp_path / "topics.jsonl"
    result = cli(settings, "extract", "--schema", str(tmp_path / "schema.json"), str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    # 96 tokens hold a title and 4 topics of 43 characters
    assert "extract: the schema leaves topics, title, topics[] unbounded; replies keep lists to 4 items and strings to 43 characters" in result.stderr
    records = lines(out)
    assert sorted(record["source"] for record in records) == sorted(str(folder / name) for name in DOCUMENTS)
    for record in records:
        assert len(record["data"]["title"]) <= 43 and len(record["data"]["topics"]) <= 4
    assert not (tmp_path / "topics.jsonl.errors.jsonl").exists()


def test_a_killed_job_resumes_and_writes_every_item_exactly_once(corpus, tmp_path):
    settings, folder = corpus
    out = tmp_path / "people.jsonl"
    command = [
        installed_command("rag"), "extract", "--fields", "people:list[str], date:str", "--per", "chunk",
        str(folder), "--out", str(out),
    ]
    env = {**os.environ, "RAG_HOME": str(settings.home), "RAG_BATCH__TEMPERATURE": "0", "RAG_LLM__N_CTX": "1024",
           "RAG_BATCH__MAX_TOKENS": "96"}
    job = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    # A second record is only written once the first is committed to the job state.
    while not (out.exists() and out.read_text().count("\n") >= 2) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    written_before = out.read_text().count("\n")
    expected = {chunk_id for ids in indexed_chunks(settings).values() for chunk_id in ids}
    assert 2 <= written_before < len(expected), "the kill landed part way through the job"
    with out.open("a") as torn:  # as if the process died half way through writing a record
        torn.write('{"source": "half a rec')

    resumed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    # The last record seen may not have been committed when the kill came: then it is written again.
    committed = int(re.search(rf"Continuing: (\d+) of {len(expected)} items are already in", resumed.stderr)[1])
    assert committed in (written_before - 1, written_before)
    records = lines(out)
    keys = [record["chunk_ids"][0] for record in records]
    assert len(keys) == len(set(keys)) and set(keys) == expected
    assert f"extract: {len(expected) - committed} written, 0 failed, {committed} done before" in resumed.stderr

    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and lines(out) == records, "a finished job has nothing left to do"
    assert f"Nothing left to do: all {len(expected)} items are already in {out}" in again.stderr


def test_a_job_file_is_only_continued_by_the_same_job(corpus, tmp_path):
    settings, folder = corpus
    out = tmp_path / "vendors.csv"
    source = str(folder / "invoices/acme-2024-03.md")
    first = cli(settings, "extract", "--fields", "vendor:str", source, "--out", str(out))
    assert first.exit_code == 0, first.output
    assert out.read_bytes().startswith(b"\xef\xbb\xbfsource,")  # a byte-order mark: Excel reads the file as UTF-8
    header, row = out.read_text(encoding="utf-8-sig").splitlines()
    assert header == "source,location,chunk_ids,vendor,unsupported"
    assert row.startswith(f"{source},") and len(row.split(",")) >= 4

    other = cli(settings, "extract", "--fields", "vendor:str, amount:float", source, "--out", str(out))
    assert other.exit_code == 2
    assert "belongs to a job started with other settings (schema)" in other.stderr
    assert "--restart" in other.stderr

    restarted = cli(settings, "extract", "--fields", "vendor:str, amount:float", source, "--out", str(out), "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert out.read_text(encoding="utf-8-sig").splitlines()[0] == "source,location,chunk_ids,vendor,amount,unsupported"

    sampled = cli(settings, "extract", "--fields", "vendor:str, amount:float", source, "--out", str(out), RAG_BATCH__TEMPERATURE="0.7")
    assert sampled.exit_code == 2, "batch.temperature decides what the job writes"
    assert "belongs to a job started with other settings (model)" in sampled.stderr
    answers_only = cli(settings, "extract", "--fields", "vendor:str, amount:float", source, "--out", str(out), RAG_LLM__TEMPERATURE="0.7")
    assert answers_only.exit_code == 0 and "1 done before" in answers_only.stderr, "llm.temperature is the answers', not the job's"

    mine = tmp_path / "mine.jsonl"
    mine.write_text("my own notes\n")
    refused = cli(settings, "extract", "--fields", "vendor:str", source, "--out", str(mine))
    assert refused.exit_code == 2 and "already exists" in refused.stderr
    assert mine.read_text() == "my own notes\n"
    assert sorted(path.name for path in tmp_path.glob("mine.jsonl*")) == ["mine.jsonl"]  # no lock or state file left


def test_a_job_whose_output_was_cut_or_deleted_is_refused_and_leaves_other_files_alone(corpus, tmp_path):
    from rag.batch.joblog import errors_path

    settings, folder = corpus
    source = str(folder / "invoices/acme-2024-03.md")
    out = tmp_path / "vendors.jsonl"
    assert cli(settings, "extract", "--fields", "vendor:str", source, "--out", str(out)).exit_code == 0
    written = out.read_bytes()
    out.write_bytes(written[: len(written) // 2])
    cut = cli(settings, "extract", "--fields", "vendor:str", source, "--out", str(out))
    assert (cut.exit_code, cut.stderr) == (2, (
        f"Error: {out} is shorter than this job left it ({len(written) // 2} of {len(written)} bytes): it was cut or "
        "deleted since; add --restart to write it again, or choose another --out.\n"
    ))
    assert out.read_bytes() == written[: len(written) // 2]  # left as it was: no padding, nothing written
    out.unlink()
    assert cli(settings, "extract", "--fields", "vendor:str", source, "--out", str(out)).exit_code == 2
    assert not out.exists()

    assert errors_path(out) != errors_path(out.with_suffix(".csv"))  # two jobs, two errors files
    mine = errors_path(tmp_path / "amounts.jsonl")
    mine.write_text("my own notes\n")
    refused = cli(settings, "extract", "--fields", "amount:int", source, "--out", str(tmp_path / "amounts.jsonl"))
    assert refused.exit_code == 2 and f"{mine} already exists" in refused.stderr
    assert mine.read_text() == "my own notes\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["extract", "--per", "chunk"], "Give the record schema as --schema FILE.json or as --fields"),
        (["extract", "--fields", "a:str", "--per", "page"], "Invalid value for '--per'"),
        (["extract", "--fields", "a:str", "no/such/file.md"], "No ingested document matches 'no/such/file.md'"),
        (["extract", "--fields", "a:str", "--out", "x.txt"], "Cannot tell the format of x.txt"),
        (["summarize", "--format", "csv"], "Invalid value for '--format'"),
        (["summarize", "--out", "x.csv"], "rag summarize writes jsonl or md, not 'csv'"),
        (["extract", "--schema", "missing.json"], "Cannot read the schema file missing.json"),
        (["extract", "--fields", "a:str", "-k", "3"], "k chooses among the chunks that best match a query: give the query too"),
        (["extract", "--fields", "a:str", "--out", ".", "--format", "jsonl"], ". is a folder; the output is a file"),
        (["extract", "--fields", "a:str", "--out", "/proc/none.jsonl"], "Cannot write /proc/none.jsonl: No such file or directory"),
    ],
)
def test_bad_job_arguments_are_one_line_errors(corpus, args, message):
    settings, _ = corpus
    result = cli(settings, *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_a_document_changed_after_planning_is_reported_not_skipped(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    note = folder / "note.md"
    note.write_text("# Lab move\n\nThe lab moves on 20 April.\n")
    settings = make_settings(tmp_path / "home", llm={"n_ctx": 1024}, batch={"max_tokens": 32, "temperature": 0.0})
    rag.ingest([folder], settings)
    extraction = rag.extract(fields_schema("date:str"), [str(folder)], settings)
    summary = rag.summarize([str(folder)], settings)
    note.write_text("# Lab move\n\nThe lab moves on 27 April.\n")
    rag.ingest([folder], settings)
    [record] = list(extraction)
    assert not record.ok and "no longer in the index" in record.error and record.to_dict()["source"] == str(note)
    [summarized] = list(summary)
    assert not summarized.ok and summarized.to_dict() == {"sources": [str(note)], "error": summarized.error}
