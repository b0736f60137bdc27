"""Admin operations: users, keys, plans, limits, usage resets. Each is one method that writes the
change and announces it as a fact, and the admin HTTP API, `lobe admin` and `lobe dev` all call these, so no
path changes an account without the gateways hearing of it (they cache who a key belongs to and
on which plan for KEY_CACHE_TTL_S, and drop that on `auth.key.revoked` and
`billing.account.changed`).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeAlias

import asyncpg
import nats
from nats.js import JetStreamContext

from lobe.billing import periods
from lobe.billing.errors import NotAnnouncedError, NotFoundError, UnknownPlanError, UserExistsError
from lobe.billing.keys import display_prefix, hash_key, new_key
from lobe.billing.plans import Override, PlanBook, load_plans
from lobe.shared.bus import connect_options, ensure_streams, publish_fact
from lobe.shared.events.auth import AUTH_KEY_ISSUED, AUTH_KEY_REVOKED, ApiKeyIssued, ApiKeyRevoked
from lobe.shared.events.billing import (
    BILLING_ACCOUNT_CHANGED,
    BILLING_USAGE_RESET,
    AccountChanged,
    UsageReset,
)
from lobe.shared.events.envelope import Event
from lobe.shared.settings import NatsSettings

Db: TypeAlias = asyncpg.Pool | asyncpg.Connection
# A change a gateway must hear of is retried this often (about 0.3 s of backoff) before the call fails.
ANNOUNCE_ATTEMPTS = 3

_SET_LIMITS = """
WITH o AS (
    INSERT INTO plan_overrides (user_id, tokens_limit, cost_limit_usd, requests_limit, rate_tier)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (user_id) DO UPDATE SET tokens_limit = excluded.tokens_limit,
        cost_limit_usd = excluded.cost_limit_usd, requests_limit = excluded.requests_limit,
        rate_tier = excluded.rate_tier, updated_at = now()
    RETURNING user_id
)
SELECT u.plan FROM users u JOIN o ON o.user_id = u.id
"""


@dataclass(frozen=True)
class IssuedKey:
    id: str
    user_id: str
    key: str  # the secret: returned once, never stored
    prefix: str


Role = Literal["user", "admin"]


@dataclass(frozen=True)
class CreatedUser:
    plan: str
    created: bool  # False: the user existed already, as asked, and is unchanged


class Admin:
    def __init__(self, db: Db, js: JetStreamContext, plans: PlanBook) -> None:
        self.db = db
        self.js = js
        self.plans = plans

    async def create_user(
        self, user_id: str, plan: str | None = None, email: str | None = None
    ) -> CreatedUser:
        """Create the user on `plan` (the plans file's default when None). An existing user is never
        changed here: asked again with the same plan and e-mail (or none) it is left as it is
        (idempotent for scripts); with another one, UserExistsError. A plan changes with set_plan,
        a role with set_role; an address never (sign-in links by it)."""
        wanted = self._known(plan or self.plans.spec.default_plan)
        inserted = await self.db.fetchval(
            "INSERT INTO users (id, plan, email) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING RETURNING id",
            user_id,
            wanted,
            email,
        )
        if inserted is None:
            row = await self.db.fetchrow("SELECT plan, email FROM users WHERE id = $1", user_id)
            differs = {
                field: (row[field], given)
                for field, given in (("plan", plan), ("email", email))
                if given is not None and given != row[field]
            }
            if differs:
                raise UserExistsError(user_id, differs)
            return CreatedUser(row["plan"], created=False)
        await self._announce(
            BILLING_ACCOUNT_CHANGED, AccountChanged(request_id=user_id, user_id=user_id, plan=wanted)
        )
        return CreatedUser(wanted, created=True)

    async def issue_key(self, user_id: str, name: str | None = None, key: str | None = None) -> IssuedKey:
        """Issue a key (or register a given one, e.g. `lobe dev`'s fixed dev key)."""
        key = key or new_key()
        issued = IssuedKey("key_" + secrets.token_hex(8), user_id, key, display_prefix(key))
        try:
            await self.db.execute(
                "INSERT INTO api_keys (id, user_id, key_hash, prefix, name) VALUES ($1, $2, $3, $4, $5)",
                issued.id,
                user_id,
                hash_key(key),
                issued.prefix,
                name,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFoundError("user", user_id) from exc
        # Audit only (no cache waits for it), and the key is shown once: a lost announcement is
        # logged by publish_fact rather than failing the call and losing the key with it.
        fact = ApiKeyIssued(
            request_id=issued.id, user_id=user_id, api_key_id=issued.id, key_prefix=issued.prefix
        )
        await publish_fact(self.js, AUTH_KEY_ISSUED, fact, attempts=ANNOUNCE_ATTEMPTS)
        return issued

    async def revoke_key(self, key_id: str) -> str:
        """Revoke a key; returns its user id. Revoking twice keeps the first revocation time and
        announces it again (the way to retry a revocation whose announcement failed)."""
        user_id = await self.db.fetchval(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING user_id",
            key_id,
        )
        if user_id is None:
            raise NotFoundError("api key", key_id)
        await self._announce(
            AUTH_KEY_REVOKED, ApiKeyRevoked(request_id=key_id, user_id=user_id, api_key_id=key_id)
        )
        return str(user_id)

    async def set_plan(self, user_id: str, plan: str) -> None:
        self._known(plan)
        if (
            await self.db.fetchval("UPDATE users SET plan = $2 WHERE id = $1 RETURNING id", user_id, plan)
            is None
        ):
            raise NotFoundError("user", user_id)
        await self._announce(
            BILLING_ACCOUNT_CHANGED, AccountChanged(request_id=user_id, user_id=user_id, plan=plan)
        )

    async def set_role(self, user_id: str, role: Role) -> None:
        """Make a user an admin (or not). Sessions carry the role they were signed with: the gateways
        end the user's sessions when they hear the announcement (as for a plan or limits change)."""
        plan = await self.db.fetchval(
            "UPDATE users SET role = $2 WHERE id = $1 RETURNING plan", user_id, role
        )
        if plan is None:
            raise NotFoundError("user", user_id)
        await self._announce(
            BILLING_ACCOUNT_CHANGED, AccountChanged(request_id=user_id, user_id=user_id, plan=plan)
        )

    async def set_limits(self, user_id: str, override: Override) -> None:
        """Replace the user's overrides (None = use the plan's value)."""
        try:
            plan = await self.db.fetchval(
                _SET_LIMITS,
                user_id,
                override.tokens,
                override.cost_usd,
                override.requests,
                override.rate_tier,
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise NotFoundError("user", user_id) from exc
        await self._announce(
            BILLING_ACCOUNT_CHANGED, AccountChanged(request_id=user_id, user_id=user_id, plan=plan)
        )

    async def reset_usage(self, user_id: str) -> periods.Reset:
        """Close the user's current period and open a new one: limits count from now, the ledger
        keeps every row (lobe.billing.periods). Not idempotent (each call opens a period), so the
        fact is announced as an audit record, like an issued key: a lost announcement is logged
        rather than failing a reset that is committed."""
        if await self.db.fetchval("SELECT 1 FROM users WHERE id = $1", user_id) is None:
            raise NotFoundError("user", user_id)
        if isinstance(self.db, asyncpg.Pool):
            async with self.db.acquire() as conn:
                done = await periods.reset(conn, self.plans, user_id)
        else:
            done = await periods.reset(self.db, self.plans, user_id)
        fact = UsageReset(
            request_id=user_id,
            user_id=user_id,
            closed_period=done.closed,
            period=done.opened,
            started_at=done.at,
        )
        await publish_fact(self.js, BILLING_USAGE_RESET, fact, attempts=ANNOUNCE_ATTEMPTS)
        return done

    def _known(self, plan: str) -> str:
        if plan not in self.plans.spec.plans:
            raise UnknownPlanError(plan, sorted(self.plans.spec.plans))
        return plan

    async def _announce(self, subject: str, event: Event) -> None:
        """The change is committed; until the gateways hear of it they act on their cached answer."""
        if not await publish_fact(self.js, subject, event, attempts=ANNOUNCE_ATTEMPTS):
            raise NotAnnouncedError(subject, event.request_id)


@asynccontextmanager
async def admin_session(
    database_url: str,
    nats_url: str,
    plans_file: Path | str | None = None,
    nats_overrides: Mapping[str, Any] | None = None,
) -> AsyncIterator[Admin]:
    """Admin for a one-off task (`lobe admin`, `lobe dev`): its own PostgreSQL and NATS connections.
    The streams are declared here too, so a change made before billing first started is kept.
    `nats_overrides`: NatsSettings fields (the operator's NATS user); the rest comes from the environment."""
    plans = load_plans(plans_file)
    # NATS_STREAM_REPLICAS (and, for `lobe admin`, NATS_USER) from the environment.
    settings = NatsSettings(nats_url=nats_url, **(nats_overrides or {}))
    # Replies arrive under the NATS user's inbox: `admin` for the operator, `billing` in a billing pod.
    options = connect_options(settings, "admin (lobe admin)")
    # A command gives up on an unreachable server (NoServersError) instead of retrying forever,
    # and that error reaches the caller: nats.py need not log it too.
    nc = await nats.connect(**{**options, "max_reconnect_attempts": 1}, error_cb=_raised_anyway)
    try:
        js = nc.jetstream()
        await ensure_streams(js, replicas=settings.nats_stream_replicas, owner=True)
        conn = await asyncpg.connect(database_url)
        try:
            yield Admin(conn, js, plans)
        finally:
            await conn.close()
    finally:
        await nc.drain()


async def _raised_anyway(exc: Exception) -> None:
    pass


# $1 user. Also a part of lobe.billing.budgets' reserve, which reads it in the same round trip.
ACCOUNT = """SELECT u.plan, o.tokens_limit, o.cost_limit_usd, o.requests_limit, o.rate_tier
   FROM users u LEFT JOIN plan_overrides o ON o.user_id = u.id WHERE u.id = $1"""


async def account(db: Db, user_id: str) -> tuple[str | None, Override]:
    """The user's plan name (None for a user billing has only seen in usage) and overrides."""
    return account_of(await db.fetchrow(ACCOUNT, user_id))


def account_of(row: asyncpg.Record | None) -> tuple[str | None, Override]:
    """A row of ACCOUNT's columns (None, or all of them NULL: no such user) as plan and overrides."""
    if row is None:
        return None, Override()
    cost: Decimal | None = row["cost_limit_usd"]
    return row["plan"], Override(row["tokens_limit"], cost, row["requests_limit"], row["rate_tier"])
