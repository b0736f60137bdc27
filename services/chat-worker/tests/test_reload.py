"""Reloading the routing file under a running worker: a changed file is picked up (or on request,
as SIGHUP asks), streams in flight finish on the routing they started with, and a bad file is
refused naming its line and field while the routing in use stays."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from lobe.chat_worker.deployments import load_catalog
from lobe.chat_worker.reload import RoutingReloader
from lobe.chat_worker.service import ChatWorker
from lobe.devtools.suite.fixtures import StartWorker
from lobe.devtools.waiting import eventually
from lobe.shared.events.chat import DoneFrame

from .support import ScriptedGateway, body

OLD = """models:
  - name: chat
    deployments: [{name: old, provider: mock, chunk_delay_s: 0.05}]
"""
NEW = """models:
  - name: chat
    deployments: [{name: new, provider: mock}]
  - name: added
    deployments: [{name: added-1, provider: mock}]
"""
BAD = """models:
  - name: chat
    deployments:
      - {name: new, provider: mock}
      - {name: broken, provider: mock, weight: -1}
"""


def reloads(worker: ChatWorker, outcome: str) -> float:
    return worker.metrics.registry.get_sample_value("lobe_routing_reloads_total", {"outcome": outcome}) or 0.0


async def answered_by(gateway: ScriptedGateway, model: str) -> str | None:
    answer = await gateway.ask(body(model))
    route = answer.deltas[0].route if answer.deltas else None
    return route.deployment if route else None


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "models.yaml"
    path.write_text(OLD)
    return path


async def test_a_changed_file_is_applied_and_a_stream_in_flight_keeps_its_routing(
    chat_worker: StartWorker, scripted_gateway: ScriptedGateway, routing_file: Path
) -> None:
    worker = await chat_worker(load_catalog(str(routing_file)))
    reloader = RoutingReloader(str(routing_file), worker.apply_catalog, worker.metrics, interval_s=0.05)
    reloader.start()
    in_flight = await scripted_gateway.send(body("chat"))
    await eventually(lambda: in_flight.deltas)
    await asyncio.to_thread(routing_file.write_text, NEW)
    await eventually(lambda: reloads(worker, "applied") == 1)
    assert await answered_by(scripted_gateway, "chat") == "new"
    assert await answered_by(scripted_gateway, "added") == "added-1"
    done = await in_flight.ended()
    assert isinstance(done, DoneFrame)
    assert (done.route.deployment if done.route else None) == "old"  # not cut, not re-routed
    await reloader.stop()


async def test_a_bad_file_is_refused_naming_line_and_field_and_the_routing_in_use_stays(
    chat_worker: StartWorker,
    scripted_gateway: ScriptedGateway,
    routing_file: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await asyncio.to_thread(routing_file.write_text, NEW)
    worker = await chat_worker(load_catalog(str(routing_file)))
    reloader = RoutingReloader(str(routing_file), worker.apply_catalog, worker.metrics, interval_s=0)
    reloader.start()
    await asyncio.to_thread(routing_file.write_text, BAD)
    with caplog.at_level(logging.ERROR, logger="lobe.chat_worker.reload"):
        reloader.request()  # SIGHUP: the interval is 0, so only a request reloads
        await eventually(lambda: reloads(worker, "refused") == 1)
    [refusal] = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert "models.0.deployments.1.weight (line 5)" in refusal
    assert reloads(worker, "applied") == 0
    assert await answered_by(scripted_gateway, "chat") == "new"
    assert await answered_by(scripted_gateway, "added") == "added-1"  # the bad file dropped it
    await reloader.stop()
