"""Reloading the routing file (acceptance, issue 12): on SIGHUP or when the file changes, a valid
file replaces the routing without dropping any of 100 streams in flight; a bad one is refused with
its line and field named, and the routing in use stays."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import load
from lobe.devtools.suite import upstreams as fake_upstreams
from lobe.devtools.waiting import eventually

from .conftest import API_KEY
from .fleet import WorkerProcess, fleet, metric_value
from .transcripts import expected_answer

TEXT = load("openai/chat_stream_text.sse")
STREAMS = 100


def routing(deployment: str, upstream: FakeUpstream, extra: str = "") -> str:
    return f"""models:
  - name: chat
    deployments:
      - {{name: {deployment}, provider: openai, base_url: "{upstream.url}/v1"}}
{extra}"""


@pytest.fixture
async def old_and_new() -> AsyncIterator[list[FakeUpstream]]:
    # The old deployment streams slowly, so that 100 answers are in flight during the reload.
    async with fake_upstreams(TEXT.reply(split_events=True, chunk_delay_s=0.3), TEXT.reply()) as upstreams:
        yield upstreams


async def reloads(worker: WorkerProcess, outcome: str) -> float:
    return metric_value(await worker.metrics(), "lobe_routing_reloads_total", outcome=outcome) or 0.0


async def stream(http: aiohttp.ClientSession, base_url: str, first_chunk: asyncio.Event) -> tuple[str, str]:
    """One streamed answer to its end: (the deployment header, every content delta joined)."""
    async with http.post(
        f"{base_url}/v1/chat/completions",
        json={"model": "chat", "stream": True, "messages": [{"role": "user", "content": "Stream me."}]},
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status == 200
        text, done = [], False
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            first_chunk.set()
            data = line[6:].strip()
            if data == b"[DONE]":
                done = True
                continue
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            text += [c["delta"].get("content") or "" for c in chunk["choices"]]
        assert done, "the stream ended without [DONE]"
        return response.headers["X-Lobe-Deployment"], "".join(text)


async def test_a_reload_under_100_streams_drops_none_and_a_bad_file_is_refused_naming_line_and_field(
    nats_url: str, tmp_path: Path, old_and_new: list[FakeUpstream]
) -> None:
    old, new = old_and_new
    models = tmp_path / "models.yaml"
    models.write_text(routing("old", old))
    async with (
        fleet(nats_url, models, tmp_path, MODELS_RELOAD_INTERVAL_S="0") as suite,
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as streams_http,
    ):
        started = [asyncio.Event() for _ in range(STREAMS)]
        answers = [asyncio.create_task(stream(streams_http, suite.base_url, e)) for e in started]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in started)), 30)
        in_flight = sum(not a.done() for a in answers)

        # A valid file: every worker takes it on SIGHUP while the 100 answers stream on.
        models.write_text(
            routing("new", new, "  - name: added\n    deployments: [{name: added, provider: mock}]\n")
        )
        reload_at = time.monotonic()
        for worker in suite.workers:
            worker.hang_up()
        for worker in suite.workers:
            await eventually(lambda w=worker: reloads(w, "applied"), within_s=10)  # type: ignore[misc]
        assert sum(not a.done() for a in answers) > 0  # the reload happened with streams in flight
        results = await asyncio.gather(*answers)
        expected = expected_answer(TEXT).text
        print(f"reload under load: {in_flight} streams in flight at the reload, {len(results)} complete")
        assert in_flight == STREAMS
        assert results == [("old", expected)] * STREAMS  # none dropped, none cut, none mixed
        assert (await suite.deployments("chat", 6)) == {"new": 6}
        assert (await suite.deployments("added", 3)) == {"added": 3}

        # A bad file: refused, its line and field named; the routing in use stays.
        models.write_text(routing("newer", new).replace("provider: openai", "provider: cohere"))
        for worker in suite.workers:
            worker.hang_up()
        for worker in suite.workers:
            await eventually(lambda w=worker: reloads(w, "refused"), within_s=10)  # type: ignore[misc]
            log = worker.log.read_text()
            assert "routing file refused, the routing in use stays" in log
            assert "models.0.deployments.0.provider (line 4): Input should be" in log
        assert (await suite.deployments("chat", 6)) == {"new": 6}
        assert time.monotonic() - reload_at < 60


async def test_a_changed_file_is_reloaded_without_a_signal(
    nats_url: str, tmp_path: Path, old_and_new: list[FakeUpstream]
) -> None:
    old, new = old_and_new
    old.default = TEXT.reply()
    models = tmp_path / "models.yaml"
    models.write_text(routing("old", old))
    async with fleet(nats_url, models, tmp_path, count=1, MODELS_RELOAD_INTERVAL_S="0.1") as suite:
        assert (await suite.deployments("chat", 2)) == {"old": 2}
        models.write_text(routing("new", new))
        [worker] = suite.workers
        await eventually(lambda: reloads(worker, "applied"), within_s=10)
        assert (await suite.deployments("chat", 2)) == {"new": 2}
