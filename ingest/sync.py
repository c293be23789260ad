"""`rag ingest`: make the index match the files, like rsync.

Unchanged files (same size and mtime) are skipped without being read; a file whose size or
mtime changed is hashed, and re-chunked only if its content changed; a new file with the content
of a file gone in the same sync (renamed or moved) takes over its vectors instead of being
embedded again; files gone from an ingested folder lose their chunks. Chunks of many files are
embedded together in large batches, because the embedding model, not our code, should dominate
the cost of an ingest.

A dry run takes the same steps (it loads and chunks every file the real run would) and stops
short of embedding and writing, so what it reports is what the real run will do.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol

from ingest.discover import Candidate, discover
from ingest.errors import RebuildScopeError, UsageError
from ingest.executors import FileExecutor, FileSplit, FileToSplit, LocalExecutor
from ingest.index import Index, SourceRecord
from ingest.loaders import IMAGE_SUFFIXES, loader_for
from ingest.loaders.ocr import unread_pages_warning
from ingest.scripts import AUTO_MODEL, CHOICE_FILES, UnreadScripts, choose_embedding_model, cjk_language_of
from ingest.settings import IndexSettings
from ingest.text import plural

if TYPE_CHECKING:
    import numpy as np
    from tokenizers import Tokenizer

# From about this much to read (some 2,000 chunks of text), the embedder's bulk path repays the
# seconds it takes to load (see LocalEmbeddings).
BULK_INGEST_BYTES = 2_000_000
# Files or folders named in the error that asks for rebuild_all; a count says how many more there are.
PLACES_NAMED = 3


class IngestProgress(Protocol):
    """What an ingest tells a progress display as it works.

    `start`: how many files it will read and their total size. `advance`: files read since the
    last call, chunks embedded, and bytes of files whose work is done. A file's bytes are done
    as its chunks are embedded (at once when it has none to embed), so the rate of done bytes
    estimates the time left, embedding being most of it.
    """

    def start(self, total_files: int, total_bytes: int) -> None: ...

    def advance(self, files: int, chunks: int, done_bytes: int) -> None: ...

    def finish(self) -> None: ...


class _Silent:
    def start(self, total_files: int, total_bytes: int) -> None:
        pass

    def advance(self, files: int, chunks: int, done_bytes: int) -> None:
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
    # (old path, new path) of files whose unchanged content moved: their chunks moved with them,
    # not embedded again, and are counted in neither chunks_added nor chunks_removed.
    renamed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # about the whole ingest, e.g. scripts the model cannot read
    ocr: list[tuple[str, str]] = field(default_factory=list)  # (path, its pages read by OCR: "pages 2-4")
    # How chunks were (or, in a dry run, would be) embedded and why (ingest.embedding.embedding_path).
    embedding_path: tuple[str, str] | None = None
    # Chunks added without embedding them: an edited file's chunks whose text did not change keep
    # their vectors, and a text met again in the same ingest is embedded once. A dry run reads no
    # vectors, so it counts none.
    chunks_reused: int = 0
    # (path, why discovery skips it now) of files ingested before that are still on disk: a sync
    # removes only files that are gone, never one it merely no longer sees, so these keep their chunks.
    kept: list[tuple[str, str]] = field(default_factory=list)
    # (model, why) when this ingest chose the embedding model of a new collection (embedding.model "auto").
    embedding_choice: tuple[str, str] | None = None
    # Chunks whose text this ingest analysed again (a dry run: would) for the keyword index, made by
    # an older rag's analysis (Index.update_keyword_index): nothing embedded again.
    keywords_analysed_again: int = 0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        verb = "Would sync" if self.dry_run else "Synced"
        renamed = f"{len(self.renamed)} renamed, " if self.renamed else ""
        return (
            f"{verb}: {len(self.added)} added, {len(self.updated)} updated, {renamed}{len(self.removed)} removed, "
            f"{self.unchanged} unchanged, {len(self.failed)} failed, {len(self.skipped)} skipped "
            f"({self.chunks_added} {plural('chunk', self.chunks_added)} added, {self.chunks_removed} removed) "
            f"in {self.seconds:.2f}s"
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
            "renamed": [{"from": old, "to": new} for old, new in self.renamed],
            "warnings": self.warnings,
            "ocr": [{"path": p, "pages": pages} for p, pages in self.ocr],
            "embedding_path": dict(zip(("path", "reason"), self.embedding_path)) if self.embedding_path else None,
            "chunks_reused": self.chunks_reused,
            "kept": [{"path": p, "reason": reason} for p, reason in self.kept],
            "embedding_choice": dict(zip(("model", "reason"), self.embedding_choice)) if self.embedding_choice else None,
            "keywords_analysed_again": self.keywords_analysed_again,
        }


def ingest(
    paths: list[str | Path],
    settings: IndexSettings,
    *,
    dry_run: bool = False,
    rebuild: bool = False,
    rebuild_all: bool = False,
    progress: IngestProgress | None = None,
    wait: bool = True,
    on_wait: Callable[[], None] | None = None,
) -> IngestReport:
    """Sync the index with the files under `paths` and report what changed. A path gone from the
    disk that the index holds files under is synced as an emptied folder: they are removed.

    `rebuild`: drop the chunks of every file under `paths` and ingest them again; files from
    other folders stay. When the settings that built the collection changed, all of it must be
    embedded again: then the collection is dropped, which `rebuild_all` must allow when it holds
    files from outside `paths` (they are removed, and reported so).

    One ingest writes to an index at a time: another one waits for it (`on_wait` is called
    first), or with `wait=False` fails with IndexBusyError. A dry run reads only and never waits.
    """
    started = time.perf_counter()
    if not paths:
        raise UsageError("Give at least one file or folder to ingest.")
    roots = list(dict.fromkeys(Path(os.path.abspath(os.path.expanduser(p))) for p in paths))
    rebuild = rebuild or rebuild_all
    with Index(settings) as index:
        _require_on_disk_or_indexed(roots, index)
        # Before this ingest's own lock, which may be of some folders only: it needs the whole collection's.
        # A rebuild analyses what it embeds again; the next ingest, the files it left.
        analysed_again = 0
        if not rebuild:
            analysed_again = index.keyword_chunks_outdated() if dry_run else index.update_keyword_index(wait, on_wait)
        with contextlib.nullcontext() if dry_run else _writing(index, roots, rebuild, wait, on_wait):
            drop_collection = rebuild and _rebuild_drops_collection(index, roots, rebuild_all)
            if not dry_run and not drop_collection and index.unfinished():  # a dropped collection needs no repair
                index.reconcile()
            report = _sync(roots, index, settings, dry_run, rebuild, drop_collection, progress or _Silent())
    report.keywords_analysed_again = analysed_again
    report.seconds = time.perf_counter() - started
    return report


def _require_on_disk_or_indexed(roots: list[Path], index: Index) -> None:
    """A path that is gone is synced like a folder emptied: its files leave the index. One the index
    never held is a mistake."""
    missing = [root for root in roots if not os.path.lexists(root)]
    indexed = list(index.sources()) if missing else []
    for root in missing:
        if not any(_under_roots(path, [root]) for path in indexed):
            raise UsageError(f"Path not found: {root}")


@contextlib.contextmanager
def _writing(
    index: Index, roots: list[Path], rebuild: bool, wait: bool, on_wait: Callable[[], None] | None
) -> Iterator[None]:
    """The writer's lock an ingest of `roots` holds: of those folders only, where the index lets
    ingests of different folders write at once, when the collection exists and stays; of the whole
    collection when the ingest makes it (what builds it is recorded once) or rebuilds (it may drop it)."""
    with contextlib.ExitStack() as held:
        folders_only = not rebuild and index.exists()
        held.enter_context(index.writer_lock(wait, on_wait, roots if folders_only else None))
        if folders_only and not index.exists():  # dropped while this one waited: made anew, alone
            held.close()
            held.enter_context(index.writer_lock(wait, on_wait))
        yield


def _rebuild_drops_collection(index: Index, roots: list[Path], rebuild_all: bool) -> bool:
    """Whether a rebuild of `roots` drops the whole collection rather than the files under them.

    It does when asked to, when those files are all the collection holds, and when the settings
    changed, since then every chunk must be embedded again: files from other folders would go
    with it, which is refused unless asked for.
    """
    if rebuild_all:
        return True
    outside = sorted(path for path in index.sources() if not _under_roots(path, roots))
    if not outside:
        return True
    differences = index.settings_differences()
    if not differences:
        return False
    if len(outside) <= PLACES_NAMED:
        places, where = outside, ""
    else:
        parents = {os.path.dirname(path) for path in outside}
        places, where = sorted(f for f in parents if not any(f.startswith(other + os.sep) for other in parents)), "in "
    more = f" and {len(places) - PLACES_NAMED} more" if len(places) > PLACES_NAMED else ""
    raise RebuildScopeError(index.path, differences, len(outside), f"{where}{', '.join(places[:PLACES_NAMED])}{more}")


def _sync(
    roots: list[Path],
    index: Index,
    settings: IndexSettings,
    dry_run: bool,
    rebuild: bool,
    drop_collection: bool,
    progress: IngestProgress,
) -> IngestReport:
    found = discover(roots, settings.ingest)
    if not drop_collection:
        index.check_fingerprint()
    previous = index.sources()
    if not found.candidates and not any(_under_roots(path, roots) for path in previous):
        raise UsageError(
            f"Nothing to ingest in {', '.join(map(str, roots))}: no supported files "
            f"({len(found.skipped)} skipped). Supported: Markdown and MDX, text, PDF, HTML, Office and OpenDocument "
            "files, notebooks, CSV, e-books, mail, images (OCR) and source code; [ingest] loaders maps other suffixes."
        )
    known = {} if drop_collection else previous
    seen = {candidate.path for candidate in found.candidates}
    unseen = [record for path, record in sorted(known.items()) if path not in seen and _under_roots(path, roots)]
    skipped = found.skipped
    # Still on disk with text, only skipped now (a hidden folder, an ignore rule): kept, and said so.
    kept = [record for record in unseen if os.path.isfile(record.path) and record.path not in found.empty]
    vanished = [record for record in unseen if record not in kept]
    to_read = found.candidates if rebuild else [c for c in found.candidates if _stat_changed(c, known.get(c.path))]

    report = IngestReport(skipped=list(found.skipped.items()), unchanged=len(found.candidates) - len(to_read), dry_run=dry_run)
    report.kept = [(record.path, _skip_reason(record.path, skipped)) for record in kept]
    if kept:
        subject = "1 file ingested before is" if len(kept) == 1 else f"{len(kept)} files ingested before are"
        report.warnings.append(
            f"{subject} skipped now ({report.kept[0][1]}{', ...' if len(kept) > 1 else ''}) but still there, so "
            f"{'it keeps its' if len(kept) == 1 else 'they keep their'} chunks; a rebuild of the whole collection "
            "leaves them out."
        )
    model = settings.embedding.model
    if (model == AUTO_MODEL or settings.chunking.waits_for_documents(model)) and (drop_collection or not index.exists()):
        sample = _sample_texts(to_read, settings)
        if model == AUTO_MODEL:
            report.embedding_choice = choose_embedding_model(sample)
            model = report.embedding_choice[0]
        index.choose_embedding_model(model, cjk_language_of(sample))
    embedding = settings.embedding.model_copy(update={"model": index.embedding_model})
    chunking = settings.chunking.model_copy(update={"chunk_tokens": index.chunk_tokens})
    settings = settings.model_copy(update={"embedding": embedding, "chunking": chunking})
    # Made before anything is written: a cluster that cannot be reached leaves the index as it was.
    with contextlib.closing(_executor(settings, to_read)) as executor:
        files = _FileSync(index, settings, executor, report, progress, dry_run, known, vanished, reuse=not rebuild)
        if not dry_run:
            # Marked unfinished until the end: an ingest killed midway is reconciled by the next one.
            index.begin_writes()
            if drop_collection:
                index.drop()
        files.run(to_read)
        if report.chunks_added > report.chunks_reused:  # a dry run says how it would embed them
            report.embedding_path = executor.path
    if warning := files.unread_scripts.warning():
        report.warnings.append(warning)
    if pages_warning := unread_pages_warning(files.unread_pages):
        report.warnings.append(pages_warning)
    gone = files.gone()
    if not dry_run:
        if gone:
            index.remove_sources(gone)
        if index.exists():
            index.mark_synced()
        index.end_writes()
    report.removed = sorted(record.path for record in gone)
    report.chunks_removed += sum(len(record.chunk_ids) for record in gone)
    if drop_collection:  # every chunk went with the collection; the files not ingested again are gone
        ingested = set(report.added)
        report.removed = sorted(path for path in previous if path not in ingested)
        report.chunks_removed = sum(len(record.chunk_ids) for record in previous.values())
    return report


def _executor(settings: IndexSettings, to_read: list[Candidate]) -> FileExecutor:
    """The workers of the Ray cluster `ingest.ray_address` names when there are files to read,
    else this process. Ray is imported only then."""
    local = LocalExecutor(settings.embedding, settings.chunking, settings.ingest.loaders, settings.cache_path)
    if not settings.ingest.ray_address or not to_read:
        return local
    from ingest.ray_executor import RayExecutor

    return RayExecutor(settings.ingest.ray_address, local)


def _skip_reason(path: str, skipped: dict[str, str]) -> str:
    """Why discovery skipped `path`: its own entry, or that of the folder it skipped whole."""
    for place in (path, *map(str, Path(path).parents)):
        if place in skipped:
            return skipped[place] if place == path else f"in {os.path.basename(place)}/: {skipped[place]}"
    return "skipped"


def _under_roots(path: str, roots: list[Path]) -> bool:
    return any(path == str(root) or path.startswith(str(root) + os.sep) for root in roots)


def _stat_changed(candidate: Candidate, record: SourceRecord | None) -> bool:
    return record is None or (record.size, record.mtime_ns) != (candidate.size, candidate.mtime_ns)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _chunk_id(path: str, sha256: str, position: int) -> str:
    return hashlib.sha1(f"{path}\0{sha256}\0{position}".encode()).hexdigest()


def _blank(data: bytes) -> bool:
    return not data.removeprefix(codecs.BOM_UTF8).strip()


@dataclass
class _ToSplit(FileToSplit):
    record: SourceRecord
    size: int
    previous: SourceRecord | None


@dataclass
class _Prepared:
    """One file's chunks, ready to write. `previous`: the row they replace, the same path's or,
    for a renamed file, its old path's (whose vectors these are)."""

    record: SourceRecord
    size: int
    texts: list[str]
    metadatas: list[dict[str, Any]]
    previous: SourceRecord | None
    renamed: bool = False
    vectors: "np.ndarray | None" = None  # None: to be embedded


class _FileSync:
    """Reads, chunks and writes the files to read, in groups, and counts what it did.

    A dry run counts each file as it is prepared; a real run counts it once it is written.
    """

    def __init__(
        self,
        index: Index,
        settings: IndexSettings,
        executor: FileExecutor,
        report: IngestReport,
        progress: IngestProgress,
        dry_run: bool,
        known: dict[str, SourceRecord],
        vanished: list[SourceRecord],
        reuse: bool,
    ):
        self.index = index
        self.settings = settings
        self.executor = executor
        self.report = report
        self.progress = progress
        self.dry_run = dry_run
        self.known = known
        # False for a rebuild, whose point is to embed again: no content hash or vectors are reused.
        self.reuse = reuse
        self._vanished = {record.path: record for record in vanished}
        self._vanished_by_sha: dict[str, list[SourceRecord]] = {}
        for record in vanished:
            self._vanished_by_sha.setdefault(record.sha256, []).append(record)
        self.unread_scripts = UnreadScripts(settings.embedding.model, self._model_tokenizer)
        self.unread_pages: list[tuple[str, str]] = []  # (path, its pages without text, not read without OCR)
        self._emptied: list[SourceRecord] = []  # ingested before, nothing to index now
        self._touched: list[SourceRecord] = []
        self._pending: list[_Prepared] = []
        self._pending_chunks = 0

    def gone(self) -> list[SourceRecord]:
        """The ingested files to remove: gone from disk (and not renamed), or now without text."""
        return [*self._vanished.values(), *self._emptied]

    def _model_tokenizer(self) -> "Tokenizer":
        from ingest.embedding.embedders import model_tokenizer

        return model_tokenizer(self.settings.embedding.model)

    def run(self, to_read: list[Candidate]) -> None:
        if not to_read:
            return
        total_bytes = sum(candidate.size for candidate in to_read)
        self.executor.bulk = total_bytes >= BULK_INGEST_BYTES
        self.progress.start(len(to_read), total_bytes)
        try:
            for file, split in self.executor.split(self._files_to_split(to_read)):
                self._prepare(file, split)
                self._write_if_full()
            self._write_pending()
            if self._touched and not self.dry_run:
                self.index.touch_sources(self._touched)
        finally:
            self.progress.finish()

    def _files_to_split(self, to_read: list[Candidate]) -> Iterator[_ToSplit]:
        for candidate in to_read:
            if (file := self._read(candidate)) is not None:
                yield file
            else:  # a renamed file's chunks fill the group too
                self._write_if_full()

    def _write_if_full(self) -> None:
        if self._pending_chunks >= self.settings.ingest.group_chunks:
            self._write_pending()

    def _read(self, candidate: Candidate) -> _ToSplit | None:
        """The file to load and chunk, or None when it is done with here: unchanged content,
        blank, renamed, or unreadable."""
        previous = self.known.get(candidate.path)
        try:
            data = Path(candidate.path).read_bytes()
        except OSError as exc:
            self._settle(candidate, failed=f"cannot read: {exc.strerror or exc}")
            return None
        sha256 = _sha256(data)
        # The stat taken at discovery: a file changed since is read again by the next sync.
        record = SourceRecord(candidate.path, candidate.size, candidate.mtime_ns, sha256, [], time.time())
        if self.reuse and previous is not None and previous.sha256 == sha256:
            record.chunk_ids, record.ingested_at = previous.chunk_ids, previous.ingested_at
            self._touched.append(record)
            self.report.unchanged += 1
            self._settle(candidate)
            return None
        if _blank(data):
            self._settle(candidate, skipped="empty file (only whitespace)", previous=previous)
            return None
        if previous is None and self.reuse and (moved := self._moved_here(candidate.path, sha256)) is not None:
            if (renamed := self._moved_chunks(record, candidate.size, moved)) is not None:
                self._queue(renamed)
                return None
        return _ToSplit(candidate.path, data, record, candidate.size, previous)

    def _prepare(self, file: _ToSplit, split: FileSplit) -> None:
        """Queue a file's chunks to be written, or settle it when it has none."""
        if split.failed or split.skipped:
            return self._settle(file, failed=split.failed, skipped=split.skipped, previous=file.previous)
        if split.read_by_ocr:
            self.report.ocr.append((file.path, split.read_by_ocr))
        if split.unread_pages:
            self.unread_pages.append((file.path, split.unread_pages))
        record = file.record
        record.chunk_ids = [_chunk_id(file.path, record.sha256, i) for i in range(len(split.texts))]
        self.unread_scripts.check(file.path, "\n".join(split.texts))
        self._queue(_Prepared(record, file.size, split.texts, split.metadatas, file.previous))

    def _settle(
        self, file: Candidate | _ToSplit, *, failed: str = "", skipped: str = "", previous: SourceRecord | None = None
    ) -> None:
        """A file done with without writing chunks: unchanged, failed (it keeps its chunks) or
        skipped (with nothing to index, it loses them)."""
        if failed:
            self.report.failed.append((file.path, failed))
        if skipped:
            self.report.skipped.append((file.path, skipped))
            if previous is not None:
                self._emptied.append(previous)
        self.progress.advance(1, 0, file.size)

    def _moved_here(self, path: str, sha256: str) -> SourceRecord | None:
        """A vanished file with this content, read by the same loader (a new suffix can chunk differently)."""
        loaders = self.settings.ingest.loaders
        loader = loader_for(Path(path), loaders)
        for record in self._vanished_by_sha.get(sha256, []):
            if record.path in self._vanished and loader_for(Path(record.path), loaders) is loader:
                return record
        return None

    def _moved_chunks(self, record: SourceRecord, size: int, moved: SourceRecord) -> _Prepared | None:
        """The moved file's stored chunks under the new path (None: they are not all stored, so it
        is embedded). A dry run reads no vectors: it counts the move the real run makes."""
        import numpy as np

        texts: list[str] = []
        metadatas: list[dict[str, Any]] = []
        vectors = None
        if not self.dry_run:
            stored = self.index.get_chunks(moved.chunk_ids, vectors=True)
            if len(stored) != len(moved.chunk_ids):
                return None
            chunks = [stored[chunk_id] for chunk_id in moved.chunk_ids]
            texts = [chunk.text for chunk in chunks]
            metadatas = [{**chunk.metadata, "source": record.path} for chunk in chunks]
            vectors = np.asarray([chunk.embedding for chunk in chunks], dtype=np.float32)
        del self._vanished[moved.path]
        record.chunk_ids = [_chunk_id(record.path, record.sha256, i) for i in range(len(moved.chunk_ids))]
        return _Prepared(record, size, texts, metadatas, moved, renamed=True, vectors=vectors)

    def _queue(self, prepared: _Prepared) -> None:
        if self.dry_run:
            self._count(prepared)
            self.progress.advance(1, 0, prepared.size)
            return
        self._pending.append(prepared)
        self._pending_chunks += len(prepared.texts)
        self.progress.advance(1, 0, prepared.size if prepared.vectors is not None else 0)

    def _count(self, prepared: _Prepared) -> None:
        report, path, previous = self.report, prepared.record.path, prepared.previous
        if prepared.renamed:
            assert previous is not None
            report.renamed.append((previous.path, path))
            return
        (report.updated if previous else report.added).append(path)
        report.chunks_added += len(prepared.record.chunk_ids)
        report.chunks_removed += len(previous.chunk_ids) if previous else 0

    def _write_pending(self) -> None:
        if not self._pending:
            return
        import numpy as np

        group, self._pending, self._pending_chunks = self._pending, [], 0
        self._embed([prepared for prepared in group if prepared.vectors is None])
        vectors = np.concatenate([prepared.vectors for prepared in group])
        if not self.index.exists():
            self.index.create(embedding_dimension=int(vectors.shape[1]))
        else:
            self.index.check_dimension(int(vectors.shape[1]))
        self.index.write_sources(
            [prepared.record for prepared in group],
            [chunk_id for prepared in group for chunk_id in prepared.record.chunk_ids],
            [text for prepared in group for text in prepared.texts],
            [metadata for prepared in group for metadata in prepared.metadatas],
            vectors,
            [chunk_id for prepared in group if prepared.previous for chunk_id in prepared.previous.chunk_ids],
            superseded=[prepared.previous for prepared in group if prepared.renamed and prepared.previous],
        )
        for prepared in group:
            self._count(prepared)

    def _embed(self, group: list[_Prepared]) -> None:
        import numpy as np

        texts = [text for prepared in group for text in prepared.texts]
        if not texts:
            return
        vectors = self._unchanged_vectors(group)
        to_embed = [text for text in dict.fromkeys(texts) if text not in vectors]
        self.report.chunks_reused += len(texts) - len(to_embed)
        bytes_per_chunk = sum(prepared.size for prepared in group) / len(texts)
        embedded = 0

        def on_progress(count: int) -> None:
            nonlocal embedded
            done_before = round(embedded * bytes_per_chunk)
            embedded += count
            self.progress.advance(0, count, round(embedded * bytes_per_chunk) - done_before)

        if len(to_embed) < len(texts):
            on_progress(len(texts) - len(to_embed))
        if to_embed:
            vectors.update(zip(to_embed, self.executor.encode(to_embed, on_progress)))
        for prepared in group:
            prepared.vectors = np.asarray([vectors[text] for text in prepared.texts], dtype=np.float32)

    def _unchanged_vectors(self, group: list[_Prepared]) -> dict[str, "np.ndarray"]:
        """The stored vectors of the chunks that edited files had before, by text: a chunk whose
        text is the same again needs no embedding. (A rebuild embeds everything again.)"""
        if not self.reuse:
            return {}
        previous_ids = [chunk_id for prepared in group if prepared.previous for chunk_id in prepared.previous.chunk_ids]
        if not previous_ids:
            return {}
        stored = self.index.get_chunks(previous_ids, vectors=True)
        return {chunk.text: chunk.embedding for chunk in stored.values() if chunk.embedding is not None}


def _sample_texts(candidates: list[Candidate], settings: IndexSettings) -> list[str]:
    """The text of up to CHOICE_FILES files spread over `candidates`, images (OCR) left out; a file
    that cannot be read adds nothing."""
    readable = [c for c in candidates if Path(c.path).suffix.lower() not in IMAGE_SUFFIXES]
    step = max(1, len(readable) // CHOICE_FILES)
    texts = []
    for candidate in readable[::step][:CHOICE_FILES]:
        try:
            loader = loader_for(Path(candidate.path), settings.ingest.loaders)
            texts += [document.page_content for document in loader(Path(candidate.path).read_bytes())] if loader else []
        except Exception:  # the ingest itself reports what is wrong with the file
            continue
    return texts
