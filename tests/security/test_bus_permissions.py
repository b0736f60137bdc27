"""Least privilege on the bus, against a real nats-server running the users generated from the
catalog: a stolen gateway credential cannot bill anyone or impersonate billing, a worker's cannot
take budget holds; the MEDIA bucket works for the gateway and the workers under their own users,
and another service cannot read it. Each refusal is checked twice: the server refuses (a permissions violation)
and nothing reaches the other side, next to the same action done by the rightful user."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import nats
import openai
import pytest
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel, with_builtin
from lobe.chat_worker.providers.mock_media import MOCK_TRANSCRIPT, wav_header
from lobe.chat_worker.routing.store import BUCKET, COUNTER_STREAM, SUBJECT_PREFIXES
from lobe.devtools.fake_media import fake_png
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.pytest_plugin import HARNESS_USER
from lobe.devtools.servers import NatsServer
from lobe.shared.bus import ensure_streams, flush, inbox_prefix
from lobe.shared.bus.objects import MEDIA, put_bytes, read_stream
from lobe.shared.catalog import BILLING, CHAT_WORKER, GATEWAY, METRICS
from lobe.shared.catalog.permissions import PRIVATE_STREAMS
from lobe.shared.events.auth import AUTH_KEY_VERIFY
from lobe.shared.events.billing import BILLING_QUEUE, BUDGET_RESERVE
from lobe.shared.events.streams import USAGE
from lobe.shared.events.usage import USAGE_RECORDED, USAGE_REPORTED

from ..e2e.conftest import (
    API_KEY,
    media_upstream_fixture,  # noqa: F401 (the fixture `media_upstream`)
    start_gateway,
    start_worker,
)

REFUSED_WITHIN_S = 5.0


class Refusals:
    """The permission errors the server sent one connection."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.arrived = asyncio.Event()

    async def record(self, exc: Exception) -> None:
        if "permissions violation" in str(exc).lower():
            self.errors.append(str(exc))
            self.arrived.set()

    async def wait(self, fragment: str) -> str:
        async with asyncio.timeout(REFUSED_WITHIN_S):
            while True:
                found = [e for e in self.errors if fragment in e]
                if found:
                    return found[0]
                self.arrived.clear()
                await self.arrived.wait()


@asynccontextmanager
async def connected(server: NatsServer, principal: str) -> AsyncIterator[tuple[NATS, Refusals]]:
    assert server.users is not None
    refusals = Refusals()
    nc = await nats.connect(
        server.url,
        name=principal,
        inbox_prefix=inbox_prefix(principal),
        error_cb=refusals.record,
        **server.users.connect_kwargs(principal),
    )
    try:
        yield nc, refusals
    finally:
        await nc.close()


async def stored(nc: NATS, subject: str) -> int:
    info = await nc.jetstream().stream_info(USAGE.name, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def test_gateway_credentials_cannot_publish_usage_recorded(secured_nats: NatsServer) -> None:
    async with (
        connected(secured_nats, HARNESS_USER) as (harness, _),
        connected(secured_nats, GATEWAY) as (gateway, refused),
    ):
        await ensure_streams(harness.jetstream(), replicas=1)
        js = gateway.jetstream(timeout=1)
        with pytest.raises(TimeoutError):  # no ack: the server dropped the publish
            await js.publish(USAGE_RECORDED, b'{"forged": true}', headers={"Nats-Msg-Id": "forged-1"})
        assert USAGE_RECORDED in await refused.wait("publish to")
        # Its own subject, for a lost worker's usage, is acked and stored.
        ack = await js.publish(USAGE_REPORTED, b"{}", headers={"Nats-Msg-Id": "reported-1"})
        assert ack.stream == USAGE.name
        assert await stored(harness, USAGE_RECORDED) == 0
        assert await stored(harness, USAGE_REPORTED) == 1


@pytest.mark.parametrize("command", [AUTH_KEY_VERIFY, BUDGET_RESERVE])
async def test_gateway_credentials_cannot_answer_billings_commands(
    secured_nats: NatsServer, command: str
) -> None:
    async with (
        connected(secured_nats, HARNESS_USER) as (harness, _),
        connected(secured_nats, GATEWAY) as (gateway, refused),
    ):
        taken: list[Msg] = []
        await gateway.subscribe(command, queue=BILLING_QUEUE, cb=_answer(taken))
        await gateway.subscribe(command, cb=_answer(taken))
        await flush(gateway)
        assert command in await refused.wait("subscription to")
        with pytest.raises(NoRespondersError):
            await harness.request(command, b"{}", timeout=2)
        assert taken == []

        async with connected(secured_nats, BILLING) as (billing, billing_refused):
            await billing.subscribe(command, queue=BILLING_QUEUE, cb=_answer(taken))
            await flush(billing)
            reply = await harness.request(command, b"{}", timeout=2)
        assert reply.data == b"answered"
        assert billing_refused.errors == []


async def test_worker_credentials_cannot_reserve_budgets(secured_nats: NatsServer) -> None:
    async with (
        connected(secured_nats, BILLING) as (billing, _),
        connected(secured_nats, CHAT_WORKER) as (worker, refused),
        connected(secured_nats, GATEWAY) as (gateway, _),
    ):
        taken: list[Msg] = []
        await billing.subscribe(BUDGET_RESERVE, queue=BILLING_QUEUE, cb=_answer(taken))
        await flush(billing)
        with pytest.raises(TimeoutError):
            await worker.request(BUDGET_RESERVE, b'{"request_id": "forged"}', timeout=1)
        assert BUDGET_RESERVE in await refused.wait("publish to")
        assert taken == []
        # The gateway's reserve reaches billing and is answered.
        reply = await gateway.request(BUDGET_RESERVE, b'{"request_id": "real"}', timeout=2)
        assert reply.data == b"answered"
        assert [m.data for m in taken] == [b'{"request_id": "real"}']


def _answer(taken: list[Msg]) -> Callable[[Msg], object]:
    async def answer(msg: Msg) -> None:
        taken.append(msg)
        await msg.respond(b"answered")

    return answer


def test_the_workers_private_streams_are_the_routing_stores() -> None:
    """lobe.shared cannot import the worker: its permissions name the routing store's streams by
    hand, held here to the store's own constants."""
    granted = dict(PRIVATE_STREAMS[CHAT_WORKER])
    assert granted == {f"KV_{BUCKET}": f"{SUBJECT_PREFIXES[0]}>", COUNTER_STREAM: f"{SUBJECT_PREFIXES[1]}>"}


async def test_uploads_and_large_images_go_through_the_bucket_under_the_services_own_users(
    secured_nats: NatsServer, media_upstream: FakeUpstream
) -> None:
    """The gateway stores an upload and the worker reads and deletes it; the worker stores a
    4 MiB image and the gateway streams and deletes it: each with its own NATS user, and the
    server logs no violation."""
    users = secured_nats.users
    assert users is not None
    oa = Deployment(name="oa", provider="openai", model="gpt-image-1", base_url=media_upstream.url + "/v1")
    models = with_builtin(ModelCatalog(models=[RoutedModel(name="oa", serves=["images"], deployments=[oa])]))
    worker = await start_worker(secured_nats.url, models, **users.settings(CHAT_WORKER))
    runner, base_url = await start_gateway(secured_nats.url, **users.settings(GATEWAY))
    try:
        async with openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0) as client:
            audio = wav_header(64_000) + bytes(64_000)  # 4 s at the mock's 16,000 bytes a second
            transcript = await client.audio.transcriptions.create(
                model="mock", file=("a.wav", audio), response_format="verbose_json"
            )
            image = await client.images.generate(model="oa", prompt="p", size="1024x1024")
    finally:
        await runner.cleanup()
        await worker.stop()
    assert (transcript.text, transcript.duration) == (MOCK_TRANSCRIPT, round(len(audio) / 16_000, 3))
    assert base64.b64decode(image.data[0].b64_json or "") == fake_png("fake:0:p", "1024x1024")
    assert secured_nats.violations() == []


async def test_metrics_credentials_cannot_read_the_media_bucket(secured_nats: NatsServer) -> None:
    async with (
        connected(secured_nats, HARNESS_USER) as (harness, _),
        connected(secured_nats, METRICS) as (metrics, refused),
    ):
        await put_bytes(harness.jetstream(), "secret-upload", b"private audio")
        # Neither the store's API on its stream nor its subjects.
        with pytest.raises(nats.errors.TimeoutError):
            await metrics.jetstream(timeout=1).get_last_msg(MEDIA.stream, "$O.MEDIA.M.>")
        refusal = await refused.wait("publish to")
        assert f"$JS.API.STREAM.MSG.GET.{MEDIA.stream}".lower() in refusal.lower()
        await metrics.subscribe(MEDIA.subjects)
        await flush(metrics)
        assert MEDIA.subjects.lower() in (await refused.wait("subscription to")).lower()
        # The worker's user reads it.
        async with connected(secured_nats, CHAT_WORKER) as (worker, worker_refused):
            read = b"".join([chunk async for chunk in read_stream(worker.jetstream(), "secret-upload")])
        assert read == b"private audio"
        assert worker_refused.errors == []
