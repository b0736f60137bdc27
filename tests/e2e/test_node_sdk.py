"""The official openai SDK for Node (pinned in devtools/node/package.json) against the gateway,
for every endpoint beyond chat: what it parses must be what the Python SDK and the mock say."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest

from lobe.chat_worker.deployments import ModelCatalog, with_builtin
from lobe.chat_worker.providers.mock import mock_answer, mock_vector
from lobe.chat_worker.providers.mock_media import MOCK_TRANSCRIPT, mock_audio, png_1x1
from lobe.devtools.node_sdk import node_sdk_checks
from lobe.shared.chat_schema import ChatCompletionRequest
from lobe.shared.media_schema import SpeechRequest

from .conftest import API_KEY, Suite, start_worker
from .test_chat_path import usage_events
from .test_embeddings import float32

TEXTS = ["first text", "second text"]  # what the script embeds
SPOKEN = "hello there, this is speech. " * 10  # what it speaks
UPLOAD_BYTES = 44 + 32_000  # the WAV it uploads: a header and a second of 16 kHz 16-bit silence


@pytest.fixture
async def served(gateway_only: Suite) -> AsyncIterator[Suite]:
    worker = await start_worker(gateway_only.nats_url, with_builtin(ModelCatalog(models=[])))
    yield gateway_only
    await worker.stop()


async def test_node_embeds_as_floats_and_base64_alike(served: Suite) -> None:
    results = await node_sdk_checks(
        served.base_url, API_KEY, "embeddings.float", "embeddings.base64", "embeddings.default"
    )
    expected = [float32(mock_vector(text, 16)) for text in TEXTS]
    assert results["embeddings.float"] == expected
    assert results["embeddings.base64"] == expected
    assert results["embeddings.default"] == expected
    python = await served.client.embeddings.create(model="mock", input=TEXTS)
    assert [item.embedding for item in python.data] == expected


async def test_node_streams_a_response_to_completed_with_usage_and_creates_one(served: Suite) -> None:
    results = await node_sdk_checks(served.base_url, API_KEY, "responses.stream", "responses.create")

    streamed = results["responses.stream"]
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello from Node"}]
    expected = "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": messages}))
    )
    assert streamed["text"] == expected
    assert streamed["types"][0] == "response.created"
    assert streamed["types"][-1] == "response.completed"
    assert streamed["status"] == "completed"
    assert streamed["usage"]["output_tokens"] == len(expected.split(" "))

    created = results["responses.create"]
    user_only = [{"role": "user", "content": "Hello from Node"}]
    assert created["output_text"] == "".join(
        mock_answer(ChatCompletionRequest.model_validate({"model": "mock", "messages": user_only}))
    )
    assert created["status"] == "completed"
    events = await usage_events(served, expect=2)
    assert sorted((e.kind, e.request_id) for e in events) == sorted(
        ("response", r["id"].removeprefix("resp_")) for r in (streamed, created)
    )


async def test_node_generates_images_as_b64_json_and_urls(served: Suite) -> None:
    results = await node_sdk_checks(served.base_url, API_KEY, "images.b64_json", "images.url")
    assert [base64.b64decode(image) for image in results["images.b64_json"]] == [
        png_1x1("0:a red fox"),
        png_1x1("1:a red fox"),
    ]
    python = await served.client.images.generate(model="mock", prompt="a red fox", response_format="url")
    assert results["images.url"] == [python.data[0].url]
    assert results["images.url"] == [
        "data:image/png;base64," + base64.b64encode(png_1x1("0:a red fox")).decode()
    ]


@pytest.mark.parametrize("response_format", ["wav", "mp3"])
async def test_node_reads_speech_as_a_streamed_body_with_a_valid_header(
    served: Suite, response_format: str
) -> None:
    found = (await node_sdk_checks(served.base_url, API_KEY, f"speech.{response_format}"))[
        f"speech.{response_format}"
    ]
    expected = mock_audio(
        SpeechRequest.model_validate(
            {"model": "mock", "voice": "alloy", "input": SPOKEN, "response_format": response_format}
        )
    )
    assert found["content_type"] == f"audio/{'mpeg' if response_format == 'mp3' else 'wav'}"
    assert found["bytes"] == len(expected)
    assert base64.b64decode(found["head"]) == expected[:44]


async def test_node_uploads_a_file_and_parses_each_transcription_format(served: Suite) -> None:
    formats = ["json", "verbose_json", "text", "srt"]
    results = await node_sdk_checks(served.base_url, API_KEY, *(f"transcriptions.{f}" for f in formats))
    duration = round(UPLOAD_BYTES / 16_000, 3)  # the mock's 16,000 bytes a second
    assert results["transcriptions.json"] == {"text": MOCK_TRANSCRIPT}
    assert results["transcriptions.verbose_json"] == {
        "text": MOCK_TRANSCRIPT,
        "duration": duration,
        "language": "english",
        "segments": 1,
    }
    assert results["transcriptions.text"] == MOCK_TRANSCRIPT + "\n"
    assert results["transcriptions.srt"] == f"1\n00:00:00,000 --> 00:00:02,003\n{MOCK_TRANSCRIPT}\n"
    python = await served.client.audio.transcriptions.create(
        model="mock", file=("hello.wav", bytes(UPLOAD_BYTES), "audio/wav"), response_format="srt"
    )
    assert results["transcriptions.srt"] == python
