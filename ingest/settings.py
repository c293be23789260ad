"""The settings sections ingest reads, and what it needs of the settings object that holds them.

rag.settings composes these into its `Settings` (defaults, TOML file, environment, overrides);
ingest takes that object as an `IndexSettings`, so it never imports rag.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal, Mapping, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from ingest.scripts import AUTO_MODEL, MULTILINGUAL_MODEL


class Section(BaseModel):
    """A settings section: unknown keys are refused, and so are invalid values set later."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EmbeddingSettings(Section):
    model: str = Field(
        "auto",
        description="The packaged all-MiniLM-L6-v2 (English), the packaged universal-sentence-encoder-multilingual "
        "(Korean, Chinese, Japanese and 13 more languages), or a local sentence-transformers model folder. auto: "
        "chosen at a collection's first ingest (the multilingual one when a fifth of its text is Chinese, Japanese "
        "or Korean) and recorded in the index; the collection keeps it.",
    )
    batch_size: int = Field(32, gt=0, description="Chunks embedded together.")
    device: str = Field("cpu", description="cpu, or a torch device such as cuda (which embeds with the torch runtime).")
    runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="onnx: ONNX Runtime in float32 (faster on CPU, exported once); torch: sentence-transformers; "
        "auto: ONNX, and for large ingests torch in bfloat16 on CPUs with native bfloat16, ONNX in int8 on others.",
    )


# Chunk sizes when chunking.chunk_tokens is not set: all-MiniLM-L6-v2 reads 256 word pieces and
# drops the rest. The multilingual encoder reads a text whole; with it the answers to the Korean QA
# set gain from larger chunks and the Chinese and Japanese ones do not (docs/languages.md), so its
# size follows the language a new collection's documents are written in.
DEFAULT_CHUNK_TOKENS = 200
MULTILINGUAL_CHUNK_TOKENS = {"ko": 400}


class ChunkingSettings(Section):
    chunk_tokens: int | None = Field(
        None,
        gt=16,
        description=f"Largest chunk, heading prefix included, in embedding-model tokens. Default: "
        f"{DEFAULT_CHUNK_TOKENS}; with the multilingual embedding model, by the language of a new collection's "
        f"documents: {', '.join(f'{size} for {language}' for language, size in MULTILINGUAL_CHUNK_TOKENS.items())}.",
    )
    overlap_tokens: int = Field(32, ge=0, description="Tokens a chunk repeats from the one before; less than chunk_tokens.")

    @field_validator("overlap_tokens")
    @classmethod
    def _overlap_below_chunk(cls, overlap: int, info: ValidationInfo) -> int:
        chunk_tokens = info.data.get("chunk_tokens", DEFAULT_CHUNK_TOKENS) or DEFAULT_CHUNK_TOKENS
        if "chunk_tokens" in info.data and overlap >= chunk_tokens:  # absent when it was itself refused
            raise ValueError(f"must be less than chunking.chunk_tokens ({chunk_tokens}); got {overlap}")
        return overlap

    def tokens_for(self, model: str, language: str | None = None) -> int:
        """The chunk size with the embedding model `model` for documents in `language` (an ISO
        639-1 code, None when not Chinese, Japanese or Korean): the one set, else the model's."""
        if self.chunk_tokens is not None:
            return self.chunk_tokens
        if model == MULTILINGUAL_MODEL:
            return MULTILINGUAL_CHUNK_TOKENS.get(language or "", DEFAULT_CHUNK_TOKENS)
        return DEFAULT_CHUNK_TOKENS

    def waits_for_documents(self, model: str) -> bool:
        """Whether the chunk size is decided by a new collection's documents: it is not set, and
        the model ("auto", or the multilingual one) depends on their language."""
        return self.chunk_tokens is None and model in (AUTO_MODEL, MULTILINGUAL_MODEL)


class IngestSettings(Section):
    ignore_files: list[str] = Field(
        default_factory=lambda: [".gitignore", ".ragignore"],
        description="Files in an ingested folder whose gitignore-style patterns name files to leave out.",
    )
    max_file_mb: float = Field(
        20.0, gt=0, description="Larger files are skipped with a reason: reading them whole would take that memory."
    )
    # Larger groups sort into batches of more even length (less padding: 512 ingests 25% faster
    # than 128) and still keep memory flat.
    group_chunks: int = Field(1024, gt=0, description="Chunks embedded and written together.")
    loaders: dict[str, str] = Field(
        default_factory=dict,
        description='More file suffixes and the loader that reads each: {".mdown" = "markdown", ".conf" = "text"}.',
    )
    ray_address: str | None = Field(
        None,
        description="Load, chunk and embed the files on the workers of this Ray cluster (rag[ray], installed on every "
        "node): auto (the one `ray start` runs on this machine), HOST:PORT of its head, or ray://HOST:PORT; this "
        "process alone writes the index. Default: all in this process.",
    )

    @field_validator("loaders")
    @classmethod
    def _known_loaders(cls, loaders: dict[str, str]) -> dict[str, str]:
        from ingest.loaders import NAMED_LOADERS  # only when the setting is given: it imports LangChain

        for suffix, name in loaders.items():
            if Path(f"file{suffix}").suffix != suffix:  # what a file's name is matched by: its last suffix
                raise ValueError(f"{suffix!r} is no file suffix; write one suffix with its dot, as in \".mdown\"")
            if name not in NAMED_LOADERS:
                raise ValueError(f"unknown loader {name!r} for {suffix!r}; use one of: {', '.join(NAMED_LOADERS)}")
        return {suffix.lower(): name for suffix, name in loaders.items()}


class VectorStoreSettings(Section):
    url: str | None = Field(
        None,
        description="A Chroma server, e.g. http://localhost:8000; a PostgreSQL database with pgvector, "
        "postgresql://USER@HOST:PORT/DB (password in ~/.pgpass or PGPASSWORD; rag[postgres]); or memory://NAME (this "
        "process's memory: notebooks, tests); default: Chroma on disk in the index dir.",
    )


class IndexDatabaseSettings(Section):
    url: str | None = Field(
        None,
        description="A PostgreSQL database with pgvector, postgresql://USER@HOST:PORT/DB, that holds everything of a "
        "collection (vectors, keyword index, file manifest, build record), shared by every rag process on any machine "
        "that names it (password in ~/.pgpass or PGPASSWORD; rag[postgres]); default: the index dir on this machine.",
    )


# A collection's name: letters of any script, digits, '.', '_' and '-', starting and ending with a
# letter or digit. One in a-z, A-Z and 0-9 alone follows Chroma's rule (checked up front, so the
# message is ours); Chroma gets a name with other letters spelt in Punycode (xn--...), so it is kept
# short, and no other name may start so.
COLLECTION_NAME = re.compile(r"^[^\W_](?:[\w.-]*[^\W_])?$")
CHROMA_COLLECTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")
SPELT_NAME_PREFIX = "xn--"
MAX_SPELT_COLLECTION_NAME = 100


def collection_name(name: str) -> str:
    """`name` as a collection is known by: its compatibility form (NFKC), so that a name typed in
    decomposed Hangul or in full width is the same collection. ValueError says what is wrong."""
    name = unicodedata.normalize("NFKC", name)
    fits = CHROMA_COLLECTION_NAME.match(name) if name.isascii() else len(name) <= MAX_SPELT_COLLECTION_NAME
    if not (COLLECTION_NAME.match(name) and fits) or ".." in name or name.lower().startswith(SPELT_NAME_PREFIX):
        raise ValueError(
            "use letters, digits, '.', '_' and '-', starting and ending with a letter or digit, with no '..' and "
            f"not starting with {SPELT_NAME_PREFIX!r}: 3-512 of them in a-z, A-Z and 0-9 alone, or up to "
            f"{MAX_SPELT_COLLECTION_NAME} with other letters (회의록)"
        )
    if is_ip_address(name):
        raise ValueError("an IP address is no collection name (Chroma refuses it): add a letter")
    return name


def is_ip_address(name: str) -> bool:
    """Whether `name` is an IPv4 or IPv6 address."""
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class IndexSettings(Protocol):
    """What ingest reads of the whole settings (rag.settings.Settings is one): where the index and
    the cache are, the collection, and the sections that decide how files become chunks and vectors."""

    collection: str
    embedding: EmbeddingSettings
    chunking: ChunkingSettings
    ingest: IngestSettings
    vector_store: VectorStoreSettings
    index: IndexDatabaseSettings

    @property
    def index_path(self) -> Path: ...

    @property
    def cache_path(self) -> Path: ...

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self: ...
