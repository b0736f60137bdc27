"""Every Anthropic transcript replayed in random small chunks must assemble to the sidecar totals."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import fixture_files
from lobe.shared.events.chat import TokenUsage

from .support import replay

FINISH = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls"}


def expected_usage(raw: dict[str, Any]) -> TokenUsage:
    cache_read = raw.get("cache_read_input_tokens", 0)
    return TokenUsage(
        prompt_tokens=raw["input_tokens"] + cache_read + raw.get("cache_creation_input_tokens", 0),
        completion_tokens=raw["output_tokens"],
        cached_tokens=cache_read,
    )


def expected_tool_calls(expected: dict[str, Any]) -> list[tuple[Any, ...]]:
    if "content_blocks" in expected:
        blocks = [b for b in expected["content_blocks"] if b["type"] == "tool_use"]
        return [(b["id"], b["name"], b["input_parsed"]) for b in blocks]
    return [(b["id"], b["name"], b["input"]) for b in expected.get("content", []) if b["type"] == "tool_use"]


@pytest.mark.parametrize("name", fixture_files("anthropic"))
@pytest.mark.parametrize("seed", [1, 2])
async def test_transcript_assembles_to_the_sidecar_totals(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    expected, got = await replay(upstream, session, name, "anthropic", seed=seed)

    if "error_type" in expected:  # an HTTP error body
        assert got.error is not None
        assert got.error.status == expected["status"]
        assert got.error.code == expected["error_type"]
        assert got.error.retryable == (expected["status"] == 429)
        assert got.finished is None
        return
    assert got.text == expected.get("text", "")
    assert got.reasoning == ""
    assert [(c["id"], c["name"], c["parsed"]) for c in got.tool_calls()] == expected_tool_calls(expected)
    if "content_blocks" in expected:
        joined = [b["input_json"] for b in expected["content_blocks"] if b["type"] == "tool_use"]
        assert [c["arguments"] for c in got.tool_calls()] == joined
    if "error" in expected:  # error event mid-stream: an error after output, no finish invented
        assert got.finished is None
        assert got.error is not None
        assert (got.error.code, got.error.message) == (
            expected["error"]["type"],
            expected["error"]["message"],
        )
        assert (got.error.status, got.error.retryable, got.error.started) == (502, True, True)
        return
    assert got.error is None
    assert got.finished is not None
    assert got.finished.reason == FINISH[expected["stop_reason"]]
    if "model" in expected:
        assert got.finished.model == expected["model"]
    assert got.usage == expected_usage(expected.get("usage_final") or expected["usage"])
