"""What an adapter's embeddings call returns, and the HTTP exchange every HTTP adapter shares.

An embeddings call is one JSON request and one JSON answer (no stream): the adapter supplies the
translated request (`embedding_request_for`) and the reading of the answer (`embedded_from`);
the status policy and error bodies are the adapter's chat ones (`error_for`), so a refused key,
a rate limit or a missing model mean the same thing on both endpoints.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lobe.chat_worker.http.upstream import TransportError, UpstreamRequest, open_upstream
from lobe.chat_worker.providers.base import ProviderError
from lobe.chat_worker.providers.retry_after import retry_after_s
from lobe.shared.events.chat import TokenUsage

if TYPE_CHECKING:
    from lobe.chat_worker.providers.http_base import HttpProvider
    from lobe.shared.embeddings_schema import EmbeddingsRequest

# A batch of 2,048 inputs of 3,072 dimensions is ~125 MB as JSON numbers; the bus carries far less
# (lobe.shared.events.embeddings), so an answer past this is refused rather than read.
MAX_EMBEDDINGS_DOCUMENT = 64 * 1024 * 1024


@dataclass(frozen=True)
class Embedded:
    """One vector per input, in input order. `usage` None: the provider reports none (estimated)."""

    vectors: list[list[float]]
    model: str
    usage: TokenUsage | None


def float32_base64(vector: Sequence[float]) -> str:
    """OpenAI's base64 embedding: the vector's little-endian float32 bytes, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def vector_of(value: object) -> list[float]:
    """One vector as a provider sends it: JSON numbers, or OpenAI's base64 float32."""
    if isinstance(value, str):
        raw = base64.b64decode(value, validate=True)
        return list(struct.unpack(f"<{len(raw) // 4}f", raw))
    if not isinstance(value, list) or not value:
        raise ValueError(f"an embedding must be a non-empty list of numbers, got {type(value).__name__}")
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in value):
        raise ValueError("an embedding holds a value that is not a number")
    return [float(x) for x in value]


def checked(embedded: Embedded, inputs: int, provider: str) -> Embedded:
    """The answer, if it has one vector per input, all of one size; else the provider's failure."""
    sizes = {len(v) for v in embedded.vectors}
    if len(embedded.vectors) != inputs or len(sizes) != 1:
        message = f"{len(embedded.vectors)} vectors of sizes {sorted(sizes)} for {inputs} inputs"
        raise ProviderError(provider, 502, "upstream_malformed", message, True)
    return embedded


async def embed_over_http(adapter: HttpProvider, body: EmbeddingsRequest) -> Embedded:
    """POST the adapter's embeddings request, read the whole answer, map failures as chat does.
    Every failure is before any output: another attempt is always free (`retryable` per status)."""
    request: UpstreamRequest = adapter.embedding_request_for(body)
    deployment = adapter.deployment
    try:
        async with open_upstream(adapter.session, request, deployment.timeouts) as upstream:
            raw = await upstream.read_all(MAX_EMBEDDINGS_DOCUMENT)
            if upstream.status >= 400:
                error = adapter.error_for(upstream.status, raw)
                raise dataclasses.replace(error, retry_after_s=retry_after_s(upstream.response.headers))
        embedded = adapter.embedded_from(json.loads(raw), body)
    except TransportError as exc:
        raise ProviderError(adapter.name, exc.status, exc.code, exc.message, True) from exc
    except (KeyError, IndexError, TypeError, ValueError, AttributeError, struct.error) as exc:
        message = f"unreadable {adapter.name} embeddings answer: {type(exc).__name__}: {exc}"
        raise ProviderError(adapter.name, 502, "upstream_malformed", message, True) from exc
    return checked(embedded, len(body.texts), adapter.name)
