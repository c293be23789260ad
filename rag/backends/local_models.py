"""GGUF models other apps have already downloaded: Ollama, LM Studio, GPT4All and the Hugging Face cache.

`rag models --local` lists them and `--model ollama:NAME[:TAG]` (lmstudio:, gpt4all:, hf:) runs one
with llama.cpp straight from the app's folder, without the app running and without copying it.
Every file is read only as far as its GGUF header. A store that is missing or cannot be read is not
an error: it has no models. Where the stores are comes from the home directory and the apps' own
environment variables, read in `model_stores` only, so tests point them at temporary folders.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.backends.gguf_header import quantization, read_header
from rag.errors import LocalModelNotFoundError

OLLAMA_MODEL_LAYER = "application/vnd.ollama.image.model"
OLLAMA_REGISTRY = "registry.ollama.ai"
OLLAMA_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
# Parts 2.. of a split GGUF (model-00002-of-00003.gguf): llama.cpp loads them through part 1.
LATER_SPLIT_PART = re.compile(r"-(?!0+1-)\d{5}-of-\d{5}\.gguf$")
# Vision projectors ship next to the models in the same folders; they answer nothing alone.
NOT_LANGUAGE_MODELS = {"clip"}
LISTED_IN_ERRORS = 8


@dataclass(frozen=True)
class LocalModel:
    store: str
    name: str  # as the store's app names it: Ollama's NAME:TAG, the others' path under their folder
    path: str
    size: int
    architecture: str
    quantization: str
    context: int | None
    chat_template: bool

    @property
    def reference(self) -> str:
        """What --model takes to run this file."""
        return f"{self.store}:{self.name}"

    def to_dict(self) -> dict[str, object]:
        return {"kind": "llm", "model": self.reference, **asdict(self)}


@dataclass(frozen=True)
class ModelStore:
    name: str  # the --model prefix
    title: str
    folders: tuple[Path, ...]  # where the app keeps its models, in the order it looks
    files: Callable[[Path], Iterator[tuple[str, Path]]]  # (model name, GGUF file) under one folder
    short_names: Callable[[str], list[str]]  # the full names a shorter one may stand for

    def model_files(self) -> dict[str, Path]:
        """Model name -> file; the first folder that has a name wins, as in the app."""
        found: dict[str, Path] = {}
        for folder in self.folders:
            try:
                for name, path in self.files(folder):
                    found.setdefault(name, path)
            except OSError:  # a store we may not read has nothing we can run
                continue
        return found


def model_stores(environ: Mapping[str, str] | None = None, platform: str = sys.platform) -> list[ModelStore]:
    """The four apps' stores, where their own environment variables or defaults put them on `platform`."""
    environ = os.environ if environ is None else environ
    home = Path(environ.get("HOME") or Path.home())

    def folder(variable: str, default: Path) -> Path:
        return Path(environ[variable]).expanduser() if environ.get(variable) else default

    data_home = folder("XDG_DATA_HOME", home / ".local/share")
    hf_cache = folder("HF_HUB_CACHE", folder("HF_HOME", home / ".cache/huggingface") / "hub")
    return [
        ModelStore(
            "ollama", "Ollama", (folder("OLLAMA_MODELS", home / ".ollama/models"),),
            _ollama_files, lambda name: [name if ":" in name else f"{name}:latest"],
        ),
        ModelStore(
            "lmstudio", "LM Studio", (home / ".lmstudio/models", home / ".cache/lm-studio/models"),
            _lmstudio_files, lambda name: [name],
        ),
        ModelStore(
            "gpt4all", "GPT4All",
            (home / "Library/Application Support/nomic.ai/GPT4All" if platform == "darwin" else data_home / "nomic.ai/GPT4All",),
            _gpt4all_files, lambda name: [name, f"{name}.gguf"],
        ),
        ModelStore(
            "hf", "Hugging Face cache", (hf_cache,),
            _hf_files, lambda name: [name, f"{name}.gguf"],
        ),
    ]


def _ollama_files(root: Path) -> Iterator[tuple[str, Path]]:
    """manifests/HOST/NAMESPACE/NAME/TAG, JSON whose model layer's digest names blobs/sha256-HEX."""
    manifests = root / "manifests"
    for manifest in sorted(manifests.glob("*/*/*/*")):
        try:
            layers = json.loads(manifest.read_text(encoding="utf-8")).get("layers", [])
            digest = next(layer["digest"] for layer in layers if layer.get("mediaType") == OLLAMA_MODEL_LAYER)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, StopIteration):
            continue  # not a model's manifest (or not one we understand): Ollama would not run it either
        if not isinstance(digest, str) or not OLLAMA_DIGEST.fullmatch(digest):
            continue  # a digest is all a blob's file name may come from
        host, namespace, name, tag = manifest.relative_to(manifests).parts
        # Ollama's own spelling: the default registry and its `library` namespace are left out.
        prefix = "" if host == OLLAMA_REGISTRY and namespace == "library" else (
            f"{namespace}/" if host == OLLAMA_REGISTRY else f"{host}/{namespace}/"
        )
        yield f"{prefix}{name}:{tag}", root / "blobs" / digest.replace(":", "-", 1)


def _lmstudio_files(root: Path) -> Iterator[tuple[str, Path]]:
    """PUBLISHER/REPO/FILE.gguf."""
    for path in sorted(root.glob("*/*/*.gguf")):
        yield path.relative_to(root).as_posix(), path


def _gpt4all_files(root: Path) -> Iterator[tuple[str, Path]]:
    """FILE.gguf, directly in the download folder."""
    for path in sorted(root.glob("*.gguf")):
        yield path.name, path


def _hf_files(root: Path) -> Iterator[tuple[str, Path]]:
    """models--ORG--NAME/snapshots/REVISION/**.gguf (links into blobs/); refs/main's revision first."""
    for repo in sorted(root.glob("models--*")):
        try:
            files = _hf_repository_files(repo)
        except OSError:  # one repository we may not read hides only itself
            continue
        org_name = repo.name.removeprefix("models--").replace("--", "/")
        yield from ((f"{org_name}/{relative}", path) for relative, path in files)


def _hf_repository_files(repo: Path) -> list[tuple[str, Path]]:
    return [
        (path.relative_to(revision).as_posix(), path) for revision in _revisions(repo) for path in sorted(revision.rglob("*.gguf"))
    ]


def _revisions(repo: Path) -> list[Path]:
    """A cached repository's snapshot folders: refs/main's revision first, then the newest."""
    snapshots = repo / "snapshots"
    if not snapshots.is_dir():
        return []
    revisions = sorted(snapshots.iterdir(), key=lambda snapshot: snapshot.stat().st_mtime, reverse=True)
    main = repo / "refs" / "main"
    if main.is_file():
        current = snapshots / main.read_text(encoding="utf-8").strip()
        revisions.sort(key=lambda snapshot: snapshot != current)  # stable: the rest stay newest first
    return revisions


def describe(store: str, name: str, path: Path) -> LocalModel | None:
    """The model in one file, from its header; None for what is not a language model we can read."""
    if LATER_SPLIT_PART.search(path.name):
        return None
    try:
        size = path.stat().st_size  # through the link, for the Hugging Face cache
        header = read_header(path)
    except (OSError, ValueError):  # unreadable, half-downloaded or not GGUF
        return None
    architecture = str(header.get("general.architecture", ""))
    if architecture in NOT_LANGUAGE_MODELS:
        return None
    context = header.get(f"{architecture}.context_length")
    return LocalModel(
        store=store,
        name=name,
        path=str(path),
        size=size,
        architecture=architecture,
        quantization=quantization(header),
        context=context if isinstance(context, int) else None,
        chat_template=bool(header.get("tokenizer.chat_template")),
    )


def local_models(environ: Mapping[str, str] | None = None) -> list[LocalModel]:
    """Every GGUF language model in every store there is, store by store."""
    models = []
    for store in model_stores(environ):
        for name, path in store.model_files().items():
            if model := describe(store.name, name, path):
                models.append(model)
    return models


@dataclass(frozen=True)
class LocalEmbeddingModel:
    name: str  # the Hugging Face repository, ORG/NAME
    path: str  # the folder embedding.model takes
    dimension: int | None

    def to_dict(self) -> dict[str, object]:
        return {"kind": "embedding", **asdict(self)}


def local_embedding_models(environ: Mapping[str, str] | None = None) -> list[LocalEmbeddingModel]:
    """The sentence-transformers models in the Hugging Face cache (their current revision), which
    `embedding.model` can name by folder."""
    hf = next(store for store in model_stores(environ) if store.name == "hf")
    found = []
    for folder in hf.folders:
        for repo in sorted(folder.glob("models--*")):
            try:
                revision = next((rev for rev in _revisions(repo) if (rev / "modules.json").is_file()), None)
                if revision is None:
                    continue
                pooling = revision / "1_Pooling" / "config.json"
                dimension = json.loads(pooling.read_text())["word_embedding_dimension"] if pooling.is_file() else None
            except (OSError, ValueError, KeyError):  # one repository we may not read hides only itself
                continue
            found.append(LocalEmbeddingModel(repo.name.removeprefix("models--").replace("--", "/"), str(revision), dimension))
    return found


def store_reference(text: str) -> tuple[ModelStore, str] | None:
    """(store, model name) when `text` is STORE:NAME, e.g. ollama:llama3.2; None for a path."""
    prefix, colon, name = text.partition(":")
    if not colon or Path(text).exists():
        return None
    return next(((store, name) for store in model_stores() if store.name == prefix), None)


def resolve(store: ModelStore, name: str) -> Path:
    """The file `name` names in `store`: a full name, a shorter one (Ollama's tag left out, .gguf left
    out) or, for lmstudio and hf, a repository with one GGUF model in it."""
    files = store.model_files()
    name = name.strip("/")
    for candidate in store.short_names(name):
        if candidate in files:
            return files[candidate]  # its header is read when it loads: no need to read it twice
    # Only now are headers read: a folder may hold a vision projector next to its model.
    runnable = [model for model, path in files.items() if describe(store.name, model, path)]
    in_repository = [model for model in runnable if model.startswith(name + "/")]
    if len(in_repository) == 1:
        return files[in_repository[0]]
    if in_repository:
        raise LocalModelNotFoundError(
            f"{store.name}:{name} has {len(in_repository)} GGUF models; name one: {_listing(store, in_repository)}.",
            listed_all=len(in_repository) <= LISTED_IN_ERRORS,
        )
    where = " or ".join(str(folder) for folder in store.folders)
    if not runnable:
        raise LocalModelNotFoundError(f"No {store.title} model {name!r}: {where} has none.", listed_all=False)
    raise LocalModelNotFoundError(
        f"No {store.title} model {name!r} in {where}; it has {_listing(store, runnable)}.",
        listed_all=len(runnable) <= LISTED_IN_ERRORS,
    )


def _listing(store: ModelStore, names: list[str]) -> str:
    shown = ", ".join(f"{store.name}:{model}" for model in names[:LISTED_IN_ERRORS])
    more = len(names) - LISTED_IN_ERRORS
    return f"{shown} and {more} more" if more > 0 else shown
