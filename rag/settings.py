"""One typed settings object, layered: defaults < TOML file < RAG_* environment < explicit overrides.

This is the only module that reads the environment; everything else receives a `Settings`.
"""

from __future__ import annotations

import json
import os
import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, TypeVar, cast

import platformdirs
from pydantic import (
    BaseModel,
    Field,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ingest.settings import (
    ChunkingSettings, EmbeddingSettings, IndexDatabaseSettings, IngestSettings, Section, VectorStoreSettings,
    collection_name,
)
from rag.backends.registry import BACKENDS
from rag.errors import ConfigError

CONFIG_FILE_NAME = "rag.toml"
ENV_PREFIX = "RAG_"
ENV_NESTED_DELIMITER = "__"
# The most search queries the model may be asked to write like a question (search.queries).
MAX_SEARCH_QUERIES = 5
SectionT = TypeVar("SectionT", bound=Section)


class SearchSettings(Section):
    k: int = Field(5, gt=0, description="Chunks a search returns, and an answer is given at most.")
    min_score: float = Field(
        0.3, ge=-1, le=1, description="Chunks less similar to the question (cosine) are not used to answer it."
    )
    min_keyword_coverage: float = Field(
        0.75,
        ge=0,
        le=1,
        description="A chunk that holds this share of the question's words is used to answer it, however low its cosine.",
    )
    max_unread_share: float = Field(
        0.3,
        ge=0,
        le=1,
        description="A question with at least this share of its letters unread by the embedding model ([UNK], or "
        "split into pieces smaller than a letter, as all-MiniLM-L6-v2 does with Chinese and Korean) is not judged "
        "by its cosine: only chunks holding min_keyword_coverage of its words answer it.",
    )
    cosine_languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="Languages (en, ko, zh, ja; zh takes traditional Chinese too) whose questions the embedding model's "
        "cosine can judge; a question in another is matched by its words only, as one it cannot read. all-MiniLM-L6-v2 learnt English only: "
        "its cosine of a Japanese question, whose kana it splits into letters, says nothing.",
    )
    min_unread_coverage: float = Field(
        0.2,
        ge=0,
        le=1,
        description="For such a question, a chunk that holds this share of its words is used to answer it, with "
        "the other chunks of its file among the best k: the keyword side finds the right page, but how much of the "
        "question a chunk holds says little about whether it answers it, so the model judges that (and says when the "
        "documents do not answer).",
    )
    mode: Literal["dense", "keyword", "hybrid"] = Field(
        "hybrid", description="dense (the embedding's cosine), keyword (BM25 over the keyword index) or both fused."
    )
    fusion: Literal["weighted", "rrf"] = Field("weighted", description="How hybrid search merges its two rankings.")
    dense_weight: float = Field(
        0.5,
        ge=0,
        le=1,
        description="The dense ranking's share in the fused score, before each ranking is weighed by how far its best "
        "candidates stand apart.",
    )
    rrf_k: int = Field(60, gt=0, description="With fusion = rrf: the constant k of 1 / (k + rank).")
    candidates: int = Field(50, gt=0, description="Chunks each retriever proposes before fusion.")
    mmr: bool = Field(False, description="Diversify results with maximal marginal relevance.")
    mmr_diversity: float = Field(0.3, ge=0, le=1, description="With mmr: how much unlikeness to the chunks already chosen counts.")
    queries: int = Field(
        0,
        ge=0,
        le=MAX_SEARCH_QUERIES,
        description="Search queries the language model writes like the question (in its language), each searched "
        "besides it and fused with its ranking; 0 searches the question alone (no model is loaded for a search).",
    )
    query_weight: float = Field(
        0.5, ge=0, le=1, description="With queries: each written query's weight in the fused ranking, the question's being 1."
    )


class _LLMSettingsWithoutBackends(Section):
    backend: str = Field("llamacpp", description="llamacpp, ollama, gpt4all, llamafile or openai.")
    model_path: Path | None = Field(
        None, description="llamacpp and gpt4all: a GGUF file; default: the packaged model `model` names."
    )
    model: str | None = Field(
        None,
        description="ollama and openai: the served model's name; llamacpp and gpt4all without model_path: a packaged "
        "model (qwen2.5-coder-1.5b-instruct, the default; qwen2.5-coder-0.5b-instruct, about twice as fast; gemma-3-270m; smollm2-135m-instruct).",
    )
    prompt_style: str = Field("auto", description="auto, chat, or a family: llama2 llama3 mistral gemma chatml plain.")
    qa_prompt: Literal["qa", "qa_quotes", "qa_fewshot"] = Field(
        "qa_quotes",
        description="The question-answering task of prompts/tasks.toml: qa (sources, then the question), "
        "qa_quotes (the sources' best-matching sentences quoted again before the question) or qa_fewshot "
        "(two worked examples first, for base models).",
    )
    n_ctx: int = Field(2048, gt=0, description="Context window in tokens: prompt plus answer.")
    temperature: float = Field(
        0.0, ge=0, description="Sampling temperature; 0 always takes the likeliest token (greedy: the answers the docs measured)."
    )
    max_tokens: int = Field(256, gt=0, description="Answer budget in tokens.")
    stop: list[str] = Field(default_factory=list, description="Stop sequences added to the prompt family's.")
    seed: int = Field(
        0, description="The sampler's seed at a temperature above 0, so the same question and sources give the same answer."
    )
    # Then one section per backend, named as the backend, from the registry (LLMSettings below); only
    # the active one's is read.

    @model_validator(mode="before")
    @classmethod
    def _flat_backend_keys(cls, data: Any) -> Any:
        """A backend's key written directly under [llm] (as before the sections) is read as that of every
        backend section that has it, so older config files and RAG_LLM__BASE_URL keep working."""
        if not isinstance(data, Mapping):
            return data
        flat = {key: value for key, value in data.items() if key not in cls.model_fields}
        merged = {key: value for key, value in data.items() if key in cls.model_fields}
        claimed: set[str] = set()
        for name, spec in BACKENDS.items():
            keys = {key: value for key, value in flat.items() if key in spec.settings.model_fields}
            if keys:
                section = merged.get(name)
                explicit = section.model_dump(exclude_unset=True) if isinstance(section, BaseModel) else section or {}
                merged[name] = {**keys, **explicit}
                claimed |= keys.keys()
        # A key no section has stays, for the usual "extra inputs are not permitted" error naming it.
        unknown = {key: value for key, value in flat.items() if key not in claimed}
        return {**merged, **unknown}

    @field_validator("model")
    @classmethod
    def _empty_is_unset(cls, name: str | None) -> str | None:
        return name or None  # RAG_LLM__MODEL= unsets a model set in a config file

    @model_validator(mode="after")
    def _room_for_the_prompt(self) -> "LLMSettings":
        if self.max_tokens >= self.n_ctx:
            raise ValueError(
                f"max_tokens ({self.max_tokens}) must be below n_ctx ({self.n_ctx}), the window that holds the "
                "prompt and the answer"
            )
        return self

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, name: str) -> str:
        if name not in BACKENDS:
            raise ValueError(f"unknown backend {name!r}; use one of: {', '.join(BACKENDS)}")
        return name

    @property
    def active(self) -> Section:
        """The settings section of the backend in use."""
        return cast(Section, getattr(self, self.backend))

    def section(self, kind: type[SectionT]) -> SectionT:
        """The section of the backend whose settings model is `kind` (llm.NAME), typed as such."""
        [name] = [name for name, spec in BACKENDS.items() if spec.settings is kind]
        return cast(SectionT, getattr(self, name))

    def output_settings(self) -> dict[str, Any]:
        """What decides what the active backend writes: the model, its sampling and the active section, less
        the settings that only change how it runs (timeouts, threads); batch jobs compare these to resume."""
        common = ("backend", "model_path", "model", "prompt_style", "temperature", "seed", "stop")
        section = self.active
        return {
            **{key: json_value(getattr(self, key)) for key in common},
            self.backend: {
                key: json_value(getattr(section, key))
                for key, field in type(section).model_fields.items()
                if _affects_output(field) and key not in SECRET_KEYS
            },
        }


def _affects_output(field: FieldInfo) -> bool:
    """False for a field made with the registry's `_runtime`: how a model runs, not what it writes."""
    extra = field.json_schema_extra
    return bool(extra.get("affects_output", True)) if isinstance(extra, dict) else True


if TYPE_CHECKING:
    # The type checker knows the common keys; a backend reaches its own section through section().
    LLMSettings = _LLMSettingsWithoutBackends
else:
    LLMSettings = create_model(
        "LLMSettings",
        __base__=_LLMSettingsWithoutBackends,
        __module__=__name__,
        **{name: (spec.settings, Field(default_factory=spec.settings)) for name, spec in BACKENDS.items()},
    )


# Keys that never go into a fingerprint, a log or an output.
SECRET_KEYS = ("api_key", "api_key_file")


def json_value(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


class BatchSettings(Section):
    max_tokens: int = Field(
        384, gt=0, description="Budget in tokens for each summary and each extracted record (instead of llm.max_tokens)."
    )
    temperature: float = Field(
        0.1, ge=0, description="Sampling temperature of each summary and extracted record (instead of llm.temperature)."
    )
    max_attempts: int = Field(
        3, gt=0, description="Tries per extracted record: a reply that is not valid JSON for the schema is retried."
    )
    parallel: int = Field(
        1,
        gt=0,
        le=64,
        description="Requests kept in flight against a server backend (openai, ollama, llamafile); give the server "
        "as many slots. llamacpp and gpt4all in this process run one at a time.",
    )


class ServeSettings(Section):
    host: str = Field("127.0.0.1", description="Address `rag serve` listens on; anything but loopback needs a token.")
    port: int = Field(8000, ge=1, le=65535, description="Port `rag serve` listens on.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins of web pages allowed to call the API (default: none)."
    )
    allowed_hosts: list[str] = Field(
        default_factory=list,
        description="Host names requests may name besides the addresses `rag serve` listens on (a reverse proxy's "
        "name, or *.example.org); any other Host is refused (DNS rebinding).",
    )
    ingest_roots: list[Path] = Field(
        default_factory=list,
        description="Folders whose files /api/ingest may read; none (the default) turns ingest over HTTP off.",
    )
    max_body_kb: int = Field(1024, gt=0, description="Largest request body accepted, in KiB.")
    max_query_tokens: int = Field(
        512, gt=0, description="Longest search query or question accepted, in the embedding model's tokens."
    )
    parallel: int | None = Field(
        None,
        gt=0,
        le=256,
        description="Answers generated at once with a server backend (openai, ollama, llamafile); default: the slots "
        "the model server reports (llama-server's total_slots), else 4. llamacpp and gpt4all answer one at a time.",
    )
    queue: int = Field(
        32, ge=0, description="Answers that may wait for a free slot; one more is refused with 503 and Retry-After."
    )
    tokens_file: Path | None = Field(
        None,
        description="The named tokens and their scopes per collection (`rag serve token add`); default: HOME/serve-tokens.json.",
    )


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("rag"))


class Settings(BaseSettings):
    # Section's rules, and the names of the RAG_* variables. Only load_settings reads the environment and
    # the TOML file (as sources it builds per call); Settings(...) itself takes its arguments and defaults only.
    model_config = SettingsConfigDict(
        extra="forbid",
        validate_assignment=True,
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=ENV_NESTED_DELIMITER,
    )

    home: Path = Field(default_factory=lambda: _default_home(), description="Where rag keeps its data (RAG_HOME).")
    index_dir: Path | None = Field(None, description="Index directory; defaults to HOME/index.")
    cache_dir: Path = Field(
        default_factory=lambda: Path(platformdirs.user_cache_dir("rag")),
        description="Files rag derives once and reuses: the assembled model, the ONNX export.",
    )
    collection: str = Field("default", description="The collection of the index to ingest into and search.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings)
    chunking: ChunkingSettings = Field(default_factory=ChunkingSettings)
    ingest: IngestSettings = Field(default_factory=IngestSettings)
    search: SearchSettings = Field(default_factory=SearchSettings)
    llm: LLMSettings = Field(default_factory=LLMSettings)
    vector_store: VectorStoreSettings = Field(default_factory=VectorStoreSettings)
    index: IndexDatabaseSettings = Field(default_factory=IndexDatabaseSettings)
    batch: BatchSettings = Field(default_factory=BatchSettings)
    serve: ServeSettings = Field(default_factory=ServeSettings)

    @field_validator("home", mode="before")
    @classmethod
    def _empty_home_is_unset(cls, home: Any) -> Any:
        return home if home != "" else _default_home()  # RAG_HOME= unsets it; it never means the current folder

    @field_validator("collection")
    @classmethod
    def _valid_collection(cls, name: str) -> str:
        return collection_name(name)

    @property
    def index_path(self) -> Path:
        return (self.index_dir or self.home / "index").expanduser()

    @property
    def cache_path(self) -> Path:
        return self.cache_dir.expanduser()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The arguments, then (inside load_settings only) its environment and TOML file; pydantic-settings
        merges them section by section, the first winning."""
        return (init_settings, *_LAYERS_BELOW_OVERRIDES.get())


# The sources of the load_settings call under way, which reads the environment and the file it is given
# (settings_customise_sources has no way to take them from the call).
_LAYERS_BELOW_OVERRIDES: ContextVar[tuple[PydanticBaseSettingsSource, ...]] = ContextVar(
    "layers_below_overrides", default=()
)


def debug_enabled(environ: Mapping[str, str] | None = None) -> bool:
    """RAG_DEBUG=1: an unexpected error shows its traceback instead of one line."""
    value = (os.environ if environ is None else environ).get(f"{ENV_PREFIX}DEBUG", "")
    return value.strip().lower() not in ("", "0", "false", "no", "off")


def find_config_file(environ: Mapping[str, str], cwd: Path) -> Path | None:
    """RAG_CONFIG if set, else ./rag.toml, else the user's config dir.

    Hand-written: pydantic-settings reads every TOML file it is given and merges them, where rag reads
    only the first that exists, chosen by a variable of the environment the caller passes.
    """
    if explicit := environ.get(f"{ENV_PREFIX}CONFIG"):
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"Config file {path} (from {ENV_PREFIX}CONFIG) does not exist.")
        return path
    for candidate in (cwd / CONFIG_FILE_NAME, Path(platformdirs.user_config_dir("rag")) / CONFIG_FILE_NAME):
        if candidate.is_file():
            return candidate
    return None


class _EnvironmentSource(EnvSettingsSource):
    """The RAG_* variables of the mapping load_settings is given (os.environ unless a caller passes its own)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The prefix in capitals only, as ever: the rest of a name in any case.
        return {name.lower(): value for name, value in self._environ.items() if name.startswith(ENV_PREFIX)}

    def decode_complex_value(self, field_name: str, field: FieldInfo | None, value: Any) -> Any:
        # Only a value written as a JSON list is decoded: any other (a bare URL for a list of origins) reaches
        # validation as it is, which names the key and the expected type.
        if not value.startswith("["):
            return value
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:  # raised as ours: pydantic-settings would name the section only
            variable = next(
                (name for name, given in self._environ.items()
                 if given == value and name.startswith(ENV_PREFIX) and name.lower().endswith(field_name)),
                field_name,
            )
            raise ConfigError(f"Invalid settings: {variable}: {value!r} is not a JSON list ({exc})") from exc


def load_settings(
    config_file: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    check_model: bool = False,
    **overrides: Any,
) -> Settings:
    """Build the settings from every layer.

    `overrides` are the highest layer (CLI flags); nested sections take dicts,
    e.g. `load_settings(chunking={"chunk_tokens": 128})`. Overrides that are None are ignored.
    `check_model` also refuses settings the embedding model cannot honour (it reads the model's
    config files: no tokenizer, no torch), for commands that chunk or embed.
    """
    environ = os.environ if environ is None else environ
    if config_file is not None and not Path(config_file).expanduser().is_file():
        raise ConfigError(f"Config file {config_file} does not exist.")
    path = config_file or find_config_file(environ, cwd or Path.cwd())
    source = f" (config file {path})" if path else ""
    try:
        toml_layer = TomlConfigSettingsSource(Settings, toml_file=path)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc}") from exc
    layers = _LAYERS_BELOW_OVERRIDES.set((_EnvironmentSource(Settings, environ), toml_layer))
    try:
        settings = Settings(**{key: value for key, value in overrides.items() if value is not None})
    except ValidationError as exc:
        problems = "; ".join(_problem(error) for error in exc.errors())
        raise ConfigError(f"Invalid settings{source}: {problems}") from exc
    finally:
        _LAYERS_BELOW_OVERRIDES.reset(layers)
    if check_model and (problem := model_problem(settings)):
        raise ConfigError(f"Invalid settings{source}: {problem}")
    return settings


def _problem(error: Mapping[str, Any]) -> str:
    """'section.key: what is wrong', in words for a person rather than pydantic's."""
    where = ".".join(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"{where}: no such setting (docs/settings.md lists them)"
    message = error["msg"].removeprefix("Value error, ")
    if error["type"] == "list_type":
        message += """ (in a RAG_* variable, a JSON list: '["a", "b"]')"""
    return f"{where}: {message}"


def model_problem(settings: Settings) -> str | None:
    """'section.key: message' for a setting beyond what the embedding model can do, else None.

    The chunker would otherwise cut chunks silently at the model's window. A model that cannot be
    found is left to the command that loads it, which says so.
    """
    from ingest.embedding import SPECIAL_TOKENS_PER_INPUT, concrete_model
    from ingest.embedding.embedders import model_window
    from rag.errors import ModelNotFoundError

    try:
        window = model_window(settings.embedding.model)
    except (ModelNotFoundError, OSError, KeyError, ValueError):
        return None
    chunk_tokens = settings.chunking.tokens_for(settings.embedding.model)
    if chunk_tokens > window:
        return (
            f"chunking.chunk_tokens: {chunk_tokens} is beyond the embedding model's window of {window} tokens "
            f"({concrete_model(settings.embedding.model)} reads {window + SPECIAL_TOKENS_PER_INPUT} word pieces, "
            f"{SPECIAL_TOKENS_PER_INPUT} of them special); use at most {window}"
        )
    return None
