"""Account takeover at sign-in, as an attacker tries it: a real OpenID provider (npm oidc-provider)
issues the attacker's ID token for the victim's address, its `email_verified` missing, the string
"false", or true from an account of the attacker's own (another `sub`). Billing and Redis are real,
each gateway is the real application on loopback."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from lobe.devtools.servers.oidc import OidcProviderServer

from ..e2e.sign_in_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    World,
    key_set,
    new_key,
    sign_in,
    world_fixture,  # noqa: F401 (the fixture `world`)
)

KEY = new_key("key-a")
ADMIN = "root@corp.example"


async def _provision_admin(world: World) -> None:
    """What an operator does: `root` created with her address, made admin, before she signs in."""
    conn = await asyncpg.connect(world.database)
    try:
        await conn.execute("INSERT INTO users (id, email, role) VALUES ('root', $1, 'admin')", ADMIN)
    finally:
        await conn.close()


async def _identities_of_root(world: World) -> list[str]:
    conn = await asyncpg.connect(world.database)
    try:
        rows = await conn.fetch("SELECT subject FROM user_identities WHERE user_id = 'root'")
    finally:
        await conn.close()
    return [r["subject"] for r in rows]


@pytest.mark.parametrize("claim", ["absent", '"false"', "false", '"true"', "1", "null"])
async def test_an_id_token_whose_email_verified_is_not_json_true_is_refused_and_links_nothing(
    world: World, claim: str
) -> None:
    await _provision_admin(world)
    gateway = await world.gateway(key_set(KEY))
    attacker = await sign_in(gateway.url, world.provider.url, f"{ADMIN};email_verified={claim}")
    assert (attacker.status, attacker.body["error"]["code"]) == (403, "email_unverified"), attacker.body
    assert attacker.cookie is None
    assert await _identities_of_root(world) == []
    # The address is still root's to claim: her own sign-in makes her the admin she was provisioned as.
    root = await sign_in(gateway.url, world.provider.url, ADMIN)
    assert (root.status, root.body["user"]["id"], root.body["user"]["role"]) == (200, "root", "admin")
    await gateway.runner.cleanup()


async def test_a_provider_trusted_to_verify_every_address_may_omit_the_claim_but_never_say_false(
    world: World,
) -> None:
    gateway = await world.gateway(key_set(KEY), oidc_assume_email_verified=True)
    silent = await sign_in(gateway.url, world.provider.url, "ann@corp.example;email_verified=absent")
    assert silent.status == 200, silent.body
    for claim in ('"false"', "false"):
        said = await sign_in(gateway.url, world.provider.url, f"bob@corp.example;email_verified={claim}")
        assert (said.status, said.body["error"]["code"]) == (403, "email_unverified")
    await gateway.runner.cleanup()


async def test_a_verified_address_of_an_account_someone_already_signs_in_to_gets_no_part_of_it(
    world: World,
) -> None:
    """The provider vouches for root's address on the attacker's own account there (another `sub`),
    after root has signed in: the attacker gets a fresh account, not root's (nor her role)."""
    await _provision_admin(world)
    gateway = await world.gateway(key_set(KEY))
    root = await sign_in(gateway.url, world.provider.url, ADMIN)
    assert (root.body["user"]["id"], root.body["user"]["role"]) == ("root", "admin")
    attacker = await sign_in(gateway.url, world.provider.url, f"{ADMIN};email_verified=true")
    assert attacker.status == 200, attacker.body
    assert attacker.body["user"]["id"] != "root"
    assert (attacker.body["user"]["role"], attacker.body["user"]["plan"]) == ("user", "free")
    assert await _identities_of_root(world) == [ADMIN]
    await gateway.runner.cleanup()


async def test_a_second_provider_vouching_for_the_same_address_gets_a_user_of_its_own_not_a_link(
    world: World,
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two providers in one gateway (OIDC_* and OIDC_PROVIDERS=partner): root signs in with the
    first; the second then vouches (email_verified true) for her address on an account of its own.
    Identities are keyed by (provider, subject), and billing links by e-mail only to an account no
    identity holds yet: the second provider's user is someone else, and stays so."""
    partner = make_oidc_provider(
        [
            {
                "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [f"http://127.0.0.1:{world.ports[0]}/auth/callback/partner"],
            }
        ]
    )
    for name, value in {
        "OIDC_PROVIDERS": "partner",
        "OIDC_PARTNER_ISSUER": partner.url,
        "OIDC_PARTNER_CLIENT_ID": CLIENT_ID,
        "OIDC_PARTNER_CLIENT_SECRET": CLIENT_SECRET,
    }.items():
        monkeypatch.setenv(name, value)
    await _provision_admin(world)
    gateway = await world.gateway(key_set(KEY))
    root = await sign_in(gateway.url, world.provider.url, ADMIN)
    assert (root.body["user"]["id"], root.body["user"]["role"]) == ("root", "admin")
    other = await sign_in(gateway.url, partner.url, ADMIN, provider="partner")
    assert other.status == 200, other.body
    assert other.body["user"]["id"] != "root"
    assert (other.body["user"]["role"], other.body["user"]["plan"]) == ("user", "free")
    again = await sign_in(gateway.url, partner.url, ADMIN, provider="partner")
    assert again.body["user"]["id"] == other.body["user"]["id"]
    conn = await asyncpg.connect(world.database)
    try:
        rows = await conn.fetch("SELECT provider, user_id FROM user_identities ORDER BY provider")
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("oidc", "root"), ("partner", other.body["user"]["id"])]
    await gateway.runner.cleanup()


# -- return_to: the sign-in as an open redirect ------------------------------------------------------
OPEN_REDIRECTS = [
    "/%09/evil.example",  # a tab, which browsers strip: //evil.example
    "/%0a/evil.example",
    "/%0d%0a/evil.example",
    "%09//evil.example",
    "/%20/evil.example",
    "//evil.example",
    "/%5Cevil.example",  # a backslash, which browsers read as a slash
    "/%5C%5Cevil.example",
    "/%2509/evil.example",  # encoded twice
    "/%252F/evil.example",
    "https://evil.example/",
    "https://chat.corp.example@evil.example/",
    "javascript:alert(1)",
    "evil.example",
]


async def test_return_to_off_this_origin_is_dropped_and_the_sign_in_answers_json(world: World) -> None:
    gateway = await world.gateway(key_set(KEY), cors_allowed_origins="https://chat.corp.example")
    for attack in OPEN_REDIRECTS:
        signed = await sign_in(gateway.url, world.provider.url, "ann@corp.example", return_to=attack)
        assert (signed.status, signed.location) == (200, None), attack
        assert signed.body["token_type"] == "Bearer"
    for fine in ("/chat?thread=1", "https://chat.corp.example/after"):
        signed = await sign_in(gateway.url, world.provider.url, "ann@corp.example", return_to=fine)
        assert (signed.status, signed.location) == (303, fine)
        assert signed.cookie is not None
    await gateway.runner.cleanup()
