"""How many threads llama.cpp generates on when `llm.llamacpp.n_threads` is unset: one per physical
core this process may run on."""

from __future__ import annotations

import os

import psutil
import pytest

from rag.backends.llamacpp import generation_threads


@pytest.mark.parametrize(
    ("logical_cpus", "cores", "usable", "threads"),
    [
        (2, 2, 2, 2),  # a virtual machine's two cores, one thread each: llama.cpp's own default gave 1
        (16, 8, 16, 8),  # two threads a core: as llama.cpp's own default
        (16, 8, 4, 2),  # pinned to four logical CPUs (taskset, a container's cpuset)
        (8, 8, 1, 1),
    ],
)
def test_one_generating_thread_per_usable_physical_core(monkeypatch, logical_cpus, cores, usable, threads):
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: logical_cpus if logical else cores)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(usable)), raising=False)
    assert generation_threads() == threads
