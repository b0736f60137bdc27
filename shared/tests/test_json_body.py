"""Strict JSON at the edge: each class of body that once ended in a 5xx is a 400 naming where it
is, and no input at all raises anything but that 400."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lobe.shared.json_body import INT_LIMIT, MAX_DEPTH, parse_json_object
from lobe.shared.openai_errors import ApiError

MESSAGE = '{"model": "m", "messages": [{"role": "user", "content": %s}]}'


def refused(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_json_object(raw)
    error = caught.value
    assert error.status == 400
    json.dumps(error.body())  # any error can be encoded
    return error


@pytest.mark.parametrize(
    ("body", "code", "param"),
    [
        (MESSAGE % '"\\ud800"', "invalid_unicode", "messages.0.content"),  # a lone surrogate
        (MESSAGE % '"ok \\udfff tail"', "invalid_unicode", "messages.0.content"),
        ('{"metadata": {"\\ud800": "x"}}', "invalid_unicode", "metadata"),  # in a key: its object
        ('{"a": ' + "[" * 5000 + "]" * 5000 + "}", "invalid_json", None),  # past the interpreter's limit
        ('{"a": ' + "[" * 200 + "]" * 200 + "}", "invalid_json", "a" + ".0" * MAX_DEPTH),
        ('{"max_tokens": 1000000000000000000000000000000}', "invalid_value", "max_tokens"),
        (f'{{"seed": {-(INT_LIMIT + 1)}}}', "invalid_value", "seed"),
        ('{"temperature": NaN}', "invalid_json", None),
        ('{"temperature": -Infinity}', "invalid_json", None),
        ('{"temperature": 1e400}', "invalid_value", "temperature"),  # read as inf
        ("[1, 2]", "invalid_json", None),
        ("{", "invalid_json", None),
    ],
)
def test_each_class_of_bad_body_is_a_400_naming_where_it_is(body: str, code: str, param: str | None) -> None:
    error = refused(body.encode())
    assert (error.code, error.param) == (code, param)


def test_bytes_that_are_not_utf8_are_refused() -> None:
    assert refused(b'{"a": "\xff"}').code == "invalid_json"


def test_well_formed_bodies_pass_unchanged_including_surrogate_pairs_and_64_levels() -> None:
    body = {
        "emoji": "\U0001f600 ok",
        "n": INT_LIMIT,
        "deep": json.loads("[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)),
    }
    raw = json.dumps(body).encode()  # json writes the emoji as a surrogate-pair escape
    assert parse_json_object(raw) == body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=40,
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()))
def test_no_body_raises_anything_but_a_400(raw: bytes) -> None:
    outcome: Any
    try:
        outcome = parse_json_object(raw)
    except ApiError as error:
        outcome = error
    if isinstance(outcome, ApiError):
        assert outcome.status == 400
        json.dumps(outcome.body())
        return
    data = outcome
    assert isinstance(data, dict)
    json.dumps(data, allow_nan=False).encode("utf-8")  # what passes can be encoded again, strictly
