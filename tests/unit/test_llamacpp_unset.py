"""What llama.cpp runs with where `llm.llamacpp` leaves it unset: one generating thread per physical
core this process may run on; flash attention for the packaged models measured with it."""

from __future__ import annotations

import os

import psutil
import pytest

from rag.backends.llamacpp import generation_threads, uses_flash_attention
from rag.settings import LLMSettings


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


@pytest.mark.parametrize(
    ("llm", "flash_attention"),
    [
        ({}, True),  # the default model, qwen2.5-coder-1.5b-instruct
        ({"model": "qwen2.5-coder-1.5b-instruct"}, True),
        ({"model": "qwen2.5-coder-0.5b-instruct"}, False),
        ({"model": "gemma-3-270m"}, False),
        ({"model_path": "/models/mistral-7b-instruct.gguf"}, False),
        ({"model": "gemma-3-270m", "llamacpp": {"flash_attn": True}}, True),
        ({"llamacpp": {"flash_attn": False}}, False),
    ],
)
def test_flash_attention_by_default_only_for_a_model_measured_to_answer_as_well_with_it(llm, flash_attention):
    assert uses_flash_attention(LLMSettings.model_validate(llm)) is flash_attention
