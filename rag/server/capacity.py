"""How many answers `rag serve` generates at once, and the bounded queue in front of them.

A model server (the openai, ollama and llamafile backends) runs as many requests at once as it has
slots: `serve.parallel` of them run together here, by default as many as the server reports
(llama-server's `total_slots` in its /props), else `DEFAULT_PARALLEL`. An engine in this process
(llamacpp, gpt4all) generates one answer at a time, whatever serve.parallel says.

Requests past the running ones wait in a queue of `serve.queue` places; one more is refused at once
with `ServerBusyError` (a 503 with Retry-After), never left to hang. A request whose client goes
away gives its place back at once if it was waiting, and stops at its next token if it was running.
"""

from __future__ import annotations

import math
import threading
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from rag.backends.registry import LlamafileSettings, OpenAISettings
from rag.errors import RagError
from rag.settings import Settings

if TYPE_CHECKING:
    from langchain_core.language_models import BaseLanguageModel

# Answers at once with a model server that does not say how many slots it has (Ollama, vLLM).
DEFAULT_PARALLEL = 4
# How much the last generation's duration moves the estimate that Retry-After is made from.
DURATION_WEIGHT = 0.3


class ServerBusyError(RagError):
    """Every slot is generating and the queue is full: the client should come back after `retry_after` seconds."""

    def __init__(self, retry_after: int, capacity: "Capacity"):
        super().__init__(
            f"The server is busy: its {capacity.parallel} generation slots are taken and its queue of {capacity.queue} "
            f"is full (serve.parallel, serve.queue); try again in {retry_after} s."
        )
        self.retry_after = retry_after


@dataclass(frozen=True)
class Capacity:
    parallel: int  # answers generated at once
    queue: int  # answers that may wait for one of them
    reason: str  # where `parallel` comes from, as /health shows it


def server_slots(settings: Settings) -> int | None:
    """The slots the configured model server reports (llama-server and llamafile: /props), or None."""
    from rag.backends.http import ServerUnreachable, get_json

    llm = settings.llm
    if llm.backend == "openai":
        from rag.backends.openai import api_key

        server = llm.section(OpenAISettings)
        root = server.base_url.rstrip("/").removesuffix("/v1")
        key = api_key(server)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
    elif llm.backend == "llamafile":
        root, headers = llm.section(LlamafileSettings).base_url.rstrip("/"), {}
    else:  # Ollama does not say (OLLAMA_NUM_PARALLEL is its own setting)
        return None
    try:
        properties = get_json(f"{root}/props", headers=headers)
    except (ServerUnreachable, urllib.error.HTTPError):
        return None
    slots = properties.get("total_slots") if isinstance(properties, dict) else None
    return slots if isinstance(slots, int) and slots > 0 else None


def capacity_for(settings: Settings, llm: "BaseLanguageModel") -> Capacity:
    from rag.backends.base import traits

    queue = settings.serve.queue
    if not traits(llm).rag_parallel_requests():
        return Capacity(1, queue, f"one at a time: the {settings.llm.backend} backend generates in this process")
    if settings.serve.parallel is not None:
        return Capacity(settings.serve.parallel, queue, "serve.parallel")
    slots = server_slots(settings)
    if slots is not None:
        return Capacity(slots, queue, "the model server's slots")
    return Capacity(DEFAULT_PARALLEL, queue, "the default: the model server does not say how many slots it has")


class Place:
    """A request's place at the gate: waiting, then running, then done; or left while it waited."""

    def __init__(self, gate: "GenerationGate"):
        self._gate = gate
        self.state = "waiting"

    def leave(self) -> None:
        """Its client is gone: a waiting place is freed now; a running generation sees `left` at its next token."""
        with self._gate._lock:
            if self.state == "waiting":
                self._gate.queued -= 1
            if self.state in ("waiting", "running"):
                self.state = "left" if self.state == "waiting" else "leaving"

    @property
    def left(self) -> bool:
        return self.state in ("left", "leaving")


class GenerationGate:
    """Runs generations `capacity.parallel` at a time on worker threads, with `capacity.queue` waiting places."""

    def __init__(self, capacity: Capacity):
        self.capacity = capacity
        self._workers = ThreadPoolExecutor(max_workers=capacity.parallel, thread_name_prefix="rag-model")
        self._lock = threading.Lock()
        self.in_flight = 0
        self.queued = 0
        self._seconds_per_answer = 0.0

    def admit(self) -> Place:
        """A place for one generation, or ServerBusyError when every slot and every waiting place is taken."""
        with self._lock:
            if self.in_flight + self.queued >= self.capacity.parallel + self.capacity.queue:
                raise ServerBusyError(self._retry_after(), self.capacity)
            self.queued += 1
        return Place(self)

    def _retry_after(self) -> int:
        """Seconds until a place is likely free: a generation's usual time over the slots that finish one."""
        return max(1, math.ceil(self._seconds_per_answer / self.capacity.parallel))

    def run(self, place: Place, work: Callable[[], None]) -> None:
        """`work()` on a worker once one is free, unless its client left first."""

        def turn() -> None:
            with self._lock:
                if place.state != "waiting":  # its client left while it waited
                    return
                self.queued -= 1
                self.in_flight += 1
                place.state = "running"
            started = time.monotonic()
            try:
                work()
            finally:
                with self._lock:
                    self.in_flight -= 1
                    place.state = "done"
                    took = time.monotonic() - started
                    known = self._seconds_per_answer or took
                    self._seconds_per_answer = known + DURATION_WEIGHT * (took - known)

        self._workers.submit(turn)

    def health(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight, "queued": self.queued, "capacity": self.capacity.parallel,
            "queue": self.capacity.queue, "capacity_from": self.capacity.reason,
        }

    def close(self) -> None:
        self._workers.shutdown(wait=False, cancel_futures=True)
