"""What really crosses the bus is what the catalog (docs/asyncapi.json) says, and every catalogued
producer and consumer really exists.

The whole suite runs (gateway, a chat worker, billing, metrics) while a sniffer subscribed to `>`
records every message; the workload covers streamed, non-streamed, embeddings, images, speech, a
transcription (its upload through the Object Store), cancelled, failed, unknown-model,
over-budget, unpriced and dead-lettered requests, a response cache hit and an admin's cache
invalidation, key issue and revocation (an admin's and a user's own), a usage reset, a refused and a successful sign-in and a
sign-out, a deployment whose breaker opens, probes and closes, a model routed by price, a worker killed
mid-answer and every service's start and stop. Consumers are read off the server itself: its live
subscriptions (monitoring endpoint /connz) and its JetStream consumers. The workers' routing store
(a KV bucket and a counter stream, docs/routing.md) is state, not events: its subjects are not
catalogued.

Every service connects as its own NATS user with the permissions generated from the catalog
(lobe.shared.catalog.permissions), so anything a service does outside the catalog is also a
permission violation the server logs: the test fails on any.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import nats
import openai
import pytest
from nats.aio.msg import Msg
from pydantic import TypeAdapter

from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import Deployment, ModelCatalog, RoutedModel
from lobe.chat_worker.policies import BreakerPolicy
from lobe.chat_worker.routing.prices import QUOTE_ID_PREFIX
from lobe.chat_worker.routing.store import SUBJECT_PREFIXES
from lobe.devtools.fake_media import speech_audio, speech_reply
from lobe.devtools.fake_upstream import FakeUpstream, Reply
from lobe.devtools.ports import free_port
from lobe.devtools.provider_fixtures import load
from lobe.devtools.pytest_plugin import HARNESS_USER
from lobe.devtools.servers import NatsServer
from lobe.devtools.servers.oidc import OidcProviderServer
from lobe.devtools.waiting import eventually
from lobe.metrics.service import running
from lobe.metrics.settings import MetricsSettings
from lobe.shared.bus import flush, inbox_prefix
from lobe.shared.catalog import BILLING, CATALOG, CHAT_WORKER, GATEWAY, METRICS, SERVICES, Subject
from lobe.shared.events.billing import PRICE_QUOTE, PriceQuote
from lobe.shared.events.chat import CHAT_MODELS
from lobe.shared.events.lifecycle import ServiceLifecycle
from lobe.shared.events.usage import USAGE_RECORDED

from .conftest import API_KEY, billing_settings, catalog, start_worker
from .sign_in_support import (
    CLIENT_ID,
    CLIENT_SECRET,
    claims,
    key_set,
    new_key,
    sign_in,
    signer_for,
    start_auth_gateway,
)

ASYNCAPI = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.json"
# JetStream's API, request inboxes, the system account, the chat workers' routing store, the
# Object Store's chunks and meta messages (the catalog's BUCKETS, not channels: the permissions
# test and this one's violation check hold them).
NATS_OWN = ("$JS.", "_INBOX.", "$SYS.", "$O.", *SUBJECT_PREFIXES)
ADMIN_TOKEN = "bus-test-admin"
MESSAGES = [{"role": "user", "content": "What crosses the bus?"}]
GARBAGE = b"not json"  # a usage message billing cannot read, published by the test itself
BREAKER_COOLDOWN_S = 0.3


@pytest.fixture
def nats_server(secured_nats: NatsServer) -> NatsServer:
    """The suite runs under per-service users (worker_process and nats_url use this server too)."""
    return secured_nats


def as_user(server: NatsServer, service: str) -> dict[str, str]:
    """Settings overrides of an in-process service connecting as its own NATS user."""
    assert server.users is not None
    return server.users.settings(service)


def channel_patterns() -> list[re.Pattern[str]]:
    """Each AsyncAPI channel address as a regex: a `{parameter}` is exactly one token."""
    channels = json.loads(ASYNCAPI.read_text())["channels"].values()
    addresses = {c["address"] for c in channels if c.get("address")}
    return [re.compile(re.sub(r"\\\{[a-z_]+\\\}", "[^.]+", re.escape(a)) + "$") for a in addresses]


@dataclass
class Sniffer:
    seen: list[Msg] = field(default_factory=list)

    async def record(self, msg: Msg) -> None:
        if not msg.subject.startswith(NATS_OWN):
            self.seen.append(msg)

    def of(self, entry: Subject) -> list[Msg]:
        """The suite's messages of one catalog entry (not the test's garbage)."""
        return [m for m in self.seen if entry.matches(m.subject) and m.data != GARBAGE]


def connz(server: NatsServer) -> list[dict[str, Any]]:
    url = f"http://{server.host}:{server.monitor_port}/connz?subs=detail&limit=1024"
    with urllib.request.urlopen(url, timeout=5) as resp:
        return list(json.load(resp)["connections"])


def service_of(connection_name: str) -> str | None:
    """Services name their connection after themselves (workers add their id)."""
    head = connection_name.split(" ")[0]
    return head if head in SERVICES else None


def subscriptions(server: NatsServer) -> set[tuple[str, str, str]]:
    """(service, subject, queue group) of every live subscription of a suite service."""
    subs = set()
    for conn in connz(server):
        service = service_of(conn.get("name", ""))
        for sub in conn.get("subscriptions_list_detail") or ():
            if service is not None:
                subs.add((service, sub["subject"], sub.get("qgroup", "")))
    return subs


def routing(upstream: FakeUpstream, flaky: FakeUpstream, speaker: FakeUpstream) -> ModelCatalog:
    """The mock models, an embedding model, one failing upstream, one model billing has no price for, one deployment
    whose breaker opens at its first failure, and a model routed by price."""
    broken = Deployment(name="broken", provider="openai", base_url=f"{upstream.url}/v1")
    unpriced = Deployment(name="unpriced", provider="mock")
    breaker = BreakerPolicy(failures=1, cooldown_s=BREAKER_COOLDOWN_S)
    guarded = [
        Deployment(name="flaky", provider="openai", base_url=f"{flaky.url}/v1", breaker=breaker),
        Deployment(name="standby", provider="mock"),
    ]
    priced = [
        Deployment(name="cheap", provider="mock", model="gpt-4o-mini"),
        Deployment(name="dear", provider="mock"),
    ]
    extra = [
        RoutedModel(name="broken", deployments=[broken]),
        RoutedModel(name="unpriced", deployments=[unpriced]),
        RoutedModel(name="guarded", deployments=guarded),
        RoutedModel(name="cheapest", deployments=priced, strategy="lowest_cost"),
        RoutedModel(
            name="media",
            serves=["images", "speech", "transcriptions"],
            # The mock's own prices: the default image price would spend alice's budget.
            deployments=[Deployment(name="media", provider="mock", model="mock")],
        ),
        RoutedModel(
            name="voice",
            serves=["speech"],
            deployments=[
                Deployment(name="voice", provider="openai", model="tts-1", base_url=f"{speaker.url}/v1")
            ],
        ),
        RoutedModel(
            name="text-embedding-3-small",
            serves=["embeddings"],
            deployments=[Deployment(name="embedder", provider="mock", model="text-embedding-3-small")],
        ),
    ]
    return ModelCatalog(models=[*catalog().models, *extra])


def attributed(entry: Subject, msg: Msg) -> str:
    """Which producer sent a message of a subject with several: its payload says."""
    if entry.payload is ServiceLifecycle:
        return ServiceLifecycle.decode(msg.data).service
    if entry.subject == PRICE_QUOTE:
        routing_quote = PriceQuote.decode(msg.data).request_id.startswith(QUOTE_ID_PREFIX)
        return CHAT_WORKER if routing_quote else GATEWAY
    if entry.subject == CHAT_MODELS:  # an empty query: the asker's inbox says who asked
        return BILLING if (msg.reply or "").startswith(inbox_prefix(BILLING) + ".") else GATEWAY
    [producer] = entry.producers
    return producer


@pytest.fixture
async def broken_upstream(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeUpstream]:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key-openai")
    error = b'{"error": {"message": "upstream exploded", "type": "server_error", "code": null}}'
    server = await FakeUpstream(default=Reply(error, status=500, content_type="application/json")).start()
    yield server
    await server.stop()


@pytest.fixture
async def flaky_upstream(broken_upstream: FakeUpstream) -> AsyncIterator[FakeUpstream]:
    """Fails its first request, answers every later one (the breaker's probe)."""
    first = broken_upstream.default
    server = await FakeUpstream(
        default=load("openai/chat_stream_text.sse").reply(), schedule=lambda n: first if n == 0 else None
    ).start()
    yield server
    await server.stop()


async def admin(http: aiohttp.ClientSession, base: str, method: str, path: str, body: object = None) -> Any:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with http.request(method, f"{base}/v1/admin{path}", json=body, headers=headers) as response:
        assert response.status < 300, await response.text()
        return await response.json()


async def test_every_message_on_the_bus_is_catalogued_and_every_catalogued_party_exists(
    nats_server: NatsServer,
    billing_db: str,
    broken_upstream: FakeUpstream,
    flaky_upstream: FakeUpstream,
    media_upstream: FakeUpstream,
    worker_process: Callable[..., Awaitable[asyncio.subprocess.Process]],
    redis_url: str,
    make_oidc_provider: Callable[[list[dict[str, Any]]], OidcProviderServer],
) -> None:
    url = nats_server.url
    port = free_port()
    callback = f"http://127.0.0.1:{port}/auth/callback/oidc"
    provider = make_oidc_provider(
        [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [callback]}]
    )
    assert nats_server.users is not None
    harness = nats_server.users.connect_kwargs(HARNESS_USER)
    sniffer = Sniffer()
    spy = await nats.connect(url, name="sniffer", **harness)
    await spy.subscribe(">", cb=sniffer.record)
    await flush(spy)
    metrics_settings = MetricsSettings(
        nats_url=url, ops_host="127.0.0.1", ops_port=0, **as_user(nats_server, METRICS)
    )
    async with (
        BillingService(
            billing_settings(url, billing_db, ADMIN_TOKEN, **as_user(nats_server, BILLING))
        ) as billing,
        running(metrics_settings),
        aiohttp.ClientSession() as http,
    ):
        billing_url = f"http://127.0.0.1:{billing.ops_port}"
        worker = await start_worker(
            url,
            models=routing(broken_upstream, flaky_upstream, media_upstream),
            **as_user(nats_server, CHAT_WORKER),
        )
        session_key = new_key("bus-test")
        gateway = await start_auth_gateway(
            url,
            redis_url,
            key_set(session_key),
            port,
            billing_enabled=True,
            # The workload sends more than the free tier's requests a minute; limits are Redis only.
            rate_limits_enabled=False,
            cache_enabled=True,
            cache_redis_url=redis_url,
            oidc_discovery_url=provider.discovery_url,
            oidc_client_id=CLIENT_ID,
            oidc_client_secret=CLIENT_SECRET,
            allowed_email_domains="corp.example",
            **as_user(nats_server, GATEWAY),
        )
        runner, base_url = gateway.runner, gateway.url
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)

        # Served: streamed, non-streamed, the model list, unpriced.
        stream = await client.chat.completions.create(
            model="mock", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
        )
        assert [c async for c in stream]
        await client.chat.completions.create(model="mock", messages=MESSAGES)
        await client.chat.completions.create(model="unpriced", messages=MESSAGES)
        assert {m.id for m in (await client.models.list()).data} >= {"mock", "broken"}
        embedded = await client.embeddings.create(model="text-embedding-3-small", input=["one", "two"])
        assert len(embedded.data) == 2
        assert len((await client.images.generate(model="media", prompt="a bus")).data) == 1
        # Speech, with the server's subscriptions read while its audio is in flight (the fake
        # holds its last chunk until then): the gateway listens on speech.audio.<request_id>.
        spoken = asyncio.Event()
        media_upstream.answer = lambda recorded: speech_reply(release_last=spoken)
        async with client.audio.speech.with_streaming_response.create(
            model="voice", voice="alloy", input="hi", response_format="wav"
        ) as speech:
            chunks = speech.iter_bytes()
            audio = [await anext(chunks)]
            live_speaking = subscriptions(nats_server)
            spoken.set()
            audio += [data async for data in chunks]
        assert b"".join(audio) == speech_audio()
        transcript = await client.audio.transcriptions.create(model="media", file=("a.wav", bytes(32_000)))
        assert transcript.text

        # A response cache hit (the gateway records its usage), then an admin invalidates the cache.
        async def served_from_cache() -> bool:
            raw = await client.chat.completions.with_raw_response.create(
                model="mock", messages=MESSAGES, temperature=0
            )
            return bool(raw.headers["x-cache"] == "hit")

        await eventually(served_from_cache)  # a miss first; a hit once the answer is stored
        admin_session = signer_for(session_key).sign_session(claims(role="admin"))
        async with http.post(
            f"{base_url}/v1/admin/cache/invalidate",
            json={},
            headers={"Authorization": f"Bearer {admin_session}"},
        ) as invalidated:
            assert invalidated.status == 200, await invalidated.text()
        # Failed: the provider errors; and a model no worker serves.
        with pytest.raises(openai.InternalServerError):
            await client.chat.completions.create(model="broken", messages=MESSAGES)
        with pytest.raises(openai.NotFoundError):
            await client.chat.completions.create(model="no-such-model", messages=MESSAGES)
        # A deployment fails: its breaker opens; after the cooldown one probe answers and closes it.
        # (A small max_tokens: unpriced models hold the expensive default price in alice's budget.)
        await client.chat.completions.create(model="guarded", messages=MESSAGES, max_tokens=8)
        await asyncio.sleep(BREAKER_COOLDOWN_S + 0.1)
        await client.chat.completions.create(model="guarded", messages=MESSAGES, max_tokens=8)
        await eventually(lambda: any(m.subject == "routing.breaker.closed" for m in sniffer.seen))
        # Routed by price: the worker asked billing for the deployments' prices at start.
        await client.chat.completions.create(model="cheapest", messages=MESSAGES, max_tokens=8)
        # Cancelled, with the server's subscriptions read while the answer is in flight.
        slow = await client.chat.completions.create(model="mock-slow", messages=MESSAGES, stream=True)
        await anext(aiter(slow))
        live = subscriptions(nats_server) | live_speaking
        await slow.close()
        # A key billing issues, a user over budget, the key revoked.
        await admin(http, billing_url, "POST", "/users", {"id": "bob", "plan": "free"})
        await admin(http, billing_url, "PUT", "/users/bob/limits", {"cost_usd": "0"})
        issued = await admin(http, billing_url, "POST", "/users/bob/keys", {})
        bob = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=issued["key"], max_retries=0)
        with pytest.raises(openai.RateLimitError):
            await bob.chat.completions.create(model="mock", messages=MESSAGES)
        await admin(http, billing_url, "DELETE", f"/keys/{issued['id']}")
        await admin(http, billing_url, "POST", "/users/bob/reset-usage", {})  # a new usage period
        # Sign-in: refused (domain), then signed in (billing creates the user) and out.
        assert (await sign_in(base_url, provider.url, "eve@elsewhere.example")).status == 403
        session = (await sign_in(base_url, provider.url, "ann@corp.example")).body["access_token"]
        # Her own keys (the console's): create, list, revoke, each a command to billing.
        own = {"Authorization": f"Bearer {session}"}
        async with http.post(f"{base_url}/v1/keys", json={"name": "laptop"}, headers=own) as made:
            assert made.status == 201, await made.text()
            own_key = await made.json()
        async with http.get(f"{base_url}/v1/keys", headers=own) as listed:
            assert [k["id"] for k in (await listed.json())["data"]] == [own_key["id"]]
        async with http.delete(f"{base_url}/v1/keys/{own_key['id']}", headers=own) as revoked:
            assert revoked.status == 200
        async with http.post(
            f"{base_url}/auth/logout", headers={"Authorization": f"Bearer {session}"}
        ) as out:
            assert out.status == 200
        # A usage message billing cannot read: dead-lettered, never lost.
        await spy.jetstream().publish(USAGE_RECORDED, GARBAGE, headers={"Nats-Msg-Id": "garbage-1"})

        # A worker killed mid-answer: the gateway records the usage it never will.
        await worker.stop()
        doomed = await worker_process(**nats_server.users.env(CHAT_WORKER))
        dying = await client.chat.completions.create(model="mock-slow", messages=MESSAGES, stream=True)
        await anext(aiter(dying))
        doomed.send_signal(signal.SIGKILL)
        with pytest.raises(openai.APIError):
            async for _ in dying:
                pass
        await eventually(lambda: any(e.subject == "usage.dead" for e in sniffer.seen))
        await eventually(lambda: any(e.subject == "billing.price.missing" for e in sniffer.seen))
        await runner.cleanup()
    await eventually(lambda: len([m for m in sniffer.seen if m.subject == "service.stopped"]) >= 4)
    await spy.close()

    # 1. Everything seen is a channel of the published AsyncAPI document, with its payload.
    patterns = channel_patterns()
    strays = sorted({m.subject for m in sniffer.seen if not any(p.match(m.subject) for p in patterns)})
    assert strays == [], f"subjects on the bus that docs/asyncapi.json does not list: {strays}"
    for msg in sniffer.seen:
        entry = next(e for e in CATALOG if e.matches(msg.subject))
        if msg.data == GARBAGE:
            continue
        if entry.payload is None:
            assert msg.data == b"", msg.subject
        else:
            TypeAdapter(entry.payload).validate_json(msg.data)

    # 2. Every catalogued subject was produced, by each of its catalogued producers.
    for entry in CATALOG:
        produced = {attributed(entry, m) for m in sniffer.of(entry)}
        assert produced == set(entry.producers), f"{entry.subject}: produced by {produced}"

    # 3. Every catalogued consumer exists: a live subscription (queue group as catalogued), or a
    # durable JetStream consumer filtering the subject.
    reader = await nats.connect(url, **harness)
    js = reader.jetstream()
    for entry in CATALOG:
        for consumer in entry.consumers:
            if entry.stream is not None and consumer.group is not None:
                info = await js.consumer_info(entry.stream.name, consumer.group)
                filters = info.config.filter_subjects or [info.config.filter_subject or ""]
                assert any(entry.matches(f) for f in filters), (entry.subject, consumer)
                continue
            group = consumer.group or ""
            found = [s for s in live if s[0] == consumer.service and entry.matches(s[1]) and s[2] == group]
            assert found, f"{entry.subject}: no live subscription by {consumer.service} (group {group!r})"
    await reader.close()

    # 4. Nothing any service did was outside its catalog permissions.
    assert nats_server.violations() == [], "\n".join(nats_server.violations())
