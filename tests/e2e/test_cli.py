"""The `rag` command on real documents: output streams, exit codes, error lines, and the installed
console script run cold (tests/unit/test_cli.py: help and usage errors)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from typer.testing import CliRunner

from rag.cli import app
from tests.conftest import SAMPLE_NOTES, installed_command

runner = CliRunner()


def rag_cli(*args: str, home: Path):
    return runner.invoke(app, list(args), env={"RAG_HOME": str(home)})


def test_ingest_search_status_round_trip(notes, home):
    ingested = rag_cli("ingest", str(notes), home=home)
    assert ingested.exit_code == 0, ingested.output
    assert ingested.stdout.startswith("Synced: 4 added, 0 updated, 0 removed, 0 unchanged, 0 failed")
    assert ingested.stderr == ""  # not a terminal: no progress bar

    found = rag_cli("search", "What baud rate does the calibration script use?", "-k", "2", home=home)
    assert found.exit_code == 0
    first = found.stdout.splitlines()[0]
    assert first.startswith("1. [") and f"{notes / 'work/tools/calibrate.py'}  lines " in first
    assert found.stdout.splitlines()[1].startswith("   ")  # the snippet under it

    hits = json.loads(rag_cli("search", "What baud rate does the calibration script use?", "--json", "-k", "3", home=home).stdout)
    assert [hit["rank"] for hit in hits] == [1, 2, 3]
    assert set(hits[0]) == {"rank", "score", "similarity", "source", "location", "chunk_id", "text"}
    assert hits[0]["source"].endswith("calibrate.py")

    status = json.loads(rag_cli("status", "--json", home=home).stdout)
    assert status["files"] == 4 and status["chunks"] > 4
    assert status["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert status["embedding_dimension"] == 384
    assert status["index_path"] == str(home / "index") and status["last_sync"]
    text = rag_cli("status", home=home).stdout
    assert "files:           4" in text and "384 dimensions" in text


def test_ingest_reports_failures_with_exit_1(notes, home):
    (notes / "broken.pdf").write_bytes(b"%PDF-1.7 not really")
    result = rag_cli("ingest", str(notes), home=home)
    assert result.exit_code == 1
    assert "failed  " in result.stderr and "broken.pdf: unreadable PDF" in result.stderr
    assert "4 added" in result.stdout and "1 failed" in result.stdout


def test_dry_run_prints_the_plan(notes, home):
    rag_cli("ingest", str(notes), home=home)
    (notes / "new.md").write_text("# New\n\nA new file.\n")
    (notes / "work/tools/calibrate.py").unlink()
    result = rag_cli("ingest", "--dry-run", str(notes), home=home)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.startswith("add") and line.endswith("new.md") for line in lines)
    assert any(line.startswith("remove") and line.endswith("calibrate.py") for line in lines)
    assert lines[-1].startswith("Would sync: 1 added, 0 updated, 1 removed, 3 unchanged")
    assert "calibrate.py" in rag_cli("search", "baud rate", home=home).stdout


def test_fingerprint_mismatch_is_one_line_with_the_fix(notes, home):
    rag_cli("ingest", str(notes), home=home)
    result = runner.invoke(
        app, ["ingest", str(notes)], env={"RAG_HOME": str(home), "RAG_CHUNKING__CHUNK_TOKENS": "120"}
    )
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert "chunk_tokens 200, now 120" in result.stderr and "rag ingest --rebuild" in result.stderr


def test_verbose_lists_skipped_files_and_says_how_chunks_were_embedded(notes, home):
    (notes / ".secret.md").write_text("# Secret\n")
    result = rag_cli("ingest", "-v", str(notes), home=home)
    assert f"skipped {notes / '.secret.md'}: hidden file" in result.stderr
    # A few notes: a small ingest, which stays on ONNX Runtime whatever the CPU.
    assert "embedded with float32-onnx (a query or a small ingest)" in result.stderr
    (notes / "new.md").write_text("# New\n\nOne more note about the greenhouse.\n")
    report = json.loads(rag_cli("ingest", "--json", str(notes), home=home).stdout)
    assert report["embedding_path"] == {"path": "float32-onnx", "reason": "a query or a small ingest"}
    unchanged = json.loads(rag_cli("ingest", "--json", str(notes), home=home).stdout)
    assert unchanged["embedding_path"] is None  # nothing embedded


def test_installed_console_script_runs_cold(home, tmp_path):
    """The real entry point in a fresh process, as a user runs it."""
    rag_bin = installed_command("rag")
    notes = tmp_path / "few"
    shutil.copytree(SAMPLE_NOTES / "personal/recipes", notes)
    env = {**os.environ, "RAG_HOME": str(home)}
    ingest = subprocess.run([rag_bin, "ingest", str(notes)], env=env, capture_output=True, text=True)
    assert ingest.returncode == 0, ingest.stderr
    status = subprocess.run([rag_bin, "status", "--json"], env=env, capture_output=True, text=True)
    assert json.loads(status.stdout)["files"] == 1

