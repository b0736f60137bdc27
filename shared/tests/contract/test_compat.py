"""The comparator on synthetic before/after schemas: it must catch every incompatible change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, create_model

from lobe.shared.catalog import json_schema

from .compat import Change, compare, schema_version_bumped


def incompatible(changes: list[Change]) -> list[str]:
    return [str(c) for c in changes if not c.compatible]


class Tokens(BaseModel):
    prompt_tokens: int = Field(ge=0)


class Before(BaseModel):
    request_id: str
    status: Literal["ok", "error", "cancelled"]
    usage: Tokens
    note: str | None = None
    tags: list[str] = []


BEFORE = json_schema(Before)


def after(**changes: Any) -> dict[str, Any]:
    """The schema of Before with the named fields changed: each a `(type, default or Field)` pair
    as pydantic's create_model takes it (`...`: required), or None to remove the field."""
    fields: dict[str, Any] = {name: (info.annotation, info) for name, info in Before.model_fields.items()}
    for name, spec in changes.items():
        if spec is None:
            del fields[name]
        else:
            fields[name] = spec
    return json_schema(create_model("After", **fields))


def test_identical_schemas_have_no_changes() -> None:
    assert compare("Usage", BEFORE, json_schema(Before)) == []


def test_removed_field_is_incompatible_and_named() -> None:
    assert incompatible(compare("Usage", BEFORE, after(request_id=None))) == [
        "Usage.request_id: field removed"
    ]


def test_changed_type_is_incompatible() -> None:
    assert incompatible(compare("Usage", BEFORE, after(request_id=(int, ...)))) == [
        "Usage.request_id: type changed (string -> integer)"
    ]


def test_nested_type_change_names_the_dotted_path() -> None:
    class Tokens2(BaseModel):
        prompt_tokens: float = Field(ge=0)

    found = incompatible(compare("Usage", BEFORE, after(usage=(Tokens2, ...))))
    assert found == ["Usage.usage.prompt_tokens: type changed (integer -> number)"]


def test_nullable_field_made_non_nullable_is_incompatible() -> None:
    found = incompatible(compare("Usage", BEFORE, after(note=(str, ""))))
    assert found == ["Usage.note: type changed (null | string -> string)"]


def test_list_item_type_change_is_incompatible() -> None:
    assert incompatible(compare("Usage", BEFORE, after(tags=(list[int], [])))) == [
        "Usage.tags[]: type changed (string -> integer)"
    ]


def test_new_required_field_is_incompatible() -> None:
    assert incompatible(compare("Usage", BEFORE, after(deployment=(str, ...)))) == [
        "Usage.deployment: new required field"
    ]


def test_field_made_required_is_incompatible() -> None:
    assert incompatible(compare("Usage", BEFORE, after(note=(str | None, ...)))) == [
        "Usage.note: field made required"
    ]


def test_removed_enum_value_is_incompatible() -> None:
    assert incompatible(compare("Usage", BEFORE, after(status=(Literal["ok", "error"], ...)))) == [
        'Usage.status: enum value removed ("cancelled")'
    ]


def test_tightened_constraint_is_incompatible() -> None:
    found = incompatible(compare("Usage", BEFORE, after(request_id=(str, Field(max_length=64)))))
    assert found == ["Usage.request_id: constraint tightened (maxLength None -> 64)"]


class A(BaseModel):
    type: Literal["a"] = "a"


class B(BaseModel):
    type: Literal["b"] = "b"


class C(BaseModel):
    type: Literal["c"] = "c"


def test_removed_union_member_is_incompatible() -> None:
    abc = json_schema(Annotated[A | B | C, Field(discriminator="type")])
    ab = json_schema(Annotated[A | B, Field(discriminator="type")])
    assert incompatible(compare("Frame", abc, ab)) == ["Frame: union member removed ('c')"]


def test_new_optional_field_is_compatible() -> None:
    changes = compare("Usage", BEFORE, after(cached_tokens=(int, 0)))
    assert [str(c) for c in changes] == ["Usage.cached_tokens: new optional field"]
    assert all(c.compatible for c in changes)


def test_added_enum_value_is_compatible() -> None:
    changes = compare("Usage", BEFORE, after(status=(Literal["ok", "error", "cancelled", "cache_hit"], ...)))
    assert [(str(c), c.compatible) for c in changes] == [
        ('Usage.status: enum value added ("cache_hit")', True)
    ]


def test_added_union_member_is_compatible() -> None:
    ab = json_schema(Annotated[A | B, Field(discriminator="type")])
    abc = json_schema(Annotated[A | B | C, Field(discriminator="type")])
    assert [str(c) for c in compare("Frame", ab, abc)] == ["Frame: union member added ('c')"]


def test_description_edit_is_compatible() -> None:
    changes = compare("Usage", BEFORE, after(request_id=(str, Field(description="The chat request."))))
    assert [(c.path, c.kind, c.compatible) for c in changes] == [("request_id", "description changed", True)]


def test_relaxed_constraint_is_compatible() -> None:
    class Tokens2(BaseModel):
        prompt_tokens: int

    changes = compare("Usage", BEFORE, after(usage=(Tokens2, ...)))
    assert incompatible(changes) == []
    assert [c.kind for c in changes] == ["constraint relaxed"]


def test_schema_version_bump_is_detected() -> None:
    class V1(BaseModel):
        schema_version: int = 1

    class V2(BaseModel):
        schema_version: int = 2

    assert schema_version_bumped(json_schema(V1), json_schema(V2))
    assert not schema_version_bumped(json_schema(V2), json_schema(V2))
