"""The places this gateway holds under users' caps on requests in flight, kept alive while their
requests run: each lease is renewed every third of its length (CONCURRENCY_LEASE_S), all of this
gateway's in one script run per user. A gateway that dies stops renewing, and its places free
themselves when their leases run out: no counter to leak."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from lobe.gateway.ratelimit.windows import Cap, SlidingWindows
from lobe.gateway.redis_pool import REDIS_ERRORS

log = logging.getLogger(__name__)


class Leases:
    def __init__(self, windows: SlidingWindows, lease_s: float) -> None:
        self.windows = windows
        self.lease_s = lease_s
        self.held: dict[str, Cap] = {}  # request id -> the cap it holds a place under
        self._renewing: asyncio.Task[None] | None = None

    def hold(self, request_id: str, cap: Cap) -> None:
        self.held[request_id] = cap
        if self._renewing is None:
            self._renewing = asyncio.create_task(self._renew_forever())

    def drop(self, request_id: str) -> None:
        self.held.pop(request_id, None)

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.lease_s / 3)
            by_cap: dict[Cap, list[str]] = {}
            for request_id, cap in list(self.held.items()):
                by_cap.setdefault(cap, []).append(request_id)
            for cap, request_ids in by_cap.items():
                try:
                    await self.windows.renew(cap, request_ids)
                except REDIS_ERRORS as exc:  # two more tries before the lease runs out
                    log.warning("leases not renewed: %r", exc)

    async def close(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
