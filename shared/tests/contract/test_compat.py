"""The comparator on synthetic before/after schemas: it must catch every incompatible change."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from .compat import Change, compare, schema_version_bumped


def schema(model: Any) -> dict[str, Any]:
    result: dict[str, Any] = TypeAdapter(model).json_schema(mode="validation")
    return result


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


def test_identical_schemas_have_no_changes() -> None:
    assert compare("Usage", schema(Before), schema(Before)) == []


def test_removed_field_is_incompatible_and_named() -> None:
    class After(BaseModel):
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        "Usage.request_id: field removed"
    ]


def test_changed_type_is_incompatible() -> None:
    class After(BaseModel):
        request_id: int
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        "Usage.request_id: type changed (string -> integer)"
    ]


def test_nested_type_change_names_the_dotted_path() -> None:
    class Tokens2(BaseModel):
        prompt_tokens: float = Field(ge=0)

    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens2
        note: str | None = None
        tags: list[str] = []

    found = incompatible(compare("Usage", schema(Before), schema(After)))
    assert found == ["Usage.usage.prompt_tokens: type changed (integer -> number)"]


def test_nullable_field_made_non_nullable_is_incompatible() -> None:
    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str = ""
        tags: list[str] = []

    found = incompatible(compare("Usage", schema(Before), schema(After)))
    assert found == ["Usage.note: type changed (null | string -> string)"]


def test_list_item_type_change_is_incompatible() -> None:
    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None = None
        tags: list[int] = []

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        "Usage.tags[]: type changed (string -> integer)"
    ]


def test_new_required_field_is_incompatible() -> None:
    class After(Before):
        deployment: str

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        "Usage.deployment: new required field"
    ]


def test_field_made_required_is_incompatible() -> None:
    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None
        tags: list[str] = []

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        "Usage.note: field made required"
    ]


def test_removed_enum_value_is_incompatible() -> None:
    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    assert incompatible(compare("Usage", schema(Before), schema(After))) == [
        'Usage.status: enum value removed ("cancelled")'
    ]


def test_tightened_constraint_is_incompatible() -> None:
    class After(BaseModel):
        request_id: str = Field(max_length=64)
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    found = incompatible(compare("Usage", schema(Before), schema(After)))
    assert found == ["Usage.request_id: constraint tightened (maxLength None -> 64)"]


class A(BaseModel):
    type: Literal["a"] = "a"


class B(BaseModel):
    type: Literal["b"] = "b"


class C(BaseModel):
    type: Literal["c"] = "c"


def test_removed_union_member_is_incompatible() -> None:
    before = schema(Annotated[A | B | C, Field(discriminator="type")])
    after = schema(Annotated[A | B, Field(discriminator="type")])
    assert incompatible(compare("Frame", before, after)) == ["Frame: union member removed ('c')"]


def test_new_optional_field_is_compatible() -> None:
    class After(Before):
        cached_tokens: int = 0

    changes = compare("Usage", schema(Before), schema(After))
    assert [str(c) for c in changes] == ["Usage.cached_tokens: new optional field"]
    assert all(c.compatible for c in changes)


def test_added_enum_value_is_compatible() -> None:
    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled", "cache_hit"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    changes = compare("Usage", schema(Before), schema(After))
    assert [(str(c), c.compatible) for c in changes] == [
        ('Usage.status: enum value added ("cache_hit")', True)
    ]


def test_added_union_member_is_compatible() -> None:
    before = schema(Annotated[A | B, Field(discriminator="type")])
    after = schema(Annotated[A | B | C, Field(discriminator="type")])
    assert [str(c) for c in compare("Frame", before, after)] == ["Frame: union member added ('c')"]


def test_description_edit_is_compatible() -> None:
    class After(BaseModel):
        request_id: str = Field(description="The chat request.")
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens
        note: str | None = None
        tags: list[str] = []

    changes = compare("Usage", schema(Before), schema(After))
    assert [(c.path, c.kind, c.compatible) for c in changes] == [("request_id", "description changed", True)]


def test_relaxed_constraint_is_compatible() -> None:
    class Tokens2(BaseModel):
        prompt_tokens: int

    class After(BaseModel):
        request_id: str
        status: Literal["ok", "error", "cancelled"]
        usage: Tokens2
        note: str | None = None
        tags: list[str] = []

    changes = compare("Usage", schema(Before), schema(After))
    assert incompatible(changes) == []
    assert [c.kind for c in changes] == ["constraint relaxed"]


def test_schema_version_bump_is_detected() -> None:
    class V1(BaseModel):
        schema_version: int = 1

    class V2(BaseModel):
        schema_version: int = 2

    assert schema_version_bumped(schema(V1), schema(V2))
    assert not schema_version_bumped(schema(V2), schema(V2))
