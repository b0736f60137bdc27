"""Where a resumable stream's events are kept: a Redis stream per request, its owner beside it.

Keys share the request id as a hash tag (one slot in a cluster): `lobe:resume:{<id>}` holds the
SSE events, entry id `<n>-0` for the answer's n-th event, the last one flagged `end`;
`...:user` the user who may resume it; `...:resumed` that someone did (read once by the replica
whose client left, lobe.gateway.resume.detach). Every key expires RESUME_WINDOW_S after the
stream's last write: another replica's resume needs no process memory, and nothing outlives it.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

from aiohttp import web
from redis.asyncio import Redis

from lobe.gateway.settings import GatewaySettings

Entry = tuple[bytes, dict[bytes, bytes]]  # (entry id, fields), as XREAD returns them (RESP2, bytes)
END = b"end"  # the field flagging a stream's last event
EVENT = b"e"  # the field holding an event's bytes


def stream_key(request_id: str) -> str:
    return f"lobe:resume:{{{request_id}}}"


def owner_key(request_id: str) -> str:
    return stream_key(request_id) + ":user"


def resumed_key(request_id: str) -> str:
    return stream_key(request_id) + ":resumed"


class ResumeStore:
    def __init__(self, redis: Redis, settings: GatewaySettings) -> None:
        self.redis = redis
        self.window_s = settings.resume_window_s
        self.max_events = settings.resume_max_events
        self.max_bytes = settings.resume_max_bytes
        self.writing: set[asyncio.Task[None]] = set()  # replays being written (writer.py)
        self.detached: set[asyncio.Task[Any]] = set()  # answers run apart (detach.py)

    async def open(self, request_id: str, user_id: str) -> None:
        """Name the stream's owner, before its first event goes out: the handle the client gets
        with that event must already resolve on every replica. Raises Redis's errors."""
        await self.redis.set(owner_key(request_id), user_id, ex=self.window_s)

    async def owner(self, request_id: str) -> str | None:
        owner: bytes | None = await self.redis.get(owner_key(request_id))  # type: ignore[assignment]
        return None if owner is None else owner.decode()

    async def mark_resumed(self, request_id: str) -> None:
        await self.redis.set(resumed_key(request_id), b"1", ex=self.window_s)

    async def was_resumed(self, request_id: str) -> bool:
        return bool(await self.redis.exists(resumed_key(request_id)))

    async def read(self, request_id: str, after: bytes | str, count: int, block_ms: int) -> list[Entry]:
        """The stream's entries after entry id `after`, waiting up to `block_ms` for one."""
        read: Any = await self.redis.xread({stream_key(request_id): after}, count=count, block=block_ms)
        return cast(list[Entry], read[0][1]) if read else []

    async def close(self) -> None:
        """Shutdown: the answers still running apart have had the drain's grace (they are live
        answers, lobe.gateway.drain); what is left is stopped, then the replays finish writing."""
        for task in list(self.detached):
            task.cancel()
        await asyncio.gather(*self.detached, return_exceptions=True)
        await asyncio.gather(*self.writing, return_exceptions=True)


# What the chat and resume handlers read (set while the app starts: lobe.gateway.resources).
RESUME = web.AppKey("resume", ResumeStore)
