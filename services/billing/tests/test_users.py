"""Sign-in's questions to billing (`auth.user.resolve`): who a signed-in identity is, created on
its first sign-in. The directory against a real database; the subscriber in memory
(TestNatsBroker) and, with the same test body, on a real nats-server asked as the gateway asks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import nats
import pytest
from faststream.nats import NatsBroker, TestNatsBroker

from lobe.billing.migrations import apply_migrations
from lobe.billing.plans import load_plans
from lobe.billing.user_responder import build_user_router
from lobe.billing.users import UserDirectory
from lobe.shared.bus import ask
from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved

Ask = Callable[[bytes], Awaitable[bytes | None]]


def identity(subject: str = "sub-1", email: str = "ann@example.com", provider: str = "oidc") -> UserResolve:
    return UserResolve(request_id="r1", provider=provider, subject=subject, email=email)  # type: ignore[arg-type]


@pytest.fixture
async def directory(billing_db: str) -> AsyncIterator[UserDirectory]:
    await apply_migrations(billing_db)
    pool = await asyncpg.create_pool(billing_db, min_size=1, max_size=2)
    plans = load_plans()
    await pool.executemany(
        "INSERT INTO plans (name, tokens_limit, cost_limit_usd, requests_limit, rate_tier) VALUES ($1, $2, $3, $4, $5)",
        plans.rows(),
    )
    yield UserDirectory(pool, plans)
    await pool.close()


async def test_a_first_sign_in_creates_a_user_on_the_default_plan_and_the_next_finds_it(
    directory: UserDirectory,
) -> None:
    first = await directory.resolve(identity())
    assert first.created
    assert first.user_id.startswith("usr_")
    assert (first.role, first.plan, first.rate_tier) == ("user", "free", "free")
    again = await directory.resolve(identity(email="ann@new-address.example"))
    assert not again.created
    assert again.user_id == first.user_id


async def test_a_first_identity_takes_over_the_account_provisioned_for_its_email_whatever_its_case(
    directory: UserDirectory,
) -> None:
    await directory.pool.execute(
        "INSERT INTO users (id, email, plan, role) VALUES ('alice', 'Alice@Corp.example', 'premium', 'admin')"
    )
    await directory.pool.execute(
        "INSERT INTO plan_overrides (user_id, rate_tier) VALUES ('alice', 'enterprise')"
    )
    github = await directory.resolve(identity("42", "alice@corp.example", "github"))
    assert (github.user_id, github.role, github.plan, github.rate_tier) == (
        "alice",
        "admin",
        "premium",
        "enterprise",
    )
    assert not github.created
    assert (await directory.resolve(identity("42", "alice@corp.example", "github"))).user_id == "alice"


async def test_a_new_identity_claiming_the_email_of_an_account_someone_signs_in_to_gets_its_own_account(
    directory: UserDirectory,
) -> None:
    """The takeover: Alice (an admin) signs in with GitHub; Mallory gets another provider to vouch
    for alice's address. Mallory must not become Alice."""
    await directory.pool.execute(
        "INSERT INTO users (id, email, plan, role) VALUES ('alice', 'alice@corp.example', 'premium', 'admin')"
    )
    assert (await directory.resolve(identity("42", "alice@corp.example", "github"))).user_id == "alice"
    mallory = await directory.resolve(identity("mallory-at-idp", "ALICE@corp.example", "oidc"))
    assert mallory.created
    assert (mallory.user_id, mallory.role, mallory.plan) != ("alice", "admin", "premium")
    assert (mallory.role, mallory.plan) == ("user", "free")
    linked = await directory.pool.fetch(
        "SELECT provider, subject FROM user_identities WHERE user_id = 'alice'"
    )
    assert [tuple(r) for r in linked] == [("github", "42")]
    # The address stays Alice's: a later first sign-in with it cannot find Mallory's account either.
    assert await directory.pool.fetchval("SELECT email FROM users WHERE id = $1", mallory.user_id) is None


async def test_two_identities_signing_in_at_once_with_a_provisioned_email_link_only_one_of_them(
    directory: UserDirectory,
) -> None:
    await directory.pool.execute(
        "INSERT INTO users (id, email, role) VALUES ('alice', 'alice@corp.example', 'admin')"
    )
    answers = await asyncio.gather(
        *(directory.resolve(identity(f"sub-{n}", "alice@corp.example", "oidc")) for n in range(2))
    )
    assert sorted(a.user_id == "alice" for a in answers) == [False, True]
    assert await directory.pool.fetchval("SELECT count(*) FROM user_identities WHERE user_id = 'alice'") == 1


# -- the subscriber ----------------------------------------------------------------------------------
async def stub_resolve(question: UserResolve) -> UserResolved:
    if question.subject == "db-down":
        raise ConnectionRefusedError("connection refused")
    return UserResolved(
        request_id=question.request_id, user_id="usr_1", role="user", plan="free", created=True
    )


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def resolve_over_bus(request: pytest.FixtureRequest) -> AsyncIterator[Ask]:
    if request.param == "memory":
        broker = NatsBroker()
        broker.include_router(build_user_router(stub_resolve))
        async with TestNatsBroker(broker) as test_broker:

            async def in_memory(body: bytes) -> bytes | None:
                reply = await test_broker.request(body, AUTH_USER_RESOLVE, timeout=5)
                return reply.body or None

            yield in_memory
        return
    url = request.getfixturevalue("nats_url")
    broker = NatsBroker(url)
    broker.include_router(build_user_router(stub_resolve))
    async with broker:
        await broker.start()
        nc = await nats.connect(url)

        async def on_the_wire(body: bytes) -> bytes | None:
            return await ask(nc, AUTH_USER_RESOLVE, body, 0.5) or None

        yield on_the_wire
        await nc.close()


async def test_the_subscriber_answers_the_user_for_an_identity(resolve_over_bus: Ask) -> None:
    reply = await resolve_over_bus(identity().encode())
    assert reply is not None
    answer = UserResolved.decode(reply)
    assert (answer.request_id, answer.user_id, answer.created) == ("r1", "usr_1", True)


async def test_with_the_database_away_the_question_stays_unanswered(resolve_over_bus: Ask) -> None:
    assert await resolve_over_bus(identity(subject="db-down").encode()) is None
