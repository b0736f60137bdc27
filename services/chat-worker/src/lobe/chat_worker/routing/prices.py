"""Per-token prices of deployments, for the lowest-cost strategy, as billing prices them.

Billing owns the price table (PRICES_FILE, or the table bundled with billing): the worker asks it
(`billing.price.quote`) rather than reading the file, so one lookup rule (exact provider and model,
then the model under any provider, then the expensive default) decides both what routing prefers
and what the user pays, and a worker needs neither billing's package nor its file. Quotes are
cached for `ttl_s` and fetched in the background: a request never waits for billing. Until a
deployment's price is known it ranks after those whose price is.
"""

from __future__ import annotations

import asyncio
import functools
import time
import uuid

from lobe.shared.bus import BusCalls
from lobe.shared.events.billing import PRICE_QUOTE, PriceQuote, PriceQuoted
from lobe.shared.events.chat import TokenUsage

MILLION = 1_000_000
QUOTE_ID_PREFIX = "routing-"  # a quote's request id: it prices a deployment, not a request
PriceKey = tuple[str, str]  # (provider kind, upstream model)


class PriceBook:
    def __init__(self, bus: BusCalls, timeout_s: float, ttl_s: float = 600.0) -> None:
        self.bus = bus
        self.timeout_s = timeout_s
        self.ttl_s = ttl_s
        self.rates: dict[PriceKey, tuple[float, float, float]] = {}  # -> (input, output per token, when)
        self._fetching: dict[PriceKey, asyncio.Task[None]] = {}

    def per_token(self, key: PriceKey) -> tuple[float, float] | None:
        """(input, output) US dollars per token; None until billing has answered once."""
        known = self.rates.get(key)
        if known is None or time.monotonic() - known[2] > self.ttl_s:
            self.prefetch([key])
        return None if known is None else known[:2]

    def prefetch(self, keys: list[PriceKey]) -> None:
        for key in keys:
            if key not in self._fetching:
                task = asyncio.create_task(self._fetch(key))
                self._fetching[key] = task
                task.add_done_callback(functools.partial(self._fetched, key))

    def _fetched(self, key: PriceKey, _: asyncio.Task[None]) -> None:
        self._fetching.pop(key, None)

    def close(self) -> None:
        for task in list(self._fetching.values()):
            task.cancel()

    async def _fetch(self, key: PriceKey) -> None:
        provider, model = key
        prompt, completion = await asyncio.gather(
            self._quote(provider, model, TokenUsage(prompt_tokens=MILLION, completion_tokens=0)),
            self._quote(provider, model, TokenUsage(prompt_tokens=0, completion_tokens=MILLION)),
        )
        if prompt is not None and completion is not None:
            self.rates[key] = (prompt / MILLION, completion / MILLION, time.monotonic())

    async def _quote(self, provider: str, model: str, usage: TokenUsage) -> float | None:
        quote = PriceQuote(
            request_id=f"{QUOTE_ID_PREFIX}{uuid.uuid4().hex}", provider=provider, model=model, usage=usage
        )
        reply = await self.bus.request(PRICE_QUOTE, quote, self.timeout_s)
        return reply.cost_usd if isinstance(reply, PriceQuoted) else None
