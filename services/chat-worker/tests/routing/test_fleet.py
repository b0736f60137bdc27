"""The fleet's in-flight counts and time-to-first-token averages, shared through the routing store:
what one worker does reaches the others, a worker that stops or dies stops counting, and a store
that goes away and comes back leaves each worker counting on its own meanwhile, then shared again."""

from __future__ import annotations

import json
import time

import nats

from lobe.chat_worker.routing.fleet import FleetStats
from lobe.chat_worker.routing.store import BUCKET, COUNTER_STREAM, RoutingStore
from lobe.devtools.waiting import eventually

from .conftest import OpenStore

HEARTBEAT_S = 0.2


def fleet_on(store: RoutingStore, worker_id: str) -> FleetStats:
    fleet = FleetStats(store, worker_id, publish_interval_s=0.01, heartbeat_s=HEARTBEAT_S)
    fleet.start()
    return fleet


async def test_in_flight_counts_and_latencies_reach_the_other_workers_and_leave_with_a_stopped_one(
    stores: OpenStore,
) -> None:
    here, there = fleet_on(await stores(), "here"), fleet_on(await stores(), "there")
    there.started("d")
    there.started("d")
    there.first_token("d", 300.0)
    here.started("d")
    here.first_token("d", 100.0)
    await eventually(lambda: here.fleet_in_flight("d") == 3 and here.live_workers() == 2)
    await eventually(lambda: there.fleet_ttft_ms("d") == 200.0)  # one sample each: the plain mean
    there.ended("d")
    await eventually(lambda: here.fleet_in_flight("d") == 2)
    await there.stop()  # its requests stop counting now, not after three heartbeats
    await eventually(lambda: here.fleet_in_flight("d") == 1 and here.live_workers() == 1)
    await here.stop()


async def test_a_dead_workers_last_snapshot_stops_counting_after_three_heartbeats(stores: OpenStore) -> None:
    writer, reader = await stores(), await stores()
    fleet = fleet_on(reader, "alive")
    stale = {"at": time.time() - 3 * HEARTBEAT_S - 1, "in_flight": {"d": 7}, "ttft_ms": {"d": [50.0, 4]}}
    fresh = {"at": time.time() + 60, "in_flight": {"d": 2}, "ttft_ms": {}}
    await writer.put("worker.killed", json.dumps(stale).encode())
    await writer.put("worker.other", json.dumps(fresh).encode())
    await eventually(lambda: "worker.killed" in reader.entries and "worker.other" in reader.entries)
    assert fleet.fleet_in_flight("d") == 2
    assert fleet.fleet_ttft_ms("d") is None
    assert fleet.live_workers() == 2
    await fleet.stop()


async def test_while_the_store_is_away_a_worker_counts_alone_and_shares_again_once_it_is_back(
    nats_url: str, stores: OpenStore
) -> None:
    nc = await nats.connect(nats_url)
    states: list[bool] = []
    store = RoutingStore(nc.jetstream(), timeout_s=0.5, on_degraded=states.append)
    assert await store.open()
    fleet = fleet_on(store, "here")
    js = nc.jetstream()
    await js.delete_stream(f"KV_{BUCKET}")
    await js.delete_stream(COUNTER_STREAM)
    fleet.started("d")
    assert fleet.fleet_in_flight("d") == 1  # its own count never waits on the store
    await eventually(lambda: states[-1] is True, within_s=5)  # its snapshot could not be written
    await eventually(lambda: states[-1] is False, within_s=5)  # re-opened: bucket re-created
    other = FleetStats(await stores(), "there", heartbeat_s=HEARTBEAT_S)
    await eventually(lambda: other.fleet_in_flight("d") == 1, within_s=5)  # shared again
    await fleet.stop()
    await store.close()
    await nc.close()
