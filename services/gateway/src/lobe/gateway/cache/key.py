"""Which requests are cached, and under what key.

Only deterministic ones: temperature 0, or a client that opts in with `X-Lobe-Cache: on`
(`X-Lobe-Cache: off` opts out of both lookup and store). The key is an exact match on the
normalised request: every field that can change the answer (model, messages, tools, generation
parameters), canonical JSON with sorted keys; not `stream` (a stored answer plays back as SSE or
JSON alike), not `user` or `metadata` (labels that do not change the answer), and `max_tokens`
and `max_completion_tokens` as the one limit they are.

Embeddings are deterministic: every embeddings request is cached (unless `X-Lobe-Cache: off`), keyed
by its model, inputs and `dimensions` (not `encoding_format`: the stored vectors are float32, given
back as floats or base64 alike), in a namespace of their own so no chat request can match one.
A Responses request (a chat request at heart, lobe.gateway.responses) has a namespace of its own as
well: a chat answer cached for a model that does not serve /v1/responses must not answer one.

Redis key: `lobe:cache:v1:<scope>:<model>:<request>`, each part a hex digest, so an admin's
invalidation can match one user's or one model's answers with a glob that no name can escape.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from aiohttp import web

from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.chat import Caller, ChatEndpoint

OPT_HEADER = "X-Lobe-Cache"
PREFIX = "lobe:cache:v1"
NOT_IN_KEY = frozenset(
    {"stream", "stream_options", "user", "metadata", "max_tokens", "max_completion_tokens"}
)
SHARED = "shared"


def digest(text: str, size: int = 16) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:size]


def scope_part(user_id: str | None) -> str:
    return SHARED if user_id is None else digest(f"user:{user_id}")


def key_pattern(user_id: str | None, model: str | None, shared: bool) -> str:
    """The glob matching what an invalidation of (user, model) covers; None is any."""
    scope = "*" if user_id is None else scope_part(None if shared else user_id)
    return f"{PREFIX}:{scope}:{'*' if model is None else digest(model)}:*"


@dataclass(frozen=True)
class CacheKey:
    redis_key: str


def normalised(body: ChatCompletionRequest) -> str:
    data = body.model_dump(mode="json", exclude_none=True, exclude=set(NOT_IN_KEY))
    data["max_output_tokens"] = body.output_token_limit
    if isinstance(body.stop, str):
        data["stop"] = [body.stop]
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    request: web.Request,
    caller: Caller,
    body: ChatCompletionRequest,
    shared: bool,
    endpoint: ChatEndpoint = "chat",
) -> CacheKey | None:
    """The request's key, or None when it is not to be cached."""
    choice = request.headers.get(OPT_HEADER, "").strip().lower()
    if choice == "off" or (choice != "on" and body.temperature != 0):
        return None
    scope = scope_part(None if shared else caller.user_id)
    normal = normalised(body) if endpoint == "chat" else f"{endpoint}:{normalised(body)}"
    return CacheKey(f"{PREFIX}:{scope}:{digest(body.model)}:{digest(normal, 64)}")


def embeddings_cache_key(
    request: web.Request, caller: Caller, body: EmbeddingsRequest, shared: bool
) -> CacheKey | None:
    if request.headers.get(OPT_HEADER, "").strip().lower() == "off":
        return None
    what = {"endpoint": "embeddings", "input": body.texts, "dimensions": body.dimensions}
    normal = json.dumps(what, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    scope = scope_part(None if shared else caller.user_id)
    return CacheKey(f"{PREFIX}:{scope}:{digest(body.model)}:{digest(normal, 64)}")
