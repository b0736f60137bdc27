"""Per-deployment request and token limits, counted per fixed window by the whole fleet.

Admission increments the window's counters first and looks at the totals the server returns: a
total within the limit admits, one past it refuses and gives its increment back. So the fleet
never admits more than the limit in a window (the totals are serialised by the server); at most a
request racing a refusal's give-back is refused while one slot was left. Tokens are charged with
the prompt estimate at admission and corrected with the provider's count when the attempt ends.

Without the store, each worker counts alone against its share of the limit (the limit divided by
the workers it last saw), so the fleet stays near the limit instead of multiplying it.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.routing.store import RoutingStore, token

LimitReason = str  # "rpm_limit" | "tpm_limit"


@dataclass(frozen=True)
class Admission:
    deployment: Deployment
    window: int  # window number: floor(wall clock / window_s)
    tokens: int  # charged to the window's token counter so far
    fleet: bool  # counted in the store (else locally)


@dataclass(frozen=True)
class Refusal:
    reason: LimitReason
    retry_after_s: float


def counter(deployment: Deployment, window: int, metric: str) -> str:
    return f"{token(deployment.name)}.{window}.{metric}"


@dataclass(frozen=True)
class _Ask:
    counter: str
    metric: str  # requests | tokens
    delta: int
    limit: int

    @property
    def reason(self) -> LimitReason:
        return "rpm_limit" if self.metric == "requests" else "tpm_limit"


class WindowLimits:
    def __init__(self, store: RoutingStore, live_workers: Callable[[], int]) -> None:
        self.store = store
        self.live_workers = live_workers
        self.local: dict[str, int] = {}  # counter -> this worker's count, while degraded
        self.seen: dict[str, int] = {}  # counter -> last fleet total seen (headroom strategy)
        self._corrections: set[asyncio.Future[int | None]] = set()

    def window_of(self, deployment: Deployment, now: float) -> int:
        assert deployment.limits is not None
        return math.floor(now / deployment.limits.window_s)

    def used(self, deployment: Deployment, metric: str) -> int:
        """The window's fleet total as last seen by this worker (0 in a new window)."""
        if deployment.limits is None:
            return 0
        return self.seen.get(counter(deployment, self.window_of(deployment, time.time()), metric), 0)

    async def admit(self, deployment: Deployment, prompt_tokens: int) -> Admission | Refusal:
        limits = deployment.limits
        if limits is None:
            return Admission(deployment, 0, 0, fleet=False)
        now = time.time()
        window = self.window_of(deployment, now)
        self._forget_old(deployment, window)
        asks = [
            _Ask(counter(deployment, window, metric), metric, delta, limit)
            for metric, delta, limit in (
                ("requests", 1, limits.requests),
                ("tokens", prompt_tokens, limits.tokens),
            )
            if limit is not None
        ]
        charged = sum(a.delta for a in asks if a.metric == "tokens")
        retry_after = (window + 1) * limits.window_s - now
        totals = await asyncio.gather(*(self.store.increment(a.counter, a.delta) for a in asks))
        if any(total is None for total in totals):
            # The store failed (for one counter or both): give back what did count, count here.
            for ask, total in zip(asks, totals, strict=True):
                if total is not None:
                    self._give_back(ask.counter, ask.delta)
            refusal = self._count_locally(asks, retry_after)
            return refusal or Admission(deployment, window, charged, fleet=False)
        over = [
            ask for ask, total in zip(asks, totals, strict=True) if total is not None and total > ask.limit
        ]
        for ask, total in zip(asks, totals, strict=True):
            self.seen[ask.counter] = total or 0
        if over:
            for ask in asks:
                self._give_back(ask.counter, ask.delta)
            return Refusal(over[0].reason, retry_after)
        return Admission(deployment, window, charged, fleet=True)

    def _count_locally(self, asks: list[_Ask], retry_after: float) -> Refusal | None:
        share = max(self.live_workers(), 1)
        for ask in asks:
            if self.local.get(ask.counter, 0) + ask.delta > max(ask.limit // share, 1):
                return Refusal(ask.reason, retry_after)
        for ask in asks:
            self.local[ask.counter] = self.local.get(ask.counter, 0) + ask.delta
        return None

    def settle(self, admission: Admission, tokens_used: int | None) -> None:
        """Correct the window's token count with what the attempt really used: 0 gives the charge
        back (the provider refused before reading), None keeps it (cancelled: it read the prompt)."""
        limits = admission.deployment.limits
        if limits is None or limits.tokens is None or tokens_used is None:
            return
        delta = tokens_used - admission.tokens
        if delta == 0:
            return
        key = counter(admission.deployment, admission.window, "tokens")
        if admission.fleet:
            self._give_back(key, -delta)
        else:
            self.local[key] = self.local.get(key, 0) + delta

    def refund(self, admission: Admission) -> None:
        """The admitted attempt is not made after all: its counts go back."""
        limits = admission.deployment.limits
        if limits is None:
            return
        charges = [("requests", 1, limits.requests), ("tokens", admission.tokens, limits.tokens)]
        for metric, delta, limit in charges:
            if limit is None:
                continue
            key = counter(admission.deployment, admission.window, metric)
            if admission.fleet:
                self._give_back(key, delta)
            else:
                self.local[key] = self.local.get(key, 0) - delta

    def _give_back(self, key: str, delta: int) -> None:
        # Off the request's path: a late correction only shifts the window's count.
        task = asyncio.ensure_future(self.store.increment(key, -delta))
        self._corrections.add(task)
        task.add_done_callback(self._corrections.discard)

    def _forget_old(self, deployment: Deployment, window: int) -> None:
        prefix = token(deployment.name) + "."
        for key in [k for k in self.local if k.startswith(prefix) and int(k.split(".")[1]) < window]:
            del self.local[key]
        for key in [k for k in self.seen if k.startswith(prefix) and int(k.split(".")[1]) < window]:
            del self.seen[key]
