"""Sliding windows and in-flight caps in Redis, through Lua scripts of ours (sliding_window.lua,
settle.lua, renew.lua).

One script run checks and charges every window of a request together, and its place under the
cap on requests in flight: one round trip, and exact whatever the number of gateway replicas
(see the script's header for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis

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


class SlidingWindows:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(HIT_SCRIPT)
        self._settle = redis.register_script(SETTLE_SCRIPT)
        self._renew = redis.register_script(RENEW_SCRIPT)

    async def hit(
        self, entry_id: str, windows: list[Window], charge: bool = True, cap: Cap | None = None
    ) -> Hit:
        """Charge every window with its weight (and take a place under `cap`), or nothing at all
        when one has no room (`charge=False`: only say whether there is room)."""
        keys = [key for w in windows for key in (w.key, f"{w.key}:sum")]
        args: list[str | int] = [entry_id, int(charge), cap.limit if cap else 0, cap.lease_ms if cap else 0]
        for w in windows:
            args += [w.limit, w.window_s * 1000, w.weight]
        if cap is not None:
            keys.append(cap.key)
        refused, now, *rest = await self._hit(keys=keys, args=args)
        states = [
            WindowState(w, int(rest[2 * i]), max(int(rest[2 * i + 1]) + w.window_s * 1000 - int(now), 0))
            for i, w in enumerate(windows)
        ]
        refused_limit: Window | Cap | None = None
        if refused:
            refused_limit = windows[refused - 1] if refused <= len(windows) else cap
        return Hit(refused_limit, states, int(rest[-1]) if cap is not None else None)

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
