"""Compare two JSON Schemas of one payload and classify every difference for the event contract.

The question is always: can a message valid under one schema meet a reader built for the other
(a consumer not yet upgraded, or a message JetStream retained from before the change)? So any
change of a field's type is incompatible, in either direction, as are a removed field, a new
required field, a field made required, a removed enum value and a tightened constraint. A new
optional field, an added enum value or union member, and edits to descriptions are compatible.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

Schema = dict[str, Any]

# Bound keywords, and whether a larger value is stricter.
_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems")


@dataclass(frozen=True)
class Change:
    model: str
    path: str
    kind: str
    compatible: bool
    detail: str = ""

    def __str__(self) -> str:
        where = f"{self.model}.{self.path}" if self.path else self.model
        return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


def compare(model: str, before: Schema, after: Schema) -> list[Change]:
    """Every difference between two schemas of `model`, incompatible ones first."""
    walker = _Walker(model, before, after)
    walker.node(before, after, "")
    return sorted(walker.changes, key=lambda c: (c.compatible, c.path, c.kind))


def schema_version_bumped(before: Schema, after: Schema) -> bool:
    def version(schema: Schema) -> int:
        return int(schema.get("properties", {}).get("schema_version", {}).get("default", 1))

    return version(after) > version(before)


class _Walker:
    def __init__(self, model: str, before_root: Schema, after_root: Schema) -> None:
        self.model = model
        self.roots = (before_root, after_root)
        self.changes: list[Change] = []
        self._seen: set[tuple[str, str, str]] = set()  # recursive models end the walk

    def add(self, path: str, kind: str, compatible: bool, detail: str = "") -> None:
        self.changes.append(Change(self.model, path, kind, compatible, detail))

    def node(self, before: Schema, after: Schema, path: str) -> None:
        key = (json.dumps(before, sort_keys=True), json.dumps(after, sort_keys=True), path)
        if key in self._seen:
            return
        self._seen.add(key)
        before, after = self._resolve(before, 0), self._resolve(after, 1)
        if before.get("description") != after.get("description"):
            self.add(path, "description changed", True)
        if "default" in before and before.get("default") != after.get("default"):
            self.add(path, "default changed", True, f"{before.get('default')!r} -> {after.get('default')!r}")
        b_branches, a_branches = _branches(before), _branches(after)
        if len(b_branches) > 1 or len(a_branches) > 1:
            self._union(before, after, b_branches, a_branches, path)
        else:
            self._single(before, after, path)

    def _resolve(self, node: Schema, side: int) -> Schema:
        # pydantic wraps a $ref in allOf when it adds a description beside it
        if len(node.get("allOf", [])) == 1 and "$ref" in node["allOf"][0]:
            node = {**node["allOf"][0], **{k: v for k, v in node.items() if k != "allOf"}}
        while "$ref" in node:
            name = node["$ref"].rsplit("/", 1)[-1]
            target = self.roots[side].get("$defs", {}).get(name)
            if target is None:
                raise ValueError(f"{self.model}: unresolvable $ref {node['$ref']}")
            extra = {k: v for k, v in node.items() if k != "$ref"}
            node = {**target, **extra}
        return node

    def _union(self, before: Schema, after: Schema, b: list[Schema], a: list[Schema], path: str) -> None:
        b_tags, a_tags = self._tags(before, b, 0), self._tags(after, a, 1)
        if b_tags is not None and a_tags is not None:
            for tag in b_tags.keys() - a_tags.keys():
                self.add(path, "union member removed", False, f"{tag!r}")
            for tag in a_tags.keys() - b_tags.keys():
                self.add(path, "union member added", True, f"{tag!r}")
            for tag in sorted(b_tags.keys() & a_tags.keys()):
                self.node(b_tags[tag], a_tags[tag], path)
            return
        b_sigs = {self._signature(x, 0): x for x in b}
        a_sigs = {self._signature(x, 1): x for x in a}
        if b_sigs.keys() != a_sigs.keys():
            self.add(path, "type changed", False, f"{_join(b_sigs)} -> {_join(a_sigs)}")
            return
        for sig in sorted(b_sigs):
            self.node(b_sigs[sig], a_sigs[sig], path)

    def _tags(self, node: Schema, branches: list[Schema], side: int) -> dict[str, Schema] | None:
        """A discriminated union's members by tag, or None for a plain union."""
        prop = node.get("discriminator", {}).get("propertyName")
        if prop is None:
            return None
        tags: dict[str, Schema] = {}
        for branch in branches:
            resolved = self._resolve(branch, side)
            tag = resolved.get("properties", {}).get(prop, {}).get("const")
            if tag is None:
                return None
            tags[str(tag)] = branch
        return tags

    def _signature(self, node: Schema, side: int) -> str:
        resolved = self._resolve(node, side)
        kind = _type(resolved)
        if kind == "object" and "properties" in resolved:
            return f"object:{resolved.get('title', '?')}"
        if kind == "array":
            return f"array[{self._signature(resolved.get('items', {}), side)}]"
        return kind

    def _single(self, before: Schema, after: Schema, path: str) -> None:
        b_type, a_type = _type(before), _type(after)
        if b_type != a_type or before.get("format") != after.get("format"):
            self.add(path, "type changed", False, f"{_describe(before)} -> {_describe(after)}")
            return
        self._enum(before, after, path)
        self._bounds(before, after, path)
        if b_type == "object":
            self._object(before, after, path)
        elif b_type == "array":
            self.node(before.get("items", {}), after.get("items", {}), f"{path}[]")

    def _enum(self, before: Schema, after: Schema, path: str) -> None:
        b_values, a_values = _enum_values(before), _enum_values(after)
        if b_values is None and a_values is not None:
            self.add(path, "values restricted to an enum", False, ", ".join(sorted(a_values)))
            return
        if b_values is None:
            return
        if a_values is None:
            self.add(path, "enum lifted", True)
            return
        for value in sorted(b_values - a_values):
            self.add(path, "enum value removed", False, value)
        for value in sorted(a_values - b_values):
            self.add(path, "enum value added", True, value)

    def _bounds(self, before: Schema, after: Schema, path: str) -> None:
        for key in (*_LOWER_BOUNDS, *_UPPER_BOUNDS):
            b, a = before.get(key), after.get(key)
            if a == b:
                continue
            stricter = a is not None and (b is None or (a > b if key in _LOWER_BOUNDS else a < b))
            self.add(
                path,
                "constraint tightened" if stricter else "constraint relaxed",
                not stricter,
                f"{key} {b} -> {a}",
            )
        if before.get("pattern") != after.get("pattern"):
            self.add(
                path,
                "pattern changed",
                after.get("pattern") is None,
                f"{before.get('pattern')!r} -> {after.get('pattern')!r}",
            )

    def _object(self, before: Schema, after: Schema, path: str) -> None:
        b_props, a_props = before.get("properties", {}), after.get("properties", {})
        b_req, a_req = set(before.get("required", [])), set(after.get("required", []))
        prefix = f"{path}." if path else ""
        for name in b_props:
            field = prefix + name
            if name not in a_props:
                self.add(field, "field removed", False)
                continue
            if name in a_req and name not in b_req:
                self.add(field, "field made required", False)
            elif name in b_req and name not in a_req:
                # pydantic producers still serialize the default, so old readers keep getting it
                self.add(field, "field made optional", True)
            self.node(b_props[name], a_props[name], field)
        for name in a_props.keys() - b_props.keys():
            required = name in a_req
            self.add(prefix + name, "new required field" if required else "new optional field", not required)
        b_extra, a_extra = before.get("additionalProperties"), after.get("additionalProperties")
        if isinstance(b_extra, dict) and isinstance(a_extra, dict):
            self.node(b_extra, a_extra, f"{path}{{}}")


def _branches(node: Schema) -> list[Schema]:
    for key in ("oneOf", "anyOf"):
        if key in node:
            return list(node[key])
    return [node]


def _type(node: Schema) -> str:
    kind = node.get("type")
    if isinstance(kind, list):
        return "|".join(sorted(kind))
    if kind is None and "const" in node:
        return type(node["const"]).__name__
    return str(kind) if kind is not None else "any"


def _enum_values(node: Schema) -> set[str] | None:
    if "enum" in node:
        return {json.dumps(v) for v in node["enum"]}
    if "const" in node:
        return {json.dumps(node["const"])}
    return None


def _describe(node: Schema) -> str:
    return _type(node) + (f" ({node['format']})" if "format" in node else "")


def _join(signatures: dict[str, Schema]) -> str:
    return " | ".join(sorted(signatures))
