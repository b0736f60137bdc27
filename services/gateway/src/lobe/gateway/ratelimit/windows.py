"""Sliding windows in Redis, through two Lua scripts of ours (sliding_window.lua, correct_weight.lua).

One script run checks and charges every window of a request together: one round trip, and
exact whatever the number of gateway replicas (see the script's header for why).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files

from redis.asyncio import Redis

_HERE = files(__package__)
HIT_SCRIPT = (_HERE / "sliding_window.lua").read_text()
CORRECT_SCRIPT = (_HERE / "correct_weight.lua").read_text()


@dataclass(frozen=True)
class Window:
    """One limit to charge: at most `limit` in weights over the last `window_s` seconds."""

    key: str
    limit: int
    window_s: int
    weight: int = 1


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
    refused: Window | None  # the first window that had no room; then nothing was charged
    states: list[WindowState]


class SlidingWindows:
    def __init__(self, redis: Redis) -> None:
        self._hit = redis.register_script(HIT_SCRIPT)
        self._correct = redis.register_script(CORRECT_SCRIPT)

    async def hit(self, entry_id: str, windows: list[Window], charge: bool = True) -> Hit:
        """Charge every window with its weight, or none of them when one has no room
        (`charge=False`: only say whether there is room)."""
        keys = [key for w in windows for key in (w.key, f"{w.key}:sum")]
        args: list[str | int] = [entry_id, int(charge)]
        for w in windows:
            args += [w.limit, w.window_s * 1000, w.weight]
        refused, now, *pairs = await self._hit(keys=keys, args=args)
        states = [
            WindowState(w, int(pairs[2 * i]), max(int(pairs[2 * i + 1]) + w.window_s * 1000 - int(now), 0))
            for i, w in enumerate(windows)
        ]
        return Hit(windows[refused - 1] if refused else None, states)

    async def correct(self, entry_id: str, key: str, old_weight: int, new_weight: int) -> None:
        """Replace the weight `entry_id` was charged with (still in its window, else nothing)."""
        if old_weight != new_weight:
            await self._correct(keys=[key, f"{key}:sum"], args=[entry_id, old_weight, new_weight])
