"""Where an ingest loads, chunks and embeds the files it reads (its executor), and the step it runs
for each file; ingest.sync plans the sync and writes the index around it.

LocalExecutor does it in the ingesting process; ingest.ray_executor on a Ray cluster's workers.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator, Protocol, TypeVar

from ingest.errors import LoadError, NotADocument
from ingest.loaders import loader_for
from ingest.loaders.ocr import pages_by_ocr
from ingest.settings import ChunkingSettings, EmbeddingSettings

if TYPE_CHECKING:
    import numpy as np
    from langchain_core.documents import Document

    from ingest.chunking.chunker import Chunk, Chunker
    from ingest.embedding.embedders import Embedder


@dataclass
class FileToSplit:
    """A file's path and content, to be loaded and chunked."""

    path: str
    data: bytes


@dataclass
class FileSplit:
    """One file loaded and chunked: its chunks' texts and metadata, and the labels of its pages OCR
    read and of those it left unread; or why it has no chunks, `skipped` (it is no document, or has
    no text: it loses the chunks it had) or `failed` (it could not be read: it keeps them)."""

    texts: list[str] = field(default_factory=list)
    metadatas: list[dict[str, Any]] = field(default_factory=list)
    read_by_ocr: str = ""
    unread_pages: str = ""
    skipped: str = ""
    failed: str = ""


def split_file(path: str, data: bytes, chunker: "Chunker", extra_loaders: dict[str, str]) -> FileSplit:
    try:
        documents, chunks = _load_and_split(path, data, chunker, extra_loaders)
    except NotADocument as exc:  # a program beside the notes is no failure of the ingest
        return FileSplit(skipped=str(exc))
    except LoadError as exc:
        return FileSplit(failed=str(exc))
    except Exception as exc:  # a parser bug on one odd file must not stop the whole ingest
        return FileSplit(failed=f"could not be parsed ({type(exc).__name__}: {exc})")
    if not chunks:
        return FileSplit(skipped="no text to index")
    read_by_ocr, unread = pages_by_ocr(documents)
    metadatas = [{**chunk.metadata, "source": path} for chunk in chunks]
    return FileSplit([chunk.text for chunk in chunks], metadatas, read_by_ocr, unread)


Files = TypeVar("Files", bound=FileToSplit)


class FileExecutor(Protocol):
    """Where an ingest loads, chunks and embeds the files it reads: this process (LocalExecutor) or
    the workers of a Ray cluster (ingest.ray_executor). Either way, this process alone plans the
    sync and writes the index.

    `bulk`: set for a large ingest, which an embedder may embed another way (LocalEmbeddings).
    """

    bulk: bool

    @property
    def path(self) -> tuple[str, str]:
        """(how texts are embedded, why): see ingest.embedding.embedding_path."""

    def split(self, files: Iterable[Files]) -> Iterator[tuple[Files, FileSplit]]:
        """Each file with what splitting it gave, in the order given; `files` is read as it goes."""

    def encode(self, texts: list[str], on_progress: Callable[[int], None]) -> "np.ndarray":
        """Vectors for `texts`, in order; `on_progress(n)` after every n texts embedded."""

    def close(self) -> None: ...


class LocalExecutor:
    """Loads, chunks and embeds in this process, one file after another."""

    def __init__(
        self, embedding: EmbeddingSettings, chunking: ChunkingSettings, loaders: dict[str, str], cache_path: Path
    ):
        self.embedding, self.chunking, self.loaders, self.cache_path = embedding, chunking, loaders, cache_path

    # Made at first use: an unchanged re-sync imports neither the chunker nor the embedder.
    @functools.cached_property
    def embedder(self) -> "Embedder":
        from ingest.embedding.embedders import load_embeddings

        return load_embeddings(self.embedding, self.cache_path)

    @functools.cached_property
    def chunker(self) -> "Chunker":
        from ingest.chunking.chunker import Chunker

        return Chunker(self.embedder.token_counter, self.chunking)

    @property
    def bulk(self) -> bool:
        return self.embedder.bulk

    @bulk.setter
    def bulk(self, bulk: bool) -> None:
        self.embedder.bulk = bulk

    @property
    def path(self) -> tuple[str, str]:
        return self.embedder.path

    def split(self, files: Iterable[Files]) -> Iterator[tuple[Files, FileSplit]]:
        for file in files:
            yield file, split_file(file.path, file.data, self.chunker, self.loaders)

    def encode(self, texts: list[str], on_progress: Callable[[int], None]) -> "np.ndarray":
        return self.embedder.encode(texts, on_progress=on_progress)

    def close(self) -> None:
        pass


def _load_and_split(
    path: str, data: bytes, chunker: "Chunker", extra_loaders: dict[str, str]
) -> tuple[list["Document"], list["Chunk"]]:
    loader = loader_for(Path(path), extra_loaders)
    assert loader is not None, "discovery only yields files that have a loader"
    documents = loader(data)
    return documents, chunker.split(documents)
