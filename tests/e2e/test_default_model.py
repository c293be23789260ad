"""The default model end to end, and the packaged models' pinned checksums.

The rest of the suite answers with the fastest packaged model (conftest.TEST_MODEL); here the
default, Qwen2.5-Coder-1.5B-Instruct, answers the demo's own question through the real CLI.
"""

from __future__ import annotations

import hashlib
import json

import pytest
from typer.testing import CliRunner

from rag.backends import packaged_models
from rag.backends.packaged_models import DEFAULT_MODEL, PackagedModel, packaged_model_path
from rag.cli import app
from rag.errors import ModelNotFoundError
from tests.conftest import REPO, SAMPLE_NOTES

runner = CliRunner()
DEMO_QUESTION = "When does the warranty of the Brandt RO-350 reflow oven end?"


@pytest.fixture
def default_model(monkeypatch):
    monkeypatch.delenv("RAG_LLM__MODEL")


def test_the_default_model_answers_the_demo_question_with_its_evidence(sample_index, default_model):
    settings, _ = sample_index
    result = runner.invoke(app, ["ask", DEMO_QUESTION, "-k", "3", "--json"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert "4 October 2025" in answer["answer"]
    assert answer["prompt_family"] == "chatml"  # from the chat template the model file carries
    assert answer["unsupported"] == []
    assert answer["evidence"][0]["location"] == {"page": 2} and "4 October 2025" in answer["evidence"][0]["text"]
    assert answer["sources"][0]["source"] == str(SAMPLE_NOTES / "work/vendors/brandt-ro350-manual.pdf")


def test_models_names_the_default_packaged_model(sample_index, default_model):
    settings, _ = sample_index
    result = runner.invoke(app, ["models", "--json"], env={"RAG_HOME": str(settings.home)})
    assert result.exit_code == 0, result.output
    [status] = json.loads(result.stdout)
    [model] = status["models"]
    assert status["where"].endswith(packaged_models.PACKAGED_MODELS[DEFAULT_MODEL].file_name)
    assert model["architecture"] == "qwen2" and model["family"] == "chatml" and model["chat_template"]


@pytest.mark.fast
def test_a_packaged_model_is_joined_from_its_parts_and_checked(tmp_path):
    parts = (("tests", "tiny_gguf.py"), ("tests", "conftest.py"))
    content = b"".join((REPO / "tests" / name).read_bytes() for _, name in parts)
    good = PackagedModel("joined", "joined.gguf", parts, hashlib.sha256(content).hexdigest(), "MIT", "here", "reinstall")
    pinned = PackagedModel("tampered", "tampered.gguf", parts, "0" * 64, "MIT", "here", "pip install x")
    registry = {model.name: model for model in (good, pinned)}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(packaged_models, "PACKAGED_MODELS", registry)
        path = packaged_model_path("joined", tmp_path)
        assert path.read_bytes() == content and path == tmp_path / "models" / "joined.gguf"
        with pytest.raises(ModelNotFoundError, match=r"tampered does not match its pinned checksum .* it was not used"):
            packaged_model_path("tampered", tmp_path)
        assert not (tmp_path / "models" / "tampered.gguf").exists()
        assert sorted(p.name for p in (tmp_path / "models").iterdir()) == ["joined.gguf"]  # no partial file left
        with pytest.raises(ModelNotFoundError, match=r"No packaged model 'nope'; the packaged models are joined, tampered"):
            packaged_model_path("nope", tmp_path)


def test_an_unknown_packaged_model_is_a_one_line_error(sample_index):
    settings, _ = sample_index
    result = runner.invoke(app, ["ask", "anything"], env={"RAG_HOME": str(settings.home), "RAG_LLM__MODEL": "qwen-9000"})
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: No packaged model 'qwen-9000'; the packaged models are qwen2.5-coder-0.5b-instruct,")
