"""Loading, chunking and embedding on the workers of a Ray cluster (`ingest.ray_address`, rag[ray]).

The sync stays in the process that runs it (ingest.sync): it decides which files to read, reads
and hashes them, and alone writes the index, so a Ray ingest has the semantics and the crash
safety of a local one. Only the work per file goes to the cluster: a task loads and chunks a
batch of files, another embeds a share of a group's new texts. Workers need rag installed, not
the files: each file's bytes travel with its task. A worker process builds its chunker and
embedder at its first task (from the installed model: nothing is downloaded) and keeps them for
the tasks that follow.

Tasks change nothing outside themselves, so when a worker dies Ray runs its task again on another
one; when Ray gives up, the ingest stops with one line, and the next one carries on from what
was written, as after a local ingest that was killed.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ingest.errors import RagError
from ingest.settings import ChunkingSettings, EmbeddingSettings
from ingest.executors import Files, FileSplit, LocalExecutor, split_file

if TYPE_CHECKING:
    import numpy as np
    import ray

INSTALL_HINT = "pip install 'rag[ray]'"
# A task loads and chunks up to this many files, or files of up to this many bytes: Ray's cost per
# task (a few milliseconds) stays small beside the work, and the files still spread over the workers.
FILES_PER_TASK = 16
BYTES_PER_TASK = 4_000_000
# Texts per embedding task: a group's new texts are shared out among the workers.
TEXTS_PER_TASK = 128
# Loading tasks in flight per CPU of the cluster: the workers never wait for the next batch, and
# the files read ahead of the writer stay few.
TASKS_PER_CPU = 2
# How often Ray runs a task again whose worker died, before the ingest gives up.
TASK_RETRIES = 3
# Seconds to wait for the head node to accept a connection (Ray itself would retry for minutes).
CONNECT_TIMEOUT_S = 10

# What a worker needs to load, chunk and embed as the driver would: embedding and chunking
# settings, extra loaders, and the cache folder of the ONNX export.
WorkSettings = tuple[EmbeddingSettings, ChunkingSettings, dict[str, str], Path]

# In each worker process: its executor per WorkSettings, built at the first task that needs it.
_worker_executors: dict[str, LocalExecutor] = {}


def _worker_executor(settings: WorkSettings) -> LocalExecutor:
    embedding, chunking, loaders, cache_path = settings
    key = json.dumps([embedding.model_dump(), chunking.model_dump(), loaders, str(cache_path)], sort_keys=True)
    if key not in _worker_executors:
        _worker_executors[key] = LocalExecutor(embedding, chunking, loaders, cache_path)
    return _worker_executors[key]


def _split_files(settings: WorkSettings, files: list[tuple[str, bytes]]) -> list[FileSplit]:
    executor = _worker_executor(settings)
    return [split_file(path, data, executor.chunker, executor.loaders) for path, data in files]


def _encode(settings: WorkSettings, bulk: bool, texts: list[str]) -> tuple["np.ndarray", tuple[str, str]]:
    executor = _worker_executor(settings)
    executor.bulk = bulk
    return executor.encode(texts, lambda _: None), executor.path


def _embedding_path(settings: WorkSettings, bulk: bool) -> tuple[str, str]:
    executor = _worker_executor(settings)
    executor.bulk = bulk
    return executor.path


def _import_ray() -> Any:
    # Ray reports usage to its makers unless told not to; nothing of an ingest leaves the cluster.
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    try:
        import ray
    except ImportError as exc:
        raise RagError(
            "Ingesting on a Ray cluster (ingest.ray_address) needs Ray;", f"install it with `{INSTALL_HINT}`."
        ) from exc
    return ray


def _check_reachable(address: str) -> None:
    """Fail at once when nothing listens at HOST:PORT (Ray would retry for minutes); "auto" and
    other forms are left to Ray."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc)) from exc


def _unreachable(address: str, reason: str) -> RagError:
    return RagError(
        f"No Ray cluster answers at {address} (ingest.ray_address): {reason.splitlines()[0] if reason else 'no reply'}.",
        "Start one with `ray start --head` (and `ray start --address HEAD:PORT` on each other machine), or give the "
        "address of a running one.",
    )


class RayExecutor:
    """Loads, chunks and embeds on the workers of the Ray cluster at `address`, with the settings of
    `local` (whose own embedder this process never builds)."""

    def __init__(self, address: str, local: LocalExecutor):
        self.address = address
        self.bulk = False
        self._ray = ray = _import_ray()
        self._connected_here = not ray.is_initialized()  # a caller's own connection stays open after
        if self._connected_here:
            _check_reachable(address)
            try:
                ray.init(address=address, logging_level=logging.ERROR, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise _unreachable(address, str(exc)) from exc
            # Ray prints what its raylets report (a worker died, its task is tried again) on this
            # process's stdout, where `rag ingest --json` promises one document; a task Ray gives
            # up on is raised here instead (_get). The switch is the one Ray's own debugger uses.
            ray._private.worker._worker_logs_enabled = False
        self._cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._settings = ray.put((local.embedding, local.chunking, local.loaders, local.cache_path))
        self._split_task = ray.remote(max_retries=TASK_RETRIES)(_split_files)
        self._encode_task = ray.remote(max_retries=TASK_RETRIES)(_encode)
        self._path_task = ray.remote(max_retries=TASK_RETRIES)(_embedding_path)
        self._path: tuple[str, str] | None = None

    @property
    def path(self) -> tuple[str, str]:
        """How the workers embed (a dry run, which embeds nothing, asks one)."""
        if self._path is None:
            self._path = self._get(self._path_task.remote(self._settings, self.bulk))
        return self._path

    def split(self, files: Iterable[Files]) -> Iterator[tuple[Files, FileSplit]]:
        in_flight: collections.deque[tuple[list[Files], "ray.ObjectRef"]] = collections.deque()
        for batch in _batches(files):
            task = self._split_task.remote(self._settings, [(file.path, file.data) for file in batch])
            in_flight.append((batch, task))
            if len(in_flight) >= TASKS_PER_CPU * self._cpus:
                yield from self._split_results(*in_flight.popleft())
        while in_flight:
            yield from self._split_results(*in_flight.popleft())

    def _split_results(self, batch: list[Files], task: "ray.ObjectRef") -> Iterator[tuple[Files, FileSplit]]:
        yield from zip(batch, self._get(task), strict=True)

    def encode(self, texts: list[str], on_progress: Callable[[int], None]) -> "np.ndarray":
        import numpy as np

        # Texts of like length share a task, so the workers pad their batches little.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        shares = [order[start : start + TEXTS_PER_TASK] for start in range(0, len(order), TEXTS_PER_TASK)]
        tasks = [self._encode_task.remote(self._settings, self.bulk, [texts[i] for i in share]) for share in shares]
        parts = []
        for task in tasks:
            vectors, self._path = self._get(task)
            parts.append(vectors)
            on_progress(len(vectors))
        vectors = np.empty_like(np.concatenate(parts))
        vectors[[i for share in shares for i in share]] = np.concatenate(parts)
        return vectors

    def _get(self, task: "ray.ObjectRef") -> Any:
        ray = self._ray
        try:
            return ray.get(task)
        except ray.exceptions.RayTaskError as exc:  # our code raised it on a worker: raised here as itself
            if isinstance(exc.cause, ModuleNotFoundError):
                raise RagError(
                    f"The Ray workers at {self.address} cannot import rag ({exc.cause});",
                    f"install it on every node of the cluster (`{INSTALL_HINT}`), the same version as here.",
                ) from None
            raise exc.cause from None
        except ray.exceptions.RayError as exc:
            raise RagError(
                f"The Ray cluster at {self.address} lost a task and gave up on it ({type(exc).__name__}), so the "
                "ingest stopped;",
                "what it wrote is kept: ingest again to read the rest.",
            ) from exc

    def close(self) -> None:
        if self._connected_here:
            self._ray.shutdown()
            self._ray._private.worker._worker_logs_enabled = True


def _batches(files: Iterable[Files]) -> Iterator[list[Files]]:
    batch: list[Files] = []
    size = 0
    for file in files:
        batch.append(file)
        size += len(file.data)
        if len(batch) >= FILES_PER_TASK or size >= BYTES_PER_TASK:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
