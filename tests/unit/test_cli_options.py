"""The options the commands share, settings that contradict each other or the model, JSON on failure."""

from __future__ import annotations

import json
from datetime import datetime
import pytest
import typer
import typer.main
from typer.testing import CliRunner

from rag.cli import KNOWLEDGE_BASE_OPTIONS, MODEL_OPTIONS, app, knowledge_base
from rag.settings import Settings

runner = CliRunner()
COMMANDS = typer.main.get_command(app).commands
FOUR = ("--index", "--collection", "--config", "--chroma-url", "--index-url")
MODEL = ("--model", "--prompt-style")
# What each command takes: models only a config; eval's --collection is the one --answers asks without a folder.
EXPECTED = {
    "ingest": FOUR,
    "search": FOUR,
    "status": FOUR,
    "files": FOUR,
    "repair": FOUR,
    "ask": FOUR + MODEL,
    "chat": FOUR + MODEL,
    "summarize": FOUR + MODEL,
    "extract": FOUR + MODEL,
    "eval": FOUR + MODEL,
    "models": ("--config",),
    "collections": ("--index", "--config", "--index-url"),  # lists every collection of the index
    "migrate": FOUR,  # the collection to copy, and where it is
    "serve": FOUR + MODEL,
    "mcp": FOUR + MODEL,
}


def _options(command) -> set[str]:
    # typer vendors its own click: its options are no click.Option
    return {opt for param in command.params if param.param_type_name == "option" for opt in param.opts}


def test_every_command_is_accounted_for():
    assert set(COMMANDS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_command_takes_its_shared_options_from_the_decorator(name):
    command = COMMANDS[name]
    assert set(EXPECTED[name]) <= _options(command)
    assert command.callback.shared_options == tuple(
        key for key in (*MODEL_OPTIONS, *KNOWLEDGE_BASE_OPTIONS) if f"--{key.replace('_', '-')}" in EXPECTED[name]
    )
    assert "settings" not in {param.name for param in command.params}  # handed over, not an option
    help_text = runner.invoke(app, [name, "--help"], prog_name="rag").stdout
    for option in EXPECTED[name]:
        assert option in help_text


# A command of its own, to see what the decorator hands it.
probe = typer.Typer()


@probe.command()
@knowledge_base(model=True)
def show(
    word: str,
    loud: bool = typer.Option(False, "--loud"),
    *,
    settings: Settings,
) -> None:
    print(json.dumps({
        "word": word,
        "loud": loud,
        "index": str(settings.index_path),
        "collection": settings.collection,
        "url": settings.vector_store.url,
        "index_url": settings.index.url,
        "k": settings.search.k,
        "model": settings.llm.model,
        "model_path": str(settings.llm.model_path),
        "prompt_style": settings.llm.prompt_style,
    }))


def _probe(*args: str, env: dict[str, str] | None = None) -> dict:
    result = runner.invoke(probe, list(args), env=env)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_decorator_hands_the_command_settings_from_its_options(tmp_path):
    got = _probe(
        "hello", "--loud", "--index", str(tmp_path / "idx"), "--collection", "notes",
        "--chroma-url", "http://localhost:8000", "--model", "gemma-3-270m", "--prompt-style", "chatml",
        env={"RAG_HOME": str(tmp_path)},
    )
    assert got["word"] == "hello" and got["loud"] is True  # the command's own options still arrive
    assert got["index"] == str(tmp_path / "idx") and got["collection"] == "notes"
    assert got["url"] == "http://localhost:8000"
    assert got["model"] == "gemma-3-270m" and got["prompt_style"] == "chatml"
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"")
    assert _probe("x", "--model", str(gguf), env={"RAG_HOME": str(tmp_path)})["model_path"] == str(gguf)


def test_index_url_comes_from_the_option_the_environment_or_the_config_file(tmp_path):
    url = "postgresql://rag@db.example:5432/team"
    assert _probe("x", "--index-url", url, env={"RAG_HOME": str(tmp_path)})["index_url"] == url
    assert _probe("x", env={"RAG_HOME": str(tmp_path), "RAG_INDEX__URL": url})["index_url"] == url
    config = tmp_path / "kb.toml"
    config.write_text(f'[index]\nurl = "{url}"\n')
    assert _probe("x", "--config", str(config), env={"RAG_HOME": str(tmp_path)})["index_url"] == url


def test_the_decorator_keeps_env_and_config_file_layers(tmp_path):
    config = tmp_path / "kb.toml"
    config.write_text('collection = "from-file"\n[search]\nk = 7\n')
    env = {"RAG_HOME": str(tmp_path), "RAG_COLLECTION": "from-env", "RAG_VECTOR_STORE__URL": "http://h:1"}
    got = _probe("x", "--config", str(config), env=env)
    assert got["collection"] == "from-env" and got["k"] == 7 and got["url"] == "http://h:1"
    assert got["index"] == str(tmp_path / "index")
    assert _probe("x", "--config", str(config), "--collection", "from-flag", env=env)["collection"] == "from-flag"
    assert _probe("x", env={**env, "RAG_CONFIG": str(config)})["k"] == 7


def test_the_decorator_refuses_a_command_that_cannot_take_settings():
    def no_settings(word: str) -> None: ...

    def clashes(index: str, *, settings: Settings) -> None: ...

    for command in (no_settings, clashes):
        with pytest.raises(TypeError):
            knowledge_base()(command)


def test_a_command_added_under_serve_gets_the_settings_its_options_made(tmp_path, monkeypatch):
    from rag.cli import serve

    token = typer.Typer()

    @token.command("list")
    def list_tokens(ctx: typer.Context) -> None:
        print(json.dumps({"index": str(ctx.obj.index_path), "collection": ctx.obj.collection}))

    monkeypatch.setattr(serve.serve_commands, "registered_groups", list(serve.serve_commands.registered_groups))
    serve.serve_commands.add_typer(token, name="token")  # the one line a module under `rag serve` takes
    result = runner.invoke(
        app, ["serve", "--index", str(tmp_path / "idx"), "--collection", "notes", "token", "list"],
        env={"RAG_HOME": str(tmp_path)},
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"index": str(tmp_path / "idx"), "collection": "notes"}
    assert "token" in runner.invoke(app, ["serve", "--help"]).stdout


# -- contradictions ---------------------------------------------------------------------------------

CONTRADICTIONS = [
    ("[chunking]\nchunk_tokens = 200\noverlap_tokens = 300\n", "chunking.overlap_tokens: must be less than chunking.chunk_tokens (200); got 300"),
    ("[chunking]\nchunk_tokens = 100\noverlap_tokens = 100\n", "chunking.overlap_tokens:"),
    ("[search]\nmin_score = 2.5\n", "search.min_score: Input should be less than or equal to 1"),
    ("[search]\nmin_score = -1.5\n", "search.min_score: Input should be greater than or equal to -1"),
    ("[search]\nmin_keyword_coverage = 1.5\n", "search.min_keyword_coverage: Input should be less than or equal to 1"),
]


@pytest.mark.parametrize("toml,message", CONTRADICTIONS)
@pytest.mark.parametrize("command", [["search", "oven"], ["status"], ["ingest", "."], ["ask", "oven"], ["models"]])
def test_contradicting_settings_are_refused_naming_the_key(toml, message, command, tmp_path):
    config = tmp_path / "rag.toml"
    config.write_text(toml)
    result = runner.invoke(app, [*command, "--config", str(config)], env={"RAG_HOME": str(tmp_path / "home")})
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]  # one line
    assert result.stderr.startswith(f"Error: Invalid settings (config file {config}): ")
    assert message in result.stderr
    assert not (tmp_path / "home").exists()


def test_a_contradiction_from_the_environment_is_refused_too(tmp_path):
    env = {"RAG_HOME": str(tmp_path), "RAG_CHUNKING__OVERLAP_TOKENS": "250"}
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 2
    assert "chunking.overlap_tokens: must be less than chunking.chunk_tokens (200); got 250" in result.stderr


@pytest.mark.parametrize("command", [["ingest", "."], ["search", "oven"], ["ask", "oven"], ["summarize"]])
def test_chunks_beyond_the_model_window_are_refused(command, tmp_path):
    env = {"RAG_HOME": str(tmp_path / "home"), "RAG_CHUNKING__CHUNK_TOKENS": "1000"}
    result = runner.invoke(app, command, env=env)
    assert result.exit_code == 2, result.output
    assert result.stderr.strip() == (
        "Error: Invalid settings: chunking.chunk_tokens: 1000 is beyond the embedding model's window of 254 tokens "
        "(sentence-transformers/all-MiniLM-L6-v2 reads 256 word pieces, 2 of them special); use at most 254"
    )
    assert not (tmp_path / "home").exists()


def test_the_window_check_reads_config_files_only():
    import subprocess
    import sys

    code = (
        "import sys; from rag.settings import load_settings, model_problem; "
        "s = load_settings(environ={}, chunking={'chunk_tokens': 1000}); "
        "assert 'chunking.chunk_tokens' in model_problem(s); "
        "assert model_problem(load_settings(environ={}, chunking={'chunk_tokens': 254})) is None; "
        "print(sorted(m for m in ('torch', 'sentence_transformers', 'tokenizers', 'onnxruntime') if m in sys.modules))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"


def test_inspecting_commands_do_not_check_the_window(tmp_path):
    """status and repair still open an index whatever the chunking settings, to show or fix it."""
    env = {"RAG_HOME": str(tmp_path), "RAG_CHUNKING__CHUNK_TOKENS": "1000"}
    result = runner.invoke(app, ["status"], env=env)
    assert result.exit_code == 1 and "No index at" in result.stderr


def test_an_unknown_embedding_model_is_left_to_the_command_that_loads_it(tmp_path):
    from rag.settings import load_settings

    settings = load_settings(environ={}, cwd=tmp_path, check_model=True, embedding={"model": str(tmp_path / "none")})
    assert settings.chunking.chunk_tokens is None  # decided with the model, when it is found


# -- --json on failure --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command,exit_code,message",
    [
        (["status", "--json"], 1, "No index at {home}/index. Run `rag ingest PATH` first."),
        (["search", "oven", "--json"], 1, "No index at {home}/index. Run `rag ingest PATH` first."),
        (["repair", "--json"], 1, "No index at {home}/index. Run `rag ingest PATH` first."),
        (["ingest", "{empty}", "--json"], 2, "Nothing to ingest"),
        (["search", "oven", "--where", "colour=red", "--json"], 2, "--where colour=...: chunks have no 'colour'"),
        (["status", "--json", "--collection", "a"], 2, "Invalid settings: collection: use letters, digits"),
    ],
)
def test_a_failing_json_command_prints_json_on_stdout(command, exit_code, message, tmp_path):
    home, empty = tmp_path / "home", tmp_path / "empty"
    home.mkdir()
    empty.mkdir()
    args = [part.format(empty=empty) for part in command]
    result = runner.invoke(app, args, env={"RAG_HOME": str(home)})
    assert result.exit_code == exit_code, result.output
    payload = json.loads(result.stdout)
    assert set(payload) == {"error", "exit_code"} and payload["exit_code"] == exit_code
    assert payload["error"].startswith(message.format(home=home))
    assert result.stderr.startswith(f"Error: {payload['error']}")  # stderr keeps the line


def test_without_json_stdout_stays_empty_on_failure(tmp_path):
    result = runner.invoke(app, ["status"], env={"RAG_HOME": str(tmp_path)})
    assert result.exit_code == 1 and result.stdout == ""


def test_an_unexpected_error_under_json_is_json_too(tmp_path, monkeypatch):
    import rag

    def broken(settings):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(rag, "status", broken)
    result = runner.invoke(app, ["status", "--json"], env={"RAG_HOME": str(tmp_path)})
    assert result.exit_code == 1
    assert json.loads(result.stdout) == {"error": "ZeroDivisionError: division by zero", "exit_code": 1}
    assert "RAG_DEBUG=1" in result.stderr


def test_files_lists_what_the_collection_holds_under_the_paths_given(tmp_path, monkeypatch):
    notes = tmp_path / "notes"
    (notes / "pumps").mkdir(parents=True)
    (notes / "oven.md").write_text("# Oven\n\nThe reflow oven's warranty ends on 4 October 2025.\n")
    (notes / "pumps" / "seal.md").write_text("# Seal\n\nThe shaft seal of pump three is replaced every spring.\n")
    env = {"RAG_HOME": str(tmp_path / "home")}
    assert runner.invoke(app, ["ingest", str(notes)], env=env).exit_code == 0
    monkeypatch.chdir(tmp_path)

    listed = runner.invoke(app, ["files", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    files = json.loads(listed.stdout)
    oven, seal = notes / "oven.md", notes / "pumps" / "seal.md"
    assert [(f["path"], f["size"], f["chunks"]) for f in files] == [
        (str(oven), oven.stat().st_size, 1), (str(seal), seal.stat().st_size, 1),
    ]
    under_pumps = runner.invoke(app, ["files", "notes/pumps"], env=env)
    assert under_pumps.stdout == f"    1 chunk       {seal.stat().st_size} B  {files[1]['ingested_at']}  notes/pumps/seal.md\n"
    assert json.loads(runner.invoke(app, ["files", "--json", "notes/*.md"], env=env).stdout) == files
    none = runner.invoke(app, ["files", "elsewhere"], env=env)
    assert (none.exit_code, none.stdout, none.stderr) == (0, "", "No file of the collection matches.\n")


def test_collections_are_listed_and_a_missing_one_names_those_there(tmp_path):
    home = tmp_path / "home"
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "oven.md").write_text("# Oven\n\nThe reflow oven's warranty ends on 4 October 2025.\n")
    env = {"RAG_HOME": str(home)}
    for name in ("work", "personal"):
        assert runner.invoke(app, ["ingest", str(notes), "--collection", name], env=env).exit_code == 0
    listed = runner.invoke(app, ["collections", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    collections = json.loads(listed.stdout)
    assert [(c["name"], c["files"], c["chunks"], c["vector_store"]) for c in collections] == [
        ("personal", 1, 1, "disk"), ("work", 1, 1, "disk"),
    ]
    assert all(datetime.fromisoformat(c["last_sync"]).tzinfo for c in collections)  # as status --json has it
    text = runner.invoke(app, ["collections"], env=env)
    assert text.stdout.splitlines()[0].startswith("personal                  1 file         1 chunk   vectors: disk")
    missing = runner.invoke(app, ["status"], env=env)  # the default collection was never made
    assert missing.exit_code == 1
    assert missing.stderr == (
        f"Error: No collection 'default' in the index at {home / 'index'}; it holds personal, work. "
        "Pass --collection NAME (`rag collections` lists them), or run `rag ingest PATH` to create it.\n"
    )
