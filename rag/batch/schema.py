"""The JSON Schema of an extraction job: read it, write it from a `--fields` shorthand, check a
model's reply against it, and merge the records of a document's parts into one."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from rag.errors import FieldsShorthandError, UsageError

# "name:str, amount:float, tags:list[str]"; scalar fields may be null (a document may not say).
_SHORTHAND_TYPES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
# Bounds on shorthand fields: constrained decoding then closes every string and list in time,
# where a small model could otherwise repeat itself until its token budget ends the JSON mid-way.
SHORTHAND_MAX_CHARS = 200
SHORTHAND_MAX_ITEMS = 10
# A schema's own unbounded strings and lists get bounds sized to the reply's token budget: the JSON's
# keys and punctuation take about this share of a reply, and a token of text is about this many characters.
SYNTAX_SHARE = 0.25
CHARS_PER_TOKEN = 3
MIN_BOUNDED_CHARS = 40
NOT_JSON = "the reply is not valid JSON"
_FIELD = re.compile(r"^\s*(?P<name>[^\W\d][\w-]*)\s*:\s*(?P<type>\w+(\[\w+\])?)\s*$")  # a name in any script
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


def load_schema(path: Path) -> dict[str, Any]:
    try:
        schema = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"Cannot read the schema file {path}: {exc.strerror or exc}.") from exc
    except json.JSONDecodeError as exc:
        raise UsageError(f"The schema file {path} is not JSON ({exc.msg}, line {exc.lineno}).") from exc
    return check_schema(schema, str(path))


def check_schema(schema: Any, origin: str = "the schema") -> dict[str, Any]:
    from jsonschema import SchemaError, validators

    if not isinstance(schema, dict):
        raise UsageError(f"{origin} must be a JSON Schema object, such as {{\"type\": \"object\", ...}}.")
    if schema.get("type", "object") != "object":
        raise UsageError(
            f"{origin} describes a {json.dumps(schema['type'])}, and each record is a JSON object: give "
            "{\"type\": \"object\", \"properties\": {...}} with the value as one of its properties."
        )
    try:
        validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise UsageError(f"{origin} is not a valid JSON Schema: {exc.message}.") from exc
    return schema


def fields_schema(fields: str) -> dict[str, Any]:
    """The JSON Schema of `--fields "name:str, amount:float, tags:list[str]"`."""
    properties: dict[str, Any] = {}
    for part in filter(str.strip, fields.split(",")):
        match = _FIELD.match(part)
        if match is None:
            raise FieldsShorthandError(part.strip(), list(_SHORTHAND_TYPES))
        kind = match["type"]
        if match["name"] in properties:
            raise UsageError(f"--fields names {match['name']!r} twice; give each field once.")
        if kind in _SHORTHAND_TYPES:
            properties[match["name"]] = {**_bounded(kind), "type": [_SHORTHAND_TYPES[kind], "null"]}
        elif kind and kind.startswith("list[") and kind[5:-1] in _SHORTHAND_TYPES:
            properties[match["name"]] = {"type": "array", "items": _bounded(kind[5:-1]), "maxItems": SHORTHAND_MAX_ITEMS}
        else:
            raise FieldsShorthandError(part.strip(), list(_SHORTHAND_TYPES))
    if not properties:
        raise FieldsShorthandError(None, list(_SHORTHAND_TYPES))
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def _bounded(kind: str) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": _SHORTHAND_TYPES[kind]}
    if kind == "str":
        schema["maxLength"] = SHORTHAND_MAX_CHARS
    return schema


class BoundedSchema(NamedTuple):
    schema: dict[str, Any]
    paths: list[str]  # the lists and strings that had no bound ("topics", "topics[]")
    max_items: int | None  # the items each such list got
    max_length: int | None  # the characters each such string got


def bounded(schema: dict[str, Any], max_tokens: int) -> BoundedSchema:
    """`schema` with a maxItems on each list and a maxLength on each free string it leaves unbounded,
    so that constrained decoding closes the JSON within `max_tokens`.

    The strings share the characters the budget holds, a string inside a list counting once per
    item; lists get the shorthand's bound, fewer where strings would otherwise get too few
    characters to say anything. Bounds the schema gives itself are kept."""
    characters = max_tokens * (1 - SYNTAX_SHARE) * CHARS_PER_TOKEN
    for max_items in range(SHORTHAND_MAX_ITEMS, 0, -1):
        result, lists, strings = _with_bounds(schema, max_items)
        slots = sum(repeats for _, _, repeats in strings)
        if not slots or characters / slots >= MIN_BOUNDED_CHARS:
            break
    length = max(MIN_BOUNDED_CHARS, int(characters / slots)) if slots else None
    for node, _, _ in strings:
        node["maxLength"] = max(length, node.get("minLength", 0))
    paths = list(dict.fromkeys(lists + [path for _, path, _ in strings]))
    return BoundedSchema(result, paths, max_items if lists else None, length)


def _with_bounds(schema: dict[str, Any], max_items: int) -> tuple[dict[str, Any], list[str], list[tuple[dict[str, Any], str, int]]]:
    """A copy of `schema` whose unbounded lists hold at most `max_items`; those lists' paths; and its
    unbounded strings (the copy's node, the path, how many times a reply may hold it)."""
    lists: list[str] = []
    strings: list[tuple[dict[str, Any], str, int]] = []

    def walk(node: Any, path: str, repeats: int) -> Any:
        if not isinstance(node, dict):
            return node
        node = dict(node)
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if "array" in types and "maxItems" not in node:
            node["maxItems"] = max(max_items, node.get("minItems", 0))
            lists.append(path or "the reply")
        if "string" in types and not any(key in node for key in ("maxLength", "enum", "const", "format", "pattern")):
            strings.append((node, path or "the reply", repeats))
        if isinstance(node.get("properties"), dict):
            node["properties"] = {name: walk(sub, f"{path}.{name}".lstrip("."), repeats) for name, sub in node["properties"].items()}
        if isinstance(node.get("items"), dict):
            node["items"] = walk(node["items"], f"{path}[]", repeats * node.get("maxItems", max_items))
        return node

    return walk(schema, "", 1), lists, strings


def parse_reply(raw: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(value, None) when `raw` holds JSON valid for `schema`, else (None, what is wrong)."""
    text = _FENCE.sub("", raw.strip())
    starts = [at for at in (text.find("{"), text.find("[")) if at >= 0]
    if not starts:
        return None, "the reply holds no JSON value"
    try:
        value, _ = json.JSONDecoder().raw_decode(text[min(starts) :])
    except json.JSONDecodeError as exc:
        return None, f"{NOT_JSON} ({exc.msg} at character {exc.pos})"
    problem = schema_problem(value, schema)
    return (None, problem) if problem else (value, None)


def schema_problem(value: Any, schema: dict[str, Any]) -> str | None:
    """What makes `value` invalid for `schema`, in one line, or None."""
    from jsonschema import validators
    from jsonschema.exceptions import best_match

    error = best_match(validators.validator_for(schema)(schema).iter_errors(value))
    if error is None:
        return None
    where = "/".join(str(part) for part in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def merge(values: list[Any], schema: dict[str, Any]) -> Any:
    """One record from the records of a document's parts: lists are joined (without repeats,
    up to maxItems), other fields take the first part that says something."""
    if all(isinstance(value, dict) for value in values):
        properties = schema.get("properties", {})
        keys = dict.fromkeys(key for value in values for key in value)
        return {key: merge([value[key] for value in values if key in value], properties.get(key, {})) for key in keys}
    if all(isinstance(value, list) for value in values):
        joined = list({json.dumps(item, sort_keys=True): item for value in values for item in value}.values())
        return joined[: schema["maxItems"]] if "maxItems" in schema else joined
    return next((value for value in values if value not in (None, "", [], {})), values[0])
