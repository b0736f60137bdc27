"""The worker's routing: ranks a model's deployments, lets an attempt through (breaker, limits),
and learns from how each attempt went. One per worker; the state behind it is the fleet's."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.routing.breaker_state import BreakerRecord
from lobe.chat_worker.routing.breakers import KEY_PREFIX as BREAKER_KEYS
from lobe.chat_worker.routing.breakers import Breakers, Transition, breaker_key
from lobe.chat_worker.routing.fleet import FleetStats
from lobe.chat_worker.routing.limits import Admission, Refusal, WindowLimits
from lobe.chat_worker.routing.metrics import RoutingMetrics
from lobe.chat_worker.routing.prices import PriceBook
from lobe.chat_worker.routing.store import RoutingStore
from lobe.chat_worker.routing.strategies import Demand, rank
from lobe.shared.bus import Bus
from lobe.shared.catalog import CHAT_WORKER
from lobe.shared.events.chat import DeploymentHealth
from lobe.shared.events.routing import (
    ROUTING_BREAKER_CLOSED,
    ROUTING_BREAKER_HALF_OPENED,
    ROUTING_BREAKER_OPENED,
    BreakerChanged,
)

log = logging.getLogger(__name__)

FACT_SUBJECT = {
    "open": ROUTING_BREAKER_OPENED,
    "half_open": ROUTING_BREAKER_HALF_OPENED,
    "closed": ROUTING_BREAKER_CLOSED,
}


@dataclass(frozen=True)
class Gate:
    """An attempt let through: what it holds (an in-flight slot, a window's count, maybe the probe)."""

    deployment: Deployment
    admission: Admission
    probe: bool
    opened_at: float  # monotonic


@dataclass(frozen=True)
class Skip:
    reason: str  # breaker_open | rpm_limit | tpm_limit
    retry_after_s: float | None


class Router:
    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        worker_id: str,
        metrics: RoutingMetrics,
        store_timeout_s: float,
        snapshot_interval_s: float,
        replicas: int = 1,
        rng: random.Random | None = None,
    ) -> None:
        self.js = js
        self.worker_id = worker_id
        self.metrics = metrics
        self.rng = rng or random.Random()
        self.store = RoutingStore(js, store_timeout_s, self._on_degraded, replicas=replicas)
        self.fleet = FleetStats(self.store, worker_id, publish_interval_s=snapshot_interval_s)
        self.breakers = Breakers(self.store, self._announce)
        self.limits = WindowLimits(self.store, self.fleet.live_workers)
        self.bus = Bus.over(nc, CHAT_WORKER)
        self.prices = PriceBook(self.bus, timeout_s=max(store_timeout_s, 0.5))
        self.labels: dict[str, str] = {}  # breaker key -> deployment name
        self.store.listeners.append(self._on_store_change)
        self._publishing: set[asyncio.Task[bool]] = set()

    async def start(self, catalog: ModelCatalog) -> None:
        self.configure(catalog)
        await self.store.open()  # when it fails, routing starts on local state and retries
        self.fleet.start()

    async def stop(self) -> None:
        self.prices.close()
        await self.fleet.stop()
        await self.store.close()
        if self._publishing:
            await asyncio.wait(self._publishing, timeout=5)

    def configure(self, catalog: ModelCatalog) -> None:
        """A (re)loaded routing file: label the breaker gauge, warm the prices cost routing needs."""
        self.labels = {breaker_key(d.name): d.name for m in catalog.models for d in m.deployments}
        for model in catalog.models:
            for deployment in model.deployments:
                self.metrics.configured(deployment.name, self.breakers.record(deployment).state)
            if model.strategy == "lowest_cost":
                self.prices.prefetch([_price_key(d, model) for d in model.deployments])

    # What the strategies see (strategies.RoutingView).

    def in_flight(self, deployment: Deployment) -> int:
        return self.fleet.fleet_in_flight(deployment.name)

    def ttft_ms(self, deployment: Deployment) -> float | None:
        return self.fleet.fleet_ttft_ms(deployment.name)

    def price_per_token(self, deployment: Deployment, model: RoutedModel) -> tuple[float, float] | None:
        return self.prices.per_token(_price_key(deployment, model))

    def health(self, deployment: Deployment) -> DeploymentHealth:
        """What `chat.models` tells of a deployment (the console's models page)."""
        limits = deployment.limits
        return DeploymentHealth(
            name=deployment.name,
            provider=deployment.provider,
            model=deployment.model,
            breaker=self.breakers.record(deployment).state,
            in_flight=self.in_flight(deployment),
            ttft_ms=self.ttft_ms(deployment),
            rpm=limits.rpm if limits else None,
            tpm=limits.tpm if limits else None,
            headroom=self.headroom(deployment),
        )

    def headroom(self, deployment: Deployment) -> float:
        """The share of the current window still free, by the tighter limit (1.0: no limit)."""
        limits = deployment.limits
        if limits is None:
            return 1.0
        shares = [
            1 - self.limits.used(deployment, metric) / limit
            for metric, limit in (("requests", limits.requests), ("tokens", limits.tokens))
            if limit is not None
        ]
        return min(shares, default=1.0)

    def rank(self, model: RoutedModel, demand: Demand) -> list[Deployment]:
        return rank(model, self, demand, self.rng)

    # One attempt's life.

    async def gate(self, deployment: Deployment, request_id: str, prompt_tokens: int) -> Gate | Skip:
        waited = time.monotonic()
        try:
            # The breaker's local view first (free), then the window's counts, then the probe's
            # claim: a probe is only claimed by an attempt that will really be made.
            if (wait := self.breakers.closed_to(deployment)) is not None:
                return self._skip(deployment, Skip("breaker_open", wait))
            admission = await self.limits.admit(deployment, prompt_tokens)
            if isinstance(admission, Refusal):
                return self._skip(deployment, Skip(admission.reason, admission.retry_after_s))
            verdict = await self.breakers.admit(deployment, request_id)
            if not verdict.allowed:  # another worker claimed the probe first
                self.limits.refund(admission)
                return self._skip(deployment, Skip("breaker_open", verdict.retry_after_s))
        finally:
            self.metrics.store_seconds.observe(time.monotonic() - waited)
        self.fleet.started(deployment.name)
        return Gate(deployment, admission, verdict.probe, time.monotonic())

    def _skip(self, deployment: Deployment, skip: Skip) -> Skip:
        self.metrics.skipped.labels(deployment=deployment.name, reason=skip.reason).inc()
        return skip

    async def first_token(self, gate: Gate, request_id: str) -> None:
        self.fleet.first_token(gate.deployment.name, (time.monotonic() - gate.opened_at) * 1000)
        if gate.probe:  # the deployment answers: that is all a probe asks
            await self.breakers.succeeded(gate.deployment, True, request_id)

    async def ended(
        self,
        gate: Gate,
        request_id: str,
        outcome: str,
        tokens: int | None,
        failure_code: str | None = None,
        answered: bool = False,
    ) -> None:
        """`outcome`: ok, failed (the deployment's fault), rejected (the request's), cancelled,
        error (ours). `answered`: its first token came (a probe already reported success)."""
        deployment = gate.deployment
        self.fleet.ended(deployment.name)
        self.limits.settle(gate.admission, tokens)
        self.metrics.attempts.labels(deployment=deployment.name, outcome=outcome).inc()
        if outcome == "failed":
            await self.breakers.failed(deployment, gate.probe, request_id, failure_code or "error")
        elif not gate.probe or answered:
            return
        elif outcome in ("ok", "rejected"):  # it answered, if only to refuse the request: alive
            await self.breakers.succeeded(deployment, True, request_id)
        else:
            await self.breakers.abandoned(deployment, True, request_id)

    # Breaker transitions: a fact (by the worker that made it) and the gauge (on every worker).

    async def _announce(self, transition: Transition) -> None:
        deployment, old, new = transition.deployment, transition.old, transition.new
        log.warning(
            "breaker of %s: %s -> %s (%s)",
            deployment.name,
            old.state,
            new.state,
            new.reason or "probe",
            extra={"request_id": transition.request_id},
        )
        self.metrics.breaker(deployment.name, new.state)
        event = BreakerChanged(
            request_id=transition.request_id,
            deployment=deployment.name,
            provider=deployment.provider,
            state=new.state,
            previous=old.state,
            failures=len(new.failures),
            cooldown_s=deployment.breaker.cooldown_s,
            reason=new.reason if new.state == "open" else None,
            worker_id=self.worker_id,
        )
        # Off the request's path: JetStream being away must not hold the request (publish_fact
        # logs the whole event if it cannot be published).
        task = asyncio.create_task(self.bus.publish_fact(FACT_SUBJECT[new.state], event))
        self._publishing.add(task)
        task.add_done_callback(self._publishing.discard)

    def _on_store_change(self, key: str, value: bytes | None) -> None:
        if key.startswith(BREAKER_KEYS) and key in self.labels:
            self.metrics.breaker(self.labels[key], BreakerRecord.decode(value).state)

    def _on_degraded(self, degraded: bool) -> None:
        self.metrics.store_degraded.set(1 if degraded else 0)
        if not degraded:
            self.breakers.local.clear()  # the fleet's records rule again


def _price_key(deployment: Deployment, model: RoutedModel) -> tuple[str, str]:
    return deployment.provider, deployment.model or model.name
