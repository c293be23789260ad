"""Settings layering: defaults < TOML < RAG_* environment < explicit overrides."""

from __future__ import annotations

import re
import tomllib
import typing
import unicodedata
from pathlib import Path

import pytest
from pydantic import BaseModel

from rag.errors import ConfigError
from rag.settings import Settings, load_settings
from tests.conftest import REPO


def test_defaults(tmp_path):
    settings = load_settings(environ={}, cwd=tmp_path)
    assert settings.collection == "default"
    assert settings.embedding.model == "auto"
    assert settings.index_path == settings.home / "index"
    assert settings.home.parts[-1] == "rag"


def test_precedence_of_every_layer(tmp_path):
    (tmp_path / "rag.toml").write_text(
        'collection = "from-toml"\n[chunking]\nchunk_tokens = 150\noverlap_tokens = 10\n[search]\nk = 7\n'
    )
    environ = {"RAG_CHUNKING__CHUNK_TOKENS": "120", "RAG_HOME": str(tmp_path / "h"), "RAG_UNRELATED_TOOL": "x"}
    settings = load_settings(environ=environ, cwd=tmp_path, search={"k": 9}, collection=None)
    assert settings.collection == "from-toml"  # TOML, since the override was None
    assert settings.chunking.chunk_tokens == 120  # environment beats TOML
    assert settings.chunking.overlap_tokens == 10  # TOML beats defaults, section merged not replaced
    assert settings.search.k == 9  # override beats everything
    assert settings.home == tmp_path / "h"


def test_explicit_config_file_and_index_dir(tmp_path):
    config = tmp_path / "elsewhere.toml"
    config.write_text(f'index_dir = "{tmp_path / "idx"}"\n[ingest]\nignore_files = [".myignore"]\n')
    settings = load_settings(environ={"RAG_CONFIG": str(config)}, cwd=tmp_path)
    assert settings.index_path == tmp_path / "idx"
    assert settings.ingest.ignore_files == [".myignore"]
    assert load_settings(config, environ={}, cwd=tmp_path).index_path == tmp_path / "idx"


def test_list_from_environment(tmp_path):
    settings = load_settings(environ={"RAG_INGEST__IGNORE_FILES": '[".a", ".b"]'}, cwd=tmp_path)
    assert settings.ingest.ignore_files == [".a", ".b"]


def test_a_list_variable_that_is_not_json_is_refused_by_name(tmp_path):
    with pytest.raises(ConfigError, match=r"Invalid settings: RAG_INGEST__IGNORE_FILES: '\[\.a' is not a JSON list"):
        load_settings(environ={"RAG_INGEST__IGNORE_FILES": "[.a"}, cwd=tmp_path)


def test_only_load_settings_reads_the_environment(monkeypatch):
    monkeypatch.setenv("RAG_COLLECTION", "from-env")
    assert Settings().collection == "default"
    assert load_settings().collection == "from-env"


@pytest.mark.parametrize(
    "toml,message",
    [
        ("[chunking]\nchunk_size = 100\n", "chunking.chunk_size: no such setting (docs/settings.md lists them)"),
        ("[search]\nk = 0\n", "search.k: Input should be greater than 0"),
        ('collection = "x"\n', "collection: use letters, digits, '.', '_' and '-', starting and ending with a letter or digit, with no"),
        (
            "[llm]\nmax_tokens = 5000\n",
            "llm: max_tokens (5000) must be below n_ctx (2048), the window that holds the prompt and the answer",
        ),
        ("[chunking\n", "Cannot read config file"),
    ],
)
def test_bad_settings_name_the_file_and_the_key(tmp_path, toml, message):
    (tmp_path / "rag.toml").write_text(toml)
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, cwd=tmp_path)
    assert message in str(caught.value)
    assert str(tmp_path / "rag.toml") in str(caught.value)


def test_a_list_in_a_variable_that_is_not_json_says_how_to_write_one(tmp_path):
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={"RAG_SEARCH__COSINE_LANGUAGES": "en"}, cwd=tmp_path)
    assert str(caught.value) == (
        """Invalid settings: search.cosine_languages: Input should be a valid list (in a RAG_* variable, a JSON list: '["a", "b"]')"""
    )


def test_an_empty_rag_home_is_the_default_not_the_current_folder(tmp_path):
    import platformdirs

    assert load_settings(environ={"RAG_HOME": ""}, cwd=tmp_path).home == Path(platformdirs.user_data_dir("rag"))


def test_missing_explicit_config_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(environ={"RAG_CONFIG": str(tmp_path / "missing.toml")}, cwd=tmp_path)
    with pytest.raises(ConfigError, match=f"^Config file {tmp_path / 'nope.toml'} does not exist.$"):  # --config
        load_settings(tmp_path / "nope.toml", environ={}, cwd=tmp_path)


def test_privacy_environment_is_forced_on_import():
    import os

    import rag  # noqa: F401

    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["LANGCHAIN_TRACING_V2"] == "false"


# -- the example rag.toml (docs/configuration.md) documents every setting ----------------------------------------------------------------


def _section_model(annotation) -> type[BaseModel] | None:
    """The settings section a field holds (also behind Optional), or None for a plain value."""
    for candidate in (annotation, *typing.get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def setting_keys(model: type[BaseModel] = Settings, section: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every setting, as (section..., key), recursively through the sections."""
    keys: set[tuple[str, ...]] = set()
    for name, field in model.model_fields.items():
        nested = _section_model(field.annotation)
        keys |= setting_keys(nested, (*section, name)) if nested else {(*section, name)}
    return keys


def example_settings_block() -> str:
    """The example rag.toml of the Configuration page (the Settings section of the README before docs/)."""
    page = (REPO / "docs" / "configuration.md").read_text()
    return page.split("```toml\n", 1)[1].split("\n```", 1)[0]


def documented_keys(block: str) -> set[tuple[str, ...]]:
    """Each `key = ` line, under the `[section]` header above it; `# key = ` documents an alternative
    to the key above it, which cannot be set together with it."""
    keys, section = set(), ()
    for line in block.splitlines():
        if header := re.fullmatch(r"\[([\w.]+)\]\s*(#.*)?", line):
            section = tuple(header[1].split("."))
        elif key := re.match(r"(?:# )?(\w+) = ", line):
            keys.add((*section, key[1]))
    return keys


def test_every_setting_is_in_the_example_rag_toml():
    assert {("collection",), ("llm", "backend"), ("search", "k")} <= setting_keys()  # the walk finds them
    missing = setting_keys() - documented_keys(example_settings_block())
    assert not missing, f"The example rag.toml (docs/configuration.md) lacks {sorted('.'.join(key) for key in missing)}"


def test_the_example_rag_toml_is_valid_settings():
    """Nothing in it is misspelt, stale or refused: it loads as a rag.toml would."""
    block = example_settings_block()
    assert documented_keys(block) <= setting_keys()
    Settings.model_validate(tomllib.loads(block))


@pytest.mark.parametrize("written,known_as", [
    ("회의록", "회의록"),
    (unicodedata.normalize("NFD", "회의록"), "회의록"),  # as a macOS folder name gives it
    ("ＮＯＴＥＳ", "NOTES"),
    ("notes.2024", "notes.2024"),
])
def test_a_collection_is_known_by_the_compatibility_form_of_its_name(written, known_as):
    assert Settings(collection=written).collection == known_as


@pytest.mark.parametrize("name,problem", [
    ("ab", "3-512 of them in a-z"),
    ("xn--3o2bz7yuol", "not starting with 'xn--'"),  # 회의록's spelling in Chroma
    ("a..회", "with no '..'"),
    ("192.168.1.1", "an IP address is no collection name"),
    ("가" * 101, "up to 100 with other letters"),
    ("회의록_", "starting and ending with a letter or digit"),
])
def test_a_collection_name_a_store_would_refuse_or_confuse_is_refused_up_front(name, problem):
    with pytest.raises(ValueError, match=re.escape(problem)):
        Settings(collection=name)
