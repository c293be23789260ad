"""The grammars of schema-constrained extraction, without a model: the schema normalised so a
grammar can keep each bound of the `--fields` shorthand and of a `--schema`, the keywords no grammar
enforces listed, patterns rewritten to stay inside a JSON string, and the grammar itself
(tests/integration/test_grammar.py samples the real packaged Gemma 3 270M under them)."""

from __future__ import annotations

import re

import jsonschema
import pytest

from rag.batch.grammar import ANY, JSON_STRING_CHAR, gbnf, grammar_pattern, plan
from rag.batch.schema import SHORTHAND_MAX_CHARS, SHORTHAND_MAX_ITEMS, fields_schema

STRING, NULL = {"type": "string"}, {"type": "null"}


# -- the normalised schema, without a model --------------------------------------------------------


def test_the_shorthand_becomes_one_schema_per_type_each_with_its_bounds():
    schema = fields_schema("title:str, port:int, ratio:float, ok:bool, tags:list[str], ports:list[int]")
    normalised = plan(schema)
    assert normalised.unenforced == [] and normalised.problem is None
    bounded = {"type": "string", "maxLength": SHORTHAND_MAX_CHARS}
    assert normalised.schema == {
        "type": "object",
        "properties": {
            "title": {"anyOf": [bounded, NULL]},
            "port": {"anyOf": [{"type": "integer"}, NULL]},
            "ratio": {"anyOf": [{"type": "number"}, NULL]},
            "ok": {"anyOf": [{"type": "boolean"}, NULL]},
            "tags": {"type": "array", "items": bounded, "maxItems": SHORTHAND_MAX_ITEMS},
            "ports": {"type": "array", "items": {"type": "integer"}, "maxItems": SHORTHAND_MAX_ITEMS},
        },
        "required": ["title", "port", "ratio", "ok", "tags", "ports"],
        "additionalProperties": False,
    }


def test_a_type_list_keeps_for_each_type_only_its_own_keywords():
    normalised = plan({"type": ["string", "integer", "array", "null"], "minLength": 2, "maxLength": 5, "maxItems": 3})
    assert normalised.schema == {
        "anyOf": [
            {"type": "string", "minLength": 2, "maxLength": 5},
            {"type": "integer"},
            {"type": "array", "items": ANY, "maxItems": 3},
            NULL,
        ]
    }


@pytest.mark.parametrize(
    "nullable",
    [
        {"type": ["string", "null"], "maxLength": 5},
        {"anyOf": [{"type": "string", "maxLength": 5}, NULL]},
        {"maxLength": 5, "anyOf": [STRING, NULL]},
        {"oneOf": [STRING, NULL], "maxLength": 5},
        {"allOf": [{"type": ["string", "null"]}, {"maxLength": 9}, {"maxLength": 5}]},
    ],
)
def test_every_spelling_of_a_nullable_bounded_string_keeps_its_bound(nullable):
    normalised = plan(nullable)
    assert normalised.schema == {"anyOf": [{"type": "string", "maxLength": 5}, NULL]}
    assert normalised.unenforced == []  # a string and null never overlap: oneOf is exact


def test_enum_and_const_keep_only_the_values_the_rest_of_the_schema_allows():
    assert plan({"type": ["string", "null"], "maxLength": 3, "enum": ["abc", "abcd", None, 3]}).schema == {
        "enum": ["abc", None]
    }
    assert plan({"type": ["string", "null"], "const": "v1"}).schema == {"const": "v1"}
    assert plan({"anyOf": [{"enum": ["a", "b"]}, NULL], "enum": ["b", None, "c"]}).schema == {
        "anyOf": [{"const": "b"}, {"const": None}]
    }
    nothing = plan({"type": "integer", "enum": ["a"]})
    assert nothing.schema is None and "enum" in nothing.problem


def test_an_integer_between_close_bounds_is_its_list_of_values_and_other_numeric_bounds_are_reported():
    assert plan({"type": ["integer", "null"], "minimum": 1, "exclusiveMaximum": 4}).schema == {
        "anyOf": [{"enum": [1, 2, 3]}, NULL]
    }
    wide = plan(
        {
            "type": "object",
            "properties": {"n": {"type": "integer", "minimum": 0}, "x": {"type": "number", "maximum": 1}},
        }
    )
    assert wide.unenforced == ["minimum at n", "maximum at x"]


def test_nested_objects_arrays_of_objects_and_references_are_normalised_throughout():
    schema = {
        "$defs": {"name": {"type": ["string", "null"], "maxLength": 20}},
        "type": "object",
        "properties": {
            "people": {
                "type": "array",
                "maxItems": 3,
                "items": {
                    "type": "object",
                    "properties": {
                        "name": {"$ref": "#/$defs/name"},
                        "age": {"type": ["integer", "null"], "minimum": 0, "maximum": 150},
                    },
                    "required": ["name"],
                },
            },
            "owner": {"allOf": [{"$ref": "#/$defs/name"}, {"minLength": 2}]},
            "meta": {
                "type": ["object", "null"],
                "properties": {"source": {"type": "string", "maxLength": 9}},
                "required": ["source", "page"],
            },
        },
        "required": ["people", "owner"],
    }
    normalised = plan(schema)
    assert normalised.unenforced == []
    person = normalised.schema["properties"]["people"]["items"]
    assert person["properties"]["name"] == {"$ref": "#/$defs/def-name"}
    assert normalised.schema["$defs"] == {"def-name": {"anyOf": [{"type": "string", "maxLength": 20}, NULL]}}
    assert person["properties"]["age"] == {"anyOf": [{"enum": list(range(151))}, NULL]}
    assert person["additionalProperties"] is False and person["required"] == ["name"]
    assert normalised.schema["properties"]["owner"] == {
        "anyOf": [{"type": "string", "minLength": 2, "maxLength": 20}, NULL]
    }
    meta = normalised.schema["properties"]["meta"]["anyOf"][0]
    assert meta["properties"] == {"source": {"type": "string", "maxLength": 9}, "page": ANY}  # required, so declared
    assert schema["properties"]["meta"]["required"] == ["source", "page"], "the job's own schema is left alone"


def test_keywords_no_grammar_enforces_are_listed_once_and_dropped():
    schema = {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": STRING, "uniqueItems": True, "maxItems": 3},
            "amount": {"type": "integer", "not": {"const": 0}},
            "code": {"type": "string", "pattern": "[0-9]+"},  # unanchored: "contains"
            "either": {"oneOf": [{"type": "string", "maxLength": 3}, {"type": "string", "minLength": 2}]},
        },
        "minProperties": 1,
    }
    normalised = plan(schema)
    assert normalised.unenforced == [
        "minProperties at the top level",
        "uniqueItems at tags",
        "not at amount",
        "pattern at code",
        "oneOf (a value may meet more than one alternative) at either",
    ]
    assert normalised.schema["properties"]["tags"] == {"type": "array", "items": STRING, "maxItems": 3}
    assert normalised.schema["properties"]["code"] == STRING


def test_a_schema_no_value_meets_or_that_reaches_outside_has_no_grammar():
    assert plan({"type": "string", "minLength": 5, "maxLength": 2}).schema is None
    outside = plan({"type": "object", "properties": {"a": {"$ref": "https://example.com/a.json"}}})
    assert outside.schema is None and "https://example.com/a.json" in outside.problem


RECURSIVE = {
    "type": "object",
    "properties": {"name": {"type": "string", "maxLength": 4}, "child": {"anyOf": [{"$ref": "#"}, NULL]}},
    "required": ["name", "child"],
}


@pytest.mark.parametrize(
    "schema",
    [
        True,
        {},
        {"type": "array", "items": False},
        {"type": "array", "prefixItems": [STRING, {"type": "integer"}], "minItems": 1},
        {"type": "object", "additionalProperties": {"type": "integer", "maximum": 9, "minimum": 0}},
        {"type": "object", "properties": {'a"b': {"type": "string", "maxLength": 2}, "é": False}, "required": ['a"b']},
        {
            "$defs": {"s": STRING},
            "properties": {"string": {"$ref": "#/$defs/s"}, "t": {"$ref": "#/$defs/s", "maxLength": 3}},
        },
        {"enum": [1, 1.5, "x", None, True, [1, 2], {"a": 'b"c'}]},
        {
            "$schema": "http://json-schema.org/draft-04/schema#",
            "type": "integer",
            "minimum": 1,
            "exclusiveMinimum": True,
        },
        RECURSIVE,
        {
            "$defs": {
                "n": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/n"}}}}
            },
            "$ref": "#/$defs/n",
        },
    ],
)
def test_every_schema_gets_a_grammar_from_a_valid_normalised_schema(schema):
    normalised = plan(schema)
    jsonschema.validators.validator_for(normalised.schema).check_schema(normalised.schema)
    assert "root ::= " in gbnf(normalised.schema)


def test_a_schema_merged_into_itself_without_end_has_no_grammar():
    endless = plan({"allOf": [{"$ref": "#/$defs/a"}], "$defs": {"a": {"allOf": [{"$ref": "#/$defs/a"}]}}})
    assert endless.schema is None and "refers to itself" in endless.problem


@pytest.mark.parametrize(
    "pattern,rewritten,matches,misses",
    [
        (r"^[A-Z]{3}-\d{4}$", "^[A-Z]{3}-[0-9]{4}$", ["ABC-1234"], ["AB-1234", "ABC-12345"]),
        (r"^v\d+(\.\d+)*$", r"^v[0-9]+([.][0-9]+)*$", ["v1.2.3"], ["v1.", "x1", "v1-2"]),
        ("^.{1,8}$", "^" + JSON_STRING_CHAR + "{1,8}$", ["a b", "é"], ["", "a\tb", 'a"b', "a\\b"]),
        ("^[^,]+$", r'^[^,"\\\x00-\x1F]+$', ["abc"], ["a,b", "a\nb", 'a"b']),
        ("^(red|green)$", "^(red|green)$", ["red"], ["blue"]),
    ],
)
def test_patterns_are_rewritten_to_match_only_what_a_json_string_holds_unescaped(pattern, rewritten, matches, misses):
    assert grammar_pattern(pattern) == rewritten
    assert all(re.fullmatch(rewritten[1:-1], text) for text in matches)
    assert not any(re.fullmatch(rewritten[1:-1], text) for text in misses)


@pytest.mark.parametrize("pattern", ["[0-9]+", "^[ -~]+$", "^(?:a)$", r"^\w+\b$", '^a"b$', "^a{x}$", "^(a|)$", r"^\\$"])
def test_patterns_a_grammar_cannot_keep_to_are_left_to_validation(pattern):
    assert grammar_pattern(pattern) is None


def test_the_grammar_has_the_bounds_and_no_raw_control_characters_in_strings():
    text = gbnf(plan(fields_schema("title:str, tags:list[str]")).schema)
    rules = dict(line.split(" ::= ", 1) for line in text.splitlines())
    assert rules["char"].startswith(JSON_STRING_CHAR + " | ")  # not [^"\\], which admits U+0000-U+001F
    assert rules["title"] == "title-0 | null"
    assert rules["title-0"].count("char") == SHORTHAND_MAX_CHARS  # not `string`, which is unbounded
    assert rules["tags-item"].count("char") == SHORTHAND_MAX_CHARS
    assert "string" not in rules  # nothing unbounded is left


def test_literals_are_written_as_their_json_text():
    text = gbnf(plan({"enum": ['say "hi"', "C:\\temp", "two\nlines", "café"]}).schema)
    assert (
        text.splitlines()[0]
        == r'root ::= "\"say \\\"hi\\\"\"" | "\"C:\\\\temp\"" | "\"two\\nlines\"" | "\"caf\\u00e9\""'
    )
