"""The OpenAI embeddings wire (`POST /embeddings`), which OpenAI, Azure OpenAI and the
OpenAI-compatible servers (vLLM, Ollama /v1, LiteLLM, ...) share.

Vectors are asked for as floats, the one format every compatible server knows; an answer in
base64 (a server that always sends it) reads all the same. `data` is put back in input order by
its `index`, which the spec gives each item.
"""

from __future__ import annotations

from typing import Any

from lobe.chat_worker.providers.embedding import Embedded, vector_of
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import TokenUsage


def openai_embeddings_body(body: EmbeddingsRequest, model: str | None, forward_user: bool) -> dict[str, Any]:
    """`model` None: Azure, where the deployment in the URL picks the model."""
    payload: dict[str, Any] = {"input": body.input, "encoding_format": "float"}
    if model is not None:
        payload["model"] = model
    if body.dimensions is not None:
        payload["dimensions"] = body.dimensions
    if forward_user and body.user is not None:
        payload["user"] = body.user
    return payload


def openai_embedded(document: Any, fallback_model: str) -> Embedded:
    items = sorted(document["data"], key=lambda item: item["index"])
    usage = document.get("usage")
    tokens = None
    if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
        tokens = TokenUsage(prompt_tokens=usage["prompt_tokens"], completion_tokens=0)
    return Embedded(
        vectors=[vector_of(item["embedding"]) for item in items],
        model=str(document.get("model") or fallback_model),
        usage=tokens,
    )
