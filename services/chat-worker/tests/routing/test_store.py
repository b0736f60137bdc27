"""The routing store on a real NATS server: fleet-wide counters, compare-and-set, the watched copy,
and what happens when it goes away and comes back."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest

from lobe.chat_worker.routing.store import BUCKET, COUNTER_STREAM, Conflict, RoutingStore
from lobe.devtools.waiting import eventually

from .conftest import OpenStore


async def test_counters_incremented_by_three_workers_at_once_give_each_a_distinct_total(
    stores: OpenStore,
) -> None:
    fleet = [await stores() for _ in range(3)]
    totals = await asyncio.gather(*(s.increment("d.1.requests", 1) for s in fleet for _ in range(100)))
    assert sorted(t for t in totals if t is not None) == list(range(1, 301))
    assert await fleet[0].increment("d.1.requests", -300) == 0


async def test_a_compare_and_set_has_one_winner(stores: OpenStore) -> None:
    first, second = await stores(), await stores()
    revision = await first.compare_and_set("breaker.d", b"a", 0)
    assert revision
    assert await first.compare_and_set("breaker.d", b"b", revision)
    with pytest.raises(Conflict):
        await second.compare_and_set("breaker.d", b"c", revision)
    fresh = await second.fetch("breaker.d")
    assert fresh is not None
    assert fresh.value == b"b"


async def test_every_store_sees_a_change_through_its_watch(stores: OpenStore) -> None:
    writer, reader = await stores(), await stores()
    seen: list[tuple[str, bytes | None]] = []
    reader.listeners.append(lambda key, value: seen.append((key, value)))
    await writer.put("worker.w1", b"{}")
    await eventually(lambda: ("worker.w1", b"{}") in seen)
    assert reader.entries["worker.w1"].value == b"{}"
    await writer.delete("worker.w1")
    await eventually(lambda: "worker.w1" not in reader.entries)


async def test_without_the_store_operations_answer_none_at_once_and_it_comes_back(nats_url: str) -> None:
    nc = await nats.connect(nats_url)
    states: list[bool] = []
    store = RoutingStore(nc.jetstream(), timeout_s=0.5, on_degraded=states.append)
    assert await store.open()
    js = nc.jetstream()
    await js.delete_stream(f"KV_{BUCKET}")
    await js.delete_stream(COUNTER_STREAM)
    assert await store.increment("d.1.requests", 1) is None  # fails, marks the store degraded
    began = time.monotonic()
    assert await store.put("worker.w", b"{}") is False
    assert await store.compare_and_set("breaker.d", b"x", 0) is None
    assert time.monotonic() - began < 0.05  # degraded: no wait per call
    assert states == [False, True]
    await eventually(lambda: store.available, within_s=5)  # re-opened (bucket and stream re-created)
    assert states[-1] is False
    assert await store.increment("d.1.requests", 1) == 1
    await store.close()
    await nc.close()
