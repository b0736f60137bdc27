"""The OpenAI media adapter against the documented transcripts (tests/fixtures/providers/media,
reconstructed from OpenAI's documented wire format: see each sidecar), replayed in small HTTP
chunks: images as b64_json and as urls, speech's bytes as they stream, a verbose_json transcript
and the formats the worker renders from it."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator

import aiohttp
import pytest

from lobe.chat_worker.providers.base import Provider
from lobe.chat_worker.providers.registry import build_provider
from lobe.chat_worker.transcripts import render
from lobe.devtools.fake_upstream import FakeUpstream
from lobe.devtools.provider_fixtures import fixture_files, load
from lobe.shared.media_schema import ImagesRequest, SpeechRequest, TranscriptionRequest

from .support import deployment

SEEDS = [1, 2]


def openai(upstream: FakeUpstream, session: aiohttp.ClientSession) -> Provider:
    return build_provider(deployment("openai", upstream.url + "/v1"), session)


def test_every_media_transcript_is_replayed_here() -> None:
    assert {name.split("/")[1] for name in fixture_files("media")} == {
        "openai_images_b64_json.json",
        "openai_images_url.json",
        "openai_speech.mp3",
        "openai_transcription_verbose_json.json",
    }


@pytest.mark.parametrize("seed", SEEDS)
async def test_images_as_b64_json(seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession) -> None:
    transcript = load("media/openai_images_b64_json.json")
    upstream.push(transcript.reply(seed=seed, max_chunk=7))
    body = ImagesRequest.model_validate({"model": "m", "prompt": "A cute baby sea otter"})
    got = await openai(upstream, session).generate_images(body)
    assert got.created == transcript.expected["created"]
    assert len(got.images) == transcript.expected["images"]
    png = base64.b64decode(got.images[0]["b64_json"])
    assert hashlib.sha256(png).hexdigest() == transcript.expected["png_sha256"]
    assert upstream.last.path == "/v1/images/generations"


@pytest.mark.parametrize("seed", SEEDS)
async def test_images_as_urls(seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession) -> None:
    transcript = load("media/openai_images_url.json")
    upstream.push(transcript.reply(seed=seed, max_chunk=7))
    body = ImagesRequest.model_validate({"model": "m", "prompt": "x", "n": 2, "response_format": "url"})
    got = await openai(upstream, session).generate_images(body)
    assert [image["url"] for image in got.images] == transcript.expected["urls"]
    assert all(image["revised_prompt"] for image in got.images)
    assert upstream.last.json["response_format"] == "url"


@pytest.mark.parametrize("seed", SEEDS)
async def test_speech_bytes_stream_through_whole(
    seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("media/openai_speech.mp3")
    upstream.push(transcript.reply(seed=seed, max_chunk=257))
    body = SpeechRequest.model_validate({"model": "m", "input": "The quick brown fox", "voice": "alloy"})
    pieces = [data async for data in openai(upstream, session).speak(body)]
    audio = b"".join(pieces)
    assert len(pieces) > 1  # read as it came, not collected
    assert len(audio) == transcript.expected["audio_bytes"]
    assert hashlib.sha256(audio).hexdigest() == transcript.expected["audio_sha256"]
    assert upstream.last.path == "/v1/audio/speech"


@pytest.mark.parametrize("seed", SEEDS)
async def test_a_verbose_json_transcript_and_the_srt_rendered_from_it(
    seed: int, upstream: FakeUpstream, session: aiohttp.ClientSession
) -> None:
    transcript = load("media/openai_transcription_verbose_json.json")
    upstream.push(transcript.reply(seed=seed, max_chunk=7))
    audio = b"RIFF" + bytes(10_000)

    async def file() -> AsyncIterator[bytes]:
        yield audio

    body = TranscriptionRequest.model_validate(
        {"model": "m", "file_bytes": len(audio), "audio_object": "o1", "response_format": "srt"}
    )
    got = await openai(upstream, session).transcribe(body, file())
    expected = transcript.expected
    assert (got.text, got.duration_s, got.language) == (expected["text"], expected["duration_s"], "english")
    assert [[s["start"], s["end"], s["text"]] for s in got.segments] == expected["segments"]
    assert render(got, "srt") == (expected["srt"], "text/plain")
    assert audio in upstream.last.body  # the file went out whole, in the multipart body
