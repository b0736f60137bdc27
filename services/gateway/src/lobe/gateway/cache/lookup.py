"""One request's lookup in the response cache: this process's memory first, then Redis.

The Redis read (GET and PTTL) rides on the rate limit's script run when the cache and the limits
share a Redis (a `Rider`, lobe.gateway.ratelimit.windows): a cacheable request then costs one
round trip to Redis before its dispatch. When that run did not carry it (no script run, Redis
skipped after a failure, a large body limited before its parse with no token window, the cache
on a Redis of its own) it is read on its own, during the budget reserve (`start`).

What it found is read with `stored`, once the request is admitted: a request the limits refuse
never reads it, and is never served from the cache.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline

from lobe.gateway.cache.key import CacheKey
from lobe.gateway.cache.memory import ByteLRU
from lobe.gateway.metrics import CACHE_LOOKUPS
from lobe.gateway.ratelimit.outage import RedisOutage
from lobe.gateway.redis_pool import REDIS_ERRORS


class Lookup:
    """The response cache's (lobe.gateway.cache.response_cache.ResponseCache.lookup)."""

    def __init__(self, key: CacheKey | None, redis: Redis, memory: ByteLRU, outage: RedisOutage) -> None:
        self.key = key  # None: the request is not cached; nothing to find
        self.redis = redis
        self.memory = memory
        self.outage = outage
        self._memory = None if key is None else memory.get(key.redis_key, time.monotonic())
        self._read_done = key is None or self._memory is not None  # nothing (more) to read from Redis
        self._from_redis: bytes | None = None
        self._reading: asyncio.Future[bytes | None] | None = None

    def rider(self) -> Lookup | None:
        """Itself, to ride on the rate limit's run, while Redis has something to tell it."""
        return None if self._read_done or self.outage.skip() else self

    # The rider's part (lobe.gateway.ratelimit.windows.Rider)
    def queue(self, pipe: Pipeline) -> None:
        assert self.key is not None
        pipe.get(self.key.redis_key)
        pipe.pttl(self.key.redis_key)

    def took(self, replies: list[Any]) -> None:
        assert self.key is not None
        self.outage.recovered()
        self._from_redis = self._remember(*replies)
        self._read_done = True

    def failed(self, exc: BaseException) -> None:
        self.outage.failed(exc)
        self._read_done = True  # a miss, as the read on its own would have been

    def start(self) -> None:
        """Read Redis now, in the background, if the rate limit's run did not."""
        if not self._read_done and self._reading is None:
            assert self.key is not None
            self._reading = asyncio.ensure_future(self._read())

    def cancel(self) -> None:
        """The request was refused, or its client left: the answer is not wanted."""
        if self._reading is not None:
            self._reading.cancel()

    async def stored(self) -> bytes | None:
        """The stored answer's bytes (a chat answer's frames, an embeddings answer), or None."""
        if self.key is None:
            return None
        if self._memory is not None:
            CACHE_LOOKUPS.labels(result="memory").inc()
            return self._memory
        if not self._read_done:
            self.start()
            assert self._reading is not None
            self._from_redis = await self._reading
            self._read_done = True
        CACHE_LOOKUPS.labels(result="miss" if self._from_redis is None else "redis").inc()
        return self._from_redis

    async def _read(self) -> bytes | None:
        """The Redis read on a round trip of its own."""
        if self.outage.skip():
            return None
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                self.queue(pipe)
                replies = await pipe.execute()
        except REDIS_ERRORS as exc:
            self.outage.failed(exc)
            return None
        self.outage.recovered()
        return self._remember(*replies)

    def _remember(self, stored: bytes | None, ttl_ms: int) -> bytes | None:
        """A Redis hit is kept in memory for the rest of its TTL."""
        if stored is not None and ttl_ms > 0:
            assert self.key is not None
            self.memory.put(self.key.redis_key, stored, time.monotonic() + ttl_ms / 1000)
        return stored
