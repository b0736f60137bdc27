"""The router on a real NATS server, as a worker's attempts use it: ranking by the fleet's in-flight
counts, the gate a breaker or a rate limit closes (with when to come back), one probe after the
cooldown, and each breaker transition announced as a fact and on the gauge."""

from __future__ import annotations

import nats
from nats.aio.msg import Msg

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.policies import BreakerPolicy, Limits, Strategy
from lobe.chat_worker.routing.router import Gate, Router, Skip
from lobe.chat_worker.routing.strategies import Demand
from lobe.devtools.waiting import eventually
from lobe.shared.bus import flush
from lobe.shared.events.routing import BreakerChanged

from .conftest import OpenRouter

DEMAND = Demand(prompt_tokens=10, output_tokens=10)
COOLDOWN_S = 0.3
GUARDED = Deployment(
    name="guarded", provider="mock", breaker=BreakerPolicy(failures=2, cooldown_s=COOLDOWN_S)
)
SPARE = Deployment(name="spare", provider="mock")
CAPPED = Deployment(name="capped", provider="mock", limits=Limits(rpm=2))


def catalog(strategy: Strategy = "ordered", *deployments: Deployment) -> ModelCatalog:
    chosen = list(deployments) or [GUARDED, SPARE]
    return ModelCatalog(models=[RoutedModel(name="m", strategy=strategy, deployments=chosen)])


async def gate(router: Router, deployment: Deployment, request_id: str) -> Gate | Skip:
    return await router.gate(deployment, request_id, prompt_tokens=10)


async def test_least_in_flight_ranks_a_deployment_busy_on_another_worker_last(routers: OpenRouter) -> None:
    model_catalog = catalog("least_in_flight")
    here, there = await routers(model_catalog), await routers(model_catalog)
    model = model_catalog.models[0]
    busy = await gate(there, GUARDED, "r1")
    assert isinstance(busy, Gate)
    await eventually(lambda: [d.name for d in here.rank(model, DEMAND)] == ["spare", "guarded"])
    await there.ended(busy, "r1", "ok", 20)
    await eventually(lambda: here.in_flight(GUARDED) == 0)


async def test_a_rate_limited_deployment_is_skipped_with_when_to_come_back(routers: OpenRouter) -> None:
    router = await routers(catalog("ordered", CAPPED))
    assert isinstance(await gate(router, CAPPED, "r1"), Gate)
    assert isinstance(await gate(router, CAPPED, "r2"), Gate)
    refused = await gate(router, CAPPED, "r3")
    assert isinstance(refused, Skip)
    assert refused.reason == "rpm_limit"
    assert refused.retry_after_s is not None
    assert 0 < refused.retry_after_s <= 60


async def test_a_breaker_opens_on_failures_lets_one_probe_through_after_the_cooldown_and_announces_each_step(
    routers: OpenRouter, nats_url: str
) -> None:
    facts: list[tuple[str, BreakerChanged]] = []
    spy = await nats.connect(nats_url)

    async def record(msg: Msg) -> None:
        facts.append((msg.subject, BreakerChanged.decode(msg.data)))

    await spy.subscribe("routing.breaker.*", cb=record)
    await flush(spy)
    one, two = await routers(catalog()), await routers(catalog())
    for request_id in ("r1", "r2"):
        attempt = await gate(one, GUARDED, request_id)
        assert isinstance(attempt, Gate)
        await one.ended(attempt, request_id, "failed", None, "server_error")
    await eventually(lambda: facts)
    subject, opened = facts[0]
    assert (subject, opened.state, opened.previous, opened.reason, opened.request_id) == (
        "routing.breaker.opened",
        "open",
        "closed",
        "server_error",
        "r2",
    )
    await eventually(lambda: isinstance(two.breakers.closed_to(GUARDED), float))
    kept_off = await gate(two, GUARDED, "r3")  # the other worker keeps off it too
    assert isinstance(kept_off, Skip)
    assert kept_off.reason == "breaker_open"
    assert kept_off.retry_after_s is not None
    assert 0 < kept_off.retry_after_s <= COOLDOWN_S
    assert (
        two.metrics.registry.get_sample_value("lobe_deployment_breaker_state", {"deployment": "guarded"}) == 2
    )

    probe: Gate | None = None

    async def probe_goes_through() -> bool:
        nonlocal probe
        attempt = await gate(two, GUARDED, "probe")
        probe = attempt if isinstance(attempt, Gate) else None
        return probe is not None

    await eventually(probe_goes_through, within_s=5, every_s=0.05)  # after the cooldown
    assert probe is not None
    assert probe.probe
    assert isinstance(await gate(one, GUARDED, "another"), Skip)  # one probe only, fleet-wide
    await two.ended(probe, "probe", "ok", 20)  # it answered: the breaker closes for every worker
    await eventually(lambda: len(facts) == 3)
    assert [s for s, _ in facts] == [
        "routing.breaker.opened",
        "routing.breaker.half_opened",
        "routing.breaker.closed",
    ]
    await eventually(lambda: one.breakers.closed_to(GUARDED) is None)
    assert isinstance(await gate(one, GUARDED, "after"), Gate)
    await spy.close()


async def test_failures_that_are_the_requests_fault_never_open_the_breaker(routers: OpenRouter) -> None:
    router = await routers(catalog())
    for n in range(5):
        attempt = await gate(router, GUARDED, f"r{n}")
        assert isinstance(attempt, Gate)
        await router.ended(attempt, f"r{n}", "rejected", 0, "invalid_request")
    assert isinstance(await gate(router, GUARDED, "after"), Gate)
    assert (
        router.metrics.registry.get_sample_value(
            "lobe_routing_attempts_total", {"deployment": "guarded", "outcome": "rejected"}
        )
        == 5
    )
