"""Limits and breakers shared by several workers (one store each, one NATS server)."""

from __future__ import annotations

import asyncio

from lobe.chat_worker.deployments import Deployment
from lobe.chat_worker.policies import BreakerPolicy, Limits
from lobe.chat_worker.routing.breakers import Breakers, Transition
from lobe.chat_worker.routing.limits import Admission, WindowLimits
from lobe.chat_worker.routing.store import RoutingStore

from .conftest import OpenStore

LIMITED = Deployment(name="capped", provider="mock", limits=Limits(rpm=10, tpm=2000))
GUARDED = Deployment(name="guarded", provider="mock", breaker=BreakerPolicy(failures=2, cooldown_s=0.5))


async def test_three_workers_admit_exactly_the_window_limit_between_them(stores: OpenStore) -> None:
    fleet = [WindowLimits(await stores(), lambda: 3) for _ in range(3)]
    results = await asyncio.gather(*(limits.admit(LIMITED, 10) for limits in fleet for _ in range(12)))
    admitted = [r for r in results if isinstance(r, Admission)]
    assert len(admitted) == 10
    assert all(a.fleet for a in admitted)


async def test_a_token_limit_counts_the_prompt_first_and_the_real_usage_after(stores: OpenStore) -> None:
    limits = WindowLimits(await stores(), lambda: 1)
    first = await limits.admit(LIMITED, 1500)
    assert isinstance(first, Admission)
    refused = await limits.admit(LIMITED, 600)  # 1500 + 600 > 2000
    assert not isinstance(refused, Admission)
    assert refused.reason == "tpm_limit"
    assert 0 < refused.retry_after_s <= 60
    limits.settle(first, 100)  # it used far less than its prompt estimate
    await asyncio.sleep(0.1)
    assert isinstance(await limits.admit(LIMITED, 600), Admission)


async def test_without_the_store_each_worker_admits_its_share_of_the_limit(nats_url: str) -> None:
    store = RoutingStore(js=None, timeout_s=0.1, on_degraded=lambda _: None)  # type: ignore[arg-type]  # never opened
    limits = WindowLimits(store, lambda: 3)
    results = [await limits.admit(LIMITED, 10) for _ in range(5)]
    admitted = [r for r in results if isinstance(r, Admission)]
    assert len(admitted) == 10 // 3
    assert not any(a.fleet for a in admitted)


async def test_a_breaker_opened_by_one_worker_keeps_all_off_then_lets_exactly_one_probe_through(
    stores: OpenStore,
) -> None:
    transitions: list[Transition] = []

    async def announce(transition: Transition) -> None:
        transitions.append(transition)

    fleet = [Breakers(await stores(), announce) for _ in range(3)]
    await fleet[0].failed(GUARDED, False, "r1", "server_error")
    await fleet[1].failed(GUARDED, False, "r2", "server_error")
    assert [(t.new.state, t.request_id) for t in transitions] == [("open", "r2")]
    await asyncio.sleep(0.05)  # the watch brings it to every worker
    verdicts = await asyncio.gather(*(b.admit(GUARDED, f"q{i}") for i, b in enumerate(fleet)))
    assert not any(v.allowed for v in verdicts)
    await asyncio.sleep(0.5)
    verdicts = await asyncio.gather(
        *(b.admit(GUARDED, f"p{i}") for i, b in enumerate(fleet) for _ in range(5))
    )
    assert sum(v.probe for v in verdicts) == 1
    assert sum(v.allowed for v in verdicts) == 1
    [prober] = [b for b, v in zip([b for b in fleet for _ in range(5)], verdicts, strict=True) if v.probe]
    await prober.succeeded(GUARDED, True, "p")
    await asyncio.sleep(0.05)
    assert [v.allowed for v in await asyncio.gather(*(b.admit(GUARDED, "after") for b in fleet))] == [
        True
    ] * 3
    assert [t.new.state for t in transitions] == ["open", "half_open", "closed"]


async def test_a_probe_whose_request_left_is_given_up_so_another_worker_probes_now(stores: OpenStore) -> None:
    async def announce(_: Transition) -> None:
        return None

    first, second = Breakers(await stores(), announce), Breakers(await stores(), announce)
    await first.failed(GUARDED, False, "r1", "server_error")
    await first.failed(GUARDED, False, "r2", "server_error")
    await asyncio.sleep(0.55)
    assert (await first.admit(GUARDED, "probe")).probe
    await asyncio.sleep(0.05)
    assert second.closed_to(GUARDED) is not None  # its probe is out: nobody else goes
    await first.abandoned(GUARDED, True, "probe")
    await asyncio.sleep(0.05)
    assert second.closed_to(GUARDED) is None
    assert (await second.admit(GUARDED, "probe-2")).probe
