"""The service runtime (lobe.shared.process) on a real NATS server: SIGTERM turns readiness off
before anything stops, work in flight finishes before NATS drains, the ops server goes last, and
a start-up that fails unwinds what it had started."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import aiohttp
import nats
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg

from lobe.devtools.drain_checks import http_status, refuses_connections
from lobe.devtools.waiting import eventually
from lobe.shared.bus import ensure_streams, flush
from lobe.shared.process import ServiceRuntime, serve, started
from lobe.shared.settings import OpsSettings

WORK = "toy.work"
OPS = OpsSettings(ops_host="127.0.0.1", ops_port=0)


class RawBroker:
    """The runtime's Broker over plain nats.py, recording when it is stopped."""

    def __init__(self, url: str, on_stop: Any) -> None:
        self.url, self.on_stop, self.nc = url, on_stop, NATS()

    async def connect(self) -> NATS:
        await self.nc.connect(self.url)
        return self.nc

    async def stop(self) -> None:
        await self.on_stop()
        await self.nc.drain()

    @property
    def connection(self) -> NATS:
        return self.nc


class Toy:
    """A service that answers `toy.work` after `release` is set, recording what happens when."""

    def __init__(self, nats_url: str, http: aiohttp.ClientSession) -> None:
        self.nats_url, self.http = nats_url, http
        self.seen: list[str] = []
        self.release = asyncio.Event()
        self.in_flight: set[asyncio.Task[None]] = set()
        self.runtime: ServiceRuntime | None = None
        self.broker = RawBroker(nats_url, self._nats_draining)

    async def ready_status(self) -> int:
        assert self.runtime is not None
        return await http_status(self.http, f"http://127.0.0.1:{self.runtime.ops_port}/health/ready")

    async def open(self, runtime: ServiceRuntime) -> None:
        self.runtime = runtime
        await runtime.serve_ops(OPS, self._ready)
        self.seen.append(f"starting: readiness {await self.ready_status()}")
        nc = await runtime.connect(self.broker)
        await ensure_streams(nc.jetstream(), replicas=1)
        runtime.announce(nc.jetstream())
        sub = await nc.subscribe(WORK, cb=self._on_work)
        runtime.on_stop(self._stop_taking_work, sub)
        await flush(nc)

    async def _ready(self) -> bool:
        return self.broker.nc.is_connected

    async def _on_work(self, msg: Msg) -> None:
        async def answer() -> None:
            await self.release.wait()
            await msg.respond(b"done")

        task = asyncio.create_task(answer())
        self.in_flight.add(task)
        task.add_done_callback(self.in_flight.discard)

    async def _stop_taking_work(self, sub: Any) -> None:
        self.seen.append(f"stop taking work: readiness {await self.ready_status()}")
        await sub.unsubscribe()
        self.release.set()  # the work in hand finishes within the grace
        await asyncio.wait(self.in_flight, timeout=5)
        self.seen.append(f"in-flight finished: {len(self.in_flight)} left")

    async def _nats_draining(self) -> None:
        self.seen.append(f"nats drains: readiness {await self.ready_status()}")


async def lifecycle_facts(nats_url: str) -> tuple[NATS, list[str]]:
    nc, seen = await nats.connect(nats_url), []

    async def record(msg: Msg) -> None:
        seen.append(msg.subject)

    await nc.subscribe("service.*", cb=record)
    await flush(nc)
    return nc, seen


async def test_sigterm_turns_readiness_off_then_finishes_work_then_drains_nats_then_stops_ops(
    nats_url: str,
) -> None:
    facts_nc, facts = await lifecycle_facts(nats_url)
    client = await nats.connect(nats_url)
    async with aiohttp.ClientSession() as http:
        toy = Toy(nats_url, http)
        service = asyncio.create_task(serve("toy", toy.open))
        await eventually(lambda: toy.runtime is not None and toy.runtime.ops_port != 0 and toy.seen)
        await eventually(lambda: _status_is(toy, 200))
        await eventually(lambda: facts == ["service.started"])
        asking = asyncio.create_task(client.request(WORK, b"job", timeout=10))
        await eventually(lambda: toy.in_flight)

        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(service, 15)

        assert (await asking).data == b"done"  # answered before NATS drained
        assert toy.seen == [
            "starting: readiness 503",
            "stop taking work: readiness 503",
            "in-flight finished: 0 left",
            "nats drains: readiness 503",  # the ops server outlives the drain
        ]
        assert toy.runtime is not None
        assert await refuses_connections(toy.runtime.ops_port)
    await eventually(lambda: facts == ["service.started", "service.stopped"])
    await client.close()
    await facts_nc.close()


async def _status_is(toy: Toy, status: int) -> bool:
    return await toy.ready_status() == status


class Broken(RuntimeError):
    pass


async def test_a_start_up_that_fails_unwinds_what_it_started_and_never_says_it_started(
    nats_url: str,
) -> None:
    facts_nc, facts = await lifecycle_facts(nats_url)
    stopped: list[str] = []
    runtimes: list[ServiceRuntime] = []

    async def start(runtime: ServiceRuntime) -> None:
        runtimes.append(runtime)
        await runtime.serve_ops(OPS, _always_ready)
        nc = await runtime.connect(RawBroker(nats_url, _nothing))
        runtime.announce(nc.jetstream())
        runtime.on_stop(_record, stopped, "handlers")
        raise Broken("the routing file names an unknown provider")

    with pytest.raises(Broken):
        async with started("toy", start):
            pytest.fail("a service whose start-up failed must not run")
    [runtime] = runtimes
    assert stopped == ["handlers"]
    assert runtime.draining.is_set() is False  # it never served, so it never drained
    assert await refuses_connections(runtime.ops_port)
    await flush(facts_nc)
    assert facts == []
    await facts_nc.close()


async def test_readiness_is_503_from_the_moment_the_runtime_drains() -> None:
    async def start(runtime: ServiceRuntime) -> None:
        await runtime.serve_ops(OPS, _always_ready)

    async with aiohttp.ClientSession() as http, started("toy", start) as runtime:
        url = f"http://127.0.0.1:{runtime.ops_port}/health/ready"
        assert await http_status(http, url) == 200
        runtime.draining.set()
        async with http.get(url) as response:
            assert response.status == 503
            assert (await response.json())["reasons"] == ["draining: shutting down"]


async def _always_ready() -> bool:
    return True


async def _nothing() -> None:
    return None


async def _record(into: list[str], what: str) -> None:
    into.append(what)
