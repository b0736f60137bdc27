"""Session cookies are for browsers on our own pages.

A browser sends the cookie with every request to the gateway, whichever site's page starts it; a
bearer token goes only where a script that holds it sends it. So a cookie-authenticated request
that changes state (POST, PUT, PATCH, DELETE) must show it comes from a page of ours: an `Origin`
that is the gateway's own or on CORS_ALLOWED_ORIGINS (with no `Origin`, `Sec-Fetch-Site:
same-origin`), and `Content-Type: application/json`, which no HTML form can send and a script of
another origin only after a CORS preflight, answered for the allowed origins alone. Anything else
is a 403 before the session is even opened: no lookup, no budget hold, no bus traffic.

Over HTTPS the cookie is `__Host-lobe_session`: a browser keeps a `__Host-` cookie only when it is
Secure, has Path=/ and no Domain, so neither a sibling subdomain nor a plain-HTTP page on the way
can plant a session of its own in its place.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from lobe.shared.json_body import is_json
from lobe.shared.openai_errors import ApiError

SESSION_COOKIE = "lobe_session"
SECURE_SESSION_COOKIE = "__Host-" + SESSION_COOKIE
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _origin_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class BrowserPolicy:
    public_url: str | None  # GATEWAY_PUBLIC_URL: the origin browsers see, when set
    cors_origins: frozenset[str]

    def scheme(self, request: web.Request) -> str:
        """http or https, as the browser sees the gateway. X-Forwarded-Proto is the TLS proxy's
        word; a client that forges it only changes which cookie name its own request is read with."""
        if self.public_url:
            return urlsplit(self.public_url).scheme.lower()
        forwarded = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
        return forwarded if forwarded in ("http", "https") else request.scheme

    def cookie_name(self, request: web.Request) -> str:
        return SECURE_SESSION_COOKIE if self.scheme(request) == "https" else SESSION_COOKIE

    def own_origin(self, request: web.Request) -> str:
        if self.public_url:
            return _origin_of(self.public_url)
        return f"{self.scheme(request)}://{request.host}".lower()

    def check_cookie_request(self, request: web.Request) -> None:
        """Raise 403 unless this cookie-authenticated request may change state."""
        if request.method in SAFE_METHODS:
            return
        origin = request.headers.get("Origin")
        if origin is None:
            ours = request.headers.get("Sec-Fetch-Site") == "same-origin"
        else:
            origin = origin.rstrip("/")
            ours = origin.lower() == self.own_origin(request) or origin in self.cors_origins
        if not ours:
            raise ApiError(
                403,
                "A session cookie is accepted only from this gateway's own pages or an allowed "
                "origin; API clients send 'Authorization: Bearer …'.",
                "cross_site_request",
            )
        if not is_json(request.headers.get("Content-Type")):
            raise ApiError(
                403,
                "A request with a session cookie must be sent as 'Content-Type: application/json'.",
                "cross_site_request",
            )
