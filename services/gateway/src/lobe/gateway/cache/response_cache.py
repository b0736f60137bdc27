"""The response cache's two tiers and their upkeep: look up, store, invalidate.

Lookup (lobe.gateway.cache.lookup): this process's LRU, then Redis (CACHE_REDIS_URL, else the
rate limits' REDIS_URL client) with GET and PTTL pipelined, on the rate limit's round trip when
they share it; a Redis hit is kept in memory for the rest of its TTL. Store: after
the answer completed, in the background (the client has its answer), memory then Redis with
CACHE_TTL_S. Redis unreachable: a miss and a skipped store, never an error for the client.
Invalidation (admin API): the Redis tier is cleared here, and `cache.response.invalidated`
tells every replica (this one included) to drop the matching answers from memory.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from aiohttp import web
from redis.asyncio import Redis

from lobe.gateway.cache.key import CacheKey, cache_key, embeddings_cache_key, key_pattern
from lobe.gateway.cache.lookup import Lookup
from lobe.gateway.cache.memory import ByteLRU
from lobe.gateway.cache.replay import StoredFrame, encode_answer
from lobe.gateway.ratelimit.limiter import REDIS_ERRORS
from lobe.gateway.ratelimit.outage import RedisOutage
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.embeddings_schema import EmbeddingsRequest
from lobe.shared.events.cache import CACHE_RESPONSE_INVALIDATED, ResponsesInvalidated
from lobe.shared.events.chat import Caller, ChatEndpoint
from lobe.shared.media_schema import MediaRequest

SCAN_BATCH = 1000


class ResponseCache:
    def __init__(self, redis: Redis, bus: Bus, settings: GatewaySettings) -> None:
        self.redis = redis
        self.bus = bus
        self.settings = settings
        self.enabled = settings.cache_enabled
        self.shared = settings.cache_scope == "shared"
        self.memory = ByteLRU(settings.cache_memory_bytes)
        self.outage = RedisOutage("open", what="response cache")
        self._storing: set[asyncio.Task[None]] = set()

    def key_for(
        self,
        request: web.Request,
        caller: Caller,
        body: ChatCompletionRequest | EmbeddingsRequest | MediaRequest,
        endpoint: ChatEndpoint = "chat",
    ) -> CacheKey | None:
        """The request's cache key, or None when it is not cached (see lobe.gateway.cache.key).
        Media requests are not: an image or a voice is a new draw each time, and audio is large."""
        if not self.enabled or isinstance(body, MediaRequest):
            return None
        if isinstance(body, EmbeddingsRequest):
            return embeddings_cache_key(request, caller, body, self.shared)
        return cache_key(request, caller, body, self.shared, endpoint)

    def lookup(self, key: CacheKey | None) -> Lookup:
        """The request's lookup (memory checked now; Redis on the rate limit's run, or `start`)."""
        return Lookup(key, self.redis, self.memory, self.outage)

    def store(self, key: CacheKey, frames: list[StoredFrame]) -> None:
        """Keep a completed answer, in the background: the client is answered already."""
        self.keep(key, encode_answer(frames))

    def keep(self, key: CacheKey, stored: bytes) -> None:
        """Keep an answer's bytes (what `find` gives back), in the background."""
        task = asyncio.create_task(self._store(key.redis_key, stored))
        self._storing.add(task)
        task.add_done_callback(self._storing.discard)

    async def _store(self, redis_key: str, stored: bytes) -> None:
        if len(stored) > self.settings.cache_max_entry_bytes:
            return
        ttl_s = self.settings.cache_ttl_s
        self.memory.put(redis_key, stored, time.monotonic() + ttl_s)
        if self.outage.skip():
            return
        try:
            await self.redis.set(redis_key, stored, ex=ttl_s)
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)

    async def invalidate(self, user_id: str | None, model: str | None) -> int:
        """Clear matching answers from Redis and from every replica's memory; returns the number
        of Redis entries removed. Redis errors are raised: an admin must know it did not happen."""
        pattern = key_pattern(user_id, model, self.shared)
        removed = 0
        async for batch in self._scan(pattern):
            removed += await self.redis.unlink(*batch)
        self.memory.drop(pattern)
        fact = ResponsesInvalidated(request_id=f"invalidate-{time.time_ns()}", user_id=user_id, model=model)
        await self.bus.publish(CACHE_RESPONSE_INVALIDATED, fact)
        return removed

    async def _scan(self, pattern: str) -> AsyncIterator[list[str]]:
        batch: list[str] = []
        async for redis_key in self.redis.scan_iter(match=pattern, count=SCAN_BATCH):
            batch.append(redis_key)
            if len(batch) >= SCAN_BATCH:
                yield batch
                batch = []
        if batch:
            yield batch

    async def watch_invalidations(self) -> None:
        await self.bus.subscribe(CACHE_RESPONSE_INVALIDATED, self._on_invalidated)

    def _on_invalidated(self, fact: ResponsesInvalidated) -> None:
        self.memory.drop(key_pattern(fact.user_id, fact.model, self.shared))

    async def close(self) -> None:
        if self._storing:
            await asyncio.gather(*self._storing, return_exceptions=True)


# What the chat and cache admin handlers read (set while the app starts: lobe.gateway.resources).
CACHE = web.AppKey("cache", ResponseCache)
