"""Every OpenAI-format transcript (OpenAI, the compatible servers, Azure, Ollama /v1) replayed
through the adapter over real HTTP in random small chunks: the assembled answer must equal the
sidecar's `expected` totals."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import fixture_files
from lobe.shared.events.chat import TokenUsage

from .support import replay

FILES = [
    *fixture_files("openai"),
    *fixture_files("openai_compatible"),
    "ollama/v1_chat_completion.json",
]


def kind_of(name: str) -> str:
    if name.startswith("openai/"):
        return "openai"
    return "azure_openai" if "/azure_" in name else "openai_compatible"


def expected_usage(raw: dict[str, Any] | None) -> TokenUsage | None:
    if raw is None:
        return None
    details = raw.get("prompt_tokens_details") or {}
    return TokenUsage(
        prompt_tokens=raw["prompt_tokens"],
        completion_tokens=raw["completion_tokens"],
        cached_tokens=details.get("cached_tokens") or raw.get("prompt_cache_hit_tokens") or 0,
        reasoning_tokens=(raw.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0,
    )


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("seed", [1, 2])
async def test_transcript_assembles_to_the_sidecar_totals(
    name: str, seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    expected, got = await replay(upstream, session, name, kind_of(name), seed=seed, base_path="/v1")

    if "error" in expected:  # an HTTP error body
        assert got.error is not None
        assert got.error.status == (expected["status"] if expected["status"] in (400, 429) else 502)
        assert got.error.message == expected["error"]["message"]
        assert got.error.retryable == (expected["status"] == 429)
        assert got.error.started is False
        assert got.finished is None
        return
    choice = expected["choices"][0] if "choices" in expected else expected
    assert got.text == choice["text"]
    assert got.reasoning == choice.get("reasoning_text", "")
    calls = [(c["id"], c["name"], c["parsed"]) for c in got.tool_calls()]
    assert calls == [(c["id"], c["name"], c["arguments_parsed"]) for c in choice.get("tool_calls", [])]
    assert [c["arguments"] for c in got.tool_calls()] == [
        c["arguments"] for c in choice.get("tool_calls", [])
    ]
    stream_errors = expected.get("errors") or []
    if stream_errors and choice["finish_reason"] is None:
        # The answer failed mid-stream: an error after output, never a clean finish.
        payload = stream_errors[0]["payload"]["error"]
        assert got.error is not None
        assert got.finished is None
        assert got.error.message == payload["message"]
        assert got.error.status == payload["status_code"]
        assert got.error.code == payload["code"]
        assert got.error.started is True
        return
    assert got.error is None
    assert got.finished is not None
    assert got.finished.reason == choice["finish_reason"]
    assert got.finished.model == (expected["models"][0] if "models" in expected else expected["model"])
    assert got.usage == expected_usage(expected["usage"])
    assert got.order[-1] in ("Finished", "TokenUsage")
