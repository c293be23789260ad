"""`rag ingest`: make the index match the files, like rsync.

Unchanged files (same size and mtime) are skipped without being read; a file whose size or
mtime changed is hashed, and re-chunked only if its content changed; files gone from an
ingested folder lose their chunks. Chunks of many files are embedded together in large batches,
because the embedding model, not our code, should dominate the cost of an ingest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Protocol

from ingest.discover import Candidate, discover
from ingest.index import Index, SourceRecord
from ingest.loaders import loader_for
from rag.errors import LoadError, UsageError
from rag.settings import Settings

if TYPE_CHECKING:
    from ingest.chunking import Chunk, Chunker
    from ingest.embedding import LocalEmbeddings

# From about this much to read (some 2,000 chunks of text), the embedder's bulk path repays the
# seconds it takes to load (see LocalEmbeddings).
BULK_INGEST_BYTES = 2_000_000


class IngestProgress(Protocol):
    def start(self, total_files: int) -> None: ...

    def advance(self, files: int, chunks: int) -> None: ...

    def finish(self) -> None: ...


class _Silent:
    def start(self, total_files: int) -> None:
        pass

    def advance(self, files: int, chunks: int) -> None:
        pass

    def finish(self) -> None:
        pass


@dataclass
class IngestReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    chunks_added: int = 0
    chunks_removed: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        verb = "Would sync" if self.dry_run else "Synced"
        return (
            f"{verb}: {len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed, {len(self.skipped)} skipped "
            f"({self.chunks_added} chunks added, {self.chunks_removed} removed) in {self.seconds:.2f}s"
        )

    def to_dict(self) -> dict:
        return {
            "added": self.added,
            "updated": self.updated,
            "removed": self.removed,
            "unchanged": self.unchanged,
            "failed": [{"path": p, "reason": r} for p, r in self.failed],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "chunks_added": self.chunks_added,
            "chunks_removed": self.chunks_removed,
            "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
        }


@dataclass
class _Prepared:
    record: SourceRecord
    chunks: list["Chunk"]
    replaced_ids: list[str]
    is_new: bool


def ingest(
    paths: list[str | Path],
    settings: Settings,
    *,
    dry_run: bool = False,
    rebuild: bool = False,
    progress: IngestProgress | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> IngestReport:
    """Sync the index with the files under `paths` and report what changed.

    One ingest writes to an index at a time: another one waits for it (`on_wait` is called
    first), or with `wait=False` fails with IndexBusyError. A dry run reads only and never waits.
    """
    started = time.perf_counter()
    if not paths:
        raise UsageError("Give at least one file or folder to ingest.")
    roots = [Path(os.path.abspath(os.path.expanduser(p))) for p in paths]
    for root in roots:
        if not root.exists():
            raise UsageError(f"Path not found: {root}")
    index = Index(settings)
    with contextlib.nullcontext() if dry_run else index.writer_lock(wait, on_wait):
        if not dry_run and not rebuild and index.unfinished():  # a rebuild drops it all anyway
            index.reconcile()
        return _sync(roots, index, settings, dry_run, rebuild, progress, started)


def _sync(
    roots: list[Path],
    index: Index,
    settings: Settings,
    dry_run: bool,
    rebuild: bool,
    progress: IngestProgress | None,
    started: float,
) -> IngestReport:
    found = discover(roots, settings.ingest)
    if not rebuild:
        index.check_fingerprint()
    known = {} if rebuild else index.sources()

    report = IngestReport(skipped=found.skipped, dry_run=dry_run)
    seen = {c.path for c in found.candidates}
    removals = [r for path, r in known.items() if path not in seen and _under_roots(path, roots)]
    to_read = [c for c in found.candidates if _stat_changed(c, known.get(c.path))]
    report.unchanged = len(found.candidates) - len(to_read)
    if not found.candidates and not removals and not any(_under_roots(p, roots) for p in known):
        raise UsageError(
            f"Nothing to ingest in {', '.join(map(str, roots))}: no supported files "
            f"({len(found.skipped)} skipped). Supported types: .md .txt .rst .pdf .html .docx and source code."
        )

    if dry_run:
        _plan(to_read, known, report)
    else:
        # Marked unfinished until the end: an ingest killed midway is reconciled by the next one.
        index.begin_writes()
        if rebuild:
            index.drop()
        _apply(to_read, known, removals, index, settings, report, progress or _Silent())
        index.end_writes()
    report.removed = sorted(r.path for r in removals)
    report.chunks_removed += sum(len(r.chunk_ids) for r in removals)
    report.seconds = time.perf_counter() - started
    return report


def _under_roots(path: str, roots: list[Path]) -> bool:
    return any(path == str(root) or path.startswith(str(root) + os.sep) for root in roots)


def _stat_changed(candidate: Candidate, record: SourceRecord | None) -> bool:
    return record is None or (record.size, record.mtime_ns) != (candidate.size, candidate.mtime_ns)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _plan(to_read: list[Candidate], known: dict[str, SourceRecord], report: IngestReport) -> None:
    for candidate in to_read:
        record = known.get(candidate.path)
        if record is None:
            report.added.append(candidate.path)
            continue
        try:
            changed = _sha256(Path(candidate.path).read_bytes()) != record.sha256
        except OSError as exc:
            report.failed.append((candidate.path, f"cannot read: {exc.strerror or exc}"))
            continue
        if changed:
            report.updated.append(candidate.path)
        else:
            report.unchanged += 1


def _apply(
    to_read: list[Candidate],
    known: dict[str, SourceRecord],
    removals: list[SourceRecord],
    index: Index,
    settings: Settings,
    report: IngestReport,
    progress: IngestProgress,
) -> None:
    if removals:
        index.remove_sources(removals)
    if to_read:
        from ingest.chunking import Chunker
        from ingest.embedding import LocalEmbeddings

        embedder = LocalEmbeddings(settings.embedding, settings.cache_path)
        embedder.bulk = sum(candidate.size for candidate in to_read) >= BULK_INGEST_BYTES
        chunker = Chunker(embedder.token_counter, settings.chunking)
        progress.start(len(to_read))
        try:
            _ingest_files(to_read, known, index, embedder, chunker, settings.ingest.group_chunks, report, progress)
        finally:
            progress.finish()
    if index.exists():
        index.mark_synced()


def _ingest_files(
    to_read: list[Candidate],
    known: dict[str, SourceRecord],
    index: Index,
    embedder: "LocalEmbeddings",
    chunker: "Chunker",
    group_chunks: int,
    report: IngestReport,
    progress: IngestProgress,
) -> None:
    group: list[_Prepared] = []
    touched: list[SourceRecord] = []
    for candidate in to_read:
        previous = known.get(candidate.path)
        try:
            data = Path(candidate.path).read_bytes()
        except OSError as exc:
            report.failed.append((candidate.path, f"cannot read: {exc.strerror or exc}"))
            progress.advance(1, 0)
            continue
        sha256 = _sha256(data)
        record = SourceRecord(candidate.path, candidate.size, candidate.mtime_ns, sha256, [], time.time())
        if previous is not None and previous.sha256 == sha256:
            record.chunk_ids, record.ingested_at = previous.chunk_ids, previous.ingested_at
            touched.append(record)
            report.unchanged += 1
            progress.advance(1, 0)
            continue
        try:
            chunks = _load_and_split(candidate.path, data, chunker)
        except LoadError as exc:
            report.failed.append((candidate.path, str(exc)))
            progress.advance(1, 0)
            continue
        except Exception as exc:  # a parser bug on one odd file must not stop the whole ingest
            report.failed.append((candidate.path, f"could not be parsed ({type(exc).__name__}: {exc})"))
            progress.advance(1, 0)
            continue
        record.chunk_ids = [_chunk_id(candidate.path, sha256, i) for i in range(len(chunks))]
        group.append(_Prepared(record, chunks, previous.chunk_ids if previous else [], previous is None))
        if sum(len(p.chunks) for p in group) >= group_chunks:
            _write_group(group, index, embedder, report, progress)
            group = []
    if group:
        _write_group(group, index, embedder, report, progress)
    if touched:
        index.touch_sources(touched)


def _load_and_split(path: str, data: bytes, chunker: "Chunker") -> list["Chunk"]:
    loader = loader_for(Path(path))
    assert loader is not None, "discovery only yields files that have a loader"
    chunks = chunker.split(loader(data))
    if not chunks:
        raise LoadError("no text to index")
    return chunks


def _chunk_id(path: str, sha256: str, position: int) -> str:
    return hashlib.sha1(f"{path}\0{sha256}\0{position}".encode()).hexdigest()


def _write_group(
    group: list[_Prepared],
    index: Index,
    embedder: "LocalEmbeddings",
    report: IngestReport,
    progress: IngestProgress,
) -> None:
    texts = [chunk.text for prepared in group for chunk in prepared.chunks]
    vectors = embedder.encode(texts, on_progress=lambda embedded: progress.advance(0, embedded))
    if not index.exists():
        index.create(embedding_dimension=int(vectors.shape[1]))
    else:
        index.check_dimension(int(vectors.shape[1]))
    ids = [chunk_id for prepared in group for chunk_id in prepared.record.chunk_ids]
    metadatas = [
        {**chunk.metadata, "source": prepared.record.path} for prepared in group for chunk in prepared.chunks
    ]
    replaced = [chunk_id for prepared in group for chunk_id in prepared.replaced_ids]
    index.write_sources([p.record for p in group], ids, texts, metadatas, vectors, replaced)
    for prepared in group:
        (report.added if prepared.is_new else report.updated).append(prepared.record.path)
        report.chunks_added += len(prepared.chunks)
        report.chunks_removed += len(prepared.replaced_ids)
        progress.advance(1, 0)
