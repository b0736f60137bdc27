"""Per client IP, for what comes before authentication: sign-in routes and failed credentials. It is
the gateway's AuthGuard (lobe.gateway.auth.guard, `AuthParts.guard`).

A key this replica has no answer for is charged as a failed attempt before billing is asked, and
the charge is undone when billing vouches for it: an IP with no attempt left is refused before its
key costs a lookup, and N attempts left allow at most N lookups however many arrive at once
(checking first and charging after the answer let a concurrent flood through). An IPv6 client
is one /64 (lobe.gateway.ratelimit.client_ip.bucket).
"""

from __future__ import annotations

import contextlib
import uuid

from aiohttp import web

from lobe.gateway.auth.guard import Refund
from lobe.gateway.metrics import RATE_LIMITED
from lobe.gateway.ratelimit import headers
from lobe.gateway.ratelimit.client_ip import Network, bucket, client_ip
from lobe.gateway.ratelimit.config import PerIp
from lobe.gateway.ratelimit.limiter import REDIS_ERRORS, hit_or_fail_mode, refusal
from lobe.gateway.ratelimit.outage import RedisOutage
from lobe.gateway.ratelimit.windows import Correction, SlidingWindows, Window

# Set on a request whose failed attempt was counted before its key's lookup: not counted again.
COUNTED = web.RequestKey("lobe.ip_attempt_counted", bool)


class IpLimiter:
    """`hit(request)`: count one attempt from the request's client IP; 429 when it is one too many."""

    def __init__(
        self,
        windows: SlidingWindows,
        per_ip: PerIp,
        trusted_proxies: list[Network],
        fail_mode: str,
        enabled: bool = True,
    ) -> None:
        self.windows = windows
        self.enabled = enabled
        self.per_ip = per_ip
        self.trusted_proxies = trusted_proxies
        self.outage = RedisOutage(fail_mode)

    async def hit(self, request: web.Request) -> None:
        await self._count(request)

    async def _count(self, request: web.Request) -> tuple[str, str] | None:
        """Count one attempt: (its window's key, its entry), or None when nothing was counted."""
        if not self.enabled:
            return None
        ip = bucket(client_ip(request, self.trusted_proxies))
        window = Window(f"lobe:rl:{{ip:{ip}}}:attempts", self.per_ip.requests, self.per_ip.window_s)
        entry = uuid.uuid4().hex
        hit = await hit_or_fail_mode(self.windows, self.outage, entry, [window])
        if hit is None:
            return None
        if hit.refused is not None:
            [state] = hit.states
            RATE_LIMITED.labels(limit="ip").inc()
            raise refusal(state, "requests", "per client IP before authentication", headers.standard(state))
        return window.key, entry

    # AuthGuard
    async def sign_in(self, request: web.Request) -> None:
        await self.hit(request)

    async def before_key_lookup(self, request: web.Request) -> Refund | None:
        counted = await self._count(request)
        if counted is None:
            return None
        request[COUNTED] = True
        key, entry = counted

        async def refund() -> None:
            # Redis away: the attempt stays counted, until it leaves its window.
            with contextlib.suppress(*REDIS_ERRORS):
                await self.windows.settle(entry, [Correction(key, 1, 0)])

        return refund

    async def credential_refused(self, request: web.Request) -> None:
        if not request.get(COUNTED):
            await self.hit(request)
