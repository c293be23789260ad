"""Copying a collection to another backend (`rag migrate`): Chroma on disk with its SQLite manifest,
a Chroma server with the manifest in an index folder, or the whole index in PostgreSQL.

What is copied is what the source holds, read back as stored: every chunk's vector (nothing is
embedded again), text and metadata, the file manifest, the keyword index (made from the same texts
by the same analysis, as an ingest makes it) and the build record with its times. The source is
only read, under its writer lock, so no ingest changes it meanwhile; the target's writer lock
keeps ingests out of the copy.

The target must not hold the collection already, unless it is empty: the copy never overwrites or
mixes with what is there. It is written in groups of whole files, each as an ingest writes it (in
PostgreSQL one transaction), and the build record comes last: until then no other command sees a
collection there. A copy that stops midway (killed, a server gone) is resumed by running it again,
which keeps the files already copied whole and writes the rest. Before the build record is
written the copy is read back and checked against the source: the counts of files, chunks, vectors
and keyword entries, the whole manifest, and a sample of chunks whose vectors must be equal within
float tolerance and whose texts and metadata must be equal.
"""

from __future__ import annotations

import random
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from ingest.errors import (
    MigrationCheckError,
    MigrationSourceInconsistentError,
    MigrationTargetError,
    MigrationTargetNotEmptyError,
    UsageError,
)
from ingest.index import Index, SourceRecord
from ingest.index.postgres import POSTGRES_SCHEMES
from ingest.index.store import url_without_password
from ingest.settings import IndexDatabaseSettings, IndexSettings, VectorStoreSettings

CHROMA_SERVER_SCHEMES = ("http", "https")
TARGETS = [
    "postgresql://USER@HOST:PORT/DATABASE for PostgreSQL with pgvector",
    "http://HOST:PORT for a Chroma server (its manifest in an index folder)",
    "a folder for an index on disk",
]
# Vectors are float32 in every store; a copy read back may differ by rounding of that order only.
VECTOR_TOLERANCE = 1e-6
SAMPLED_CHUNKS = 200


@dataclass
class MigrationReport:
    collection: str
    source: str  # where the collection was copied from, in words (no password)
    target: str  # where it was copied to, in words (no password)
    files: int
    chunks: int
    vectors: int  # in the target's store, equal to the source's
    keyword_entries: int  # in the target's keyword index, equal to the source's
    files_copied: int  # by this run: fewer than `files` when it resumed a copy that stopped
    sampled_chunks: int  # whose vectors, texts and metadata were compared
    largest_vector_difference: float  # over the sampled vectors' components

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def summary(self) -> str:
        resumed = "" if self.files_copied == self.files else f" (this run copied {self.files_copied}; the rest were there)"
        return (
            f"Copied collection {self.collection!r} from {self.source} to {self.target}: {self.files} files, "
            f"{self.chunks} chunks{resumed}, their vectors as stored. Checked: {self.vectors} vectors and "
            f"{self.keyword_entries} keyword entries on both sides, the same manifest, and {self.sampled_chunks} "
            f"sampled chunks alike (largest vector difference {self.largest_vector_difference:.1e})."
        )


def index_label(index: Index) -> str:
    """Where an index is, in words, without a password: its folder (and the Chroma server holding its
    vectors, if one does), or the PostgreSQL database holding all of it."""
    if index.database_label:
        return index.database_label
    if index.store_url:
        return f"the index at {index.path} with its vectors on the Chroma server {url_without_password(index.store_url)}"
    return f"the index at {index.path}"


def target_settings(source: IndexSettings, to: str, index_dir: Path | None = None) -> IndexSettings:
    """The settings of the same collection where `to` says: a PostgreSQL URL, a Chroma server's URL
    (with the manifest in `index_dir`, by default the source's index folder), or a folder."""
    scheme = urllib.parse.urlsplit(to).scheme.lower() if "://" in to else None
    if scheme in POSTGRES_SCHEMES:
        if index_dir is not None:
            raise UsageError("PostgreSQL holds the whole index: an index folder goes only with a Chroma server.")
        where: dict[str, Any] = {"index": IndexDatabaseSettings(url=to), "vector_store": VectorStoreSettings(url=None)}
    elif scheme in CHROMA_SERVER_SCHEMES:
        folder = Path(index_dir).expanduser().resolve() if index_dir else source.index_path
        where = {"index": IndexDatabaseSettings(url=None), "vector_store": VectorStoreSettings(url=to), "index_dir": folder}
    elif scheme is None and to.strip():
        if index_dir is not None:
            raise UsageError("A folder is the whole index on disk: an index folder goes only with a Chroma server.")
        folder = Path(to).expanduser().resolve()
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{folder} is a file; a collection is copied to a folder (new, or an index's).")
        where = {"index": IndexDatabaseSettings(url=None), "vector_store": VectorStoreSettings(url=None), "index_dir": folder}
    else:
        raise MigrationTargetError(url_without_password(to), TARGETS)
    # index_dir is the settings' field for the index folder (rag.settings.Settings); index_path derives from it.
    return source.model_copy(update=where)


def migrate(
    source_settings: IndexSettings,
    to: str,
    *,
    index_dir: Path | None = None,
    sample: int = SAMPLED_CHUNKS,
    on_progress: Callable[[int, int], None] | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> MigrationReport:
    """Copy the settings' collection to `to` (see `target_settings`), check the copy, and report it.

    Refused (MigrationTargetNotEmptyError) when the target already holds that collection with
    anything in it; a copy that stopped midway is resumed. `on_progress(files done, files)` is
    called after each group of files written; `wait` and `on_wait` are those of an ingest, for the
    writer locks of both.
    """
    destination = target_settings(source_settings, to, index_dir)
    collection = source_settings.collection
    if _same_manifest(source_settings, destination):
        raise UsageError(
            f"The collection {collection!r} is in the index at {destination.index_path} already, whose manifest a copy "
            "there would share: give the copy an index folder of its own (index_dir, or --to-index with a Chroma server)."
        )
    with Index(source_settings) as source, Index(destination) as target:
        source_label, target_label = index_label(source), index_label(target)
        source.require()
        if source_label == target_label:
            raise UsageError(f"The collection {collection!r} is in {source_label} already: give another place to copy it to.")
        if not source.sources():  # and an empty one would be refused no lock later
            raise UsageError(f"The collection {collection!r} in {source_label} holds no files: there is nothing to copy.")
        _refuse_a_target_in_use(target, target_label)
        # Source first, then target. A target under the source's own lock (its folder, its database) holds
        # this collection, with files: refused above, before its lock could wait for itself.
        with source.writer_lock(wait, on_wait), target.writer_lock(wait, on_wait):
            _refuse_a_target_in_use(target, target_label)  # an ingest that held the lock may have made it meanwhile
            build = source.require()  # again: a rebuild that held the lock first may have dropped it
            records = source.sources()
            if not source.problems().ok:
                raise MigrationSourceInconsistentError(source_label, collection)
            target.begin_writes()
            copied = _copy(source, target, records, destination.ingest.group_chunks, on_progress)
            _forget_what_the_source_lacks(target, records)
            report = _check(source, target, records, sample, (source_label, target_label), copied)
            target.record_build(build)
            target.end_writes()
    return report


def _same_manifest(source: IndexSettings, target: IndexSettings) -> bool:
    """Whether both keep the manifest in SQLite in the same folder: one collection of a name there."""
    in_folders = not source.index.url and not target.index.url
    return in_folders and source.index_path.expanduser().resolve() == target.index_path.expanduser().resolve()


def _refuse_a_target_in_use(target: Index, label: str) -> None:
    """Refuse a target that holds the collection with anything in it, or vectors of that name no
    copy of ours left (a collection on a shared Chroma server, say)."""
    files, chunks = len(target.sources()), target.store.count()
    if target.build_record() is not None:
        if files or chunks:
            raise MigrationTargetNotEmptyError(label, target.collection_name, files, chunks)
    elif chunks and not files and not target.unfinished():
        raise MigrationTargetNotEmptyError(label, target.collection_name, 0, chunks)


def _groups(records: dict[str, SourceRecord], group_chunks: int) -> Iterator[list[SourceRecord]]:
    """Whole files, in path order, about `group_chunks` chunks at a time."""
    group: list[SourceRecord] = []
    chunks = 0
    for path in sorted(records):
        group.append(records[path])
        chunks += len(records[path].chunk_ids)
        if chunks >= group_chunks:
            yield group
            group, chunks = [], 0
    if group:
        yield group


def _copy(
    source: Index,
    target: Index,
    records: dict[str, SourceRecord],
    group_chunks: int,
    on_progress: Callable[[int, int], None] | None,
) -> int:
    """Write the files the target lacks whole (all of them, unless an earlier copy stopped midway);
    returns how many were written."""
    import numpy as np

    present = target.sources()
    stored_vectors, stored_words = (target.chunk_ids(), target.keyword_chunk_ids()) if present else (set(), set())
    wanted = {
        path: record
        for path, record in records.items()
        if not (
            path in present
            and record == present[path]
            and set(record.chunk_ids) <= stored_vectors
            and set(record.chunk_ids) <= stored_words
        )
    }
    done = len(records) - len(wanted)
    for group in _groups(wanted, group_chunks):
        ids = _ids(group)
        chunks = source.get_chunks(ids, vectors=True)
        replaced = [chunk_id for record in group if record.path in present for chunk_id in present[record.path].chunk_ids]
        target.write_sources(
            group,
            ids,
            [chunks[chunk_id].text for chunk_id in ids],
            [chunks[chunk_id].metadata for chunk_id in ids],
            np.stack([np.asarray(chunks[chunk_id].embedding, dtype=np.float32) for chunk_id in ids]) if ids else
            np.zeros((0, 0), dtype=np.float32),
            replaced_ids=replaced,
        )
        done += len(group)
        if on_progress:
            on_progress(done, len(records))
    return len(wanted)


def _forget_what_the_source_lacks(target: Index, records: dict[str, SourceRecord]) -> None:
    """Drop what an earlier, stopped copy left that the source no longer holds (it changed since),
    so that the copy holds exactly the source's files and chunks."""
    stale = [record for path, record in target.sources().items() if path not in records]
    target.remove_sources(stale)
    listed = set(_ids(records.values()))
    target.forget_chunks(sorted(target.chunk_ids() - listed), sorted(target.keyword_chunk_ids() - listed))


def _check(
    source: Index,
    target: Index,
    records: dict[str, SourceRecord],
    sample: int,
    labels: tuple[str, str],
    files_copied: int,
) -> MigrationReport:
    """Read the copy back and compare it with the source; MigrationCheckError lists what differs."""
    import numpy as np

    differences = []
    copied = target.sources()
    if copied != records:
        differences.append("the manifests differ")
    listed = sorted(set(_ids(records.values())))
    counts = {
        "vectors": (source.store.count(), target.store.count()),
        "keyword entries": (len(source.keyword_chunk_ids()), len(target.keyword_chunk_ids())),
    }
    differences += [
        f"{what}: {original} in the original, {copy} in the copy" for what, (original, copy) in counts.items()
        if original != copy
    ]
    # Seeded by the collection's size: the same collection is checked on the same sample each time.
    chosen = random.Random(len(listed)).sample(listed, min(sample, len(listed)))
    originals, copies = source.get_chunks(chosen, vectors=True), target.get_chunks(chosen, vectors=True)
    largest = 0.0
    unlike = []
    for chunk_id in chosen:
        original, copy = originals.get(chunk_id), copies.get(chunk_id)
        if original is None or copy is None or original.text != copy.text or original.metadata != copy.metadata:
            unlike.append(chunk_id)
            continue
        difference = float(np.max(np.abs(np.asarray(original.embedding) - np.asarray(copy.embedding)), initial=0.0))
        largest = max(largest, difference)
        if not difference <= VECTOR_TOLERANCE:  # NaN too
            unlike.append(chunk_id)
    if unlike:
        differences.append(f"{len(unlike)} of {len(chosen)} sampled chunks differ, e.g. {unlike[0]}")
    if differences:
        raise MigrationCheckError(labels[1], target.collection_name, differences)
    return MigrationReport(
        collection=target.collection_name,
        source=labels[0],
        target=labels[1],
        files=len(records),
        chunks=len(listed),
        vectors=counts["vectors"][1],
        keyword_entries=counts["keyword entries"][1],
        files_copied=files_copied,
        sampled_chunks=len(chosen),
        largest_vector_difference=largest,
    )


def _ids(records: Iterable[SourceRecord]) -> list[str]:
    return [chunk_id for record in records for chunk_id in record.chunk_ids]
