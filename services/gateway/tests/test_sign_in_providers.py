"""Several sign-in providers in one gateway (lobe.gateway.auth.provider_config): Google by its
variables (GOOGLE_CLIENT_ID, …; its issuer pointed at a local provider, there being no internet)
and a named one from OIDC_PROVIDERS (OIDC_KEYCLOAK_*), each a real OpenID provider of its own on
loopback, with its own client and its own e-mail domains, configured through the environment as
an operator does it."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from lobe.devtools.servers.oidc import OidcProviderServer
from lobe.gateway.auth.oidc import OidcProvider
from lobe.gateway.auth.provider_config import SignInConfigError, configured_providers
from lobe.gateway.settings import GatewaySettings

from .signing_in import (
    CLIENT_SECRET,
    SESSION_KEYS,
    FakeBilling,
    at_provider,
    begin,
    callback,
    callbacks,
    send,
    sign_in_gateway,
    signed_in,
)

GOOGLE_CLIENT, KEYCLOAK_CLIENT = "lobe-at-google", "lobe-at-keycloak"


@dataclass
class Providers:
    """The providers one gateway offers: `oidc` (OIDC_*), `google` and `keycloak` (the environment)."""

    nats_url: str
    redis_url: str
    oidc: OidcProviderServer
    google: OidcProviderServer
    keycloak: OidcProviderServer

    def gateway(self, **overrides: Any) -> contextlib.AbstractAsyncContextManager[str]:
        return sign_in_gateway(self.nats_url, self.redis_url, self.oidc, **overrides)


@pytest.fixture
def providers(
    nats_url: str,
    redis_url: str,
    oidc_provider: OidcProviderServer,
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
    monkeypatch: pytest.MonkeyPatch,
) -> Providers:
    """Google and Keycloak: two more providers, each knowing only its own client, set up in the environment."""
    google = make_oidc_provider(
        [{"client_id": GOOGLE_CLIENT, "client_secret": CLIENT_SECRET, "redirect_uris": callbacks("google")}]
    )
    keycloak = make_oidc_provider(
        [
            {
                "client_id": KEYCLOAK_CLIENT,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": callbacks("keycloak"),
            }
        ]
    )
    for name, value in {
        "GOOGLE_CLIENT_ID": GOOGLE_CLIENT,
        "GOOGLE_CLIENT_SECRET": CLIENT_SECRET,
        "GOOGLE_ISSUER": google.url,
        "GOOGLE_ALLOWED_DOMAINS": "gmail.test",
        "OIDC_PROVIDERS": "keycloak",
        "OIDC_KEYCLOAK_ISSUER": keycloak.url,
        "OIDC_KEYCLOAK_CLIENT_ID": KEYCLOAK_CLIENT,
        "OIDC_KEYCLOAK_CLIENT_SECRET": CLIENT_SECRET,
        "OIDC_KEYCLOAK_ALLOWED_DOMAINS": "corp.example",
        "OIDC_KEYCLOAK_DISPLAY_NAME": "Corp SSO",
    }.items():
        monkeypatch.setenv(name, value)
    return Providers(nats_url, redis_url, oidc_provider, google, keycloak)


async def test_one_gateway_signs_in_through_each_provider_and_lists_them_all(
    providers: Providers, fake_billing: FakeBilling
) -> None:
    google, keycloak = providers.google, providers.keycloak
    async with providers.gateway() as gateway:
        listed = await send(gateway, "GET", "/auth/providers")
        at_google = await signed_in(gateway, google, "ann@gmail.test", "google")
        at_keycloak = await signed_in(gateway, keycloak, "bob@corp.example", "keycloak")
        at_oidc = await signed_in(gateway, providers.oidc, "cy@corp.example")  # OIDC_* as before
    assert listed.body["providers"] == [
        {"name": "google", "display_name": "Google", "login_url": "/auth/login/google"},
        {"name": "keycloak", "display_name": "Corp SSO", "login_url": "/auth/login/keycloak"},
        {"name": "oidc", "display_name": "OpenID Connect", "login_url": "/auth/login/oidc"},
    ]
    assert [r.status for r in (at_google, at_keycloak, at_oidc)] == [200, 200, 200]
    assert at_google.body["user"]["email"] == "ann@gmail.test"
    # Billing is asked by (provider name, the provider's subject): the identity's key.
    assert [(q.provider, q.subject) for q in fake_billing.asked] == [
        ("google", "ann@gmail.test"),
        ("keycloak", "bob@corp.example"),
        ("oidc", "cy@corp.example"),
    ]


async def test_each_provider_admits_only_its_own_domains(
    providers: Providers, fake_billing: FakeBilling
) -> None:
    google, keycloak = providers.google, providers.keycloak
    async with providers.gateway(allowed_email_domains="everyone.example") as gateway:
        corp_at_google = await signed_in(gateway, google, "bob@corp.example", "google")
        gmail_at_keycloak = await signed_in(gateway, keycloak, "ann@gmail.test", "keycloak")
        # ALLOWED_EMAIL_DOMAINS is for the providers with no list of their own: not Google's users.
        default_at_google = await signed_in(gateway, google, "eve@everyone.example", "google")
        default_at_oidc = await signed_in(gateway, providers.oidc, "eve@everyone.example")
    for refused in (corp_at_google, gmail_at_keycloak, default_at_google):
        assert (refused.status, refused.body["error"]["code"]) == (403, "domain_not_allowed"), refused.body
        assert "lobe_session" not in refused.cookies
    assert default_at_oidc.status == 200
    assert [q.provider for q in fake_billing.asked] == ["oidc"]


async def test_a_provider_redeems_only_its_own_sign_ins(
    providers: Providers, fake_billing: FakeBilling
) -> None:
    """A flow begun with Google, its callback brought to Keycloak's: refused before any code is spent."""
    google = providers.google
    async with providers.gateway() as gateway:
        flow = await begin(gateway, "google")
        path = await at_provider(flow, google, "ann@gmail.test", "google")
        crossed = await callback(
            gateway, path.replace("/callback/google", "/callback/keycloak"), flow.cookie.value
        )
    assert (crossed.status, crossed.body["error"]["code"]) == (400, "state_mismatch")
    assert fake_billing.asked == []


def settings(**values: Any) -> GatewaySettings:
    return GatewaySettings(session_keys=SecretStr(SESSION_KEYS), **values)


@pytest.mark.parametrize(
    ("names", "env", "says"),
    [
        ("keycloak", {}, "OIDC_KEYCLOAK_CLIENT_ID"),
        ("keycloak", {"OIDC_KEYCLOAK_CLIENT_ID": "c"}, "OIDC_KEYCLOAK_ISSUER"),
        ("github", {}, "GITHUB_*"),
        ("google", {}, "GOOGLE_*"),
        ("Key-Cloak", {}, "not a name"),
        ("a,b,a", {"OIDC_A_CLIENT_ID": "c", "OIDC_A_ISSUER": "https://a"}, "twice"),
    ],
)
def test_a_broken_provider_list_stops_the_gateway_with_the_variable_to_fix(
    monkeypatch: pytest.MonkeyPatch, names: str, env: dict[str, str], says: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SignInConfigError, match=says.replace("*", r"\*")):
        configured_providers(settings(oidc_providers=names))


def test_google_is_discovered_at_its_well_known_url_unless_the_issuer_is_overridden() -> None:
    google = configured_providers(settings(google_client_id="id.apps.googleusercontent.com"))["google"]
    assert isinstance(google, OidcProvider)
    assert google.discovery_url == "https://accounts.google.com/.well-known/openid-configuration"
    assert configured_providers(settings()) == {}
