"""Property tests of every payload of the event catalog, driven by its published JSON Schema:
any valid payload survives encode and decode unchanged; a payload with one field made wrong or
missing is rejected, and the error names that field (what a dead letter's reason carries)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from lobe.shared.catalog import contract_models, json_schema
from lobe.shared.events.usage import UsageRecorded

from .schema_strategies import _resolve, documents, wrong_value

MODELS = contract_models()
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def adapter(name: str) -> TypeAdapter[Any]:
    return TypeAdapter(MODELS[name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_any_valid_payload_round_trips_through_its_json(name: str) -> None:
    types = adapter(name)

    @PROPERTY_SETTINGS
    @given(documents(json_schema(MODELS[name])))
    def round_trips(document: Any) -> None:
        try:
            value = types.validate_python(document)
        except ValidationError:
            # The schema cannot say everything (a cross-field rule); such documents are not valid.
            assume(False)
        assert types.validate_json(types.dump_json(value)) == value

    round_trips()


def mutable_fields(name: str) -> list[tuple[str, bool]]:
    """(field, required) of each object payload's top-level fields that some value fails."""
    schema = json_schema(MODELS[name])
    root = _resolve(schema, schema)
    if "properties" not in root:
        return []
    required = set(root.get("required", ()))
    return [
        (field, field in required)
        for field, node in root["properties"].items()
        if field in required or wrong_value(node, schema) is not None
    ]


@pytest.mark.parametrize("name", sorted(n for n in MODELS if mutable_fields(n)))
def test_a_payload_with_a_field_made_wrong_or_missing_is_rejected_naming_that_field(name: str) -> None:
    schema = json_schema(MODELS[name])
    fields = mutable_fields(name)
    types = adapter(name)

    @PROPERTY_SETTINGS
    @given(documents(schema), st.sampled_from(fields), st.booleans())
    def rejected(document: dict[str, Any], field: tuple[str, bool], drop: bool) -> None:
        try:
            types.validate_python(document)
        except ValidationError:
            assume(False)
        key, required = field
        mutated = dict(document)
        if drop and required:
            del mutated[key]
        else:
            bad = wrong_value(_resolve(schema, schema)["properties"][key], schema)
            assume(bad is not None)
            mutated[key] = bad
        with pytest.raises(ValidationError) as caught:
            types.validate_python(mutated)
        named = {str(error["loc"][0]) for error in caught.value.errors() if error["loc"]}
        assert key in named, f"{name}: mutating {key!r} was reported at {named}"

    rejected()


def test_an_event_refuses_a_number_json_cannot_carry() -> None:
    """inf and NaN would be written as null, which no consumer reads back: refused when built."""
    usage = {"prompt_tokens": 1, "completion_tokens": 1}
    event = {"request_id": "r", "user_id": "u", "provider": "p", "deployment": "d", "model": "m"}
    with pytest.raises(ValidationError, match="duration_ms"):
        UsageRecorded.model_validate({**event, "usage": usage, "status": "ok", "duration_ms": float("inf")})
