"""`rag ingest --ray` on a real local Ray cluster (tests/ray_cluster.py: a head and a worker node,
started by `ray start` as processes of their own on loopback, one CPU each; one cluster for the module).

The workers load, chunk and embed; the ingesting process writes. What it writes must be what a
local ingest writes, whatever the backend, and a worker killed mid-run must lose and double nothing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import rag
from ingest.index import Index
from rag.cli import app
from tests.conftest import SAMPLE_NOTES, assert_index_consistent, installed_command, make_settings
from tests.helpers import free_port
from tests.ray_cluster import RayCluster, running_ray_cluster

VECTOR_TOLERANCE = 1e-5
CORPUS_FILES = 60


@pytest.fixture(scope="module")
def cluster():
    with running_ray_cluster(head_cpus=1, worker_cpus=(1,)) as running:
        yield running
    for group in running.node_groups:  # every process of both nodes is gone, and so is their folder
        with pytest.raises(ProcessLookupError):
            os.killpg(group, 0)
    assert running.processes() == [] and not running.folder.exists()


def _contents(settings) -> tuple[dict, dict]:
    """(the manifest: path -> (size, mtime, sha256, chunk ids), the chunks: id -> (text, metadata, vector))."""
    with Index(settings) as index:
        sources = {path: (r.size, r.mtime_ns, r.sha256, r.chunk_ids) for path, r in index.sources().items()}
        chunks = index.get_chunks([i for record in sources.values() for i in record[3]], vectors=True)
    return sources, {i: (chunk.text, chunk.metadata, np.asarray(chunk.embedding)) for i, chunk in chunks.items()}


def assert_same_index(settings, expected_settings) -> None:
    sources, chunks = _contents(settings)
    expected_sources, expected_chunks = _contents(expected_settings)
    assert sources == expected_sources
    assert chunks.keys() == expected_chunks.keys() and chunks
    for chunk_id, (text, metadata, vector) in chunks.items():
        expected_text, expected_metadata, expected_vector = expected_chunks[chunk_id]
        assert (text, metadata) == (expected_text, expected_metadata)
        np.testing.assert_allclose(vector, expected_vector, atol=VECTOR_TOLERANCE)


def _report(report: dict) -> dict:
    return {key: value for key, value in report.items() if key != "seconds"}


def _rag_ingest(*args: str, **popen) -> subprocess.Popen:
    return subprocess.Popen([installed_command("rag"), "ingest", *args], text=True, **popen)


def test_a_ray_ingest_of_the_sample_notes_writes_what_a_local_one_does(cluster: RayCluster, sample_index, tmp_path):
    local_settings, local_report = sample_index
    index_dir = tmp_path / "index"
    ingest = _rag_ingest(
        "--ray", cluster.address, "--index", str(index_dir), "--json", str(SAMPLE_NOTES),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout, stderr = ingest.communicate(timeout=300)
    assert ingest.returncode == 0, stderr
    assert stderr == ""
    assert _report(json.loads(stdout)) == _report(local_report.to_dict())
    settings = make_settings(tmp_path, index_dir=index_dir)
    assert_same_index(settings, local_settings)
    assert_index_consistent(settings)

    again = _rag_ingest(
        "--ray", cluster.address, "--index", str(index_dir), "--json", str(SAMPLE_NOTES),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    stdout, stderr = again.communicate(timeout=300)
    assert again.returncode == 0, stderr
    report = json.loads(stdout)
    assert (report["unchanged"], report["added"], report["updated"], report["chunks_added"]) == (14, [], [], 0)


@pytest.mark.parametrize("backend", ["disk", "server", "postgres"])
def test_a_ray_sync_of_edits_deletes_and_renames_matches_a_local_one(cluster: RayCluster, notes, tmp_path, request, backend):
    where = {}
    if backend != "disk":
        url = request.getfixturevalue("chroma_server" if backend == "server" else "postgres_server")
        where = {"vector_store": {"url": url}} if backend == "server" else {"index": {"url": url}}
    name = f"ray-sync-{os.getpid()}-{backend}"
    local = make_settings(tmp_path / "local", collection=f"{name}-local", **where)
    on_ray = make_settings(tmp_path / "ray", collection=f"{name}-ray", ingest={"ray_address": cluster.address}, **where)

    def sync_both() -> None:
        local_report, ray_report = rag.ingest([notes], local), rag.ingest([notes], on_ray)
        assert _report(ray_report.to_dict()) == _report(local_report.to_dict())
        assert_same_index(on_ray, local)
        assert_index_consistent(on_ray)

    sync_both()
    buns = notes / "personal/recipes/cardamom-buns.md"
    buns.write_text(buns.read_text() + "\n\n## Storing\n\nThe buns keep two days in a tin, or a month frozen.\n")
    (notes / "work/calls/phone-log-2024-04.txt").unlink()
    (notes / "personal/garden/allotment-plan-2024.md").rename(notes / "personal/garden/allotment-plan.md")
    (notes / "personal/new-note.md").write_text("# Bike\n\nThe bike's rear tyre takes 4.5 bar.\n")
    sync_both()
    report = rag.ingest([notes], on_ray)
    assert (report.unchanged, report.added, report.updated, report.removed) == (4, [], [], [])


def _corpus(folder: Path, files: int) -> Path:
    """Files enough that a worker is still at work when the test kills it."""
    for number in range(files):
        paragraphs = [
            f"## Part {part}\n\nNote {number}, part {part}: the pump at station {number * 7 + part} was serviced on day "
            f"{part + 1} and its filter replaced; pressure read {number % 9}.{part} bar afterwards, flow "
            f"{number * 3 + part} litres a minute, and the log says the valve stuck {part} times."
            for part in range(12)
        ]
        (folder / f"note-{number:03}.md").write_text(f"# Station {number}\n\n" + "\n\n".join(paragraphs) + "\n")
    return folder


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(cluster: RayCluster, tmp_path):
    (tmp_path / "corpus").mkdir()
    corpus = _corpus(tmp_path / "corpus", files=CORPUS_FILES)
    index_dir = tmp_path / "index"
    args = ["--ray", cluster.address, "--index", str(index_dir), "--json", str(corpus)]
    ingest = _rag_ingest(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    killed = None
    while killed is None and ingest.poll() is None:
        working = cluster.task_workers("_encode") or cluster.task_workers("_split_files")
        if working:
            killed = working[0]
            os.kill(killed, signal.SIGKILL)
        time.sleep(0.01)
    stdout, stderr = ingest.communicate(timeout=300)
    assert killed is not None, "no worker was at work while the ingest ran"
    if ingest.returncode != 0:  # Ray gave up on the task: one line, then a second run completes the index
        assert ingest.returncode == 1 and stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
        rerun = _rag_ingest(*args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        stdout, stderr = rerun.communicate(timeout=300)
        assert rerun.returncode == 0, stderr
    # Ray's word of the dead worker and the retry reaches neither stream: stdout is the report alone.
    assert json.loads(stdout)["failed"] == [] and stderr == ""
    settings = make_settings(tmp_path, index_dir=index_dir)
    assert_index_consistent(settings)
    local = make_settings(tmp_path / "local")
    assert rag.ingest([corpus], local).ok
    assert_same_index(settings, local)
    assert len(_contents(settings)[0]) == CORPUS_FILES


def test_an_address_nobody_answers_is_one_line(tmp_path, notes):
    address = f"127.0.0.1:{free_port()}"
    result = CliRunner().invoke(app, ["ingest", "--ray", address, "--index", str(tmp_path / "index"), str(notes)])
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: No Ray cluster answers at {address} ") and result.stderr.count("\n") == 1


def test_without_ray_installed_the_error_is_the_install_hint(monkeypatch, tmp_path, notes):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if it were not installed
    result = CliRunner().invoke(app, ["ingest", "--ray", "auto", "--index", str(tmp_path / "index"), str(notes)])
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: Ingesting on a Ray cluster (ingest.ray_address) needs Ray; install it with `pip install 'rag[ray]'`.\n"
    )


def test_a_local_ingest_never_imports_ray(tmp_path, notes):
    code = (
        "import sys, rag; from rag.settings import load_settings; "
        f"assert rag.ingest([{str(notes)!r}], load_settings(home={str(tmp_path)!r})).ok; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'ray' or m == 'ingest.ray_executor'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"

