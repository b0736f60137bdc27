"""Every command billing answers (queue group `billing`, core NATS request-reply), wired to its
logic on the bus (lobe.shared.bus): each handler takes the command's model and returns its reply
model; the logic is Budgets', the key table's and UserDirectory's. What is left unanswered, and
why: lobe.billing.unanswered.

Handlers that wait on PostgreSQL run up to a bound at once, each in a task (past it, NATS buffers
the rest); the quote, pure arithmetic, runs in the subscription's callback.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Protocol

from lobe.billing.keys import KeyOwner
from lobe.billing.own_keys import OwnKeys
from lobe.billing.unanswered import UNANSWERED, log_unanswered
from lobe.shared.bus import BusCalls
from lobe.shared.events.auth import (
    AUTH_KEY_ISSUE,
    AUTH_KEY_LIST,
    AUTH_KEY_REVOKE,
    AUTH_KEY_VERIFY,
    AUTH_USER_RESOLVE,
    KeyVerified,
    KeyVerify,
    UserResolve,
    UserResolved,
)
from lobe.shared.events.billing import (
    BUDGET_LEASE,
    BUDGET_RELEASE,
    BUDGET_RESERVE,
    PRICE_QUOTE,
    BudgetDecision,
    BudgetRelease,
    BudgetReserve,
    PriceQuote,
    PriceQuoted,
)
from lobe.shared.events.leases import LeaseAsk, LeaseGrants

# Reserves waiting on PostgreSQL at once per process (the pool queues them for its connections);
# the conditional hold keeps concurrent holds correct.
RESERVE_CONCURRENCY = 32
DB_WORKERS = 32  # key lookups and releases
SIGN_IN_WORKERS = 4  # sign-ins are rare next to chat requests

LEASE_WORKERS = 4  # a gateway asks about once per user and lease term, batched

KeyOwners = Callable[[bytes], Awaitable[KeyOwner | None]]
Resolve = Callable[[UserResolve], Awaitable[UserResolved]]
LeaseAsks = Callable[[LeaseAsk], Awaitable[LeaseGrants]]


class Budgets(Protocol):
    async def reserve(self, req: BudgetReserve) -> BudgetDecision: ...
    async def release(self, req: BudgetRelease) -> None: ...
    def quote(self, req: PriceQuote) -> PriceQuoted: ...


async def respond(
    bus: BusCalls,
    owners: KeyOwners,
    budgets: Budgets,
    resolve: Resolve,
    own_keys: OwnKeys | None = None,
    leases: LeaseAsks | None = None,
) -> None:
    """Answer billing's commands until the bus stops its handlers (live at the server on return)."""

    async def verify(ask: KeyVerify) -> KeyVerified:
        owner = await owners(bytes.fromhex(ask.key_sha256))
        if owner is None:
            return KeyVerified(request_id=ask.request_id, valid=False)
        return KeyVerified(
            request_id=ask.request_id,
            valid=True,
            user_id=owner.user_id,
            api_key_id=owner.api_key_id,
            plan=owner.plan,
            rate_tier=owner.rate_tier,
        )

    rules = functools.partial(bus.responds, quiet=UNANSWERED, on_unanswered=log_unanswered)
    await rules(BUDGET_RESERVE, budgets.reserve, concurrency=RESERVE_CONCURRENCY)
    await rules(PRICE_QUOTE, budgets.quote)
    # Gateways publish releases without waiting; a request for one is answered with an empty body.
    await rules(BUDGET_RELEASE, budgets.release, concurrency=DB_WORKERS)
    if leases is not None:  # unanswered otherwise: every gateway's request takes the exact hold
        await rules(BUDGET_LEASE, leases, concurrency=LEASE_WORKERS)
    await rules(AUTH_KEY_VERIFY, verify, concurrency=DB_WORKERS)
    # A database that is away leaves a sign-in unanswered: the gateway's sign-in answers 503.
    await rules(AUTH_USER_RESOLVE, resolve, concurrency=SIGN_IN_WORKERS)
    if own_keys is None:  # tests of the other commands
        return
    # A user's own keys, as rare as sign-ins.
    await rules(AUTH_KEY_ISSUE, own_keys.issue, concurrency=SIGN_IN_WORKERS)
    await rules(AUTH_KEY_LIST, own_keys.list, concurrency=SIGN_IN_WORKERS)
    await rules(AUTH_KEY_REVOKE, own_keys.revoke, concurrency=SIGN_IN_WORKERS)
