"""Sign-in with an OpenID provider (lobe.gateway.auth: sign_in, sign_in_flow, oidc, routes) against a
real provider that requires PKCE and checks the nonce, billing's user lookup answered on the real
bus, sessions in real Redis. A browser's requests are sent as it sends them: cookies by hand."""

from __future__ import annotations

import base64
import hashlib
import time

from joserfc import jwt
from joserfc.jwk import KeySet
from nats.aio.client import Client as NATS

from lobe.devtools.servers.oidc import OidcProviderServer
from lobe.gateway.auth.session_tokens import TokenSigner
from lobe.gateway.auth.sign_in_flow import FLOW_AUDIENCE, SignInFlow, seal
from lobe.gateway.auth.signing_keys import load_key_ring
from lobe.shared.events.auth import AUTH_LOGIN_FAILED, AUTH_LOGIN_SUCCEEDED, LoginFailed, LoginSucceeded

from .signing_in import (
    CALLBACKS,
    CLIENT_ID,
    PUBLIC_URLS,
    SESSION_KEYS,
    FakeBilling,
    at_provider,
    begin,
    callback,
    send,
    sign_in_gateway,
    signed_in,
)
from .support import collected

ANN = "ann@corp.example"


def flow_signer() -> TokenSigner:
    ring = load_key_ring(SESSION_KEYS, None)
    assert ring is not None
    return TokenSigner(ring)


async def test_login_sends_the_browser_to_the_provider_with_pkce_state_and_nonce_bound_to_a_flow_cookie(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        first, second = await begin(gateway), await begin(gateway)
    query = first.query
    assert first.location.startswith(f"{oidc_provider.url}/")
    assert (query["response_type"], query["client_id"], query["redirect_uri"]) == (
        "code",
        CLIENT_ID,
        CALLBACKS[0],
    )
    assert query["code_challenge_method"] == "S256"
    assert "openid" in query["scope"].split()
    cookie = first.cookie
    assert (cookie["httponly"], cookie["secure"], cookie["samesite"], cookie["path"]) == (
        True,
        True,
        "Lax",
        "/auth/callback/oidc",
    )
    flow = SignInFlow.model_validate(flow_signer().open(cookie.value, FLOW_AUDIENCE))
    assert (flow.state, flow.nonce) == (query["state"], query["nonce"])
    digest = hashlib.sha256(flow.verifier.encode()).digest()
    assert query["code_challenge"] == base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert flow.verifier not in first.location  # only its hash leaves the browser
    assert {second.query[k] for k in ("state", "nonce", "code_challenge")}.isdisjoint(query.values())


async def test_a_sign_in_issues_the_session_cookie_and_the_gateway_accepts_the_session(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling, nc: NATS
) -> None:
    facts = await collected(nc, AUTH_LOGIN_SUCCEEDED, LoginSucceeded)
    async with sign_in_gateway(nats_url, redis_url, oidc_provider, session_ttl_s=600) as gateway:
        reply = await signed_in(gateway, oidc_provider, ANN)
        assert reply.status == 200, reply.body
        token = reply.body["access_token"]
        user_id = FakeBilling.user_id(ANN)
        assert reply.body["user"] == {
            "id": user_id,
            "email": ANN,
            "role": "user",
            "plan": "pro",
            "rate_tier": None,
        }
        assert 590 <= reply.body["expires_in"] <= 600
        cookie = reply.cookies["lobe_session"]
        assert cookie.value == token
        assert (
            cookie["httponly"],
            cookie["secure"],
            cookie["samesite"],
            cookie["path"],
            cookie["domain"],
        ) == (
            True,
            True,
            "Lax",
            "/",
            "",
        )
        assert 590 <= int(cookie["max-age"]) <= 600
        assert reply.headers["Cache-Control"] == "no-store"
        assert reply.cookies["lobe_sign_in"]["max-age"] == "0"  # the flow is spent
        [question] = fake_billing.asked
        assert (question.provider, question.email) == ("oidc", ANN)
        session = await send(gateway, "GET", "/auth/session", {"Cookie": f"lobe_session={token}"})
        assert session.status == 200
        assert (session.body["id"], session.body["email"]) == (user_id, ANN)
        bearer = await send(gateway, "GET", "/auth/session", {"Authorization": f"Bearer {token}"})
        assert bearer.body["session_id"] == session.body["session_id"]
    [fact] = facts
    assert (fact.user_id, fact.session_id, fact.provider, fact.new_user) == (
        user_id,
        session.body["session_id"],
        "oidc",
        True,
    )


async def test_over_https_the_session_cookie_is_host_prefixed_and_only_that_name_is_read(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider, public_url=PUBLIC_URLS[1]) as gateway:
        flow = await begin(gateway)
        assert flow.query["redirect_uri"] == CALLBACKS[1]
        reply = await callback(gateway, await at_provider(flow, oidc_provider, ANN), flow.cookie.value)
        assert reply.status == 200, reply.body
        assert "lobe_session" not in reply.cookies
        cookie = reply.cookies["__Host-lobe_session"]
        assert (cookie["secure"], cookie["path"], cookie["domain"]) == (True, "/", "")
        token = cookie.value
        accepted = await send(gateway, "GET", "/auth/session", {"Cookie": f"__Host-lobe_session={token}"})
        assert accepted.status == 200
        planted = await send(gateway, "GET", "/auth/session", {"Cookie": f"lobe_session={token}"})
        assert planted.status == 401


async def test_a_callback_whose_state_is_not_the_flow_cookies_is_refused_before_the_code_is_redeemed(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling, nc: NATS
) -> None:
    failures = await collected(nc, AUTH_LOGIN_FAILED, LoginFailed)
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        victims, attackers = await begin(gateway), await begin(gateway)
        # Login CSRF: the attacker's own code and state, in the victim's browser with its flow cookie.
        path = await at_provider(attackers, oidc_provider, "mallory@corp.example")
        crossed = await callback(gateway, path, victims.cookie.value)
        bare = await callback(gateway, path, None)
        forged = await callback(gateway, path, victims.cookie.value[:-4] + "AAAA")
        for refused in (crossed, bare, forged):
            assert refused.status == 400
            assert refused.body["error"]["code"] == "state_mismatch"
            assert "lobe_session" not in refused.cookies
        assert fake_billing.asked == []
        # The code was never redeemed: its own browser still signs in with it.
        assert (await callback(gateway, path, attackers.cookie.value)).status == 200
    assert [f.reason for f in failures] == ["state_mismatch"] * 3


async def test_a_code_is_redeemed_once_only(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        flow = await begin(gateway)
        path = await at_provider(flow, oidc_provider, ANN)
        assert (await callback(gateway, path, flow.cookie.value)).status == 200
        replayed = await callback(gateway, path, flow.cookie.value)
        assert replayed.status == 400
        assert replayed.body["error"]["code"] == "code_refused"
        assert len(fake_billing.asked) == 1


async def test_a_wrong_pkce_verifier_or_nonce_is_refused_and_no_session_is_issued(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    signer = flow_signer()  # as if the flow cookie could be re-sealed: what the provider checks
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        for change, status, code in (
            ({"verifier": "v" * 64}, 400, "code_refused"),  # the provider checks PKCE
            ({"nonce": "another-sign-ins-nonce"}, 502, "token_invalid"),  # we check the nonce
        ):
            flow = await begin(gateway)
            path = await at_provider(flow, oidc_provider, ANN)
            genuine = SignInFlow.model_validate(signer.open(flow.cookie.value, FLOW_AUDIENCE))
            altered = seal(signer, genuine.model_copy(update=change))
            refused = await callback(gateway, path, altered)
            assert (refused.status, refused.body["error"]["code"]) == (status, code), refused.body
            assert "lobe_session" not in refused.cookies
        assert fake_billing.asked == []


async def test_an_address_the_provider_does_not_vouch_for_is_refused(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        for claim in ("false", '"true"', "absent"):
            refused = await signed_in(gateway, oidc_provider, f"{ANN};email_verified={claim}")
            assert (refused.status, refused.body["error"]["code"]) == (403, "email_unverified")
        assert fake_billing.asked == []


async def test_logout_ends_the_session_and_clears_the_cookie(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        token = (await signed_in(gateway, oidc_provider, ANN)).body["access_token"]
        cookie = {"Cookie": f"lobe_session={token}"}
        cross_site = await send(gateway, "POST", "/auth/logout", {**cookie, "Origin": "https://evil.example"})
        assert (cross_site.status, cross_site.body["error"]["code"]) == (403, "cross_site_request")
        assert (await send(gateway, "GET", "/auth/session", cookie)).status == 200
        own_page = {**cookie, "Origin": PUBLIC_URLS[0], "Content-Type": "application/json"}
        out = await send(gateway, "POST", "/auth/logout", own_page)
        assert out.status == 200
        assert out.body["signed_out"] is True
        assert out.cookies["lobe_session"].value == ""
        assert out.cookies["lobe_session"]["max-age"] == "0"
        after = await send(gateway, "GET", "/auth/session", cookie)
        assert after.status == 401
        bearer = await send(gateway, "GET", "/auth/session", {"Authorization": f"Bearer {token}"})
        assert bearer.status == 401


async def test_the_jwks_endpoint_publishes_the_public_keys_that_verify_sessions(
    nats_url: str, redis_url: str, oidc_provider: OidcProviderServer, fake_billing: FakeBilling
) -> None:
    async with sign_in_gateway(nats_url, redis_url, oidc_provider) as gateway:
        token = (await signed_in(gateway, oidc_provider, ANN)).body["access_token"]
        published = await send(gateway, "GET", "/.well-known/jwks.json")
    assert published.status == 200
    assert [k["kid"] for k in published.body["keys"]] == ["k1"]
    assert all("d" not in k for k in published.body["keys"])  # the public halves only
    decoded = jwt.decode(token, KeySet.import_key_set(published.body))
    assert decoded.header["kid"] == "k1"
    assert (decoded.claims["iss"], decoded.claims["aud"], decoded.claims["sub"]) == (
        "lobe-gateway",
        "lobe",
        FakeBilling.user_id(ANN),
    )
    assert decoded.claims["exp"] > time.time()
