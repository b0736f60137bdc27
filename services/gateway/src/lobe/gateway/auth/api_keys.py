"""API keys.

Two sources, checked in order:
1. bootstrap keys from GATEWAY_API_KEYS (dev and break-glass; they work with billing down);
2. keys issued through billing, resolved over NATS (`auth.key.verify`) by their SHA-256, so a
   key never travels on the bus. Answers are cached per replica: valid keys for
   `key_cache_ttl_s`, unknown ones briefly (a burst of bad keys must not hammer billing).
   A revoked key drops out at once when billing announces `auth.key.revoked`, and a user's
   cached answers (their plan) when it announces `billing.account.changed`; within the TTL at
   worst if that announcement is lost. While billing does not answer, a key it vouched for stays
   good until twice its TTL, no longer (a revocation this replica missed must end), then 503.

A key this replica has no answer for is looked up once however many requests carry it at the
same moment (single flight): a burst on a fresh replica asks billing one question, not 128 that
time out together (issue 22). The guard's `before_lookup` runs once, for the request that asks.

A token that is neither a bootstrap key nor shaped like a key billing issues is refused without
asking anyone. Keys are held as SHA-256 digests only, so a memory dump or a log line never shows one.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import NamedTuple

from lobe.gateway.auth.guard import Refund
from lobe.gateway.settings import GatewaySettings
from lobe.shared.bus import Bus
from lobe.shared.events.auth import (
    AUTH_KEY_REVOKED,
    AUTH_KEY_VERIFY,
    ISSUED_KEY,
    ApiKeyRevoked,
    KeyVerified,
    KeyVerify,
)
from lobe.shared.events.billing import BILLING_ACCOUNT_CHANGED, AccountChanged
from lobe.shared.events.chat import Caller
from lobe.shared.openai_errors import ApiError

log = logging.getLogger(__name__)
UNKNOWN_KEY_TTL_S = 5.0
CACHE_MAX_ENTRIES = 100_000
STALE_FACTOR = 2  # billing slow: an answer stays usable until STALE_FACTOR x its TTL

# The guard's hook before a lookup; what it returns (if anything) undoes its charge, for a key
# billing vouched for (lobe.gateway.auth.guard).
BeforeLookup = Callable[[], Awaitable[Refund | None]]


class Cached(NamedTuple):
    caller: Caller | None
    fresh_until: float  # time.monotonic(): trusted without asking until then
    usable_until: float  # ... and served until then while billing does not answer


class _GuardRefused(Exception):
    """The request that was to ask billing was refused by its guard (its IP's attempts): the
    others that waited for its answer ask on their own account."""

    def __init__(self, error: ApiError) -> None:
        self.error = error


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def parse_bootstrap_keys(spec: str) -> dict[str, Caller]:
    """Parse `key:user_id[:plan],...`; a malformed entry stops start-up with its position."""
    callers: dict[str, Caller] = {}
    for position, entry in enumerate(filter(None, (e.strip() for e in spec.split(","))), start=1):
        parts = entry.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError(f"GATEWAY_API_KEYS entry {position} is not 'key:user_id[:plan]'")
        key, user_id, plan = parts[0], parts[1], parts[2] if len(parts) == 3 else "free"
        digest = key_digest(key)
        callers[digest] = Caller(user_id=user_id, api_key_id=digest[:16], plan=plan)
    return callers


class ApiKeyStore:
    def __init__(self, bus: Bus, settings: GatewaySettings) -> None:
        self.bus = bus
        self.settings = settings
        self.bootstrap = parse_bootstrap_keys(settings.gateway_api_keys.get_secret_value())
        self.cache: dict[str, Cached] = {}
        self._flights: dict[str, asyncio.Task[Caller | None]] = {}
        # Bumped by every drop: an answer billing gave before the change is not cached after it.
        self.generation = 0

    async def watch_revocations(self) -> None:
        """Drop cached answers billing has since taken back: a revoked key, a changed account."""
        await self.bus.subscribe(AUTH_KEY_REVOKED, self._on_revoked)
        await self.bus.subscribe(BILLING_ACCOUNT_CHANGED, self._on_account_changed)

    def _on_revoked(self, event: ApiKeyRevoked) -> None:
        self._drop(lambda caller: caller.api_key_id == event.api_key_id)

    def _on_account_changed(self, event: AccountChanged) -> None:
        self._drop(lambda caller: caller.user_id == event.user_id)

    def _drop(self, stale: Callable[[Caller], bool]) -> None:
        self.generation += 1
        for digest, cached in list(self.cache.items()):
            if cached.caller is not None and stale(cached.caller):
                del self.cache[digest]

    async def caller(self, token: str, before_lookup: BeforeLookup) -> Caller | None:
        """The key's owner, or None for a key nobody issued (or a token no key looks like).
        `before_lookup` runs before a question to billing (a limiter's hook)."""
        digest = key_digest(token)
        bootstrap = self.bootstrap.get(digest)
        if bootstrap is not None:
            return bootstrap
        if not ISSUED_KEY.fullmatch(token):
            return None
        cached = self.cache.get(digest)
        if cached is not None and cached.fresh_until > time.monotonic():
            return cached.caller
        if not self.settings.billing_enabled:
            return None
        return await self._single_flight(digest, before_lookup)

    async def _single_flight(self, digest: str, before_lookup: BeforeLookup) -> Caller | None:
        while (flight := self._flights.get(digest)) is not None:
            try:
                # Shielded: a waiter whose client leaves must not cancel the others' answer.
                return await asyncio.shield(flight)
            except _GuardRefused:
                continue  # that request's IP was refused, not this one's: ask on our own
            except ApiError as exc:
                raise dataclasses.replace(exc, headers=dict(exc.headers)) from None  # one per request
        flight = asyncio.ensure_future(self._lookup(digest, before_lookup))
        self._flights[digest] = flight
        try:
            return await asyncio.shield(flight)
        except _GuardRefused as refused:
            raise refused.error from None

    async def _lookup(self, digest: str, before_lookup: BeforeLookup) -> Caller | None:
        try:
            try:
                refund = await before_lookup()
            except ApiError as exc:
                raise _GuardRefused(exc) from None
            caller = await self._ask(digest)
            if caller is not None and refund is not None:
                await refund()  # a good key is no failed attempt
            return caller
        finally:
            self._flights.pop(digest, None)  # before any waiter wakes: the next miss asks again

    async def _ask(self, digest: str) -> Caller | None:
        question = KeyVerify(request_id=uuid.uuid4().hex, key_sha256=digest)
        generation = self.generation
        answer = await self.bus.request(AUTH_KEY_VERIFY, question, self.settings.billing_timeout_s)
        if not isinstance(answer, KeyVerified):  # unanswered, or unreadable (logged by the bus)
            cached = self.cache.get(digest)
            if cached is not None and cached.usable_until > time.monotonic():
                return cached.caller  # billing is away: a key it vouched for stays good a while
            raise ApiError(
                503,
                "API keys cannot be checked right now; retry shortly.",
                "auth_unavailable",
                headers={"Retry-After": "1"},
            )
        caller = (
            Caller(
                user_id=answer.user_id,
                api_key_id=answer.api_key_id,
                plan=answer.plan or "free",
                rate_tier=answer.rate_tier,
            )
            if answer.valid and answer.user_id
            else None
        )
        if generation != self.generation:  # a revocation or account change crossed this answer
            return caller
        if len(self.cache) >= CACHE_MAX_ENTRIES:
            self.cache.pop(next(iter(self.cache)))  # oldest entry first: dicts keep insertion order
        ttl = self.settings.key_cache_ttl_s if caller else UNKNOWN_KEY_TTL_S
        now = time.monotonic()
        self.cache.pop(digest, None)  # re-inserted: the oldest-first eviction stays oldest-first
        self.cache[digest] = Cached(caller, now + ttl, now + STALE_FACTOR * ttl)
        return caller
