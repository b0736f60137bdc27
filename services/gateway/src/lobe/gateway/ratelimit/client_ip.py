"""The client's IP address: the TCP peer, or what a trusted proxy says in X-Forwarded-For.

X-Forwarded-For is anyone's to write, so it is read only when the peer is one of TRUSTED_PROXIES,
and then from the right: each proxy appends the address it saw, so the rightmost address that is
not itself a trusted proxy is the client (nginx's real_ip_recursive). Anything left of it could
be forged by the client.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(spec: str) -> list[Network]:
    """`10.0.0.0/8, 192.168.1.7` -> networks; ValueError names an entry that is not a CIDR."""
    networks = []
    for entry in filter(None, (e.strip() for e in spec.split(","))):
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"{entry!r} is not an IP address or CIDR network") from None
    return networks


def _trusted(address: str, proxies: Iterable[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in proxies)


def client_ip(request: web.Request, proxies: list[Network]) -> str:
    peer = request.remote or "unknown"
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    hops = [h for h in hops if h]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop if _is_ip(hop) else peer
    return hops[0] if hops else peer  # every hop is a proxy of ours: the first one is the client


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def bucket(address: str) -> str:
    """The per-IP limits' unit: an IPv4 address, or an IPv6 client's /64. A single IPv6 host is
    routinely given a whole /64 (SLAAC, privacy addresses), so counting per address would give
    one client 2^64 fresh buckets."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return address
