"""Hypothesis strategies for JSON documents valid against a payload's published JSON Schema (the
subset pydantic writes for the event catalog: objects, arrays, unions, enums, bounds, patterns,
uuid and date-time), and the mutations that no such document survives."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

Schema = dict[str, Any]
TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
JSON_TYPES = ("object", "array", "string", "integer", "number", "boolean", "null")


def documents(root: Schema) -> st.SearchStrategy[Any]:
    return _strategy(root, root, depth=0)


def _resolve(node: Schema, root: Schema) -> Schema:
    while "$ref" in node:
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def _strategy(node: Schema, root: Schema, depth: int) -> st.SearchStrategy[Any]:
    node = _resolve(node, root)
    if "const" in node:
        return st.just(node["const"])
    if "enum" in node:
        return st.sampled_from(node["enum"])
    for union in ("anyOf", "oneOf"):
        if union in node:
            return st.one_of(*(_strategy(branch, root, depth) for branch in node[union]))
    kind = node.get("type")
    if kind is None:  # Any: a small JSON value
        return st.none() | st.booleans() | st.integers(-1000, 1000) | TEXT
    if kind == "object":
        return _object(node, root, depth)
    if kind == "array":
        if depth > 3:
            return st.just([]) if node.get("minItems", 0) == 0 else st.nothing()
        items = _strategy(node.get("items", {}), root, depth + 1)
        return st.lists(items, min_size=node.get("minItems", 0), max_size=min(node.get("maxItems", 3), 3))
    if kind == "string":
        return _string(node)
    if kind == "integer":
        return st.integers(node.get("minimum"), node.get("maximum"))
    if kind == "number":
        return st.floats(node.get("minimum"), node.get("maximum"), allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    raise NotImplementedError(f"schema type {kind!r}")


def _object(node: Schema, root: Schema, depth: int) -> st.SearchStrategy[dict[str, Any]]:
    properties = node.get("properties", {})
    if not properties:  # a free-form object (dict[str, Any] / dict[str, str])
        extra = node.get("additionalProperties")
        values = _strategy(extra if isinstance(extra, dict) else {}, root, depth + 1)
        return st.dictionaries(TEXT, values, max_size=2)
    required = set(node.get("required", ()))
    fixed = {name: _strategy(s, root, depth + 1) for name, s in properties.items() if name in required}
    optional = {name: _strategy(s, root, depth + 1) for name, s in properties.items() if name not in required}
    return st.fixed_dictionaries(fixed, optional=optional)


def _string(node: Schema) -> st.SearchStrategy[str]:
    form = node.get("format")
    if form == "uuid":
        return st.uuids().map(str)
    if form == "date-time":
        moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1))
        return moments.map(lambda d: d.replace(tzinfo=UTC).isoformat())
    low, high = node.get("minLength", 0), node.get("maxLength")
    if "pattern" in node:
        fits = st.from_regex(node["pattern"], fullmatch=True)
        return fits.filter(lambda s: low <= len(s) <= (high if high is not None else len(s)))
    return st.text(st.characters(codec="utf-8"), min_size=low, max_size=min(high or 40, 40))


def accepted_types(node: Schema, root: Schema) -> set[str]:
    """The JSON types a field's schema accepts (Any: all of them)."""
    node = _resolve(node, root)
    if "const" in node or "enum" in node:
        values = [node["const"]] if "const" in node else node["enum"]
        return {_type_of(v) for v in values}
    branches = node.get("anyOf") or node.get("oneOf")
    if branches:
        return set().union(*(accepted_types(b, root) for b in branches))
    kind = node.get("type")
    if kind is None:
        return set(JSON_TYPES)
    if kind == "number":
        return {"number", "integer"}
    if kind == "string" and node.get("format") == "date-time":
        return {"string", "integer", "number"}  # pydantic also reads a timestamp
    return {kind}


# A value of each JSON type that no lax coercion turns into another type.
WRONG = {
    "object": {"mutated": [1]},
    "array": [{"mutated": 1}],
    "string": "mutated",
}


def wrong_value(node: Schema, root: Schema) -> Any | None:
    """A value the field's schema cannot accept, or None when it accepts anything we have."""
    accepted = accepted_types(node, root)
    for kind, value in WRONG.items():
        if kind not in accepted:
            return value
    return None


def _type_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"
