"""The backends there are: for each, its settings section (`[llm.NAME]`, `RAG_LLM__NAME__KEY`) and
the `BackendSpec` that names its modules, its packages and its pip extra.

`rag.settings` builds `LLMSettings` from `BACKENDS`, so this module imports neither the settings
nor LangChain nor an engine: `rag.backends` imports a backend's modules by the names given here,
only when it is used. Adding a backend: its module and its probe module (see base.py), then its
section and its one `BackendSpec` line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator

from ingest.settings import Section
from rag.errors import RagError


def _runtime(default: Any, **kwargs: Any) -> Any:
    """A setting that changes how a model runs but not what it writes (left out of batch-job fingerprints)."""
    return Field(default, json_schema_extra={"affects_output": False}, **kwargs)


class LlamaCppSettings(Section):
    n_batch: int = _runtime(512, gt=0, description="Prompt tokens evaluated per batch.")
    n_gpu_layers: int = _runtime(0, description="Layers offloaded to the GPU (-1: all); needs a GPU build.")
    f16_kv: bool = Field(True, description="Keep the key/value cache in half precision.")
    flash_attn: bool | None = Field(
        None,
        description="Compute attention with llama.cpp's flash attention: reads a prompt faster, adding up in half "
        "precision. Unset: on for the packaged models whose answers were measured to hold with it (the default "
        "qwen2.5-coder-1.5b-instruct), off for the others and for a model_path.",
    )
    n_threads: int | None = _runtime(None, gt=0, description="CPU threads; default: one per physical core.")


class GPT4AllSettings(Section):
    n_batch: int = _runtime(512, gt=0, description="Prompt tokens evaluated per batch.")
    n_threads: int | None = _runtime(None, gt=0, description="CPU threads; default: GPT4All's choice.")


class ServerSettings(Section):
    """What every backend that talks to a server has."""

    base_url: str = Field(description="Where the server listens.")
    request_timeout: float = _runtime(300.0, gt=0, description="Seconds to wait for the server's answer.")


class OllamaSettings(ServerSettings):
    base_url: str = Field("http://localhost:11434", description="Where `ollama serve` listens.")
    api: Literal["chat", "generate"] = Field(
        "chat", description="chat (the server applies the model's template) or generate (rag's prompt)."
    )
    keep_alive: str = _runtime("5m", description="How long the server keeps the model loaded.")


class LlamafileSettings(ServerSettings):
    base_url: str = Field("http://localhost:8080", description="A llamafile or llama.cpp server.")


class OpenAISettings(ServerSettings):
    base_url: str = Field(
        "http://localhost:8080/v1",
        description="An OpenAI-compatible server's /v1 address: llama-server, vLLM, LM Studio, Ollama's /v1 ...",
    )
    api_key: SecretStr | None = Field(None, description="Sent as a bearer token; never printed. Or api_key_file.")
    api_key_file: Path | None = Field(None, description="A file holding the API key (its first line).")
    structured_output: Literal["auto", "json_schema", "none"] = Field(
        "auto",
        description="Batch extraction: json_schema sends the schema as response_format; none checks and retries; "
        "auto asks the server once whether it accepts response_format.",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> "OpenAISettings":
        if self.api_key is not None and self.api_key_file is not None:
            raise ValueError("set api_key or api_key_file, not both")
        return self


@dataclass(frozen=True)
class BackendSpec:
    name: str
    module: str
    probe: str
    extra: str
    # Its section of LLMSettings, named as the backend: [llm.NAME] in rag.toml.
    settings: type[Section]
    # Top-level packages the backend imports when it creates a model: looked up, not imported, by a probe.
    packages: tuple[str, ...] = ()

    @property
    def install_hint(self) -> str:
        return f"pip install 'rag[{self.extra}]'"

    def missing_package(self, exc: ImportError) -> RagError:
        """The install hint, for a package of this backend that could not be imported."""
        # LangChain re-raises a failed import as a plain ImportError; the one it caught names the package.
        cause: BaseException | None = exc
        while cause is not None and not getattr(cause, "name", None):
            cause = cause.__cause__ or cause.__context__
        package = f" ({getattr(cause, 'name')})" if cause is not None else ""
        return RagError(f"The {self.name} backend needs a package that is not installed{package}: {self.install_hint}")


BACKENDS: dict[str, BackendSpec] = {
    spec.name: spec
    for spec in (
        BackendSpec(
            "llamacpp", "rag.backends.llamacpp", "rag.backends.llamacpp_probe", extra="llamacpp",
            settings=LlamaCppSettings, packages=("langchain_community", "llama_cpp"),
        ),
        BackendSpec(
            "ollama", "rag.backends.ollama", "rag.backends.ollama_probe", extra="ollama",
            settings=OllamaSettings, packages=("langchain_ollama",),
        ),
        BackendSpec(
            "gpt4all", "rag.backends.gpt4all", "rag.backends.gpt4all_probe", extra="gpt4all",
            settings=GPT4AllSettings, packages=("langchain_community", "gpt4all"),
        ),
        BackendSpec(
            "llamafile", "rag.backends.llamafile", "rag.backends.llamafile_probe", extra="llamafile",
            settings=LlamafileSettings, packages=("langchain_community", "requests"),
        ),
        BackendSpec(
            "openai", "rag.backends.openai", "rag.backends.openai_probe", extra="openai",
            settings=OpenAISettings, packages=("langchain_openai",),
        ),
    )
}
