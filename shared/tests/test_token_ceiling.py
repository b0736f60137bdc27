"""The hold's prompt bound: every byte a prompt sends counts, images by their detail's ceiling."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.token_ceiling import IMAGE_TOKENS, prompt_token_ceiling
from lobe.shared.tokens import estimate_prompt_tokens

BIG = "é" * 10_000  # 20,000 UTF-8 bytes
BASE: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def ceiling(**body: Any) -> int:
    return prompt_token_ceiling(ChatCompletionRequest.model_validate({**BASE, **body}))


def image(detail: str | None) -> dict[str, Any]:
    url: dict[str, Any] = {"url": "data:image/png;base64," + "A" * 100_000}
    if detail is not None:
        url["detail"] = detail
    return {"type": "image_url", "image_url": url}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"messages": [{"role": "user", "content": BIG}]}, id="message text"),
        pytest.param(
            {"messages": [{"role": "user", "content": [{"type": "text", "text": BIG}]}]}, id="text part"
        ),
        pytest.param({"messages": [{"role": "user", "content": "hi", "name": "n" * 20_000}]}, id="name"),
        pytest.param(
            {
                "messages": [
                    {
                        "role": "assistant",
                        "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": BIG}}],
                    }
                ]
            },
            id="tool-call arguments",
        ),
        pytest.param({"messages": [{"role": "tool", "tool_call_id": "c", "content": BIG}]}, id="tool result"),
        pytest.param(
            {"tools": [{"type": "function", "function": {"name": "f", "description": BIG}}]},
            id="tool definition",
        ),
        pytest.param(
            {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": "s", "schema": {"description": BIG}},
                }
            },
            id="response_format schema",
        ),
    ],
)
def test_every_byte_of_each_prompt_part_counts_as_a_token(body: dict[str, Any]) -> None:
    assert ceiling(**body) >= 20_000


@pytest.mark.parametrize(("detail", "tokens"), [("low", 85), ("high", 1600), ("auto", 1600), (None, 1600)])
def test_an_image_counts_its_details_ceiling_never_its_urls_bytes(detail: str | None, tokens: int) -> None:
    with_image = ceiling(messages=[{"role": "user", "content": [image(detail)]}])
    assert IMAGE_TOKENS[detail] == tokens
    assert tokens <= with_image < tokens + 200  # the 100 KB base64 URL is not counted as text


@given(st.lists(st.text(max_size=200), min_size=1, max_size=5))
def test_the_ceiling_is_never_below_the_estimate_nor_below_the_texts_bytes(texts: list[str]) -> None:
    body = ChatCompletionRequest.model_validate(
        {**BASE, "messages": [{"role": "user", "content": text} for text in texts]}
    )
    assert prompt_token_ceiling(body) >= max(
        estimate_prompt_tokens(body), sum(len(t.encode()) for t in texts)
    )
