"""What a client can do with a body's types and its Content-Type: a JSON route reads JSON only
(415 for anything else, as an API key holder or a script would send it), and reads it strictly,
as OpenAI does: no string taken for a boolean or a number (`"stream": "yes"` was a stream), no
number for a boolean. Each refusal is an OpenAI error with no bus traffic; every request the
openai SDK builds (tools, images, response_format, integer temperatures) is still admitted."""

from __future__ import annotations

import json
from typing import Any

import openai
import pytest

from lobe.shared.events.billing import BUDGET_RESERVE

from ..e2e.conftest import API_KEY
from .conftest import BODY, CHAT, Browser

BEARER = {"Authorization": f"Bearer {API_KEY}"}
MESSAGES = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"stream": "yes"}, "stream"),
        ({"stream": "true"}, "stream"),
        ({"stream": 1}, "stream"),
        ({"temperature": "0.5"}, "temperature"),
        ({"max_tokens": "5"}, "max_tokens"),
        ({"max_tokens": 5.0}, "max_tokens"),
        ({"seed": True}, "seed"),
        ({"stream_options": {"include_usage": "true"}}, "stream_options.include_usage"),
        ({"parallel_tool_calls": "false"}, "parallel_tool_calls"),
    ],
)
async def test_no_coercion_of_strings_or_numbers(
    browser: Browser, fields: dict[str, Any], param: str
) -> None:
    body = json.dumps({"model": "mock", "messages": MESSAGES, **fields})
    status, answer = await browser.send("POST", CHAT, {**BEARER, "Content-Type": "application/json"}, body)
    assert status == 400, answer
    error = answer["error"]
    assert (error["type"], error["code"], error["param"]) == (  # type: ignore[index]
        "invalid_request_error",
        "invalid_request",
        param,
    )
    assert browser.bus.subjects == []


async def test_every_request_the_openai_sdk_builds_is_still_admitted(browser: Browser) -> None:
    client = openai.AsyncOpenAI(base_url=browser.gateway.url + "/v1", api_key=API_KEY, max_retries=0)
    tool: Any = {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look a word up",
            "parameters": {
                "type": "object",
                "properties": {"word": {"type": "string"}},
                "required": ["word"],
            },
            "strict": True,
        },
    }
    messages: Any = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0K", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"word":"x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "a letter"},
    ]
    schema: Any = {"type": "object", "properties": {"answer": {"type": "string"}}}
    with pytest.raises(openai.InternalServerError) as caught:  # admitted; no billing answers the hold
        await client.chat.completions.create(
            model="mock",
            messages=messages,
            tools=[tool],
            tool_choice="auto",
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "a", "schema": schema, "strict": True},
            },
            temperature=1,  # an integer where a float is expected: JSON has one number type
            top_p=1,
            max_tokens=50,
            seed=7,
            stop=["\n\n"],
            stream_options=None,
            metadata={"team": "x"},
            user="u-1",
        )
    assert caught.value.status_code == 503
    await browser.bus.wait_for(BUDGET_RESERVE)


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "text/json",
    ],
)
async def test_a_json_route_refuses_other_content_types_with_415(
    browser: Browser, content_type: str | None
) -> None:
    headers = {**BEARER, **({"Content-Type": content_type} if content_type else {})}
    async with browser.http.post(
        browser.gateway.url + CHAT, data=BODY.encode(), headers=headers, skip_auto_headers=["Content-Type"]
    ) as r:
        status, answer = r.status, await r.json(content_type=None)
    assert status == 415, answer
    assert (answer["error"]["type"], answer["error"]["code"]) == (
        "invalid_request_error",
        "unsupported_media_type",
    )
    assert browser.bus.subjects == []


async def test_admin_json_routes_refuse_other_content_types_too(browser: Browser) -> None:
    admin = {"Authorization": f"Bearer {browser.admin}", "Content-Type": "text/plain"}
    status, answer = await browser.send("POST", "/v1/admin/cache/invalidate", admin, "{}")
    assert (status, answer["error"]["code"]) == (415, "unsupported_media_type")  # type: ignore[index]
    assert browser.bus.subjects == []  # no invalidation went out
    status, answer = await browser.send(
        "POST",
        "/v1/admin/cache/invalidate",
        {**admin, "Content-Type": "application/json; charset=UTF-8"},
        "{}",
    )
    assert status == 200, answer
