"""Billing's FastStream subscribers (queue group `billing`, core NATS request-reply): each takes the
command's model and returns its reply model; the logic is the key table's and Budgets', this module
only wires subjects to it. What is left unanswered, and why: lobe.billing.unanswered.

Budget reserve and price quote, the two commands every chat request sends, are answered by
lobe.billing.admission with nats.py directly: measured, FastStream costs too much there (see there).

Acks: these are core NATS subscriptions, which have none. FastStream's default ack policy (a
JetStream message whose handler raised is terminated, never redelivered) does not apply: nothing
on these subjects is redelivered; the gateway retries or fails the request itself.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from faststream.nats import NatsMessage, NatsRouter
from pydantic import BaseModel

from lobe.billing.keys import KeyOwner
from lobe.billing.unanswered import UNANSWERED_MIDDLEWARE, decode
from lobe.shared.events.auth import AUTH_KEY_VERIFY, KeyVerified, KeyVerify
from lobe.shared.events.billing import BILLING_QUEUE, BUDGET_RELEASE, BudgetRelease

# Commands that wait on PostgreSQL run this many at once per process (the pool queues them for its
# connections); past it, NATS buffers the rest.
DB_WORKERS = 32

KeyOwners = Callable[[bytes], Awaitable[KeyOwner | None]]


class Releases(Protocol):
    async def release(self, req: BudgetRelease) -> None: ...


def build_router(owners: KeyOwners, releases: Releases) -> NatsRouter:
    router = NatsRouter(middlewares=[UNANSWERED_MIDDLEWARE])

    @router.subscriber(
        AUTH_KEY_VERIFY, queue=BILLING_QUEUE, max_workers=DB_WORKERS, decoder=_decoder(KeyVerify)
    )
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

    # Gateways publish releases without waiting; a request for one is answered with an empty body.
    @router.subscriber(
        BUDGET_RELEASE, queue=BILLING_QUEUE, max_workers=DB_WORKERS, decoder=_decoder(BudgetRelease)
    )
    async def release(req: BudgetRelease) -> None:
        await releases.release(req)

    return router


def _decoder(model: type[BaseModel]) -> Callable[[NatsMessage], Awaitable[Any]]:
    """One pass from JSON into the handler's model (FastStream's own goes through a dict)."""

    async def decode_message(message: NatsMessage) -> Any:
        return decode(model, message.raw_message.subject, message.body)

    return decode_message
