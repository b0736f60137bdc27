"""Sessions in Redis (REDIS_URL, the state Redis that is never evicted): the source of truth every
replica shares. Three sorted sets, each scored by the session's expiry so an expired member is
pruned by score: the active sessions (the figure behind lobe_user_sessions_active), each user's
sessions (an admin revokes them all), and the revoked ones (a replica that starts, or that missed
an `auth.login.ended`, loads them)."""

from __future__ import annotations

import time
from typing import cast

from redis.asyncio import Redis

ACTIVE = "lobe:sessions:active"
REVOKED = "lobe:sessions:revoked"
USER_PREFIX = "lobe:sessions:user:"


def _user_key(user_id: str) -> str:
    return USER_PREFIX + user_id


class SessionStore:
    """Every method raises redis' RedisError (or OSError) when Redis is away: callers decide."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis

    async def started(self, user_id: str, session_id: str, expires_at: int) -> None:
        now = int(time.time())
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(ACTIVE, {session_id: expires_at})
            pipe.zremrangebyscore(ACTIVE, "-inf", now)
            pipe.zadd(_user_key(user_id), {session_id: expires_at})
            pipe.zremrangebyscore(_user_key(user_id), "-inf", now)
            # The newest session expires last (one TTL for all); EXPIRE's GT needs Redis 7.
            pipe.expireat(_user_key(user_id), expires_at)
            await pipe.execute()

    async def ended(self, user_id: str, session_id: str, expires_at: int) -> None:
        """Revoked from now until its expiry, and no longer active."""
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.zadd(REVOKED, {session_id: expires_at})
            pipe.zremrangebyscore(REVOKED, "-inf", int(time.time()))
            pipe.zrem(ACTIVE, session_id)
            pipe.zrem(_user_key(user_id), session_id)
            await pipe.execute()

    async def of_user(self, user_id: str) -> dict[str, int]:
        """The user's live sessions: session id -> expiry."""
        return await self._live(_user_key(user_id))

    async def revoked(self) -> dict[str, int]:
        return await self._live(REVOKED)

    async def _live(self, key: str) -> dict[str, int]:
        members = await self.redis.zrangebyscore(key, int(time.time()), "+inf", withscores=True)
        return {bytes(sid).decode(): int(exp) for sid, exp in cast(list[tuple[bytes, float]], members)}

    async def active_count(self) -> int:
        return int(await self.redis.zcount(ACTIVE, f"({int(time.time())}", "+inf"))
