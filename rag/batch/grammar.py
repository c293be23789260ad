"""The JSON Schema a model is constrained by, in the form grammar converters handle correctly.

Converters from JSON Schema to a sampling grammar understand a subset of the standard, and some
of it wrongly: llama-cpp-python's (`LlamaGrammar.from_json_schema`) turns `{"type": ["string",
"null"], "maxLength": 200}` into an unbounded string or null (a type list keeps only the types),
ignores the keywords beside an `anyOf` or `enum`, lets strings hold raw control characters that
JSON forbids, and writes `enum`/`const` literals holding a quote, a backslash or a control
character into grammars that are broken or produce invalid JSON. So:

- `plan(schema)` rewrites a schema into one those converters read as meant: a type list becomes
  an `anyOf` of one schema per type that keeps the keywords of that type; keywords beside
  `anyOf`/`oneOf`/`allOf`/`$ref` are merged into each branch; `enum`/`const` keep only the values
  the rest of the schema allows; references point at normalised definitions. What no grammar
  here can enforce (`not`, `uniqueItems`, a number's `minimum`...) is dropped from it and listed
  in `plan.unenforced`, so that a job can say so once: every reply is still validated against
  the original schema, and an invalid one retried.
- `gbnf(schema)` is llama.cpp's grammar for the normalised schema, from llama-cpp-python's
  converter with the character rule and literals made JSON-safe.

The normalised schema only ever narrows what the original allows (where it cannot be exact it
is looser only in the keywords listed as unenforced), and it is what the llama.cpp server and
Ollama get too.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from typing import Any, TypeGuard

_TYPES = ("object", "array", "string", "number", "boolean", "null")  # "integer" is within "number"
ANY: dict[str, Any] = {"anyOf": [{"type": kind} for kind in _TYPES]}

_STRING_KEYS = {"minLength", "maxLength", "pattern", "format"}
_NUMBER_KEYS = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
_ARRAY_KEYS = {
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedItems",
}
_OBJECT_KEYS = {
    "properties",
    "required",
    "additionalProperties",
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
}
_UNENFORCED_ARRAY = ("uniqueItems", "contains", "minContains", "maxContains", "unevaluatedItems")
_UNENFORCED_OBJECT = (
    "patternProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "dependentRequired",
    "dependentSchemas",
    "dependencies",
    "unevaluatedProperties",
)
_UNENFORCED_ANY = ("not", "if", "then", "else")
# Formats the converter writes an exact rule for; others are annotations (jsonschema does not check them either).
_GRAMMAR_FORMATS = {"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"}
# An integer between bounds this close is written as the list of its values, which a grammar can enforce.
MAX_INTEGER_CHOICES = 256
MAX_DEPTH = 100  # schemas nested deeper (or endlessly merged into themselves) get no grammar

# Characters a JSON string may hold unescaped: anything but the quote, the backslash and U+0000-U+001F.
JSON_STRING_CHAR = r'[^"\\\x00-\x1F]'
_SAFE_CHAR_RULE = JSON_STRING_CHAR + r' | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F] [0-9a-fA-F])'
_UNSAFE_CHAR_CLASS = r'[^"\\]'


class Inexpressible(Exception):
    """No grammar here can stand for this schema."""


class GrammarError(Exception):
    """The grammar converter failed on a schema, or wrote something that is not safe to sample under."""


@dataclass
class Plan:
    """A schema as it goes to a grammar converter, and what that grammar will not enforce."""

    schema: dict[str, Any] | None  # None: no grammar can stand for it (see `problem`)
    unenforced: list[str] = field(default_factory=list)  # "keyword at where", e.g. "uniqueItems at tags"
    problem: str | None = None


def plan(schema: Any) -> Plan:
    normaliser = _Normaliser(schema)
    try:
        normalised = normaliser.node(schema, "")
    except Inexpressible as exc:
        return Plan(None, normaliser.unenforced, str(exc))
    if set(normalised) == {"$ref"}:
        # At the top, a reference would hide the definitions from the converter's reference resolver.
        normalised = normaliser.definitions[normalised["$ref"].rsplit("/", 1)[-1]]
    if normaliser.definitions:
        normalised = {**normalised, "$defs": normaliser.definitions}
    return Plan(json.loads(json.dumps(normalised)), list(dict.fromkeys(normaliser.unenforced)))


def gbnf(schema: dict[str, Any]) -> str:
    """llama.cpp's grammar (GBNF) for a schema `plan` normalised; GrammarError where it cannot be had."""
    try:
        from llama_cpp import llama_grammar
    except ImportError as exc:
        raise GrammarError(f"llama-cpp-python is not installed ({exc.name})") from exc

    class Converter(llama_grammar.SchemaConverter):
        def _format_literal(self, literal: str) -> str:
            # The converter escapes only quotes and line breaks: a backslash in a JSON literal (a
            # value's `\"`, `\n`, `\u00e9`) would be read by the grammar parser as its own escape.
            return (
                '"' + literal.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r") + '"'
            )

        def _add_primitive(self, name: str, rule: Any) -> str:
            if name == "char":
                rule = llama_grammar.BuiltinRule(_SAFE_CHAR_RULE, [])
            return super()._add_primitive(name, rule)

    try:
        converter = Converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        resolved = converter.resolve_refs(json.loads(json.dumps(schema)), "input")
        converter.visit(resolved, "")
        text = converter.format_grammar()
    except Exception as exc:  # the converter raises assorted types (AssertionError, KeyError...) on what it lacks
        raise GrammarError(f"llama-cpp-python's converter cannot read the schema: {exc or type(exc).__name__}") from exc
    if _UNSAFE_CHAR_CLASS in text or re.search(r"^dot ::=", text, re.MULTILINE):
        raise GrammarError("llama-cpp-python's converter wrote a string rule that admits characters JSON forbids")
    return text


class _Normaliser:
    def __init__(self, root: Any):
        self.root = root
        self.unenforced: list[str] = []
        self.definitions: dict[str, Any] = {}
        self._refs: dict[str, str] = {}  # original reference -> its normalised definition's reference
        self._inlining: list[str] = []
        self._depth = 0

    def skip(self, path: str, keyword: str) -> None:
        where = path.lstrip("/")
        self.unenforced.append(f"{keyword} at {where}" if where else f"{keyword} at the top level")

    def node(self, schema: Any, path: str) -> dict[str, Any]:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise Inexpressible(f"{_where(path)} nests too deeply, or refers to itself without end")
            return self._node(schema, path)
        finally:
            self._depth -= 1

    def _node(self, schema: Any, path: str) -> dict[str, Any]:
        if schema is True:
            return ANY
        if schema is False:
            raise Inexpressible(f"{_where(path)} allows no value")
        if not isinstance(schema, dict):
            raise Inexpressible(f"{_where(path)} is not a schema")
        schema = _constraints(schema)
        if not schema:
            return ANY
        for keyword in _UNENFORCED_ANY:
            if keyword in schema:
                self.skip(path, keyword)  # said here, and not again for each branch it would be merged into
        schema = {key: value for key, value in schema.items() if key not in _UNENFORCED_ANY}
        if not schema:
            return ANY
        if "$ref" in schema:
            return self._reference(schema, path)
        if "allOf" in schema:
            merged = {key: value for key, value in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                merged = self.intersect(merged, self.inline(part, path), path)
            return self.node(merged, path)
        if "anyOf" in schema or "oneOf" in schema:
            return self._union(schema, path)
        if "enum" in schema or "const" in schema:
            return self._choices(schema, path)
        branches = [self._typed(schema, kind, path) for kind in _types(schema)]
        return _union_of(branches)

    def _reference(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        ref = schema["$ref"]
        beside = {key: value for key, value in schema.items() if key != "$ref"}
        if beside and ref not in self._inlining and (target := self._target(ref)) is not None:
            self._inlining.append(ref)
            try:
                return self.node(self.intersect(target, beside, path), path)
            finally:
                self._inlining.pop()
        for keyword in beside:
            self.skip(path, f"{keyword} beside $ref")
        if ref not in self._refs:
            target = self._target(ref)
            if target is None:
                raise Inexpressible(f"{_where(path)} refers to {ref}, which is not in the schema")
            name = _definition_name(ref, self.definitions)
            self._refs[ref] = f"#/$defs/{name}"
            self.definitions[name] = {}  # taken, for a reference to itself inside it
            self.definitions[name] = self.node(target, ref)
        return {"$ref": self._refs[ref]}

    def _target(self, ref: str) -> Any:
        if not isinstance(ref, str) or not ref.startswith("#"):
            return None
        target = self.root
        for part in filter(None, ref[1:].split("/")):
            part = part.replace("~1", "/").replace("~0", "~")
            if isinstance(target, dict) and part in target:
                target = target[part]
            elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                target = target[int(part)]
            else:
                return None
        return target

    def inline(self, schema: Any, path: str) -> Any:
        """`schema`, with a local reference at its top replaced by what it refers to (once)."""
        if isinstance(schema, dict) and "$ref" in schema and schema["$ref"] not in self._inlining:
            target = self._target(schema["$ref"])
            if target is not None:
                self._inlining.append(schema["$ref"])
                try:
                    rest = {key: value for key, value in schema.items() if key != "$ref"}
                    return self.intersect(self.inline(target, path), rest, path)
                finally:
                    self._inlining.pop()
        return schema

    def _union(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        keyword = "anyOf" if "anyOf" in schema else "oneOf"
        rest = {key: value for key, value in schema.items() if key != keyword}
        if keyword == "anyOf" and "oneOf" in schema:
            self.skip(path, "oneOf beside anyOf")
            rest.pop("oneOf")
        branches = []
        for at, branch in enumerate(schema[keyword]):
            try:
                # A reference is inlined only to merge keywords into it: alone, it stays one (it may recur).
                merged = self.intersect(rest, self.inline(branch, path), path) if rest else branch
                branches.append(self.node(merged, f"{path}/{keyword}/{at}"))
            except Inexpressible:
                continue  # a branch no value meets adds nothing
        if not branches:
            raise Inexpressible(f"no alternative of {_where(path)}'s {keyword} allows a value")
        if keyword == "oneOf" and not _disjoint(branches):
            self.skip(path, "oneOf (a value may meet more than one alternative)")
        return _union_of(branches)

    def _choices(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        values = [schema["const"]] if "const" in schema else list(schema["enum"])
        if "const" in schema and "enum" in schema:
            values = [value for value in values if _json_in(value, schema["enum"])]
        values = [value for value in values if self._allows(schema, value)]
        if not values:
            raise Inexpressible(f"no value of {_where(path)}'s enum/const meets the rest of it")
        return {"const": values[0]} if len(values) == 1 else {"enum": values}

    def _allows(self, schema: dict[str, Any], value: Any) -> bool:
        from jsonschema import validators
        from referencing.exceptions import Unresolvable

        try:
            return validators.validator_for(self.root if isinstance(self.root, dict) else {})(schema).is_valid(value)
        except Unresolvable:  # a reference it cannot follow on its own: keep the value, validation has the last word
            return True

    def _typed(self, schema: dict[str, Any], kind: str, path: str) -> dict[str, Any]:
        if kind == "string":
            return self._string(schema, path)
        if kind == "integer":
            return self._integer(schema, path)
        if kind == "number":
            for keyword in sorted(_NUMBER_KEYS & set(schema)):
                self.skip(path, keyword)
            return {"type": "number"}
        if kind == "array":
            return self._array(schema, path)
        if kind == "object":
            return self._object(schema, path)
        return {"type": kind}  # boolean, null

    def _string(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "string"}
        low, high = schema.get("minLength", 0), schema.get("maxLength")
        if high is not None and low > high:
            raise Inexpressible(f"{_where(path)}'s minLength is above its maxLength")
        if low:
            out["minLength"] = low
        if high is not None:
            out["maxLength"] = high
        if "pattern" in schema:
            # The converter's pattern rule ignores the length bounds: the bounds win, they close the string.
            pattern = None if "minLength" in out or "maxLength" in out else grammar_pattern(schema["pattern"])
            if pattern is None:
                self.skip(path, "pattern")
            else:
                out["pattern"] = pattern
        elif schema.get("format") in _GRAMMAR_FORMATS and len(out) == 1:
            out["format"] = schema["format"]
        return out

    def _integer(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        low, high = _integer_bounds(schema)
        step = schema.get("multipleOf")
        if low is not None and high is not None and high - low < MAX_INTEGER_CHOICES:
            values = [n for n in range(low, high + 1) if step is None or _multiple(n, step)]
            if not values:
                raise Inexpressible(f"no integer meets {_where(path)}'s bounds")
            return {"const": values[0]} if len(values) == 1 else {"enum": values}
        for keyword in sorted(_NUMBER_KEYS & set(schema)):
            self.skip(path, keyword)
        return {"type": "integer"}

    def _array(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        for keyword in _UNENFORCED_ARRAY:
            if schema.get(keyword, False) is not False:
                self.skip(path, keyword)
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        if high is not None and low > high:
            raise Inexpressible(f"{_where(path)}'s minItems is above its maxItems")
        items = schema.get("items")
        tuple_items = schema.get("prefixItems", items if isinstance(items, list) else None)
        if tuple_items is not None:
            # The converter writes a tuple as exactly its items, in order: right when that length is allowed.
            if low <= len(tuple_items) and (high is None or len(tuple_items) <= high):
                return {
                    "type": "array",
                    "prefixItems": [self.node(item, f"{path}/prefixItems/{at}") for at, item in enumerate(tuple_items)],
                }
            self.skip(path, "prefixItems")
            items = None
        if items is False:
            high = 0
        out: dict[str, Any] = {
            "type": "array",
            "items": ANY if items in (None, True, False) else self.node(items, f"{path}/items"),
        }
        if low:
            out["minItems"] = low
        if high is not None:
            out["maxItems"] = high
        return out

    def _object(self, schema: dict[str, Any], path: str) -> dict[str, Any]:
        for keyword in _UNENFORCED_OBJECT:
            if keyword in schema:
                self.skip(path, keyword)
        declared = schema.get("properties", {})
        required = list(dict.fromkeys(schema.get("required", [])))
        extra = schema.get("additionalProperties", True)
        if "properties" not in schema and not required and not isinstance(extra, dict) and extra is not False:
            return {"type": "object"}  # any object
        properties: dict[str, Any] = {}
        for name, value in declared.items():
            if value is False:
                if name in required:
                    raise Inexpressible(f"{_where(path)} requires {name!r}, which it forbids")
                continue
            properties[name] = self.node(value, f"{path}/{name}")
        for name in required:
            if name not in properties:
                if extra is False:
                    raise Inexpressible(f"{_where(path)} requires {name!r}, which it forbids")
                properties[name] = self.node(extra, f"{path}/{name}")
        out: dict[str, Any] = {"type": "object", "properties": properties, "required": required}
        # Without additionalProperties (or with true) the converter writes only the declared properties: narrower
        # than the schema, never wrong, and it keeps the model on the fields asked for.
        out["additionalProperties"] = (
            self.node(extra, f"{path}/additionalProperties") if isinstance(extra, dict) else False
        )
        return out

    def intersect(self, first: Any, second: Any, path: str) -> Any:
        """A schema whose values meet both, as far as keywords merge; what does not merge is listed unenforced."""
        if first is True or first == {}:
            return second
        if second is True or second == {}:
            return first
        if first is False or second is False:
            return False
        if not isinstance(first, dict) or not isinstance(second, dict):
            raise Inexpressible(f"{_where(path)} is not a schema")
        merged = dict(_constraints(first))
        for key, value in _constraints(second).items():
            if key not in merged or merged[key] == value:
                merged[key] = value
                continue
            mine = merged[key]
            if key == "type":
                kinds = _common_types(mine, value)
                if not kinds:
                    return False
                merged[key] = kinds
            elif key in ("maxLength", "maxItems", "maxProperties", "maximum") and _numbers(mine, value):
                merged[key] = min(mine, value)
            elif key in ("minLength", "minItems", "minProperties", "minimum") and _numbers(mine, value):
                merged[key] = max(mine, value)
            elif key == "exclusiveMaximum" and _numbers(mine, value):
                merged[key] = min(mine, value)
            elif key == "exclusiveMinimum" and _numbers(mine, value):
                merged[key] = max(mine, value)
            elif key == "required":
                merged[key] = list(dict.fromkeys([*mine, *value]))
            elif key == "enum":
                merged[key] = [item for item in mine if _json_in(item, value)]
            elif key == "const":
                return False
            elif key == "properties":
                properties = dict(mine)
                for name, sub in value.items():
                    properties[name] = self.intersect(mine[name], sub, f"{path}/{name}") if name in mine else sub
                merged[key] = properties
            elif (
                key in ("items", "additionalProperties") and not isinstance(mine, list) and not isinstance(value, list)
            ):
                merged[key] = self.intersect(mine, value, f"{path}/{key}")
            elif key == "allOf":
                merged[key] = [*mine, *value]
            elif key == "uniqueItems":
                merged[key] = bool(mine or value)
            else:
                self.skip(path, f"{key} (two that differ, from allOf, anyOf or $ref)")
        for one in (first, second):
            if one.get("additionalProperties") is False and isinstance(merged.get("properties"), dict):
                # A property only the other side declares is one this side forbids.
                allowed = set(one.get("properties", {}))
                merged["properties"] = {
                    name: sub if name in allowed else False for name, sub in merged["properties"].items()
                }
        return merged


def _where(path: str) -> str:
    return path.lstrip("/") or "the schema"


def _constraints(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema without annotations and definitions (which references reach through the root)."""
    ignored = {
        "title",
        "description",
        "default",
        "examples",
        "$comment",
        "$schema",
        "$id",
        "$anchor",
        "$dynamicAnchor",
        "$vocabulary",
        "$defs",
        "definitions",
        "readOnly",
        "writeOnly",
        "deprecated",
        "contentEncoding",
        "contentMediaType",
        "contentSchema",
    }
    return {key: value for key, value in schema.items() if key not in ignored}


def _types(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if isinstance(declared, str):
        return [declared]
    if isinstance(declared, list):
        return list(dict.fromkeys(declared))
    keys = set(schema)
    kinds = [
        kind
        for kind, words in (
            ("object", _OBJECT_KEYS),
            ("array", _ARRAY_KEYS),
            ("string", _STRING_KEYS),
            ("number", _NUMBER_KEYS),
        )
        if keys & words
    ]
    # A keyword of one type only says something of values of that type; taking it as the type narrows the schema.
    return kinds or list(_TYPES)


def _common_types(first: Any, second: Any) -> list[str]:
    mine = [first] if isinstance(first, str) else list(first)
    theirs = [second] if isinstance(second, str) else list(second)
    common = [kind for kind in mine if kind in theirs]
    if "integer" in mine and "number" in theirs or "number" in mine and "integer" in theirs:
        common.append("integer")
    return list(dict.fromkeys(common))


def _union_of(branches: list[dict[str, Any]]) -> dict[str, Any]:
    flat: list[dict[str, Any]] = []
    for branch in branches:
        for part in branch["anyOf"] if set(branch) == {"anyOf"} else [branch]:
            if part not in flat:
                flat.append(part)
    return flat[0] if len(flat) == 1 else {"anyOf": flat}


def _kinds(branch: dict[str, Any]) -> set[str] | None:
    if "type" in branch:
        return {"number"} if branch["type"] == "integer" else {branch["type"]}
    if "enum" in branch or "const" in branch:
        values = branch["enum"] if "enum" in branch else [branch["const"]]
        return {_kind_of(value) for value in values}
    if "anyOf" in branch:
        kinds: set[str] = set()
        for part in branch["anyOf"]:
            if (part_kinds := _kinds(part)) is None:
                return None
            kinds |= part_kinds
        return kinds
    return None  # a reference: unknown


def _kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    names: dict[type, str] = {str: "string", list: "array", dict: "object"}
    return names[type(value)]


def _disjoint(branches: list[dict[str, Any]]) -> bool:
    """Whether no value can meet two of the branches (as far as their types and values tell)."""
    for at, first in enumerate(branches):
        for second in branches[at + 1 :]:
            if all(("enum" in b or "const" in b) for b in (first, second)):
                values = first.get("enum", [first.get("const")])
                if any(_json_in(value, second.get("enum", [second.get("const")])) for value in values):
                    return False
                continue
            kinds, others = _kinds(first), _kinds(second)
            if kinds is None or others is None or kinds & others:
                return False
    return True


def _json_in(value: Any, values: list[Any]) -> bool:
    key = json.dumps(value, sort_keys=True)
    return any(json.dumps(other, sort_keys=True) == key for other in values)


def _numbers(*values: Any) -> bool:
    return all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values)


def _number(value: Any) -> TypeGuard[int | float]:
    return _numbers(value)


def _integer_bounds(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    low: int | None = None
    high: int | None = None
    minimum, maximum = schema.get("minimum"), schema.get("maximum")
    above, below = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if _number(minimum):
        low = math.ceil(minimum) if above is not True else math.floor(minimum) + 1  # draft 4: a boolean
    if _number(above):
        low = math.floor(above) + 1 if low is None else max(low, math.floor(above) + 1)
    if _number(maximum):
        high = math.floor(maximum) if below is not True else math.ceil(maximum) - 1
    if _number(below):
        high = math.ceil(below) - 1 if high is None else min(high, math.ceil(below) - 1)
    return low, high


def _multiple(number: int, step: Any) -> bool:
    if not _numbers(step) or step <= 0:
        return True
    quotient = number / step
    return abs(quotient - round(quotient)) < 1e-9


def _definition_name(ref: str, taken: dict[str, Any]) -> str:
    # Prefixed: the converter takes a reference's last part as its rule's name, and a name it already has
    # (a property's, or `string`) as that rule.
    base = "def-" + (re.sub(r"[^A-Za-z0-9-]+", "-", ref.rsplit("/", 1)[-1]).strip("-") or "root")
    name, at = base, 1
    while name in taken:
        name, at = f"{base}-{at}", at + 1
    return name


# -- patterns --------------------------------------------------------------------------------------

_CLASS_ESCAPES = {"d": "0-9", "w": "A-Za-z0-9_", "s": " "}  # \s: a space; a tab or line break would need escaping


def grammar_pattern(pattern: Any) -> str | None:
    """`pattern` rewritten for the converter's regular-expression reader, matching only text a JSON string
    may hold unescaped; None where that cannot be had (then the pattern goes unenforced by the grammar).

    The converter needs `^...$`, knows neither `\\d` nor `\\.`, and turns `.` and `[^...]` into rules that
    admit a quote, a backslash or a control character, any of which would end or break the JSON string.
    """
    if (
        not isinstance(pattern, str)
        or not (pattern.startswith("^") and pattern.endswith("$"))
        or pattern.endswith("\\$")
    ):
        return None
    try:
        re.compile(pattern)
    except re.error:
        return None
    body, out, at = pattern[1:-1], [], 0
    depth = 0
    atom = False  # whether what was just read may take a quantifier
    while at < len(body):
        char = body[at]
        if char == "\\":
            escaped = body[at + 1 : at + 2]
            if escaped in _CLASS_ESCAPES:
                out.append(f"[{_CLASS_ESCAPES[escaped]}]")
            elif escaped and not escaped.isalnum() and escaped not in '"\\' and escaped.isascii():
                out.append(f"[{_class_char(escaped)}]")
            else:
                return None  # \b, \n, \1, \\, \", \u...
            at, atom = at + 2, True
        elif char == "[":
            end, members = _char_class(body, at)
            if end is None:
                return None
            out.append(members)
            at, atom = end, True
        elif char == ".":
            out.append(JSON_STRING_CHAR)
            at, atom = at + 1, True
        elif char == "(":
            if body[at + 1 : at + 2] in ("?", ")", "|"):
                return None  # lookarounds, named and non-capturing groups; empty alternatives
            out.append(char)
            at, atom, depth = at + 1, False, depth + 1
        elif char == ")" or char == "|":
            if not out or out[-1] in ("(", "|") or (char == ")" and depth == 0):
                return None
            out.append(char)
            at, atom, depth = at + 1, char == ")", depth - (char == ")")
        elif char in "*+?{":
            quantifier = re.match(r"\{(\d+(?:,\d*)?|,\d+)\}|[*+?]", body[at:])
            if not atom or quantifier is None:
                return None
            out.append(quantifier[0])
            at += len(quantifier[0])
            at += body[at : at + 1] == "?"  # lazy: the same strings
            atom = False
        elif char in "^$]}" or char == '"' or ord(char) < 0x20:
            return None
        else:
            out.append(char)
            at, atom = at + 1, True
    if depth or (out and out[-1] == "|"):
        return None
    return "^" + "".join(out) + "$"


def _class_char(char: str) -> str:
    """`char` as a member of a character class, written the same for a regular expression and for GBNF
    (whose parser knows no `\\-` or `\\^`)."""
    return {"]": "\\]", "[": "\\[", "-": "\\x2D", "^": "\\x5E"}.get(char, char)


def _char_class(body: str, start: int) -> tuple[int | None, str]:
    """(index after the class, the class rewritten) for the class `[...]` at `start`, or (None, "")."""
    at = start + 1
    negated = body[at : at + 1] == "^"
    at += negated
    ranges: list[tuple[int, int]] = []
    written: list[str] = []
    while at < len(body) and (body[at] != "]" or at == start + 1 + negated):
        if body[at] == "\\":
            escaped = body[at + 1 : at + 2]
            if escaped in _CLASS_ESCAPES:
                written.append(_CLASS_ESCAPES[escaped])
                ranges.extend(_spans(_CLASS_ESCAPES[escaped]))
                at += 2
                continue
            if not escaped or escaped.isalnum() or escaped in '"\\' or not escaped.isascii():
                return None, ""
            low, at = escaped, at + 2
        else:
            low, at = body[at], at + 1
            if ord(low) < 0x20:
                return None, ""
        if body[at : at + 1] == "-" and at + 1 < len(body) and body[at + 1] != "]":
            high = body[at + 1]
            if high == "\\":
                escaped = body[at + 2 : at + 3]
                if not escaped or escaped.isalnum() or escaped in '"\\' or not escaped.isascii():
                    return None, ""
                high, at = escaped, at + 3
            else:
                at += 2
            if ord(high) < ord(low) or ord(high) < 0x20:
                return None, ""
            ranges.append((ord(low), ord(high)))
            written.append(f"{_class_char(low)}-{_class_char(high)}")
        else:
            ranges.append((ord(low), ord(low)))
            written.append(_class_char(low))
    if at >= len(body):
        return None, ""
    if negated:
        # Not those, and not what a JSON string cannot hold unescaped.
        return at + 1, "[^" + "".join(written) + '"\\\\\\x00-\\x1F]'
    if any(low <= code <= high for low, high in ranges for code in (0x22, 0x5C)) or any(
        low < 0x20 for low, _ in ranges
    ):
        return None, ""
    return at + 1, "[" + "".join(written) + "]"


def _spans(members: str) -> list[tuple[int, int]]:
    spans, at = [], 0
    while at < len(members):
        if at + 2 < len(members) and members[at + 1] == "-":
            spans.append((ord(members[at]), ord(members[at + 2])))
            at += 3
        else:
            spans.append((ord(members[at]), ord(members[at])))
            at += 1
    return spans
