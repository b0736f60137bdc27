"""A worker whose catalog routes one public model to a fake upstream of a given provider kind."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from lobe.chat_worker.deployments import (
    Deployment,
    Endpoint,
    ModelCatalog,
    ProviderKind,
    RoutedModel,
    Timeouts,
)
from lobe.chat_worker.service import ChatWorker
from lobe.devtools.fake_upstream import FakeUpstream

from .conftest import start_worker

# The provider model each deployment names, where it shows up in the upstream URL.
UPSTREAM_MODEL = "upstream-model"


@dataclass(frozen=True)
class Route:
    kind: ProviderKind
    base_suffix: str  # appended to the fake upstream's URL, as an operator would configure it
    path: str  # where the adapter must send the request


ROUTES: dict[str, Route] = {
    r.kind: r
    for r in (
        Route("openai", "/v1", "/v1/chat/completions"),
        Route("openai_compatible", "/v1", "/v1/chat/completions"),
        Route("azure_openai", "", f"/openai/deployments/{UPSTREAM_MODEL}/chat/completions"),
        Route("anthropic", "", "/v1/messages"),
        Route("gemini", "/v1beta", f"/v1beta/models/{UPSTREAM_MODEL}:streamGenerateContent"),
        Route("ollama", "", "/api/chat"),
    )
}


def kind_of(transcript: str) -> ProviderKind:
    """The adapter that speaks a transcript's wire format."""
    folder, name = transcript.split("/")
    if folder == "openai_compatible":
        return "azure_openai" if name.startswith("azure_") else "openai_compatible"
    if name == "v1_chat_completion.json":  # Ollama's OpenAI-compatible endpoint
        return "openai_compatible"
    return ROUTES[folder].kind


def public_model(kind: str) -> str:
    return f"lobe-{kind}"


@asynccontextmanager
async def routed_worker(
    nats_url: str,
    kind: ProviderKind,
    upstream: FakeUpstream,
    timeouts: Timeouts | None = None,
    serves: list[Endpoint] | None = None,
    **settings: Any,
) -> AsyncIterator[ChatWorker]:
    deployment = Deployment(
        name=f"fake-{kind}",
        provider=kind,
        base_url=upstream.url + ROUTES[kind].base_suffix,
        model=UPSTREAM_MODEL,
        timeouts=timeouts or Timeouts(),
    )
    model = RoutedModel(name=public_model(kind), deployments=[deployment], serves=serves or ["chat"])
    catalog = ModelCatalog(models=[model])
    worker = await start_worker(nats_url, models=catalog, **settings)
    try:
        yield worker
    finally:
        await worker.stop()
