"""The sign-in routes and the session's own: login, callback, logout, who-am-I, and the JWKS.

GET  /auth/login/{provider}     ?return_to=/path  -> 302 to the provider
GET  /auth/callback/{provider}  -> the session: cookie + 303 to return_to, or cookie + JSON token
POST /auth/logout               -> the session ends on every replica
GET  /auth/session              -> the session's claims
GET  /auth/providers            -> the providers configured here, with their login URLs
GET  /.well-known/jwks.json     -> the public keys that verify sessions
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from lobe.gateway.auth.assembly import AUTH
from lobe.gateway.auth.identity import SignInRefused
from lobe.gateway.auth.sign_in import SignIn
from lobe.gateway.auth.sign_in_flow import CALLBACK_PATH, FLOW_COOKIE, FLOW_TTL_S
from lobe.gateway.redis_pool import REDIS_ERRORS
from lobe.gateway.resources import SETTINGS
from lobe.shared.openai_errors import ApiError

JWKS_PATH = "/.well-known/jwks.json"


def _sign_in(request: web.Request) -> SignIn:
    sign_in = request.app[AUTH].sign_in
    if sign_in is None:
        raise ApiError(404, "Sign-in is not configured on this gateway.", "sign_in_disabled")
    return sign_in


def _refused(refused: SignInRefused) -> ApiError:
    return ApiError(refused.status, refused.message, refused.reason, headers={"Cache-Control": "no-store"})


async def login(request: web.Request) -> web.StreamResponse:
    await request.app[AUTH].guard.sign_in(request)
    provider = request.match_info["provider"]
    try:
        url, flow = await _sign_in(request).begin(request, provider)
    except SignInRefused as refused:
        raise _refused(refused) from None
    response = web.Response(status=302, headers={"Location": url, "Cache-Control": "no-store"})
    # SameSite=Lax: the provider's redirect back is a top-level navigation, which Lax lets through.
    response.set_cookie(
        FLOW_COOKIE,
        flow,
        max_age=FLOW_TTL_S,
        path=CALLBACK_PATH + provider,
        httponly=True,
        secure=True,
        samesite="Lax",
    )
    return response


async def callback(request: web.Request) -> web.StreamResponse:
    await request.app[AUTH].guard.sign_in(request)
    provider = request.match_info["provider"]
    try:
        session, return_to = await _sign_in(request).finish(request, provider)
    except SignInRefused as refused:
        raise _refused(refused) from None
    claims = session.claims
    response: web.StreamResponse
    if return_to:
        response = web.Response(status=303, headers={"Location": return_to})
    else:
        response = web.json_response(
            {
                "access_token": session.token,
                "token_type": "Bearer",
                "expires_in": claims.seconds_left(),
                "user": _user(claims.model_dump()),
            }
        )
    response.headers["Cache-Control"] = "no-store"
    _set_session_cookie(request, response, session.token, claims.seconds_left())
    response.del_cookie(FLOW_COOKIE, path=CALLBACK_PATH + provider)
    return response


async def logout(request: web.Request) -> web.Response:
    parts = request.app[AUTH]
    session = await parts.auth.session(request)
    name = parts.auth.browser.cookie_name(request)
    cleared = {"Set-Cookie": f"{name}=; Max-Age=0; Path=/; HttpOnly; Secure"}
    if parts.sessions is None:  # sessions are off: no session could have been valid
        raise ApiError(404, "Sign-in is not configured on this gateway.", "sign_in_disabled")
    try:
        await parts.sessions.end(session.sub, session.sid, session.exp, "signed_out")
    except REDIS_ERRORS:
        raise ApiError(
            503, "Sign-out is unavailable right now; retry shortly.", "sessions_unavailable", headers=cleared
        ) from None
    response = web.json_response({"signed_out": True, "session_id": session.sid})
    response.del_cookie(name, path="/", secure=True, httponly=True)  # a `__Host-` one needs Secure
    return response


async def current_session(request: web.Request) -> web.Response:
    session = await request.app[AUTH].auth.session(request)
    return web.json_response(
        {**_user(session.model_dump()), "session_id": session.sid, "expires_at": session.exp}
    )


async def providers(request: web.Request) -> web.Response:
    """What a sign-in page offers: each provider's name, what to call it, and where to send the browser."""
    sign_in = request.app[AUTH].sign_in
    found = sign_in.providers if sign_in else {}
    listed = [
        {"name": name, "display_name": found[name].display_name, "login_url": f"/auth/login/{name}"}
        for name in sorted(found)
    ]
    return web.json_response({"providers": listed})


async def jwks(request: web.Request) -> web.Response:
    ring = request.app[AUTH].key_ring
    body = ring.public_jwks() if ring else {"keys": []}
    return web.json_response(body, headers={"Cache-Control": "public, max-age=300"})


def _user(claims: dict[str, Any]) -> dict[str, Any]:
    fields = ("sub", "email", "role", "plan", "rate_tier")
    user = {name: claims.get(name) for name in fields}
    return {"id": user.pop("sub"), **user}


def _set_session_cookie(request: web.Request, response: web.StreamResponse, token: str, max_age: int) -> None:
    samesite = request.app[SETTINGS].session_cookie_samesite
    # Secure, Path=/ and no Domain: what a `__Host-` name (over HTTPS) requires of it.
    response.set_cookie(
        request.app[AUTH].auth.browser.cookie_name(request),
        token,
        max_age=max_age,
        path="/",
        httponly=True,
        secure=True,
        samesite=samesite.capitalize(),
    )


def add_auth_routes(app: web.Application) -> None:
    app.router.add_get("/auth/login/{provider}", login)
    app.router.add_get(CALLBACK_PATH + "{provider}", callback)
    app.router.add_post("/auth/logout", logout)
    app.router.add_get("/auth/session", current_session)
    app.router.add_get("/auth/providers", providers)
    app.router.add_get(JWKS_PATH, jwks)
