"""Images, speech and transcription end to end with the official `openai` SDK, against the
built-in mock (docs/media.md): the gateway's edge, a worker, the Object Store for uploads, and
billing's ledger (one row per request, its kind, units and cost)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from collections.abc import AsyncIterator, Awaitable
from decimal import Decimal
from typing import Any

import aiohttp
import nats
import openai
import pytest

from lobe.billing.admin import admin_session
from lobe.billing.plans import Override
from lobe.billing.service import BillingService
from lobe.chat_worker.deployments import BUILTIN, Deployment, ModelCatalog, RoutedModel, with_builtin
from lobe.chat_worker.providers.mock_media import MOCK_TRANSCRIPT, png_1x1, wav_header
from lobe.devtools.fake_media import (
    TRANSCRIPT_SEGMENTS,
    fake_png,
    form_parts,
    media_answer,
    speech_audio,
    speech_reply,
)
from lobe.devtools.fake_upstream import FakeUpstream, Recorded, Reply
from lobe.devtools.waiting import eventually
from lobe.shared.events.media import MEDIA_BUCKET

from .conftest import API_KEY, Suite, billing_settings, start_gateway, start_worker
from .ledger import ledger_row

ADMIN_TOKEN = "e2e-admin-token"


@pytest.fixture
def suite(builtin_suite: Suite) -> Suite:
    return builtin_suite


async def test_images_b64_json_and_url_parse_in_the_sdk(suite: Suite) -> None:
    as_b64 = await suite.client.images.generate(
        model="mock", prompt="a red fox", n=2, response_format="b64_json"
    )
    assert [base64.b64decode(d.b64_json or "") for d in as_b64.data] == [
        png_1x1("0:a red fox"),
        png_1x1("1:a red fox"),
    ]
    as_url = await suite.client.images.generate(model="mock", prompt="a red fox", response_format="url")
    assert as_url.data[0].url == "data:image/png;base64," + base64.b64encode(png_1x1("0:a red fox")).decode()


async def test_speech_streams_a_valid_wav(suite: Suite) -> None:
    text = "hello there, this is speech"
    async with suite.client.audio.speech.with_streaming_response.create(
        model="mock", voice="alloy", input=text, response_format="wav"
    ) as response:
        assert response.headers["content-type"] == "audio/wav"
        audio = b"".join([chunk async for chunk in response.iter_bytes()])
    samples = 24_000 * 10 * len(text) // 1000 * 2
    assert audio[:44] == wav_header(samples)
    assert len(audio) == 44 + samples


@pytest.mark.parametrize("response_format", ["json", "text", "srt", "verbose_json", "vtt"])
async def test_transcription_in_each_format(suite: Suite, response_format: Any) -> None:
    audio = wav_header(32_000) + bytes(32_000)
    answer = await suite.client.audio.transcriptions.create(
        model="mock", file=("hello.wav", audio, "audio/wav"), response_format=response_format
    )
    duration = round(len(audio) / 16_000, 3)
    if response_format == "json":
        assert answer.text == MOCK_TRANSCRIPT
    elif response_format == "verbose_json":
        assert (answer.text, answer.duration) == (MOCK_TRANSCRIPT, duration)
    elif response_format == "text":
        assert answer == MOCK_TRANSCRIPT + "\n"
    elif response_format == "srt":
        assert answer == f"1\n00:00:00,000 --> 00:00:02,003\n{MOCK_TRANSCRIPT}\n"
    else:
        assert answer == f"WEBVTT\n\n00:00:00.000 --> 00:00:02.003\n{MOCK_TRANSCRIPT}\n"


async def error_of(suite: Suite, path: str, body: Any) -> tuple[int, dict[str, Any]]:
    async with suite.http.post(f"{suite.base_url}{path}", json=body, headers=suite.headers()) as r:
        return r.status, (await r.json())["error"]


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/images/generations", {"model": "mock", "prompt": ""}, "prompt"),
        ("/v1/images/generations", {"model": "mock", "prompt": "x", "n": 11}, "n"),
        ("/v1/images/generations", {"model": "mock", "prompt": "x", "size": "3x3"}, "size"),
        (
            "/v1/images/generations",
            {"model": "mock", "prompt": "x", "response_format": "png"},
            "response_format",
        ),
        ("/v1/audio/speech", {"model": "mock", "input": "", "voice": "alloy"}, "input"),
        ("/v1/audio/speech", {"model": "mock", "input": "x" * 4097, "voice": "alloy"}, "input"),
        ("/v1/audio/speech", {"model": "mock", "input": "x"}, "voice"),
        ("/v1/audio/speech", {"model": "mock", "input": "x", "voice": "a", "speed": 5}, "speed"),
    ],
)
async def test_bad_input_is_openais_400_naming_the_param(
    suite: Suite, path: str, body: Any, param: str
) -> None:
    status, error = await error_of(suite, path, body)
    assert status == 400
    assert (error["type"], error["param"]) == ("invalid_request_error", param)


async def test_a_transcription_without_a_file_is_a_400(suite: Suite) -> None:
    form = aiohttp.FormData({"model": "mock"})
    form.add_field("other", b"x", filename="x.bin")
    async with suite.http.post(
        f"{suite.base_url}/v1/audio/transcriptions", data=form, headers=suite.headers()
    ) as r:
        assert r.status == 400
        assert (await r.json())["error"]["param"] == "file"


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\nno boundary declared\r\n--x--\r\n"),
        ("multipart/form-data; boundary=x", b"not multipart at all"),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data; name=file\r\n\r\nab"),
    ],
    ids=["no-boundary", "no-parts", "cut-short"],
)
async def test_a_body_that_is_not_the_multipart_it_says_is_a_400(
    suite: Suite, content_type: str, body: bytes
) -> None:
    headers = {**suite.headers(), "Content-Type": content_type}
    async with suite.http.post(f"{suite.base_url}/v1/audio/transcriptions", data=body, headers=headers) as r:
        assert r.status == 400, await r.text()
        error = (await r.json())["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "file")


async def test_unknown_model_is_a_404(suite: Suite) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        await suite.client.images.generate(model="no-such-model", prompt="x")
    assert caught.value.code == "model_not_found"


# Billing: one ledger row per request with its kind, units and cost; the budget refuses.


@pytest.fixture
async def media_billing(nats_url: str, billing_db: str) -> AsyncIterator[BillingService]:
    async with BillingService(billing_settings(nats_url, billing_db, ADMIN_TOKEN)) as service:
        assert service.admin is not None
        await service.admin.create_user("alice", plan="basic")
        yield service


@pytest.fixture
async def billed(nats_url: str, media_billing: BillingService) -> AsyncIterator[Suite]:
    worker = await start_worker(nats_url, BUILTIN)
    runner, base_url = await start_gateway(nats_url, billing_enabled=True)
    nc = await nats.connect(nats_url)
    async with aiohttp.ClientSession() as http:
        client = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=API_KEY, max_retries=0)
        yield Suite(base_url, nats_url, nc, client, http)
    await nc.close()
    await runner.cleanup()
    await worker.stop()


async def test_each_kind_is_one_ledger_row_with_its_units_and_cost(billed: Suite, billing_db: str) -> None:
    images = await billed.client.images.with_raw_response.generate(
        model="mock", prompt="x", n=3, size="256x256"
    )
    row = await ledger_row(billing_db, images.headers["x-request-id"])
    assert (row["kind"], row["status"], row["images"], row["image_size"], row["image_quality"]) == (
        "image",
        "ok",
        3,
        "256x256",
        "standard",
    )
    assert Decimal(row["cost_usd"]) == 3 * Decimal("0.005")  # the mock's 256x256 standard price

    text = "twelve chars"
    async with billed.client.audio.speech.with_streaming_response.create(
        model="mock", voice="alloy", input=text, response_format="mp3"
    ) as speech:
        await speech.read()
    row = await ledger_row(billing_db, speech.headers["x-request-id"])
    assert (row["kind"], row["characters"]) == ("speech", len(text))
    assert Decimal(row["cost_usd"]) == Decimal(10) * len(text) / 1_000_000

    audio = bytes(48_000)  # 3 s at the mock's 16,000 bytes a second
    raw = await billed.client.audio.transcriptions.with_raw_response.create(
        model="mock", file=("a.wav", audio)
    )
    row = await ledger_row(billing_db, raw.headers["x-request-id"])
    assert (row["kind"], Decimal(row["audio_seconds"])) == ("transcription", Decimal(3))
    assert Decimal(row["cost_usd"]) == Decimal("0.012") * 3 / 60


async def test_the_usage_report_and_suggestions_count_every_kind(
    billed: Suite, media_billing: BillingService, billing_db: str
) -> None:
    """One request of each kind: the usage API counts each with its cost, as the ledger holds it."""
    ids = [
        (
            await billed.client.chat.completions.with_raw_response.create(
                model="mock", messages=[{"role": "user", "content": "x"}]
            )
        ),
        (await billed.client.embeddings.with_raw_response.create(model="mock", input="x")),
        (await billed.client.responses.with_raw_response.create(model="mock", input="x")),
        (await billed.client.images.with_raw_response.generate(model="mock", prompt="x", size="256x256")),
        (
            await billed.client.audio.transcriptions.with_raw_response.create(
                model="mock", file=("a.wav", bytes(16_000))
            )
        ),
    ]
    async with billed.client.audio.speech.with_streaming_response.create(
        model="mock", voice="alloy", input="hi", response_format="mp3"
    ) as speech:
        await speech.read()
    request_ids = [raw.headers["x-request-id"] for raw in ids] + [speech.headers["x-request-id"]]
    rows = [await ledger_row(billing_db, request_id) for request_id in request_ids]
    assert sorted(row["kind"] for row in rows) == sorted(
        ["chat", "embedding", "response", "image", "transcription", "speech"]
    )
    ledger_cost = sum(Decimal(row["cost_usd"]) for row in rows)
    assert all(Decimal(row["cost_usd"]) > 0 for row in rows)

    admin_api = f"http://127.0.0.1:{media_billing.ops_port}/v1/admin/users/alice"
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with billed.http.get(f"{admin_api}/usage", headers=headers) as r:
        assert r.status == 200, await r.text()
        report = await r.json()
    assert report["totals"]["requests"] == len(rows)
    assert Decimal(report["totals"]["cost_usd"]) == ledger_cost
    assert report["byModel"]["mock"]["requests"] == len(rows)
    assert Decimal(report["byProvider"]["mock"]["cost"]) == ledger_cost
    async with billed.http.get(f"{admin_api}/usage/suggestions", headers=headers) as r:
        assert r.status == 200, await r.text()
        assert (await r.json())["object"] == "list"


async def test_the_budget_refuses_every_kind(billed: Suite, billing_db: str) -> None:
    async with admin_session(billing_db, billed.nats_url) as admin:
        await admin.set_limits("alice", Override(cost_usd=Decimal("0.0000000001")))
    with pytest.raises(openai.RateLimitError) as images:
        await billed.client.images.generate(model="mock", prompt="x")
    with pytest.raises(openai.RateLimitError) as speech:
        await billed.client.audio.speech.create(model="mock", voice="alloy", input="hi")
    with pytest.raises(openai.RateLimitError) as transcription:
        await billed.client.audio.transcriptions.create(model="mock", file=("a.wav", bytes(1000)))
    assert {images.value.code, speech.value.code, transcription.value.code} == {"insufficient_quota"}


async def test_a_20_mb_upload_never_sits_whole_in_the_gateway_or_the_worker(suite: Suite) -> None:
    """Gateway and worker run in this process: tracemalloc's peak over the whole request (the
    upload streamed into the Object Store, then out of it into the provider call) stays far below
    the file. The client's 20 MB is made before the measurement starts and read in pieces."""
    import tracemalloc

    size = 20 * 1024 * 1024
    piece = bytes(range(256)) * 256  # 64 KiB

    async def upload() -> AsyncIterator[bytes]:
        for _ in range(size // len(piece)):
            yield piece

    form = aiohttp.FormData({"model": "mock", "response_format": "verbose_json"})
    form.add_field("file", upload(), filename="big.wav", content_type="audio/wav")
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        async with suite.http.post(
            f"{suite.base_url}/v1/audio/transcriptions", data=form, headers=suite.headers()
        ) as r:
            assert r.status == 200, await r.text()
            answer = await r.json()
        peak = tracemalloc.get_traced_memory()[1] - baseline
    finally:
        tracemalloc.stop()
    assert answer["duration"] == round(size / 16_000, 3)  # the worker read every byte
    assert peak < 4 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte upload"


@pytest.fixture
async def upstreamed(gateway_only: Suite, media_upstream: FakeUpstream) -> AsyncIterator[Suite]:
    deployment = Deployment(name="oa", provider="openai", model="tts-1", base_url=media_upstream.url + "/v1")
    model = RoutedModel(name="oa", serves=["images", "speech"], deployments=[deployment])
    whisper = deployment.model_copy(update={"name": "oa-whisper", "model": "whisper-1"})
    transcribes = RoutedModel(name="oa-whisper", serves=["transcriptions"], deployments=[whisper])
    worker = await start_worker(
        gateway_only.nats_url, with_builtin(ModelCatalog(models=[model, transcribes]))
    )
    yield gateway_only
    await worker.stop()


async def test_openai_images_over_the_wire(upstreamed: Suite, media_upstream: FakeUpstream) -> None:
    answer = await upstreamed.client.images.generate(model="oa", prompt="a cat", response_format="url", n=2)
    assert [d.url for d in answer.data] == [f"https://images.example.test/{i}.png" for i in range(2)]
    assert answer.data[0].revised_prompt == "a cat"
    sent = media_upstream.requests[0].json
    assert (sent["model"], sent["n"], sent["response_format"]) == ("tts-1", 2, "url")


async def test_images_larger_than_a_nats_message_reach_the_client_whole(
    upstreamed: Suite, media_upstream: FakeUpstream
) -> None:
    """Two real 1024x1024 PNGs (3 MiB each, 4 MiB as b64_json) against the bus's 1 MiB messages:
    the worker hands them over through the MEDIA bucket, the gateway streams them out and
    deletes them."""
    answer = await upstreamed.client.images.generate(
        model="oa", prompt="a fox", n=2, size="1024x1024", response_format="b64_json"
    )
    assert [base64.b64decode(d.b64_json or "") for d in answer.data] == [
        fake_png(f"fake:{i}:a fox", "1024x1024") for i in range(2)
    ]
    assert [d.revised_prompt for d in answer.data] == ["a fox", "a fox"]
    assert len(answer.data[0].b64_json or "") > 4 * 1024 * 1024 > upstreamed.nc.max_payload
    js = upstreamed.nc.jetstream()

    async def chunks_left() -> int:
        return int((await js.stream_info(f"OBJ_{MEDIA_BUCKET}")).state.bytes)

    # Each object is deleted once written (the client may hold the last byte a moment before):
    # only the deletions' small meta markers stay.
    await eventually(lambda: _below(chunks_left(), 64 * 1024))


async def _below(size: Awaitable[int], limit: int) -> bool:
    return await size < limit


async def test_a_transcription_over_openais_wire_sends_the_whole_file_and_renders_the_clients_format(
    upstreamed: Suite, media_upstream: FakeUpstream
) -> None:
    """The upload goes gateway -> Object Store -> worker -> provider (a chunked multipart body);
    the fake reads it whole, so its hash is the client's."""
    audio = hashlib.sha256(b"audio").digest() * 20_000  # 640,000 bytes: 20 s at 32,000 a second
    verbose = await upstreamed.client.audio.transcriptions.create(
        model="oa-whisper", file=("talk.wav", audio, "audio/wav"), response_format="verbose_json"
    )
    srt = await upstreamed.client.audio.transcriptions.create(
        model="oa-whisper", file=("talk.wav", audio, "audio/wav"), response_format="srt"
    )
    for sent in media_upstream.requests:
        assert sent.headers["transfer-encoding"] == "chunked"
        parts = form_parts(sent)
        assert hashlib.sha256(parts["file"]).hexdigest() == hashlib.sha256(audio).hexdigest()
        assert (parts["model"], parts["response_format"]) == (b"whisper-1", b"verbose_json")
    first, second = TRANSCRIPT_SEGMENTS
    assert (verbose.text, verbose.duration, verbose.language) == (f"{first} {second}", 20.0, "english")
    assert [(s.start, s.end, s.text) for s in verbose.segments or []] == [
        (0.0, 10.0, f" {first}"),
        (10.0, 20.0, f" {second}"),
    ]
    assert srt == (
        f"1\n00:00:00,000 --> 00:00:10,000\n{first}\n\n2\n00:00:10,000 --> 00:00:20,000\n{second}\n"
    )


async def test_speech_bytes_reach_the_client_before_the_upstream_has_sent_its_last(
    upstreamed: Suite, media_upstream: FakeUpstream
) -> None:
    """The fake holds its last chunk until the client has read bytes: the answer completes only
    if the first bytes were streamed through before the upstream's last (a gateway or worker
    that buffered the audio would wait on it forever: the timeout is that failure's bound, no
    margin anything is measured against)."""
    first_bytes_read = asyncio.Event()

    def held(recorded: Recorded) -> Reply | None:
        if recorded.path.endswith("/audio/speech"):
            return speech_reply(release_last=first_bytes_read)
        return media_answer(recorded)

    media_upstream.answer = held
    received: list[bytes] = []
    async with asyncio.timeout(30):
        async with upstreamed.client.audio.speech.with_streaming_response.create(
            model="oa", voice="alloy", input="hello", response_format="wav"
        ) as response:
            async for data in response.iter_bytes():
                received.append(data)
                first_bytes_read.set()
    assert b"".join(received) == speech_audio()
