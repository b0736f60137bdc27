"""Sign-in's questions to billing (`auth.user.resolve`): who a signed-in identity is, created on
its first sign-in. The directory against a real database; the responder on the in-memory bus and,
with the same test body, on a real nats-server asked as the gateway asks."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import pytest

from lobe.billing.migrations import apply_migrations
from lobe.billing.plans import load_plans
from lobe.billing.users import UserDirectory
from lobe.shared.events.auth import AUTH_USER_RESOLVE, UserResolve, UserResolved
from lobe.shared.events.billing import BudgetDecision, BudgetRelease, BudgetReserve, PriceQuote, PriceQuoted

from .support import responding

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


class NotAsked:
    """Key lookups and budgets: not asked here (test_responders.py)."""

    async def owner(self, key_hash: bytes) -> None:
        raise AssertionError(key_hash)

    async def reserve(self, req: BudgetReserve) -> BudgetDecision:
        raise AssertionError(req)

    async def release(self, req: BudgetRelease) -> None:
        raise AssertionError(req)

    def quote(self, req: PriceQuote) -> PriceQuoted:
        raise AssertionError(req)


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.integration)])
async def resolve_over_bus(request: pytest.FixtureRequest) -> AsyncIterator[Ask]:
    async with responding(request, NotAsked().owner, NotAsked(), stub_resolve) as asking:

        async def resolve(body: bytes) -> bytes | None:
            return await asking(AUTH_USER_RESOLVE, body, 0.5)

        yield resolve


async def test_the_subscriber_answers_the_user_for_an_identity(resolve_over_bus: Ask) -> None:
    reply = await resolve_over_bus(identity().encode())
    assert reply is not None
    answer = UserResolved.decode(reply)
    assert (answer.request_id, answer.user_id, answer.created) == ("r1", "usr_1", True)


async def test_with_the_database_away_the_question_stays_unanswered(resolve_over_bus: Ask) -> None:
    assert await resolve_over_bus(identity(subject="db-down").encode()) is None
