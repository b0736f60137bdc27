"""A gateway behind a proxy that nobody told it about (TRUSTED_PROXIES empty) sees the proxy as every
client: all of them share one per-IP bucket, and one client sending bad keys locks the others out
(issue 22). The peer of such a gateway has a private address (a compose network, a cluster's pod
range); the first request from one logs an error and puts a warning in /api/ready's reasons
(the status stays ok).

Loopback is left out: there the peer is the developer's own client (`lobe dev`, tests); a proxy
on the same host is the one case this cannot see.
"""

from __future__ import annotations

import ipaddress
import logging

from aiohttp import web

log = logging.getLogger(__name__)


class UntrustedProxyCheck:
    def __init__(self, has_trusted_proxies: bool) -> None:
        self.watching = not has_trusted_proxies
        self.warning: str | None = None
        self._last_peer: str | None = None

    def seen(self, peer: str | None) -> None:
        # Per request: a proxy has few addresses, so the same peer as last time costs a comparison.
        if not self.watching or peer == self._last_peer:
            return
        self._last_peer = peer
        try:
            ip = ipaddress.ip_address(peer or "")
        except ValueError:
            return
        if ip.is_private and not ip.is_loopback:
            self.watching = False
            self.warning = (
                f"requests arrive from {ip}, a private address, and TRUSTED_PROXIES is empty: if a proxy "
                "or ingress is in front, every client shares its IP's limits; set TRUSTED_PROXIES to it"
            )
            log.error("%s", self.warning)

    async def on_response_prepare(self, request: web.Request, _: web.StreamResponse) -> None:
        self.seen(request.remote)

    def warnings(self) -> tuple[str, ...]:
        """For /api/ready's reasons: the gateway serves, but an operator should look."""
        return (self.warning,) if self.warning else ()
