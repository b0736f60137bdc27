"""Shared by the provider tests: where the transcripts live, and a stream assembled into totals."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.providers.base import Finished, Provider, ProviderError, ReasoningDelta, TextDelta
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.events.chat import TokenUsage, ToolCallDelta

from .fake_upstream import Reply


def fixtures_root() -> Path:
    if env := os.environ.get("LOBE_PROVIDER_FIXTURES"):
        return Path(env)
    here = Path(__file__).resolve()
    repo = next(p for p in here.parents if (p / "constraints.txt").exists())
    return repo.parent / "shared" / "fixtures" / "providers"


def fixture_files(provider_dir: str) -> list[str]:
    """Every body file of one provider folder, as `dir/name` (the sidecars hold the expectations)."""
    folder = fixtures_root() / provider_dir
    return sorted(f"{provider_dir}/{p.name}" for p in folder.iterdir() if not p.name.endswith(".meta.json"))


@dataclass
class Transcript:
    name: str
    body: bytes
    meta: dict[str, Any]

    @property
    def expected(self) -> dict[str, Any]:
        return dict(self.meta["expected"])

    def reply(self, *, seed: int = 0, status: int | None = None, **kwargs: Any) -> Reply:
        http = self.meta["http"]
        recorded = http.get("headers_recorded", {}).get("content-type") or http.get("content_type")
        content_type = (recorded or "application/json").split(" (")[0]
        meta_status = http.get("status")
        chosen = status or (meta_status if isinstance(meta_status, int) else 500)
        return Reply(self.body, chosen, content_type, seed=seed, **kwargs)


def load(name: str) -> Transcript:
    path = fixtures_root() / name
    meta = json.loads(path.with_name(path.name + ".meta.json").read_text())
    return Transcript(name, path.read_bytes(), meta)


@dataclass
class Assembled:
    text: str = ""
    reasoning: str = ""
    calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finished: Finished | None = None
    usage: TokenUsage | None = None
    error: ProviderError | None = None
    order: list[str] = field(default_factory=list)

    def tool_calls(self) -> list[dict[str, Any]]:
        """Joined fragments, arguments parsed (None when the JSON is incomplete)."""
        out = []
        for _, call in sorted(self.calls.items()):
            try:
                parsed = json.loads(call["arguments"]) if call["arguments"] else {}
            except ValueError:
                parsed = None
            out.append({**call, "parsed": parsed})
        return out


async def collect(provider: Provider, body: ChatCompletionRequest) -> Assembled:
    result = Assembled()
    try:
        async for event in provider.stream(body):
            result.order.append(type(event).__name__)
            if isinstance(event, TextDelta):
                result.text += event.text
            elif isinstance(event, ReasoningDelta):
                result.reasoning += event.text
            elif isinstance(event, ToolCallDelta):
                call = result.calls.setdefault(event.index, {"id": None, "name": None, "arguments": ""})
                call["id"] = call["id"] or event.id
                call["name"] = call["name"] or event.name
                call["arguments"] += event.arguments
            elif isinstance(event, Finished):
                result.finished = event
            else:
                result.usage = event
    except ProviderError as exc:
        result.error = exc
    return result


def request(**overrides: Any) -> ChatCompletionRequest:
    payload: dict[str, Any] = {"model": "public-model", "messages": [{"role": "user", "content": "Hi"}]}
    return ChatCompletionRequest.model_validate({**payload, **overrides})


def deployment(provider: str, base_url: str, **overrides: Any) -> Deployment:
    fields: dict[str, Any] = {"name": f"test-{provider}", "provider": provider, "base_url": base_url}
    fields.setdefault("model", "upstream-model")
    return Deployment.model_validate({**fields, **overrides})


def seeds() -> Iterator[int]:
    """Different random splits per run of the same transcript."""
    yield from (1, 2, 3)
