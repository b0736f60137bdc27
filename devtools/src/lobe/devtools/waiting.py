"""Waiting in tests for something another process or task makes true, without a fixed sleep."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def eventually(
    check: Callable[[], Awaitable[Any] | Any], within_s: float = 10.0, every_s: float = 0.02
) -> None:
    """Return once `check()` (sync or async) is truthy; fail the test after `within_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within_s
    while True:
        result = check()
        if await result if isinstance(result, Awaitable) else result:
            return
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(every_s)
