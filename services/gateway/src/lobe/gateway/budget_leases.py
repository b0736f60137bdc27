"""The gateway's budget leases (docs/billing.md, "Budget leases"): admit a user's chat and
embeddings requests locally, against a part of their budget billing set aside for this replica.

One lease per user and model. A request is admitted under it when its worst case (its token
ceiling and output cap at the lease's hold rate, lobe.shared.token_cost: billing's own arithmetic)
fits in what the lease has not admitted yet, in requests, tokens and cost, within its term; else
the caller takes the exact hold. Billing is asked in the background, one ask at a time, each
carrying every want and return gathered since the last: a want when a user and model have no
lease, or when theirs is past half its requests or half its term (renewed ahead of need); a
return when a lease is replaced (also when it cannot cover a request: the new one is sized by that
request), ends its term, or the gateway stops.

A request admitted under a lease that no usage event will settle (it never reached a worker) is
given back here: to the lease while it is live, in a return once it was returned.

The same grants carry today's prices of the model's upstreams, so the final chunk of an answer is
priced here without a quote (`price`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from lobe.shared.bus import Bus
from lobe.shared.events.billing import BUDGET_LEASE
from lobe.shared.events.chat import TokenUsage
from lobe.shared.events.leases import (
    LeaseAsk,
    LeaseCharge,
    LeaseGrant,
    LeaseGrants,
    LeaseReturn,
    LeaseWant,
    UpstreamPrice,
)
from lobe.shared.token_cost import COST_QUANTUM, token_cost

log = logging.getLogger(__name__)

# After billing grants no lease for a user and model (near a limit), or does not answer, they go
# the exact way this long before the next ask: a user near their limit costs billing no extra asks.
NO_LEASE_BACKOFF_S = 5.0
CLOSE_TIMEOUT_S = 1.0  # the last returns, on shutdown; a return not made is freed by expiry

Key = tuple[str, str]  # (user, model)


@dataclass(eq=False)
class Lease:
    grant: LeaseGrant
    admit_until: float  # time.monotonic()
    renew_at: float  # time.monotonic(): half its term
    # Admitted under it and not given back: what its requests may still cost, until settled.
    usd: Decimal = Decimal(0)
    tokens: int = 0
    requests: int = 0
    running: int = 0  # requests admitted and not yet finished
    returned: bool = False

    def fits(self, usd: Decimal, tokens: int) -> bool:
        g = self.grant
        return self.requests < g.requests and self.usd + usd <= g.usd and self.tokens + tokens <= g.tokens

    def unused(self) -> LeaseReturn:
        g = self.grant
        return LeaseReturn(
            lease_id=g.lease_id,
            user_id=g.user_id,
            usd=g.usd - self.usd,
            tokens=g.tokens - self.tokens,
            requests=g.requests - self.requests,
        )


@dataclass(frozen=True)
class ModelPrices:
    by_upstream: dict[tuple[str, str], UpstreamPrice]
    cache_hit_factor: Decimal
    until: float  # time.monotonic(): as old as a lease term, no older


@dataclass
class LeaseBook:
    bus: Bus
    timeout_s: float
    gateway_id: str = field(default_factory=lambda: f"gateway-{uuid.uuid4().hex}")
    live: dict[Key, Lease] = field(default_factory=dict)
    by_id: dict[str, Lease] = field(default_factory=dict)  # live, or returned with requests running
    prices: dict[str, ModelPrices] = field(default_factory=dict)
    _wants: dict[Key, LeaseWant] = field(default_factory=dict)
    _returns: list[LeaseReturn] = field(default_factory=list)
    _asked: set[Key] = field(default_factory=set)  # in the ask in flight
    _not_before: dict[Key, float] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _asking: asyncio.Task[None] | None = None

    def admit(self, user_id: str, model: str, prompt_tokens: int, output_tokens: int) -> LeaseCharge | None:
        """The request's charge on the user's lease for the model, or None: take the exact hold."""
        key = (user_id, model)
        lease = self.live.get(key)
        now = time.monotonic()
        if lease is None:
            self._want(key, now, user_id, model, prompt_tokens, output_tokens)
            return None
        rate = lease.grant.hold_rate
        usd = token_cost(prompt_tokens, output_tokens, rate.input, rate.output)
        tokens = prompt_tokens + output_tokens
        if now >= lease.admit_until:
            self._retire(lease)
            self._want(key, now, user_id, model, prompt_tokens, output_tokens)
            return None
        if not lease.fits(usd, tokens):
            # Used up, or sized for smaller requests: a new lease sized by this one replaces it
            # (the old one's rest goes back then); this request takes the exact hold meanwhile.
            self._want(key, now, user_id, model, prompt_tokens, output_tokens)
            return None
        lease.usd += usd
        lease.tokens += tokens
        lease.requests += 1
        lease.running += 1
        if now >= lease.renew_at or 2 * lease.requests >= lease.grant.requests:
            self._want(key, now, user_id, model, prompt_tokens, output_tokens)
        return LeaseCharge(lease_id=lease.grant.lease_id, usd=usd, tokens=tokens)

    def finished(self, charge: LeaseCharge, settled: bool) -> None:
        """The request ended: `settled` when a usage event will settle its charge; else it is given
        back (to the lease, or in a return once the lease was returned)."""
        lease = self.by_id.get(charge.lease_id)
        if lease is None:
            return
        lease.running -= 1
        if not settled:
            lease.usd -= charge.usd
            lease.tokens -= charge.tokens
            lease.requests -= 1
            if lease.returned:
                self._return(
                    LeaseReturn(
                        lease_id=charge.lease_id,
                        user_id=lease.grant.user_id,
                        usd=charge.usd,
                        tokens=charge.tokens,
                        requests=1,
                    )
                )
        if lease.returned and lease.running == 0:
            del self.by_id[charge.lease_id]

    def price(
        self, model: str, provider: str, served_model: str, usage: TokenUsage, cache_hit: bool
    ) -> Decimal | None:
        """What the ledger will charge for this usage, from the prices a lease brought; None when
        none is fresh for this upstream (ask for a quote)."""
        known = self.prices.get(model)
        if known is None or time.monotonic() >= known.until:
            return None
        rate = known.by_upstream.get((provider, served_model))
        if rate is None:
            return None
        cost = token_cost(
            usage.prompt_tokens,
            usage.completion_tokens,
            rate.input,
            rate.output,
            usage.cached_tokens,
            rate.cached_input,
        )
        if cache_hit:
            cost = (cost * known.cache_hit_factor).quantize(COST_QUANTUM)
        return cost

    async def close(self) -> None:
        """Stop asking; return every lease's unused part (best effort: what is not returned is
        freed when it expires)."""
        if self._asking is not None:
            self._asking.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._asking
        for lease in list(self.live.values()):
            self._retire(lease)
        if self._returns:
            ask = LeaseAsk(request_id=uuid.uuid4().hex, gateway_id=self.gateway_id, returns=self._returns)
            self._returns = []
            await self.bus.request(BUDGET_LEASE, ask, min(self.timeout_s, CLOSE_TIMEOUT_S))

    def _want(self, key: Key, now: float, user_id: str, model: str, prompt: int, output: int) -> None:
        if key in self._wants or key in self._asked or now < self._not_before.get(key, 0.0):
            return
        self._wants[key] = LeaseWant(
            user_id=user_id, model=model, prompt_tokens_estimate=prompt, max_output_tokens=max(output, 1)
        )
        self._start()

    def forget_user(self, user_id: str) -> None:
        """The user's plan or limits changed (`billing.account.changed`): their leases were sized
        under the old ones, so none admits again; the next request takes the exact hold (and asks
        for a lease under the new limits)."""
        for key, lease in list(self.live.items()):
            if key[0] == user_id:
                self._retire(lease)

    def _retire(self, lease: Lease) -> None:
        """No more admissions under it; its unused part goes back in the next ask."""
        key = (lease.grant.user_id, lease.grant.model)
        if self.live.get(key) is lease:
            del self.live[key]
        if lease.returned:
            return
        lease.returned = True
        self._return(lease.unused())
        if lease.running == 0:
            self.by_id.pop(lease.grant.lease_id, None)

    def _return(self, part: LeaseReturn) -> None:
        self._returns.append(part)
        self._start()

    def _start(self) -> None:
        self._wake.set()
        if self._asking is None or self._asking.done():
            self._asking = asyncio.create_task(self._ask_forever(), name="budget-leases")

    async def _ask_forever(self) -> None:
        while True:
            # Woken by a want or a return, or when a lease's term ends: an idle user's lease goes
            # back then, not when its row expires at billing.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._until_a_term_ends()):
                    await self._wake.wait()
            self._wake.clear()
            now = time.monotonic()
            for lease in [lease for lease in self.live.values() if now >= lease.admit_until]:
                self._retire(lease)
            try:
                await self._ask()
            except Exception:  # a bug: logged, and the next want or return asks again
                log.exception("budget lease ask failed")

    def _until_a_term_ends(self) -> float | None:
        ends = [lease.admit_until for lease in self.live.values()]
        return max(min(ends) - time.monotonic(), 0.0) if ends else None

    async def _ask(self) -> None:
        wants, self._wants = self._wants, {}
        returns, self._returns = self._returns, []
        if not wants and not returns:
            return
        self._asked = set(wants)
        ask = LeaseAsk(
            request_id=uuid.uuid4().hex,
            gateway_id=self.gateway_id,
            wants=list(wants.values()),
            returns=returns,
        )
        sent = time.monotonic()
        try:
            reply = await self.bus.request(BUDGET_LEASE, ask, self.timeout_s)
        finally:
            self._asked = set()
        # Not answered: the wants wait a while; the returns are not sent again (billing may have
        # taken them: twice would free what running requests still need), their leases expire.
        answered = reply if isinstance(reply, LeaseGrants) else None
        grants = answered.grants if answered is not None else [None] * len(wants)
        now = time.monotonic()
        self._not_before = {key: until for key, until in self._not_before.items() if until > now}
        for key, grant in zip(wants, grants, strict=False):
            if grant is None or answered is None:
                self._not_before[key] = now + NO_LEASE_BACKOFF_S
                continue
            self._not_before.pop(key, None)
            # Billing's clock for the term, this process's monotonic clock to keep it.
            term = (grant.admit_until - answered.occurred_at).total_seconds()
            lease = Lease(grant, admit_until=sent + term, renew_at=sent + term / 2)
            old = self.live.get(key)
            if old is not None:
                self._retire(old)
            self.live[key] = self.by_id[grant.lease_id] = lease
            self.prices[grant.model] = ModelPrices(
                {(p.provider, p.model): p for p in grant.prices}, grant.cache_hit_factor, sent + term
            )
