"""The grammars of schema-constrained extraction keep the schema's promise: every bound of the
`--fields` shorthand and of a `--schema` (lengths, item counts, enum, const, nullable types, nested
objects) holds in what the real packaged Gemma 3 270M samples under them, on the first attempt,
even when the prompt pushes it past them; and no string holds a character JSON forbids. (The
schemas the grammars are made from: tests/unit/test_grammar.py.)"""

from __future__ import annotations

import json

import jsonschema
import pytest
from langchain_core.language_models.fake import FakeListLLM

import rag
from rag.backends import create_llm, json_schema_constrained
from rag.batch.jobs import ExtractJob
from rag.batch.schema import SHORTHAND_MAX_CHARS, SHORTHAND_MAX_ITEMS, fields_schema
from tests.conftest import make_settings
from tests.unit.test_grammar import NULL, STRING

# Enough for every test's valid reply, and far too few for a string or list the grammar lets run on.
MAX_TOKENS = 96
# The packaged Gemma 3 270M, named: a base model, keen to repeat what it was shown.
MODEL = "gemma-3-270m"


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    llm = {"model": MODEL, "temperature": 0.0, "n_ctx": 1024, "max_tokens": MAX_TOKENS}
    batch = {"max_tokens": MAX_TOKENS, "max_attempts": 1}  # the first attempt is the one that counts here
    return make_settings(tmp_path_factory.mktemp("grammar-home"), llm=llm, batch=batch)


@pytest.fixture(scope="module")
def llm(settings):
    return create_llm(settings)


def sample(llm, schema: dict, prompt: str, max_tokens: int = MAX_TOKENS):
    """The model's one reply under the schema's grammar: JSON, valid for the schema."""
    constrained = json_schema_constrained(llm, schema)
    assert constrained is not None, "the schema has a grammar"
    reply = constrained.bind(max_tokens=max_tokens).invoke(prompt)
    value = json.loads(reply)  # cut off mid-way, or holding a raw control character, it would not parse
    jsonschema.validate(value, schema)
    return value


def example(record: dict) -> str:
    """A prompt that shows the model a record it will want to copy, and more of it."""
    return (
        f"Write records like this one, only longer.\n\n{json.dumps(record, ensure_ascii=False)}\n\nThe next record:\n\n"
    )


LONG_TITLE = " ".join(["Ollama model"] * 60)
MANY = [f"x{n}" for n in range(50)]


# -- the real model under the grammars: one per shorthand type ------------------------------------


def test_a_shorthand_string_closes_at_its_bound(llm):
    schema = fields_schema("title:str")
    value = sample(llm, schema, example({"title": LONG_TITLE}))
    assert value["title"] is None or len(value["title"]) <= SHORTHAND_MAX_CHARS


def test_a_shorthand_integer(llm):
    value = sample(llm, fields_schema("default_port:int"), example({"default_port": int("9" * 40)}))
    assert value["default_port"] is None or isinstance(value["default_port"], int)


def test_a_shorthand_float(llm):
    value = sample(llm, fields_schema("ratio:float"), example({"ratio": float("3." + "14159265358979" * 3)}))
    assert value["ratio"] is None or isinstance(value["ratio"], (int, float))


def test_a_shorthand_bool(llm):
    value = sample(llm, fields_schema("enabled:bool"), "Is it enabled? Yes, absolutely, very much so.\n\n")
    assert value["enabled"] in (True, False, None)


def test_a_shorthand_list_of_strings_stops_at_its_item_count(llm):
    value = sample(llm, fields_schema("environment_variables:list[str]"), example({"environment_variables": MANY}))
    assert len(value["environment_variables"]) <= SHORTHAND_MAX_ITEMS


def test_a_shorthand_list_of_integers_stops_at_its_item_count(llm):
    value = sample(llm, fields_schema("ports:list[int]"), example({"ports": list(range(8000, 8050))}))
    assert len(value["ports"]) <= SHORTHAND_MAX_ITEMS


def test_the_shorthand_of_the_issue(llm):
    schema = fields_schema("title:str, environment_variables:list[str], default_port:int")
    record = {"title": "Ollama model: " + LONG_TITLE, "environment_variables": MANY, "default_port": 11434}
    sample(llm, schema, example(record), max_tokens=160)


# -- ... and one per bound -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "title",
    [
        {"type": ["string", "null"], "maxLength": 40},
        {"anyOf": [{"type": "string", "maxLength": 40}, NULL]},
        {"maxLength": 40, "anyOf": [STRING, NULL]},
    ],
    ids=["type-list", "anyOf", "anyOf-beside"],
)
def test_max_length_on_a_nullable_string(llm, title):
    schema = {"type": "object", "properties": {"title": title}, "required": ["title"]}
    sample(
        llm, schema, "Write a title that is 2000 characters long, repeating words.\n\n" + example({"title": LONG_TITLE})
    )


def test_min_length_on_a_nullable_string(llm):
    schema = {
        "type": "object",
        "properties": {"name": {"type": ["string", "null"], "minLength": 12, "maxLength": 16}},
        "required": ["name"],
    }
    value = sample(llm, schema, example({"name": "Bo"}))
    assert value["name"] is None or 12 <= len(value["name"]) <= 16


def test_max_items_on_a_nullable_list_of_nullable_strings(llm):
    tags = {"type": ["array", "null"], "items": {"type": ["string", "null"], "maxLength": 6}, "maxItems": 4}
    schema = {"type": "object", "properties": {"tags": tags}, "required": ["tags"]}
    value = sample(
        llm, schema, "List 50 items.\n\n" + example({"tags": [f"item number {n} of fifty" for n in range(50)]})
    )
    assert value["tags"] is None or len(value["tags"]) <= 4


def test_enum_and_const_under_a_type_list(llm):
    schema = {
        "type": "object",
        "properties": {
            "size": {"type": ["string", "null"], "enum": ["small", "large", None]},
            "version": {"type": ["string", "null"], "const": "v1"},
            "rating": {"type": ["integer", "null"], "minimum": 1, "maximum": 5},
        },
        "required": ["size", "version", "rating"],
    }
    sample(llm, schema, example({"size": "enormous, gigantic, " * 20, "version": "v2.7.1-beta", "rating": 1000000}))


def test_enum_values_that_need_escaping_in_json(llm):
    values = ['say "hi"', "C:\\temp", "two\nlines", "café"]
    schema = {"type": "object", "properties": {"pick": {"enum": values}}, "required": ["pick"]}
    value = sample(llm, schema, example({"pick": "C:\\temp\\other"}))
    assert value["pick"] in values


def test_nested_objects_and_arrays_of_objects(llm):
    person = {
        "type": "object",
        "properties": {"name": {"type": ["string", "null"], "maxLength": 12}, "role": {"enum": ["dev", "ops"]}},
        "required": ["name", "role"],
        "additionalProperties": False,
    }
    schema = {
        "type": "object",
        "properties": {
            "people": {"type": "array", "items": person, "maxItems": 2},
            "meta": {
                "type": ["object", "null"],
                "properties": {"source": {"type": ["string", "null"], "maxLength": 12}},
                "required": ["source"],
            },
        },
        "required": ["people", "meta"],
    }
    people = [{"name": f"Person {n} " + "von " * 12, "role": "manager of everything"} for n in range(5)]
    sample(llm, schema, example({"people": people, "meta": {"source": LONG_TITLE[:300], "more": "and more"}}))


CONTROL = "package-lock.json\tyarn.lock\n\tpoetry.lock\r\n\tGemfile.lock\x0b\x1b[0m\n"


def test_strings_never_hold_raw_control_characters(llm):
    # The example shows them raw, as in a file the model read: JSON forbids them unescaped.
    prompt = 'Write the same record again.\n\n{"lock_file": "' + CONTROL * 3 + '"}\n\n'
    sample(llm, fields_schema("lock_file:str"), prompt)


def test_a_pattern_with_any_character_stays_inside_the_json_string(llm):
    schema = {
        "type": "object",
        "properties": {"line": {"type": "string", "pattern": "^.{1,30}$"}},
        "required": ["line"],
    }
    prompt = 'Copy the line exactly.\n\n{"line": "say \\"' + CONTROL + '\\" twice"}\n\n{"line": "say "' + CONTROL
    sample(llm, schema, prompt)


# -- what a job says once --------------------------------------------------------------------------


def test_what_the_grammar_cannot_enforce_is_said_once_per_job(llm, settings):
    schema = {
        "type": "object",
        # bounded strings: a schema leaving them unbounded is told its bounds too (test_batch.py)
        "properties": {"tags": {"type": "array", "items": {**STRING, "maxLength": 40}, "maxItems": 3, "uniqueItems": True}},
    }
    job = ExtractJob(settings, None, [], {}, llm, schema=schema, per="document")
    with pytest.warns(UserWarning) as warned:
        assert job.constrained is not None and job.constrained is job.constrained
    assert job.unenforced == ["uniqueItems at tags"]
    [notice] = job.notices
    assert notice == (
        "extract: the model's grammar does not enforce uniqueItems at tags; "
        "replies are checked against the schema, and an invalid one retried (batch.max_attempts: 1)."
    )
    assert [str(warning.message) for warning in warned] == [notice]

    clean = ExtractJob(settings, None, [], {}, llm, schema=fields_schema("a:str"), per="document")
    assert clean.constrained is not None and clean.notices == []


def test_a_schema_without_a_grammar_is_said_once_and_left_to_validation(llm, settings):
    schema = {"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}}
    job = ExtractJob(settings, None, [], {}, llm, schema=schema, per="document")
    job.on_notice = None
    assert job.constrained is None
    assert job.notices == [
        (
            "extract: no grammar for this schema (a refers to https://example.com/a.json, which is not in the schema); "
            "replies are checked against the schema, and an invalid one retried (batch.max_attempts: 1)."
        )
    ]
    unconstrained = ExtractJob(settings, None, [], {}, FakeListLLM(responses=["{}"]), schema=schema, per="document")
    unconstrained.on_notice = None
    assert unconstrained.constrained is None and "has no constrained decoding" in unconstrained.notices[0]


def test_a_job_over_several_items_says_it_once(llm, settings, tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for n in range(2):
        (folder / f"note-{n}.md").write_text(f"# Note {n}\n\nTags: alpha, beta, gamma.\n")
    rag.ingest([folder], settings)
    tags = {"type": "array", "items": {"type": "string", "maxLength": 8}, "maxItems": 3, "uniqueItems": True}
    job = rag.extract(
        {"type": "object", "properties": {"tags": tags}, "required": ["tags"]}, [str(folder)], settings, llm=llm
    )
    with pytest.warns(UserWarning) as warned:
        records = list(job)
    assert len(records) == 2 and all(record.constrained for record in records)
    assert all(record.ok or "non-unique" in record.error for record in records)  # validation has the last word
    assert [str(w.message).count("does not enforce uniqueItems at tags") for w in warned] == [1]
