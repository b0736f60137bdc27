"""Sliding windows and in-flight caps in Redis, through Lua scripts of ours (sliding_window.lua,
settle.lua, renew.lua).

One script run checks and charges every window of a request together, and its place under the
cap on requests in flight: one round trip, and exact whatever the number of gateway replicas
(see the script's header for why). Reads of the same Redis that a request needs before its
dispatch (the response cache's lookup) may ride on that round trip: a `Rider` queues its commands
on the script run's pipeline and takes their replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from redis.exceptions import NoScriptError

from lobe.gateway.redis_pool import REDIS_ERRORS

_HERE = files(__package__)
HIT_SCRIPT = (_HERE / "sliding_window.lua").read_text()
SETTLE_SCRIPT = (_HERE / "settle.lua").read_text()
RENEW_SCRIPT = (_HERE / "renew.lua").read_text()


@dataclass(frozen=True)
class Window:
    """One limit to charge: at most `limit` in weights over the last `window_s` seconds."""

    key: str
    limit: int
    window_s: int
    weight: int = 1


@dataclass(frozen=True)
class Cap:
    """At most `limit` requests in flight; each holds a lease of `lease_ms`, renewed while it runs."""

    key: str
    limit: int
    lease_ms: int


@dataclass(frozen=True)
class WindowState:
    """A window right after the hit: what is used, and when its oldest entry leaves."""

    window: Window
    used: int
    frees_in_ms: int  # until the oldest entry leaves the window (remaining goes up)

    @property
    def remaining(self) -> int:
        return max(self.window.limit - self.used, 0)


@dataclass(frozen=True)
class Hit:
    refused: Window | Cap | None  # the first limit that had no room; then nothing was charged
    states: list[WindowState]
    in_flight: int | None = None  # under the cap, this one included when admitted


@dataclass(frozen=True)
class Correction:
    key: str  # the window's log
    old: int
    new: int


class Rider(Protocol):
    """Commands queued after the script run on its pipeline, in the one round trip. Whatever the
    script decides, the rider gets its replies (`took`), or the error that lost them (`failed`):
    a refused request's rider is the caller's to ignore."""

    redis: Redis  # the client it reads from: it rides only on a pipeline to that same client

    def queue(self, pipe: Pipeline) -> None: ...

    def took(self, replies: list[Any]) -> None: ...

    def failed(self, exc: BaseException) -> None: ...


class SlidingWindows:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._hit = redis.register_script(HIT_SCRIPT)
        self._settle = redis.register_script(SETTLE_SCRIPT)
        self._renew = redis.register_script(RENEW_SCRIPT)

    async def hit(
        self,
        entry_id: str,
        windows: list[Window],
        charge: bool = True,
        cap: Cap | None = None,
        rider: Rider | None = None,
    ) -> Hit:
        """Charge every window with its weight (and take a place under `cap`), or nothing at all
        when one has no room (`charge=False`: only say whether there is room). A `rider` on this
        client goes in the same round trip; one on another client is left alone."""
        keys = [key for w in windows for key in (w.key, f"{w.key}:sum")]
        args: list[str | int] = [entry_id, int(charge), cap.limit if cap else 0, cap.lease_ms if cap else 0]
        for w in windows:
            args += [w.limit, w.window_s * 1000, w.weight]
        if cap is not None:
            keys.append(cap.key)
        if rider is not None and rider.redis is self.redis:
            reply = await self._hit_with(rider, keys, args)
        else:
            reply = await self._hit(keys=keys, args=args)
        refused, now, *rest = reply
        states = [
            WindowState(w, int(rest[2 * i]), max(int(rest[2 * i + 1]) + w.window_s * 1000 - int(now), 0))
            for i, w in enumerate(windows)
        ]
        refused_limit: Window | Cap | None = None
        if refused:
            refused_limit = windows[refused - 1] if refused <= len(windows) else cap
        return Hit(refused_limit, states, int(rest[-1]) if cap is not None else None)

    async def _hit_with(self, rider: Rider, keys: list[str], args: list[str | int]) -> Any:
        try:
            reply, *replies = await self._pipelined(rider, keys, args)
            if isinstance(reply, NoScriptError):  # a restarted (or flushed) Redis forgot it: load it, once
                self._hit.sha = await self.redis.script_load(HIT_SCRIPT)
                reply, *replies = await self._pipelined(rider, keys, args)
        except REDIS_ERRORS as exc:  # no answer at all
            rider.failed(exc)
            raise
        # Each side's errors are its own: a rider's bad reply is no outage of the limits.
        error = next((r for r in replies if isinstance(r, Exception)), None)
        if error is None:
            rider.took(replies)
        else:
            rider.failed(error)
        if isinstance(reply, Exception):
            raise reply
        return reply

    async def _pipelined(self, rider: Rider, keys: list[str], args: list[str | int]) -> list[Any]:
        """The script run and the rider's commands in one pipeline: one round trip. EVALSHA by
        hand: redis-py's pipelined script asks SCRIPT EXISTS first, a round trip of its own."""
        async with self.redis.pipeline(transaction=False) as pipe:
            pipe.evalsha(self._hit.sha, len(keys), *keys, *args)
            rider.queue(pipe)
            return await pipe.execute(raise_on_error=False)

    async def settle(self, entry_id: str, corrections: list[Correction], cap: Cap | None = None) -> None:
        """Replace the weights `entry_id` was charged with (entries still in their window), and
        give back its place under `cap`."""
        corrections = [c for c in corrections if c.old != c.new]
        if not corrections and cap is None:
            return
        keys = [key for c in corrections for key in (c.key, f"{c.key}:sum")]
        args: list[str | int] = [entry_id, int(cap is not None)]
        for c in corrections:
            args += [c.old, c.new]
        if cap is not None:
            keys.append(cap.key)
        await self._settle(keys=keys, args=args)

    async def renew(self, cap: Cap, entry_ids: list[str]) -> None:
        """Another lease for requests still in flight under `cap`."""
        await self._renew(keys=[cap.key], args=[cap.lease_ms, *entry_ids])
