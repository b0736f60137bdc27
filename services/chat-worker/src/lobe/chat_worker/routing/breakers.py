"""Every deployment's breaker, shared by the fleet through the routing store.

Reads come from the store's watched copy (no round trip); each transition is a compare-and-set on
the breaker's record, so exactly one worker opens a breaker, claims its one probe, or closes it,
and that worker publishes the fact. Without the store, the same machine runs on this worker's own
records, starting from the last fleet view it had.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.routing.breaker_state import (
    BreakerRecord,
    after_failure,
    after_probe,
    claim_probe,
    probe_abandoned,
)
from lobe.chat_worker.routing.store import Conflict, RoutingStore, token

CAS_TRIES = 5
KEY_PREFIX = "breaker."

Change = Callable[[BreakerRecord], BreakerRecord | None]


@dataclass(frozen=True)
class Transition:
    deployment: Deployment
    old: BreakerRecord
    new: BreakerRecord
    request_id: str


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    probe: bool = False  # this attempt is the one half-open probe
    retry_after_s: float | None = None


def breaker_key(deployment_name: str) -> str:
    return KEY_PREFIX + token(deployment_name)


class Breakers:
    def __init__(self, store: RoutingStore, announce: Callable[[Transition], Awaitable[None]]) -> None:
        self.store = store
        self.announce = announce
        self.local: dict[str, BreakerRecord] = {}  # used while the store is unavailable

    def record(self, deployment: Deployment) -> BreakerRecord:
        key = breaker_key(deployment.name)
        if not self.store.available and key in self.local:
            return self.local[key]
        entry = self.store.entries.get(key)
        return BreakerRecord.decode(entry.value if entry else None)

    def closed_to(self, deployment: Deployment) -> float | None:
        """Seconds until the deployment may be tried (None: it may be now, or its probe may be
        claimed now). Read on the local copy: no round trip."""
        record, now = self.record(deployment), time.time()
        if record.state == "open" and now < record.reopens_at(deployment.breaker):
            return record.reopens_at(deployment.breaker) - now
        if record.state == "half_open" and now < record.probe_until:
            return record.probe_until - now
        return None

    async def admit(self, deployment: Deployment, request_id: str) -> Verdict:
        record = self.record(deployment)
        if record.state == "closed":
            return Verdict(True)
        now = time.time()
        probe_s = deployment.timeouts.connect_s + deployment.timeouts.first_byte_s
        claimed = await self._apply(
            deployment, request_id, lambda r: claim_probe(r, time.time(), deployment.breaker, probe_s)
        )
        if claimed is not None:
            return Verdict(True, probe=True)
        current = self.record(deployment)
        if current.state == "closed":  # closed by another worker meanwhile
            return Verdict(True)
        until = current.reopens_at(deployment.breaker) if current.state == "open" else current.probe_until
        return Verdict(False, retry_after_s=max(until - now, 0.0))

    async def succeeded(self, deployment: Deployment, probe: bool, request_id: str) -> None:
        if probe:
            await self._apply(deployment, request_id, lambda r: after_probe(r, True, time.time(), None))

    async def abandoned(self, deployment: Deployment, probe: bool, request_id: str) -> None:
        if probe:
            await self._apply(deployment, request_id, lambda r: probe_abandoned(r, time.time()))

    async def failed(self, deployment: Deployment, probe: bool, request_id: str, reason: str) -> None:
        if probe:
            change: Change = lambda r: after_probe(r, False, time.time(), reason)  # noqa: E731
        else:
            change = lambda r: after_failure(r, time.time(), deployment.breaker, reason)  # noqa: E731
        await self._apply(deployment, request_id, change)

    async def _apply(self, deployment: Deployment, request_id: str, change: Change) -> BreakerRecord | None:
        """Apply `change` to the fleet's record (compare-and-set, re-read on conflict) or, without
        the store, to ours. The new record when this worker made the change, else None."""
        key = breaker_key(deployment.name)
        for _ in range(CAS_TRIES):
            old = self.record(deployment)
            new = change(old)
            if new is None:
                return None
            if self.store.available:
                entry = self.store.entries.get(key)
                try:
                    revision = await self.store.compare_and_set(
                        key, new.encode(), entry.revision if entry else 0
                    )
                except Conflict:
                    await self.store.fetch(key)
                    continue
                if revision is None:  # the store just went away: decide locally from here on
                    self.local[key] = old
                    continue
            else:
                self.local[key] = new
            if old.state != new.state:
                await self.announce(Transition(deployment, old, new, request_id))
            return new
        return None
